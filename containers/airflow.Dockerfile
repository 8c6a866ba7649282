# Airflow image with eeflow installed (CPU torch). Used by the api-server, scheduler,
# dag-processor, triggerer and the Dask scheduler/workers of docker-compose.yaml.
FROM apache/airflow:3.3.2-python3.11

USER 0
RUN apt-get update \
    && apt-get install -y --no-install-recommends libexpat1=* \
    && rm -rf /var/lib/apt/lists/*
USER 50000

WORKDIR /opt/eeflow
COPY --chown=50000:0 pyproject.toml README.md ./
COPY --chown=50000:0 tasks ./tasks
COPY --chown=50000:0 operators ./operators
COPY --chown=50000:0 configs ./configs
COPY --chown=50000:0 dags ./dags
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
    && pip install --no-cache-dir -e .

ENV EEFLOW_HOME=/opt/eeflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/eeflow/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
