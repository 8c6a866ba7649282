"""Grid-index cells of CRS84 geometries (the spatial pre-filter shared with the query side)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from tasks.linked_data.namespaces import GRID_CELL_DEG, GRID_MARGIN_M

METRES_PER_DEG_LAT = 111_320.0


def grid_cells(
    geoms: np.ndarray, margin_m: float = GRID_MARGIN_M, bounds: np.ndarray | None = None
) -> tuple[np.ndarray, pa.Array]:
    """Grid-index cells of CRS84 geometries: (row index per cell, cell label ``i_j``).

    Points get the cell they lie in; other geometries every cell touched by their bounding box
    grown by ``margin_m`` metres: a point within ``margin_m`` of a geometry shares a cell with it.
    ``bounds`` (``shapely.bounds(geoms)``) may be passed when the caller has them already.
    """
    if bounds is None:
        bounds = shapely.bounds(geoms)
    is_point = shapely.get_type_id(geoms) == 0
    mid_lat = np.radians((bounds[:, 1] + bounds[:, 3]) / 2)
    dlat = np.where(is_point, 0.0, margin_m / METRES_PER_DEG_LAT)
    dlon = np.where(
        is_point, 0.0, margin_m / (METRES_PER_DEG_LAT * np.maximum(np.cos(mid_lat), 0.01))
    )
    i0 = np.floor((bounds[:, 0] - dlon) / GRID_CELL_DEG).astype(np.int64)
    i1 = np.floor((bounds[:, 2] + dlon) / GRID_CELL_DEG).astype(np.int64)
    j0 = np.floor((bounds[:, 1] - dlat) / GRID_CELL_DEG).astype(np.int64)
    j1 = np.floor((bounds[:, 3] + dlat) / GRID_CELL_DEG).astype(np.int64)
    ni, nj = i1 - i0 + 1, j1 - j0 + 1
    counts = ni * nj
    rows = np.repeat(np.arange(len(geoms)), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    k = np.arange(counts.sum()) - starts
    ci = i0[rows] + k % ni[rows]
    cj = j0[rows] + k // ni[rows]
    labels = pc.binary_join_element_wise(
        pa.array(ci).cast(pa.string()), pa.array(cj).cast(pa.string()), "_"
    )
    return rows, labels


def cell_label(lon: float, lat: float) -> str:
    """Grid cell label of one CRS84 position (as written by :func:`grid_cells`)."""
    return f"{math.floor(lon / GRID_CELL_DEG)}_{math.floor(lat / GRID_CELL_DEG)}"
