"""Hyper-parameter search or LOCO ablation of a use case, triggered by hand.

prepare (create the Optuna study, enqueue grid points / ablation runs) -> worker_indices -> one
mapped task per worker (they share the study in its RDB storage; a retried task resumes it) ->
report -> register the best model in the MLflow registry (search only; it gets the
``production`` alias when it beats the current one). Everything heavy is imported inside the tasks.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import Param, dag

from operators.params import optional_param, run_date_param
from operators.stage import EeflowStageOperator

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
#: The stages read the config of the run's use case (the ``config`` param overrides it).
CONFIG = "configs/{{ params.use_case }}.yaml"
STAGES = "tasks.experiments.stages"


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
    run = {"use_case": "use_case", "mode": "mode"}

    def stage(task_id: str, function: str, *params: str, **kwargs: Any) -> EeflowStageOperator:
        return EeflowStageOperator(
            task_id=task_id, target=f"{STAGES}:{function}", default_config=CONFIG,
            param_to_kwarg={**run, **{name: name for name in params}}, **kwargs)

    plan = stage("prepare", "prepare_stage", "trials", "workers", "dataset")
    indices = stage("worker_indices", "worker_indices", "workers", "dataset")
    trials = EeflowStageOperator.partial(
        task_id="run_trials", target=f"{STAGES}:run_trials_stage", default_config=CONFIG,
        retries=2,
    ).expand(stage_kwargs=indices.output)
    report = stage("report", "report_stage", trigger_rule="all_done")
    plan >> indices >> trials >> report >> stage("register", "register_stage")


experiments_dag = experiments()
