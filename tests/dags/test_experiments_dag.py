"""The experiments DAG: params form, mapped workers, wiring, no heavy imports at parse time."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
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
    assert not any(f"import {h}" in source or f"from {h}" in source for h in heavy)
    code = (f"import importlib.util, sys; s = importlib.util.spec_from_file_location('d', "
            f"{str(DAG_FILE)!r}); m = importlib.util.module_from_spec(s); s.loader.exec_module(m); "
            f"print(sorted(k for k in sys.modules if k.split('.')[0] in {heavy!r} "
            "or k.startswith('tasks.experiments')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=DAG_FILE.parents[1], check=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_stages_get_the_run_params_and_the_use_case_config():
    dag = _dag()
    prepare = dag.get_task("prepare")
    assert prepare.default_config == "configs/{{ params.use_case }}.yaml"
    assert prepare.param_to_kwarg == {"use_case": "use_case", "mode": "mode", "trials": "trials",
                                      "workers": "workers", "dataset": "dataset"}
    assert dag.get_task("run_trials").partial_kwargs["retries"] == 2
