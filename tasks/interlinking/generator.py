"""Generate two realistic geometry sets with skewed sizes and densities and known relations.

Parcels (the source set) tessellate a region (UTM 33N metres by default): a lattice of cells
whose column widths and row heights are log-normal and shrink towards a dense centre (about 3x
more parcels per km² there than at the edges), with every lattice vertex jittered, so cells are
irregular quadrilaterals sharing their edges exactly. Each lattice row is cut into runs of 1-8
cells (geometric lengths); a run is one parcel, so parcel areas spread over two orders of
magnitude and neighbours touch along shared edges.

Field instances (the target set) are derived from parcels, the way a crop map's instances relate
to the declared parcels, each with an intended relation to its parcel:

* ``equal`` - the parcel itself (half of them with the ring reversed): equals;
* ``shrunk`` - the parcel buffered inwards: within (and covered by) the parcel;
* ``shifted`` - the parcel moved by 10-40 % of its smaller MBR side: overlaps it (and often
  its neighbours);
* ``split`` - a run of >= 2 cells cut into two runs at an interior lattice column: both within
  the parcel, touching each other;
* ``merged`` - the parcel and its right-hand neighbour as one run: contains both;
* ``ditch`` - a line along a lattice row's middle across 9-14 cells (longer than any parcel):
  crosses every parcel it meets;
* parcels left without an instance (``missing``, 5 %) and parcels absorbed by a merge.

LUCAS-like points (a third set): most lie inside a random parcel (within it), a tenth exactly on
a lattice vertex (touching every parcel that shares it). Everything is vectorised and
deterministic under ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

KINDS = ("equal", "shrunk", "shifted", "split", "merged", "missing")
KIND_SHARES = (0.30, 0.20, 0.20, 0.12, 0.13, 0.05)
INTENDED = {"equal": "equals", "shrunk": "within", "shifted": "overlaps", "split": "within",
            "merged": "contains", "ditch": "crosses"}


@dataclass
class GeneratedSets:
    """The generated sets (GeoDataFrames in ``crs``) and the lattice they came from."""

    parcels: gpd.GeoDataFrame
    fields: gpd.GeoDataFrame
    points: gpd.GeoDataFrame
    crs: str

    def write(self, folder: str | Path) -> dict[str, Path]:
        """Write ``parcels.parquet``, ``fields.parquet`` and ``points.parquet`` (GeoParquet).

        Not atomic by itself; :func:`tasks.interlinking.run.generate_stage` writes into an
        atomic folder.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name in ("parcels", "fields", "points"):
            paths[name] = folder / f"{name}.parquet"
            getattr(self, name).to_parquet(paths[name], index=False)
        return paths


def _spacings(rng: np.random.Generator, count: int, base: float) -> np.ndarray:
    position = np.linspace(-1.0, 1.0, count)
    dense_centre = 1.0 - 0.65 * np.exp(-(position**2) / (2 * 0.3**2))
    return base * dense_centre * rng.lognormal(0.0, 0.35, count)


def _runs(rng: np.random.Generator, rows: int, cols: int) -> tuple[np.ndarray, ...]:
    """Cut every lattice row into runs of 1-8 cells: (row, first column, length) per run."""
    lengths = np.minimum(rng.geometric(0.45, size=rows * cols), 8)
    run_row, run_col, run_len = [], [], []
    # one vectorised pass per row would need ragged cumsums; rows are few (sqrt(n)), cells many
    for row in range(rows):
        ends = np.cumsum(lengths[row * cols:(row + 1) * cols])
        ends = ends[ends < cols]
        starts = np.r_[0, ends]
        stops = np.r_[ends, cols]
        run_row.append(np.full(starts.size, row))
        run_col.append(starts)
        run_len.append(stops - starts)
    return np.concatenate(run_row), np.concatenate(run_col), np.concatenate(run_len)


def _run_polygons(
    vx: np.ndarray, vy: np.ndarray, row: np.ndarray, col: np.ndarray, length: np.ndarray
) -> np.ndarray:
    """Polygons of runs of cells: top edge left to right, bottom edge back, closed."""
    ncols = vx.shape[1]
    per = 2 * (length + 1) + 1
    ring = np.repeat(np.arange(row.size), per)
    k = np.arange(ring.size) - np.repeat(np.cumsum(per) - per, per)
    n_top = (length + 1)[ring]
    top = k < n_top
    closing = k == per[ring] - 1
    column = np.where(top, col[ring] + k, col[ring] + length[ring] - (k - n_top))
    column = np.where(closing, col[ring], column)
    lattice_row = np.where(top | closing, row[ring], row[ring] + 1)
    flat = lattice_row * ncols + column
    coords = np.column_stack([vx.ravel()[flat], vy.ravel()[flat]])
    return shapely.polygons(shapely.linearrings(coords, indices=ring))


@dataclass(frozen=True)
class _Lattice:
    """The jittered lattice (vertex coordinates ``vx``/``vy``, (rows+1, cols+1)) and its runs."""

    xs: np.ndarray
    widths: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    rows: int
    cols: int
    run_row: np.ndarray
    run_col: np.ndarray
    run_len: np.ndarray
    parcels: np.ndarray  # run polygons


def _lattice(rng: np.random.Generator, n_parcels: int, origin: tuple[float, float],
             cell_m: float) -> _Lattice:
    """Draw the lattice (skewed spacings, jittered vertices) and cut its rows into parcels."""
    mean_run = 2.2  # mean of min(geometric(0.45), 8), cut at row ends
    side = max(int(np.sqrt(n_parcels * mean_run)), 3)
    rows, cols = side, side
    widths = _spacings(rng, cols, cell_m)
    heights = _spacings(rng, rows, cell_m)
    xs = origin[0] + np.r_[0.0, np.cumsum(widths)]
    ys = origin[1] + np.r_[0.0, np.cumsum(heights)]
    vx, vy = np.meshgrid(xs, ys)
    local_w = np.minimum(np.r_[widths[0], widths], np.r_[widths, widths[-1]])
    local_h = np.minimum(np.r_[heights[0], heights], np.r_[heights, heights[-1]])
    vx = vx + rng.uniform(-0.15, 0.15, vx.shape) * local_w[None, :]
    vy = vy + rng.uniform(-0.15, 0.15, vy.shape) * local_h[:, None]
    run_row, run_col, run_len = _runs(rng, rows, cols)
    parcels_geom = _run_polygons(vx, vy, run_row, run_col, run_len)
    return _Lattice(xs, widths, vx, vy, rows, cols, run_row, run_col, run_len, parcels_geom)


def _field_kinds(rng: np.random.Generator, lattice: _Lattice) -> np.ndarray:
    """Kind of field instance per parcel (``absorbed``: merged into its left neighbour)."""
    n = lattice.parcels.size
    run_row = lattice.run_row
    kind = rng.choice(len(KINDS), size=n, p=KIND_SHARES)
    kind_name = np.asarray(KINDS)[kind]
    # merges need a right-hand neighbour in the same row that is not merged itself
    right_exists = np.r_[run_row[1:] == run_row[:-1], False]
    merged = (kind_name == "merged") & right_exists
    merged &= ~np.r_[False, merged[:-1]]  # no chains: a merged parcel's neighbour is absorbed
    absorbed = np.r_[False, merged[:-1]]
    kind_name = np.where((kind_name == "merged") & ~merged, "equal", kind_name)
    kind_name = np.where(absorbed, "absorbed", kind_name)
    return np.where((kind_name == "split") & (lattice.run_len < 2), "equal", kind_name)


def _piece(rows_: np.ndarray, geoms: np.ndarray, name: str,
           second: np.ndarray | None = None) -> pd.DataFrame:
    return pd.DataFrame({
        "kind": name, "parcel_row": rows_.astype(np.int64),
        "parcel_row_2": (second if second is not None else np.full(rows_.size, -1)
                         ).astype(np.int64),
        "intended": INTENDED[name], "geometry": geoms,
    })


def _derived_fields(rng: np.random.Generator, lattice: _Lattice,
                    kind_name: np.ndarray) -> list[pd.DataFrame]:
    """Equal, shrunk, shifted, split and merged field instances of the parcels."""
    parcels_geom, vx, vy = lattice.parcels, lattice.vx, lattice.vy
    run_row, run_col, run_len = lattice.run_row, lattice.run_col, lattice.run_len
    pieces: list[pd.DataFrame] = []
    equal = np.flatnonzero(kind_name == "equal")
    equal_geoms = parcels_geom[equal].copy()
    flip = rng.random(equal.size) < 0.5
    equal_geoms[flip] = shapely.reverse(equal_geoms[flip])
    pieces.append(_piece(equal, equal_geoms, "equal"))

    shrunk = np.flatnonzero(kind_name == "shrunk")
    shrunk_box = shapely.bounds(parcels_geom[shrunk])
    shrunk_side = np.minimum(shrunk_box[:, 2] - shrunk_box[:, 0],
                             shrunk_box[:, 3] - shrunk_box[:, 1])
    inset = 0.1 * shrunk_side * rng.uniform(0.2, 1.0, shrunk.size)  # never empties a parcel
    pieces.append(
        _piece(shrunk, shapely.buffer(parcels_geom[shrunk], -inset, join_style="mitre"), "shrunk")
    )

    shifted = np.flatnonzero(kind_name == "shifted")
    box = shapely.bounds(parcels_geom[shifted])
    size = np.minimum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])[:, None]
    offset = rng.uniform(0.1, 0.4, (shifted.size, 2)) * size * rng.choice([-1, 1],
                                                                          (shifted.size, 2))
    moved = shapely.transform(
        parcels_geom[shifted],
        lambda xy: xy + np.repeat(offset, shapely.get_num_coordinates(parcels_geom[shifted]),
                                  axis=0),
    )
    pieces.append(_piece(shifted, moved, "shifted"))

    split = np.flatnonzero(kind_name == "split")
    cut = 1 + np.floor(rng.random(split.size) * (run_len[split] - 1)).astype(np.int64)
    left = _run_polygons(vx, vy, run_row[split], run_col[split], cut)
    right = _run_polygons(vx, vy, run_row[split], run_col[split] + cut, run_len[split] - cut)
    pieces.append(_piece(np.r_[split, split], np.r_[left, right], "split"))

    merge = np.flatnonzero(kind_name == "merged")
    pieces.append(_piece(merge, _run_polygons(vx, vy, run_row[merge], run_col[merge],
                                              run_len[merge] + run_len[merge + 1]), "merged",
                         second=merge + 1))
    return pieces


def _ditches(rng: np.random.Generator, lattice: _Lattice) -> pd.DataFrame:
    """Lines along lattice rows' middles, longer than any parcel: they cross what they meet."""
    rows, cols, vy = lattice.rows, lattice.cols, lattice.vy
    xs, widths = lattice.xs, lattice.widths
    n_ditches = max(lattice.parcels.size // 100, 1)
    ditch_row = rng.integers(0, rows, n_ditches)
    ditch_cells = rng.integers(9, 15, n_ditches)  # longer than any parcel run: always crosses
    ditch_start = rng.integers(0, max(cols - 14, 1), n_ditches)
    ditch_end = np.minimum(ditch_start + ditch_cells, cols)
    mid_y0 = (vy[ditch_row, ditch_start] + vy[ditch_row + 1, ditch_start]) / 2
    mid_y1 = (vy[ditch_row, ditch_end] + vy[ditch_row + 1, ditch_end]) / 2
    line_coords = np.stack([
        np.column_stack([xs[ditch_start] + 0.3 * widths[ditch_start], mid_y0]),
        np.column_stack([xs[ditch_end] - 0.3 * widths[ditch_end - 1], mid_y1]),
    ], axis=1)
    return _piece(np.full(n_ditches, -1), shapely.linestrings(line_coords), "ditch")


def _points(rng: np.random.Generator, lattice: _Lattice, n_points: int,
            crs: str) -> gpd.GeoDataFrame:
    """LUCAS-like points: inside a random parcel, or (a tenth) on a lattice vertex."""
    vx, vy, run_len = lattice.vx, lattice.vy, lattice.run_len
    on_vertex = rng.random(n_points) < 0.1
    host = rng.integers(0, lattice.parcels.size, n_points)
    cell_offset = np.floor(rng.random(n_points) * run_len[host]).astype(np.int64)
    r, c = lattice.run_row[host], lattice.run_col[host] + cell_offset
    u, v = rng.uniform(0.15, 0.85, n_points), rng.uniform(0.15, 0.85, n_points)

    def bilinear(grid: np.ndarray) -> np.ndarray:
        return ((1 - u) * (1 - v) * grid[r, c] + u * (1 - v) * grid[r, c + 1]
                + (1 - u) * v * grid[r + 1, c] + u * v * grid[r + 1, c + 1])

    px = np.where(on_vertex, vx[r, c], bilinear(vx))
    py = np.where(on_vertex, vy[r, c], bilinear(vy))
    return gpd.GeoDataFrame(
        {"point_id": np.arange(n_points, dtype=np.int64),
         "kind": np.where(on_vertex, "on_vertex", "inside"),
         "parcel_row": np.where(on_vertex, -1, host).astype(np.int64)},
        geometry=shapely.points(px, py), crs=crs,
    )


def generate_sets(
    n_parcels: int,
    seed: int = 0,
    n_points: int | None = None,
    origin: tuple[float, float] = (500_000.0, 5_250_000.0),
    crs: str = "EPSG:32633",
    cell_m: float = 90.0,
) -> GeneratedSets:
    """Generate parcels, field instances derived from them and LUCAS-like points.

    Args:
        n_parcels: about how many parcels (the source set); field instances come out at about
            the same count.
        seed: everything is deterministic under it.
        n_points: points to generate (default ``n_parcels // 10``).
        origin: lower-left corner of the region in ``crs`` units.
        crs: CRS of the coordinates (metres).
        cell_m: mean lattice cell edge in metres before the density skew.

    Returns:
        The three sets; ``fields`` carries ``kind``, ``parcel_row`` (and ``parcel_row_2`` for
        merges) and ``intended`` (the relation field -> parcel(s) it was built to have, written
        as parcel ``intended`` field, e.g. a merged field ``contains`` its parcels); ``points``
        carries ``kind`` and ``parcel_row``.

    """
    if n_parcels < 4:
        raise ValueError(f"n_parcels must be >= 4, got {n_parcels}")
    rng = np.random.default_rng(seed)
    lattice = _lattice(rng, n_parcels, origin, cell_m)
    n = lattice.parcels.size
    parcels = gpd.GeoDataFrame(
        {"parcel_id": np.arange(n, dtype=np.int64), "cells": lattice.run_len.astype(np.int16)},
        geometry=lattice.parcels, crs=crs,
    )
    kind_name = _field_kinds(rng, lattice)
    pieces = _derived_fields(rng, lattice, kind_name)
    pieces.append(_ditches(rng, lattice))
    fields_frame = pd.concat(pieces, ignore_index=True)
    fields = gpd.GeoDataFrame(fields_frame, geometry="geometry", crs=crs)
    fields.insert(0, "field_id", np.arange(len(fields), dtype=np.int64))

    n_points = n_parcels // 10 if n_points is None else n_points
    points = _points(rng, lattice, n_points, crs)
    return GeneratedSets(parcels, fields, points, crs)
