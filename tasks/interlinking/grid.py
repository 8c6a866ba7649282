"""Equi-grid filtering: which (source, target) pairs can relate, each pair produced once.

As GIA.nt (JedAI-spatial): space is cut into equal cells whose size comes from the data (by
default the mean MBR width and height of the source geometries); each geometry is listed in
every cell its minimum bounding rectangle (MBR) touches; candidate pairs are the pairs that share
a cell. A pair that shares several cells is kept only in its *reference cell*, the cell of the
lower-left corner of the two MBRs' overlap, i.e. cell ``(max(ix0_a, ix0_b), max(iy0_a, iy0_b))``
(for pairs whose MBRs are disjoint but share a cell this is their first shared cell), so every
pair is produced exactly once, also when the cells are processed in separate partitions.

Everything is numpy over arrays of bounds (``(n, 4)`` minx, miny, maxx, maxy in the sets' common
CRS units): cell listings are built with ``repeat`` / ``arange`` arithmetic and the pairs of a
cell with a vectorised cartesian product; there is no Python loop over pairs or cells.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

#: At most this many cells along one axis (keeps cell keys in int64 and the grid sane when the
#: mean extent is tiny against the data's extent).
MAX_CELLS_PER_AXIS = 1 << 22


@dataclass(frozen=True)
class EquiGrid:
    """A regular grid: origin (x0, y0), cell size (dx, dy) and its number of cells (nx, ny)."""

    x0: float
    y0: float
    dx: float
    dy: float
    nx: int
    ny: int

    def cell_ranges(self, bounds: np.ndarray) -> np.ndarray:
        """Return the inclusive cell ranges ``(n, 4)`` int64 ``ix0, iy0, ix1, iy1`` of MBRs."""
        bounds = np.asarray(bounds, dtype=np.float64)
        ranges = np.empty(bounds.shape, dtype=np.int64)
        ranges[:, 0] = np.floor((bounds[:, 0] - self.x0) / self.dx)
        ranges[:, 1] = np.floor((bounds[:, 1] - self.y0) / self.dy)
        ranges[:, 2] = np.floor((bounds[:, 2] - self.x0) / self.dx)
        ranges[:, 3] = np.floor((bounds[:, 3] - self.y0) / self.dy)
        np.clip(ranges[:, 0::2], 0, self.nx - 1, out=ranges[:, 0::2])
        np.clip(ranges[:, 1::2], 0, self.ny - 1, out=ranges[:, 1::2])
        return ranges


def _mean_extent(bounds: np.ndarray) -> tuple[float, float]:
    width = bounds[:, 2] - bounds[:, 0]
    height = bounds[:, 3] - bounds[:, 1]
    mean_w = float(width[width > 0].mean()) if (width > 0).any() else 0.0
    mean_h = float(height[height > 0].mean()) if (height > 0).any() else 0.0
    return mean_w, mean_h


def grid_from_data(
    source_bounds: np.ndarray, target_bounds: np.ndarray, cell_factor: float = 1.0
) -> EquiGrid:
    """Size the grid from the data, as GIA.nt does.

    Cell width / height = ``cell_factor`` x the mean MBR width / height of the source geometries
    (of the target when the source has no extent, e.g. points; from the data's extent divided by
    sqrt(n) when neither has), bounded so that no axis exceeds :data:`MAX_CELLS_PER_AXIS` cells.

    Args:
        source_bounds: ``(n, 4)`` MBRs of the source set.
        target_bounds: ``(m, 4)`` MBRs of the target set (same CRS).
        cell_factor: multiplier of the derived cell size (> 0).

    Returns:
        The grid covering both sets.

    Raises:
        ValueError: a set is empty, ``cell_factor`` is not positive, or bounds are not finite.

    """
    if cell_factor <= 0:
        raise ValueError(f"cell_factor must be > 0, got {cell_factor}")
    if len(source_bounds) == 0 or len(target_bounds) == 0:
        raise ValueError(f"cannot build a grid: source has {len(source_bounds)} and target "
                         f"{len(target_bounds)} geometries; both need at least one")
    both = np.concatenate([source_bounds, target_bounds])
    if not np.isfinite(both).all():
        raise ValueError("geometry bounds are not finite (empty or missing geometries); drop them "
                         "before building the grid")
    x0, y0 = float(both[:, 0].min()), float(both[:, 1].min())
    x1, y1 = float(both[:, 2].max()), float(both[:, 3].max())
    extent_w, extent_h = max(x1 - x0, 0.0), max(y1 - y0, 0.0)
    mean_w, mean_h = _mean_extent(np.asarray(source_bounds, dtype=np.float64))
    target_w, target_h = _mean_extent(np.asarray(target_bounds, dtype=np.float64))
    fallback = max(extent_w, extent_h, 1e-9) / np.sqrt(len(both))
    dx = (mean_w or target_w or fallback) * cell_factor
    dy = (mean_h or target_h or fallback) * cell_factor
    dx = max(dx, extent_w / (MAX_CELLS_PER_AXIS - 1), 1e-12)
    dy = max(dy, extent_h / (MAX_CELLS_PER_AXIS - 1), 1e-12)
    nx = int(np.floor(extent_w / dx)) + 1
    ny = int(np.floor(extent_h / dy)) + 1
    return EquiGrid(x0, y0, dx, dy, nx, ny)


def cell_counts(ranges: np.ndarray) -> np.ndarray:
    """Return how many cells each MBR covers, ``(n,)`` int64."""
    return (ranges[:, 2] - ranges[:, 0] + 1) * (ranges[:, 3] - ranges[:, 1] + 1)


def column_strips(
    ranges_a: np.ndarray, ranges_b: np.ndarray, nx: int, n_partitions: int
) -> list[tuple[int, int]]:
    """Cut the grid's columns into strips ``[lo, hi)`` holding about equal numbers of listings.

    A listing is one (geometry, cell) entry of either set; strips never split a column, so the
    number of strips may be smaller than ``n_partitions`` on narrow grids.
    """
    if n_partitions < 1:
        raise ValueError(f"n_partitions must be >= 1, got {n_partitions}")
    per_column = np.zeros(nx + 1, dtype=np.int64)
    for ranges in (ranges_a, ranges_b):
        height = ranges[:, 3] - ranges[:, 1] + 1
        np.add.at(per_column, ranges[:, 0], height)
        np.add.at(per_column, ranges[:, 2] + 1, -height)
    load = np.cumsum(np.cumsum(per_column[:nx]))
    total = int(load[-1]) if nx else 0
    if n_partitions == 1 or total == 0:
        return [(0, nx)]
    targets = total * np.arange(1, n_partitions) / n_partitions
    cuts = np.unique(np.searchsorted(load, targets, side="left") + 1)
    edges = [0, *[int(c) for c in cuts if 0 < c < nx], nx]
    return [(lo, hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True) if hi > lo]


def in_strip(ranges: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Return the indices of the MBRs that touch column strip ``[lo, hi)``."""
    return np.flatnonzero((ranges[:, 0] < hi) & (ranges[:, 2] >= lo))


def _listings(ranges: np.ndarray, lo: int, hi: int, ny: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (geometry index, cell key) of every cell of strip [lo, hi) each MBR covers."""
    ix0 = np.maximum(ranges[:, 0], lo)
    ix1 = np.minimum(ranges[:, 2], hi - 1)
    columns = np.maximum(ix1 - ix0 + 1, 0)
    rows = ranges[:, 3] - ranges[:, 1] + 1
    counts = columns * rows
    geometry = np.repeat(np.arange(len(ranges), dtype=np.int64), counts)
    offset = np.arange(geometry.size, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts,
                                                                  counts)
    rows_g = rows[geometry]
    key = (ix0[geometry] + offset // rows_g) * ny + ranges[geometry, 1] + offset % rows_g
    return geometry, key


def candidate_pairs(
    ranges_a: np.ndarray,
    ranges_b: np.ndarray,
    lo: int,
    hi: int,
    ny: int,
    max_pairs: int = 2_000_000,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield chunks of candidate pairs (pairs sharing a cell of strip [lo, hi), each once).

    Args:
        ranges_a: ``(n, 4)`` cell ranges of the source geometries (``EquiGrid.cell_ranges``).
        ranges_b: ``(m, 4)`` cell ranges of the target geometries.
        lo: first grid column of the strip.
        hi: one past its last column.
        ny: the grid's number of rows (cell key = column * ny + row).
        max_pairs: about how many pairs one chunk may hold (a single cell is never split).

    Yields:
        ``(source_index, target_index)`` int64 arrays of one chunk; a pair appears in exactly one
        chunk, in its reference cell.

    """
    geom_a, key_a = _listings(ranges_a, lo, hi, ny)
    geom_b, key_b = _listings(ranges_b, lo, hi, ny)
    order_a = np.argsort(key_a, kind="stable")
    order_b = np.argsort(key_b, kind="stable")
    key_a, geom_a = key_a[order_a], geom_a[order_a]
    key_b, geom_b = key_b[order_b], geom_b[order_b]
    cells_a, start_a, count_a = _runs_of_sorted(key_a)
    cells_b, start_b, count_b = _runs_of_sorted(key_b)
    if cells_a.size == 0 or cells_b.size == 0:
        return
    at = np.minimum(np.searchsorted(cells_b, cells_a), cells_b.size - 1)
    shared = cells_b[at] == cells_a
    if not shared.any():
        return
    cell = cells_a[shared]
    start_a, count_a = start_a[shared], count_a[shared]
    start_b, count_b = start_b[at[shared]], count_b[at[shared]]
    ref_col_a, ref_row_a = ranges_a[:, 0].copy(), ranges_a[:, 1].copy()
    ref_col_b, ref_row_b = ranges_b[:, 0].copy(), ranges_b[:, 1].copy()
    per_cell = count_a * count_b
    cumulative = np.cumsum(per_cell)
    chunk_of_cell = (cumulative - per_cell) // max(max_pairs, 1)
    bounds = np.flatnonzero(np.diff(chunk_of_cell)) + 1
    for first, last in zip(np.r_[0, bounds], np.r_[bounds, cell.size], strict=True):
        sl = slice(int(first), int(last))
        pairs = per_cell[sl]
        group = np.repeat(np.arange(pairs.size, dtype=np.int64), pairs)
        offset = np.arange(group.size, dtype=np.int64) - np.repeat(np.cumsum(pairs) - pairs,
                                                                   pairs)
        width = count_b[sl][group]
        source = geom_a[start_a[sl][group] + offset // width]
        target = geom_b[start_b[sl][group] + offset % width]
        ref_col = np.maximum(ref_col_a[source], ref_col_b[target])
        ref_row = np.maximum(ref_row_a[source], ref_row_b[target])
        keep = ref_col * ny + ref_row == cell[sl][group]
        yield source[keep], target[keep]


def _runs_of_sorted(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct values of a sorted array with where each run starts and its length."""
    if keys.size == 0:
        empty = np.empty(0, np.int64)
        return empty, empty, empty
    starts = np.r_[0, np.flatnonzero(keys[1:] != keys[:-1]) + 1]
    counts = np.diff(np.r_[starts, keys.size])
    return keys[starts], starts, counts


def mbrs_intersect(
    bounds_a: np.ndarray, bounds_b: np.ndarray, source: np.ndarray, target: np.ndarray
) -> np.ndarray:
    """Return whether the MBRs of each pair (``source[i]``, ``target[i]``) intersect."""
    return (
        (bounds_a[:, 0][source] <= bounds_b[:, 2][target])
        & (bounds_b[:, 0][target] <= bounds_a[:, 2][source])
        & (bounds_a[:, 1][source] <= bounds_b[:, 3][target])
        & (bounds_b[:, 1][target] <= bounds_a[:, 3][source])
    )
