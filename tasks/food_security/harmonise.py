"""Harmonise: cloud/snow masking and 12 monthly median composites per tile and agronomic year.

For every tile the acquisitions of the agronomic year (1 September .. 31 August) are read region
by region (:func:`region_shape`: the whole tile up to :data:`REGION_MAX_PX` pixels, else blocks of
whole zarr chunks and whole GeoTIFF blocks; one Dask task per region, so memory is bounded by one
region: its float32 composite and two months of uint16 DN, not by the tile or the year). Within a
region each band and SCL file is opened and decoded once (local deflate GeoTIFFs directly with
libdeflate, :mod:`tasks.sentinel2.geotiff`; others through rasterio), 20 m rasters are resampled
once, reader threads read the next month while the current one is composited, and the median is
computed on the DN (:func:`median_kernel`); gap filling and the zarr write then run chunk by chunk
on the same threads. A single region is composited in-process, without a cluster.
A pixel observation is valid when its SCL class is not in
``harmonise.masked_scl_classes`` (default 0 nodata, 1 saturated, 3 shadow, 8/9 cloud, 10 cirrus,
11 snow) and every band has data. Per pixel, band and month the composite is the median of the
valid observations (the mean of the two middle values for an even count).

Gap filling (``harmonise.gap_fill``), for months with no valid observation at a pixel:
``linear`` interpolates linearly in time (month index) between the nearest earlier and later
months with data; months before the first / after the last month with data take the nearest
valid month (no extrapolation); ``nearest`` takes the nearest valid month (ties: the earlier);
``none`` leaves NaN. Filled months are flagged in ``gap_filled``; a pixel with no valid
observation in the whole year stays NaN and is flagged in all months.

Output per :mod:`tasks.food_security.schema`: ``{root}/food_security/harmonise/{agronomic_year}/
{tile}.zarr``, compressed losslessly as :data:`STORE_COMPRESSION` says.

On an ``s3://`` data root with a distributed Dask cluster (:func:`tasks.staging.on_s3_workers`)
nothing goes through the driver's disk (:func:`run_harmonise_on_s3`): the driver lists the
published ingest version's STAC items and reads each tile's grid from its B02 header, the region
tasks read the band windows they need straight from S3 (GDAL ``/vsis3/``: only the GeoTIFF blocks
of the window), write their zarr chunks into a new version of the year's output on S3, and the
driver publishes it by its pointer last. Workers need no file system shared with the driver.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import rasterio
from rasterio.windows import Window

from tasks.config.common import config_hash
from tasks.config.food_security import FoodSecurityConfig
from tasks.dask_cluster import dask_client
from tasks.domain.crops import S2_BANDS
from tasks.errors import EeflowError
from tasks.fs import is_remote, s3_filesystem
from tasks.fs import join as fs_join
from tasks.sentinel2.l2a import (
    GDAL_READ_OPTIONS,
    NODATA_DN,
    SCL_ASSET,
    L2AAcquisition,
    _date_of_item_folder,
    acquisition_from_item,
    list_acquisitions,
    read_acquisition_dn,
    read_grid,
)
from tasks.sentinel2.tiles import TileGrid
from tasks.staging import (
    gdal_s3_environment,
    gdal_s3_options,
    vsis3_path,
    write_s3_manifest,
    zarr_store,
)
from tasks.storage import (
    agronomic_year,
    agronomic_year_key,
    atomic_dir,
    atomic_s3_version,
    resolve_stage_dir,
    stage_dir,
    stage_location,
    write_manifest,
    zarr_array,
)

log = logging.getLogger(__name__)
N_MONTHS = 12


class NoDataError(EeflowError, FileNotFoundError):
    """No acquisition exists for the requested agronomic year / tiles."""


def season_months(season_start: dt.date) -> list[str]:
    """Return the 12 ``YYYY-MM`` months of an agronomic year starting on ``season_start``."""
    out = []
    year, month = season_start.year, season_start.month
    for _ in range(N_MONTHS):
        out.append(f"{year:04d}-{month:02d}")
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return out


def month_index(date: dt.date, season_start: dt.date) -> int:
    """Return 0..11: the month of ``date`` counted from the season's first month."""
    return (date.year - season_start.year) * 12 + date.month - season_start.month


def monthly_median_composite(
    reflectance: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Median over time of the valid observations.

    Args:
        reflectance: float32 (time, band, y, x).
        valid: bool (time, y, x), True where the observation is usable.

    Returns:
        (median float32 (band, y, x), NaN where no valid observation; count uint16 (y, x)).

    """
    n_time = reflectance.shape[0]
    count = valid.sum(axis=0).astype(np.uint16)
    if n_time == 0:
        shape = reflectance.shape[1:]
        return np.full(shape, np.nan, dtype=np.float32), count
    data = np.where(valid[:, None], reflectance, np.inf).astype(np.float32)
    data.sort(axis=0)
    lo = np.maximum((count.astype(np.int64) - 1) // 2, 0)
    hi = np.maximum(count.astype(np.int64) // 2, 0)
    lo = np.minimum(lo, n_time - 1)[None, None]
    hi = np.minimum(hi, n_time - 1)[None, None]
    lo = np.broadcast_to(lo, (1, *data.shape[1:]))
    hi = np.broadcast_to(hi, (1, *data.shape[1:]))
    median = 0.5 * (np.take_along_axis(data, lo, 0)[0] + np.take_along_axis(data, hi, 0)[0])
    median[:, count == 0] = np.nan
    return median.astype(np.float32), count


#: Largest number of observations per month sorted by a compare-exchange network; more use np.sort.
NETWORK_MAX = 24
#: Pixels per block of the median kernel: a block's planes stay in the L2 / L3 caches, and fewer
#: blocks mean fewer NumPy calls (16,384 px: 20 % less kernel CPU than 4,096 on the P3 tile).
KERNEL_BLOCK_PX = 16384


@functools.lru_cache(maxsize=64)
def sorting_network(n: int) -> tuple[tuple[int, int], ...]:
    """Batcher's odd-even merge sort network for ``n`` inputs: compare-exchange pairs (i < j)."""
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return tuple(pairs)


@functools.lru_cache(maxsize=64)
def median_network(n: int) -> tuple[tuple[int, int], ...]:
    """:func:`sorting_network` less the comparators that cannot change outputs ``0 .. n // 2``.

    The median needs the order statistics up to ``n // 2`` only; walking the network backwards,
    a comparator is kept when one of its wires still feeds such an output.
    """
    needed = set(range(n // 2 + 1))
    kept = []
    for i, j in reversed(sorting_network(n)):
        if i in needed or j in needed:
            kept.append((i, j))
            needed |= {i, j}
    return tuple(reversed(kept))


def _sorted_planes(planes: list[np.ndarray]) -> list[np.ndarray]:
    """Order equally shaped arrays elementwise across the list, up to position ``n // 2``.

    Positions ``0 .. n // 2`` of the result hold the smallest values in ascending order (a
    pruned network, :func:`median_network`, or np.sort for more than :data:`NETWORK_MAX`). The
    arrays are scratch: they are overwritten and the result may hold any of them.
    """
    n = len(planes)
    if n > NETWORK_MAX:
        return list(np.sort(np.stack(planes), axis=0))
    planes = list(planes)
    spare = np.empty_like(planes[0]) if n > 1 else planes[0]
    for i, j in median_network(n):
        np.minimum(planes[i], planes[j], out=spare)
        np.maximum(planes[i], planes[j], out=planes[j])
        planes[i], spare = spare, planes[i]
    return planes


def median_kernel(keys: np.ndarray, valid: np.ndarray, sentinel: float | int,
                  scale: np.ndarray | None = None,
                  offset: np.ndarray | None = None, *,
                  masked: bool = False,
                  out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Median over time of the valid observations (the kernel of :func:`composite_region`).

    The same result, bit for bit, as :func:`monthly_median_composite`: per pixel and band the
    valid keys are sorted (invalid ones replaced by ``sentinel``, which sorts last), the two
    middle order statistics ``lo = (count - 1) // 2`` and ``hi = count // 2`` are taken and the
    median is ``0.5 * (lo + hi)`` in float32. Sorting runs as a compare-exchange network of
    elementwise min/max over blocks of :data:`KERNEL_BLOCK_PX` pixels.

    Args:
        keys: (time, band, pixel) values whose order is that of the reflectance: uint16 DN when
            every observation of a band shares one positive scale and offset (reflectance is
            then ``float32(dn) * scale + offset``, a monotone map), else float32 reflectance.
        valid: bool (time, pixel).
        sentinel: a value >= every key (65535 for DN, inf for reflectance).
        scale: float32 (band,) when ``keys`` are DN; None when they are reflectance.
        offset: float32 (band,) with ``scale``.
        masked: ``keys`` already hold ``sentinel`` where not valid; they are then sorted in
            place (overwritten).
        out: float32 (band, pixel) that receives the median (returned).

    Returns:
        (median float32 (band, pixel), NaN where no valid observation; count uint16 (pixel)).

    """
    n_time, n_band, n_px = keys.shape
    count = valid.sum(axis=0, dtype=np.uint16) if n_time else np.zeros(n_px, np.uint16)
    median = np.empty((n_band, n_px), dtype=np.float32) if out is None else out
    if n_time == 0:
        median[...] = np.nan
        return median, count
    lo_index = np.maximum((count.astype(np.int16) - 1) // 2, 0).astype(np.uint8)
    hi_index = np.minimum(count // 2, n_time - 1).astype(np.uint8)
    for p0 in range(0, n_px, KERNEL_BLOCK_PX):
        p1 = min(p0 + KERNEL_BLOCK_PX, n_px)
        if masked:
            planes = [keys[t, :, p0:p1] for t in range(n_time)]
        else:
            planes = [np.where(valid[t, p0:p1], keys[t, :, p0:p1], keys.dtype.type(sentinel))
                      for t in range(n_time)]
        planes = _sorted_planes(planes)
        lo, hi = planes[0].copy(), planes[0].copy()
        lo_block, hi_block = lo_index[p0:p1], hi_index[p0:p1]
        integer = keys.dtype.kind in "ui"
        for k in range(1, n_time // 2 + 1):  # hi <= n // 2
            if integer:
                # planes[0..n//2] ascend: planes[idx] = planes[0] + sum of the steps k <= idx
                step = planes[k] - planes[k - 1]
                lo += step * (lo_block >= k).astype(keys.dtype)
                hi += step * (hi_block >= k).astype(keys.dtype)
            else:
                np.copyto(lo, planes[k], where=lo_block == k)
                np.copyto(hi, planes[k], where=hi_block == k)
        if scale is not None and offset is not None:
            lo = lo.astype(np.float32) * scale[:, None] + offset[:, None]
            hi = hi.astype(np.float32) * scale[:, None] + offset[:, None]
        block = 0.5 * (lo + hi)
        block[:, count[p0:p1] == 0] = np.nan
        median[:, p0:p1] = block
    return median, count


def fill_gaps(composite: np.ndarray, method: str, *, overwrite: bool = False,
              missing: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fill months without data (see module docstring).

    Args:
        composite: float32 (month, band, y, x) with NaN for months without valid observations.
        method: ``linear``, ``nearest`` or ``none``.
        overwrite: fill ``composite`` itself (C-contiguous float32) instead of a copy.
        missing: bool (month, y, x), True where a month has no data at a pixel, when the caller
            knows it (the composite's valid count is 0 there); None: NaN in any band.

    Returns:
        (filled composite, gap_filled uint8 (month, y, x)).

    """
    if missing is None:
        missing = np.isnan(composite).any(axis=1)  # (month, y, x)
    gap_filled = missing.astype(np.uint8)
    if method == "none" or not missing.any():
        return composite, gap_filled
    if method not in ("linear", "nearest"):
        raise ValueError(f"gap_fill {method!r} is not one of linear, nearest, none")
    # only pixel-months without data at pixels with data in another month change
    n_months, n_band = composite.shape[:2]
    shape = composite.shape
    flat = np.ascontiguousarray(composite, dtype=np.float32).reshape(n_months, n_band, -1)
    n_px = flat.shape[2]
    missing_flat = missing.reshape(n_months, -1)
    has = ~missing_flat
    big = n_months * 10
    # index of the previous / next month with data for every month (or -1 / big), as int16
    # running max / min month by month (np.maximum.accumulate along axis 0 is 5x slower)
    prev_idx = np.empty(missing_flat.shape, np.int16)
    next_idx = np.empty(missing_flat.shape, np.int16)
    np.copyto(prev_idx[0], np.where(has[0], 0, -1))
    for month in range(1, n_months):
        np.copyto(prev_idx[month], prev_idx[month - 1])
        prev_idx[month][has[month]] = month
    np.copyto(next_idx[-1], np.where(has[-1], n_months - 1, big))
    for month in range(n_months - 2, -1, -1):
        np.copyto(next_idx[month], next_idx[month + 1])
        next_idx[month][has[month]] = month
    out = flat if overwrite else flat.copy()
    values = flat.reshape(-1)  # read only where a month has data: never a filled entry
    any_data = has.any(axis=0)
    for month in range(n_months):
        pixels = np.flatnonzero(missing_flat[month] & any_data)
        if pixels.size == 0:
            continue
        prev = prev_idx[month, pixels].astype(np.int64)
        nxt = next_idx[month, pixels].astype(np.int64)
        prev_ok, next_ok = prev >= 0, nxt < big
        p = np.clip(prev, 0, n_months - 1)
        n = np.clip(nxt, 0, n_months - 1)
        # flat offsets of band 0 of the previous / next month: one 1-d gather per band
        prev_at, next_at = p * (n_band * n_px) + pixels, n * (n_band * n_px) + pixels
        if method == "linear":
            both_ok = prev_ok & next_ok
            span = np.where(both_ok, n - p, 1).astype(np.float32)
            weight = np.where(both_ok, (month - p) / np.maximum(span, 1), 0.0)
            weight = weight.astype(np.float32)
        else:
            prev_wins = np.where(prev_ok, month - p, big) <= np.where(next_ok, n - month, big)
        for band in range(n_band):
            prev_val = values.take(prev_at + band * n_px)
            next_val = values.take(next_at + band * n_px)
            if method == "linear":
                both = prev_val + weight * (next_val - prev_val)
                value = np.where(both_ok, both, np.where(prev_ok, prev_val, next_val))
            else:
                value = np.where(prev_wins, prev_val, next_val)
            out[month, band, pixels] = value
    return out.reshape(shape), gap_filled


#: Most pixels of one region job (its month stack: dates x bands x pixels of uint16 DN).
REGION_MAX_PX = 1024 * 1024


class RegionResult(TypedDict):
    """What :func:`composite_region` did to one region."""

    observations: int  # pixel observations read
    pixels: int  # pixels of the region
    gap_filled: int  # gap-filled pixel-months
    max_count: list[int]  # the largest valid-observation count of each month


@dataclass(frozen=True)
class RegionJob:
    """One region of one tile (whole zarr chunks): what to read and where to write."""

    zarr_path: str
    window: tuple[int, int, int, int]  # row0, col0, height, width
    acquisitions_by_month: tuple[tuple[L2AAcquisition, ...], ...]
    masked_scl: tuple[int, ...]
    gap_fill: str
    #: threads reading band files (GDAL decodes without the GIL) next to the compositing thread
    threads: int = 1


def _month_keys(dn: np.ndarray, valid: np.ndarray, acquisitions: tuple[L2AAcquisition, ...]
                ) -> tuple[np.ndarray, float | int, np.ndarray | None, np.ndarray | None]:
    """Sort keys of a month: the DN when each band has one positive scale/offset, else reflectance.

    ``dn`` (time, band, pixel) holds 65535 where an observation is not ``valid``; the keys hold
    the sentinel there too.

    Returns:
        (keys, sentinel, scale, offset) for :func:`median_kernel`.

    """
    scale = np.empty(len(S2_BANDS), np.float32)
    offset = np.empty(len(S2_BANDS), np.float32)
    uniform = True
    for b, band in enumerate(S2_BANDS):
        pairs = {(np.float32(a.scale[band]), np.float32(a.offset[band])) for a in acquisitions}
        uniform = uniform and len(pairs) == 1 and bool(next(iter(pairs))[0] > 0)
        scale[b], offset[b] = next(iter(pairs))
    if uniform:
        return dn, 65535, scale, offset
    refl = np.empty(dn.shape, np.float32)
    for t, acquisition in enumerate(acquisitions):
        for b, band in enumerate(S2_BANDS):
            refl[t, b] = dn[t, b].astype(np.float32) * np.float32(
                acquisition.scale[band]) + np.float32(acquisition.offset[band])
        refl[t][:, ~valid[t]] = np.inf
    return refl, np.inf, None, None


def composite_region(job: RegionJob) -> RegionResult:
    """Composite one region over the 12 months and write it into the tile's zarr arrays.

    Each band and SCL file of the region's acquisitions is opened and decoded once
    (:func:`tasks.sentinel2.l2a.read_acquisition_dn`), 20 m rasters resampled once, by
    ``job.threads`` reader threads that read the next month while this thread composites the
    current one (:func:`median_kernel` on the DN).

    Returns:
        ``{"observations", "pixels", "gap_filled", "max_count"}``: pixel observations read, region
        pixels, gap-filled pixel-months and the largest valid count of each month.

    """
    row0, col0, height, width = job.window
    window = Window(col0, row0, width, height)
    n_px, n_band = height * width, len(S2_BANDS)
    clear = np.ones(256, dtype=bool)
    clear[list(job.masked_scl)] = False
    reflectance = np.empty((N_MONTHS, n_band, n_px), dtype=np.float32)
    counts = np.zeros((N_MONTHS, n_px), dtype=np.uint16)
    observations = 0

    def read(acquisition: L2AAcquisition, dn: np.ndarray, valid: np.ndarray) -> None:
        scl = read_acquisition_dn(acquisition, S2_BANDS, window, dn.reshape(n_band, height, width))
        ok = clear[scl].reshape(n_px)
        ok &= dn.min(axis=0) != NODATA_DN  # no band is nodata (NODATA_DN is the smallest DN)
        valid[:] = ok
        # the sort sentinel (see _month_keys) where not valid: OR with 0 / 65535, branch-free
        dn |= np.where(ok, np.uint16(0), np.uint16(65535))

    # two month buffers, reused: month m + 1 is read into one while month m composites
    most = max(len(a) for a in job.acquisitions_by_month)
    dn_buffers = [np.empty((most, n_band, n_px), dtype=np.uint16) for _ in range(2)]
    valid_buffers = [np.empty((most, n_px), dtype=bool) for _ in range(2)]

    def submit(month: int) -> tuple[np.ndarray, np.ndarray, list[Any]]:
        acquisitions = job.acquisitions_by_month[month]
        dn = dn_buffers[month % 2][:len(acquisitions)]
        valid = valid_buffers[month % 2][:len(acquisitions)]
        return dn, valid, [pool.submit(read, a, dn[t], valid[t])
                           for t, a in enumerate(acquisitions)]

    # the kernel of a month runs on ``job.threads`` pixel ranges at once (whole kernel blocks),
    # beside the reader threads that read the next month
    step = -(-n_px // max(1, job.threads) // KERNEL_BLOCK_PX) * KERNEL_BLOCK_PX or n_px
    ranges = [(p0, min(p0 + step, n_px)) for p0 in range(0, n_px, step)]

    with ThreadPoolExecutor(max(1, job.threads)) as pool, \
            ThreadPoolExecutor(len(ranges), thread_name_prefix="median") as kernel_pool:
        pending = submit(0)
        for month in range(N_MONTHS):
            dn, valid, futures = pending
            if month + 1 < N_MONTHS:
                pending = submit(month + 1)  # read ahead while this month composites
            for future in futures:
                future.result()
            acquisitions = job.acquisitions_by_month[month]
            if not acquisitions:
                reflectance[month] = np.nan
                continue
            observations += len(acquisitions) * n_px
            keys, sentinel, scale, offset = _month_keys(dn, valid, acquisitions)
            parts = [kernel_pool.submit(median_kernel, keys[:, :, p0:p1], valid[:, p0:p1],
                                        sentinel, scale, offset, masked=True,
                                        out=reflectance[month][:, p0:p1])
                     for p0, p1 in ranges]
            for (p0, p1), part in zip(ranges, parts, strict=True):
                counts[month, p0:p1] = part.result()[1]
            del dn, valid, keys
    gap_filled = _fill_and_write(job, reflectance.reshape(N_MONTHS, n_band, height, width),
                                 counts.reshape(N_MONTHS, height, width))
    return {"observations": observations, "pixels": n_px, "gap_filled": gap_filled,
            "max_count": [int(m) for m in counts.max(axis=1)]}


def _fill_and_write(job: RegionJob, reflectance: np.ndarray, counts: np.ndarray) -> int:
    """Gap-fill a region's composite and write it, zarr chunk by zarr chunk, on ``job.threads``.

    Gap filling is per pixel, so each chunk (all months and bands of its pixels) is filled on its
    own and written whole: zarr then encodes the array given instead of merging it into a new
    chunk buffer. A chunk with a valid observation is written without zarr's all-fill-value
    scan (it cannot be empty); the others keep it (an all-NaN / all-zero chunk is not stored).

    Args:
        job: the region.
        reflectance: float32 (month, band, y, x) of the region, NaN where the count is 0.
        counts: uint16 (month, y, x) valid observations per pixel-month.

    Returns:
        The number of gap-filled pixel-months.

    """
    import zarr

    row0, col0, height, width = job.window
    group = zarr.open_group(zarr_store(job.zarr_path, read_only=False), mode="r+")
    arrays = {name: zarr_array(group, name) for name in ("reflectance", "valid_count",
                                                         "gap_filled")}
    dense = {name: array.with_config({"write_empty_chunks": True})
             for name, array in arrays.items()}
    chunk_rows, chunk_cols = arrays["reflectance"].chunks[2:]

    def finish(origin: tuple[int, int]) -> int:
        r0, c0 = origin
        rows = slice(r0 - row0, min(r0 + chunk_rows, row0 + height) - row0)
        cols = slice(c0 - col0, min(c0 + chunk_cols, col0 + width) - col0)
        block_counts = np.ascontiguousarray(counts[:, rows, cols])
        missing = block_counts == 0
        block = np.ascontiguousarray(reflectance[:, :, rows, cols])
        filled, gap_filled = fill_gaps(block, job.gap_fill, overwrite=True, missing=missing)
        target = dense if not missing.all() else arrays
        out_rows = slice(rows.start + row0, rows.stop + row0)
        out_cols = slice(cols.start + col0, cols.stop + col0)
        target["reflectance"][:, :, out_rows, out_cols] = filled
        target["valid_count"][:, out_rows, out_cols] = block_counts
        arrays["gap_filled"][:, out_rows, out_cols] = gap_filled
        return int(gap_filled.sum(dtype=np.int64))

    # chunk origins of the region (a region holds whole chunks; a tile edge cuts the last ones)
    origins = [(r, c) for r in range(row0, row0 + height, chunk_rows)
               for c in range(col0, col0 + width, chunk_cols)]
    with ThreadPoolExecutor(max(1, min(job.threads, len(origins)))) as pool:
        return sum(pool.map(finish, origins))


#: Codec of the tile store's arrays (lossless: zarr decodes it transparently, readers unchanged):
#: Blosc LZ4 with byte shuffle compresses the float32 composite 6x faster than zarr's default
#: zstd (level 3) and decodes 2x faster, for a store about 1.6x larger (70 vs 43 MB per 512 x 512
#: tile-year; bench/RESULTS.md, P3).
STORE_COMPRESSION = "blosc lz4 clevel 5, byte shuffle (lossless)"


def create_tile_store(path: Path | str, grid: TileGrid, months: list[str], key: str,
                      chunk: int) -> None:
    """Create the empty zarr v3 store of one tile (coordinates, attributes, chunked arrays).

    The arrays are compressed as :data:`STORE_COMPRESSION` says (the ``compression`` attribute).
    ``path``: a local folder or an ``s3://`` URL (:func:`tasks.staging.zarr_store`).
    """
    import xarray as xr
    from zarr.codecs import BloscCodec

    shape = (N_MONTHS, len(S2_BANDS), grid.height, grid.width)
    import dask.array as da

    ds = xr.Dataset(
        {
            "reflectance": (("month", "band", "y", "x"),
                            da.full(shape, np.nan, dtype=np.float32,
                                    chunks=(N_MONTHS, len(S2_BANDS), chunk, chunk))),
            "valid_count": (("month", "y", "x"),
                            da.zeros(shape[:1] + shape[2:], dtype=np.uint16,
                                     chunks=(N_MONTHS, chunk, chunk))),
            "gap_filled": (("month", "y", "x"),
                           da.zeros(shape[:1] + shape[2:], dtype=np.uint8,
                                    chunks=(N_MONTHS, chunk, chunk))),
        },
        coords={
            "month": np.array(months, dtype=object),
            "band": np.array(S2_BANDS, dtype=object),
            "y": np.asarray(grid.y_coords()),
            "x": np.asarray(grid.x_coords()),
        },
        attrs={
            "crs": grid.crs,
            "transform": list(grid.gdal_transform()),
            "tile": grid.tile,
            "agronomic_year": key,
            "bands": list(S2_BANDS),
            "months": months,
            "units": "surface reflectance (0..1, BOA offset removed)",
            "compression": STORE_COMPRESSION,
        },
    )
    encoding = {name: {"compressors": (BloscCodec(
        cname="lz4", clevel=5, shuffle="shuffle", typesize=ds[name].dtype.itemsize),)}
        for name in ("reflectance", "valid_count", "gap_filled")}
    ds.to_zarr(zarr_store(path, read_only=False), mode="w", compute=False, zarr_format=3,
               consolidated=False, encoding=encoding)


def region_shape(grid: TileGrid, acquisition: L2AAcquisition, chunk: int) -> tuple[int, int]:
    """Rows and columns of the regions a tile is composited in.

    A tile of at most :data:`REGION_MAX_PX` pixels is one region. A larger one is cut into
    regions of whole zarr chunks that also hold whole GeoTIFF blocks of every band (a 20 m block
    of 256 pixels spans 512 pixels at 10 m), so each block is decoded once; where those blocks
    need more than :data:`REGION_MAX_PX` pixels (e.g. 1024-px blocks of 20 m COGs), the region
    is halved (whole chunks kept) until it fits, and such blocks are decoded by several regions.
    """
    if grid.height * grid.width <= REGION_MAX_PX:
        return grid.height, grid.width
    rows, cols = chunk, chunk
    with rasterio.Env(**GDAL_READ_OPTIONS):
        for band in (*S2_BANDS, SCL_ASSET):
            with rasterio.open(acquisition.band_path(band)) as src:
                factor = max(1, round(abs(src.transform.a) / 10.0))
                block_rows, block_cols = src.block_shapes[0]
                rows = math.lcm(rows, block_rows * factor)
                cols = math.lcm(cols, block_cols * factor)
    while rows * cols > REGION_MAX_PX:
        # too large for the memory budget: halve (whole chunks kept); a block is then decoded
        # by 2, 4 ... regions
        if rows >= cols and rows % (2 * chunk) == 0:
            rows //= 2
        elif cols % (2 * chunk) == 0:
            cols //= 2
        elif rows % (2 * chunk) == 0:
            rows //= 2
        else:
            return chunk, chunk
    while rows * cols * 4 <= REGION_MAX_PX:
        rows, cols = rows * 2, cols * 2
    return rows, cols


def tile_region_jobs(store: Path | str, grid: TileGrid, acquisitions: list[L2AAcquisition],
                     season_start: dt.date, chunk: int, masked_scl: list[int],
                     gap_fill: str, threads: int = 1) -> list[RegionJob]:
    """Split a tile into region jobs (:func:`region_shape`), acquisitions grouped by month."""
    by_month: list[list[L2AAcquisition]] = [[] for _ in range(N_MONTHS)]
    for acquisition in acquisitions:
        by_month[month_index(acquisition.date, season_start)].append(acquisition)
    frozen = tuple(tuple(m) for m in by_month)
    step_rows, step_cols = region_shape(grid, acquisitions[0], chunk)
    jobs = []
    for row0 in range(0, grid.height, step_rows):
        for col0 in range(0, grid.width, step_cols):
            jobs.append(RegionJob(
                str(store), (row0, col0, min(step_rows, grid.height - row0),
                             min(step_cols, grid.width - col0)),
                frozen, tuple(masked_scl), gap_fill, threads,
            ))
    return jobs


def l2a_archive(cfg: FoodSecurityConfig, key: str) -> Path:
    """Return the L2A archive the harmonise stage reads for agronomic year ``key``."""
    if cfg.ingest.source == "directory":
        assert cfg.ingest.directory is not None  # checked by the config model
        return Path(cfg.ingest.directory.replace("{agronomic_year}", key))
    return stage_dir(cfg.resolved_root(), cfg.use_case, "ingest", key) / "l2a"


def run_harmonise(cfg: FoodSecurityConfig, run_date: dt.date | str) -> dict[str, Any]:
    """Composite every configured tile for the agronomic year containing ``run_date``.

    Only acquisitions dated inside that year are opened.

    Returns:
        ``{"output", "agronomic_year", "tiles": {tile: {"path", "acquisitions",
        "observations", "gap_filled_fraction", "no_data_months"}}}``.

    Raises:
        NoDataError: no configured tile has an acquisition in the year (names year and tiles).

    """
    key = agronomic_year_key(run_date)
    archive = l2a_archive(cfg, key)
    year = _year_acquisitions(cfg, run_date, archive, list_acquisitions)
    final = stage_dir(cfg.resolved_root(), cfg.use_case, "harmonise", key)
    with atomic_dir(final) as tmp:
        summary = _composite_year(cfg, year, tmp, final, composite_region)
        write_manifest(tmp, **_manifest(cfg, year, summary))
    return {"output": str(final), "agronomic_year": key, "tiles": summary}


@dataclass(frozen=True)
class _Year:
    """The agronomic year's acquisitions of every configured tile (checked: none is empty)."""

    key: str
    start: dt.date
    archive: str
    tiles: list[str]
    acquisitions: dict[str, list[L2AAcquisition]]


def _year_acquisitions(cfg: FoodSecurityConfig, run_date: dt.date | str, archive: Path | str,
                       lister: Callable[..., list[L2AAcquisition]]) -> _Year:
    """List each tile's acquisitions of the year in ``archive`` with ``lister``.

    Raises:
        NoDataError: no tile, or not every tile, has an acquisition in the year.

    """
    start, end = agronomic_year(run_date)
    key = agronomic_year_key(run_date)
    tiles = cfg.tile_ids()
    acquisitions = {t: lister(archive, t, start, end) for t in tiles}
    if not any(acquisitions.values()):
        raise NoDataError(
            f"agronomic year {key} has no Sentinel-2 L2A acquisition for tiles {tiles} in "
            f"{archive}; run the ingest/generate stage for that year first "
            f"(eeflow crops generate --run-date {start.isoformat()})"
        )
    empty = [t for t, acq in acquisitions.items() if not acq]
    if empty:
        raise NoDataError(
            f"agronomic year {key}: tiles {empty} have no acquisition in {archive} (other "
            f"tiles do); ingest them or remove them from ingest.generator.tiles"
        )
    return _Year(key, start, str(archive), tiles, acquisitions)


def _composite_year(cfg: FoodSecurityConfig, year: _Year, out: Path | str,
                    published: Path | str, run: Callable[[RegionJob], RegionResult]
                    ) -> dict[str, dict[str, Any]]:
    """Create every tile's store in ``out``, composite its regions with ``run``; return stats.

    ``out`` is a local folder or an ``s3://`` URL; ``published`` is where the stores are once
    published (the tiles' ``path``).

    Raises:
        EmptyTileError: a tile has no valid observation in too many months.

    """
    months = season_months(year.start)
    hcfg = cfg.harmonise
    jobs: list[tuple[str, RegionJob]] = []
    shapes = {}
    for tile in year.tiles:
        grid = read_grid(year.acquisitions[tile][0], tile)
        shapes[tile] = (grid.height, grid.width)
        store = _child(out, f"{tile}.zarr")
        create_tile_store(store, grid, months, year.key, hcfg.chunk)
        jobs += [(tile, j) for j in tile_region_jobs(
            store, grid, year.acquisitions[tile], year.start, hcfg.chunk,
            hcfg.masked_scl_classes, hcfg.gap_fill, cfg.dask.threads_per_worker)]
    results = _run_region_jobs(cfg, year.key, [j for _, j in jobs], run)
    summary: dict[str, dict[str, Any]] = {}
    for tile in year.tiles:
        mine = [r for (t, _), r in zip(jobs, results, strict=True) if t == tile]
        summary[tile] = {"path": str(_child(published, f"{tile}.zarr")),
                         "acquisitions": len(year.acquisitions[tile]),
                         "observations": sum(r["observations"] for r in mine)}
        summary[tile].update(_gap_statistics(mine, shapes[tile]))
        check_empty_months(tile, summary[tile]["no_data_months"], months,
                           hcfg.max_empty_months)
    return summary


def _child(folder: Path | str, name: str) -> Path | str:
    """``folder / name`` for a local folder, ``{folder}/{name}`` for an ``s3://`` URL."""
    return fs_join(folder, name) if isinstance(folder, str) else folder / name


def _manifest(cfg: FoodSecurityConfig, year: _Year,
              summary: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Return the keyword arguments of the year's ``manifest.json`` (:func:`write_manifest`)."""
    hcfg = cfg.harmonise
    return {
        "stage": "harmonise", "inputs": {"archive": year.archive, "tiles": year.tiles},
        "config_hash": config_hash(cfg),
        "counts": {t: {k: v for k, v in s.items() if k != "path"} for t, s in summary.items()},
        "extra": {"agronomic_year": year.key, "gap_fill": hcfg.gap_fill,
                  "masked_scl_classes": hcfg.masked_scl_classes},
    }


# --- on S3 with a distributed cluster: no file through the driver -----------------------------

def run_harmonise_on_s3(cfg: FoodSecurityConfig, run_date: dt.date | str) -> dict[str, Any]:
    """:func:`run_harmonise` on an ``s3://`` data root whose Dask tasks do the S3 I/O.

    The acquisitions are those of the ingest output's published version (or an ``s3://``
    ``ingest.directory``); the region tasks read their windows through GDAL ``/vsis3/`` and
    write into a new version of ``{root}/food_security/harmonise/{year}``, which is published by
    its pointer after the manifest: a failure leaves the previous output. Workers need only the
    S3 variables of :func:`tasks.fs.s3_filesystem`.

    Returns:
        As :func:`run_harmonise`; ``output`` and the tiles' ``path`` name the new version.

    Raises:
        NoDataError: as :func:`run_harmonise`.
        FileNotFoundError: no ingest output is published for the year (names the stage to run).

    """
    key = agronomic_year_key(run_date)
    archive = s3_l2a_archive(cfg, key)
    lister = list_s3_acquisitions if is_remote(archive) else list_acquisitions
    year = _year_acquisitions(cfg, run_date, archive, lister)
    final = stage_location(cfg.storage_root(), cfg.use_case, "harmonise", key)
    import rasterio

    with atomic_s3_version(str(final)) as version, rasterio.Env(**gdal_s3_options()):
        summary = _composite_year(cfg, year, version, version, _composite_region_on_s3)
        write_s3_manifest(version, **_manifest(cfg, year, summary))
    return {"output": version, "agronomic_year": key, "tiles": summary}


def s3_l2a_archive(cfg: FoodSecurityConfig, key: str) -> str:
    """Return the L2A archive of year ``key`` on an ``s3://`` data root (see :func:`l2a_archive`).

    The ``l2a`` folder of the ingest output's published version, or ``ingest.directory``.

    Raises:
        FileNotFoundError: no ingest output is published for ``key``.

    """
    if cfg.ingest.source == "directory":
        assert cfg.ingest.directory is not None  # checked by the config model
        return cfg.ingest.directory.replace("{agronomic_year}", key)
    final = stage_location(cfg.storage_root(), cfg.use_case, "ingest", key)
    try:
        version = resolve_stage_dir(final)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"no ingest output for agronomic year {key} at {final}: run the ingest stage for "
            f"that year first (on the same s3:// data_root); {err}") from err
    return fs_join(str(version), "l2a")


def list_s3_acquisitions(archive: str, tile: str, start: dt.date,
                         end: dt.date) -> list[L2AAcquisition]:
    """:func:`tasks.sentinel2.l2a.list_acquisitions` of an ``s3://`` archive.

    The STAC items are read here (one request each, concurrently); the assets are GDAL
    ``/vsis3/`` paths (:func:`tasks.staging.vsis3_path`), read in windows by whoever opens them
    (with :func:`tasks.staging.gdal_s3_options` in effect).

    Raises:
        FileNotFoundError: an acquisition folder has no STAC item.

    """
    fs = s3_filesystem()
    tile_url = fs_join(archive, tile)
    try:
        entries = fs.ls(tile_url, detail=True)
    except FileNotFoundError:
        return []
    folders = []
    for entry in entries:
        name = str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
        date = _date_of_item_folder(name)
        if entry.get("type") == "directory" and date is not None and start <= date <= end:
            folders.append((name, fs_join(tile_url, name)))
    items = {f"{url}/{name}.json": (name, url) for name, url in sorted(folders)}
    texts = fs.cat(list(items), on_error="return") if items else {}
    found = []
    for item_url, (name, folder) in items.items():
        text = texts.get(item_url.removeprefix("s3://"), texts.get(item_url))
        if not isinstance(text, bytes):
            raise FileNotFoundError(
                f"{folder}: acquisition folder without its STAC item {name}.json; "
                "re-ingest the acquisition or remove the folder")
        acquisition = acquisition_from_item(json.loads(text), vsis3_path(item_url))
        # relative hrefs resolve against the item's /vsis3/ path; as strings GDAL reads them
        assets: dict[str, Path | str] = {band: str(path)
                                         for band, path in acquisition.assets.items()}
        found.append(replace(acquisition, assets=assets))
    return sorted(found, key=lambda a: (a.date, a.item_id))


def _composite_region_on_s3(job: RegionJob) -> RegionResult:
    """:func:`composite_region` with GDAL reading ``/vsis3/`` in every thread of this process."""
    with gdal_s3_environment():
        return composite_region(job)


class EmptyTileError(EeflowError, ValueError):
    """A tile has no valid observation in too many months (clouded, or the wrong tile)."""


def check_empty_months(tile: str, no_data_months: list[int], months: list[str],
                       max_empty: int) -> None:
    """Raise when ``tile`` has no valid observation anywhere in ``max_empty`` or more months."""
    if len(no_data_months) < max_empty:
        return
    names = [months[m] for m in no_data_months]
    raise EmptyTileError(
        f"tile {tile}: no valid (unmasked) observation in {len(names)} of {len(months)} months "
        f"({', '.join(names)}), at least harmonise.max_empty_months {max_empty}; a map from it "
        "would be empty. Check the tile's SCL masks / cloud cover, ingest more acquisitions, or "
        "remove the tile from ingest.generator.tiles"
    )


def _run_region_jobs(cfg: FoodSecurityConfig, key: str, jobs: list[RegionJob],
                     run: Callable[[RegionJob], RegionResult] = composite_region
                     ) -> list[RegionResult]:
    """Run the region jobs (``run(job)`` each) on the configured Dask cluster.

    A single region on a local (or synchronous) cluster runs in this process with the cluster's
    ``n_workers x threads_per_worker`` reader threads instead: one task cannot use a second
    worker process, and starting one would cost more than the region takes.
    """
    import dask

    if len(jobs) == 1 and cfg.dask.cluster in ("local", "synchronous"):
        threads = cfg.dask.n_workers * cfg.dask.threads_per_worker
        log.info("harmonise %s: 1 region, composited in-process with %d reader thread(s) "
                 "(no cluster started for one task)", key, threads)
        return [run(replace(jobs[0], threads=threads))]
    log.info("harmonise %s: %d region jobs", key, len(jobs))
    with dask_client(cfg.dask):
        return list(dask.compute(*[dask.delayed(run)(j) for j in jobs]))


def _gap_statistics(results: list[RegionResult], shape: tuple[int, int]) -> dict[str, Any]:
    """Gap-filled fraction and months without any valid observation, from the region results."""
    total = N_MONTHS * shape[0] * shape[1]
    max_count = np.max([r["max_count"] for r in results], axis=0)
    return {
        # an exact integer sum over the pixel count: the same float as the mean of the array
        "gap_filled_fraction": round(sum(r["gap_filled"] for r in results) / total, 6),
        "no_data_months": [int(m) for m in np.flatnonzero(max_count == 0)],
    }
