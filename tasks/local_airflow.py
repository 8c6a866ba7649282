"""Run eeflow's DAGs on an embedded local Airflow (SQLite metadata DB in the work folder).

Used by ``eeflow demo`` and the end-to-end tests. Airflow runs as a subprocess through its own CLI
(``airflow db migrate``, ``airflow dags list``, ``airflow dags test``), so this module imports
without Airflow.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]


class AirflowRunError(RuntimeError):
    """An Airflow CLI command failed; the message carries the tail of its output."""


def airflow_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a local Airflow whose home, SQLite DB and logs live under ``home``."""
    airflow_home = home / "work" / "airflow"
    airflow_home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "EEFLOW_HOME": str(home),
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")])),
        }
    )
    env.update(extra or {})
    return env


def _airflow(args: list[str], env: Mapping[str, str], timeout: float) -> str:
    exe = Path(sys.executable).with_name("airflow")
    cmd = [str(exe) if exe.exists() else "airflow", *args]
    log.info("$ %s", " ".join(cmd))
    proc = subprocess.run(
        cmd, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0 or "DagRun failed" in output or "state=failed" in output:
        tail = "\n".join(output.splitlines()[-40:])
        raise AirflowRunError(
            f"`airflow {' '.join(args)}` failed (exit {proc.returncode}):\n{tail}"
        )
    return output


def init_db(env: Mapping[str, str], timeout: float = 600) -> None:
    """Create or upgrade the SQLite metadata database."""
    _airflow(["db", "migrate"], env, timeout)


def _json_lines(output: str) -> list[object]:
    """Return the JSON list an ``airflow ... -o json`` command printed after its log lines."""
    for line in reversed(output.splitlines()):
        if line.startswith("["):
            return json.loads(line)
    raise AirflowRunError(f"no JSON list in Airflow's output:\n{output[-2000:]}")


def list_dags(env: Mapping[str, str], timeout: float = 300) -> list[str]:
    """Parse ``dags/`` into the metadata DB and return the DAG ids; import errors raise."""
    _airflow(["dags", "reserialize"], env, timeout)
    errors = _json_lines(_airflow(["dags", "list-import-errors", "-o", "json"], env, timeout))
    if errors:
        raise AirflowRunError(f"DAG import errors: {json.dumps(errors, indent=2)}")
    dags = _json_lines(_airflow(["dags", "list", "-o", "json"], env, timeout))
    return sorted(d["dag_id"] for d in dags if isinstance(d, dict))


def run_dag_test(
    dag_id: str,
    logical_date: str,
    env: Mapping[str, str],
    conf: Mapping[str, object] | None = None,
    timeout: float = 1800,
) -> str:
    """Run one DAG run in-process with ``airflow dags test``; raise if any task failed."""
    args = ["dags", "test", dag_id, logical_date]
    if conf:
        args += ["--conf", json.dumps(conf)]
    return _airflow(args, env, timeout)
