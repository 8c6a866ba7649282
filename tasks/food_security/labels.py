"""Labels: rasterise the parcel map onto each tile's grid and keep only reliable labels.

Per tile (grid taken from the harmonise output of the same agronomic year):

1. parcels intersecting the tile are rasterised (pixel-centre rule); each parcel's INVEKOS code
   (``ingest.crop_code_column``, default ``SNAR_CODE``; German name ``SNAR_BEZEICHNUNG`` as a
   fallback) is mapped to one of the 16 classes by :mod:`tasks.domain.crop_codes`; unknown
   codes become ``other`` and are counted (``unknown_code_parcels``), never dropped;
2. ``border_buffer``: pixels whose centre is within ``labels.buffer_m`` of the parcel border
   (outside the inward-buffered polygon) are dropped (mixed pixels, geolocation error);
3. ``tiny_parcel``: parcels with fewer than ``labels.min_parcel_pixels`` pixels left are dropped;
4. ``no_observation``: pixels without any valid observation in the year are dropped;
5. ``outlier``: per class (with at least ``outlier_filter.min_class_pixels`` pixels on the tile),
   the NDVI series of a pixel is compared with the class median series month by month as a robust
   z-score ``0.6745 * (ndvi - median) / MAD`` (MAD floored at 0.02); gap-filled months are left
   out; a pixel whose mean |z| exceeds ``outlier_filter.max_robust_z`` is dropped.

``report.json`` gives, per tile, the pixels each rule removed per class. A tile that no parcel
touches raises (``labels.outside_parcel_map: error``) or is written all-unlabelled with a warning
(``empty``).
"""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tasks.config.common import config_hash
from tasks.config.food_security import FoodSecurityConfig, LabelsConfig
from tasks.domain.crop_codes import map_crop_codes
from tasks.domain.crops import CROP_CLASSES
from tasks.errors import EeflowError
from tasks.food_security.schema import NO_LABEL
from tasks.geoparquet import check_geo_columns
from tasks.sentinel2.generator import CROP_NAME_COLUMN, PARCEL_ID_COLUMN, PARCELS_FILE
from tasks.storage import (
    agronomic_year_key,
    atomic_dir,
    atomic_write_json,
    read_manifest,
    stage_dir,
    write_manifest,
    zarr_array,
    zarr_attrs,
)

log = logging.getLogger(__name__)
RULES = ("border_buffer", "tiny_parcel", "no_observation", "outlier")
MAD_FLOOR = 0.02


class OutsideParcelMapError(EeflowError, ValueError):
    """A tile that no parcel of the parcel map touches."""


class UnknownCropCodesError(EeflowError, ValueError):
    """Too many parcels have crop codes missing from the code lists (wrong column or map)."""


def check_unknown_share(tile: str, codes_column: str, n_parcels: int, unknown: int,
                        unknown_codes: dict[str, int], max_share: float) -> None:
    """Raise when more than ``max_share`` of a tile's parcels have unknown crop codes.

    The message lists the ten most frequent unknown codes and what to check.
    """
    if n_parcels == 0 or unknown / n_parcels <= max_share:
        return
    top = sorted(unknown_codes.items(), key=lambda kv: -kv[1])[:10]
    listed = ", ".join(f"{code!r} x{count}" for code, count in top)
    raise UnknownCropCodesError(
        f"tile {tile}: {unknown} of {n_parcels} parcels ({unknown / n_parcels:.0%}) have crop "
        f"codes in column {codes_column!r} that the code lists do not know (more than "
        f"labels.max_unknown_code_share {max_share:.0%}); most frequent: {listed}. Check "
        "ingest.crop_code_column and that the parcel map is an INVEKOS map of the right year, "
        "or extend the code list (tasks/domain/codelists)"
    )


def parcel_map_path(cfg: FoodSecurityConfig, key: str) -> Path:
    """Return the parcel map (GeoParquet / GeoPackage) of agronomic year ``key``."""
    if cfg.ingest.source == "directory":
        assert cfg.ingest.parcel_map is not None  # checked by the config model
        return Path(cfg.ingest.parcel_map.replace("{agronomic_year}", key))
    return stage_dir(cfg.resolved_root(), cfg.use_case, "ingest", key) / PARCELS_FILE


def read_parcel_map(path: Path, code_column: str) -> Any:
    """Read a parcel map and check it has geometries and the crop-code column."""
    import geopandas as gpd

    if not path.is_file():
        raise FileNotFoundError(
            f"parcel map {path} does not exist; run the ingest/generate stage for that year or "
            "set ingest.parcel_map"
        )
    if path.suffix == ".parquet":
        check_geo_columns(path)
    frame = gpd.read_parquet(path) if path.suffix == ".parquet" else gpd.read_file(path)
    if frame.crs is None:
        raise ValueError(f"parcel map {path} has no CRS; set one (INVEKOS: EPSG:31287)")
    if code_column not in frame.columns:
        raise ValueError(
            f"parcel map {path} has no column {code_column!r} (ingest.crop_code_column); "
            f"columns: {list(frame.columns)}"
        )
    return frame


def tile_grid_from_composite(store: Path) -> tuple[str, Any, int, int]:
    """Return (crs, affine transform, height, width) of a harmonise tile store."""
    import zarr
    from affine import Affine

    group = zarr.open_group(str(store), mode="r")
    attrs = zarr_attrs(group)
    height, width = zarr_array(group, "valid_count").shape[1:]
    return attrs["crs"], Affine.from_gdal(*attrs["transform"]), int(height), int(width)


def rasterise_parcels(geometries: list[Any], transform: Any,
                      shape: tuple[int, int]) -> np.ndarray:
    """Return int32 (y, x): position of the parcel containing each pixel centre, -1 outside."""
    from rasterio.features import rasterize

    if not geometries:
        return np.full(shape, -1, dtype=np.int32)
    pairs = [(g, i) for i, g in enumerate(geometries) if g is not None and not g.is_empty]
    if not pairs:
        return np.full(shape, -1, dtype=np.int32)
    return rasterize(pairs, out_shape=shape, transform=transform, fill=-1, dtype="int32",
                     all_touched=False)


def robust_outlier_mask(ndvi: np.ndarray, gap: np.ndarray, class_index: np.ndarray,
                        max_z: float, min_class_pixels: int) -> np.ndarray:
    """Flag temporal-signature outliers per class.

    Args:
        ndvi: float32 (n, month) NDVI series of the candidate pixels.
        gap: bool (n, month), True where the month was gap-filled (ignored).
        class_index: int (n,) class of each pixel.
        max_z: threshold on the mean |robust z| over the observed months.
        min_class_pixels: classes with fewer pixels are not filtered.

    Returns:
        bool (n,), True for outliers.

    """
    outlier = np.zeros(len(class_index), dtype=bool)
    for cls in np.unique(class_index):
        idx = np.flatnonzero(class_index == cls)
        if len(idx) < min_class_pixels:
            continue
        series = np.where(gap[idx], np.nan, ndvi[idx])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # months without data: all-NaN
            median = np.nanmedian(series, axis=0)
            mad = np.nanmedian(np.abs(series - median), axis=0)
        mad = np.where(np.isfinite(mad), np.maximum(mad, MAD_FLOOR), np.nan)
        z = np.abs(0.6745 * (series - median) / mad)
        with np.errstate(invalid="ignore"):
            score = np.nanmean(np.where(np.isfinite(z), z, np.nan), axis=1)
        outlier[idx] = np.nan_to_num(score, nan=0.0) > max_z
    return outlier


def _ndvi_series(store: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return NDVI float32 (month, y, x) and gap_filled bool (month, y, x) of a tile."""
    import zarr

    group = zarr.open_group(str(store), mode="r")
    bands = list(zarr_attrs(group)["bands"])
    refl = zarr_array(group, "reflectance")
    red = np.asarray(refl[:, bands.index("B04")])
    nir = np.asarray(refl[:, bands.index("B08")])
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = (nir - red) / (nir + red)
    return ndvi.astype(np.float32), np.asarray(zarr_array(group, "gap_filled")[:]).astype(bool)


def _outside_parcel_map(
    lcfg: LabelsConfig, tile: str, bounds: Any, crs: str, map_path: Path, frame: Any,
    shape: tuple[int, int], report: dict[str, Any],
) -> dict[str, np.ndarray]:
    """No parcel on the tile: raise, or (``labels.outside_parcel_map: empty``) empty arrays."""
    message = (
        f"tile {tile} (bounds {bounds.bounds} in {crs}) lies entirely outside the parcel map "
        f"{map_path} (bounds {tuple(round(v) for v in frame.total_bounds)})"
    )
    if lcfg.outside_parcel_map == "error":
        raise OutsideParcelMapError(
            message + "; fix the parcel map or set labels.outside_parcel_map: empty"
        )
    log.warning("%s: writing it without labels", message)
    report["outside_parcel_map"] = True
    empty = np.full(shape, NO_LABEL, dtype=np.int16)
    return {"label": empty, "declared_label": empty.copy(),
            "parcel_id": np.full(shape, -1, dtype=np.int64)}


def _map_tile_codes(cfg: FoodSecurityConfig, tile: str, candidates: Any,
                    report: dict[str, Any]) -> Any:
    """Crop classes of the tile's parcels; unknown codes are counted (and bounded) in ``report``."""
    names = candidates[CROP_NAME_COLUMN].tolist() if CROP_NAME_COLUMN in candidates else None
    mapped = map_crop_codes(candidates[cfg.ingest.crop_code_column].tolist(), names)
    if mapped.unknown.any():
        log.warning("tile %s: %d parcels with unknown crop codes %s mapped to 'other'",
                    tile, int(mapped.unknown.sum()), mapped.unknown_codes)
    check_unknown_share(tile, cfg.ingest.crop_code_column, len(mapped.unknown),
                        int(mapped.unknown.sum()), mapped.unknown_codes,
                        cfg.labels.max_unknown_code_share)
    report["unknown_code_parcels"] = int(mapped.unknown.sum())
    report["unknown_codes"] = mapped.unknown_codes
    return mapped


def _count_removed(report: dict[str, Any], rule: str, declared: np.ndarray,
                   mask: np.ndarray) -> None:
    classes, counts = np.unique(declared[mask], return_counts=True)
    report["removed"][rule] = {CROP_CLASSES[c]: int(n) for c, n in zip(classes, counts,
                                                                      strict=True)}


def _reliable_pixels(lcfg: LabelsConfig, geoms: list[Any], transform: Any, position: np.ndarray,
                     declared: np.ndarray, composite: Path, report: dict[str, Any]) -> np.ndarray:
    """Parcel pixels kept as labels after the border, size, observation and outlier rules."""
    shape = position.shape
    inside = position >= 0
    pos = np.maximum(position, 0)
    keep = inside.copy()
    if lcfg.buffer_m > 0:
        inner = rasterise_parcels([g.buffer(-lcfg.buffer_m) for g in geoms], transform, shape)
        border = keep & (inner != position)
        _count_removed(report, "border_buffer", declared, border)
        keep &= ~border
    pixels_per_parcel = np.bincount(position[keep], minlength=len(geoms))
    tiny = keep & (pixels_per_parcel[pos] < lcfg.min_parcel_pixels)
    _count_removed(report, "tiny_parcel", declared, tiny)
    keep &= ~tiny
    ndvi, gap = _ndvi_series(composite)
    rows, cols = np.nonzero(keep)
    series = ndvi[:, rows, cols].T  # (n, month)
    series_gap = gap[:, rows, cols].T
    no_obs = ~np.isfinite(series).any(axis=1) | series_gap.all(axis=1)
    no_obs_mask = np.zeros(shape, dtype=bool)
    no_obs_mask[rows[no_obs], cols[no_obs]] = True
    _count_removed(report, "no_observation", declared, no_obs_mask)
    keep &= ~no_obs_mask
    if lcfg.outlier_filter.enabled:
        ok = ~no_obs
        flagged = robust_outlier_mask(series[ok], series_gap[ok], declared[rows[ok], cols[ok]],
                                      lcfg.outlier_filter.max_robust_z,
                                      lcfg.outlier_filter.min_class_pixels)
        out_mask = np.zeros(shape, dtype=bool)
        out_mask[rows[ok][flagged], cols[ok][flagged]] = True
        _count_removed(report, "outlier", declared, out_mask)
        keep &= ~out_mask
    return keep


def label_tile(cfg: FoodSecurityConfig, tile: str, composite: Path, parcels: Any,
               map_path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
    """Rasterise and select reliable labels of one tile (see module docstring).

    Returns:
        (arrays ``label``/``declared_label``/``parcel_id`` (y, x), report of the tile, grid attrs).

    """
    from shapely.geometry import box

    lcfg = cfg.labels
    crs, transform, height, width = tile_grid_from_composite(composite)
    left, top = transform.c, transform.f
    bounds = box(left, top + transform.e * height, left + transform.a * width, top)
    frame = parcels.to_crs(crs) if str(parcels.crs) != crs else parcels
    candidates = frame.iloc[list(frame.sindex.query(bounds, predicate="intersects"))]
    shape = (height, width)
    report: dict[str, Any] = {
        "parcels": int(len(candidates)),
        "unknown_code_parcels": 0,
        "unknown_codes": {},
        "outside_parcel_map": False,
        "removed": {rule: {} for rule in RULES},
        "kept": {},
        "declared_pixels": {},
    }
    grid_attrs = {"crs": crs, "transform": list(transform.to_gdal()), "tile": tile}
    if len(candidates) == 0:
        arrays = _outside_parcel_map(lcfg, tile, bounds, crs, map_path, frame, shape, report)
        return arrays, report, grid_attrs
    mapped = _map_tile_codes(cfg, tile, candidates, report)
    ids = (candidates[PARCEL_ID_COLUMN].to_numpy(np.int64) if PARCEL_ID_COLUMN in candidates
           else candidates.index.to_numpy(np.int64))
    geoms = list(candidates.geometry)
    position = rasterise_parcels(geoms, transform, shape)
    inside = position >= 0
    pos = np.maximum(position, 0)
    declared = np.where(inside, mapped.class_index[pos], NO_LABEL).astype(np.int16)
    parcel_id = np.where(inside, ids[pos], -1).astype(np.int64)
    keep = _reliable_pixels(lcfg, geoms, transform, position, declared, composite, report)
    label = np.where(keep, declared, NO_LABEL).astype(np.int16)
    for key, arr in (("kept", label), ("declared_pixels", declared)):
        classes, counts = np.unique(arr[arr >= 0], return_counts=True)
        report[key] = {CROP_CLASSES[c]: int(n) for c, n in zip(classes, counts, strict=True)}
    return {"label": label, "declared_label": declared, "parcel_id": parcel_id}, report, grid_attrs


def write_label_store(path: Path, arrays: dict[str, np.ndarray], attrs: dict[str, Any],
                      chunk: int, key: str) -> None:
    """Write a tile's label arrays as zarr v3 (y, x) with grid attributes."""
    import xarray as xr
    from affine import Affine

    transform = Affine.from_gdal(*attrs["transform"])
    height, width = arrays["label"].shape
    ds = xr.Dataset(
        {name: (("y", "x"), arr) for name, arr in arrays.items()},
        coords={
            "y": transform.f + transform.e * (np.arange(height) + 0.5),
            "x": transform.c + transform.a * (np.arange(width) + 0.5),
        },
        attrs={**attrs, "agronomic_year": key, "class_names": list(CROP_CLASSES),
               "no_label": NO_LABEL},
    )
    encoding = {name: {"chunks": (min(chunk, height), min(chunk, width))} for name in arrays}
    ds.to_zarr(path, mode="w", zarr_format=3, consolidated=False, encoding=encoding)


def run_labels(cfg: FoodSecurityConfig, run_date: dt.date | str) -> dict[str, Any]:
    """Make reliable labels of every configured tile for the agronomic year of ``run_date``.

    Reads ``harmonise/{agronomic_year}/{tile}.zarr`` (grid and NDVI) and the year's parcel map;
    writes ``labels/{agronomic_year}/{tile}.zarr`` and ``report.json``.

    Returns:
        ``{"output", "report", "agronomic_year", "tiles": {tile: {"path", "labelled_pixels",
        "unknown_code_parcels", "outside_parcel_map"}}}``.

    """
    key = agronomic_year_key(run_date)
    root = cfg.resolved_root()
    harmonised = stage_dir(root, cfg.use_case, "harmonise", key)
    read_manifest(harmonised)
    map_path = parcel_map_path(cfg, key)
    parcels = read_parcel_map(map_path, cfg.ingest.crop_code_column)
    final = stage_dir(root, cfg.use_case, "labels", key)
    reports: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    with atomic_dir(final) as tmp:
        for tile in cfg.tile_ids():
            composite = harmonised / f"{tile}.zarr"
            if not composite.exists():
                raise FileNotFoundError(
                    f"{composite} is missing: tile {tile} was not harmonised for {key}; "
                    "re-run the harmonise stage with the same config"
                )
            arrays, report, attrs = label_tile(cfg, tile, composite, parcels, map_path)
            write_label_store(tmp / f"{tile}.zarr", arrays, attrs, cfg.harmonise.chunk, key)
            reports[tile] = report
            summary[tile] = {
                "path": str(final / f"{tile}.zarr"),
                "labelled_pixels": int(sum(report["kept"].values())),
                "unknown_code_parcels": report["unknown_code_parcels"],
                "outside_parcel_map": report["outside_parcel_map"],
            }
            log.info("labels %s %s: %s", key, tile, summary[tile])
        payload = {"agronomic_year": key, "parcel_map": str(map_path), "rules": list(RULES),
                   "settings": cfg.labels.model_dump(mode="json"), "tiles": reports}
        atomic_write_json(tmp / "report.json", payload)
        write_manifest(
            tmp, stage="labels", inputs={"harmonise": str(harmonised), "parcel_map": str(map_path)},
            config_hash=config_hash(cfg),
            counts={t: s["labelled_pixels"] for t, s in summary.items()},
            extra={"agronomic_year": key},
        )
    return {"output": str(final), "report": str(final / "report.json"), "agronomic_year": key,
            "tiles": summary}
