"""Labels: rasterise ice-chart polygons onto the harmonised scene grid.

A chart is a vector file (GeoJSON from the generator, or any OGR format) of polygons with an
``ice_class`` property holding a code of ``ice_classes.csv`` (1 water ... 5 deformed). The output
(:mod:`tasks.polar.schema`) is ``label`` (five-class code, 0 = no label / land / no data) and
``label_binary`` (0 = no label, 1 = water, 2 = ice, from the ``binary_code`` column), on the same
grid and with the same attributes as the harmonised scene.
"""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tasks.config.common import config_hash
from tasks.config.polar import PolarConfig
from tasks.domain.ice import ice_classes
from tasks.polar.schema import (
    LABEL_BINARY_VAR,
    LABEL_VAR,
    LAND_MASK_VAR,
    NO_LABEL,
    VALID_MASK_VAR,
)
from tasks.storage import atomic_dir, day_run_key, read_manifest, stage_dir, write_manifest

log = logging.getLogger(__name__)

CLASS_PROPERTY = "ice_class"


def binary_lookup() -> np.ndarray:
    """Lookup table five-class code -> ``label_binary`` (0 no label, 1 water, 2 ice)."""
    table = np.zeros(256, dtype=np.uint8)
    for c in ice_classes():
        table[c.code] = c.binary_code + 1
    return table


def _grid_of(like: Any) -> tuple[str, Any, tuple[int, int]]:
    from affine import Affine

    for key in ("crs", "transform"):
        if key not in like.attrs:
            raise ValueError(
                f"harmonised dataset has no '{key}' attribute; it must follow tasks/polar/schema.py"
            )
    shape = (like.sizes["y"], like.sizes["x"])
    return like.attrs["crs"], Affine.from_gdal(*like.attrs["transform"]), shape


def rasterise_chart(chart_geojson: str | Path, like_dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise chart polygons onto the grid of a harmonised dataset.

    Args:
        chart_geojson: vector file with polygons and an integer ``ice_class`` property (any CRS
            declared in the file).
        like_dataset: harmonised ``xarray.Dataset`` (``crs``, ``transform`` attributes; optional
            ``land_mask`` / ``valid_mask`` variables, whose 1 / 0 pixels get label 0).

    Returns:
        ``(label, label_binary)``: uint8 arrays ``(y, x)``.

    Raises:
        ValueError: unreadable file, no CRS, missing ``ice_class`` or unknown codes.

    """
    import geopandas as gpd
    from rasterio import features

    crs, transform, shape = _grid_of(like_dataset)
    try:
        chart = gpd.read_file(chart_geojson)
    except Exception as err:  # pyogrio raises several types for unreadable files
        raise ValueError(f"chart {chart_geojson}: cannot be read as a vector file: {err}") from err
    if CLASS_PROPERTY not in chart.columns:
        raise ValueError(
            f"chart {chart_geojson}: no '{CLASS_PROPERTY}' property; columns: {list(chart.columns)}"
        )
    if chart.crs is None:
        raise ValueError(f"chart {chart_geojson}: has no CRS")
    codes = {c.code for c in ice_classes()}
    values = chart[CLASS_PROPERTY]
    if values.isna().any():
        raise ValueError(
            f"chart {chart_geojson}: {int(values.isna().sum())} polygons lack '{CLASS_PROPERTY}'"
        )
    unknown = sorted(set(values.astype(int)) - codes)
    if unknown:
        raise ValueError(
            f"chart {chart_geojson}: unknown {CLASS_PROPERTY} codes {unknown}; allowed "
            f"{sorted(codes)} (tasks/domain/codelists/ice_classes.csv)"
        )
    chart = chart.to_crs(crs)
    shapes = [
        (geom, int(code))
        for geom, code in zip(chart.geometry, values, strict=True)
        if geom is not None and not geom.is_empty
    ]
    label = (
        features.rasterize(
            shapes, out_shape=shape, transform=transform, fill=NO_LABEL, dtype="uint8"
        )
        if shapes
        else np.zeros(shape, dtype=np.uint8)
    )
    if LAND_MASK_VAR in like_dataset:
        label[np.asarray(like_dataset[LAND_MASK_VAR].values) == 1] = NO_LABEL
    if VALID_MASK_VAR in like_dataset:
        label[np.asarray(like_dataset[VALID_MASK_VAR].values) == 0] = NO_LABEL
    return label, binary_lookup()[label]


def write_labels(
    label: np.ndarray, label_binary: np.ndarray, like_dataset: Any, out_zarr: str | Path, chunk: int
) -> Path:
    """Write ``label`` / ``label_binary`` with the grid coordinates and attributes of the scene."""
    import xarray as xr

    coords = {
        k: like_dataset.coords[k] for k in ("y", "x", "spatial_ref") if k in like_dataset.coords
    }
    ds = xr.Dataset(
        {LABEL_VAR: (("y", "x"), label), LABEL_BINARY_VAR: (("y", "x"), label_binary)},
        coords=coords,
        attrs=dict(like_dataset.attrs),
    )
    if "spatial_ref" in ds.coords:
        for var in (LABEL_VAR, LABEL_BINARY_VAR):
            ds[var].attrs["grid_mapping"] = "spatial_ref"
    ds[LABEL_VAR].attrs["long_name"] = "ice class code (ice_classes.csv), 0 = no label"
    ds[LABEL_BINARY_VAR].attrs["long_name"] = "0 = no label, 1 = water, 2 = ice"
    encoding = {
        v: {"chunks": (min(chunk, label.shape[0]), min(chunk, label.shape[1]))}
        for v in (LABEL_VAR, LABEL_BINARY_VAR)
    }
    out_zarr = Path(out_zarr)
    with atomic_dir(out_zarr) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # consolidated metadata: zarr v3 extension
        ds.to_zarr(tmp, mode="w", zarr_format=3, consolidated=True, encoding=encoding)
    return out_zarr


def run_labels(cfg: PolarConfig, run_date: dt.date | str) -> dict[str, Any]:
    """Rasterise the day's charts onto its harmonised scenes.

    Reads ``{root}/polar/ingest/{day}`` (chart paths) and ``{root}/polar/harmonise/{day}``;
    writes ``{root}/polar/labels/{day}/{scene_id}.zarr`` and ``manifest.json``. Scenes without a
    chart are skipped and counted; a day where no scene has a chart is an error.

    Returns:
        ``{"run_key", "output_dir", "n_scenes", "skipped_no_chart", "scenes": [...]}`` with
        per-scene ``zarr`` and ``class_counts``.

    """
    import xarray as xr

    day = day_run_key(run_date)
    root = cfg.resolved_root()
    ingest_dir = stage_dir(root, "polar", "ingest", day)
    harmonise_dir = stage_dir(root, "polar", "harmonise", day)
    ingest = read_manifest(ingest_dir)
    read_manifest(harmonise_dir)
    out_dir = stage_dir(root, "polar", "labels", day)
    names = {c.code: c.name for c in ice_classes()}
    summaries, skipped = [], []
    with atomic_dir(out_dir) as tmp:
        for scene in ingest.get("scenes", []):
            scene_id = scene["scene_id"]
            zarr_path = harmonise_dir / f"{scene_id}.zarr"
            if not scene.get("chart"):
                skipped.append(scene_id)
                log.warning("%s has no ice chart; no labels", scene_id)
                continue
            if not zarr_path.exists():
                raise FileNotFoundError(
                    f"{zarr_path} is missing: run the harmonise stage for {day} first"
                )
            like = xr.open_zarr(zarr_path, decode_coords="all")
            label, label_binary = rasterise_chart(ingest_dir / scene["chart"], like)
            write_labels(label, label_binary, like, tmp / f"{scene_id}.zarr", cfg.harmonise.chunk)
            values, counts = np.unique(label, return_counts=True)
            summaries.append(
                {
                    "scene_id": scene_id,
                    "zarr": str(out_dir / f"{scene_id}.zarr"),
                    "class_counts": {
                        names.get(int(v), "no_label"): int(n)
                        for v, n in zip(values, counts, strict=True)
                    },
                }
            )
        if not summaries:
            raise ValueError(
                f"no scene of {day} has an ice chart (scenes: {skipped}); labels need charts "
                "(<name>.chart.geojson beside the products, or the generator source)"
            )
        write_manifest(
            tmp,
            stage="labels",
            inputs=[str(ingest_dir), str(harmonise_dir)],
            config_hash=config_hash(cfg.harmonise),
            counts={"scenes": len(summaries), "skipped_no_chart": len(skipped)},
            extra={"run_key": day, "scenes": summaries},
        )
    return {
        "run_key": day,
        "output_dir": str(out_dir),
        "n_scenes": len(summaries),
        "skipped_no_chart": len(skipped),
        "scenes": summaries,
    }
