"""Generate an EU-scale crop map (tens of millions of parcels) and LUCAS points, in chunks.

The same farmland model as :mod:`tasks.lucas.generator` (blocks of 220-420 m x 180-380 m between
roads 4-9 m wide, 30 % of blocks woodland / settlement / water / shrubland, farm blocks cut into
1-6 parcels), built without a per-parcel Python loop and without holding the map in memory:

- blocks are grouped in tiles of ``TILE_BLOCKS`` x ``TILE_BLOCKS`` (about 10 km square) visited in
  Hilbert-curve order; a batch of tiles becomes one Parquet row group, so every row group covers
  a compact area and its bbox statistics let a reader skip it;
- the cuts between the parcels of a block are slanted (their two ends move independently by up to
  a quarter of the narrower neighbour), so parcels are convex quadrilaterals with shared borders,
  0.2-16 ha;
- WKB is built with numpy (a 93-byte record per quadrilateral) and written as GeoParquet 1.1 with a
  float32 ``bbox`` covering column rounded outwards (each box contains its parcel), uncompressed,
  the WKB column ``DELTA_LENGTH_BYTE_ARRAY``-encoded (decodes ~1.6 x faster than ``PLAIN``);
- the map's classes are the truth with ``error_rate`` of the parcels relabelled to a confusable
  class (a model's errors); LUCAS points see the truth.

Points follow :func:`tasks.lucas.generator.generate_lucas_points` (theoretical grid, observer on the
nearest road-facing side of the parcel, GPS noise, office / missing GPS shares, 2018 schema) and
carry the NUTS0 code of the smallest country bounding box holding them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyproj import CRS

from tasks.domain.crops import CROP_CLASSES
from tasks.lucas.generator import (
    CLASS_LC1,
    CLASS_SHARE,
    CONFUSABLE,
    NON_FARM,
    lucas_table,
    nuts0_of,
)

#: Blocks per tile side; a tile is about 10 km square.
TILE_BLOCKS = 32
#: Tiles per row group (about 600,000 parcels).
TILES_PER_GROUP = 256
#: Bytes of one WKB quadrilateral: byte order, type, ring count, point count, 5 x (x, y).
WKB_QUAD = np.dtype([("order", "u1"), ("type", "<u4"), ("rings", "<u4"), ("points", "<u4"),
                     ("xy", "<f8", (10,))])
_NON_FARM_KINDS = list(NON_FARM)


@dataclass
class EuFarmland:
    """What :func:`write_eu_farmland` wrote.

    Attributes:
        map_path: GeoParquet of the (model) map.
        points: LUCAS points table (2018 schema, WGS84).
        n_parcels: parcels written.
        n_row_groups: row groups of the map.
        extent: (xmin, ymin, xmax, ymax) of the block grid, map CRS (metres).
        crs: the map's CRS.

    """

    map_path: Path
    points: pd.DataFrame
    n_parcels: int
    n_row_groups: int
    extent: tuple[float, float, float, float]
    crs: str


def hilbert_index(x: np.ndarray, y: np.ndarray, order: int) -> np.ndarray:
    """Position of cells (x, y) along a Hilbert curve over a 2**order square (vectorised)."""
    x = np.asarray(x, dtype="int64").copy()
    y = np.asarray(y, dtype="int64").copy()
    d = np.zeros_like(x)
    s = 1 << (order - 1)
    while s > 0:
        rx = ((x & s) > 0).astype("int64")
        ry = ((y & s) > 0).astype("int64")
        d += s * s * ((3 * rx) ^ ry)
        flip = ry == 0
        swap_x = np.where(flip & (rx == 1), s - 1 - x, x)
        swap_y = np.where(flip & (rx == 1), s - 1 - y, y)
        x, y = np.where(flip, swap_y, swap_x), np.where(flip, swap_x, swap_y)
        s >>= 1
    return d


def quad_wkb(ring: np.ndarray) -> pa.BinaryArray:
    """WKB polygons from closed 5-point rings, float (n, 5, 2), little endian, no Python loop."""
    n = ring.shape[0]
    records = np.empty(n, dtype=WKB_QUAD)
    records["order"] = 1
    records["type"] = 3
    records["rings"] = 1
    records["points"] = 5
    records["xy"] = ring.reshape(n, 10)
    offsets = np.arange(n + 1, dtype="int32") * WKB_QUAD.itemsize
    return pa.BinaryArray.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(records.view("u1"))])


def _outward_float32(values: np.ndarray, down: bool) -> np.ndarray:
    """float32 values rounded outwards (down for minima, up for maxima)."""
    out = values.astype("float32")
    wrong = out > values if down else out < values
    out[wrong] = np.nextafter(out[wrong], np.float32(-np.inf if down else np.inf))
    return out


@dataclass
class _Grid:
    col_edges: np.ndarray
    row_edges: np.ndarray
    col_road: np.ndarray
    row_road: np.ndarray
    side: int

    def block_box(self, row: np.ndarray, col: np.ndarray) -> tuple[np.ndarray, ...]:
        """Farm area of blocks (inside the roads): x0, x1, y0, y1."""
        return (self.col_edges[col] + self.col_road[col],
                self.col_edges[col + 1] - self.col_road[col + 1],
                self.row_edges[row] + self.row_road[row],
                self.row_edges[row + 1] - self.row_road[row + 1])


@dataclass
class _Batch:
    """Blocks and parcels of one row group."""

    row: np.ndarray
    col: np.ndarray
    kind: np.ndarray  # -1 farm, else index into _NON_FARM_KINDS
    strips: np.ndarray
    first: np.ndarray  # first parcel of each block (batch-local)
    along_x: np.ndarray  # per block
    lo_b: np.ndarray  # per parcel: cut fractions at the two ends (b: bottom/left, t: top/right)
    lo_t: np.ndarray
    hi_b: np.ndarray
    hi_t: np.ndarray
    truth: np.ndarray


def _cuts(rng: np.random.Generator, strips: np.ndarray) -> tuple[np.ndarray, ...]:
    """Slanted cut fractions (lo_b, lo_t, hi_b, hi_t) of each parcel within its block."""
    n_blocks = strips.size
    block = np.repeat(np.arange(n_blocks), strips)
    weights = rng.uniform(0.5, 1.5, block.size)
    first = np.concatenate([[0], np.cumsum(strips)[:-1]])
    cs = np.cumsum(weights)
    start = first[block]
    before = np.where(start > 0, cs[np.maximum(start - 1, 0)], 0.0)
    total = np.zeros(n_blocks)
    np.add.at(total, block, weights)
    hi = (cs - before) / total[block]
    width = weights / total[block]
    last = np.r_[block[1:] != block[:-1], True]
    nxt = np.r_[width[1:], 0.0]
    limit = np.where(last, 0.0, 0.25 * np.minimum(width, nxt))
    hi_b = np.where(last, 1.0, hi + rng.uniform(-1, 1, block.size) * limit)
    hi_t = np.where(last, 1.0, hi + rng.uniform(-1, 1, block.size) * limit)
    is_first = np.arange(block.size) == start
    lo_b = np.where(is_first, 0.0, np.r_[0.0, hi_b[:-1]])
    lo_t = np.where(is_first, 0.0, np.r_[0.0, hi_t[:-1]])
    return lo_b, lo_t, hi_b, hi_t


def _batch(rng: np.random.Generator, grid: _Grid, tiles: np.ndarray, remaining: int,
           non_farm_share: float) -> _Batch:
    t = TILE_BLOCKS
    local = np.arange(t * t)
    row = (tiles[:, 1:2] * t + local // t).ravel()
    col = (tiles[:, 0:1] * t + local % t).ravel()
    ok = (row < grid.side) & (col < grid.side)
    row, col = row[ok], col[ok]
    n = row.size
    farm = rng.random(n) >= non_farm_share
    share = np.array([NON_FARM[k][0] for k in _NON_FARM_KINDS])
    kind = np.where(farm, -1, rng.choice(len(share), n, p=share / share.sum()))
    strips = np.where(farm, rng.integers(1, 7, n), 0)
    total = np.cumsum(strips)
    if total.size and total[-1] >= remaining:  # the map is complete inside this batch
        last = int(np.searchsorted(total, remaining))
        strips[last] -= int(total[last] - remaining)
        strips[last + 1:] = 0
        kind[last + 1:] = np.where(kind[last + 1:] == -1, 0, kind[last + 1:])
        if strips[last] == 0:
            kind[last] = 0
    first = np.concatenate([[0], np.cumsum(strips)[:-1]])
    along_x = rng.random(n) < 0.5
    lo_b, lo_t, hi_b, hi_t = _cuts(rng, strips)
    p = np.array([CLASS_SHARE[c] for c in CROP_CLASSES])
    truth = rng.choice(len(CROP_CLASSES), size=int(strips.sum()), p=p / p.sum()).astype("int16")
    return _Batch(row, col, kind, strips, first, along_x, lo_b, lo_t, hi_b, hi_t, truth)


def _rings(grid: _Grid, b: _Batch) -> np.ndarray:
    """Return the closed rings (n, 5, 2) of the batch's parcels."""
    block = np.repeat(np.arange(b.row.size), b.strips)
    x0, x1, y0, y1 = grid.block_box(b.row[block], b.col[block])
    ax = b.along_x[block]
    w, h = x1 - x0, y1 - y0
    ring = np.empty((block.size, 5, 2))
    # along x: cuts run bottom -> top; along y: cuts run left -> right
    ring[:, 0] = np.where(ax[:, None], np.c_[x0 + b.lo_b * w, y0], np.c_[x0, y0 + b.lo_b * h])
    ring[:, 1] = np.where(ax[:, None], np.c_[x0 + b.hi_b * w, y0], np.c_[x1, y0 + b.lo_t * h])
    ring[:, 2] = np.where(ax[:, None], np.c_[x0 + b.hi_t * w, y1], np.c_[x1, y0 + b.hi_t * h])
    ring[:, 3] = np.where(ax[:, None], np.c_[x0 + b.lo_t * w, y1], np.c_[x0, y0 + b.hi_b * h])
    ring[:, 4] = ring[:, 0]
    return ring


def perturb_classes_fast(truth: np.ndarray, error_rate: float, rng: np.random.Generator
                         ) -> np.ndarray:
    """Relabel ``error_rate`` of the classes to a confusable class (vectorised, any size)."""
    width = max(len(v) for v in CONFUSABLE.values())
    table = np.zeros((len(CROP_CLASSES), width), dtype="int16")
    count = np.zeros(len(CROP_CLASSES), dtype="int64")
    for i, name in enumerate(CROP_CLASSES):
        options = [CROP_CLASSES.index(o) for o in CONFUSABLE[name]]
        table[i, :len(options)] = options
        count[i] = len(options)
    out = truth.astype("int16").copy()
    wrong = np.flatnonzero(rng.random(out.size) < error_rate)
    pick = rng.integers(0, 1 << 30, wrong.size) % count[out[wrong]]
    out[wrong] = table[out[wrong], pick]
    return out


def _map_table(ring: np.ndarray, classes: np.ndarray, rng: np.random.Generator) -> pa.Table:
    xs, ys = ring[:, :4, 0], ring[:, :4, 1]
    bbox = pa.StructArray.from_arrays(
        [pa.array(_outward_float32(xs.min(axis=1), True)),
         pa.array(_outward_float32(ys.min(axis=1), True)),
         pa.array(_outward_float32(xs.max(axis=1), False)),
         pa.array(_outward_float32(ys.max(axis=1), False))],
        names=["xmin", "ymin", "xmax", "ymax"])
    crop_class = pa.DictionaryArray.from_arrays(pa.array(classes.astype("int8")),
                                                pa.array(list(CROP_CLASSES)))
    return pa.table({
        "crop_class": crop_class,
        "confidence": pa.array(rng.uniform(0.4, 1.0, classes.size).astype("float32")),
        "geometry": quad_wkb(ring),
        "bbox": bbox,
    })


def _geo_metadata(crs: str) -> bytes:
    return json.dumps({
        "version": "1.1.0", "primary_column": "geometry",
        "columns": {"geometry": {
            "encoding": "WKB", "geometry_types": ["Polygon"],
            "crs": CRS.from_user_input(crs).to_json_dict(),
            "covering": {"bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}},
        }},
    }).encode()


@dataclass
class _PointsDraft:
    th: np.ndarray  # (n, 2) theoretical positions
    gps: np.ndarray  # (n, 2) observer positions before noise
    lc1: np.ndarray
    lu1: np.ndarray
    area: np.ndarray
    batch: np.ndarray  # batch index of each point's tile, -1 outside the tiled grid


def _point_parcel(grid: _Grid, b: _Batch, block: np.ndarray, px: np.ndarray, py: np.ndarray
                  ) -> np.ndarray:
    """Batch-local parcel holding each point (its block is a farm block), by the slanted cuts."""
    x0, x1, y0, y1 = grid.block_box(b.row[block], b.col[block])
    ax = b.along_x[block]
    # position across the cuts (0..1) and along them (0..1)
    across = np.where(ax, (px - x0) / (x1 - x0), (py - y0) / (y1 - y0))
    along = np.where(ax, (py - y0) / (y1 - y0), (px - x0) / (x1 - x0))
    parcel = b.first[block].copy()
    for k in range(1, 6):
        cand = b.first[block] + k
        has = k < b.strips[block]
        cand_c = np.minimum(cand, b.lo_b.size - 1)
        cut = b.lo_b[cand_c] + (b.lo_t[cand_c] - b.lo_b[cand_c]) * along
        parcel = np.where(has & (across >= cut), cand, parcel)
    return parcel


def _observe(rng: np.random.Generator, grid: _Grid, b: _Batch, draft: _PointsDraft,
             mine: np.ndarray, in_field_share: float) -> None:
    """LC1, LU1, area and observer position of the points ``mine`` (all in batch ``b``)."""
    px, py = draft.th[mine, 0], draft.th[mine, 1]
    row = np.searchsorted(grid.row_edges, py, side="right") - 1
    col = np.searchsorted(grid.col_edges, px, side="right") - 1
    key = row * grid.side + col
    batch_key = b.row * grid.side + b.col
    sorter = np.argsort(batch_key)
    block = sorter[np.searchsorted(batch_key, key, sorter=sorter)]
    x0, x1, y0, y1 = grid.block_box(row, col)
    on_road = ~((x0 <= px) & (px <= x1) & (y0 <= py) & (py <= y1))
    kind = b.kind[block]
    road = mine[on_road]
    draft.lc1[road], draft.lu1[road] = "A22", "U410"
    for k, name in enumerate(_NON_FARM_KINDS):
        sel = mine[~on_road & (kind == k)]
        _, codes, land_use = NON_FARM[name]
        draft.lc1[sel] = _pick_codes(rng, codes, sel.size)
        draft.lu1[sel] = land_use
    field = ~on_road & (kind == -1)
    sel = mine[field]
    blk = block[field]
    parcel = _point_parcel(grid, b, blk, px[field], py[field])
    truth = b.truth[parcel]
    for c, name in enumerate(CROP_CLASSES):
        of = truth == c
        draft.lc1[sel[of]] = _pick_codes(rng, CLASS_LC1[name], int(of.sum()))
    draft.lu1[sel] = "U111"
    ring = _rings(grid, _single_parcels(b, parcel))
    xs, ys = ring[:, :4, 0], ring[:, :4, 1]
    draft.area[sel] = np.round(0.5 * np.abs(
        (xs * np.roll(ys, -1, axis=1) - np.roll(xs, -1, axis=1) * ys).sum(axis=1)) / 1e4, 1)
    _road_side(rng, grid, b, blk, parcel, sel, draft, in_field_share)


def _single_parcels(b: _Batch, parcel: np.ndarray) -> _Batch:
    """Return a batch of one block per given parcel (to rebuild those parcels' rings)."""
    block = np.repeat(np.arange(b.row.size), b.strips)[parcel]
    return _Batch(b.row[block], b.col[block], b.kind[block], np.ones(parcel.size, "int64"),
                  np.arange(parcel.size), b.along_x[block], b.lo_b[parcel], b.lo_t[parcel],
                  b.hi_b[parcel], b.hi_t[parcel], b.truth[parcel])


def _road_side(rng: np.random.Generator, grid: _Grid, b: _Batch, blk: np.ndarray,
               parcel: np.ndarray, sel: np.ndarray, draft: _PointsDraft,
               in_field_share: float) -> None:
    """Move field points to the nearest road-facing side of their parcel (1 m in to 3 m out)."""
    px, py = draft.th[sel, 0], draft.th[sel, 1]
    x0, x1, y0, y1 = grid.block_box(b.row[blk], b.col[blk])
    ax = b.along_x[blk]
    k = parcel - b.first[blk]
    is_first, is_last = k == 0, k == b.strips[blk] - 1
    inf = np.full(sel.size, np.inf)
    # distances to the four block sides, kept only where that side of the parcel faces a road
    d = np.stack([
        np.where(~ax | is_first, px - x0, inf), np.where(~ax | is_last, x1 - px, inf),
        np.where(ax | is_first, py - y0, inf), np.where(ax | is_last, y1 - py, inf)])
    side = np.argmin(d, axis=0)
    edge = np.choose(side, [x0, x1, y0, y1])
    sign = np.where(side % 2 == 0, -1.0, 1.0)
    value = edge + sign * rng.uniform(-1.0, 3.0, sel.size)
    move = rng.random(sel.size) >= in_field_share
    axis = side // 2
    draft.gps[sel[move & (axis == 0)], 0] = value[move & (axis == 0)]
    draft.gps[sel[move & (axis == 1)], 1] = value[move & (axis == 1)]


def _pick_codes(rng: np.random.Generator, table: dict[str, float], size: int) -> np.ndarray:
    keys = np.asarray(list(table), dtype=object)
    p = np.array(list(table.values()), float)
    return keys[rng.choice(len(keys), size=size, p=p / p.sum())]


def _grid(rng: np.random.Generator, n_parcels: int, origin: tuple[float, float],
          non_farm_share: float) -> _Grid:
    n_blocks = int(np.ceil(n_parcels / (3.5 * (1 - non_farm_share)) * 1.05)) + 4
    side = int(np.ceil(np.sqrt(n_blocks)))
    col_edges = origin[0] + np.concatenate([[0.0], np.cumsum(rng.uniform(220, 420, side))])
    row_edges = origin[1] + np.concatenate([[0.0], np.cumsum(rng.uniform(180, 380, side))])
    return _Grid(col_edges, row_edges, rng.uniform(2.0, 4.5, side + 1),
                 rng.uniform(2.0, 4.5, side + 1), side)


def _tile_order(side: int) -> np.ndarray:
    """Tiles (tx, ty) in Hilbert-curve order, (n_tiles, 2)."""
    n_tiles = -(-side // TILE_BLOCKS)
    ty, tx = np.divmod(np.arange(n_tiles * n_tiles), n_tiles)
    order = int(np.ceil(np.log2(max(n_tiles, 2))))
    return np.column_stack([tx, ty])[np.argsort(hilbert_index(tx, ty, order))]


def write_eu_farmland(  # noqa: PLR0913
    path: str | Path,
    n_parcels: int,
    n_points: int,
    seed: int = 0,
    error_rate: float = 0.15,
    origin: tuple[float, float] = (3_400_000.0, 2_300_000.0),
    crs: str = "EPSG:3035",
    non_farm_share: float = 0.3,
    gps_noise_m: float = 3.0,
    in_field_share: float = 0.2,
) -> EuFarmland:
    """Write ``n_parcels`` parcels as GeoParquet 1.1 and generate ``n_points`` LUCAS points.

    Args:
        path: output GeoParquet (one row group per ``TILES_PER_GROUP`` tiles, Hilbert order).
        n_parcels: parcels of the map (e.g. 50,000,000).
        n_points: LUCAS points (e.g. 337,000: the 2018 survey) over the block grid.
        seed: random seed (same seed and sizes, same files).
        error_rate: share of parcels the map labels with a confusable class.
        origin: lower-left corner, metres in ``crs`` (default: LAEA Europe, western France).
        crs: projected CRS of the map.
        non_farm_share: share of blocks that are not farmland.
        gps_noise_m: GPS error per axis (metres, standard deviation).
        in_field_share: field points observed at the point instead of from the road.

    Returns:
        The map path, the points table (LUCAS 2018 schema) and counts.

    """
    if n_parcels < 1 or n_points < 1:
        raise ValueError(f"n_parcels and n_points must be >= 1, got {n_parcels}, {n_points}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    grid = _grid(rng, n_parcels, origin, non_farm_share)
    tiles = _tile_order(grid.side)
    extent = (float(grid.col_edges[0]), float(grid.row_edges[0]), float(grid.col_edges[-1]),
              float(grid.row_edges[-1]))
    draft = _points_draft(rng, grid, extent, n_points, tiles)
    writer = None
    written = groups = 0
    try:
        for k, start in enumerate(range(0, len(tiles), TILES_PER_GROUP)):
            if written >= n_parcels:
                draft.batch[draft.batch == k] = -1  # beyond the map: woodland
                continue
            batch_rng = np.random.default_rng([seed, k])
            b = _batch(batch_rng, grid, tiles[start:start + TILES_PER_GROUP],
                       n_parcels - written, non_farm_share)
            ring = _rings(grid, b)
            table = _map_table(ring, perturb_classes_fast(b.truth, error_rate, batch_rng),
                               batch_rng)
            if writer is None:
                schema = table.schema.with_metadata({b"geo": _geo_metadata(crs)})
                writer = pq.ParquetWriter(  # DELTA_LENGTH: WKB decodes ~1.6 x faster than PLAIN
                    path, schema, compression="none", use_dictionary=["crop_class"],
                    column_encoding={"geometry": "DELTA_LENGTH_BYTE_ARRAY"},
                    write_statistics=["bbox.xmin", "bbox.ymin", "bbox.xmax", "bbox.ymax",
                                      "geometry"])
            writer.write_table(table.replace_schema_metadata(writer.schema.metadata),
                               row_group_size=max(table.num_rows, 1))
            written += table.num_rows
            groups += 1
            mine = np.flatnonzero(draft.batch == k)
            if mine.size:
                _observe(batch_rng, grid, b, draft, mine, in_field_share)
    finally:
        if writer is not None:
            writer.close()
    outside = draft.batch == -1
    draft.lc1[outside] = _pick_codes(rng, NON_FARM["woodland"][1], int(outside.sum()))
    draft.lu1[outside] = NON_FARM["woodland"][2]
    points = lucas_table(rng, crs, draft.th, draft.gps + rng.normal(0, gps_noise_m,
                         draft.gps.shape), draft.lc1, draft.lu1, draft.area, gps_noise_m,
                         nuts0=nuts0_of)
    return EuFarmland(path, points, written, groups, extent, crs)


def _points_draft(rng: np.random.Generator, grid: _Grid,
                  extent: tuple[float, float, float, float], n_points: int, tiles: np.ndarray
                  ) -> _PointsDraft:
    """Theoretical points on a randomly offset grid over the extent, with their batch."""
    x0, y0, x1, y1 = extent
    spacing = float(np.sqrt((x1 - x0) * (y1 - y0) / n_points)) * 0.95
    gx = np.arange(x0 + rng.uniform(0, spacing), x1, spacing)
    gy = np.arange(y0 + rng.uniform(0, spacing), y1, spacing)
    th = np.array(np.meshgrid(gx, gy)).reshape(2, -1).T
    if len(th) < n_points:  # tiny extents: top up with uniform points
        th = np.vstack([th, rng.uniform([x0, y0], [x1, y1], (n_points - len(th), 2))])
    th = th[np.sort(rng.choice(len(th), n_points, replace=False))]
    row = np.clip(np.searchsorted(grid.row_edges, th[:, 1], side="right") - 1, 0, grid.side - 1)
    col = np.clip(np.searchsorted(grid.col_edges, th[:, 0], side="right") - 1, 0, grid.side - 1)
    n_tiles = -(-grid.side // TILE_BLOCKS)
    rank = np.empty(n_tiles * n_tiles, dtype="int64")
    rank[tiles[:, 1] * n_tiles + tiles[:, 0]] = np.arange(len(tiles))
    tile = (row // TILE_BLOCKS) * n_tiles + col // TILE_BLOCKS
    return _PointsDraft(th=th, gps=th.copy(), lc1=np.full(n_points, "", dtype=object),
                        lu1=np.full(n_points, "", dtype=object), area=np.full(n_points, 8.0),
                        batch=rank[tile] // TILES_PER_GROUP)
