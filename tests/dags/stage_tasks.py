"""Run a DAG's stage tasks in-process, without an Airflow database (what the DAG tests drive)."""

from __future__ import annotations

from typing import Any


def run_task(dag: Any, task_id: str, context: dict[str, Any], **stage_kwargs: Any) -> Any:
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
