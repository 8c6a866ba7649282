"""Daily sea-ice chart from the day's Sentinel-1 EW scenes, published and loaded as RDF.

With a catalogue source (``ingest.source`` cdse_odata / stac) the run first waits, deferred in
the triggerer, for the day's scenes over the area; a day without any is skipped, not failed.
The scenes are harmonised, predicted and published, then exported as RDF (GeoSPARQL) and
loaded into the triple store as the day's named graph.

One run = one day (data interval 00:00-24:00 UTC; the run starts once the day is over).
Re-running a day replaces its outputs atomically; a failed run leaves the published chart of
the previous run of that day in place. Trigger by hand with a ``run_date`` to chart any day.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param

from operators.params import optional_param, region_and_window_params, run_date_param
from operators.sensors import SceneAvailableSensor
from operators.stage import EeflowStageOperator

CONFIG = "configs/polar.yaml"
PARAMS_TO_KEYS = {"model": "predict.model", "source": "ingest.source"}
ICE_CHART = Asset("eeflow://polar/published", extra={"product": "ice_chart"})

with DAG(
    dag_id="polar_ice_chart_daily",
    description="Daily sea-ice chart from Sentinel-1 EW GRD scenes",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=2,
    tags=["eeflow", "polar", "sentinel-1", "daily"],
    default_args={"owner": "eeflow-polar", "retries": 2, "retry_delay": dt.timedelta(minutes=10)},
    params={
        "config": Param(
            CONFIG, type="string", description="use-case config (relative to EEFLOW_HOME)"
        ),
        "run_date": run_date_param("Day to chart"),
        **region_and_window_params(),
        "model": optional_param(
            "string", "'registry:production', 'best:val_acc', 'latest' or a model folder.",
            key="predict.model",
        ),
        "source": optional_param("string", "Where the scenes come from.", key="ingest.source",
                                 enum=["generator", "directory", "cdse_odata", "stac"]),
    },
    doc_md=__doc__,
) as dag:
    common: dict[str, Any] = {"default_config": CONFIG, "param_to_key": PARAMS_TO_KEYS}
    wait_for_scenes = SceneAvailableSensor(task_id="wait_for_scenes", **common)
    ingest = EeflowStageOperator(
        task_id="ingest", target="tasks.polar.stages:ingest_stage", **common
    )
    harmonise = EeflowStageOperator(
        task_id="harmonise", target="tasks.polar.stages:harmonise_stage", **common
    )
    predict = EeflowStageOperator(
        task_id="predict", target="tasks.polar.stages:predict_stage", **common
    )
    publish = EeflowStageOperator(
        task_id="publish",
        target="tasks.polar.stages:publish_stage",
        outlets=[ICE_CHART],
        **common,
    )
    rdf_export = EeflowStageOperator(
        task_id="rdf_export",
        target="tasks.linked_data.stages:rdf_export_stage",
        stage_kwargs={"product": "ice_chart"},
        **common,
    )
    load_triples = EeflowStageOperator(
        task_id="load_triples",
        target="tasks.linked_data.stages:load_triples_stage",
        stage_kwargs={"product": "ice_chart"},
        **common,
    )
    wait_for_scenes >> ingest >> harmonise >> predict >> publish >> rdf_export >> load_triples
