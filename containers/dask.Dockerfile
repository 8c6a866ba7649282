# Dask scheduler / worker image: eeflow installed (CPU torch) on plain Python, no Airflow. Used by
# the dask-scheduler and dask-worker services of docker-compose.yaml. Runs as uid 50000, group 0,
# like the Airflow image, so both write the shared data volume. Build both images together
# (`docker compose build`) so that client and workers run the same dask / distributed release.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends libexpat1=* tini=* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 50000 --gid 0 --home-dir /opt/eeflow --no-create-home eeflow \
    && mkdir -p /opt/eeflow/work \
    && chown -R 50000:0 /opt/eeflow \
    && chmod -R g+rwX /opt/eeflow

WORKDIR /opt/eeflow
COPY --chown=50000:0 pyproject.toml README.md ./
COPY --chown=50000:0 tasks ./tasks
COPY --chown=50000:0 operators ./operators
COPY --chown=50000:0 configs ./configs
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
    && pip install --no-cache-dir -e .

USER 50000
ENV EEFLOW_HOME=/opt/eeflow \
    PYTHONUNBUFFERED=1
EXPOSE 8786 8787
ENTRYPOINT ["tini", "--"]
CMD ["dask", "scheduler", "--host", "0.0.0.0", "--port", "8786", "--dashboard-address", ":8787"]
