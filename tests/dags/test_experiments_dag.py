"""The experiments DAG: params form, mapped workers, wiring, no heavy imports at parse time."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "experiments.py"


def _dag():
    spec = importlib.util.spec_from_file_location("dagfile_experiments_test", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from airflow.sdk import DAG

    (dag,) = [v for v in vars(module).values() if isinstance(v, DAG)]
    return dag


def test_params_form():
    dag = _dag()
    assert dag.dag_id == "experiments"
    params = dag.params
    assert params["use_case"] == "polar" and params["mode"] == "search"
    assert set(params.get_param("use_case").schema["enum"]) == {"polar", "food_security"}
    assert set(params.get_param("mode").schema["enum"]) == {"search", "ablation"}
    assert params["workers"] == 2 and params["trials"] == 0


def test_wiring_prepare_mapped_workers_report_register():
    dag = _dag()
    order = [t.task_id for t in dag.topological_sort()]
    assert order == ["prepare", "worker_indices", "run_trials", "report",
                     "register"]
    run_trials = dag.get_task("run_trials")
    assert type(run_trials).__name__ == "_MappedOperator" or "Mapped" in type(run_trials).__name__
    assert dag.get_task("report").trigger_rule == "all_done"
    assert all(t.owner == "eeflow-ml" and t.retries >= 1 for t in dag.tasks)
    assert "eeflow" in dag.tags


def test_parse_imports_nothing_heavy():
    heavy = ("torch", "lightning", "optuna", "mlflow")
    source = DAG_FILE.read_text()
    header = source.split("def _load", 1)[0]
    assert not any(f"import {h}" in header or f"from {h}" in header for h in heavy)
    assert "tasks.experiments" not in header
