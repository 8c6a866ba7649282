"""Ingest: collect the day's Sentinel-1 EW GRD products into ``{root}/polar/ingest/{day}/``.

Sources (``ingest.source``):

* ``generator``: ``generator.scenes_per_day`` synthetic scenes, seeded by ``(seed, day, k)``,
  with their ground truth (chart and land GeoJSON, truth raster);
* ``directory``: the ``*.SAFE`` folders / ``*.zip`` files of ``ingest.directory`` whose sensing
  start falls on the day (sidecar ``<name>.chart.geojson`` / ``<name>.land.geojson`` are taken
  along when present);
* ``cdse_odata``: a Copernicus Data Space catalogue search and download
  (:mod:`tasks.sentinel1.cdse`).

Products of the wrong mode / type and products outside ``ingest.aoi_bbox`` are skipped and
counted; a day with no usable product raises :class:`NoScenesError`. The folder is replaced
atomically and carries ``manifest.json`` with a ``scenes`` list (paths relative to the folder).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from tasks.config.common import config_hash
from tasks.config.polar import PolarConfig
from tasks.errors import EeflowError
from tasks.sentinel1.cdse import aoi_overlaps, download_product, search_cdse
from tasks.sentinel1.safe import SafeError, open_safe
from tasks.storage import atomic_dir, day_run_key, stage_dir, to_date, write_manifest

log = logging.getLogger(__name__)


class NoScenesError(EeflowError, RuntimeError):
    """No usable scene exists for the day (the message names the day, source and reasons)."""


def scene_seed(seed: int, day: dt.date, index: int) -> int:
    """Stable 63-bit seed of the ``index``-th generated scene of ``day``."""
    digest = hashlib.sha256(f"{seed}:{day.isoformat()}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link files (copy across devices) so re-ingesting large products is cheap."""
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=_link_file)
    else:
        _link_file(src, dst)


def _link_file(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _generate(cfg: PolarConfig, day: dt.date, out: Path) -> list[dict[str, Any]]:
    from tasks.sentinel1.generator import generate_ew_grd_scene

    gen = cfg.ingest.generator
    scenes = []
    for k in range(gen.scenes_per_day):
        seed = scene_seed(cfg.seed, day, k)
        centre = None
        if cfg.ingest.aoi_bbox is not None:
            import numpy as np

            x0, y0, x1, y1 = cfg.ingest.aoi_bbox
            rng = np.random.default_rng(seed)
            centre = (float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1)))
        start = dt.datetime.combine(day, dt.time(4, 0), tzinfo=dt.UTC) + dt.timedelta(
            minutes=97 * k + seed % 600 / 10
        )
        scene = generate_ew_grd_scene(
            out,
            seed=seed,
            start_time=start.replace(microsecond=0),
            lines=gen.lines,
            samples=gen.samples,
            land_fraction=gen.land_fraction,
            enl=gen.equivalent_number_of_looks,
            difficulty=gen.difficulty,
            center_lonlat=centre,
        )
        scenes.append(
            {
                "scene_id": scene.scene_id,
                "product": scene.safe_path.name,
                "chart": scene.chart_path.name,
                "land_mask": scene.land_mask_path.name,
                "truth": scene.truth_raster_path.name,
                "start_time": scene.start_time.isoformat(),
                "source": "generator",
                "seed": seed,
                "class_fractions": scene.class_fractions,
            }
        )
    return scenes


def _check_product(path: Path, cfg: PolarConfig, day: dt.date) -> tuple[Any | None, str | None]:
    """Open a product and return (product, None) or (None, reason it is skipped)."""
    try:
        product = open_safe(path)
        product.require_mode(cfg.ingest.mode).require_product_type(cfg.ingest.product_type)
    except SafeError as err:
        return None, str(err)
    if product.start_time.date() != day:
        return None, "other day"
    if not aoi_overlaps(product.footprint, cfg.ingest.aoi_bbox):
        return None, (
            f"{path.name}: footprint {product.footprint.bounds} does not overlap "
            f"aoi_bbox {cfg.ingest.aoi_bbox}"
        )
    return product, None


def _from_directory(cfg: PolarConfig, day: dt.date, out: Path) -> tuple[list[dict], dict[str, Any]]:
    folder = Path(cfg.ingest.directory or "")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"ingest.directory {folder} does not exist; give a folder with *.SAFE / *.zip products"
        )
    candidates = sorted(p for p in folder.iterdir() if p.suffix in (".SAFE", ".zip"))
    scenes, skipped = [], {"other_day": 0, "outside_aoi": 0, "rejected": []}
    for path in candidates:
        product, reason = _check_product(path, cfg, day)
        if product is None:
            if reason == "other day":
                skipped["other_day"] += 1
            elif "aoi_bbox" in reason:
                skipped["outside_aoi"] += 1
                log.warning("skipping %s", reason)
            else:
                skipped["rejected"].append(reason)
                log.warning("skipping %s", reason)
            continue
        _link_or_copy(path, out / path.name)
        entry = {
            "scene_id": product.scene_id,
            "product": path.name,
            "start_time": product.start_time.isoformat(),
            "source": "directory",
        }
        for key, suffix in (("chart", ".chart.geojson"), ("land_mask", ".land.geojson")):
            sidecar = folder / f"{product.name}{suffix}"
            if sidecar.is_file():
                _link_or_copy(sidecar, out / sidecar.name)
                entry[key] = sidecar.name
        scenes.append(entry)
    return scenes, skipped


def _from_cdse(cfg: PolarConfig, day: dt.date, out: Path) -> tuple[list[dict], dict[str, Any]]:
    records = search_cdse(
        cfg.ingest.odata_url,
        day,
        aoi_bbox=cfg.ingest.aoi_bbox,
        product_type=cfg.ingest.cdse_product_type,
        mode=cfg.ingest.mode,
        max_products=cfg.ingest.max_products,
    )
    scenes, skipped = [], {"other_day": 0, "outside_aoi": 0, "rejected": []}
    for record in records:
        if record.mode != cfg.ingest.mode or record.product_type != cfg.ingest.product_type:
            skipped["rejected"].append(
                f"{record.name}: mode {record.mode}, type {record.product_type}"
            )
            continue
        if not aoi_overlaps(record.footprint, cfg.ingest.aoi_bbox):
            skipped["outside_aoi"] += 1
            continue
        path = download_product(record, out)
        product, reason = _check_product(path, cfg, day)
        if product is None:
            path.unlink(missing_ok=True)
            skipped["rejected"].append(reason)
            continue
        scenes.append(
            {
                "scene_id": product.scene_id,
                "product": path.name,
                "start_time": product.start_time.isoformat(),
                "source": "cdse_odata",
                "catalogue_id": record.id,
            }
        )
    return scenes, skipped


def ingest_day(cfg: PolarConfig, run_date: dt.date | str) -> dict[str, Any]:
    """Collect the day's products into ``{root}/polar/ingest/{day}/`` (replaced atomically).

    Returns:
        ``{"run_key", "output_dir", "source", "n_scenes", "scenes": [...], "skipped": {...}}``
        where each scene has ``scene_id`` and ``product`` (+ ``chart``, ``land_mask``, ``truth``
        for generated scenes), paths relative to ``output_dir``.

    Raises:
        NoScenesError: no usable product for the day (names the day, source and the reasons).

    """
    day = to_date(run_date)
    key = day_run_key(day)
    source = cfg.ingest.source
    out_dir = stage_dir(cfg.resolved_root(), "polar", "ingest", key)
    skipped: dict[str, Any] = {"other_day": 0, "outside_aoi": 0, "rejected": []}
    with atomic_dir(out_dir) as tmp:
        if source == "generator":
            scenes = _generate(cfg, day, tmp)
        elif source == "directory":
            scenes, skipped = _from_directory(cfg, day, tmp)
        else:
            scenes, skipped = _from_cdse(cfg, day, tmp)
        if not scenes:
            where = cfg.ingest.directory if source == "directory" else cfg.ingest.odata_url
            detail = (
                f"generator.scenes_per_day is {cfg.ingest.generator.scenes_per_day}"
                if source == "generator"
                else f"{skipped['other_day']} on other days, {skipped['outside_aoi']} outside "
                f"aoi_bbox {cfg.ingest.aoi_bbox}, {len(skipped['rejected'])} rejected"
                + "".join(f"\n  - {r}" for r in skipped["rejected"])
            )
            raise NoScenesError(
                f"no Sentinel-1 {cfg.ingest.mode} {cfg.ingest.product_type} scene for {key} "
                f"from source {source!r}" + (f" ({where})" if where else "") + f": {detail}"
            )
        write_manifest(
            tmp,
            stage="ingest",
            inputs={"source": source, "directory": cfg.ingest.directory},
            config_hash=config_hash(cfg.ingest),
            counts={
                "scenes": len(scenes),
                "skipped_other_day": skipped["other_day"],
                "skipped_outside_aoi": skipped["outside_aoi"],
                "rejected": len(skipped["rejected"]),
            },
            extra={
                "run_key": key,
                "scenes": scenes,
                "rejected": skipped["rejected"],
                "seed": cfg.seed,
            },
        )
    log.info("ingested %d scene(s) for %s into %s", len(scenes), key, out_dir)
    return {
        "run_key": key,
        "output_dir": str(out_dir),
        "source": source,
        "n_scenes": len(scenes),
        "scenes": scenes,
        "skipped": skipped,
    }
