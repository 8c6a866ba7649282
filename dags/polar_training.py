"""Train a sea-ice classifier: labels -> patches -> train -> evaluate, triggered by hand.

The params form of the Airflow UI chooses the model, patch size, epochs, class scheme and the
training-set version (left empty, each falls back to the config's value); the run's date picks
the scenes (generated or ingested) used for training.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, Param

from operators.params import optional_param, run_date_param
from operators.stage import EeflowStageOperator
from tasks.config.polar import ICE_MODEL_NAMES

CONFIG = "configs/polar.yaml"
PARAMS_TO_KEYS = {
    "model": "train.model",
    "patch_size": "train.patch_size",
    "epochs": "train.epochs",
    "class_scheme": "train.class_scheme",
    "dataset_version": "patches.dataset_version",
    "pretrained_checkpoint": "train.pretrained_checkpoint",
}

with DAG(
    dag_id="polar_training",
    description="Train and evaluate a sea-ice model on labelled Sentinel-1 patches",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["eeflow", "polar", "training"],
    default_args={"owner": "eeflow-polar", "retries": 1, "retry_delay": dt.timedelta(minutes=5)},
    params={
        "config": Param(
            CONFIG, type="string", description="use-case config (relative to EEFLOW_HOME)"
        ),
        "run_date": run_date_param("Day of the training scenes"),
        "model": optional_param("string", "Network to train.", key="train.model",
                                enum=list(ICE_MODEL_NAMES)),
        "patch_size": optional_param("integer", "Patch size in pixels.", key="train.patch_size",
                                     enum=[20, 32]),
        "epochs": optional_param("integer", "Training epochs.", key="train.epochs",
                                 minimum=1, maximum=500),
        "class_scheme": optional_param("string", "Classes to learn.", key="train.class_scheme",
                                       enum=["binary", "five_class"]),
        "dataset_version": optional_param("string", "Training-set version.",
                                          key="patches.dataset_version",
                                          pattern="^[A-Za-z0-9_.-]+$"),
        "pretrained_checkpoint": optional_param(
            "string", "Checkpoint to fine-tune from (vgg16_transfer).",
            key="train.pretrained_checkpoint",
        ),
    },
    doc_md=__doc__,
) as dag:
    common: dict[str, Any] = {"default_config": CONFIG, "param_to_key": PARAMS_TO_KEYS}
    ingest = EeflowStageOperator(
        task_id="ingest", target="tasks.polar.stages:ingest_stage", **common
    )
    harmonise = EeflowStageOperator(
        task_id="harmonise", target="tasks.polar.stages:harmonise_stage", **common
    )
    labels = EeflowStageOperator(
        task_id="labels", target="tasks.polar.stages:labels_stage", **common
    )
    patches = EeflowStageOperator(
        task_id="patches", target="tasks.polar.stages:patches_stage", **common
    )
    train = EeflowStageOperator(
        task_id="train", target="tasks.polar.stages:train_stage", **common
    )
    evaluate = EeflowStageOperator(
        task_id="evaluate",
        target="tasks.polar.stages:evaluate_stage",
        stage_kwargs={"model_dir": "{{ ti.xcom_pull(task_ids='train')['model_dir'] }}"},
        **common,
    )
    ingest >> harmonise >> labels >> patches >> train >> evaluate
