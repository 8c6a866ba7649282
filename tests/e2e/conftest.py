"""One real local Airflow (LocalExecutor, SQLite) for the end-to-end tests, on 127.0.0.1.

The scheduler, DAG processor and API server run as separate processes exactly as ``eeflow airflow
start`` runs them; the tests drive them over the REST API or a browser. Configs are tiny so that
every DAG run takes well under a minute of CPU.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tasks.cli.local_airflow import AirflowRunError, LocalAirflow
from tasks.net import free_port

POLAR = {
    "use_case": "polar",
    "data_root": "data",
    "seed": 7,
    "linked_data": {"config": "configs/linked_data.yaml"},
    # the local cluster starts its own workers inside the Airflow task (dask.workers: auto)
    "dask": {"cluster": "local", "n_workers": 2, "memory_limit": "1GiB"},
    "ingest": {"generator": {"lines": 320, "samples": 320, "scenes_per_day": 1}},
    "harmonise": {"chunk": 160},
    "patches": {"sizes": [20], "max_per_class": 150, "min_purity": 0.8},
    "train": {"model": "adhoc_cnn", "patch_size": 20, "epochs": 1, "batch_size": 32},
    "predict": {"tile": 160},
}

FOOD_SECURITY = {
    "use_case": "food_security",
    "data_root": "data",
    "seed": 3,
    "linked_data": {"config": "configs/linked_data.yaml"},
    "dask": {"cluster": "local", "n_workers": 1, "memory_limit": "1GiB"},
    "ingest": {"generator": {"size_px": 48, "tiles": [
        {"id": "33UWP", "revisit_days": 10, "parcels": 20},
        {"id": "33UXP", "revisit_days": 10, "parcels": 20},
        {"id": "33UVP", "revisit_days": 10, "parcels": 20}]}},
    "harmonise": {"chunk": 48},
    "samples": {"max_per_class": 200},
    "train": {"layers": 1, "cells": 8, "epochs_phase1": 1, "epochs_phase2": 1,
              "batch_size": 128, "accelerator": "cpu"},
}

DAGS = ["polar_training", "polar_ice_chart_daily", "food_security_agronomic_year"]


@pytest.fixture(scope="package")  # stopped after tests/e2e, not at the end of the whole run
def local_airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAirflow]:
    """A running local Airflow whose EEFLOW_HOME holds the tiny configs; stopped at the end."""
    home: Path = tmp_path_factory.mktemp("airflow_e2e")
    (home / "configs").mkdir()
    (home / "configs" / "polar.yaml").write_text(yaml.safe_dump(POLAR))
    (home / "configs" / "food_security.yaml").write_text(yaml.safe_dump(FOOD_SECURITY))
    (home / "configs" / "linked_data.yaml").write_text(
        (Path(__file__).resolve().parents[2] / "configs" / "linked_data.yaml").read_text()
        .replace("data_root: work/data", "data_root: data")
    )
    # started as the README says, `eeflow airflow start`, which the tests thereby cover too
    af = LocalAirflow(home, port=free_port())
    log = (home / "airflow_start.log").open("wb")
    start = subprocess.Popen(
        [str(Path(sys.executable).parent / "eeflow"), "airflow", "start", "--home", str(home),
         "--port", str(af.port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert start.poll() is None, (home / "airflow_start.log").read_text()[-3000:]
            try:
                af.api("GET", "/monitor/health", retries=1)
                break
            except AirflowRunError:
                assert time.monotonic() < deadline, "eeflow airflow start did not come up"
                time.sleep(2)
        af.wait_for_dags(DAGS)
        yield af
    finally:
        start.send_signal(signal.SIGTERM)  # stops every service it started
        try:
            assert start.wait(timeout=120) == 0
        finally:
            if start.poll() is None:
                os.killpg(start.pid, signal.SIGKILL)
            log.close()
