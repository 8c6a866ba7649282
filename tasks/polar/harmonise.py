"""Harmonise Sentinel-1 EW GRD scenes: noise removal, calibration, multilook, dB, geocoding.

Per scene (:func:`harmonise_scene`):

1. thermal-noise removal: ``DN^2 - N`` with ``N`` the noise range LUT x noise azimuth LUT;
2. calibration: ``sigma0 = (DN^2 - N) / A_sigma^2`` with the sigmaNought LUT (bilinear);
3. optional block averaging to ``pixel_spacing_m`` (an integer factor of the product spacing;
   1 for EW GRDM at 40 m);
4. ``multilook`` x ``multilook`` boxcar over valid pixels (in linear power, so the local mean stays
   unbiased), all in radar geometry;
5. geocoding (:mod:`tasks.sentinel1.geocode`): a thin-plate spline through the annotation's
   geolocation grid (tie points moved to sea level) maps every pixel centre of a north-up grid in
   ``target_crs`` back to a fractional image position, where sigma0 (linear) and the incidence
   angle are sampled bilinearly; then the clip to ``db_floor`` and conversion to dB. The fit's
   leave-one-out residuals go into the attributes and the manifest, and a scene whose p95 exceeds
   ``max_geocoding_residual_m`` is refused.

The result is a zarr v3 store following :mod:`tasks.polar.schema`: ``backscatter`` float32
(band = HH, HV, incidence; y, x), ``land_mask`` and ``valid_mask`` uint8, with ``crs``,
``transform`` (GDAL geotransform of the north-up grid), ``scene_id``, ``start_time``,
``pixel_spacing_m``, ``geocoding`` (residuals), ``noise_lut_all_zero`` (polarisations whose
noise LUT is all zeros: noise removal did nothing there, also logged and listed in the manifest's
``warnings``) attributes and a rioxarray ``spatial_ref``. Pixels
outside the image footprint are NaN with ``valid_mask`` 0. Scenes are processed in ``chunk`` x
``chunk`` map tiles as Dask tasks, each reading only the radar window its tile falls in and writing
its own zarr chunk: memory per task is a few tiles, never the whole scene.

On an ``s3://`` data root with a distributed Dask cluster (:func:`tasks.staging.on_s3_workers`)
nothing goes through the driver's disk: a worker task opens the product (copied from the ingest
output's published version into that worker's own temporary folder) to fit the grid, the tile
tasks write their chunks straight into a new version of the day's output on S3, and the driver
publishes it by its pointer last. Workers need no file system shared with the driver.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import tempfile
import time
import uuid
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from tasks.config.common import config_hash
from tasks.config.polar import HarmoniseConfig, PolarConfig
from tasks.fs import is_remote
from tasks.fs import join as fs_join
from tasks.polar.schema import BACKSCATTER_VAR, BANDS, LAND_MASK_VAR, VALID_MASK_VAR
from tasks.sentinel1.geocode import (
    Geocoding,
    GeocodingError,
    check_residuals,
    fit_geocoding,
    image_coordinates,
    map_grid,
)
from tasks.sentinel1.lut import interpolate_range_vectors
from tasks.sentinel1.safe import SafeProduct, open_safe
from tasks.staging import (
    drop_worker_copies,
    on_s3_workers,
    worker_local_copy,
    write_s3_manifest,
    zarr_store,
)
from tasks.storage import (
    atomic_dir,
    atomic_s3_version,
    day_run_key,
    download_stage_dir,
    read_manifest,
    resolve_stage_dir,
    stage_location,
    write_manifest,
    zarr_array,
)

log = logging.getLogger(__name__)

POLARISATIONS = ("HH", "HV")


# ---------------------------------------------------------------------------- pure transforms
def remove_noise_and_calibrate(
    dn: np.ndarray, noise_power: np.ndarray, sigma_lut: np.ndarray, noise_removal: bool = True
) -> np.ndarray:
    """Return sigma0 (linear, float32) = (DN^2 - noise) / A_sigma^2; may be < 0 before multilook.

    Args:
        dn: uint16 digital numbers (any 2-D shape).
        noise_power: thermal noise power in DN^2 units, same shape.
        sigma_lut: sigmaNought LUT (amplitude), same shape.
        noise_removal: subtract the noise power (False: plain calibration).

    """
    power = dn.astype(np.float32) ** 2
    if noise_removal:
        power -= noise_power.astype(np.float32)
    return power / sigma_lut.astype(np.float32) ** 2


def block_average(
    values: np.ndarray, weights: np.ndarray, factor: int
) -> tuple[np.ndarray, np.ndarray]:
    """Average ``factor`` x ``factor`` blocks weighted by ``weights`` (0/1); drop the remainder.

    Returns:
        ``(mean, weight_fraction)`` of shape ``(rows // factor, cols // factor)``.

    """
    if factor == 1:
        return values, weights.astype(np.float32)
    r = values.shape[0] // factor * factor
    c = values.shape[1] // factor * factor
    shape = (r // factor, factor, c // factor, factor)
    w = weights[:r, :c].astype(np.float32).reshape(shape).sum(axis=(1, 3))
    s = (values[:r, :c] * weights[:r, :c]).reshape(shape).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(w > 0, s / np.maximum(w, 1e-12), 0.0).astype(np.float32), w / factor**2


def boxcar(values: np.ndarray, weights: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted ``size`` x ``size`` boxcar mean (edges: nearest); return (mean, weight share)."""
    from scipy.ndimage import uniform_filter

    w = weights.astype(np.float32)
    if size == 1:
        return values.astype(np.float32), w
    num = uniform_filter(np.where(w > 0, values, 0.0).astype(np.float32) * w, size, mode="nearest")
    den = uniform_filter(w, size, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(den > 1e-6, num / np.maximum(den, 1e-6), 0.0)
    return mean.astype(np.float32), den


def to_db(sigma0: np.ndarray, db_floor: float) -> np.ndarray:
    """Convert linear sigma0 to dB, clipping at ``db_floor`` (also for values <= 0)."""
    floor = 10.0 ** (db_floor / 10.0)
    return (10.0 * np.log10(np.maximum(sigma0, floor))).astype(np.float32)


def noise_lut_warnings(product: SafeProduct, noise_removal: bool) -> list[str]:
    """Warn (log, and return the messages for the manifest) about all-zero noise LUTs.

    A noise LUT of zeros (real in products of older IPF versions) makes thermal-noise removal
    subtract nothing: sigma0 keeps the noise floor, biased high where the signal is weak (HV
    over calm water and level ice). Nothing to warn about when ``noise_removal`` is off.
    """
    zero = product.zero_noise_luts(POLARISATIONS)
    if not zero or not noise_removal:
        return []
    formats = sorted({product.noise(pol).format for pol in zero})
    message = (
        f"{product.name}: thermal-noise LUT of {', '.join(sorted(zero))} is all zeros "
        f"({', '.join(zero[pol] for pol in sorted(zero))}; {' / '.join(formats)} format), so "
        "noise removal subtracts nothing and sigma0 keeps the noise floor (biased high over "
        "dark water / level ice, above all in HV). Use a reprocessed product with a noise LUT, "
        "or read its weak-signal areas with care"
    )
    log.warning(message)
    return [message]


# ---------------------------------------------------------------------------- grid and land
class OutputGrid(TypedDict):
    """The north-up output grid of a scene (:func:`output_grid`)."""

    factor: int  # block-averaging factor
    block_shape: tuple[int, int]  # image size in blocks
    shape: tuple[int, int]  # (height, width) of the grid
    transform: Any  # affine.Affine of the grid in the target CRS
    geocoding: Geocoding
    affine_rms_m: float
    pixel_spacing_m: float


def output_grid(product: SafeProduct, cfg: HarmoniseConfig) -> OutputGrid:
    """Output grid of a scene and its geocoding.

    Returns:
        ``{"factor", "block_shape", "shape", "transform", "geocoding", "affine_rms_m",
        "pixel_spacing_m"}``: the block-averaging factor, the image size in blocks, the
        ``(height, width)`` and ``affine.Affine`` of the north-up grid in ``cfg.target_crs``
        (the tie points' bounding box, edges on multiples of the spacing), and the fitted
        :class:`tasks.sentinel1.geocode.Geocoding`.

    Raises:
        GeocodingError: the fit's leave-one-out p95 exceeds ``cfg.max_geocoding_residual_m``.

    """
    az, rg = product.pixel_spacing
    spacing = max(az, rg)
    factor = max(1, int(round(cfg.pixel_spacing_m / spacing)))
    lines, samples = product.shape
    block_shape = (lines // factor, samples // factor)
    if min(block_shape) < cfg.multilook:
        raise ValueError(
            f"{product.path}: scene of {lines}x{samples} pixels is too small for "
            f"pixel_spacing_m={cfg.pixel_spacing_m} and multilook={cfg.multilook}"
        )
    try:
        geocoding = fit_geocoding(
            product.geolocation_grid(), cfg.target_crs, cfg.geocoding, cfg.geocode_to_sea_level
        )
    except GeocodingError as err:
        raise GeocodingError(f"{product.name}: {err}") from err
    check_residuals(geocoding, product.name, cfg.max_geocoding_residual_m)
    transform, shape = map_grid(geocoding.tie_x, geocoding.tie_y, spacing * factor)
    return {
        "factor": factor,
        "block_shape": block_shape,
        "shape": shape,
        "transform": transform,
        "geocoding": geocoding,
        "affine_rms_m": float(geocoding.residuals["affine_rms_m"]),
        "pixel_spacing_m": spacing * factor,
    }


def _read_land_geometries(path: str | Path, crs: str) -> list[Any]:
    """Read land polygons from any vector file (GeoJSON, GPKG, shapefile) into ``crs``."""
    import geopandas as gpd

    try:
        frame = gpd.read_file(path)
    except Exception as err:  # pyogrio raises several types for unreadable files
        raise ValueError(f"land mask {path}: cannot be read as a vector file: {err}") from err
    if frame.crs is None:
        raise ValueError(
            f"land mask {path}: has no CRS; write it with a CRS (e.g. a GeoJSON "
            "'crs' member or EPSG:4326 coordinates)"
        )
    frame = frame.to_crs(crs)
    return [g for g in frame.geometry if g is not None and not g.is_empty]


def rasterise_land(
    geometries: list[Any], transform: Any, rows: slice, cols: slice
) -> np.ndarray:
    """Burn land polygons (already in the grid CRS) into uint8 ``rows`` x ``cols`` of the grid."""
    from affine import Affine
    from rasterio import features

    height = rows.stop - rows.start
    width = cols.stop - cols.start
    if not geometries:
        return np.zeros((height, width), dtype=np.uint8)
    window_transform = transform @ Affine.translation(cols.start, rows.start)
    return features.rasterize(
        ((g, 1) for g in geometries),
        out_shape=(height, width),
        transform=window_transform,
        fill=0,
        dtype="uint8",
    )


# ---------------------------------------------------------------------------- per tile
@lru_cache(maxsize=4)
def _open_for_run(safe_path: str, run_token: str) -> SafeProduct:
    """Open a product once per process and harmonise run (``run_token``), not once per tile.

    Parsing the annotation, calibration and noise XML of a real EW scene takes about a second;
    a scene has hundreds of tiles. The token keeps a later run from seeing a stale product. An
    ``s3://`` product is first copied into this process's temporary folder (once per run).
    """
    return open_safe(worker_local_copy(safe_path, run_token) if is_remote(safe_path)
                     else safe_path)


def _radar_window(
    product: SafeProduct,
    cfg: HarmoniseConfig,
    factor: int,
    blocks: tuple[int, int, int, int],
) -> tuple[list[np.ndarray], np.ndarray]:
    """Calibrated, denoised, block-averaged and boxcar-filtered sigma0 (linear) in radar geometry.

    ``blocks`` = ``(b0, b1, p0, p1)``: block rows and columns of the window. Returns the HH and
    HV sigma0 arrays and the smaller of their valid-pixel shares (same shape).
    """
    b0, b1, p0, p1 = blocks
    window = (slice(b0 * factor, b1 * factor), slice(p0 * factor, p1 * factor))
    bands = []
    valid_frac: np.ndarray | None = None
    for pol in POLARISATIONS:
        dn = product.read_dn(pol, window)
        valid = dn > 0
        sigma0 = remove_noise_and_calibrate(
            dn,
            product.noise_lut(pol, window),
            product.calibration_lut(pol, window),
            cfg.noise_removal,
        )
        del dn
        sigma0, weight = block_average(sigma0, valid, factor)
        sigma0, frac = boxcar(sigma0, weight, cfg.multilook)
        valid_frac = frac if valid_frac is None else np.minimum(valid_frac, frac)
        bands.append(sigma0)
    assert valid_frac is not None
    return bands, valid_frac


def _process_tile(
    safe_path: str,
    run_token: str,
    out_zarr: str,
    cfg_json: dict[str, Any],
    grid: OutputGrid,
    tile: tuple[int, int, int, int],
    land_geometries: list[Any],
) -> dict[str, float]:
    """Compute and write map-grid rows ``tile[0]:tile[1]`` x cols ``tile[2]:tile[3]``.

    The tile's pixel centres are geocoded back to fractional image positions; only the radar
    window they fall in (plus the boxcar halo) is read and processed, then sampled bilinearly
    (in linear power; incidence from the same window and positions). Returns small statistics.
    """
    import zarr
    from scipy.ndimage import map_coordinates

    started = time.perf_counter()
    cfg = HarmoniseConfig.model_validate(cfg_json)
    r0, r1, c0, c1 = tile
    factor = grid["factor"]
    n_lines, n_samples = grid["block_shape"]
    line, pixel = image_coordinates(grid["geocoding"], grid["transform"], (r0, r1), (c0, c1))
    warp_s = time.perf_counter() - started
    block_line = (line - (factor - 1) / 2) / factor
    block_pixel = (pixel - (factor - 1) / 2) / factor
    del line, pixel
    inside = (
        (block_line >= -0.5)
        & (block_line <= n_lines - 0.5)
        & (block_pixel >= -0.5)
        & (block_pixel <= n_samples - 0.5)
    )
    h, w = r1 - r0, c1 - c0
    backscatter = np.full((len(BANDS), h, w), np.nan, dtype=np.float32)
    valid_mask = np.zeros((h, w), dtype=np.uint8)
    if inside.any():
        halo = cfg.multilook // 2 + 2
        b0 = max(0, int(np.floor(block_line[inside].min())) - halo)
        b1 = min(n_lines, int(np.ceil(block_line[inside].max())) + halo + 1)
        p0 = max(0, int(np.floor(block_pixel[inside].min())) - halo)
        p1 = min(n_samples, int(np.ceil(block_pixel[inside].max())) + halo + 1)
        product = _open_for_run(safe_path, run_token)
        sigma0, valid_frac = _radar_window(product, cfg, factor, (b0, b1, p0, p1))
        sampling_started = time.perf_counter()
        coords = np.stack([block_line[inside] - b0, block_pixel[inside] - p0])
        frac = map_coordinates(valid_frac, coords, order=1, mode="nearest")
        valid = frac >= 0.5
        geocode_rows = np.arange(b0, b1) * factor + (factor - 1) / 2
        geocode_cols = np.arange(p0, p1) * factor + (factor - 1) / 2
        grid_pts = product.geolocation_grid()
        incidence = interpolate_range_vectors(
            grid_pts.as_range_vectors(grid_pts.incidence_angle), geocode_rows, geocode_cols
        )
        for k, band in enumerate([*sigma0, incidence]):
            values = map_coordinates(band, coords, order=1, mode="nearest")
            if k < len(sigma0):
                values = np.where(valid, to_db(values, cfg.db_floor), np.nan)
            backscatter[k][inside] = values
        valid_mask[inside] = valid
        warp_s += time.perf_counter() - sampling_started
    land = rasterise_land(land_geometries, grid["transform"], slice(r0, r1), slice(c0, c1))
    group = zarr.open_group(zarr_store(out_zarr, read_only=False), mode="r+")
    zarr_array(group, BACKSCATTER_VAR)[:, r0:r1, c0:c1] = backscatter
    zarr_array(group, LAND_MASK_VAR)[r0:r1, c0:c1] = land
    zarr_array(group, VALID_MASK_VAR)[r0:r1, c0:c1] = valid_mask
    ok = (valid_mask == 1) & (land == 0)
    return {
        "valid_pixels": float(valid_mask.sum()),
        "land_pixels": float(land.sum()),
        "hh_db_sum": float(np.nansum(backscatter[0][ok])),
        "hv_db_sum": float(np.nansum(backscatter[1][ok])),
        "sea_pixels": float(ok.sum()),
        "warp_s": warp_s,
        "tile_s": time.perf_counter() - started,
    }


def _template(grid: OutputGrid, cfg: HarmoniseConfig, attrs: dict[str, Any]) -> Any:
    import dask.array as da
    import rioxarray  # noqa: F401 - registers the .rio accessor
    import xarray as xr
    from affine import Affine

    h, w = grid["shape"]
    chunk = cfg.chunk
    t: Affine = grid["transform"]
    coords: dict[str, Any] = {"band": np.array(BANDS, dtype=object)}
    axis_aligned = abs(t.b) < 1e-9 * abs(t.a) and abs(t.d) < 1e-9 * abs(t.e)
    if axis_aligned:
        coords["x"] = t.c + t.a * (np.arange(w) + 0.5)
        coords["y"] = t.f + t.e * (np.arange(h) + 0.5)
    ds = xr.Dataset(
        {
            BACKSCATTER_VAR: (
                ("band", "y", "x"),
                da.full(
                    (len(BANDS), h, w), np.nan, dtype=np.float32, chunks=(len(BANDS), chunk, chunk)
                ),
            ),
            LAND_MASK_VAR: (("y", "x"), da.zeros((h, w), dtype=np.uint8, chunks=(chunk, chunk))),
            VALID_MASK_VAR: (("y", "x"), da.zeros((h, w), dtype=np.uint8, chunks=(chunk, chunk))),
        },
        coords=coords,
        attrs=attrs,
    )
    ds[BACKSCATTER_VAR].attrs.update(
        units="dB (HH, HV sigma0); degrees (incidence)",
        long_name="sigma0 HH, sigma0 HV (thermal-noise removed, 3x3 boxcar), incidence angle",
    )
    ds[LAND_MASK_VAR].attrs.update(long_name="land (1) / sea (0)")
    ds[VALID_MASK_VAR].attrs.update(long_name="data present (1)")
    ds = ds.rio.write_crs(cfg.target_crs)
    ds = ds.rio.write_transform(t)
    ds.attrs.update(attrs)  # after rioxarray, which drops a 'crs'/'transform' attribute
    return ds


def _scene_attrs(product: SafeProduct, grid: OutputGrid, cfg: HarmoniseConfig,
                 land_source: Any, warnings_found: list[str]) -> dict[str, Any]:
    """Return the store attributes (grid, scene, processing, geocoding residuals)."""
    return {
        "crs": cfg.target_crs,
        "transform": list(grid["transform"].to_gdal()),
        "scene_id": product.scene_id,
        "start_time": product.start_time.isoformat(),
        "stop_time": product.stop_time.isoformat(),
        "pixel_spacing_m": grid["pixel_spacing_m"],
        "mission": product.mission,
        "mode": product.mode,
        "multilook": cfg.multilook,
        "noise_removal": int(cfg.noise_removal),
        "affine_rms_m": grid["affine_rms_m"],
        "geocoding": dict(grid["geocoding"].residuals),
        "land_mask_source": str(land_source) if land_source else "none",
        "source_product": product.path.name,
        "noise_lut_all_zero": sorted(product.zero_noise_luts(POLARISATIONS)),
        "warnings": warnings_found,
    }


def land_per_tile(
    geometries: list[Any], transform: Any, tiles: list[tuple[int, int, int, int]]
) -> list[list[Any]]:
    """Per tile ``(r0, r1, c0, c1)`` of the grid, the land polygons whose bounding box meets it.

    A polygon whose bounding box misses a tile (widened by one pixel) burns no pixel centre of
    it, so :func:`rasterise_land` of the subset gives the same mask as of all polygons; the
    subsets keep the input order. A tile task then converts and burns a few polygons instead of
    all of them (thousands for a 10,000 x 10,000 scene), and a distributed scheduler ships it
    only those.
    """
    if not geometries:
        return [[] for _ in tiles]
    import shapely

    boxes = []
    for r0, r1, c0, c1 in tiles:
        corners = [transform @ (c, r) for c in (c0 - 1, c1 + 1) for r in (r0 - 1, r1 + 1)]
        xs = [x for x, _ in corners]
        ys = [y for _, y in corners]
        boxes.append(shapely.box(min(xs), min(ys), max(xs), max(ys)))
    tile_index, geometry_index = shapely.STRtree(geometries).query(boxes)
    order = np.lexsort((geometry_index, tile_index))
    subsets: list[list[Any]] = [[] for _ in tiles]
    for t, g in zip(tile_index[order], geometry_index[order], strict=True):
        subsets[int(t)].append(geometries[int(g)])
    return subsets


def _compute_tiles(product: SafeProduct | str, grid: OutputGrid, cfg: HarmoniseConfig,
                   land_geometries: list[Any], tmp: Path | str, run_token: str | None = None
                   ) -> tuple[dict[str, float], ...]:
    """Process every ``cfg.chunk`` tile into the store at ``tmp`` (Dask); return tile stats.

    ``product`` is the opened product or its location (an ``s3://`` URL the tasks copy).
    """
    import dask

    h, w = grid["shape"]
    grid_ref = dask.delayed(grid, pure=True)  # shipped once, not once per task
    run_token = run_token or uuid.uuid4().hex
    safe_path = product if isinstance(product, str) else str(product.path)
    tiles = [
        (r0, min(h, r0 + cfg.chunk), c0, min(w, c0 + cfg.chunk))
        for r0 in range(0, h, cfg.chunk)
        for c0 in range(0, w, cfg.chunk)
    ]
    land = land_per_tile(land_geometries, grid["transform"], tiles)
    tasks = [
        dask.delayed(_process_tile)(
            safe_path,
            run_token,
            str(tmp),
            cfg.model_dump(mode="json"),
            grid_ref,
            tile,
            tile_land,
        )
        for tile, tile_land in zip(tiles, land, strict=True)
    ]
    return dask.compute(*tasks)


def _prepare_scene(safe_path: str | Path, cfg: HarmoniseConfig,
                   land_mask_path: str | Path | None, run_token: str) -> dict[str, Any]:
    """Open and check a product, fit its output grid, read its land polygons.

    Runs where the product is readable: in this process for a local product, in a worker task
    (which copies an ``s3://`` product and land file, see :func:`_open_for_run`) otherwise.
    Returns what :func:`harmonise_scene` needs: ``name``, ``scene_id``, ``path``, ``grid``,
    ``land`` (polygons in the grid CRS), ``attrs``, ``warnings``.
    """
    if is_remote(str(safe_path)):
        product = _open_for_run(str(safe_path), run_token)
    else:
        product = open_safe(safe_path)
    product.require_mode(cfg.required_mode).require_product_type("GRD")
    product.require_polarisations(POLARISATIONS)
    warnings_found = noise_lut_warnings(product, cfg.noise_removal)
    grid = output_grid(product, cfg)
    land_source = land_mask_path or cfg.land_polygons
    land_geometries = (
        _read_land_geometries(worker_local_copy(land_source, run_token), cfg.target_crs)
        if land_source else [])
    if not land_source:
        log.warning("%s: no land polygons given; land_mask is all 0", product.name)
    return {
        "name": product.name,
        "scene_id": product.scene_id,
        "path": str(product.path),
        "grid": grid,
        "land": land_geometries,
        "attrs": _scene_attrs(product, grid, cfg, land_source, warnings_found),
        "warnings": warnings_found,
    }


def harmonise_scene(
    safe_path: str | Path,
    out_zarr: str | Path,
    cfg: HarmoniseConfig,
    land_mask_path: str | Path | None = None,
    *,
    client: Any = None,
    run_token: str | None = None,
    land_mask_source: str | None = None,
) -> dict[str, Any]:
    """Harmonise one Sentinel-1 EW GRD product into a zarr store (see module docstring).

    Runs on the active Dask scheduler (a distributed client if one is open, else threads).

    Args:
        safe_path: ``.SAFE`` folder or ``.zip``; an ``s3://`` URL needs ``client``.
        out_zarr: output store path; replaced atomically. An ``s3://`` URL (a store inside an
            unpublished version, which its publisher makes atomic) is written in place.
        cfg: harmonise settings.
        land_mask_path: vector file of land polygons (any CRS); default ``cfg.land_polygons``;
            none: ``land_mask`` is all 0 and the attribute ``land_mask_source`` says so.
        client: a ``distributed.Client``: the product is opened and checked by a task on its
            workers (where the tiles read it), not in this process.
        run_token: names the run's copies of ``s3://`` inputs on the workers
            (:func:`tasks.staging.worker_local_copy`); default: a fresh one.
        land_mask_source: where ``land_mask_path`` came from, recorded in the attribute
            ``land_mask_source`` when ``land_mask_path`` is a temporary local copy (a download
            of an ``s3://`` ingest output); default: ``land_mask_path`` itself.

    Returns:
        ``{"zarr", "scene_id", "shape", "valid_pixels", "land_pixels", "affine_rms_m",
        "geocoding", "hh_db_mean", "hv_db_mean", "warp_share"}``; ``geocoding`` holds the fit's
        leave-one-out error at the interior tie points (``loo_median_m``, ``loo_p95_m``,
        ``loo_max_m``); ``warp_share`` is the share of the tasks' time spent geocoding and
        resampling (the rest: reading, calibration, multilook, land, writing).

    Raises:
        SafeError: wrong mode / product type, missing HV, corrupt files (names the file).
        GeocodingError: the geolocation grid cannot be fitted within
            ``cfg.max_geocoding_residual_m`` (names the scene and the residual).

    """
    import zarr

    run_token = run_token or uuid.uuid4().hex
    if client is not None:
        scene = client.submit(_prepare_scene, str(safe_path), cfg, land_mask_path, run_token,
                              pure=False).result()
    elif is_remote(str(safe_path)):
        raise ValueError(f"{safe_path}: an s3:// product is read by Dask workers; pass client")
    else:
        scene = _prepare_scene(safe_path, cfg, land_mask_path, run_token)
    grid, attrs = scene["grid"], scene["attrs"]
    if land_mask_source is not None and land_mask_path is not None:
        attrs["land_mask_source"] = land_mask_source
    h, w = grid["shape"]
    log.info(
        "harmonising %s -> %s (%dx%d, %d tiles; geocoding %s)",
        scene["name"],
        out_zarr,
        h,
        w,
        math.ceil(h / cfg.chunk) * math.ceil(w / cfg.chunk),
        grid["geocoding"].residuals,
    )
    source = str(safe_path) if is_remote(str(safe_path)) else scene["path"]
    output: Any = (contextlib.nullcontext(str(out_zarr)) if is_remote(str(out_zarr))
                   else atomic_dir(Path(out_zarr)))
    with output as tmp:
        store = zarr_store(tmp, read_only=False) if isinstance(tmp, str) else tmp
        _template(grid, cfg, attrs).to_zarr(
            store, mode="w", compute=False, zarr_format=3, consolidated=False
        )
        stats = _compute_tiles(source, grid, cfg, scene["land"], tmp, run_token)
        with warnings.catch_warnings():  # consolidated metadata is a zarr v3 extension
            warnings.simplefilter("ignore", UserWarning)
            zarr.consolidate_metadata(store if isinstance(tmp, str) else str(tmp))
    warnings_found = scene["warnings"]
    out_zarr = out_zarr if is_remote(str(out_zarr)) else Path(out_zarr)
    total = {k: sum(s[k] for s in stats) for k in stats[0]}
    sea = max(total["sea_pixels"], 1.0)
    return {
        "zarr": str(out_zarr),
        "scene_id": scene["scene_id"],
        "shape": list(grid["shape"]),
        "valid_pixels": int(total["valid_pixels"]),
        "land_pixels": int(total["land_pixels"]),
        "affine_rms_m": grid["affine_rms_m"],
        "geocoding": dict(grid["geocoding"].residuals),
        "hh_db_mean": total["hh_db_sum"] / sea,
        "hv_db_mean": total["hv_db_sum"] / sea,
        "warp_share": total["warp_s"] / max(total["tile_s"], 1e-9),
        "noise_lut_all_zero": attrs["noise_lut_all_zero"],
        "warnings": warnings_found,
    }


def run_harmonise(cfg: PolarConfig, run_date: dt.date | str) -> dict[str, Any]:
    """Harmonise every product of the day's ingest folder.

    Reads ``{root}/polar/ingest/{day}/manifest.json`` (written by
    :func:`tasks.polar.ingest.ingest_day`) and writes ``{root}/polar/harmonise/{day}/
    {scene_id}.zarr`` plus ``manifest.json``, replacing the day's folder atomically.

    Returns:
        ``{"run_key", "output_dir", "scenes": [per-scene summaries], "n_scenes"}``.

    """
    from tasks.dask_cluster import dask_client

    day = day_run_key(run_date)
    root = cfg.storage_root()  # a local path or an s3:// URL
    ingest_dir = stage_location(root, "polar", "ingest", day)
    try:
        ingest = read_manifest(ingest_dir)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"no ingest output for {day} at {ingest_dir}: run the ingest stage first "
            f"(eeflow polar ingest --run-date {day})"
        ) from err
    scenes = ingest.get("scenes", [])
    if not scenes:
        raise ValueError(f"ingest manifest {ingest_dir}/manifest.json lists no scenes for {day}")
    out_dir = stage_location(root, "polar", "harmonise", day)
    if on_s3_workers(cfg):
        return _harmonise_on_workers(cfg, day, str(ingest_dir), scenes, str(out_dir))
    summaries = []
    with contextlib.ExitStack() as stack:
        # on S3 the ingest output is downloaded once; a local one is read where it is
        if isinstance(ingest_dir, Path):
            local_ingest = ingest_dir
            source = None  # the attribute names the file read
        else:
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="eeflow-ingest-"))
            source = str(resolve_stage_dir(ingest_dir))  # the version read, as on the workers
            local_ingest = download_stage_dir(source, Path(scratch))  # that version, no re-read
        stack.enter_context(dask_client(cfg.dask))
        tmp = stack.enter_context(atomic_dir(out_dir))
        for scene in scenes:
            land = scene.get("land_mask")
            summaries.append(
                harmonise_scene(
                    local_ingest / scene["product"],
                    tmp / f"{scene['scene_id']}.zarr",
                    cfg.harmonise,
                    land_mask_path=local_ingest / land if land else None,
                    land_mask_source=fs_join(source, land) if land and source else None,
                )
            )
        for s in summaries:
            s["zarr"] = f"{out_dir}/{Path(s['zarr']).name}"
        write_manifest(tmp, **_manifest(cfg, day, str(ingest_dir), scenes, summaries))
    return {
        "run_key": day,
        "output_dir": str(out_dir),
        "n_scenes": len(summaries),
        "scenes": summaries,
    }


def _manifest(cfg: PolarConfig, day: str, ingest_dir: str, scenes: list[dict[str, Any]],
              summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the arguments of the day's ``manifest.json`` (:func:`write_manifest`)."""
    return {
        "stage": "harmonise",
        "inputs": [f"{ingest_dir}/{s['product']}" for s in scenes],
        "config_hash": config_hash(cfg.harmonise),
        "counts": {
            "scenes": len(summaries),
            "valid_pixels": sum(s["valid_pixels"] for s in summaries),
        },
        "extra": {
            "run_key": day,
            "scenes": summaries,
            "warnings": [w for s in summaries for w in s["warnings"]],
        },
    }


def _harmonise_on_workers(cfg: PolarConfig, day: str, ingest_dir: str,
                          scenes: list[dict[str, Any]], out_dir: str) -> dict[str, Any]:
    """:func:`run_harmonise` on S3 with a distributed cluster: no file through the driver.

    The products are read by worker tasks from the ingest output's published version (each
    worker copies a product it needs once, :func:`tasks.staging.worker_local_copy`, and drops
    the copies at the end); the tiles are written into a new version of ``out_dir``, published
    by its pointer after the manifest, so a failure leaves the previous output.
    """
    from tasks.dask_cluster import dask_client

    source = str(resolve_stage_dir(ingest_dir))
    run_token = uuid.uuid4().hex
    summaries = []
    with dask_client(cfg.dask) as client:
        try:
            with atomic_s3_version(out_dir) as version:
                for scene in scenes:
                    land = scene.get("land_mask")
                    summaries.append(harmonise_scene(
                        fs_join(source, scene["product"]),
                        fs_join(version, f"{scene['scene_id']}.zarr"),
                        cfg.harmonise,
                        land_mask_path=fs_join(source, land) if land else None,
                        client=client, run_token=run_token,
                    ))
                for s in summaries:
                    s["zarr"] = f"{out_dir}/{s['zarr'].rsplit('/', 1)[-1]}"
                write_s3_manifest(version, **_manifest(cfg, day, ingest_dir, scenes, summaries))
        finally:
            try:  # best effort: a copy left behind is removed with the worker's TMPDIR
                client.run(drop_worker_copies, run_token)
            except Exception as err:  # noqa: BLE001 - must not hide the stage's own error
                log.warning("could not drop the workers' input copies of run %s: %s",
                            run_token, err)
    return {"run_key": day, "output_dir": out_dir, "n_scenes": len(summaries),
            "scenes": summaries}
