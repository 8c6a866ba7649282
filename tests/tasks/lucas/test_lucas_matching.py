from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from tasks.domain.crops import CROP_CLASSES
from tasks.lucas.crop_map import (
    instances_from_geodataframe,
    polygonise_class_raster,
    read_class_raster,
    read_instances,
)
from tasks.lucas.generator import FarmlandLayout, map_instances, write_class_raster
from tasks.lucas.matching import (
    PointGrid,
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


# ----------------------------------------------------------------------------------------------
# the grid join and the file-backed map (issue 17, EU scale)

_ORIGIN = (4_210_000.0, 3_105_000.0)  # LAEA Europe metres: float32 rounding is 0.25-0.5 m here


def _awkward_instances(seed: int) -> tuple[gpd.GeoDataFrame, np.ndarray, np.ndarray]:
    """Quadrilaterals, polygons with holes and one large polygon; points on edges, in holes,
    10 m (and 10 m +- 1 mm) outside edges, on vertices and far away."""
    frame, x, y, _ = _awkward_instances_and_kinds(seed)
    return frame, x, y


def _awkward_instances_and_kinds(seed: int) -> tuple[
    gpd.GeoDataFrame, np.ndarray, np.ndarray, np.ndarray
]:
    rng = np.random.default_rng(seed)
    ox, oy = _ORIGIN
    geoms, classes = [], []
    for i in range(60):
        x0, y0 = ox + (i % 10) * 130.0, oy + (i // 10) * 110.0
        w, h = rng.uniform(40, 110), rng.uniform(40, 95)
        quad = shapely.Polygon([(x0 + rng.uniform(0, 8), y0), (x0 + w, y0 + rng.uniform(0, 8)),
                                (x0 + w - rng.uniform(0, 8), y0 + h), (x0, y0 + h)])
        if i % 7 == 3:  # a hole in the middle
            quad = quad.difference(shapely.box(x0 + w / 3, y0 + h / 3, x0 + 2 * w / 3,
                                               y0 + 2 * h / 3))
        geoms.append(quad)
        classes.append(CROP_CLASSES[int(rng.integers(len(CROP_CLASSES)))])
    geoms.append(shapely.box(ox - 900.0, oy - 900.0, ox + 2000.0, oy - 300.0))  # a large one
    classes.append("grassland")
    frame = gpd.GeoDataFrame({"crop_class": classes}, geometry=geoms, crs="EPSG:3035")
    pts: list[tuple[float, float]] = []
    kinds: list[str] = []
    for g in geoms[:60]:
        ring = np.asarray(g.exterior.coords)
        a, b = ring[0], ring[1]
        mid = (a + b) / 2
        normal = np.array([-(b - a)[1], (b - a)[0]]) / np.hypot(*(b - a))
        if g.contains(shapely.Point(*(mid + normal))):
            normal = -normal  # outwards
        for point, kind in ((mid, "edge"), (a, "vertex"), (mid + 10.0 * normal, "10m"),
                            (mid + 10.001 * normal, "10m+"), (mid + 9.999 * normal, "10m-")):
            pts.append((float(point[0]), float(point[1])))
            kinds.append(kind)
        if len(g.interiors):
            centre = g.interiors[0].centroid
            pts.append((centre.x, centre.y))
            kinds.append("hole")
    pts += [(ox - 5000.0, oy), (ox + 1300.0, oy + 700.0)]
    kinds += ["far", "outside"]
    xy = np.asarray(pts, dtype="float64")
    return frame, xy[:, 0], xy[:, 1], np.asarray(kinds)


def _write_float32_covering(frame: gpd.GeoDataFrame, path: Path, row_group_size: int) -> None:
    """GeoParquet 1.1 with a float32 bbox covering column rounded outwards (as eu_generator)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tasks.lucas.eu_generator import _geo_metadata, _outward_float32

    b = shapely.bounds(frame.geometry.values)
    bbox = pa.StructArray.from_arrays(
        [pa.array(_outward_float32(b[:, 0], True)), pa.array(_outward_float32(b[:, 1], True)),
         pa.array(_outward_float32(b[:, 2], False)), pa.array(_outward_float32(b[:, 3], False))],
        names=["xmin", "ymin", "xmax", "ymax"])
    table = pa.table({"crop_class": frame["crop_class"].astype(str).to_numpy(),
                      "geometry": shapely.to_wkb(frame.geometry.values), "bbox": bbox})
    pq.write_table(table.replace_schema_metadata({b"geo": _geo_metadata("EPSG:3035")}), path,
                   row_group_size=row_group_size)


@pytest.mark.parametrize("backing", ["memory", "float64_row_groups", "float32_row_groups"])
def test_matcher_equals_brute_force_on_holes_edges_and_the_radius(
    tmp_path: Path, backing: str
) -> None:
    frame, x, y = _awkward_instances(seed=11)
    if backing == "memory":
        crop_map = instances_from_geodataframe(frame)
    elif backing == "float64_row_groups":
        frame.to_parquet(tmp_path / "m.parquet", row_group_size=9, write_covering_bbox=True)
        crop_map = read_instances(tmp_path / "m.parquet")
    else:
        _write_float32_covering(frame, tmp_path / "m.parquet", row_group_size=9)
        crop_map = read_instances(tmp_path / "m.parquet")
    if backing != "memory":
        assert crop_map.bbox is None and len(crop_map.chunks()) == 7
    geoms = np.asarray(frame.geometry.values, dtype=object)
    classes = np.array([CROP_CLASSES.index(c) for c in frame["crop_class"]], dtype="int16")
    for radius in (10.0, 0.5):
        fast = vector_neighbourhood(crop_map, x, y, radius, 1000.0)
        slow = all_pairs_neighbourhood(geoms, classes, x, y, radius)
        np.testing.assert_array_equal(fast.within, slow.within)
        np.testing.assert_array_equal(fast.n_within, slow.n_within)
        near = slow.nearest_distance_m <= 1000.0
        np.testing.assert_array_equal(fast.nearest_distance_m[near], slow.nearest_distance_m[near])
        np.testing.assert_array_equal(fast.nearest_class[near], slow.nearest_class[near])
        assert (fast.nearest_class[~near] == -1).all() and (~near).sum() == 1
    hood = vector_neighbourhood(crop_map, x, y, 10.0, 1000.0)
    kinds = _awkward_instances_and_kinds(seed=11)[3]
    assert (hood.nearest_distance_m[kinds == "edge"] < 1e-9).all()  # a float midpoint
    assert (hood.nearest_distance_m[kinds == "vertex"] == 0).all()
    assert (hood.n_within[kinds == "10m-"] >= 1).all()
    hole = hood.nearest_distance_m[kinds == "hole"]
    assert hole.size == 9 and (hole > 5).all()  # in a hole: outside the polygon, metres away
    assert (hood.n_within[kinds == "10m+"] == 0).any()  # 10.001 m: out, unless a neighbour


def test_candidate_pairs_on_float32_boxes_equal_a_float64_box_test() -> None:
    """float32 boxes at 4e6 m (0.25-0.5 m apart): the join never drops a pair at the edge."""
    from tasks.lucas.eu_generator import _outward_float32

    rng = np.random.default_rng(3)
    lo = np.column_stack([rng.uniform(4e6, 4e6 + 3000, 500), rng.uniform(3e6, 3e6 + 3000, 500)])
    hi = lo + rng.uniform(1, 200, (500, 2))
    boxes32 = (_outward_float32(lo[:, 0], True), _outward_float32(lo[:, 1], True),
               _outward_float32(hi[:, 0], False), _outward_float32(hi[:, 1], False))
    b = np.column_stack(boxes32).astype("float64")
    k = rng.integers(0, 500, 400)
    x = np.where(rng.random(400) < 0.5, b[k, 0] - 40.0, b[k, 2] + 40.0)  # exactly 40 m off
    y = rng.uniform(b[k, 1], b[k, 3])
    grid = PointGrid.build(x, y, 40.0)
    point, box = grid.pairs(boxes32, 40.0)
    inside = ((b[None, :, 0] - 40.0 <= x[:, None]) & (x[:, None] <= b[None, :, 2] + 40.0)
              & (b[None, :, 1] - 40.0 <= y[:, None]) & (y[:, None] <= b[None, :, 3] + 40.0))
    assert set(zip(point.tolist(), box.tolist(), strict=True)) == set(
        zip(*np.nonzero(inside), strict=True))
    assert all(inside[i, k[i]] for i in range(400))


def test_file_backed_map_reads_boxes_and_geometries_per_row_group(tmp_path: Path) -> None:
    frame, _, _ = _awkward_instances(seed=5)
    frame.to_parquet(tmp_path / "m.parquet", row_group_size=10, write_covering_bbox=True)
    crop_map = read_instances(tmp_path / "m.parquet")
    assert crop_map.bbox is None and crop_map.wkb is None and crop_map.geoms is None
    assert crop_map.chunks() == [(a, min(a + 10, 61)) for a in range(0, 61, 10)]
    bounds = shapely.bounds(frame.geometry.values)
    np.testing.assert_array_equal(crop_map.boxes(), bounds)
    assert crop_map.chunk_extents is not None
    np.testing.assert_array_equal(crop_map.chunk_extents[1], [
        bounds[10:20, 0].min(), bounds[10:20, 1].min(), bounds[10:20, 2].max(),
        bounds[10:20, 3].max()])
    assert crop_map.bounds == tuple(frame.total_bounds)
    xmin, _, _, ymax = crop_map.chunk_boxes(20, 30)
    np.testing.assert_array_equal(xmin, bounds[20:30, 0])
    np.testing.assert_array_equal(ymax, bounds[20:30, 3])
    index = np.array([60, 3, 27, 28, 3])  # across row groups, unsorted, repeated
    assert shapely.equals(crop_map.geometries(index), frame.geometry.values[index]).all()
    assert shapely.equals(crop_map.chunk_geometries(20, np.array([7, 0])),
                          frame.geometry.values[[27, 20]]).all()


def _plain_table(path: Path):  # noqa: ANN202
    """The file's table with extension-typed columns as their storage arrays.

    Once ``geoarrow.pyarrow`` is imported (the linked-data readers do), pyarrow reads the WKB
    column as a ``geoarrow.wkb`` extension array, and writing that back changes its statistics;
    these tests rewrite files and need the plain binary column the map writers produce.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    for i, field in enumerate(table.schema):
        if isinstance(field.type, pa.ExtensionType):
            storage = pa.chunked_array([c.storage for c in table.column(i).chunks],
                                       type=field.type.storage_type)
            table = table.set_column(i, pa.field(field.name, field.type.storage_type), storage)
    return table


def test_file_backed_map_without_bbox_statistics(tmp_path: Path) -> None:
    """No row-group statistics on the covering column: extents come from the boxes themselves."""
    import pyarrow.parquet as pq

    frame, x, y = _awkward_instances(seed=6)
    frame.to_parquet(tmp_path / "a.parquet", write_covering_bbox=True)
    table = _plain_table(tmp_path / "a.parquet")
    pq.write_table(table, tmp_path / "m.parquet", row_group_size=20, write_statistics=False)
    crop_map = read_instances(tmp_path / "m.parquet")
    # no null-count statistics either: the geometry column is read up front (eager path)
    assert crop_map.bbox is not None
    pq.write_table(table, tmp_path / "s.parquet", row_group_size=20,
                   write_statistics=["geometry"])
    lazy = read_instances(tmp_path / "s.parquet")
    assert lazy.bbox is None and lazy.chunk_extents is not None
    np.testing.assert_array_equal(lazy.chunk_extents[0], [
        crop_map.bbox[:20, 0].min(), crop_map.bbox[:20, 1].min(), crop_map.bbox[:20, 2].max(),
        crop_map.bbox[:20, 3].max()])
    a = vector_neighbourhood(crop_map, x, y, 10.0, 1000.0)
    b = vector_neighbourhood(lazy, x, y, 10.0, 1000.0)
    np.testing.assert_array_equal(a.within, b.within)
    np.testing.assert_array_equal(a.nearest_distance_m, b.nearest_distance_m)


def test_file_backed_reading_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tasks.geoparquet import GeoParquetError
    from tasks.lucas.crop_map import CropMapError

    frame, x, y = _awkward_instances(seed=7)
    frame.to_parquet(tmp_path / "a.parquet", write_covering_bbox=True)
    table = _plain_table(tmp_path / "a.parquet")
    # a null xmin in the covering column (the geometry is there): named when the boxes are read
    boxes = table.column("bbox").combine_chunks()
    xmin = pa.array([None] + boxes.field("xmin").to_pylist()[1:], type=pa.float64())
    broken = pa.StructArray.from_arrays([xmin, boxes.field("ymin"), boxes.field("xmax"),
                                         boxes.field("ymax")], names=["xmin", "ymin", "xmax",
                                                                      "ymax"])
    pq.write_table(table.set_column(table.schema.get_field_index("bbox"), "bbox", broken),
                   tmp_path / "nullbox.parquet", row_group_size=30)
    crop_map = read_instances(tmp_path / "nullbox.parquet")
    with pytest.raises(CropMapError, match=r"nullbox.parquet: the bbox covering column 'bbox' "
                       r"has null xmin values in row group 0; rewrite the file"):
        vector_neighbourhood(crop_map, x, y, 10.0, 1000.0)
    # the covering column named by the metadata is missing
    pq.write_table(table.drop_columns(["bbox"]), tmp_path / "nobbox.parquet")
    with pytest.raises(GeoParquetError, match="covering.bbox.xmin of 'geometry'.*no column 'bbox'"):
        read_instances(tmp_path / "nobbox.parquet")
    # a null geometry: read up front (the instance is dropped with a warning), same answers
    geometry = table.column("geometry").combine_chunks().to_pylist()
    geometry[4] = None
    with_null = table.set_column(table.schema.get_field_index("geometry"), "geometry",
                                 pa.array(geometry, type=pa.binary()))
    pq.write_table(with_null, tmp_path / "nullgeom.parquet", row_group_size=30)
    with caplog.at_level("WARNING"):
        eager = read_instances(tmp_path / "nullgeom.parquet")
    assert eager.bbox is not None and len(eager) == len(frame) - 1
    assert "1 instance(s) without geometry are ignored" in caplog.text
    keep = np.r_[0:4, 5:len(frame)]
    ref = instances_from_geodataframe(frame.iloc[keep])
    a = vector_neighbourhood(eager, x, y, 10.0, 1000.0)
    b = vector_neighbourhood(ref, x, y, 10.0, 1000.0)
    np.testing.assert_array_equal(a.within, b.within)
    np.testing.assert_array_equal(a.nearest_class, b.nearest_class)


def test_candidate_pairs_keep_exact_edge_pairs_next_to_cell_boundaries() -> None:
    """40,000 points exactly 40 m off float32 box edges at 4e6 m: none is lost to the rounding
    of the float32 cell arithmetic (the cells are widened by a few ulps)."""
    from tasks.lucas.eu_generator import _outward_float32

    rng = np.random.default_rng(8)
    n = 40_000
    lo = np.column_stack([rng.uniform(4e6, 4e6 + 20_000, n), rng.uniform(3e6, 3e6 + 20_000, n)])
    boxes32 = (_outward_float32(lo[:, 0], True), _outward_float32(lo[:, 1], True),
               _outward_float32(lo[:, 0] + 50, False), _outward_float32(lo[:, 1] + 50, False))
    b = np.column_stack(boxes32).astype("float64")
    side = rng.integers(0, 4, n)
    x = np.where(side == 0, b[:, 0] - 40.0, np.where(side == 1, b[:, 2] + 40.0, b[:, 0]))
    y = np.where(side == 2, b[:, 1] - 40.0, np.where(side == 3, b[:, 3] + 40.0, b[:, 1]))
    # one more point, far from every box, sets the grid origin: 40 m + origin is 0.12 m from a
    # float32 value, so float32 cell arithmetic alone would move box edges by 0.12 m
    x, y = np.r_[x, 3_998_960.12], np.r_[y, 2_998_960.12]
    point, box = PointGrid.build(x, y, 40.0).pairs(boxes32, 40.0)
    found = set(zip(point.tolist(), box.tolist(), strict=True))
    assert all((i, i) in found for i in range(n))


def test_file_backed_map_reads_through_one_reader_per_thread(tmp_path: Path) -> None:
    """Two threads sharing one ParquetFile deadlocked at 50 M parcels: each thread has its own."""
    import threading

    frame, x, y = _awkward_instances(seed=9)
    frame.to_parquet(tmp_path / "m.parquet", row_group_size=5, write_covering_bbox=True)
    crop_map = read_instances(tmp_path / "m.parquet")
    readers = []

    def read() -> None:
        crop_map.chunk_boxes(0, 5)
        readers.append(crop_map._parquet.reader)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(readers) == 2 and readers[0] is not readers[1]
    # many row groups, two threads: the same answer as the in-memory map
    a = vector_neighbourhood(crop_map, x, y, 10.0, 1000.0)
    b = vector_neighbourhood(instances_from_geodataframe(frame), x, y, 10.0, 1000.0)
    np.testing.assert_array_equal(a.within, b.within)
    np.testing.assert_array_equal(a.nearest_class, b.nearest_class)
