"""The LUCAS neighbourhood search against hand-worked distances on tiny maps (issue 19).

Every expected value below was worked out by hand from the geometry: point-to-rectangle and
point-to-pixel-square distances, which classes lie within the radius, ties broken as documented.
The vector search, the raster block sampling, its one-read-per-point reference and the all-pairs
reference must all give these numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pytest
import shapely

from tasks.lucas import matching
from tasks.lucas.crop_map import (
    RasterCropMap,
    instances_from_geodataframe,
    read_class_raster,
    read_instances,
)
from tasks.lucas.matching import (
    Neighbourhood,
    all_pairs_neighbourhood,
    candidate_instances,
    candidate_pairs,
    neighbourhood,
    raster_neighbourhood,
    raster_neighbourhood_per_point,
    vector_neighbourhood,
)

UTM = "EPSG:32633"
GRASS, MAIZE, LEGUMES, WHEAT, POTATO, SOY = 0, 1, 2, 4, 6, 11
pytestmark = pytest.mark.timeout(15)  # a search that never ends is a failure, not a hang


def _hood_lists(h: Neighbourhood) -> tuple[list[list[int]], list[int], list[int], list[float]]:
    within = [np.flatnonzero(row).tolist() for row in h.within]
    return (within, h.n_within.tolist(), h.nearest_class.tolist(),
            [round(float(d), 6) for d in h.nearest_distance_m])


# ----------------------------------------------------------------------------------------------
# candidate_instances / candidate_pairs: boxes within the distance per axis of a point


def _boxes() -> np.ndarray:
    """200 boxes 10 x 10 m on a 20 m grid (10 columns x 20 rows) and one 1 km box far east."""
    i = np.arange(200)
    x0 = (i % 10) * 20.0
    y0 = (i // 10) * 20.0
    small = np.column_stack([x0, y0, x0 + 10, y0 + 10])
    return np.vstack([small, [[5000.0, 0.0, 6000.0, 1000.0]]])


def test_candidates_are_the_boxes_within_the_distance_per_axis() -> None:
    bbox = _boxes()
    # point (15, 15): box 0 [0,10]^2 is 5 m away on both axes, box 1 [20,30]x[0,10] 5 m,
    # box 10 [0,10]x[20,30], box 11 [20,30]^2; at 5 m per axis exactly those four (<=: inclusive)
    got = candidate_instances(bbox, np.array([15.0]), np.array([15.0]), 5.0)
    assert got.tolist() == [0, 1, 10, 11]
    # 4.99 m: none of the small boxes (each is 5 m away on some axis)
    got = candidate_instances(bbox, np.array([15.0]), np.array([15.0]), 4.99)
    assert got.tolist() == []
    # inside box 22 ([40,50]x[40,50]) with distance 0: only that box
    got = candidate_instances(bbox, np.array([45.0]), np.array([45.0]), 0.0)
    assert got.tolist() == [22]
    # two points: the union; 25 m reaches boxes up to 25 m away on both axes
    # two points: the union; (5, 5) reaches the boxes 15 m away per axis, (195, 395) only its own
    got = candidate_instances(bbox, np.array([5.0, 195.0]), np.array([5.0, 395.0]), 15.0)
    assert got.tolist() == [0, 1, 10, 11, 199]
    # boxes 20 m off in y (box 1 also 15 m in x): a 20 m distance reaches both, 19.9 m neither
    got = candidate_instances(bbox[:2], np.array([5.0]), np.array([30.0]), 20.0)
    assert got.tolist() == [0, 1]
    got = candidate_instances(bbox[:2], np.array([5.0]), np.array([30.0]), 19.9)
    assert got.tolist() == []


def test_candidates_of_nothing_and_of_one_box() -> None:
    for bbox, x in ((np.zeros((0, 4)), np.array([1.0])), (_boxes(), np.zeros(0))):
        point, box = candidate_pairs(bbox, x, x, 10.0)
        assert (len(point), len(box), str(point.dtype), str(box.dtype)) == (0, 0, "int64", "int64")
    point, box = candidate_pairs(_boxes()[:1], np.array([5.0, 50.0]), np.array([5.0, 5.0]), 1.0)
    assert (point.tolist(), box.tolist()) == ([0], [0])
    assert candidate_instances(_boxes(), np.zeros(0), np.zeros(0), 10.0).tolist() == []
    assert candidate_instances(np.zeros((0, 4)), np.array([1.0]), np.array([1.0]), 10.0).tolist() \
        == []
    assert candidate_instances(_boxes(), np.array([1.0]), np.array([1.0]), 1.0).dtype == np.int64


def test_candidate_pairs_equal_a_brute_force_box_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """Random boxes and points over several grid cells: the pairs equal the all-pairs box test."""
    rng = np.random.default_rng(7)
    ox, oy = 500_000.0, 5_200_000.0  # UTM-sized coordinates: the grid origin is not 0
    x = ox + rng.uniform(0, 2000, 300)
    y = oy + rng.uniform(0, 900, 300)
    x[:3], y[:3] = ox + np.array([0.0, 2000.0, 1000.0]), oy + np.array([0.0, 900.0, 450.0])
    lo = np.column_stack([ox + rng.uniform(-300, 2300, 400), oy + rng.uniform(-300, 1200, 400)])
    size = rng.uniform(0, 250, (400, 2))
    bbox = np.column_stack([lo, lo + size])
    bbox[5] = np.nan  # a box without geometry never matches
    bbox[6] = [x[10] - 30.0, y[10] - 5.0, x[10] - 25.0, y[10] + 5.0]  # exactly 25 m west

    def brute(distance: float) -> set[tuple[int, int]]:
        with np.errstate(invalid="ignore"):
            inside = ((bbox[None, :, 0] - distance <= x[:, None])
                      & (x[:, None] <= bbox[None, :, 2] + distance)
                      & (bbox[None, :, 1] - distance <= y[:, None])
                      & (y[:, None] <= bbox[None, :, 3] + distance))
        return {(int(p), int(b)) for p, b in zip(*np.nonzero(inside), strict=True)}

    for distance in (0.0, 25.0, 60.0, 400.0):
        point, box = candidate_pairs(bbox, x, y, distance)
        assert point.dtype == np.int64 and box.dtype == np.int64
        pairs = list(zip(point.tolist(), box.tolist(), strict=True))
        assert len(pairs) == len(set(pairs))  # no pair twice
        assert set(pairs) == brute(distance), distance
        assert candidate_instances(bbox, x, y, distance).tolist() == sorted(
            {b for _, b in brute(distance)})
    assert (10, 6) in set(zip(*candidate_pairs(bbox, x, y, 25.0), strict=True))
    assert (10, 6) not in set(zip(*candidate_pairs(bbox, x, y, 24.99), strict=True))
    # a grid capped at very few cells (coarse cells) gives the same pairs
    monkeypatch.setattr(matching, "GRID_MAX_CELLS", 7)
    grid = matching.PointGrid.build(x, y, 25.0)
    assert grid.ncx * grid.ncy <= 7
    point, box = grid.pairs(bbox, 25.0)
    assert set(zip(point.tolist(), box.tolist(), strict=True)) == brute(25.0)
    # the four box columns given apart, as integers: the same pairs
    whole = np.floor(bbox[:400:7])
    point, box = grid.pairs(tuple(np.nan_to_num(whole[:, k]).astype("int64") for k in range(4)),
                            25.0)
    grid_again = matching.PointGrid.build(x, y, 25.0)
    p2, b2 = grid_again.pairs(np.nan_to_num(whole), 25.0)
    assert set(zip(point.tolist(), box.tolist(), strict=True)) == set(
        zip(p2.tolist(), b2.tolist(), strict=True))
    nothing = grid.pairs(np.array([[0.0, 0.0, 1.0, 1.0]]), 25.0)  # far from every point
    assert [(len(a), str(a.dtype)) for a in nothing] == [(0, "int64"), (0, "int64")]
    none = grid.pairs(np.zeros((0, 4)), 25.0)
    assert [(len(a), str(a.dtype)) for a in none] == [(0, "int64"), (0, "int64")]


def test_point_grid_cells_by_hand() -> None:
    # points spanning 1000 x 300 m, distance 20: cells of max(80, 50) = 80 m, 13 x 4 cells
    grid = matching.PointGrid.build(np.array([0.0, 1000.0, 85.0]), np.array([0.0, 300.0, 10.0]),
                                    20.0)
    assert (grid.ox, grid.oy, grid.cell, grid.ncx, grid.ncy) == (0.0, 0.0, 80.0, 13, 4)
    # keys: (0, 0) -> 0, (85, 10) -> column 1 -> 1, (1000, 300) -> row 3, column 12 -> 51
    assert grid.keys.tolist() == [0, 1, 51] and grid.order.tolist() == [0, 2, 1]
    assert grid.sat.shape == (5, 14) and int(grid.sat[-1, -1]) == 3
    assert int(grid.sat[1, 2]) == 2  # the first cell row, first two columns
    # a single point: a 1 m extent, small distance: the 50 m floor
    one = matching.PointGrid.build(np.array([5.0]), np.array([7.0]), 1.0)
    assert (one.cell, one.ncx, one.ncy) == (50.0, 1, 1)
    # the cell count cap: cells grow to sqrt(area / GRID_MAX_CELLS)
    wide = matching.PointGrid.build(np.array([0.0, 4e6]), np.array([0.0, 4e6]), 1.0)
    assert wide.ncx * wide.ncy <= matching.GRID_MAX_CELLS
    assert wide.cell >= 1000.0
    assert matching.GRID_MAX_CELLS == 16_000_000


# ----------------------------------------------------------------------------------------------
# vector maps


def _fields() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"crop_class": ["maize", "soy", "winter_wheat", "potato"]},
        geometry=[shapely.box(0, 0, 100, 100), shapely.box(110, 0, 200, 100),
                  shapely.box(400, 0, 410, 10), shapely.box(0, 150, 100, 250)],
        crs=UTM,
    )


# point -> (within classes at r = 10, n instances within, nearest class, nearest distance)
_EXPECTED = [
    ((104.0, 50.0), [MAIZE, SOY], 2, MAIZE, 4.0),  # 4 m from maize, 6 m from soy
    ((105.0, 50.0), [MAIZE, SOY], 2, MAIZE, 5.0),  # a tie: the smaller instance index (maize)
    ((300.0, 50.0), [], 0, SOY, 100.0),  # beyond the first 40 m search: widened to 160 m
    ((405.0, 5.0), [WHEAT], 1, WHEAT, 0.0),  # inside
    ((50.0, 125.0), [], 0, MAIZE, 25.0),  # 25 m from maize (index 0), 25 m from potato
    ((50.0, 109.0), [MAIZE], 1, MAIZE, 9.0),
    ((50.0, 110.0), [MAIZE], 1, MAIZE, 10.0),  # exactly the radius: within (<=)
    ((50.0, 141.0), [POTATO], 1, POTATO, 9.0),
    ((105.0, 110.0), [], 0, MAIZE, float(np.hypot(5, 10))),  # corners 11.18 m: tie, maize
    ((3000.0, 50.0), [], 0, -1, float("inf")),  # nothing within 1000 m
    ((1000.0, 5.0), [], 0, WHEAT, 590.0),  # found at the third search level (640 m)
]


def _xy() -> tuple[np.ndarray, np.ndarray]:
    return (np.array([p[0][0] for p in _EXPECTED]), np.array([p[0][1] for p in _EXPECTED]))


@pytest.mark.parametrize("backing", ["memory", "chunks_of_one", "row_groups"])
def test_vector_neighbourhood_by_hand(
    tmp_path: Path, backing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.lucas import crop_map as crop_map_module

    x, y = _xy()
    if backing != "row_groups":
        if backing == "chunks_of_one":
            monkeypatch.setattr(crop_map_module, "CHUNK_ROWS", 1)
        crop_map = instances_from_geodataframe(_fields())
    else:  # one instance per row group: each chunk skipped or matched on its own
        _fields().to_parquet(tmp_path / "m.parquet", row_group_size=1, write_covering_bbox=True)
        crop_map = read_instances(tmp_path / "m.parquet")
        assert crop_map.chunks() == [(0, 1), (1, 2), (2, 3), (3, 4)]
    hood = vector_neighbourhood(crop_map, x, y, 10.0, 1000.0)
    within, n_within, nearest, distance = _hood_lists(hood)
    assert within == [e[1] for e in _EXPECTED]
    assert n_within == [e[2] for e in _EXPECTED]
    assert nearest == [e[3] for e in _EXPECTED]
    assert distance == [round(e[4], 6) for e in _EXPECTED]
    assert hood.nearest_class.dtype == np.int16 and hood.n_within.dtype == np.int64
    same = neighbourhood(crop_map, x, y, 10.0, 1000.0)
    assert _hood_lists(same) == _hood_lists(hood)


@pytest.mark.parametrize("backing", ["chunks_of_one", "row_groups"])
def test_points_exactly_at_the_radius_of_each_chunk(
    tmp_path: Path, backing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Radius = nearest limit = 10 m: one search level; each point is 10 m off one field's edge."""
    from tasks.lucas import crop_map as crop_map_module

    if backing == "row_groups":
        _fields().to_parquet(tmp_path / "m.parquet", row_group_size=1, write_covering_bbox=True)
        crop_map = read_instances(tmp_path / "m.parquet")
    else:
        monkeypatch.setattr(crop_map_module, "CHUNK_ROWS", 1)
        crop_map = instances_from_geodataframe(_fields())
    x = np.array([-10.0, 50.0, 50.0, 420.0])
    y = np.array([50.0, -10.0, 260.0, 5.0])
    hood = vector_neighbourhood(crop_map, x, y, 10.0, 10.0)
    assert _hood_lists(hood) == ([[MAIZE], [MAIZE], [POTATO], [WHEAT]], [1, 1, 1, 1],
                                 [MAIZE, MAIZE, POTATO, WHEAT], [10.0] * 4)


def test_all_pairs_reference_by_hand() -> None:
    x, y = _xy()
    frame = _fields()
    crop_map = instances_from_geodataframe(frame)
    hood = all_pairs_neighbourhood(crop_map.all_geometries(), crop_map.class_index, x, y, 10.0)
    within, n_within, nearest, distance = _hood_lists(hood)
    assert within == [e[1] for e in _EXPECTED]
    assert n_within == [e[2] for e in _EXPECTED]
    # no distance limit: the point 3 km east has wheat at 2590 m
    assert nearest == [e[3] for e in _EXPECTED[:9]] + [WHEAT, WHEAT]
    assert distance[:9] == [round(e[4], 6) for e in _EXPECTED[:9]]
    assert distance[9:] == [round(float(np.hypot(2590.0, 40.0)), 6), 590.0]


def test_vector_radius_wider_than_the_nearest_limit() -> None:
    # radius 50 m but nearest only to 30 m: the rule still sees the field 45 m away
    crop_map = instances_from_geodataframe(_fields())
    hood = vector_neighbourhood(crop_map, np.array([50.0]), np.array([145.0]), 50.0, 30.0)
    assert _hood_lists(hood) == ([[MAIZE, POTATO]], [2], [POTATO], [5.0])


def test_vector_nearest_beyond_its_limit_but_within_the_radius_is_none() -> None:
    # radius 50 m, nearest limit 3 m: potato 5 m and maize 45 m count for the rule, but the
    # nearest instance lies beyond the limit, so there is none (-1, inf), as documented
    crop_map = instances_from_geodataframe(_fields())
    hood = vector_neighbourhood(crop_map, np.array([50.0]), np.array([145.0]), 50.0, 3.0)
    assert _hood_lists(hood) == ([[MAIZE, POTATO]], [2], [-1], [float("inf")])


def test_vector_nearest_limit_is_inclusive_and_widening_stops_at_it() -> None:
    crop_map = instances_from_geodataframe(_fields())
    x = np.array([300.0, 300.0, 300.0])
    y = np.array([50.0, 50.0, 50.0])
    assert _hood_lists(vector_neighbourhood(crop_map, x[:1], y[:1], 10.0, 100.0))[2:] == (
        [SOY], [100.0])
    assert _hood_lists(vector_neighbourhood(crop_map, x[:1], y[:1], 10.0, 99.0))[2:] == (
        [-1], [float("inf")])
    # small radius: the first search is 40 m (not 4 r = 8 m), then 160 m
    hood = vector_neighbourhood(crop_map, np.array([104.0, 300.0]), np.array([50.0, 50.0]), 2.0,
                                1000.0)
    assert _hood_lists(hood) == ([[], []], [0, 0], [MAIZE, SOY], [4.0, 100.0])
    empty = vector_neighbourhood(crop_map, np.zeros(0), np.zeros(0), 10.0, 100.0)
    assert empty.within.shape == (0, 16) and empty.nearest_class.shape == (0,)


def test_vector_within_counts_only_the_first_search(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG, logger="tasks.lucas.matching")
    crop_map = instances_from_geodataframe(_fields())
    # far from everything: found at the 640 m level; nothing counts as within 10 m
    hood = vector_neighbourhood(crop_map, np.array([1000.0]), np.array([5.0]), 10.0, 1000.0)
    assert _hood_lists(hood) == ([[]], [0], [WHEAT], [590.0])
    messages = [r.getMessage() for r in caplog.records]
    assert messages[:2] == [
        "1 point(s) have no instance nearby; widening the search to 160 m",
        "1 point(s) have no instance nearby; widening the search to 640 m",
    ]


# ----------------------------------------------------------------------------------------------
# raster maps: 10 m pixels, upper-left corner (OX, OY + 40); coordinates below are relative to
# (OX, OY): row 0 spans y 30..40, column 0 spans x 0..10

OX, OY = 1000.0, 5000.0

_GRID = np.array([
    [1, 1, 255, 11, 11],
    [1, 40, 255, 11, 11],
    [255, 255, 255, 255, 4],
    [6, 6, 255, 4, 4],
], dtype="uint8")

# point -> (within at r = 10, pixels within, nearest class, nearest distance)
_RASTER_EXPECTED = [
    # in the nodata pixel (0, 2): maize pixel (0, 1) and soy (0, 3) both 5 m; soy (1, 3) 7.07 m;
    # the tie goes to the first in row-major order (maize); (1, 1) holds 40: not a class
    ((25.0, 35.0), [MAIZE, SOY], 3, MAIZE, 5.0),
    # inside wheat pixel (3, 4); (3, 3) and (2, 4) are 5 m away (wheat too)
    ((45.0, 5.0), [WHEAT], 3, WHEAT, 0.0),
    # 30 m west of the raster, level with row 0
    ((-30.0, 35.0), [], 0, MAIZE, 30.0),
    # 160.08 m north: beyond the 40 m and 160 m levels, found at 640 m
    ((25.0, 200.0), [], 0, MAIZE, float(np.hypot(5.0, 160.0))),
    # beyond 1000 m: nothing
    ((25.0, 2000.0), [], 0, -1, float("inf")),
    # on the corner shared by (2, 0), (2, 1), (3, 0), (3, 1): potato pixels at distance 0
    # maize (1, 0) is exactly 10 m away (<=: within)
    ((10.0, 10.0), [MAIZE, POTATO], 3, POTATO, 0.0),
    # in (2, 2), a nodata pixel: soy (1, 3), potato (3, 1) and wheat (3, 3) all 7.07 m away;
    # the first in row-major order is soy
    ((25.0, 15.0), [WHEAT, POTATO, SOY], 3, SOY, float(np.hypot(5.0, 5.0))),
]


def _raster(path: Path, data: np.ndarray, nodata: float | None) -> RasterCropMap:
    import rasterio
    from rasterio.transform import from_origin

    profile = {"driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1,
               "dtype": data.dtype.name, "crs": UTM, "transform": from_origin(OX, OY + 40, 10, 10),
               "nodata": nodata}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return read_class_raster(path)


def _at(xs: list[float], ys: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates of points given relative to the raster's lower-left corner (OX, OY)."""
    return np.array(xs) + OX, np.array(ys) + OY


def _raster_xy() -> tuple[np.ndarray, np.ndarray]:
    return _at([p[0][0] for p in _RASTER_EXPECTED], [p[0][1] for p in _RASTER_EXPECTED])


@pytest.mark.parametrize("sampler", [raster_neighbourhood, raster_neighbourhood_per_point,
                                     neighbourhood])
def test_raster_neighbourhood_by_hand(
    tmp_path: Path, sampler: Callable[..., Neighbourhood]
) -> None:
    crop_map = _raster(tmp_path / "m.tif", _GRID, 255)
    x, y = _raster_xy()
    hood = sampler(crop_map, x, y, 10.0, 1000.0)
    within, n_within, nearest, distance = _hood_lists(hood)
    assert within == [e[1] for e in _RASTER_EXPECTED]
    assert n_within == [e[2] for e in _RASTER_EXPECTED]
    assert nearest == [e[3] for e in _RASTER_EXPECTED]
    assert distance == [round(e[4], 6) for e in _RASTER_EXPECTED]


@pytest.mark.parametrize("sampler", [raster_neighbourhood, raster_neighbourhood_per_point])
def test_raster_radius_and_limits(tmp_path: Path, sampler: Callable[..., Neighbourhood]) -> None:
    crop_map = _raster(tmp_path / "m.tif", _GRID, 255)
    run = sampler
    # radius 5: (0, 1) and (0, 3) at exactly 5 m count (<=), (1, 3) at 7.07 m does not
    hood = run(crop_map, *_at([25.0], [35.0]), 5.0, 1000.0)
    assert _hood_lists(hood) == ([[MAIZE, SOY]], [2], [MAIZE], [5.0])
    hood = run(crop_map, *_at([25.0], [35.0]), 4.99, 1000.0)
    assert _hood_lists(hood) == ([[]], [0], [MAIZE], [5.0])
    # radius 25 m over a 20 m nearest limit: within still uses the 25 m radius
    # (maize (1, 0) is 25 m away: within; potato (3, 0) 20 m)
    hood = run(crop_map, *_at([-20.0], [5.0]), 25.0, 20.0)
    assert _hood_lists(hood) == ([[MAIZE, POTATO]], [2], [POTATO], [20.0])
    # a 19 m limit: the same instances within 25 m, but no nearest instance within 19 m
    hood = run(crop_map, *_at([-20.0], [5.0]), 25.0, 19.0)
    assert _hood_lists(hood) == ([[MAIZE, POTATO]], [2], [-1], [float("inf")])
    # the 30 m point: nearest limit 30 found, 29.9 not
    hood = run(crop_map, *_at([-30.0], [35.0]), 1.0, 30.0)
    assert _hood_lists(hood) == ([[]], [0], [MAIZE], [30.0])
    hood = run(crop_map, *_at([-30.0], [35.0]), 1.0, 29.9)
    assert _hood_lists(hood) == ([[]], [0], [-1], [float("inf")])


@pytest.mark.parametrize("sampler", [raster_neighbourhood, raster_neighbourhood_per_point])
def test_raster_without_nodata_negative_and_large_values_are_no_class(
    tmp_path: Path, sampler: Callable[..., Neighbourhood]
) -> None:
    data = np.array([[-3, 16, 2, 15, 0]], dtype="int16")
    crop_map = _raster(tmp_path / "s.tif", data, None)
    assert crop_map.nodata is None
    # in pixel 0 (-3): pixel 1 (16) 5 m away is no class; legumes (2) at 15 m, other (15) at 25 m;
    # in pixel 3 (15): legumes and grassland (0, a class) 5 m away
    hood = sampler(crop_map, *_at([5.0, 35.0], [35.0, 35.0]), 10.0, 100.0)
    assert _hood_lists(hood) == ([[], [GRASS, LEGUMES, 15]], [0, 3], [LEGUMES, 15],
                                 [15.0, 0.0])
    with_nodata = _raster(tmp_path / "n.tif", data, 2)  # now the legumes pixel is nodata
    hood = sampler(with_nodata, *_at([5.0], [35.0]), 10.0, 100.0)
    assert _hood_lists(hood) == ([[]], [0], [15], [25.0])


@pytest.mark.parametrize("sampler", [raster_neighbourhood, raster_neighbourhood_per_point])
def test_raster_search_no_wider_than_the_radius(
    tmp_path: Path, sampler: Callable[..., Neighbourhood]
) -> None:
    # nearest limit = radius = 10 m: the only search level is 10 m; in the nodata pixel (2, 2)
    # soy (1, 3), potato (3, 1) and wheat (3, 3) are 7.07 m away in the rows above and below
    crop_map = _raster(tmp_path / "m.tif", _GRID, 255)
    hood = sampler(crop_map, *_at([25.0], [15.0]), 10.0, 10.0)
    assert _hood_lists(hood) == ([[WHEAT, POTATO, SOY]], [3], [SOY], [round(np.hypot(5, 5), 6)])


@pytest.mark.parametrize("sampler", [raster_neighbourhood, raster_neighbourhood_per_point])
def test_raster_rectangular_pixels(tmp_path: Path, sampler: Callable[..., Neighbourhood]) -> None:
    import rasterio
    from affine import Affine

    # pixels 10 m wide, 20 m tall; upper-left corner (OX, OY + 40)
    data = np.array([[1, 255, 11], [4, 255, 6]], dtype="uint8")
    with rasterio.open(tmp_path / "r.tif", "w", driver="GTiff", width=3, height=2, count=1,
                       dtype="uint8", crs=UTM, transform=Affine(10, 0, OX, 0, -20, OY + 40),
                       nodata=255) as dst:
        dst.write(data, 1)
    crop_map = read_class_raster(tmp_path / "r.tif")
    # in the nodata pixel (0, 1) at (15, 30): maize (0, 0) and soy (0, 2) 5 m away, wheat (1, 0)
    # and potato (1, 2) 11.18 m (5 m across, 10 m down)
    hood = sampler(crop_map, *_at([15.0, 15.0], [30.0, 5.0]), 10.0, 1000.0)
    assert _hood_lists(hood) == (
        [[MAIZE, SOY], [WHEAT, POTATO]], [2, 2], [MAIZE, WHEAT], [5.0, 5.0])


def test_raster_sampling_in_small_tiles_and_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(matching, "SAMPLING_TILE_PX", 1)
    monkeypatch.setattr(matching, "SAMPLING_BATCH_PIXELS", 1)
    crop_map = _raster(tmp_path / "m.tif", _GRID, 255)
    x, y = _raster_xy()
    hood = raster_neighbourhood(crop_map, x, y, 10.0, 1000.0)
    assert _hood_lists(hood)[2] == [e[3] for e in _RASTER_EXPECTED]
    assert _hood_lists(hood)[0] == [e[1] for e in _RASTER_EXPECTED]


def test_raster_tiles_of_16_px_equal_the_per_point_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rasterio
    from rasterio.transform import from_origin

    monkeypatch.setattr(matching, "SAMPLING_TILE_PX", 16)
    rng = np.random.default_rng(3)
    data = rng.integers(0, 20, (50, 45)).astype("uint8")  # 16..19: not a class
    data[rng.random((50, 45)) < 0.6] = 255
    with rasterio.open(tmp_path / "t.tif", "w", driver="GTiff", width=45, height=50, count=1,
                       dtype="uint8", crs=UTM, transform=from_origin(OX, OY + 500, 10, 10),
                       nodata=255, tiled=True, blockxsize=16, blockysize=16) as dst:
        dst.write(data, 1)
    crop_map = read_class_raster(tmp_path / "t.tif")
    x, y = _at(rng.uniform(-30, 480, 120).tolist(), rng.uniform(-30, 530, 120).tolist())
    fast = raster_neighbourhood(crop_map, x, y, 10.0, 300.0)
    slow = raster_neighbourhood_per_point(crop_map, x, y, 10.0, 300.0)
    assert _hood_lists(fast) == _hood_lists(slow)
    assert len({(int(a) // 16, int(b) // 16) for a, b in zip((OY + 500 - y) // 10, (x - OX) // 10,
                                                            strict=True)}) > 6  # many tiles


def test_raster_bad_points_and_no_points(tmp_path: Path) -> None:
    crop_map = _raster(tmp_path / "m.tif", _GRID, 255)
    empty = raster_neighbourhood(crop_map, np.zeros(0), np.zeros(0), 10.0, 100.0)
    assert empty.within.shape == (0, 16) and empty.n_within.shape == (0,)
    with pytest.raises(ValueError) as err:
        raster_neighbourhood(crop_map, np.array([1.0, 2.0, np.inf, 3.0]),
                             np.array([1.0, np.nan, 1.0, np.nan]), 10.0, 100.0)
    assert str(err.value) == (
        f"{crop_map.source}: 3 point(s) have non-finite coordinates (first at index 1); drop "
        "points without a location first"
    )


def test_raster_widening_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG, logger="tasks.lucas.matching")
    crop_map = _raster(tmp_path / "m.tif", _GRID, 255)
    raster_neighbourhood(crop_map, *_at([25.0, 25.0], [200.0, 35.0]), 10.0, 1000.0)
    assert [r.getMessage() for r in caplog.records] == [
        "1 point(s) have no class pixel nearby; widening the search to 160 m",
        "1 point(s) have no class pixel nearby; widening the search to 640 m",
    ]


def test_sampling_tile_shape_is_whole_blocks_of_at_least_512_px() -> None:
    shape = matching._sampling_tile_shape
    assert shape(SimpleNamespace(block_shapes=[(16, 16)], height=10_000, width=10_000)) == (512,
                                                                                           512)
    assert shape(SimpleNamespace(block_shapes=[(100, 300)], height=10_000, width=10_000)) == (
        600, 600)
    assert shape(SimpleNamespace(block_shapes=[(1, 700)], height=10_000, width=700)) == (512, 700)
    assert shape(SimpleNamespace(block_shapes=[(16, 16)], height=40, width=30)) == (40, 30)
    assert shape(SimpleNamespace(block_shapes=[(16, 16)], height=0, width=0)) == (1, 1)
    assert matching.SAMPLING_TILE_PX == 512
    assert matching.SAMPLING_BATCH_PIXELS == 4_000_000


def test_read_class_window_marks_outside_nodata_and_non_classes(tmp_path: Path) -> None:
    import rasterio

    crop_map = _raster(tmp_path / "m.tif", _GRID, 255)
    with rasterio.open(crop_map.source) as src:
        window = matching._read_class_window(src, crop_map, -1, 3, 3, 3)
        assert window.dtype == np.int16
        assert window.tolist() == [[-1, -1, -1], [11, 11, -1], [11, 11, -1]]
        window = matching._read_class_window(src, crop_map, 1, 0, 3, 2)
        assert window.tolist() == [[1, -1], [-1, -1], [6, 6]]
        assert matching._read_class_window(src, crop_map, 10, 10, 2, 2).tolist() == [[-1, -1]] * 2
        assert matching._read_class_window(src, crop_map, -5, 0, 2, 2).tolist() == [[-1, -1]] * 2


def test_chunk_near_a_point_without_a_candidate_and_a_one_instance_map(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tasks.lucas import crop_map as crop_map_module

    monkeypatch.setattr(crop_map_module, "CHUNK_ROWS", 2)  # (maize, soy), (wheat, potato)
    crop_map = instances_from_geodataframe(_fields())
    # (250, 200) lies inside the second chunk's extent but 150 m from its boxes: that chunk has
    # no candidate at the 40 m level while the first chunk has two for (105, 50)
    hood = vector_neighbourhood(crop_map, np.array([105.0, 250.0]), np.array([50.0, 200.0]),
                                10.0, 1000.0)
    assert _hood_lists(hood) == ([[MAIZE, SOY], []], [2, 0], [MAIZE, SOY],
                                 [5.0, round(float(np.hypot(50.0, 100.0)), 6)])
    one = instances_from_geodataframe(_fields().iloc[2:3])  # the wheat field alone
    hood = vector_neighbourhood(one, np.array([405.0, 420.0]), np.array([5.0, 5.0]), 10.0, 100.0)
    assert _hood_lists(hood) == ([[WHEAT], [WHEAT]], [1, 1], [WHEAT, WHEAT], [0.0, 10.0])
