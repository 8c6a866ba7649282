"""Harmonise: cloud/snow masking and 12 monthly median composites per tile and agronomic year.

For every tile the acquisitions of the agronomic year (1 September .. 31 August) are read window
by window (one Dask task per spatial chunk, so memory is bounded by one chunk's month stack, not
by the tile or the year). A pixel observation is valid when its SCL class is not in
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
{tile}.zarr``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from tasks.config.common import config_hash
from tasks.config.food_security import FoodSecurityConfig
from tasks.dask_cluster import dask_client
from tasks.domain.crops import S2_BANDS
from tasks.errors import EeflowError
from tasks.sentinel2.l2a import L2AAcquisition, list_acquisitions, read_bands, read_grid, read_scl
from tasks.sentinel2.tiles import TileGrid
from tasks.storage import (
    agronomic_year,
    agronomic_year_key,
    atomic_dir,
    stage_dir,
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


def fill_gaps(composite: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Fill months without data (see module docstring).

    Args:
        composite: float32 (month, band, y, x) with NaN for months without valid observations.
        method: ``linear``, ``nearest`` or ``none``.

    Returns:
        (filled composite, gap_filled uint8 (month, y, x)).

    """
    missing = np.isnan(composite).any(axis=1)  # (month, y, x)
    gap_filled = missing.astype(np.uint8)
    if method == "none" or not missing.any():
        return composite, gap_filled
    n_months = composite.shape[0]
    months = np.arange(n_months)[:, None, None]
    has = ~missing
    big = n_months * 10
    # index of the previous / next month with data for every month (or -1 / big)
    prev_idx = np.where(has, months, -1)
    prev_idx = np.maximum.accumulate(prev_idx, axis=0)
    next_idx = np.where(has, months, big)
    next_idx = np.minimum.accumulate(next_idx[::-1], axis=0)[::-1]
    any_data = has.any(axis=0)
    prev_ok, next_ok = prev_idx >= 0, next_idx < big
    p = np.clip(prev_idx, 0, n_months - 1)
    n = np.clip(next_idx, 0, n_months - 1)
    prev_val = np.take_along_axis(composite, p[:, None], 0)
    next_val = np.take_along_axis(composite, n[:, None], 0)
    if method == "linear":
        span = np.where(prev_ok & next_ok, n - p, 1).astype(np.float32)
        weight = np.where(prev_ok & next_ok, (months - p) / np.maximum(span, 1), 0.0)
        weight = weight.astype(np.float32)
        both = prev_val + weight[:, None] * (next_val - prev_val)
        value = np.where((prev_ok & next_ok)[:, None], both,
                         np.where(prev_ok[:, None], prev_val, next_val))
    elif method == "nearest":
        d_prev = np.where(prev_ok, months - p, big)
        d_next = np.where(next_ok, n - months, big)
        value = np.where((d_prev <= d_next)[:, None], prev_val, next_val)
    else:
        raise ValueError(f"gap_fill {method!r} is not one of linear, nearest, none")
    fill = missing & any_data[None]
    out = np.where(fill[:, None], value, composite).astype(np.float32)
    return out, gap_filled


@dataclass(frozen=True)
class ChunkJob:
    """One spatial chunk of one tile: what to read and where to write."""

    zarr_path: str
    window: tuple[int, int, int, int]  # row0, col0, height, width
    acquisitions_by_month: tuple[tuple[L2AAcquisition, ...], ...]
    masked_scl: tuple[int, ...]
    gap_fill: str


def composite_chunk(job: ChunkJob) -> dict[str, int]:
    """Composite one chunk over the 12 months and write it into the tile's zarr arrays."""
    import zarr

    row0, col0, height, width = job.window
    window = Window(col0, row0, width, height)
    reflectance = np.full((N_MONTHS, len(S2_BANDS), height, width), np.nan, dtype=np.float32)
    counts = np.zeros((N_MONTHS, height, width), dtype=np.uint16)
    observations = 0
    masked = np.asarray(job.masked_scl, dtype=np.uint8)
    for month, acquisitions in enumerate(job.acquisitions_by_month):
        if not acquisitions:
            continue
        stack = np.empty((len(acquisitions), len(S2_BANDS), height, width), dtype=np.float32)
        valid = np.empty((len(acquisitions), height, width), dtype=bool)
        for t, acquisition in enumerate(acquisitions):
            stack[t] = read_bands(acquisition, S2_BANDS, window)
            scl = read_scl(acquisition, window)
            valid[t] = ~np.isin(scl, masked) & np.isfinite(stack[t]).all(axis=0)
        observations += stack.shape[0] * height * width
        reflectance[month], counts[month] = monthly_median_composite(stack, valid)
        del stack, valid
    filled, gap_filled = fill_gaps(reflectance, job.gap_fill)
    group = zarr.open_group(job.zarr_path, mode="r+")
    rows, cols = slice(row0, row0 + height), slice(col0, col0 + width)
    zarr_array(group, "reflectance")[:, :, rows, cols] = filled
    zarr_array(group, "valid_count")[:, rows, cols] = counts
    zarr_array(group, "gap_filled")[:, rows, cols] = gap_filled
    return {"observations": observations, "pixels": height * width}


def create_tile_store(path: Path, grid: TileGrid, months: list[str], key: str,
                      chunk: int) -> None:
    """Create the empty zarr v3 store of one tile (coordinates, attributes, chunked arrays)."""
    import xarray as xr

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
        },
    )
    ds.to_zarr(path, mode="w", compute=False, zarr_format=3, consolidated=False)


def tile_chunk_jobs(store: Path, grid: TileGrid, acquisitions: list[L2AAcquisition],
                    season_start: dt.date, chunk: int, masked_scl: list[int],
                    gap_fill: str) -> list[ChunkJob]:
    """Split a tile into chunk jobs, each with its acquisitions grouped by month."""
    by_month: list[list[L2AAcquisition]] = [[] for _ in range(N_MONTHS)]
    for acquisition in acquisitions:
        by_month[month_index(acquisition.date, season_start)].append(acquisition)
    frozen = tuple(tuple(m) for m in by_month)
    jobs = []
    for row0 in range(0, grid.height, chunk):
        for col0 in range(0, grid.width, chunk):
            jobs.append(ChunkJob(
                str(store), (row0, col0, min(chunk, grid.height - row0),
                             min(chunk, grid.width - col0)),
                frozen, tuple(masked_scl), gap_fill,
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
    import dask

    start, end = agronomic_year(run_date)
    key = agronomic_year_key(run_date)
    archive = l2a_archive(cfg, key)
    tiles = cfg.tile_ids()
    acquisitions = {t: list_acquisitions(archive, t, start, end) for t in tiles}
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
    months = season_months(start)
    hcfg = cfg.harmonise
    final = stage_dir(cfg.resolved_root(), cfg.use_case, "harmonise", key)
    summary: dict[str, dict[str, Any]] = {}
    with atomic_dir(final) as tmp:
        jobs: list[tuple[str, ChunkJob]] = []
        for tile in tiles:
            grid = read_grid(acquisitions[tile][0], tile)
            store = tmp / f"{tile}.zarr"
            create_tile_store(store, grid, months, key, hcfg.chunk)
            jobs += [(tile, j) for j in tile_chunk_jobs(
                store, grid, acquisitions[tile], start, hcfg.chunk,
                hcfg.masked_scl_classes, hcfg.gap_fill)]
        log.info("harmonise %s: %d tiles, %d chunk jobs", key, len(tiles), len(jobs))
        with dask_client(cfg.dask):
            results = dask.compute(*[dask.delayed(composite_chunk)(j) for _, j in jobs])
        for tile in tiles:
            obs = sum(r["observations"] for (t, _), r in zip(jobs, results, strict=True)
                      if t == tile)
            summary[tile] = {"path": str(final / f"{tile}.zarr"),
                             "acquisitions": len(acquisitions[tile]), "observations": obs}
            summary[tile].update(_gap_statistics(tmp / f"{tile}.zarr"))
            check_empty_months(tile, summary[tile]["no_data_months"], months,
                               hcfg.max_empty_months)
        write_manifest(
            tmp, stage="harmonise", inputs={"archive": str(archive), "tiles": tiles},
            config_hash=config_hash(cfg),
            counts={t: {k: v for k, v in s.items() if k != "path"} for t, s in summary.items()},
            extra={"agronomic_year": key, "gap_fill": hcfg.gap_fill,
                   "masked_scl_classes": hcfg.masked_scl_classes},
        )
    return {"output": str(final), "agronomic_year": key, "tiles": summary}


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


def _gap_statistics(store: Path) -> dict[str, Any]:
    import zarr

    group = zarr.open_group(str(store), mode="r")
    gap = np.asarray(zarr_array(group, "gap_filled")[:])
    count = np.asarray(zarr_array(group, "valid_count")[:])
    return {
        "gap_filled_fraction": round(float(gap.mean()), 6),
        "no_data_months": [int(m) for m in np.flatnonzero(count.max(axis=(1, 2)) == 0)],
    }
