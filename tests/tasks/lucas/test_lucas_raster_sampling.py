"""The block-grouped raster sampling equals the one-read-per-point reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pyproj import Transformer

from tasks.lucas import matching
from tasks.lucas.crop_map import RasterCropMap, read_class_raster
from tasks.lucas.matching import (
    Neighbourhood,
    raster_neighbourhood,
    raster_neighbourhood_per_point,
)
from tasks.lucas.points import read_lucas_points

DATA = Path(__file__).resolve().parents[2] / "data" / "lucas"


def _write_raster(
    path: Path, data: np.ndarray, transform: object, nodata: float | None,
    crs: str = "EPSG:32633", tiled: bool = True,
) -> RasterCropMap:
    import rasterio

    profile = {"driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1,
               "dtype": data.dtype.name, "crs": crs, "transform": transform, "nodata": nodata}
    if tiled:
        profile.update(tiled=True, blockxsize=16, blockysize=16, compress="deflate")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return read_class_raster(path)


def _field_classes(height: int, width: int, seed: int, dtype: str = "uint8") -> np.ndarray:
    """Rectangular fields of random classes, nodata roads, a nodata hole, invalid values."""
    rng = np.random.default_rng(seed)
    fields = rng.integers(0, 16, size=(height // 7 + 1, width // 9 + 1))
    data = np.repeat(np.repeat(fields, 7, axis=0), 9, axis=1)[:height, :width].astype(dtype)
    data[::7, :] = 255 if dtype == "uint8" else -9
    data[:, ::9] = 255 if dtype == "uint8" else -9
    data[20:45, 30:70] = 255 if dtype == "uint8" else -9  # a hole larger than the first search
    data[5, 5] = 40  # not a class: "no instance"
    return data


def _probe(crop_map: RasterCropMap, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random points plus points on pixel edges/corners, in the hole, at and beyond the edges."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = crop_map.bounds
    t = crop_map.transform
    x = rng.uniform(x0 - 60, x1 + 60, n)
    y = rng.uniform(y0 - 60, y1 + 60, n)
    cols = rng.integers(0, crop_map.width, 40)
    rows = rng.integers(0, crop_map.height, 40)
    edge_x = t.c + cols * t.a  # exactly on pixel edges and corners (class boundaries)
    edge_y = t.f + rows * t.e
    mid_x, mid_y = (x0 + x1) / 2, (y0 + y1) / 2
    hole_x = t.c + 50 * t.a  # inside the nodata hole: nothing within the first search distance
    hole_y = t.f + 32 * t.e
    fixed_x = [x0, x1, x0, x1, x0 - 0.01, x1 + 15.0, mid_x, x1 + 3000.0, hole_x, x0 + 1e-9]
    fixed_y = [y0, y1, y1, y0, mid_y, mid_y, y0 - 9.99, mid_y, hole_y, y1 - 1e-9]
    return (np.concatenate([x, edge_x, edge_x, fixed_x]),
            np.concatenate([y, edge_y, rng.uniform(y0, y1, 40), fixed_y]))


def _assert_same(a: Neighbourhood, b: Neighbourhood) -> None:
    np.testing.assert_array_equal(a.within, b.within)
    np.testing.assert_array_equal(a.n_within, b.n_within)
    np.testing.assert_array_equal(a.nearest_class, b.nearest_class)
    np.testing.assert_array_equal(a.nearest_distance_m, b.nearest_distance_m)


@pytest.fixture
def small_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiles of one 16 px block and tiny batches: many tiles, halos crossing tiles, batching."""
    monkeypatch.setattr(matching, "SAMPLING_TILE_PX", 16)
    monkeypatch.setattr(matching, "SAMPLING_BATCH_PIXELS", 2000)


def test_equals_per_point_reference_tiled_uint8(tmp_path: Path, small_tiles: None) -> None:
    from rasterio.transform import from_origin

    data = _field_classes(83, 101, seed=1)
    crop_map = _write_raster(tmp_path / "m.tif", data, from_origin(500_000, 5_000_830, 10, 10), 255)
    x, y = _probe(crop_map, 300, seed=2)
    for radius, nearest_max in ((10.0, 1000.0), (10.0, 35.0), (25.0, 300.0), (4.0, 4.0)):
        fast = raster_neighbourhood(crop_map, x, y, radius, nearest_max)
        slow = raster_neighbourhood_per_point(crop_map, x, y, radius, nearest_max)
        _assert_same(fast, slow)
    # the probe covers what it is meant to: no-instance points, widened searches, nothing found
    assert (fast.n_within == 0).any() and (fast.n_within > 0).any()
    wide = raster_neighbourhood(crop_map, x, y, 10.0, 1000.0)
    assert (wide.nearest_distance_m > 40.0).any() and np.isfinite(wide.nearest_distance_m).any()
    assert (wide.nearest_class == -1).sum() == 1  # the point 3 km east of the raster
    assert not wide.within[:, :].any(axis=1).all()


def test_equals_reference_strips_signed_no_nodata_rectangular_pixels(
    tmp_path: Path, small_tiles: None
) -> None:
    from affine import Affine

    data = _field_classes(61, 77, seed=3, dtype="int16")  # -9 and 40 are "no instance"
    transform = Affine(10.0, 0.0, 300_000.0, 0.0, -20.0, 4_000_000.0)
    crop_map = _write_raster(tmp_path / "s.tif", data, transform, None, tiled=False)
    assert crop_map.nodata is None
    x, y = _probe(crop_map, 250, seed=4)
    _assert_same(raster_neighbourhood(crop_map, x, y, 10.0, 500.0),
                 raster_neighbourhood_per_point(crop_map, x, y, 10.0, 500.0))


def test_default_tiles_equal_reference(tmp_path: Path) -> None:
    from rasterio.transform import from_origin

    data = _field_classes(300, 280, seed=5)
    crop_map = _write_raster(tmp_path / "d.tif", data, from_origin(0, 3000, 10, 10), 255)
    x, y = _probe(crop_map, 200, seed=6)
    _assert_same(raster_neighbourhood(crop_map, x, y, 10.0, 1000.0),
                 raster_neighbourhood_per_point(crop_map, x, y, 10.0, 1000.0))


def test_real_schema_lucas_points(tmp_path: Path) -> None:
    """The 2 real LUCAS 2018 rows (Belgium) sampled on a class raster in their UTM zone."""
    from rasterio.transform import from_origin

    points = read_lucas_points(DATA / "lucas2018_primary_BE_2points.csv")
    assert points["location_source"].tolist() == ["theoretical", "gps"]
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32631", always_xy=True)
    x, y = to_utm.transform(points.geometry.x.to_numpy(), points.geometry.y.to_numpy())
    x0, y1 = np.floor(x.min() / 10) * 10 - 500, np.ceil(y.max() / 10) * 10 + 500
    width = int((x.max() + 500 - x0) // 10) + 1
    height = int((y1 - (y.min() - 500)) // 10) + 1
    data = _field_classes(height, width, seed=7)
    crop_map = _write_raster(tmp_path / "be.tif", data, from_origin(x0, y1, 10, 10), 255,
                             crs="EPSG:32631")
    fast = raster_neighbourhood(crop_map, x, y, 10.0, 1000.0)
    _assert_same(fast, raster_neighbourhood_per_point(crop_map, x, y, 10.0, 1000.0))
    assert np.isfinite(fast.nearest_distance_m).all()


def test_no_points_and_non_finite_points(tmp_path: Path) -> None:
    from rasterio.transform import from_origin

    crop_map = _write_raster(tmp_path / "e.tif", _field_classes(32, 32, seed=8),
                             from_origin(0, 320, 10, 10), 255)
    empty = raster_neighbourhood(crop_map, np.zeros(0), np.zeros(0), 10.0, 100.0)
    assert empty.within.shape == (0, 16)
    with pytest.raises(ValueError, match="1 point\\(s\\) have non-finite coordinates"):
        raster_neighbourhood(crop_map, np.array([5.0, np.nan]), np.array([5.0, 5.0]), 10.0, 100.0)
