r"""Crop-type map of one agronomic year (1 September - 31 August) from Sentinel-2 time series.

One run = one agronomic year: the data interval runs from 1 September 00:00 UTC to the next
1 September, and the scheduled run starts once the year is over. Every stage reads and writes only
``{root}/food_security/{stage}/{YYYY-09_YYYY+1-08}/``, so runs of different years never touch each
other's data, and re-running a year replaces its outputs atomically (seeded: the same result).

Backfill several years (each becomes one run of this DAG)::

    airflow backfill create --dag-id food_security_agronomic_year \
        --from-date 2016-09-01 --to-date 2018-08-31

Trigger by hand with ``run_date`` (any day of the year to map) or let the logical date choose.
Params: ``config`` (YAML, relative to ``$EEFLOW_HOME``), ``tiles`` (tiles to map; empty = every
configured tile), ``model`` (``all`` trains the config's ``evaluate.models`` for the comparison
table; one name trains and maps with that model only). The stages, the model choice and the tile
validation live in :mod:`tasks.food_security.stages`; this file holds the wiring.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import CronDataIntervalTimetable, Param, dag

from operators.params import optional_param, region_and_window_params, run_date_param
from operators.stage import EeflowStageOperator
from tasks.food_security.stages import MODEL_PARAM_VALUES

CONFIG = "configs/food_security.yaml"
STAGES = "tasks.food_security.stages"


@dag(
    dag_id="food_security_agronomic_year",
    description="Sentinel-2 time series -> monthly composites -> weighted LSTM -> crop map, "
    "per agronomic year",
    schedule=CronDataIntervalTimetable("0 0 1 9 *", timezone="UTC"),
    start_date=dt.datetime(2016, 9, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["eeflow", "food_security", "sentinel-2", "yearly"],
    default_args={
        "owner": "eeflow-food-security",
        "retries": 1,
        "retry_delay": dt.timedelta(minutes=5),
    },
    params={
        "config": Param(CONFIG, type="string", title="Config",
                        description="use-case YAML, relative to EEFLOW_HOME"),
        "run_date": run_date_param("Any day of the agronomic year to map"),
        **region_and_window_params(),
        "tiles": optional_param("array", "Sentinel-2 tile ids to map, e.g. 33UVP. Empty = all "
                                "configured tiles.", items={"type": "string"},
                                title="Tiles to map"),
        "model": Param("all", type="string", enum=list(MODEL_PARAM_VALUES), title="Model",
                       description="'all' trains the models of the comparison table "
                       "(evaluate.models of the config)"),
    },
    render_template_as_native_obj=True,
    doc_md=__doc__,
)
def food_security_agronomic_year() -> None:
    """Wire ingest -> harmonise -> labels -> samples -> train -> predict -> evaluate / RDF."""

    def stage(task_id: str, function: str, doc: str, **kwargs: Any) -> EeflowStageOperator:
        return EeflowStageOperator(task_id=task_id, target=f"{STAGES}:{function}",
                                   default_config=CONFIG, doc_md=doc, **kwargs)

    def mapped(task_id: str, function: str, doc: str, plan: EeflowStageOperator) -> Any:
        """One task per item of ``plan``'s list of stage kwargs."""
        return EeflowStageOperator.partial(
            task_id=task_id, target=f"{STAGES}:{function}", default_config=CONFIG, doc_md=doc
        ).expand(stage_kwargs=plan.output)

    ingest = stage("ingest", "ingest_stage", "Generate (generator), locate (directory) or "
                   "search + download (stac) the year's tiles.")
    harmonise = stage("harmonise", "harmonise_stage",
                      "Cloud-masked monthly median composites of every tile.")
    labels = stage("labels", "labels_stage",
                   "Rasterised parcel labels with reliable-label selection.")
    samples = stage("samples", "samples_stage", "Pixel time-series samples split by tile.")
    models = stage("models_to_train", "models_to_train",
                   "List the model names this run trains (one mapped train task each).",
                   param_to_kwarg={"model": "model"})
    train = mapped("train", "train_stage", "Weighted two-phase training of one model.", models)
    tiles = stage("tiles_to_map", "tiles_to_map",
                  "List the tiles this run maps (one mapped predict task each).",
                  param_to_kwarg={"tiles": "tiles", "model": "model"})
    predict = mapped("predict", "predict_stage",
                     "Crop map COG, quicklook and field instances of one tile.", tiles)
    evaluate = stage("evaluate", "evaluate_stage",
                     "OA / F1 on the held-out tile and the model comparison table.",
                     param_to_kwarg={"model": "model"})
    lucas = stage("lucas_evaluate", "lucas_stage",
                  "Score the year's crop maps against LUCAS points with the 10 m same-label rule.")
    rdf_export = stage("rdf_export", "rdf_export_stage", "Field instances of every mapped tile "
                       "-> RDF (GeoSPARQL) for the year's named graph.")
    load_triples = stage("load_triples", "load_triples_stage",
                         "Load (replace) the year's crop-field graph in the triple store.")

    ingest >> harmonise >> labels >> samples >> train >> predict >> evaluate
    predict >> lucas
    predict >> rdf_export >> load_triples


agronomic_year_dag = food_security_agronomic_year()
