"""The crop-type (food security) pipeline as uniform ``stage(cfg, run_date, **kwargs)`` calls.

The ``food_security_agronomic_year`` DAG wires these through ``EeflowStageOperator`` (its file
holds wiring only), the ``eeflow crops`` CLI calls the same science. Each stage reads and writes
``{root}/food_security/{stage}/{agronomic_year}/`` and returns a
:class:`~tasks.stage_result.StageResult`. Three planning functions turn the DAG's params into
the fan-out of the mapped stages and the choice of models:

* :func:`model_choice` parses the ``model`` param (``all`` = the config's ``evaluate.models``);
* :func:`models_to_train` gives one ``train`` task per chosen model;
* :func:`tiles_to_map` validates the ``tiles`` param and gives one ``predict`` task per tile.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from tasks.config.food_security import CROP_MODEL_NAMES, FoodSecurityConfig
from tasks.stage_result import StagePlan, StageResult
from tasks.staging import StageIO, on_s3_workers, run_staged
from tasks.storage import agronomic_year_key

DateLike = dt.date | dt.datetime | str

#: The use case's folder under the data root.
USE_CASE = "food_security"


def _io(run_date: DateLike, inputs: Sequence[str] = (), outputs: Sequence[str] = (),
        optional: Sequence[str] = (), catalogue: bool = False) -> StageIO:
    """Return the stage's units under the data root (``{stage}[/{sub}]`` of the year).

    On an ``s3://`` data root the stage runs through a local scratch root
    (:func:`tasks.staging.run_staged`): its inputs are downloaded, its outputs published by
    pointer, last.
    """
    key = agronomic_year_key(run_date)

    def unit(name: str) -> str:
        stage, _, sub = name.partition("/")
        return f"{USE_CASE}/{stage}/{key}" + (f"/{sub}" if sub else "")

    return StageIO(inputs=tuple(map(unit, inputs)), outputs=tuple(map(unit, outputs)),
                   optional_inputs=tuple(map(unit, optional)), catalogue=catalogue)


def _ingested(cfg: FoodSecurityConfig) -> list[str]:
    """Return the ingest output unit, none for ``ingest.source: directory`` (read in place)."""
    return [] if cfg.ingest.source == "directory" else ["ingest"]


#: The value of the ``model`` param that trains every model of the comparison table.
ALL_MODELS = "all"
#: The ``model`` param's allowed values (the DAG's enum).
MODEL_PARAM_VALUES: tuple[str, ...] = (ALL_MODELS, *CROP_MODEL_NAMES)


@dataclass(frozen=True)
class ModelChoice:
    """The parsed ``model`` param.

    Attributes:
        models: the models to train and compare (``all``: the config's ``evaluate.models``).
        single: the one model to map with, or None when every model is trained (``predict``
            then uses ``predict.model`` of the config).

    """

    models: tuple[str, ...]
    single: str | None


def model_choice(cfg: FoodSecurityConfig, model: str | None) -> ModelChoice:
    """Parse the ``model`` param: ``all`` (or empty) = ``evaluate.models``; one name = that one.

    Raises:
        ValueError: ``model`` is neither ``all`` nor a crop model name.

    """
    value = model or ALL_MODELS
    if value == ALL_MODELS:
        return ModelChoice(models=tuple(cfg.evaluate.models), single=None)
    if value not in CROP_MODEL_NAMES:
        raise ValueError(f"param model={value!r} is not a crop model; allowed: "
                         f"{list(MODEL_PARAM_VALUES)}")
    return ModelChoice(models=(value,), single=value)


def models_to_train(
    cfg: FoodSecurityConfig, run_date: DateLike, model: str | None = ALL_MODELS
) -> StagePlan:
    """Plan one ``train`` task per model the ``model`` param chooses."""
    del run_date  # every year trains the same models
    return StagePlan(tuple({"model": name} for name in model_choice(cfg, model).models))


def tiles_to_map(
    cfg: FoodSecurityConfig,
    run_date: DateLike,
    tiles: Sequence[str] | None = None,
    model: str | None = ALL_MODELS,
) -> StagePlan:
    """Plan one ``predict`` task per tile of the ``tiles`` param (empty: every configured tile).

    Raises:
        ValueError: a tile is not configured, or named twice; ``model`` is not allowed.

    """
    del run_date  # every year maps the same tiles
    configured = cfg.tile_ids()
    chosen = list(tiles or configured)
    unknown = [t for t in chosen if t not in configured]
    if unknown:
        raise ValueError(f"param tiles names {unknown}, not configured: {configured}")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"param tiles names a tile twice: {chosen}")
    single = model_choice(cfg, model).single
    return StagePlan(tuple({"tile": tile, "model": single} for tile in chosen))


def ingest_stage(cfg: FoodSecurityConfig, run_date: DateLike) -> StageResult:
    """Generate (generator), locate (directory) or search + download (stac) the year's tiles."""
    from tasks.food_security.ingest import ingest_year

    return StageResult.from_dict(run_staged(cfg, _io(run_date, outputs=_ingested(cfg)),
                                            lambda c: ingest_year(c, run_date)),
                                 outputs=("output", "archive", "parcel_map", "directory"))


def harmonise_stage(cfg: FoodSecurityConfig, run_date: DateLike) -> StageResult:
    """Cloud-masked monthly median composites of every tile.

    On an ``s3://`` data root with a distributed Dask cluster the region tasks read the
    published L2A files on S3 and write the composites there (no scratch root, no shared file
    system: :func:`tasks.food_security.harmonise.run_harmonise_on_s3`); with the synchronous
    scheduler the stage runs through a local scratch root (:func:`run_staged`).
    """
    from tasks.food_security.harmonise import run_harmonise, run_harmonise_on_s3

    if on_s3_workers(cfg):
        return StageResult.from_dict(run_harmonise_on_s3(cfg, run_date), outputs=("output",))
    io = _io(run_date, _ingested(cfg), ["harmonise"])
    return StageResult.from_dict(run_staged(cfg, io, lambda c: run_harmonise(c, run_date)),
                                 outputs=("output",))


def labels_stage(cfg: FoodSecurityConfig, run_date: DateLike) -> StageResult:
    """Rasterised parcel labels with reliable-label selection."""
    from tasks.food_security.labels import run_labels

    io = _io(run_date, [*_ingested(cfg), "harmonise"], ["labels"])
    return StageResult.from_dict(run_staged(cfg, io, lambda c: run_labels(c, run_date)),
                                 outputs=("output", "report"))


def samples_stage(cfg: FoodSecurityConfig, run_date: DateLike) -> StageResult:
    """Pixel time-series samples split by tile."""
    from tasks.food_security.samples import run_samples

    io = _io(run_date, ["harmonise", "labels"], ["samples"])
    return StageResult.from_dict(run_staged(cfg, io, lambda c: run_samples(c, run_date)),
                                 outputs=("output",))


def train_stage(cfg: FoodSecurityConfig, run_date: DateLike, model: str) -> StageResult:
    """Weighted two-phase training of one model (its folder and validation score)."""
    from tasks.food_security.train import train_crop_model

    io = _io(run_date, ["samples"], [f"models/{model}"])
    result = run_staged(cfg, io, lambda c: train_crop_model(c, run_date, model=model))
    return StageResult(outputs={"model_dir": result["model_dir"]},
                       summary={k: result[k] for k in ("model", "monitor", "monitor_value",
                                                       "epochs")})


def predict_stage(
    cfg: FoodSecurityConfig, run_date: DateLike, tile: str, model: str | None = None
) -> StageResult:
    """Crop map COG, quicklook and field instances of one tile (``model``: None = config's)."""
    from tasks.food_security.predict import run_predict

    io = _io(run_date, ["harmonise"], [f"predict/{tile}"], optional=["models"], catalogue=True)
    result = run_staged(cfg, io, lambda c: run_predict(c, run_date, tile=tile, model=model))
    return StageResult(outputs={k: result[k] for k in ("folder", "crop_map", "fields")},
                       summary={k: result[k] for k in ("tile", "model")})


def evaluate_stage(
    cfg: FoodSecurityConfig, run_date: DateLike, model: str | None = ALL_MODELS
) -> StageResult:
    """OA / F1 on the held-out tile and the comparison table of the models ``model`` chose."""
    from tasks.food_security.evaluate import run_evaluate

    models = list(model_choice(cfg, model).models)
    io = _io(run_date, ["harmonise", "labels", "models"], ["evaluate"], catalogue=True)
    return StageResult.from_dict(run_staged(cfg, io,
                                            lambda c: run_evaluate(c, run_date, models=models)),
                                 outputs=("folder", "comparison", "metrics"))


def lucas_stage(cfg: FoodSecurityConfig, run_date: DateLike) -> StageResult:
    """Score the year's crop maps against LUCAS points with the 10 m same-label rule."""
    from tasks.lucas.stages import lucas_stage as evaluate_against_lucas

    io = _io(run_date, ["predict"], ["lucas"])
    return run_staged(cfg, io, lambda c: evaluate_against_lucas(c, run_date))


def rdf_export_stage(cfg: FoodSecurityConfig, run_date: DateLike) -> StageResult:
    """Field instances of every mapped tile -> RDF (GeoSPARQL) for the year's named graph."""
    from tasks.linked_data.stages import rdf_export_stage as export

    return export(cfg, run_date, product="crop_field_instances")


def load_triples_stage(cfg: FoodSecurityConfig, run_date: DateLike) -> StageResult:
    """Load (replace) the year's crop-field graph in the triple store."""
    from tasks.linked_data.stages import load_triples_stage as load

    return load(cfg, run_date, product="crop_field_instances")
