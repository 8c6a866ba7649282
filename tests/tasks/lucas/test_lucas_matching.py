from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.lucas.crop_map import (
    instances_from_geodataframe,
    polygonise_class_raster,
    read_class_raster,
    read_instances,
)
from tasks.lucas.generator import FarmlandLayout, map_instances, write_class_raster
from tasks.lucas.matching import (
    all_pairs_neighbourhood,
    raster_neighbourhood,
    vector_neighbourhood,
)


def _probe_points(layout: FarmlandLayout, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points near parcel edges (roads) plus some far from any parcel."""
    rng = np.random.default_rng(seed)
    rect = layout.parcel_rect[rng.integers(0, len(layout), n)]
    x = np.where(rng.random(n) < 0.5, rect[:, 0], rect[:, 2]) + rng.normal(0, 6, n)
    y = rng.uniform(rect[:, 1], rect[:, 3])
    x0, y0, x1, y1 = layout.bounds
    x[:5] = x1 + np.array([50, 300, 900, 2500, 20])  # beyond the map: nearest far away
    y[:5] = (y0 + y1) / 2
    return x, y


def test_indexed_search_equals_all_pairs(lucas_dir: Path, layout: FarmlandLayout) -> None:
    crop_map = read_instances(lucas_dir / "truth.parquet")
    # bbox covering column: the geometries stay in the file, read per row group when needed
    assert crop_map.wkb is None and crop_map.geoms is None
    assert crop_map.parquet_path == str(lucas_dir / "truth.parquet")
    x, y = _probe_points(layout, 150, seed=3)
    fast = vector_neighbourhood(crop_map, x, y, 10.0, 1000.0)
    slow = all_pairs_neighbourhood(crop_map.all_geometries(), crop_map.class_index, x, y, 10.0)
    np.testing.assert_array_equal(fast.within, slow.within)
    np.testing.assert_array_equal(fast.n_within, slow.n_within)
    near = slow.nearest_distance_m <= 1000.0
    np.testing.assert_allclose(fast.nearest_distance_m[near], slow.nearest_distance_m[near])
    np.testing.assert_array_equal(fast.nearest_class[near], slow.nearest_class[near])
    # beyond nearest_max_distance_m: no instance
    assert (fast.nearest_class[~near] == -1).all()
    assert np.isinf(fast.nearest_distance_m[~near]).all()
    assert (~near).sum() == 1  # the point 2.5 km east


def test_radius_is_respected_exactly() -> None:
    import geopandas as gpd
    import shapely

    frame = gpd.GeoDataFrame(
        {"crop_class": ["maize", "soy"]},
        geometry=[shapely.box(0, 0, 100, 100), shapely.box(110, 0, 200, 100)], crs="EPSG:32633",
    )
    crop_map = instances_from_geodataframe(frame)
    x = np.array([104.0, 109.9, 100.0 + 10.0, 150.0])
    y = np.array([50.0, 50.0, 50.0, 50.0])
    hood = vector_neighbourhood(crop_map, x, y, 10.0, 1000.0)
    maize, soy = 1, 11
    assert hood.within[:, maize].tolist() == [True, True, True, False]
    assert hood.within[:, soy].tolist() == [True, True, True, True]
    assert hood.nearest_class.tolist() == [maize, soy, soy, soy]
    assert hood.nearest_distance_m.tolist() == pytest.approx([4.0, 0.1, 0.0, 0.0])


def test_raster_sampling_equals_polygonised_raster(tmp_path: Path, layout: FarmlandLayout) -> None:
    path = write_class_raster(layout, tmp_path / "map.tif", pixel_m=10.0)
    raster = read_class_raster(path)
    polygons = instances_from_geodataframe(polygonise_class_raster(path))
    x, y = _probe_points(layout, 80, seed=4)
    x, y = x[5:], y[5:]
    from_raster = raster_neighbourhood(raster, x, y, 10.0, 1000.0)
    from_polygons = vector_neighbourhood(polygons, x, y, 10.0, 1000.0)
    np.testing.assert_array_equal(from_raster.within, from_polygons.within)
    np.testing.assert_allclose(from_raster.nearest_distance_m, from_polygons.nearest_distance_m,
                               atol=1e-6)
    # the raster's classes come from the same parcels
    truth = instances_from_geodataframe(map_instances(layout))
    reference = vector_neighbourhood(truth, x, y, 10.0, 1e3)
    assert from_raster.within.sum() > 0.8 * reference.within.sum()


def test_class_codes_survive_many_row_groups(tmp_path: Path, layout: FarmlandLayout) -> None:
    frame = map_instances(layout)
    frame["crop_class"] = frame["crop_class"].astype(str)
    frame.to_parquet(tmp_path / "m.parquet", row_group_size=97, write_covering_bbox=True)
    crop_map = read_instances(tmp_path / "m.parquet")
    np.testing.assert_array_equal(crop_map.class_index, layout.parcel_class)
    np.testing.assert_allclose(crop_map.boxes(), layout.parcel_rect)
    frame.to_parquet(tmp_path / "plain.parquet")  # no bbox covering: bounds from geometries
    plain = read_instances(tmp_path / "plain.parquet")
    assert plain.wkb is None
    np.testing.assert_allclose(plain.bbox, layout.parcel_rect)
