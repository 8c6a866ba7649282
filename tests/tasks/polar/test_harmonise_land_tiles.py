"""tasks.polar.harmonise.land_per_tile: each tile task gets only the land polygons near it.

The land mask a tile rasterises from its subset must be the mask of all polygons (a 10,000 x
10,000 scene has thousands of land polygons; every tile converting all of them was half of
harmonise's time), and the subsets keep the input order.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine

from tasks.polar.harmonise import land_per_tile, rasterise_land

PIXEL = 40.0
TRANSFORM = Affine(PIXEL, 0.0, -1_000_000.0, 0.0, -PIXEL, 600_000.0)
HEIGHT, WIDTH, TILE = 100, 130, 32


def _tiles() -> list[tuple[int, int, int, int]]:
    return [(r0, min(HEIGHT, r0 + TILE), c0, min(WIDTH, c0 + TILE))
            for r0 in range(0, HEIGHT, TILE) for c0 in range(0, WIDTH, TILE)]


def _map_xy(row: float, col: float) -> tuple[float, float]:
    x, y = TRANSFORM @ (col, row)
    return float(x), float(y)


def _polygons(seed: int) -> list[shapely.Geometry]:
    """Blobs of 5..400 vertices anywhere on (and partly off) the grid, plus one far away."""
    rng = np.random.default_rng(seed)
    polygons = []
    for _ in range(40):
        row, col = rng.uniform(-10, HEIGHT + 10), rng.uniform(-10, WIDTH + 10)
        n = int(rng.integers(5, 400))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radius = rng.uniform(0.6, 25.0) * (1 + 0.3 * rng.standard_normal(n).clip(-2, 2))
        ring = [_map_xy(row + r * np.sin(a), col + r * np.cos(a))
                for r, a in zip(np.abs(radius) + 0.2, angles, strict=True)]
        polygons.append(shapely.make_valid(shapely.Polygon(ring)))
    polygons.append(shapely.box(*_map_xy(5000, 5000), *_map_xy(5010, 5010)))  # off the grid
    return polygons


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_tile_rasterises_the_same_land_from_its_subset(seed: int) -> None:
    polygons = _polygons(seed)
    tiles = _tiles()
    subsets = land_per_tile(polygons, TRANSFORM, tiles)
    assert len(subsets) == len(tiles)
    whole = rasterise_land(polygons, TRANSFORM, slice(0, HEIGHT), slice(0, WIDTH))
    assert 0 < whole.sum() < whole.size  # land and sea on the grid
    for (r0, r1, c0, c1), subset in zip(tiles, subsets, strict=True):
        rows, cols = slice(r0, r1), slice(c0, c1)
        expected = rasterise_land(polygons, TRANSFORM, rows, cols)
        np.testing.assert_array_equal(rasterise_land(subset, TRANSFORM, rows, cols), expected)
        np.testing.assert_array_equal(expected, whole[rows, cols])
        positions = [next(i for i, p in enumerate(polygons) if p is g) for g in subset]
        assert positions == sorted(positions)  # the input order
    assert not any(polygons[-1] in subset for subset in subsets)  # far away: in no tile
    assert sum(len(s) for s in subsets) < len(tiles) * len(polygons) / 2  # subsets are small


def test_a_small_polygon_goes_to_the_tiles_within_one_pixel_of_it() -> None:
    # pixels rows 40..41, cols 31..32: straddles the tile border at col 32 (tiles of 32)
    small = shapely.box(*_map_xy(42, 31), *_map_xy(40, 33))
    edge = shapely.box(*_map_xy(10.8, 63.2), *_map_xy(10.2, 63.9))  # 0.1 px left of col 64
    tiles = _tiles()
    subsets = land_per_tile([small, edge], TRANSFORM, tiles)
    with_small = [t for t, s in zip(tiles, subsets, strict=True) if small in s]
    assert with_small == [(32, 64, 0, 32), (32, 64, 32, 64)]
    with_edge = [t for t, s in zip(tiles, subsets, strict=True) if edge in s]
    assert with_edge == [(0, 32, 32, 64), (0, 32, 64, 96)]  # the one-pixel margin


def test_no_land_gives_empty_subsets() -> None:
    assert land_per_tile([], TRANSFORM, _tiles()) == [[] for _ in _tiles()]
