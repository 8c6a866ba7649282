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
configured tile), ``model`` (``all`` trains LSTM, TempCNN and StarRNN for the comparison table;
one name trains and maps with that model only).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from operators.params import optional_param, region_and_window_params, run_date_param

CONFIG = "configs/food_security.yaml"
MODELS = ["lstm", "tempcnn", "starrnn"]


def _stage_inputs(context: dict[str, Any]) -> tuple[Any, dt.date]:
    """Load the run's validated config and the day whose agronomic year the run processes."""
    from operators.context import load_run_config, run_date_from_context

    return load_run_config(context, CONFIG), run_date_from_context(context)


@task
def ingest(**context: Any) -> dict[str, Any]:
    """Generate (generator), locate (directory) or search + download (stac) the year's tiles."""
    from tasks.food_security.ingest import ingest_year

    cfg, run_date = _stage_inputs(context)
    return ingest_year(cfg, run_date)


@task
def harmonise(**context: Any) -> dict[str, Any]:
    """Cloud-masked monthly median composites of every tile."""
    from tasks.food_security.harmonise import run_harmonise

    return run_harmonise(*_stage_inputs(context))


@task
def labels(**context: Any) -> dict[str, Any]:
    """Rasterised parcel labels with reliable-label selection."""
    from tasks.food_security.labels import run_labels

    return run_labels(*_stage_inputs(context))


@task
def samples(**context: Any) -> dict[str, Any]:
    """Pixel time-series samples split by tile."""
    from tasks.food_security.samples import run_samples

    return run_samples(*_stage_inputs(context))


@task
def models_to_train(**context: Any) -> list[str]:
    """List the model names this run trains (one mapped train task each)."""
    choice = context["params"].get("model") or "all"
    return list(MODELS) if choice == "all" else [choice]


@task
def train(model: str, **context: Any) -> dict[str, Any]:
    """Weighted two-phase training of one model."""
    from tasks.food_security.train import train_crop_model

    cfg, run_date = _stage_inputs(context)
    result = train_crop_model(cfg, run_date, model=model)
    return {k: result[k] for k in ("model", "model_dir", "monitor", "val_metric", "epochs")}


@task
def tiles_to_map(**context: Any) -> list[str]:
    """List the tiles this run maps (one mapped predict task each)."""
    cfg, _ = _stage_inputs(context)
    chosen = list(context["params"].get("tiles") or cfg.tile_ids())
    unknown = [t for t in chosen if t not in cfg.tile_ids()]
    if unknown:
        raise ValueError(f"param tiles names {unknown}, not configured: {cfg.tile_ids()}")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"param tiles names a tile twice: {chosen}")
    return chosen


@task
def predict(tile: str, **context: Any) -> dict[str, Any]:
    """Crop map COG, quicklook and field instances of one tile."""
    from tasks.food_security.predict import run_predict

    cfg, run_date = _stage_inputs(context)
    choice = context["params"].get("model") or "all"
    result = run_predict(cfg, run_date, tile=tile, model=None if choice == "all" else choice)
    return {k: result[k] for k in ("tile", "model", "folder", "crop_map", "fields")}


@task
def evaluate(**context: Any) -> dict[str, Any]:
    """OA / F1 on the held-out tile and the model comparison table."""
    from tasks.food_security.evaluate import run_evaluate

    cfg, run_date = _stage_inputs(context)
    choice = context["params"].get("model") or "all"
    return run_evaluate(cfg, run_date, models=None if choice == "all" else [choice])


@task
def lucas_evaluate(**context: Any) -> dict[str, Any]:
    """Score the year's crop maps against LUCAS points with the 10 m same-label rule."""
    from tasks.lucas.stages import lucas_stage

    return lucas_stage(*_stage_inputs(context))


@task
def rdf_export(**context: Any) -> dict[str, Any]:
    """Field instances of every mapped tile -> RDF (GeoSPARQL) for the year's named graph."""
    from tasks.linked_data.stages import rdf_export_stage

    return rdf_export_stage(*_stage_inputs(context), product="crop_field_instances")


@task
def load_triples(**context: Any) -> dict[str, Any]:
    """Load (replace) the year's crop-field graph in the triple store."""
    from tasks.linked_data.stages import load_triples_stage

    return load_triples_stage(*_stage_inputs(context), product="crop_field_instances")


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
        "model": Param("all", type="string", enum=["all", *MODELS], title="Model",
                       description="'all' trains the three models of the comparison table"),
    },
    render_template_as_native_obj=True,
    doc_md=__doc__,
)
def food_security_agronomic_year() -> None:
    """Wire ingest -> harmonise -> labels -> samples -> train -> predict -> evaluate / RDF."""
    prepared = samples()
    ingest() >> harmonise() >> labels() >> prepared
    trained = train.expand(model=models_to_train())
    prepared >> trained
    mapped = predict.expand(tile=tiles_to_map())
    trained >> mapped >> evaluate()
    mapped >> lucas_evaluate()
    mapped >> rdf_export() >> load_triples()


agronomic_year_dag = food_security_agronomic_year()
