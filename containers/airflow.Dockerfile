# Airflow image with eeflow installed (CPU torch). Used by the api-server, scheduler,
# dag-processor, triggerer, the serving API (`eeflow serve run`) and the SPARQL server
# (`eeflow rdf serve`) of docker-compose.yaml. Build context: the repository root.
FROM apache/airflow:3.3.2-python3.11

USER 0
RUN apt-get update \
    && apt-get install -y --no-install-recommends libexpat1=* \
    && rm -rf /var/lib/apt/lists/*
# The project folder and the mount points of the compose volumes belong to the image user (50000,
# group 0 as in Airflow's image): a named volume starts with the ownership of its mount point, so
# the user can write stage outputs, the request log and the triple store.
RUN mkdir -p /opt/eeflow/work /opt/eeflow/triplestore \
    && chown -R 50000:0 /opt/eeflow \
    && chmod -R g+rwX /opt/eeflow
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
