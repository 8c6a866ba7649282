# GPU trainer image: CUDA build of torch 2.13.0 plus eeflow; runs `eeflow polar training` /
# `eeflow crops train` on a node with an NVIDIA GPU (accelerator: auto picks it up).
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.12=* python3.12-venv=* \
    && rm -rf /var/lib/apt/lists/*
RUN python3.12 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /opt/eeflow
COPY pyproject.toml README.md ./
COPY tasks ./tasks
COPY operators ./operators
COPY configs ./configs
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cu128 "torch==2.13.0" \
    && pip install --no-cache-dir -e .

ENV EEFLOW_HOME=/opt/eeflow
ENTRYPOINT ["eeflow"]
CMD ["--help"]
