"""The polar pipelines as uniform ``stage(cfg, run_date) -> StageResult`` calls.

Airflow's ``EeflowStageOperator`` and the ``eeflow polar`` CLI both call these, so a DAG run and a
command-line run execute the same code. Each stage finds its inputs in the layout
``{root}/polar/{stage}/{run_key}/`` written by the stage before it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from tasks.config.common import config_hash
from tasks.config.polar import PolarConfig
from tasks.fs import join as fs_join
from tasks.fs import s3_filesystem
from tasks.stage_result import StageResult
from tasks.staging import StageIO, on_s3_workers, run_staged, units
from tasks.storage import (
    atomic_dir,
    atomic_write_json,
    day_run_key,
    download_stage_dir,
    output_lock,
    read_manifest,
    resolve_stage_dir,
    stage_dir,
    stage_location,
    to_date,
    write_manifest,
)

log = logging.getLogger(__name__)

DateLike = dt.date | dt.datetime | str

#: Keys of the science functions' results that name an output (file or folder); the rest of a
#: result is its summary.
OUTPUT_KEYS = ("output_dir", "dataset_dir", "model_dir", "evaluation_dir", "png", "out_dir",
               "published_dir", "charts")


def _result(payload: dict[str, Any]) -> StageResult:
    return StageResult.from_dict(payload, outputs=OUTPUT_KEYS)


def _day_dir(cfg: PolarConfig, stage: str, run_date: DateLike) -> Path:
    return stage_dir(cfg.resolved_root(), "polar", stage, day_run_key(run_date))


def _zarrs(cfg: PolarConfig, stage: str, run_date: DateLike) -> list[Path]:
    folder = _day_dir(cfg, stage, run_date)
    found = sorted(folder.glob("*.zarr"))
    if not found:
        raise FileNotFoundError(
            f"no {stage} output for {day_run_key(run_date)} in {folder}; "
            f"run the {stage} stage for that day first"
        )
    return found


def ingest_stage(cfg: PolarConfig, run_date: DateLike) -> StageResult:
    """Find (or generate) the day's EW GRD scenes into ``polar/ingest/{day}``."""
    from tasks.polar.ingest import ingest_day

    return _result(ingest_day(cfg, to_date(run_date)))


def harmonise_stage(cfg: PolarConfig, run_date: DateLike) -> StageResult:
    """Calibrate, denoise, multilook the day's scenes into ``polar/harmonise/{day}``."""
    from tasks.polar.harmonise import run_harmonise

    return _result(run_harmonise(cfg, to_date(run_date)))


def labels_stage(cfg: PolarConfig, run_date: DateLike) -> StageResult:
    """Rasterise the day's ice-chart polygons into ``polar/labels/{day}``."""
    from tasks.polar.labels import run_labels

    io = StageIO(inputs=units("polar", day_run_key(run_date), "ingest", "harmonise"),
                 outputs=units("polar", day_run_key(run_date), "labels"))
    return _result(run_staged(cfg, io, lambda c: run_labels(c, to_date(run_date))))


def patches_stage(cfg: PolarConfig, run_date: DateLike) -> StageResult:
    """Extract the versioned training set from the day's harmonised scenes and labels.

    On an ``s3://`` data root with a distributed Dask cluster the tasks read the published
    scenes and labels on S3 and write the training set there (:func:`_patches_on_s3`); with the
    synchronous scheduler the stage runs through a local scratch root (:func:`run_staged`).
    """
    if on_s3_workers(cfg):
        return _patches_on_s3(cfg, run_date)
    io = StageIO(inputs=units("polar", day_run_key(run_date), "harmonise", "labels"),
                 outputs=(f"polar/patches/{cfg.patches.dataset_version}",))
    return run_staged(cfg, io, lambda c: _patches(c, run_date))


def _patches(cfg: PolarConfig, run_date: DateLike) -> StageResult:
    from tasks.polar.patches import run_patches

    scenes = _zarrs(cfg, "harmonise", run_date)
    labels = [_day_dir(cfg, "labels", run_date) / s.name for s in scenes]
    missing = [str(p) for p in labels if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"labels missing for harmonised scenes: {missing}; run labels first"
        )
    return _result(run_patches(cfg, scenes, labels))


def _published(cfg: PolarConfig, stage: str, run_date: DateLike) -> str:
    """Return the ``s3://`` URL of the published version of the day's ``stage`` output.

    Raises FileNotFoundError naming the URL and the stage to run when none is published.
    """
    day = day_run_key(run_date)
    final = stage_location(cfg.storage_root(), "polar", stage, day)
    try:
        return str(resolve_stage_dir(final))
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"no {stage} output for {day} at {final}: run the {stage} stage for that day first "
            f"(on the same s3:// data_root); {err}") from err


def _patches_on_s3(cfg: PolarConfig, run_date: DateLike) -> StageResult:
    """:func:`patches_stage` with the Dask tasks reading and writing S3 (nothing downloaded)."""
    from tasks.polar.patches import run_patches

    harmonised = _published(cfg, "harmonise", run_date)
    labels_dir = _published(cfg, "labels", run_date)
    fs = s3_filesystem()
    scenes = sorted(f"s3://{entry['name']}" for entry in fs.ls(harmonised, detail=True)
                    if entry.get("type") == "directory" and entry["name"].endswith(".zarr"))
    if not scenes:
        raise FileNotFoundError(
            f"no harmonised scene (*.zarr) in {harmonised}; run the harmonise stage for "
            f"{day_run_key(run_date)} first")
    labels = [fs_join(labels_dir, s.rsplit("/", 1)[-1]) for s in scenes]
    missing = [url for url in labels if not fs.exists(fs_join(url, "zarr.json"))]
    if missing:
        raise FileNotFoundError(
            f"labels missing for harmonised scenes: {missing}; run labels first")
    return _result(run_patches(cfg, scenes, labels))


def train_stage(cfg: PolarConfig, run_date: DateLike) -> StageResult:
    """Train the configured model on the configured training-set version and patch size.

    On an ``s3://`` data root the training set is downloaded and the new model folder
    (``polar/models/{model}_{patch}_{scheme}_{timestamp}``) is published there.
    """
    io = StageIO(inputs=(f"polar/patches/{cfg.patches.dataset_version}",),
                 new_under=("polar/models",))
    return run_staged(cfg, io, _train)


def _train(cfg: PolarConfig) -> StageResult:
    from tasks.polar.patches import dataset_path
    from tasks.polar.train import train_model

    dataset = dataset_path(cfg, cfg.train.patch_size)
    if not dataset.exists():
        raise FileNotFoundError(
            f"training set {dataset} does not exist; run the patches stage with "
            f"patches.dataset_version={cfg.patches.dataset_version} and sizes including "
            f"{cfg.train.patch_size}"
        )
    result = train_model(cfg, dataset)
    return _result({k: v for k, v in result.items() if _is_small(v)})


def evaluate_stage(
    cfg: PolarConfig, run_date: DateLike, model_dir: str | None = None
) -> StageResult:
    """Evaluate a trained model (default: the latest) on the validation part of its training set.

    The evaluation is also entered in the STAC catalogue (collection ``model-evaluations``).
    """
    from tasks.polar.evaluate import evaluate_model
    from tasks.polar.patches import dataset_path
    from tasks.polar.train import latest_model
    from tasks.stac.products import catalogue_evaluation

    model = Path(model_dir) if model_dir else latest_model(cfg.resolved_root())
    result = evaluate_model(model, dataset_path(cfg, cfg.train.patch_size), cfg=cfg)
    catalogue_evaluation(cfg.resolved_root(), "polar", model.name,
                         Path(result["evaluation_dir"]), f"polar_{model.name}_evaluation")
    return _result(result)


def predict_stage(cfg: PolarConfig, run_date: DateLike) -> StageResult:
    """Dense inference over the day's harmonised scenes into ``polar/predict/{day}``."""
    from tasks.polar.predict import run_predict

    return _result(run_predict(cfg, to_date(run_date)))  # the model: what predict.model names


def _chart_products(folder: Path, source: str | Path) -> tuple[list[Path], list[Path]]:
    """List the predict output's products in ``folder`` (a local copy of ``source``) and its charts.

    Raises FileNotFoundError naming ``source`` when it holds no chart GeoTIFF.
    """
    products = sorted(
        p for p in folder.iterdir()
        if p.suffix in {".tif", ".png", ".geojson", ".parquet", ".json"}
    )
    charts = [p for p in products if p.suffix == ".tif"]
    if not charts:
        raise FileNotFoundError(
            f"{source} holds no chart GeoTIFF; the predict stage did not finish"
        )
    return products, charts


def publish_stage(cfg: PolarConfig, run_date: DateLike) -> StageResult:
    """Publish the day's chart: copy COG, quicklook and polygons to ``polar/published/{day}``.

    Polygons are RFC 7946 GeoJSON (CRS84) plus GeoParquet in the chart CRS. Also updates
    ``polar/published/latest.json`` and the STAC catalogue (``{root}/catalogue``, collection
    ``ice-charts``: the day's items replaced). The day's previous publication is replaced in one
    rename, so it stays in place if this step fails. A chart cut to a requested region (predict
    stage, :mod:`tasks.region`) is published as cut; the manifest repeats the region.
    """
    from tasks.stac.products import catalogue_ice_charts

    if cfg.is_remote_root():
        return _publish_stage_s3(cfg, run_date)
    source = _day_dir(cfg, "predict", run_date)
    manifest = read_manifest(source)
    day = day_run_key(run_date)
    target = _day_dir(cfg, "published", run_date)
    products, charts = _chart_products(source, source)
    model = manifest.get("model") or manifest.get("model_dir")
    with atomic_dir(target) as tmp:
        for product in products:
            if product.name != "manifest.json":
                shutil.copy2(product, tmp / product.name)
        write_manifest(
            tmp,
            stage="publish",
            inputs=[str(source)],
            config_hash=config_hash(cfg),
            counts={"charts": len(charts)},
            extra={"model": model,
                   **({"region": manifest["region"]} if "region" in manifest else {})},
        )
    latest = update_latest(target.parent / "latest.json", day, target)
    catalogue = catalogue_ice_charts(
        cfg.resolved_root(), day, target, [target / c.name for c in charts],
        model=Path(str(model)).name if model else None,
    )
    log.info("published %d chart(s) for %s in %s", len(charts), day, target)
    return StageResult(
        outputs={"published_dir": str(target), "charts": [str(target / c.name) for c in charts]},
        summary={"latest_day": latest, "stac_items": catalogue["items"]},
    )


def _publish_stage_s3(cfg: PolarConfig, run_date: DateLike) -> StageResult:
    """:func:`publish_stage` on an ``s3://`` data root.

    The predict output's published version is downloaded, its products uploaded and published as
    ``polar/published/{day}`` (pointer last, :func:`tasks.storage.atomic_dir`), then
    ``polar/published/latest.json`` and the STAC catalogue ``{root}/catalogue`` are updated
    (:func:`_catalogue_ice_charts_s3`). S3 has no lock: two publishes finishing together are
    last-writer-wins for ``latest.json`` and ``collection.json`` (the next publish repairs it).
    """
    import tempfile

    root = str(cfg.storage_root())
    day = day_run_key(run_date)
    source = str(stage_location(root, "polar", "predict", day))
    target = str(stage_location(root, "polar", "published", day))
    manifest = read_manifest(source)
    with tempfile.TemporaryDirectory(prefix="eeflow-publish-") as scratch:
        local = download_stage_dir(source, Path(scratch) / "predict")
        products, charts = _chart_products(local, source)
        model = manifest.get("model") or manifest.get("model_dir")
        # the previous version is kept until the next publish: the STAC items name it until
        # they are rewritten below
        with atomic_dir(target, keep_versions=2) as tmp:
            for product in products:
                if product.name != "manifest.json":
                    shutil.copy2(product, tmp / product.name)
            write_manifest(
                tmp,
                stage="publish",
                inputs=[source],
                config_hash=config_hash(cfg),
                counts={"charts": len(charts)},
                extra={"model": model,
                       **({"region": manifest["region"]} if "region" in manifest else {})},
            )
        latest = update_latest_s3(f"{root}/polar/published/latest.json", day, target)
        catalogue = _catalogue_ice_charts_s3(
            root, day, target, local, [c.name for c in charts],
            model=Path(str(model)).name if model else None, scratch=Path(scratch) / "stac",
        )
    log.info("published %d chart(s) for %s in %s", len(charts), day, target)
    return StageResult(
        outputs={"published_dir": target, "charts": [f"{target}/{c.name}" for c in charts]},
        summary={"latest_day": latest, "stac_items": catalogue["items"]},
    )


def update_latest_s3(latest_json: str, day: str, folder: str) -> str:
    """:func:`update_latest` for an ``s3://`` ``latest.json`` (one PUT; no lock on S3)."""
    fs = s3_filesystem()
    current: str | None = None
    try:
        current = str(json.loads(fs.cat_file(latest_json))["day"])
    except FileNotFoundError:
        pass
    except (ValueError, KeyError, TypeError):
        log.warning("%s is not readable; rewriting it for %s", latest_json, day)
    if current is not None and current > day:
        log.info("%s stays on %s (newer than the re-published %s)", latest_json, current, day)
        return current
    fs.pipe_file(latest_json, json.dumps({"day": day, "path": folder}, indent=2, sort_keys=True,
                                         default=str).encode(), ContentType="application/json")
    return day


def _catalogue_ice_charts_s3(root: str, day: str, target: str, products: Path,
                             charts: list[str], model: str | None, scratch: Path
                             ) -> dict[str, Any]:
    """Enter a day published on S3 in the S3 STAC catalogue ``{root}/catalogue``.

    The catalogue is rebuilt in ``scratch`` (a local mirror of the data root) by
    :func:`tasks.stac.products.catalogue_ice_charts`, with the products placed at the published
    version's key so the items' relative asset hrefs resolve on S3; the ``file://`` self links of
    the mirror become ``s3://`` URLs. The day's items go up first, then ``collection.json`` and
    ``catalog.json``; items of the day no longer published are deleted.
    """
    from tasks.stac.catalogue import CATALOGUE_DIR
    from tasks.stac.products import catalogue_ice_charts

    fs = s3_filesystem()
    version = str(resolve_stage_dir(target))
    mirror = scratch / version[len(root) + 1:]
    mirror.mkdir(parents=True)
    for name in os.listdir(products):
        shutil.copy2(products / name, mirror / name)
    remote_catalogue = f"{root}/{CATALOGUE_DIR}"
    key_prefix = remote_catalogue[len("s3://"):] + "/"
    # what the rebuild reads: the ice-charts items and every collection.json (catalog.json lists
    # the collections); other collections' items stay on S3 untouched
    existing = [
        key for key in (sorted(fs.find(remote_catalogue)) if fs.exists(remote_catalogue) else [])
        if key[len(key_prefix):].startswith("ice-charts/")
        or key[len(key_prefix):].endswith("/collection.json")
    ]
    local_catalogue = scratch / CATALOGUE_DIR
    if existing:
        copies = [local_catalogue / k[len(key_prefix):] for k in existing]
        for copy in copies:
            copy.parent.mkdir(parents=True, exist_ok=True)
        fs.get(existing, [str(c) for c in copies])
    result = catalogue_ice_charts(scratch, day, mirror, [mirror / c for c in charts], model=model)
    local_uri = scratch.resolve().as_uri()
    written = [Path(p) for p in result["items"]]
    upload = [*written, Path(result["collection"]), Path(result["catalog"])]
    for path in upload:
        path.write_text(path.read_text().replace(local_uri, root))
    remote = [f"{root}/{p.resolve().relative_to(scratch.resolve()).as_posix()}" for p in upload]
    day_items = f"{remote_catalogue}/ice-charts/{day}"
    stale = [k for k in existing if k.startswith(day_items[len("s3://"):] + "/")
             and f"s3://{k}" not in remote]
    for path, url in zip(upload, remote, strict=True):  # items, then collection, then catalog
        fs.put_file(str(path), url)
    if stale:
        fs.rm(stale)
    return {**result, "catalog": remote[-1], "collection": remote[-2],
            "items": remote[:len(written)]}


def update_latest(latest_json: Path, day: str, folder: Path) -> str:
    """Point ``latest.json`` at ``day`` unless it already names a newer day; return its day.

    Re-running an older day re-publishes that day but leaves "latest" on the newest one. The
    read-compare-write runs under the output lock, so two publishes finishing together cannot
    leave the older day in place. An unreadable ``latest.json`` is rewritten.
    """
    with output_lock(latest_json):
        current: str | None = None
        if latest_json.is_file():
            try:
                current = str(json.loads(latest_json.read_text())["day"])
            except (ValueError, KeyError, TypeError):
                log.warning("%s is not readable; rewriting it for %s", latest_json, day)
        if current is not None and current > day:
            log.info("%s stays on %s (newer than the re-published %s)", latest_json, current, day)
            return current
        atomic_write_json(latest_json, {"day": day, "path": str(folder)})
        return day


def _is_small(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | type(None) | dict | list)


def daily_ice_chart(cfg: PolarConfig, run_date: DateLike) -> StageResult:
    """Run the daily chart pipeline: ingest -> harmonise -> predict -> publish -> RDF -> store."""
    from tasks.linked_data.stages import load_triples_stage, rdf_export_stage

    return StageResult(summary={
        "ingest": ingest_stage(cfg, run_date).as_dict(),
        "harmonise": harmonise_stage(cfg, run_date).as_dict(),
        "predict": predict_stage(cfg, run_date).as_dict(),
        "publish": publish_stage(cfg, run_date).as_dict(),
        "rdf_export": rdf_export_stage(cfg, run_date, "ice_chart").as_dict(),
        "load_triples": load_triples_stage(cfg, run_date, "ice_chart").as_dict(),
    })


def training_pipeline(cfg: PolarConfig, run_date: DateLike) -> StageResult:
    """Run ingest -> harmonise -> labels -> patches -> train -> evaluate for one day's scenes."""
    result: dict[str, StageResult] = {
        "ingest": ingest_stage(cfg, run_date),
        "harmonise": harmonise_stage(cfg, run_date),
        "labels": labels_stage(cfg, run_date),
        "patches": patches_stage(cfg, run_date),
    }
    result["train"] = train_stage(cfg, run_date)
    result["evaluate"] = evaluate_stage(cfg, run_date, result["train"].get("model_dir"))
    return StageResult(summary={name: stage.as_dict() for name, stage in result.items()})
