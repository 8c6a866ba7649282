"""Airflow settings for DAG tests: a throw-away AIRFLOW_HOME with SQLite, no examples."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="eeflow-airflow-"))
os.environ.setdefault("AIRFLOW_HOME", str(_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_HOME / 'airflow.db'}")


def run_task(dag, task_id: str, context: dict, **stage_kwargs):
    """Execute one stage task of ``dag`` in-process (no Airflow database) and return its XCom.

    A mapped task runs as the one task its ``stage_kwargs`` (one item of its plan) make.
    """
    from operators.stage import EeflowStageOperator

    task = dag.get_task(task_id)
    if isinstance(task, EeflowStageOperator):
        operator = task
        if stage_kwargs:
            operator = EeflowStageOperator(
                task_id=task_id, target=task.target, default_config=task.default_config,
                param_to_key=task.param_to_key, param_to_kwarg=task.param_to_kwarg,
                stage_kwargs=stage_kwargs)
    else:  # a mapped EeflowStageOperator
        partial = task.partial_kwargs
        operator = EeflowStageOperator(
            task_id=task_id, target=partial["target"], default_config=partial["default_config"],
            param_to_key=partial.get("param_to_key"), param_to_kwarg=partial.get("param_to_kwarg"),
            stage_kwargs=stage_kwargs)
    return operator.execute(context)
