"""Hyper-parameter search or LOCO ablation of a use case, triggered by hand.

prepare (create the Optuna study, enqueue grid points / ablation runs) -> worker_indices -> one
mapped task per worker (they share the study in its RDB storage; a retried task resumes it) ->
report -> register the best model in the MLflow registry (search only; it gets the
``production`` alias when it beats the current one). Everything heavy is imported inside the tasks.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import Param, dag, task

from operators.params import optional_param, run_date_param

PARAMS = {
    "use_case": Param("polar", type="string", enum=["polar", "food_security"]),
    "mode": Param("search", type="string", enum=["search", "ablation"]),
    "trials": Param(0, type="integer", minimum=0, maximum=10000,
                    description="search budget; 0 = search.n_trials of the config"),
    "workers": Param(2, type="integer", minimum=1, maximum=64,
                     description="parallel mapped tasks sharing the study"),
    "config": optional_param("string", "Config file. Empty = configs/{use_case}.yaml."),
    "run_date": run_date_param("Day of the training data (crops: any day of the agronomic year)"),
    "dataset": optional_param("string", "Polar: training-set zarr. Empty = the run's patches."),
}


def _load(context: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """Config, run date and params of this run (imports kept out of DAG parsing)."""
    from operators.context import load_run_config, run_date_from_context

    params = context["params"]
    cfg = load_run_config(context, f"configs/{params['use_case']}.yaml")
    if cfg.use_case != params["use_case"]:
        raise ValueError(f"config {params['config']} is for {cfg.use_case!r}, the run asks "
                         f"{params['use_case']!r}")
    return cfg, run_date_from_context(context), params


@dag(
    dag_id="experiments",
    description="Optuna search / LOCO ablation with parallel workers, report, model registry",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["eeflow", "experiments", "optuna", "mlflow"],
    default_args={"owner": "eeflow-ml", "retries": 1, "retry_delay": dt.timedelta(minutes=2)},
    params=PARAMS,
    doc_md=__doc__,
)
def experiments() -> None:
    """Wire prepare -> mapped workers -> report -> register."""

    @task
    def prepare(**context: Any) -> dict[str, Any]:
        from tasks.experiments.stages import prepare_experiment

        cfg, run_date, params = _load(context)
        return prepare_experiment(cfg, run_date, mode=params["mode"],
                                  trials=params["trials"] or None, workers=params["workers"],
                                  dataset_path=params["dataset"] or None)

    @task
    def worker_indices(plan: dict[str, Any]) -> list[int]:
        return list(plan["workers"])

    @task(retries=2)
    def run_trials(worker_index: int, **context: Any) -> dict[str, Any]:
        from tasks.experiments.stages import run_experiment_worker

        cfg, run_date, params = _load(context)
        return run_experiment_worker(cfg, run_date, mode=params["mode"],
                                     worker_index=worker_index,
                                     dataset_path=params["dataset"] or None)

    @task(trigger_rule="all_done")
    def report(results: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
        from tasks.experiments.stages import report_experiment

        cfg, _, params = _load(context)
        return report_experiment(cfg, mode=params["mode"])

    @task
    def register(summary: dict[str, Any], **context: Any) -> dict[str, Any]:
        from tasks.experiments.stages import register_best

        cfg, _, params = _load(context)
        if params["mode"] != "search":
            return {"registered": False, "reason": "ablation runs are not registered"}
        return register_best(cfg, mode="search")

    plan = prepare()
    results = run_trials.expand(worker_index=worker_indices(plan))
    register(report(results))


experiments_dag = experiments()
