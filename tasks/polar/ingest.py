"""Ingest: collect the day's Sentinel-1 EW GRD products into ``{root}/polar/ingest/{day}/``.

Sources (``ingest.source``):

* ``generator``: ``generator.scenes_per_day`` synthetic scenes, seeded by ``(seed, day, k)``,
  with their ground truth (chart and land GeoJSON, truth raster);
* ``directory``: the ``*.SAFE`` folders / ``*.zip`` files of ``ingest.directory`` whose sensing
  start falls on the day (sidecar ``<name>.chart.geojson`` / ``<name>.land.geojson`` are taken
  along when present);
* ``cdse_odata``: an OData catalogue search (``ingest.catalogue.provider`` cop_dataspace or
  creodias) and download;
* ``stac``: a STAC API search (earth_search, cdse_stac) and download.

The catalogue sources search by area (``catalogue.area`` WKT / GeoJSON, else ``aoi_bbox``), the
day, product type, mode, polarisations, orbit (:func:`search_day`) and fetch through
:mod:`tasks.ingestion` (resume, retries, checksum, safe unzip); the manifest's ``fetched`` list
records what was downloaded, never the token.

Products of the wrong mode / type and products outside ``ingest.aoi_bbox`` are skipped and
counted; a day with no usable product raises :class:`NoScenesError`. The folder is replaced
atomically and carries ``manifest.json`` with a ``scenes`` list (paths relative to the folder).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

from tasks.config.common import config_hash
from tasks.config.polar import PolarConfig
from tasks.errors import EeflowError
from tasks.ingestion.availability import CATALOGUE_SOURCES, Availability
from tasks.ingestion.products import CatalogueProduct
from tasks.sentinel1.cdse import aoi_overlaps
from tasks.sentinel1.safe import SafeError, open_safe
from tasks.storage import atomic_dir, day_run_key, stage_location, to_date, write_manifest

log = logging.getLogger(__name__)


class NoScenesError(EeflowError, RuntimeError):
    """No usable scene exists for the day (the message names the day, source and reasons)."""


class SkippedProducts(TypedDict):
    """Products of the day that were not ingested, by reason."""

    other_day: int
    outside_aoi: int
    rejected: list[str]


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


def _from_directory(
    cfg: PolarConfig, day: dt.date, out: Path
) -> tuple[list[dict], SkippedProducts]:
    folder = Path(cfg.ingest.directory or "")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"ingest.directory {folder} does not exist; give a folder with *.SAFE / *.zip products"
        )
    candidates = sorted(p for p in folder.iterdir() if p.suffix in (".SAFE", ".zip"))
    scenes: list[dict] = []
    skipped: SkippedProducts = {"other_day": 0, "outside_aoi": 0, "rejected": []}
    for path in candidates:
        product, reason = _check_product(path, cfg, day)
        if product is None:
            assert reason is not None  # (None, reason) or (product, None)
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


def search_area(cfg: PolarConfig) -> Any | None:
    """Return the search area (shapely, lon/lat): ``catalogue.area``, else ``aoi_bbox``, or None."""
    from shapely.geometry import box

    from tasks.config.ingestion import parse_area

    if cfg.ingest.catalogue.area:
        return parse_area(cfg.ingest.catalogue.area)
    return box(*cfg.ingest.aoi_bbox) if cfg.ingest.aoi_bbox is not None else None


def describe_area(cfg: PolarConfig) -> str:
    """Short text of the search area for messages (bbox of the geometry, or 'anywhere')."""
    area = search_area(cfg)
    if area is None:
        return "anywhere (no ingest.aoi_bbox / catalogue.area)"
    return "bbox (" + ", ".join(f"{v:.3f}" for v in area.bounds) + ")"


def _polarisations_ok(wanted: Sequence[str], have: Any) -> bool:
    if have is None:
        return True
    text = have if isinstance(have, str) else "&".join(have)
    found = set(text.replace("+", "&").replace(" ", "&").split("&"))
    return set(wanted) <= found


def search_day(cfg: PolarConfig, day: dt.date) -> tuple[list[CatalogueProduct], list[str]]:
    """Search the configured catalogue for the day's scenes over the area.

    Returns:
        (products that fit mode / type / polarisations / area / day, reasons for the others).

    """
    ing = cfg.ingest
    catalogue = ing.catalogue
    area = search_area(cfg)
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)
    if ing.source == "cdse_odata":
        from tasks.ingestion.odata import ODataQuery, search_odata

        query = ODataQuery(
            collection="SENTINEL-1", start=start, end=end,
            area_wkt=area.wkt if area is not None else None,
            product_type=ing.cdse_product_type, mode=ing.mode,
            polarisation="&".join(ing.polarisations) if len(ing.polarisations) > 1 else None,
            orbit_direction=catalogue.orbit_direction, relative_orbit=catalogue.relative_orbit,
        )
        found = search_odata(catalogue, query)
    else:
        from tasks.ingestion.stac import search_stac

        found = search_stac(catalogue, collections=catalogue.collections or ["sentinel-1-grd"],
                            start=start, end=end, area=area)
    products, rejected = [], []
    for product in found:
        props = product.properties
        mode = props.get("mode") or props.get("sar:instrument_mode")
        ptype = props.get("product_type") or props.get("sar:product_type")
        pols = props.get("polarisationChannels") or props.get("sar:polarizations")
        if mode not in (None, ing.mode) or (ptype and not str(ptype).startswith(ing.product_type)):
            rejected.append(f"{product.name}: mode {mode}, type {ptype} (want {ing.mode} "
                            f"{ing.product_type})")
        elif not _polarisations_ok(ing.polarisations, pols):
            rejected.append(f"{product.name}: polarisations {pols} (want {ing.polarisations})")
        elif product.start_time.astimezone(dt.UTC).date() != day:
            rejected.append(f"{product.name}: sensed {product.start_time:%Y-%m-%d}, not {day}")
        elif area is not None and not product.footprint.intersects(area):
            rejected.append(f"{product.name}: footprint outside the search area")
        elif not product.online:
            rejected.append(f"{product.name}: offline in the catalogue (not downloadable now)")
        else:
            if "Product" in {a.key for a in product.assets}:  # CDSE STAC: the zip asset
                product = dataclasses.replace(
                    product, assets=tuple(a for a in product.assets if a.key == "Product"))
            products.append(product)
    return products, rejected


def check_polar_day(cfg: PolarConfig, day: dt.date) -> Availability:
    """Search the polar catalogue once for ``day``; no search for non-catalogue sources."""
    area = describe_area(cfg)
    if cfg.ingest.source not in CATALOGUE_SOURCES:
        return Availability(day.isoformat(), area, found=-1,
                            names=(f"source {cfg.ingest.source!r} needs no waiting",))
    products, rejected = search_day(cfg, day)
    return Availability(day.isoformat(), area, len(products),
                        tuple(p.name for p in products), tuple(rejected))


def _from_catalogue(
    cfg: PolarConfig, day: dt.date, out: Path
) -> tuple[list[dict], SkippedProducts, list[dict]]:
    from tasks.ingestion.credentials import access_token
    from tasks.ingestion.fetch import fetch_product

    catalogue = cfg.ingest.catalogue
    token = access_token(catalogue)  # fails before the search when a token is needed and unset
    products, rejected = search_day(cfg, day)
    scenes, fetched = [], []
    skipped: SkippedProducts = {"other_day": 0, "outside_aoi": 0, "rejected": rejected}
    for product in products[: cfg.ingest.max_products]:
        entry = fetch_product(product, out, catalogue, token=token)
        fetched.append(entry)
        path = out / entry["path"]
        checked, reason = _check_product(path, cfg, day)
        if checked is None:
            _remove_path(path)
            skipped["rejected"].append(f"{product.name}: {reason}")
            continue
        scenes.append(
            {
                "scene_id": checked.scene_id,
                "product": path.name,
                "start_time": checked.start_time.isoformat(),
                "source": cfg.ingest.source,
                "catalogue_id": product.id,
                "provider": catalogue.provider,
            }
        )
    return scenes, skipped, fetched


def _remove_path(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


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
    out_dir = stage_location(cfg.storage_root(), "polar", "ingest", key)  # path or s3:// URL
    skipped: SkippedProducts = {"other_day": 0, "outside_aoi": 0, "rejected": []}
    fetched: list[dict[str, Any]] = []
    with atomic_dir(out_dir) as tmp:
        if source == "generator":
            scenes = _generate(cfg, day, tmp)
        elif source == "directory":
            scenes, skipped = _from_directory(cfg, day, tmp)
        else:
            scenes, skipped, fetched = _from_catalogue(cfg, day, tmp)
        if not scenes:
            where = (cfg.ingest.directory if source == "directory"
                     else cfg.ingest.catalogue.resolved_search_url() if source != "generator"
                     else None)
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
            inputs={
                "source": source,
                "directory": cfg.ingest.directory,
                **({"provider": cfg.ingest.catalogue.provider,
                    "search_url": cfg.ingest.catalogue.resolved_search_url()}
                   if source in ("cdse_odata", "stac") else {}),
            },
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
                "fetched": fetched,
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
