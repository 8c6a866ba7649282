"""Dense inference over a harmonised scene -> ice chart (COG), PNG quicklook and GeoJSON polygons.

The classifier runs fully convolutionally on tiles of ``predict.tile`` pixels (plus a halo of
``patch_size - output_stride`` pixels and the network's zero-padding context margin, so the result
does not depend on the tiling), so one forward pass classifies every window of the tile at
once: output cell (i, j) is the class of the patch whose centre block of ``output_stride`` x
``output_stride`` pixels is that cell. This shares the convolutions of overlapping windows and is
far cheaper than classifying each window separately (bench/p2_inference.py). The per-cell class
map (1/stride^2 of the scene) is the only scene-sized array held in memory; the chart raster is
written strip by strip at full resolution with land and invalid pixels masked.

Chart codes (:mod:`tasks.polar.quicklook`): 0 no data, 1..n classes (binary: 1 water, 2 ice;
five-class: the codes of ``ice_classes.csv``), 255 land.

Before charting, a scene is checked against the model's ``input_contract``
(:func:`check_scene_fits_model`): acquisition mode, pixel spacing, CRS and bands must be those the
model was trained on, and no band the model reads may be all NaN (checked while the tiles are
read, :class:`ScenePredictor`). A scene that does not fit raises :class:`SceneModelMismatch`
instead of becoming a confident chart of nonsense.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np
import torch
import xarray as xr

from tasks.config.common import config_hash, eeflow_home
from tasks.config.polar import PolarConfig, PredictConfig
from tasks.errors import EeflowError
from tasks.fs import is_remote, normalise_s3_url, s3_filesystem
from tasks.model_registry import is_registry_reference, resolve_registry_reference
from tasks.models.dense import DenseKernel
from tasks.polar import schema
from tasks.polar.quicklook import CHART_LAND, CHART_NODATA, chart_classes, render_quicklook
from tasks.polar.train import (
    MODEL_JSON,
    LoadedIceModel,
    input_contract,
    latest_model,
    load_model,
    normalise_crs,
    scene_acquisition,
)
from tasks.region import Region, RegionError, cut_raster, raster_extent, require_overlap
from tasks.storage import (
    POINTER_NAME,
    atomic_dir,
    day_run_key,
    download_stage_dir,
    resolve_stage_dir,
    stage_dir,
    stage_location,
    write_manifest,
)

log = logging.getLogger(__name__)

#: Relative tolerance when comparing a scene's pixel spacing with the model's.
PIXEL_SPACING_RTOL = 0.01
#: int8 calibration: crops on a lattice of CALIBRATION_GRID x CALIBRATION_GRID over the scene,
#: each of CALIBRATION_CELLS x CALIBRATION_CELLS output cells (ScenePredictor.calibration_batch).
CALIBRATION_GRID = 3
#: RowStrips follows the scene's storage chunk rows up to this height (taller: 1024-row strips).
MAX_STRIP_ROWS = 4096
CALIBRATION_CELLS = 16


_P = ParamSpec("_P")
_T = TypeVar("_T")


class InlineExecutor(Executor):
    """An executor that runs each call at once in the caller's thread (no overlap)."""

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        """Run ``fn`` now; its result or exception is in the returned (done) future."""
        future: Future[_T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as err:  # handed to the caller through the future, like a pool
            future.set_exception(err)
        return future


class SceneModelMismatch(EeflowError, ValueError):
    """A harmonised scene does not fit the model it was to be charted with."""


def scene_model_mismatches(scene_attrs: dict[str, Any], scene_bands: list[str],
                           contract: dict[str, Any]) -> list[str]:
    """List how a scene differs from a model's ``input_contract`` (empty: it fits).

    Args:
        scene_attrs: attributes of the harmonised scene (:mod:`tasks.polar.schema`).
        scene_bands: the scene's ``band`` coordinate.
        contract: :func:`tasks.polar.train.input_contract` of the model.

    Returns:
        One line per mismatching field: the field, what the model expects, what the scene has.

    """
    found = scene_acquisition(scene_attrs)
    problems = []
    modes = [str(m).upper() for m in contract.get("modes", [])]
    if modes and found["mode"] not in modes:
        seen = found["mode"] or "unknown (no 'mode' attribute, scene_id names none)"
        problems.append(f"acquisition mode: model expects {' or '.join(modes)}, scene is {seen}")
    spacings = [float(v) for v in contract.get("pixel_spacings_m", [])]
    spacing = found["pixel_spacing_m"]
    if spacings and (spacing is None or not any(
            abs(spacing - v) <= PIXEL_SPACING_RTOL * v for v in spacings)):
        problems.append(f"pixel spacing: model expects {' or '.join(f'{v:g} m' for v in spacings)}"
                        f", scene has {'unknown' if spacing is None else f'{spacing:g} m'}")
    crs_list = [normalise_crs(c) for c in contract.get("crs", [])]
    if crs_list and found["crs"] not in crs_list:
        problems.append(f"CRS: model expects {' or '.join(crs_list)}, scene is "
                        f"{found['crs'] or 'unknown'}")
    missing = [b for b in contract.get("bands", []) if b not in scene_bands]
    if missing:
        problems.append(f"bands: model needs {list(contract['bands'])}, scene has {scene_bands} "
                        f"({missing} missing)")
    return problems


def check_scene_fits_model(scene: xr.Dataset, scene_zarr: Path, model: LoadedIceModel) -> None:
    """Refuse a scene whose mode, pixel spacing, CRS or bands differ from the model's training.

    Raises:
        SceneModelMismatch: naming the scene, the model and every mismatching field.

    """
    bands = [str(b) for b in scene[schema.BACKSCATTER_VAR]["band"].values]
    contract = input_contract(model.meta)
    contract.setdefault("bands", list(model.meta["bands"]))
    problems = scene_model_mismatches(dict(scene.attrs), bands, contract)
    if problems:
        raise SceneModelMismatch(
            f"scene {scene_zarr} does not fit model {model.model_dir}:\n  - "
            + "\n  - ".join(problems)
            + "\nharmonise the product with the settings the model was trained on (e.g. "
            "harmonise.required_mode / pixel_spacing_m / target_crs), or chart it with a model "
            "trained on such scenes (predict.model)"
        )


def scene_georeference(scene: xr.Dataset, scene_zarr: Path) -> tuple[str, tuple[float, ...]]:
    """Return (CRS string, GDAL geotransform) of a harmonised scene.

    Raises:
        ValueError: the scene carries neither ``crs``/``transform`` attributes nor rioxarray
            spatial_ref metadata (a geotransform needs the spatial_ref's ``GeoTransform`` or
            x / y coordinates: without them rioxarray would give the identity transform).

    """
    crs, transform = scene.attrs.get("crs"), scene.attrs.get("transform")
    if crs is None or transform is None:
        try:
            import rioxarray  # noqa: F401

            rio_crs = scene.rio.crs or scene[schema.BACKSCATTER_VAR].rio.crs
            crs = crs or (rio_crs.to_string() if rio_crs else None)
            spatial_ref = scene.coords.get("spatial_ref")
            located = {"x", "y"} <= set(scene.coords) or (
                spatial_ref is not None and "GeoTransform" in spatial_ref.attrs)
            transform = transform or (scene.rio.transform().to_gdal() if located else None)
        except Exception:  # any failure means no georeference
            pass
    if not crs or transform is None or len(transform) != 6:
        raise ValueError(f"{scene_zarr}: no CRS / geotransform (attributes 'crs' and "
                         "'transform', or rioxarray spatial_ref); re-run harmonise")
    return str(crs), tuple(float(v) for v in transform)


def normalise_bands(values: np.ndarray, band_mean: np.ndarray, band_std: np.ndarray) -> np.ndarray:
    """Standardise backscatter with a model's training band statistics; NaN / inf become 0.

    The one input transform of polar inference (dense scenes here, patch batches in
    :mod:`tasks.serving`): ``(value - band_mean) / band_std`` per band, then non-finite values set
    to 0, i.e. the band mean.

    Args:
        values: float32 (..., band, y, x) sigma0 in dB and incidence angle in degrees, bands in
            the model's order (``model.json`` ``bands``).
        band_mean: (band,) training-set mean per band.
        band_std: (band,) training-set standard deviation per band.

    Returns:
        float32 array of the same shape (a new array).

    """
    mean = np.asarray(band_mean, np.float32)[:, None, None]
    std = np.asarray(band_std, np.float32)[:, None, None]
    normalised = (np.asarray(values, np.float32) - mean) / std
    np.nan_to_num(normalised, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return normalised


class RowStrips:
    """Full-width row strips of a (band, y, x) scene, each storage chunk row decoded once.

    Tiles with a halo overlap the chunk rows above and below them; reading every tile window
    directly decodes each chunk up to 9 times (3 x 3 chunks per 1024 px window on 1024 px
    chunks). Here a chunk row is decoded once, kept while tiles still need it (rows are
    requested top to bottom) and dropped after: memory is a few chunk rows of the scene's
    width. Not thread-safe: one reader thread uses it.
    """

    def __init__(self, scene: xr.DataArray, rows_per_strip: int = 1024) -> None:
        self.scene = scene
        chunks = scene.chunksizes.get("y") if scene.chunks else None
        if chunks and max(chunks) <= MAX_STRIP_ROWS:
            sizes = list(chunks)
        else:  # not chunked, or chunk rows too tall to hold a few of them: fixed strips
            sizes = [rows_per_strip] * -(-scene.sizes["y"] // rows_per_strip)
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.decoded: dict[int, np.ndarray] = {}

    def strip(self, index: int) -> np.ndarray:
        """Return strip ``index`` (a chunk row), float32 (band, rows, x), decoding it once."""
        if index not in self.decoded:
            rows = slice(int(self.starts[index]), int(self.starts[index + 1]))
            self.decoded[index] = np.asarray(self.scene.isel(y=rows).values, dtype=np.float32)
        return self.decoded[index]

    def rows(self, r0: int, r1: int, cols: slice = slice(None)) -> np.ndarray:
        """(band, r1 - r0, cols) float32 of rows r0..r1 (inside the scene); drops strips above.

        A window inside one strip is a view of it (do not write to it); across strips a copy.
        """
        first = int(np.searchsorted(self.starts, r0, side="right")) - 1
        last = int(np.searchsorted(self.starts, r1 - 1, side="right")) - 1
        for index in [k for k in self.decoded if k < first]:
            del self.decoded[index]
        parts = [self.strip(k)[:, max(r0 - self.starts[k], 0):
                               min(r1, self.starts[k + 1]) - self.starts[k], cols]
                 for k in range(first, last + 1)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


class ScenePredictor:
    """Fully convolutional tile-by-tile classifier of one model (settings fixed at construction).

    Args:
        model: the loaded model.
        tile: output tile edge in pixels (rounded down to a multiple of the output stride).
        device: ``cpu`` / ``cuda`` (default: cuda when available, the CPU for ``int8``).
        precision: ``fp32`` | ``int8`` | ``bf16`` | ``auto`` (:mod:`tasks.models.dense`); int8
            is calibrated on crops of each scene before its tiles are classified
            (:meth:`calibration_batch`).
        batch_size: tiles of equal shape per forward pass (default 1 on the CPU, where one
            1024 px tile already fills the cores, 8 on CUDA).
        overlap: read the next batch and store the previous one in background threads while
            a batch is classified (False: one after the other, for measurements).

    """

    def __init__(self, model: LoadedIceModel, tile: int = 1024, device: str | None = None,
                 precision: str = "fp32", batch_size: int | None = None,
                 overlap: bool = True) -> None:
        self.model = model
        self.net = model.net
        if device is None:
            device = "cpu" if precision == "int8" or not torch.cuda.is_available() else "cuda"
        self.kernel = DenseKernel(self.net, precision, device)
        self.device = self.kernel.device
        self.precision = self.kernel.precision
        self.stride = int(self.net.output_stride)
        self.patch = int(self.net.patch_size)
        self.offset = (self.patch - self.stride) // 2
        self.margin = self.net.context_margin()
        self.tile = max(self.stride, tile // self.stride * self.stride)
        self.bands = list(model.meta["bands"])
        self.batch_size = batch_size or (8 if self.device.type == "cuda" else 1)
        self.overlap = overlap
        #: seconds the last :meth:`class_map` spent on int8 calibration (0: none needed)
        self.calibration_seconds = 0.0
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 tile, got {batch_size}")

    def read_normalised(self, backscatter: xr.DataArray, rows: slice, cols: slice,
                        finite_bands: np.ndarray | None = None,
                        strips: RowStrips | None = None) -> np.ndarray:
        """Read (band, rows, cols) of the scene, normalised, NaN set to 0 (the band mean).

        Rows / columns outside the scene are filled with the nearest edge values. When
        ``finite_bands`` (bool, (band,)) is given, bands with a finite value in the window are
        set True in it. ``strips`` (of ``backscatter``): the rows come from its decoded strips.
        """
        height, width = backscatter.sizes["y"], backscatter.sizes["x"]
        r0, r1 = max(rows.start, 0), min(rows.stop, height)
        c0, c1 = max(cols.start, 0), min(cols.stop, width)
        if strips is not None:
            window = strips.rows(r0, r1, slice(c0, c1))
        else:
            window = np.asarray(backscatter.isel(y=slice(r0, r1), x=slice(c0, c1)).values,
                                dtype=np.float32)
        if finite_bands is not None and window.size:
            finite_bands |= np.isfinite(window).any(axis=(1, 2))
        window = normalise_bands(window, self.model.band_mean, self.model.band_std)
        pad = ((0, 0), (r0 - rows.start, rows.stop - r1), (c0 - cols.start, cols.stop - c1))
        if any(p for axis in pad for p in axis):
            window = np.pad(window, pad, mode="edge")
        return window

    def calibration_batch(self, backscatter: xr.DataArray, grid: int = CALIBRATION_GRID,
                          cells: int = CALIBRATION_CELLS) -> np.ndarray:
        """Crops of the scene on a ``grid`` x ``grid`` lattice for int8 calibration.

        Each crop covers ``cells`` x ``cells`` output cells (with halo and context margin), the
        lattice spans the scene from edge to edge, so the observed activation ranges come from
        the scene's own mix of open water, ice, land and no-data (normalised with the model's
        training statistics, exactly as the tiles will be). Returns (grid^2, band, h, w).
        """
        height, width = backscatter.sizes["y"], backscatter.sizes["x"]
        span = cells * self.stride + self.patch - self.stride + 2 * self.margin
        rows = np.linspace(0, max(height - span, 0), grid).astype(int)
        cols = np.linspace(0, max(width - span, 0), grid).astype(int)
        return np.stack([self.read_normalised(backscatter, slice(r, r + span),
                                              slice(c, c + span)) for r in rows for c in cols])

    def class_map(self, scene: xr.Dataset, progress: bool = True) -> np.ndarray:
        """Per-cell model class index (ceil(H/stride), ceil(W/stride)) uint8 of a scene.

        Tiles of equal shape are classified ``batch_size`` at a time; a reader thread reads and
        normalises batch n+1 and a writer thread stores the classes of batch n-1 while batch n
        is computed.

        Raises:
            SceneModelMismatch: a band the model reads has no finite value in the whole scene
                (found while reading the tiles, so it costs no extra pass over the scene).

        """
        from tqdm.auto import tqdm

        backscatter = scene[schema.BACKSCATTER_VAR].sel(band=self.bands)
        backscatter = backscatter.transpose("band", "y", "x")
        height, width = backscatter.sizes["y"], backscatter.sizes["x"]
        s, halo = self.stride, self.patch - self.stride
        out = np.zeros((-(-height // s), -(-width // s)), dtype=np.uint8)
        step = self.tile // s
        m, mc = self.margin, self.margin // s
        finite_bands = np.zeros(len(self.bands), dtype=bool)

        def extent(tile: tuple[int, int]) -> tuple[int, int]:
            return min(step, out.shape[0] - tile[0]), min(step, out.shape[1] - tile[1])

        strips = RowStrips(backscatter)

        def load(batch: list[tuple[int, int]]) -> np.ndarray:
            windows = []
            for r, c in batch:
                rr, cc = extent((r, c))
                y0, x0 = r * s - self.offset - m, c * s - self.offset - m
                windows.append(self.read_normalised(
                    backscatter, slice(y0, y0 + rr * s + halo + 2 * m),
                    slice(x0, x0 + cc * s + halo + 2 * m), finite_bands, strips))
            return np.stack(windows)

        def store(batch: list[tuple[int, int]], classes: torch.Tensor) -> None:
            values = classes.to("cpu").numpy()
            for (r, c), cell_classes in zip(batch, values, strict=True):
                out[r:r + cell_classes.shape[0], c:c + cell_classes.shape[1]] = cell_classes

        tiles = [(r, c) for r in range(0, out.shape[0], step) for c in range(0, out.shape[1], step)]
        batches = group_equal_tiles(tiles, extent, self.batch_size)
        started = time.perf_counter()
        if self.kernel.needs_calibration and tiles:
            self.kernel.calibrate([torch.from_numpy(self.calibration_batch(backscatter))])
        self.calibration_seconds = time.perf_counter() - started
        with self._executor() as reader, self._executor() as writer, \
                tqdm(total=len(tiles), desc="predict tiles", disable=not progress) as bar:
            pending = reader.submit(load, batches[0]) if batches else None
            written: Future[None] | None = None
            for index, batch in enumerate(batches):
                assert pending is not None  # submitted for every batch
                windows = pending.result()
                if index + 1 < len(batches):
                    pending = reader.submit(load, batches[index + 1])
                classes = self.kernel.classes(torch.from_numpy(windows), crop=mc)
                if written is not None:
                    written.result()  # at most one batch waiting to be stored
                written = writer.submit(store, batch, classes)
                bar.update(len(batch))
            if written is not None:
                written.result()
        empty = [band for band, seen in zip(self.bands, finite_bands, strict=True) if not seen]
        if empty:
            scene_name = scene.attrs.get("scene_id", "scene")
            raise SceneModelMismatch(
                f"scene {scene_name}: band(s) {empty} are all NaN ({height} x {width} pixels, no "
                f"finite value); model {self.model.model_dir} needs {self.bands}. Re-run "
                "harmonise for that scene and check its source product (missing or zero "
                "measurement / annotation data)"
            )
        return out

    def _executor(self) -> Executor:
        """One background thread, or the caller's thread when ``overlap`` is off."""
        return ThreadPoolExecutor(max_workers=1) if self.overlap else InlineExecutor()

    def classify_windows(self, scene: xr.Dataset, cells: np.ndarray,
                         batch_size: int = 256) -> np.ndarray:
        """Classify the patch of each output cell (n, 2) window by window (naive reference).

        Windows are batched; the result equals :meth:`class_map` up to convolution padding.
        """
        backscatter = scene[schema.BACKSCATTER_VAR].sel(band=self.bands).transpose("band", "y", "x")
        out = np.zeros(len(cells), dtype=np.uint8)
        with torch.inference_mode():
            for start in range(0, len(cells), batch_size):
                batch = []
                for r, c in cells[start:start + batch_size]:
                    y0, x0 = r * self.stride - self.offset, c * self.stride - self.offset
                    batch.append(self.read_normalised(
                        backscatter, slice(y0, y0 + self.patch), slice(x0, x0 + self.patch)))
                logits = self.net(torch.from_numpy(np.stack(batch)).to(self.device))
                out[start:start + len(batch)] = logits.argmax(1).cpu().numpy()
        return out


def group_equal_tiles(tiles: list[tuple[int, int]], extent: Callable[[tuple[int, int]], Any],
                      batch_size: int) -> list[list[tuple[int, int]]]:
    """Split ``tiles`` (in order) into runs of at most ``batch_size`` with equal ``extent``."""
    batches: list[list[tuple[int, int]]] = []
    for tile in tiles:
        if batches and len(batches[-1]) < batch_size and extent(batches[-1][-1]) == extent(tile):
            batches[-1].append(tile)
        else:
            batches.append([tile])
    return batches


def write_chart_cog(scene: xr.Dataset, cell_classes: np.ndarray, stride: int, out_tif: Path,
                    crs: str, transform: tuple[float, ...], class_scheme: str,
                    strip_rows: int = 1024) -> dict[str, int]:
    """Write the full-resolution chart as a Cloud-Optimised GeoTIFF, land / invalid masked.

    Returns pixel counts per chart class name (plus ``land`` and ``no_data``).
    """
    import rasterio
    from rasterio.shutil import copy as rio_copy
    from rasterio.transform import Affine
    from rasterio.windows import Window

    height, width = scene.sizes["y"], scene.sizes["x"]
    classes = chart_classes(class_scheme)
    counts = np.zeros(256, dtype=np.int64)
    tmp_tif = out_tif.with_suffix(".tmp.tif")
    profile = {"driver": "GTiff", "height": height, "width": width, "count": 1, "dtype": "uint8",
               "crs": crs, "transform": Affine.from_gdal(*transform), "nodata": CHART_NODATA,
               "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
    strip_rows = max(stride, strip_rows // stride * stride)
    with rasterio.open(tmp_tif, "w", **profile) as dst:
        for r0 in range(0, height, strip_rows):
            r1 = min(height, r0 + strip_rows)
            cells = cell_classes[r0 // stride: -(-r1 // stride)]
            chart = np.repeat(np.repeat(cells, stride, axis=0), stride, axis=1)
            chart = chart[: r1 - r0, :width].astype(np.uint8) + 1
            land = scene[schema.LAND_MASK_VAR].isel(y=slice(r0, r1)).values
            valid = scene[schema.VALID_MASK_VAR].isel(y=slice(r0, r1)).values
            chart[valid == 0] = CHART_NODATA
            chart[land != 0] = CHART_LAND
            counts += np.bincount(chart.ravel(), minlength=256)
            dst.write(chart, 1, window=Window(0, r0, width, r1 - r0))
        dst.update_tags(class_scheme=class_scheme,
                        classes=json.dumps({c.code: c.name for c in classes}))
    rio_copy(tmp_tif, out_tif, driver="COG", compress="DEFLATE", overview_resampling="NEAREST",
             blocksize=512)
    tmp_tif.unlink()
    result = {c.name: int(counts[c.code]) for c in classes}
    result["no_data"] = int(counts[CHART_NODATA])
    return result


def write_class_polygons(chart_tif: Path, out_geojson: Path, class_scheme: str,
                         max_pixels: int = 2048, clip_to: Any | None = None) -> int:
    """Vectorise a chart GeoTIFF into class polygons: RFC 7946 GeoJSON + projected GeoParquet.

    The raster is read at most ``max_pixels`` on its long side (nearest neighbour); polygons are
    simplified with a tolerance of one such pixel. Two files are written:

    - ``out_geojson``: RFC 7946 GeoJSON, CRS84 longitude/latitude, no ``crs`` member, exterior
      rings counter-clockwise; edges densified before reprojection and polygons cut along the
      antimeridian (a pole-covering polygon becomes one that spans -180..180), so lon/lat
      geometries stay valid;
    - ``out_geojson`` with suffix ``.parquet``: GeoParquet of the same polygons in the chart's own
      CRS (e.g. EPSG:3413 metres), for exact area and overlay work.

    Both carry ``class_code``, ``ice_class`` and ``area_km2`` (from the projected polygon).
    ``clip_to`` (a polygon in the chart CRS, the requested region): polygons are clipped to it.
    Returns the number of features.
    """
    import geopandas as gpd
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.features import shapes
    from shapely.geometry import shape

    from tasks.region import clip_polygon

    names = {c.code: c.name for c in chart_classes(class_scheme)}
    with rasterio.open(chart_tif) as src:
        factor = max(1, int(np.ceil(max(src.height, src.width) / max_pixels)))
        out_shape = (max(1, src.height // factor), max(1, src.width // factor))
        chart = src.read(1, out_shape=out_shape, resampling=Resampling.nearest)
        transform = src.transform * src.transform.scale(src.width / out_shape[1],
                                                        src.height / out_shape[0])
        crs = src.crs
    if crs is None:
        raise ValueError(f"{chart_tif}: chart without CRS; cannot write lon/lat polygons")
    tolerance = abs(transform.a)
    rows: list[dict[str, Any]] = []
    geometries = []
    classes_only = (chart != CHART_NODATA) & (chart != CHART_LAND)  # land is masked, not a class
    for geometry, value in shapes(chart, mask=classes_only, transform=transform):
        polygon = shape(geometry).simplify(tolerance, preserve_topology=True)
        if clip_to is not None:
            polygon = clip_polygon(polygon, clip_to)
        if polygon.is_empty:
            continue
        geometries.append(polygon)
        rows.append({"class_code": int(value), "ice_class": names.get(int(value), "unknown"),
                     "area_km2": round(polygon.area / 1e6, 4)})
    projected = gpd.GeoDataFrame(rows, geometry=geometries, crs=crs.to_wkt())
    if crs.to_epsg():
        projected = projected.set_crs(f"EPSG:{crs.to_epsg()}", allow_override=True)
    parquet_tmp = out_geojson.with_name(f".{out_geojson.stem}.parquet.tmp")
    projected.to_parquet(parquet_tmp, write_covering_bbox=True)
    parquet_tmp.replace(out_geojson.with_suffix(".parquet"))
    lonlat = [to_crs84(g, crs, max_segment=4 * tolerance) for g in geometries]
    features = [{"type": "Feature", "geometry": json.loads(shapely_to_geojson(g)),
                 "properties": row} for g, row in zip(lonlat, rows, strict=True)]
    collection = {"type": "FeatureCollection", "name": chart_tif.stem, "features": features}
    tmp = out_geojson.with_name(f".{out_geojson.name}.tmp")
    tmp.write_text(json.dumps(collection))
    tmp.replace(out_geojson)
    return len(features)


def shapely_to_geojson(geometry: Any) -> str:
    """GeoJSON text of a geometry with coordinates rounded to 1e-7 degree (about 1 cm)."""
    import shapely

    return str(shapely.to_geojson(shapely.set_precision(geometry, 1e-7, mode="pointwise")))


def to_crs84(geometry: Any, crs: Any, max_segment: float) -> Any:
    """Reproject a polygon from a projected CRS to CRS84 lon/lat, valid per RFC 7946.

    Edges longer than ``max_segment`` (CRS units) are densified first, so straight projected
    edges follow their true path. Where the polygon reaches the antimeridian it is cut there (a
    1 cm wide cut along the meridian from the pole), which also opens a polygon around the pole
    into one that spans longitudes -180..180. Rings are oriented counter-clockwise (exterior).
    """
    import shapely
    from pyproj import CRS, Transformer

    source = CRS.from_user_input(crs)
    forward = Transformer.from_crs(source, "OGC:CRS84", always_xy=True)
    if source.is_projected:
        cut = _antimeridian_cut(source, geometry.bounds)
        if cut is not None and geometry.intersects(cut):
            geometry = geometry.difference(cut)
    geometry = shapely.segmentize(geometry, max_segment)
    lonlat = shapely.transform(
        geometry, lambda xy: np.column_stack(forward.transform(xy[:, 0], xy[:, 1]))
    )
    lonlat = shapely.make_valid(lonlat) if not lonlat.is_valid else lonlat
    return shapely.orient_polygons(lonlat, exterior_cw=False)


def _antimeridian_cut(source: Any, bounds: tuple[float, float, float, float]) -> Any:
    """Return a thin polygon along longitude 180 in ``source`` coordinates (None: none there)."""
    import shapely
    from pyproj import Transformer

    inverse = Transformer.from_crs("OGC:CRS84", source, always_xy=True)
    _, centre_lat = inverse.transform((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2,
                                      direction="INVERSE")
    north = not np.isfinite(centre_lat) or centre_lat >= 0
    lats = np.linspace(90.0 if north else -90.0, 0.0, 721)
    x, y = inverse.transform(np.full_like(lats, 180.0), lats)
    finite = np.isfinite(x) & np.isfinite(y)
    if finite.sum() < 2:
        return None
    line = shapely.LineString(np.column_stack([x[finite], y[finite]]))
    if not line.intersects(shapely.box(*bounds)):
        return None
    return line.buffer(0.01, cap_style="flat")


def predict_scene(model_dir: Path | LoadedIceModel, scene_zarr: Path, out_dir: Path,
                  cfg: PredictConfig, region: Region | None = None) -> dict[str, Any]:
    """Classify a harmonised scene densely and write its chart products into ``out_dir``.

    Args:
        model_dir: a model folder of :func:`tasks.polar.train.train_model`.
        scene_zarr: harmonised scene (contract in :mod:`tasks.polar.schema`).
        out_dir: folder for ``{scene_id}_chart.tif`` (COG), ``{scene_id}_quicklook.png`` and
            ``{scene_id}_chart.geojson``.
        cfg: the ``predict`` config section (tile size, precision, polygon resolution).
        region: the requested region (None: the whole scene). The products are cut to it
            (:mod:`tasks.region`): chart and quicklook to its bbox snapped to the chart grid,
            cells outside it no data, polygons clipped; the result's ``region`` records the cut.

    Returns:
        Paths of the three products, per-class pixel counts, timings.

    Raises:
        RegionError: ``region`` does not intersect the scene (checked before inference).

    """
    scene_zarr = Path(scene_zarr)
    if not scene_zarr.exists():
        raise FileNotFoundError(f"harmonised scene {scene_zarr} does not exist")
    model = model_dir if isinstance(model_dir, LoadedIceModel) else load_model(model_dir)
    scene = xr.open_zarr(scene_zarr)
    for var in (schema.BACKSCATTER_VAR, schema.LAND_MASK_VAR, schema.VALID_MASK_VAR):
        if var not in scene:
            raise ValueError(f"{scene_zarr}: variable {var!r} missing; not a harmonised scene")
    check_scene_fits_model(scene, scene_zarr, model)
    crs, transform = scene_georeference(scene, scene_zarr)
    scene_id = str(scene.attrs.get("scene_id", scene_zarr.stem))
    clip_to = None
    if region is not None:
        clip_to = region.in_crs(crs)
        extent = raster_extent(transform, scene.sizes["x"], scene.sizes["y"])
        require_overlap(region, clip_to, extent, crs, f"scene {scene_id} ({scene_zarr})")
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    predictor = ScenePredictor(model, tile=cfg.tile, precision=cfg.precision)
    cells = predictor.class_map(scene)
    infer_seconds = time.perf_counter() - started
    scheme = model.meta["class_scheme"]
    chart_tif = out_dir / f"{scene_id}_chart.tif"
    cut = None
    if clip_to is None:
        counts = write_chart_cog(scene, cells, predictor.stride, chart_tif, crs, transform, scheme)
    else:
        counts, cut = _write_cut_chart(scene, cells, predictor.stride, chart_tif, crs, transform,
                                       scheme, clip_to)
    png = render_quicklook(chart_tif, out_dir / f"{scene_id}_quicklook.png", scheme,
                           title=f"{scene_id} - {model.meta['name']} {scheme}")
    geojson = out_dir / f"{scene_id}_chart.geojson"
    n_polygons = write_class_polygons(chart_tif, geojson, scheme, cfg.polygon_max_pixels,
                                      clip_to=clip_to)
    log.info("predicted %s in %.1f s (inference %.1f s): %s", scene_id,
             time.perf_counter() - started, infer_seconds, counts)
    result = {"scene_id": scene_id, "chart": str(chart_tif), "quicklook": str(png),
              "polygons": str(geojson), "n_polygons": n_polygons, "pixel_counts": counts,
              "inference_seconds": round(infer_seconds, 2), "precision": predictor.precision,
              "calibration_seconds": round(predictor.calibration_seconds, 2),
              "total_seconds": round(time.perf_counter() - started, 2)}
    if region is not None:
        result["region"] = region.record(cut)
    return result


def _write_cut_chart(scene: xr.Dataset, cells: np.ndarray, stride: int, chart_tif: Path,
                     crs: str, transform: tuple[float, ...], scheme: str,
                     clip_to: Any) -> tuple[dict[str, int], dict[str, Any]]:
    """Write the scene's chart cut to ``clip_to`` (region in the chart CRS) as the chart COG.

    Returns the cut chart's pixel counts (as :func:`write_chart_cog`) and the cut
    (:func:`tasks.region.cut_raster`).
    """
    import rasterio
    from rasterio.shutil import copy as rio_copy

    full = chart_tif.with_name(f".{chart_tif.stem}.full.tif")
    cut_tif = chart_tif.with_name(f".{chart_tif.stem}.cut.tif")
    write_chart_cog(scene, cells, stride, full, crs, transform, scheme)
    cut = cut_raster(full, cut_tif, clip_to)
    full.unlink()
    rio_copy(cut_tif, chart_tif, driver="COG", compress="DEFLATE", overview_resampling="NEAREST",
             blocksize=512)
    cut_tif.unlink()
    with rasterio.open(chart_tif) as src:
        counts_all = np.bincount(src.read(1).ravel(), minlength=256)
    counts = {c.name: int(counts_all[c.code]) for c in chart_classes(scheme)}
    counts["no_data"] = int(counts_all[CHART_NODATA])
    return counts, cut


def resolve_model_dir(cfg: PolarConfig, model_dir: Path | None = None) -> Path:
    """Return the model to use: ``model_dir``, else what ``predict.model`` names.

    ``latest`` (newest trained folder), ``registry:<alias>`` (the model registry's version under
    that alias, e.g. ``registry:production``), ``best:<metric>`` (the registered version with the
    highest metric), or a model folder (relative paths resolve against ``$EEFLOW_HOME``).
    """
    if model_dir is not None:
        return Path(model_dir)
    choice = cfg.predict.model
    if choice == "latest":
        return latest_model(cfg.resolved_root())
    if is_registry_reference(choice):
        return resolve_registry_reference("polar", choice, cfg=cfg)
    path = Path(choice).expanduser()
    if not path.is_absolute():
        path = eeflow_home() / path
    if not path.exists():
        raise FileNotFoundError(
            f"predict.model {choice!r} ({path}) does not exist; give a model folder, 'latest', "
            "'registry:<alias>' or 'best:<metric>'"
        )
    return path


def run_predict(cfg: PolarConfig, run_date: Any, model_dir: Path | None = None) -> dict[str, Any]:
    """Chart every harmonised scene of a day into ``{root}/polar/predict/{day}/`` atomically.

    A failure leaves the previously published charts of that day untouched. With a requested
    region (``ingest.catalogue.area``, the DAGs' ``region`` param) the charts are cut to it
    (:func:`predict_scene`); scenes it does not intersect are left out, and the manifest records
    the region. On an ``s3://`` data root the day's harmonised scenes are downloaded from their
    published version and the charts uploaded and published (pointer last) by
    :func:`tasks.storage.atomic_dir`; the model must then be a local folder or an ``s3://`` model
    folder (:func:`resolve_s3_model_dir`).

    Raises:
        FileNotFoundError: no harmonised scene for the day, or no model.
        RegionError: the requested region intersects none of the day's scenes.

    """
    if cfg.is_remote_root():
        return _run_predict_s3(cfg, run_date, model_dir)
    day = day_run_key(run_date)
    root = cfg.resolved_root()
    scene_dir = stage_dir(root, "polar", "harmonise", day)
    scenes = sorted(scene_dir.glob("*.zarr"))
    if not scenes:
        raise FileNotFoundError(f"no harmonised scenes for {day} in {scene_dir}; run the harmonise "
                                "stage for that day first")
    model = resolve_model_dir(cfg, model_dir)
    loaded = load_model(model)
    final = stage_dir(root, "polar", "predict", day)
    products = _chart_day(cfg, loaded, scenes, [str(s) for s in scenes], final)
    return {"out_dir": str(final), "model_dir": str(loaded.model_dir), "day": day,
            "products": products}


def _chart_day(cfg: PolarConfig, loaded: LoadedIceModel, scenes: list[Path], inputs: list[str],
               final: Path | str, model_source: str | None = None) -> list[dict[str, Any]]:
    """Chart ``scenes`` into the output folder ``final`` (a path or an ``s3://`` URL) atomically.

    ``inputs`` are the scenes as the manifest names them; product paths name ``final``; the
    manifest's ``model_dir`` is ``model_source`` (default: the loaded model's folder).
    """
    region = Region.from_area(cfg.ingest.catalogue.area)
    products = []
    outside: list[str] = []
    with atomic_dir(final) as tmp:
        for scene in scenes:
            try:
                result = predict_scene(loaded, scene, tmp, cfg.predict, region=region)
            except RegionError as err:
                if region is None:
                    raise
                log.warning("%s", err)
                outside.append(str(err))
                continue
            for key in ("chart", "quicklook", "polygons"):
                name = Path(result[key]).name
                result[key] = str(final / name) if isinstance(final, Path) else f"{final}/{name}"
            products.append(result)
        if region is not None and not products:
            raise RegionError("\n".join(outside))
        extra: dict[str, Any] = {"model_dir": model_source or str(loaded.model_dir),
                                 "products": products}
        if region is not None:
            extra["region"] = region.record()
            extra["scenes_outside_region"] = len(outside)
        write_manifest(tmp, stage="predict", inputs=inputs,
                       config_hash=config_hash(cfg.predict),
                       counts={"scenes": len(scenes)},
                       extra=extra)
    return products


def resolve_s3_model_dir(cfg: PolarConfig, scratch: Path, model_dir: Path | None = None) -> Path:
    """Return a local model folder for a run on an ``s3://`` data root.

    ``model_dir`` or a local ``predict.model`` folder is used as it is; an ``s3://`` URL of a
    model folder (``model.json`` and weights, or a folder published by pointer as the train stage
    does on an ``s3://`` data root) is downloaded into ``scratch``; ``latest`` is the newest
    model published under ``{data_root}/polar/models`` (by its card's ``created``). Registry
    references are refused: the model registry is kept on a local data root only.
    """
    if model_dir is not None:
        return Path(model_dir)
    choice = cfg.predict.model
    if choice == "latest":
        choice = _latest_s3_model(str(cfg.storage_root()))
    if is_remote(choice):
        fs = s3_filesystem()
        url = normalise_s3_url(choice)
        if fs.exists(f"{url}/{POINTER_NAME}"):
            url = str(resolve_stage_dir(url))
        if not fs.exists(f"{url}/{MODEL_JSON}"):
            raise FileNotFoundError(
                f"predict.model {choice!r} holds no {MODEL_JSON}; give the s3:// URL of a model "
                "folder written by the polar train stage"
            )
        local = scratch / url.rsplit("/", 1)[-1]
        remote = sorted(fs.find(url))
        prefix = url[len("s3://"):] + "/"
        targets = [local / p[len(prefix):] for p in remote]
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
        fs.get(remote, [str(t) for t in targets])
        return local
    if is_registry_reference(choice):
        raise ValueError(
            f"predict.model {choice!r} looks in the model registry, but data_root "
            f"{cfg.data_root!r} is on S3 and the registry is kept on a local data root only; "
            "set predict.model to 'latest', a local model folder or the s3:// URL of one"
        )
    return resolve_model_dir(cfg)


def _latest_s3_model(root: str) -> str:
    """Return the URL of the newest model published under ``{root}/polar/models``."""
    fs = s3_filesystem()
    folder = f"{normalise_s3_url(root)}/polar/models"
    found = []
    for entry in (fs.ls(folder, detail=True) if fs.exists(folder) else []):
        url = f"s3://{entry['name']}"
        if entry.get("type") != "directory" or not fs.exists(f"{url}/{POINTER_NAME}"):
            continue
        try:
            card = json.loads(fs.cat_file(f"{resolve_stage_dir(url)}/{MODEL_JSON}"))
        except (FileNotFoundError, ValueError):
            log.warning("skipping %s: no readable %s", url, MODEL_JSON)
            continue
        if "created" in card:
            found.append((str(card["created"]), url))
    if not found:
        raise FileNotFoundError(
            f"no trained model under {folder}; run the polar train stage on this data_root "
            "first or set predict.model to a model folder")
    return max(found)[1]


def _run_predict_s3(cfg: PolarConfig, run_date: Any, model_dir: Path | None) -> dict[str, Any]:
    """:func:`run_predict` on an ``s3://`` data root (the outputs are the same files)."""
    day = day_run_key(run_date)
    root = cfg.storage_root()
    scene_dir = stage_location(root, "polar", "harmonise", day)
    with tempfile.TemporaryDirectory(prefix="eeflow-predict-") as scratch:
        try:
            local = download_stage_dir(scene_dir, Path(scratch) / "harmonise")
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"no harmonised scenes for {day} at {scene_dir}; run the harmonise stage for that "
                "day first"
            ) from err
        scenes = sorted(local.glob("*.zarr"))
        if not scenes:
            raise FileNotFoundError(f"no harmonised scenes for {day} in {scene_dir}; run the "
                                    "harmonise stage for that day first")
        if model_dir is None and cfg.predict.model == "latest":  # the newest model on S3
            cfg = cfg.model_copy(deep=True)
            cfg.predict.model = _latest_s3_model(str(root))
        loaded = load_model(resolve_s3_model_dir(cfg, Path(scratch) / "model", model_dir))
        source = (normalise_s3_url(cfg.predict.model)
                  if model_dir is None and is_remote(cfg.predict.model) else str(loaded.model_dir))
        final = stage_location(root, "polar", "predict", day)
        products = _chart_day(cfg, loaded, scenes, [f"{scene_dir}/{s.name}" for s in scenes],
                              final, model_source=source)
    return {"out_dir": str(final), "model_dir": source, "day": day, "products": products}
