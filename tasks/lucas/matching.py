"""Which map classes lie near each survey point: the spatial core of the LUCAS evaluation.

For points (x, y in the map's projected CRS, metres) it returns, per point and crop class, whether
an instance of that class lies within the radius (distance point-to-polygon <= r, 0 inside), and
the class and distance of the nearest instance (for nearest-instance matching).

Vector maps: candidates are found from the instances' bounding boxes only (a KD-tree over the
box centres of all but the largest 1 % of instances, queried with a Chebyshev radius of
search distance + largest half-extent, then an exact box test; the largest instances are always
candidates). Only candidate geometries are decoded and put in a shapely STRtree, which answers
``dwithin`` and ``query_nearest`` exactly. A point whose nearest instance is beyond the search
distance is searched again with a four times larger distance, up to ``nearest_max_distance_m``.
The result equals an all-pairs computation (tested against one).

Raster maps: each pixel is a square instance footprint; the pixels within the search distance of a
point are read in one window and their exact square-to-point distances used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import shapely
from scipy.spatial import cKDTree

from tasks.food_security.schema import CROP_CLASSES
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


def candidate_instances(
    bbox: np.ndarray, x: np.ndarray, y: np.ndarray, distance: float
) -> np.ndarray:
    """Return the instances whose bounding box lies within ``distance`` (per axis) of a point.

    A superset of the instances whose geometry lies within ``distance`` of any point.

    Args:
        bbox: float (n, 4) xmin, ymin, xmax, ymax of the instances.
        x: point x coordinates, same CRS.
        y: point y coordinates.
        distance: search distance, CRS units (metres).

    """
    if len(x) == 0 or len(bbox) == 0:
        return np.zeros(0, "int64")
    half = np.maximum(bbox[:, 2] - bbox[:, 0], bbox[:, 3] - bbox[:, 1]) / 2.0
    cut = float(np.quantile(half, 0.99))
    small = np.flatnonzero(half <= cut)
    large = np.flatnonzero(half > cut)
    cx = (bbox[small, 0] + bbox[small, 2]) / 2.0
    cy = (bbox[small, 1] + bbox[small, 3]) / 2.0
    tree = cKDTree(np.column_stack([cx, cy]), balanced_tree=False, compact_nodes=False)
    hits = tree.query_ball_point(np.column_stack([x, y]), distance + cut, p=np.inf, workers=-1)
    lengths = np.fromiter((len(h) for h in hits), "int64", len(hits))
    flat = np.fromiter((i for h in hits for i in h), "int64", int(lengths.sum()))
    owner = np.repeat(np.arange(len(x)), lengths)
    cand = small[flat]
    b = bbox[cand]
    keep = (
        (b[:, 0] - distance <= x[owner]) & (x[owner] <= b[:, 2] + distance)
        & (b[:, 1] - distance <= y[owner]) & (y[owner] <= b[:, 3] + distance)
    )
    return np.union1d(np.unique(cand[keep]), large)


def vector_neighbourhood(
    crop_map: VectorCropMap, x: np.ndarray, y: np.ndarray, radius_m: float,
    nearest_max_distance_m: float,
) -> Neighbourhood:
    """Classes within ``radius_m`` and the nearest instance of each point, vector map.

    Args:
        crop_map: instances in a projected CRS (metres).
        x: point x coordinates in the map's CRS.
        y: point y coordinates in the map's CRS.
        radius_m: radius of the same-label rule.
        nearest_max_distance_m: farthest distance searched for the nearest instance.

    """
    n = len(x)
    out = _empty(n)
    if n == 0:
        return out
    search = min(max(4.0 * radius_m, 40.0), nearest_max_distance_m)
    search = max(search, radius_m)
    remaining = np.arange(n)
    first = True
    while remaining.size:
        cand = candidate_instances(crop_map.bbox, x[remaining], y[remaining], search)
        points = shapely.points(x[remaining], y[remaining])
        if cand.size:
            tree = shapely.STRtree(crop_map.geometries(cand))
            if first:
                p_idx, g_idx = tree.query(points, predicate="dwithin", distance=radius_m)
                rows = remaining[p_idx]
                out.within[rows, crop_map.class_index[cand[g_idx]]] = True
                np.add.at(out.n_within, rows, 1)
            (p_idx, g_idx), dist = tree.query_nearest(
                points, max_distance=search, return_distance=True, all_matches=True
            )
            # deterministic tie-break: smallest distance, then smallest instance index.
            inst = cand[g_idx]
            order = np.lexsort((inst, dist, p_idx))
            p_sorted = p_idx[order]
            firsts = order[np.r_[True, p_sorted[1:] != p_sorted[:-1]]] if order.size else order
            rows = remaining[p_idx[firsts]]
            out.nearest_class[rows] = crop_map.class_index[inst[firsts]]
            out.nearest_distance_m[rows] = dist[firsts]
        first = False
        remaining = remaining[~np.isfinite(out.nearest_distance_m[remaining])]
        if search >= nearest_max_distance_m:
            break
        search = min(search * 4.0, nearest_max_distance_m)
        log.debug("%d point(s) have no instance nearby; widening the search to %.0f m",
                  remaining.size, search)
    return out


def raster_neighbourhood(
    crop_map: RasterCropMap, x: np.ndarray, y: np.ndarray, radius_m: float,
    nearest_max_distance_m: float,
) -> Neighbourhood:
    """Classes within ``radius_m`` and the nearest class pixel of each point, class raster.

    Pixels are squares; their distance to a point is the point-to-square distance (0 inside).
    Pixel values outside 0..15 or equal to nodata are "no instance".
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
    return out


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
