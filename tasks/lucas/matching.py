"""Which map classes lie near each survey point: the spatial core of the LUCAS evaluation.

For points (x, y in the map's projected CRS, metres) it returns, per point and crop class, whether
an instance of that class lies within the radius (distance point-to-polygon <= r, 0 inside), and
the class and distance of the nearest instance (for nearest-instance matching).

Vector maps: candidates are found from the instances' bounding boxes only, with a grid join of
the boxes and the points (:class:`PointGrid`: a summed-area table of the point counts per cell
drops every box with no point within the search distance in a few vectorised passes, then one
sorted-key range per remaining box and cell row lists its points, and an exact box test keeps the
pairs). The map is processed chunk by chunk (a GeoParquet file with a bbox covering column: row
group by row group, reading a group's boxes, and its WKB only when a box is near a point; chunks
far from every point are skipped on their extent), two chunks at a time. Only candidate
geometries are decoded; the exact point-to-geometry distance decides (``shapely.dwithin`` for
the radius, ``shapely.distance`` for the nearest instance). A point whose nearest instance is
beyond the search distance is searched again with a four times larger distance, up to
``nearest_max_distance_m``. The result equals an all-pairs computation (tested against one).
Memory: the points, the per-instance class codes and one chunk per thread, whatever the map's
size (50 M parcels: about 1.1 GB peak).

Raster maps: each pixel is a square instance footprint and its exact square-to-point distance is
used. Points are grouped by raster tile; each tile a point falls in is read once (plus a halo of the
search distance) and all its points are tested at once with numpy on their pixel neighbourhoods.
The result equals the one-window-read-per-point reference (tested).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from tasks.domain.crops import CROP_CLASSES
from tasks.lucas.crop_map import RasterCropMap, VectorCropMap

log = logging.getLogger(__name__)
N_CLASSES = len(CROP_CLASSES)


@dataclass
class Neighbourhood:
    """Map classes around each point (indices into CROP_CLASSES).

    Attributes:
        within: bool (n_points, 16): an instance of the class lies within the radius.
        n_within: int (n_points,) instances (vector) or pixels (raster) within the radius.
        nearest_class: int16 (n_points,) class of the nearest instance, -1 when none within
            ``nearest_max_distance_m``.
        nearest_distance_m: float (n_points,) distance to it (inf when none).

    """

    within: np.ndarray
    n_within: np.ndarray
    nearest_class: np.ndarray
    nearest_distance_m: np.ndarray


def _empty(n: int) -> Neighbourhood:
    return Neighbourhood(
        within=np.zeros((n, N_CLASSES), bool), n_within=np.zeros(n, "int64"),
        nearest_class=np.full(n, -1, "int16"), nearest_distance_m=np.full(n, np.inf),
    )


#: Most cells of the points' count grid (int32 summed-area table: 4 bytes each).
GRID_MAX_CELLS = 16_000_000


@dataclass
class PointGrid:
    """Points binned in a regular grid, for box-to-point candidate joins without a per-box loop.

    ``sat`` is the summed-area table of the point counts per cell, so the number of points in
    any cell rectangle costs four lookups; ``keys`` are the sorted cell keys (row * ncx + col)
    of the points and ``order`` the point index of each, so the points of a run of cells in one
    row are one ``searchsorted`` range.
    """

    x: np.ndarray
    y: np.ndarray
    ox: float
    oy: float
    cell: float
    ncx: int
    ncy: int
    sat: np.ndarray
    keys: np.ndarray
    order: np.ndarray

    @classmethod
    def build(cls, x: np.ndarray, y: np.ndarray, distance: float) -> PointGrid:
        """Bin points (map CRS, metres) in cells of ~4 x ``distance`` (<= GRID_MAX_CELLS)."""
        x = np.asarray(x, dtype="float64")
        y = np.asarray(y, dtype="float64")
        ox, oy = float(x.min()), float(y.min())
        width = max(float(x.max()) - ox, 1.0)
        height = max(float(y.max()) - oy, 1.0)
        cell = max(4.0 * distance, 50.0, float(np.sqrt(width * height / GRID_MAX_CELLS)))
        ncx = int(width // cell) + 1
        ncy = int(height // cell) + 1
        while ncx * ncy > GRID_MAX_CELLS:  # rounding of the square root
            cell *= 1.01
            ncx, ncy = int(width // cell) + 1, int(height // cell) + 1
        ix = np.minimum(np.floor((x - ox) / cell).astype("int64"), ncx - 1)
        iy = np.minimum(np.floor((y - oy) / cell).astype("int64"), ncy - 1)
        key = iy * ncx + ix
        counts = np.bincount(key, minlength=ncx * ncy).reshape(ncy, ncx)
        sat = np.zeros((ncy + 1, ncx + 1), dtype="int32")
        np.cumsum(np.cumsum(counts, axis=0, dtype="int32"), axis=1, out=sat[1:, 1:])
        order = np.argsort(key, kind="stable")
        return cls(x=x, y=y, ox=ox, oy=oy, cell=cell, ncx=ncx, ncy=ncy, sat=sat,
                   keys=key[order], order=order)

    def _cells(self, edge: np.ndarray, grow: float, origin: float, n: int) -> np.ndarray:
        """Cell index (int32, clipped to 0..n-1, NaN -> 0) of ``edge + grow``, in its dtype."""
        c = edge + edge.dtype.type(grow - origin)
        c *= edge.dtype.type(1.0 / self.cell)
        np.floor(c, out=c)
        np.fmax(c, 0, out=c)  # fmax / fmin also turn NaN (a box without geometry) into a cell
        np.fmin(c, n - 1, out=c)
        return c.astype("int32")

    def pairs(self, boxes: np.ndarray | tuple[np.ndarray, ...], distance: float) -> tuple[
        np.ndarray, np.ndarray
    ]:
        """All (point, box) pairs with the point inside the box grown by ``distance`` per axis.

        Boxes are first tested against the summed-area table of the point counts, in their own
        precision (float32 covering columns stay float32) with the grid cells widened by a few
        float ulps, so the test never drops a pair; the exact test of the remaining pairs is in
        float64.

        Args:
            boxes: float (m, 4) xmin, ymin, xmax, ymax, or those four (m,) arrays; NaN boxes
                never match.
            distance: growth of every box side, same units.

        Returns:
            (point index, box row) int64 arrays, sorted by box row.

        """
        if isinstance(boxes, np.ndarray):
            boxes = (boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3])
        xmin, ymin, xmax, ymax = (b if b.dtype in (np.float32, np.float64) else
                                  b.astype("float64") for b in boxes)
        empty = np.zeros(0, "int64")
        if xmin.size == 0:
            return empty, empty
        far = max(abs(self.ox), abs(self.oy), abs(self.ox + self.ncx * self.cell),
                  abs(self.oy + self.ncy * self.cell))
        slack = float(16 * np.spacing(xmin.dtype.type(far)) + 16 * np.spacing(far))
        grow = distance + slack
        cx0 = self._cells(xmin, -grow, self.ox, self.ncx)
        cx1 = self._cells(xmax, grow, self.ox, self.ncx)
        cy0 = self._cells(ymin, -grow, self.oy, self.ncy)
        cy1 = self._cells(ymax, grow, self.oy, self.ncy)
        width = self.ncx + 1
        sat = self.sat.ravel()
        top = cy1 + 1
        top *= width
        bottom = cy0 * width
        right = cx1 + 1
        count = sat.take(top + right)
        count -= sat.take(bottom + right)
        count -= sat.take(top + cx0)
        count += sat.take(bottom + cx0)
        box = np.flatnonzero(count > 0)
        if box.size == 0:
            return empty, empty
        cx0, cx1, cy0, cy1 = cx0[box], cx1[box], cy0[box], cy1[box]
        x0 = xmin[box].astype("float64") - distance
        x1 = xmax[box].astype("float64") + distance
        y0 = ymin[box].astype("float64") - distance
        y1 = ymax[box].astype("float64") + distance
        # one query per (box, cell row): the points of cells cx0..cx1 of that row are contiguous
        rows = (cy1 - cy0 + 1).astype("int64")
        q_box = np.repeat(np.arange(box.size), rows)
        q_row = cy0[q_box].astype("int64") + (
            np.arange(q_box.size) - np.repeat(np.cumsum(rows) - rows, rows))
        lo = np.searchsorted(self.keys, q_row * self.ncx + cx0[q_box], side="left")
        hi = np.searchsorted(self.keys, q_row * self.ncx + cx1[q_box], side="right")
        length = hi - lo
        total = int(length.sum())
        pair_box = np.repeat(q_box, length)
        pos = np.arange(total) - np.repeat(np.cumsum(length) - length, length) + np.repeat(
            lo, length)
        point = self.order[pos]
        px, py = self.x[point], self.y[point]
        keep = ((x0[pair_box] <= px) & (px <= x1[pair_box]) & (y0[pair_box] <= py)
                & (py <= y1[pair_box]))
        return point[keep], box[pair_box[keep]]


def _limit_nearest(out: Neighbourhood, nearest_max_distance_m: float) -> Neighbourhood:
    """Forget a nearest instance found beyond ``nearest_max_distance_m`` (the documented -1).

    The first search reaches at least the radius, which may exceed the limit.
    """
    beyond = out.nearest_distance_m > nearest_max_distance_m
    out.nearest_class[beyond] = -1
    out.nearest_distance_m[beyond] = np.inf
    return out


def candidate_pairs(
    bbox: np.ndarray, x: np.ndarray, y: np.ndarray, distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return every (point, instance) pair whose instance box lies within ``distance`` of the point.

    Per axis (a box grown by ``distance`` contains the point): a superset of the pairs whose
    geometry lies within ``distance``. A grid join over the points (summed-area table to drop
    boxes with no point near, then one sorted-key range per box and cell row): no loop per
    instance or point, memory linear in the points and the matching pairs.

    Args:
        bbox: float (n, 4) xmin, ymin, xmax, ymax of the instances.
        x: point x coordinates, same CRS.
        y: point y coordinates.
        distance: search distance, CRS units (metres).

    Returns:
        (point index, instance index) int64 arrays.

    """
    if len(x) == 0 or len(bbox) == 0:
        return np.zeros(0, "int64"), np.zeros(0, "int64")
    return PointGrid.build(x, y, distance).pairs(np.asarray(bbox, dtype="float64"), distance)


def candidate_instances(
    bbox: np.ndarray, x: np.ndarray, y: np.ndarray, distance: float
) -> np.ndarray:
    """Return the sorted instances whose box lies within ``distance`` (per axis) of a point.

    A superset of the instances whose geometry lies within ``distance`` of any point.
    """
    return np.unique(candidate_pairs(bbox, x, y, distance)[1])


#: Threads matching chunks of a map at once (reading, numpy and GEOS release the GIL).
MATCH_THREADS = 2


@dataclass
class _ChunkPairs:
    """Exact results of one chunk at one search level: pairs within the search distance."""

    point: np.ndarray  # local point index
    instance: np.ndarray  # instance index in the map
    distance: np.ndarray
    within_point: np.ndarray  # pairs within the radius (first level only)
    within_instance: np.ndarray


def _chunk_may_hit(crop_map: VectorCropMap, chunk: int, start: int, stop: int,
                   grid: PointGrid, search: float, extents: dict[int, np.ndarray]) -> bool:
    """Return False when no point lies within ``search`` of the chunk's extent (skip it)."""
    if start not in extents:
        if crop_map.chunk_extents is not None:
            extents[start] = crop_map.chunk_extents[chunk]
        else:
            x0, y0, x1, y1 = crop_map.chunk_boxes(start, stop)
            extents[start] = np.array([np.nanmin(x0), np.nanmin(y0), np.nanmax(x1),
                                       np.nanmax(y1)])
    x0, y0, x1, y1 = extents[start]
    near = ((grid.x >= x0 - search) & (grid.x <= x1 + search) & (grid.y >= y0 - search)
            & (grid.y <= y1 + search))
    return bool(near.any())


def _match_chunk(crop_map: VectorCropMap, start: int, stop: int, grid: PointGrid,
                 points: np.ndarray, search: float, radius_m: float | None) -> _ChunkPairs:
    """Candidates of one chunk from its boxes, then exact distances on their geometries."""
    empty = np.zeros(0, "int64")
    p_idx, local = grid.pairs(crop_map.chunk_boxes(start, stop), search)
    if p_idx.size == 0:
        return _ChunkPairs(empty, empty, np.zeros(0), empty, empty)
    unique, inverse = np.unique(local, return_inverse=True)
    geoms = crop_map.chunk_geometries(start, unique)[inverse]
    inst = start + local
    dist = shapely.distance(points[p_idx], geoms)
    reach = dist <= search
    if radius_m is not None:
        near = shapely.dwithin(points[p_idx], geoms, radius_m)
        w_point, w_inst = p_idx[near], inst[near]
    else:
        w_point = w_inst = empty
    return _ChunkPairs(p_idx[reach], inst[reach], dist[reach], w_point, w_inst)


def _match_level(
    crop_map: VectorCropMap, x: np.ndarray, y: np.ndarray, search: float,
    radius_m: float | None, out: Neighbourhood, rows_out: np.ndarray,
    extents: dict[int, np.ndarray],
) -> None:
    """One search distance for the points ``x, y`` (rows ``rows_out`` of ``out``).

    Candidate pairs come from the boxes chunk by chunk (a chunk's geometries are decoded only
    for its candidates; ``MATCH_THREADS`` chunks at a time); exact distances decide.
    ``radius_m`` set: also fill ``within`` / ``n_within``. The nearest instance within
    ``search`` wins, ties to the smallest instance index.
    """
    from concurrent.futures import ThreadPoolExecutor

    grid = PointGrid.build(x, y, search)
    points = shapely.points(x, y)
    todo = [(start, stop) for k, (start, stop) in enumerate(crop_map.chunks())
            if _chunk_may_hit(crop_map, k, start, stop, grid, search, extents)]
    if not todo:
        return
    with ThreadPoolExecutor(max_workers=min(MATCH_THREADS, len(todo))) as pool:
        found = list(pool.map(
            lambda chunk: _match_chunk(crop_map, chunk[0], chunk[1], grid, points, search,
                                       radius_m), todo))
    if radius_m is not None:
        rows = rows_out[np.concatenate([f.within_point for f in found])]
        classes = crop_map.class_index[np.concatenate([f.within_instance for f in found])]
        out.within[rows, classes] = True
        np.add.at(out.n_within, rows, 1)
    p_idx = np.concatenate([f.point for f in found])
    if p_idx.size == 0:
        return
    inst = np.concatenate([f.instance for f in found])
    dist = np.concatenate([f.distance for f in found])
    # deterministic tie-break: smallest distance, then smallest instance index.
    order = np.lexsort((inst, dist, p_idx))
    p_sorted = p_idx[order]
    firsts = order[np.r_[True, p_sorted[1:] != p_sorted[:-1]]]
    rows = rows_out[p_idx[firsts]]
    out.nearest_class[rows] = crop_map.class_index[inst[firsts]]
    out.nearest_distance_m[rows] = dist[firsts]


def vector_neighbourhood(
    crop_map: VectorCropMap, x: np.ndarray, y: np.ndarray, radius_m: float,
    nearest_max_distance_m: float,
) -> Neighbourhood:
    """Classes within ``radius_m`` and the nearest instance of each point, vector map.

    The map is processed chunk by chunk (a file-backed map: row group by row group, reading a
    group's WKB only when one of its boxes is near a point). Candidates come from a grid join of
    the instance boxes with the points (:class:`PointGrid`); only their geometries are decoded
    and the exact point-to-geometry distance decides (``shapely.dwithin`` for the radius).
    A point whose nearest instance lies beyond the search distance (at first
    ``max(4 * radius_m, 40)`` m) is searched again at four times the distance, up to
    ``nearest_max_distance_m``; chunks with no such point near their extent are skipped.

    Args:
        crop_map: instances in a projected CRS (metres).
        x: point x coordinates in the map's CRS.
        y: point y coordinates in the map's CRS.
        radius_m: radius of the same-label rule.
        nearest_max_distance_m: farthest distance searched for the nearest instance.

    """
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    n = len(x)
    out = _empty(n)
    if n == 0 or len(crop_map) == 0:
        return out
    search = min(max(4.0 * radius_m, 40.0), nearest_max_distance_m)
    search = max(search, radius_m)
    remaining = np.arange(n)
    first = True
    extents: dict[int, np.ndarray] = {}
    while remaining.size:
        _match_level(crop_map, x[remaining], y[remaining], search,
                     radius_m if first else None, out, remaining, extents)
        first = False
        remaining = remaining[~np.isfinite(out.nearest_distance_m[remaining])]
        if search >= nearest_max_distance_m:
            break
        search = min(search * 4.0, nearest_max_distance_m)
        log.debug("%d point(s) have no instance nearby; widening the search to %.0f m",
                  remaining.size, search)
    return _limit_nearest(out, nearest_max_distance_m)


def raster_neighbourhood_per_point(
    crop_map: RasterCropMap, x: np.ndarray, y: np.ndarray, radius_m: float,
    nearest_max_distance_m: float,
) -> Neighbourhood:
    """Compute :func:`raster_neighbourhood` with one windowed read per point (slow reference).

    Pixels are squares; their distance to a point is the point-to-square distance (0 inside).
    Pixel values outside 0..15 or equal to nodata are "no instance". Kept as the correctness
    reference in tests and the baseline of ``bench/p7_raster.py``.
    """
    import rasterio
    from rasterio.windows import Window

    n = len(x)
    out = _empty(n)
    t = crop_map.transform
    res_x, res_y = abs(t.a), abs(t.e)
    with rasterio.open(crop_map.source) as src:
        for i in range(n):
            search = max(radius_m, min(4.0 * radius_m, nearest_max_distance_m))
            first = True
            while True:
                col_f = (x[i] - t.c) / t.a
                row_f = (y[i] - t.f) / t.e
                half_c = int(np.ceil(search / res_x)) + 1
                half_r = int(np.ceil(search / res_y)) + 1
                c0, r0 = int(np.floor(col_f)) - half_c, int(np.floor(row_f)) - half_r
                window = Window(c0, r0, 2 * half_c + 1, 2 * half_r + 1)
                fill = crop_map.nodata if crop_map.nodata is not None else -1
                block = src.read(1, window=window, boundless=True, fill_value=fill)
                cols = c0 + np.arange(block.shape[1])
                rows = r0 + np.arange(block.shape[0])
                # pixel square edges in map coordinates
                px0 = t.c + cols * t.a
                px1 = px0 + t.a
                py0 = t.f + rows * t.e
                py1 = py0 + t.e
                lo_x, hi_x = np.minimum(px0, px1), np.maximum(px0, px1)
                lo_y, hi_y = np.minimum(py0, py1), np.maximum(py0, py1)
                dx = np.maximum(np.maximum(lo_x - x[i], x[i] - hi_x), 0.0)
                dy = np.maximum(np.maximum(lo_y - y[i], y[i] - hi_y), 0.0)
                dist = np.hypot(dy[:, None], dx[None, :])
                valid = (block >= 0) & (block < N_CLASSES)
                if crop_map.nodata is not None:
                    valid &= block != crop_map.nodata
                if first:
                    near = valid & (dist <= radius_m)
                    out.within[i, np.unique(block[near]).astype(int)] = True
                    out.n_within[i] = int(near.sum())
                reach = valid & (dist <= search)
                if reach.any():
                    d = np.where(reach, dist, np.inf)
                    k = np.unravel_index(int(np.argmin(d)), d.shape)
                    out.nearest_class[i] = int(block[k])
                    out.nearest_distance_m[i] = float(d[k])
                    break
                first = False
                if search >= nearest_max_distance_m:
                    break
                search = min(search * 4.0, nearest_max_distance_m)
    return _limit_nearest(out, nearest_max_distance_m)


#: Target tile edge (pixels) of the block-grouped raster sampling; rounded up to whole blocks.
SAMPLING_TILE_PX = 512
#: Most gathered pixels held at once per batch of points (bounds memory: ~18 bytes each).
SAMPLING_BATCH_PIXELS = 4_000_000


def _sampling_tile_shape(src: Any) -> tuple[int, int]:
    """Rows, columns of the processing tile: whole internal blocks, at least SAMPLING_TILE_PX."""
    block_h, block_w = src.block_shapes[0]
    tile_h = block_h * max(1, -(-SAMPLING_TILE_PX // block_h))
    tile_w = block_w * max(1, -(-SAMPLING_TILE_PX // block_w))
    return min(tile_h, max(src.height, 1)), min(tile_w, max(src.width, 1))


def _read_class_window(
    src: Any, crop_map: RasterCropMap, row0: int, col0: int, height: int, width: int
) -> np.ndarray:
    """Read a window (may extend beyond the raster) as int16 class indices, -1 = no instance.

    Pixels outside the raster, nodata and values outside 0..15 all become -1, the same as the
    per-point reader's boundless read with the nodata fill.
    """
    from rasterio.windows import Window

    out = np.full((height, width), -1, dtype="int16")
    r_lo, r_hi = max(row0, 0), min(row0 + height, src.height)
    c_lo, c_hi = max(col0, 0), min(col0 + width, src.width)
    if r_lo >= r_hi or c_lo >= c_hi:
        return out
    block = src.read(1, window=Window(c_lo, r_lo, c_hi - c_lo, r_hi - r_lo))
    valid = (block >= 0) & (block < N_CLASSES)
    if crop_map.nodata is not None:
        valid &= block != crop_map.nodata
    inner = out[r_lo - row0:r_hi - row0, c_lo - col0:c_hi - col0]
    inner[valid] = block[valid]
    return out


def _sample_level(
    src: Any, crop_map: RasterCropMap, x: np.ndarray, y: np.ndarray, points: np.ndarray,
    search: float, radius_m: float | None, out: Neighbourhood,
) -> np.ndarray:
    """One search distance for ``points``: fill ``out``; return the points with nothing in reach.

    Points are grouped by processing tile; each tile is read once with a halo of the search
    distance, then every point of the tile is tested with numpy on its (2h+1)^2 neighbourhood.
    ``radius_m`` set: also fill ``within`` / ``n_within`` (first level only).
    """
    t = crop_map.transform
    res_x, res_y = abs(t.a), abs(t.e)
    half_c = int(np.ceil(search / res_x)) + 1
    half_r = int(np.ceil(search / res_y)) + 1
    off_c = np.arange(-half_c, half_c + 1)
    off_r = np.arange(-half_r, half_r + 1)
    window_px = off_c.size * off_r.size
    px = x[points]
    py = y[points]
    col = np.floor((px - t.c) / t.a).astype("int64")
    row = np.floor((py - t.f) / t.e).astype("int64")
    tile_h, tile_w = _sampling_tile_shape(src)
    tile_r = np.floor_divide(row, tile_h)
    tile_c = np.floor_divide(col, tile_w)
    order = np.lexsort((tile_c, tile_r))
    key_r, key_c = tile_r[order], tile_c[order]
    starts = np.flatnonzero(np.r_[True, (key_r[1:] != key_r[:-1]) | (key_c[1:] != key_c[:-1])])
    ends = np.r_[starts[1:], order.size]
    batch = max(1, SAMPLING_BATCH_PIXELS // window_px)
    unresolved = []
    for s, e in zip(starts, ends, strict=True):
        r0 = int(key_r[s]) * tile_h - half_r
        c0 = int(key_c[s]) * tile_w - half_c
        classes = _read_class_window(src, crop_map, r0, c0, tile_h + 2 * half_r,
                                     tile_w + 2 * half_c)
        members = order[s:e]
        for b in range(0, members.size, batch):
            local = members[b:b + batch]
            unresolved.append(local[_test_points(
                classes, r0, c0, row[local], col[local], px[local], py[local], off_r, off_c,
                t, search, radius_m, out, points[local],
            )])
    return points[np.concatenate(unresolved)] if unresolved else points[:0]


def _test_points(
    classes: np.ndarray, r0: int, c0: int, row: np.ndarray, col: np.ndarray, px: np.ndarray,
    py: np.ndarray, off_r: np.ndarray, off_c: np.ndarray, t: Any, search: float,
    radius_m: float | None, out: Neighbourhood, rows_out: np.ndarray,
) -> np.ndarray:
    """Test points of one tile; return the local indices of those with nothing within ``search``."""
    n = row.size
    rows = row[:, None] + off_r[None, :]  # absolute pixel rows (n, wr)
    cols = col[:, None] + off_c[None, :]  # absolute pixel columns (n, wc)
    cls = classes[(rows - r0)[:, :, None], (cols - c0)[:, None, :]]  # (n, wr, wc)
    # pixel square edges in map coordinates: the same arithmetic as the per-point reader
    px0 = t.c + cols * t.a
    px1 = px0 + t.a
    py0 = t.f + rows * t.e
    py1 = py0 + t.e
    lo_x, hi_x = np.minimum(px0, px1), np.maximum(px0, px1)
    lo_y, hi_y = np.minimum(py0, py1), np.maximum(py0, py1)
    dx = np.maximum(np.maximum(lo_x - px[:, None], px[:, None] - hi_x), 0.0)
    dy = np.maximum(np.maximum(lo_y - py[:, None], py[:, None] - hi_y), 0.0)
    dist = np.hypot(dy[:, :, None], dx[:, None, :])
    valid = cls >= 0
    if radius_m is not None:
        near = valid & (dist <= radius_m)
        owner = np.broadcast_to(np.arange(n)[:, None, None], near.shape)[near]
        counts = np.bincount(owner * N_CLASSES + cls[near], minlength=n * N_CLASSES)
        counts = counts.reshape(n, N_CLASSES)
        out.within[rows_out] = counts > 0
        out.n_within[rows_out] = counts.sum(axis=1)
    d = np.where(valid & (dist <= search), dist, np.inf).reshape(n, -1)
    k = np.argmin(d, axis=1)  # first minimum in row-major order, as the per-point reader
    best = d[np.arange(n), k]
    found = np.isfinite(best)
    out.nearest_class[rows_out[found]] = cls.reshape(n, -1)[np.flatnonzero(found), k[found]]
    out.nearest_distance_m[rows_out[found]] = best[found]
    return np.flatnonzero(~found)


def raster_neighbourhood(
    crop_map: RasterCropMap, x: np.ndarray, y: np.ndarray, radius_m: float,
    nearest_max_distance_m: float,
) -> Neighbourhood:
    """Classes within ``radius_m`` and the nearest class pixel of each point, class raster.

    Pixels are squares; their distance to a point is the point-to-square distance (0 inside).
    Pixel values outside 0..15 or equal to nodata, and pixels beyond the raster, are
    "no instance". Points are grouped by raster tile (whole internal blocks, about
    ``SAMPLING_TILE_PX`` square); each needed tile is read once with a halo of the search distance
    and all its points are tested with numpy, in batches of at most ``SAMPLING_BATCH_PIXELS``
    gathered pixels, so memory stays bounded whatever the number of points. Points with nothing
    within the search distance are searched again at four times the distance, up to
    ``nearest_max_distance_m``. Gives the same result as :func:`raster_neighbourhood_per_point`
    (tested), ties of the nearest pixel broken by the smallest row, then column.

    Args:
        crop_map: the class raster (north-up).
        x: point x coordinates in the raster's CRS.
        y: point y coordinates.
        radius_m: radius of the same-label rule.
        nearest_max_distance_m: farthest distance searched for the nearest class pixel.

    Raises:
        ValueError: a coordinate is not finite.

    """
    import rasterio

    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    n = len(x)
    out = _empty(n)
    if n == 0:
        return out
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        raise ValueError(
            f"{crop_map.source}: {int(bad.sum())} point(s) have non-finite coordinates (first at "
            f"index {int(np.flatnonzero(bad)[0])}); drop points without a location first"
        )
    search = max(radius_m, min(4.0 * radius_m, nearest_max_distance_m))
    remaining = np.arange(n)
    first = True
    with rasterio.open(crop_map.source) as src:
        while remaining.size:
            remaining = _sample_level(src, crop_map, x, y, remaining, search,
                                      radius_m if first else None, out)
            first = False
            if search >= nearest_max_distance_m:
                break
            search = min(search * 4.0, nearest_max_distance_m)
            if remaining.size:
                log.debug("%d point(s) have no class pixel nearby; widening the search to %.0f m",
                          remaining.size, search)
    return _limit_nearest(out, nearest_max_distance_m)


def neighbourhood(
    crop_map: VectorCropMap | RasterCropMap, x: np.ndarray, y: np.ndarray, radius_m: float,
    nearest_max_distance_m: float,
) -> Neighbourhood:
    """Dispatch to :func:`vector_neighbourhood` or :func:`raster_neighbourhood`."""
    if isinstance(crop_map, VectorCropMap):
        return vector_neighbourhood(crop_map, x, y, radius_m, nearest_max_distance_m)
    return raster_neighbourhood(crop_map, x, y, radius_m, nearest_max_distance_m)


def all_pairs_neighbourhood(
    geoms: np.ndarray, class_index: np.ndarray, x: np.ndarray, y: np.ndarray, radius_m: float,
) -> Neighbourhood:
    """Naive reference: distance from every point to every instance (no index, no limit).

    Used as the correctness reference in tests and as the baseline of benchmark P7.
    """
    n = len(x)
    out = _empty(n)
    for i in range(n):
        dist = shapely.distance(shapely.Point(x[i], y[i]), geoms)
        near = dist <= radius_m
        out.within[i, np.unique(class_index[near])] = True
        out.n_within[i] = int(near.sum())
        k = int(np.lexsort((np.arange(dist.size), dist))[0])
        out.nearest_class[i] = class_index[k]
        out.nearest_distance_m[i] = float(dist[k])
    return out
