"""The EU-scale generator: valid convex parcels with shared borders, GeoParquet 1.1 with a float32
bbox covering column, Hilbert-ordered row groups, LUCAS 2018-schema points."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import shapely

from tasks.domain.crops import CROP_CLASSES
from tasks.lucas import eu_generator
from tasks.lucas.codelist import load_lc1_mapping
from tasks.lucas.crop_map import read_instances
from tasks.lucas.eu_generator import (
    hilbert_index,
    perturb_classes_fast,
    quad_wkb,
    write_eu_farmland,
)
from tasks.lucas.evaluate import evaluate_against_lucas
from tasks.lucas.generator import CONFUSABLE, nuts0_of

REAL_SCHEMA = Path(__file__).resolve().parents[2] / "data" / "lucas" / \
    "lucas2018_primary_BE_2points.csv"


@pytest.fixture(scope="module")
def eu(tmp_path_factory: pytest.TempPathFactory) -> eu_generator.EuFarmland:
    folder = tmp_path_factory.mktemp("eu")
    patch = pytest.MonkeyPatch()
    patch.setattr(eu_generator, "TILE_BLOCKS", 4)  # small tiles: several row groups
    patch.setattr(eu_generator, "TILES_PER_GROUP", 16)
    try:
        return write_eu_farmland(folder / "map.parquet", 12_000, 600, seed=4)
    finally:
        patch.undo()


def test_parcels_are_valid_convex_and_share_borders(eu: eu_generator.EuFarmland) -> None:
    frame = gpd.read_parquet(eu.map_path)
    assert len(frame) == eu.n_parcels == 12_000
    assert frame.crs.to_epsg() == 3035
    geoms = frame.geometry.values
    assert shapely.is_valid(geoms).all()
    assert (shapely.get_num_coordinates(geoms) == 5).all()
    np.testing.assert_allclose(shapely.area(shapely.convex_hull(geoms)), shapely.area(geoms),
                               rtol=1e-9)  # convex quadrilaterals
    area_ha = shapely.area(geoms) / 1e4
    assert 0.1 < area_ha.min() and area_ha.max() < 20.0
    assert 1.0 < np.median(area_ha) < 4.0
    # parcels of a block share their cut lines exactly: no overlap, no gap inside a block
    union = shapely.union_all(geoms[:3000])
    assert union.area == pytest.approx(shapely.area(geoms[:3000]).sum(), rel=1e-9)
    assert set(frame["crop_class"].astype(str)) <= set(CROP_CLASSES)


def test_geoparquet_covering_and_row_groups(eu: eu_generator.EuFarmland) -> None:
    meta = pq.ParquetFile(eu.map_path).metadata
    geo = json.loads(meta.metadata[b"geo"])
    column = geo["columns"]["geometry"]
    assert geo["version"] == "1.1.0" and column["encoding"] == "WKB"
    assert column["covering"]["bbox"]["xmin"] == ["bbox", "xmin"]
    assert meta.num_row_groups == eu.n_row_groups > 3
    names = [meta.schema.column(j).path for j in range(meta.num_columns)]
    wkb = meta.row_group(0).column(names.index("geometry"))
    assert "DELTA_LENGTH_BYTE_ARRAY" in wkb.encodings and wkb.compression == "UNCOMPRESSED"
    table = pq.read_table(eu.map_path)
    assert table.schema.field("bbox").type.field("xmin").type == "float"  # float32
    bbox = np.column_stack([table.column("bbox").combine_chunks().field(k).to_numpy()
                            for k in ("xmin", "ymin", "xmax", "ymax")]).astype("float64")
    exact = shapely.bounds(shapely.from_wkb(table.column("geometry").to_numpy()))
    assert (bbox[:, :2] <= exact[:, :2]).all() and (bbox[:, 2:] >= exact[:, 2:]).all()
    assert np.abs(bbox - exact).max() < 0.5  # rounded outwards by at most one float32 step
    # Hilbert-ordered tiles: each row group is compact (far smaller than the whole map)
    crop_map = read_instances(eu.map_path)
    assert crop_map.chunk_extents is not None
    ext = crop_map.chunk_extents
    x0, y0, x1, y1 = crop_map.bounds
    group_area = (ext[:, 2] - ext[:, 0]) * (ext[:, 3] - ext[:, 1])
    assert group_area.max() < 0.5 * (x1 - x0) * (y1 - y0)


def test_points_follow_the_lucas_2018_schema(eu: eu_generator.EuFarmland) -> None:
    points = eu.points
    real = pd.read_csv(REAL_SCHEMA, nrows=1)
    # every column is a real 2018 primary-data column, plus the legend label of LC1
    assert set(points.columns) - {"LC1_LABEL"} <= set(real.columns)
    assert len(points) == 600 and points["POINT_ID"].is_unique
    mapping = load_lc1_mapping()
    assert all(mapping.classify(c) is not None for c in points["LC1"])
    assert set(points["NUTS0"]) <= {"FR", "ES", "AD", ""}  # the default origin: south-west France
    west = points["TH_LONG"] < 0
    assert (points.loc[west & (points["GPS_EW"] != 8), "GPS_EW"] == 2).all()
    crop = points["LU1"] == "U111"
    assert 0.3 < crop.mean() < 0.8


def test_evaluation_of_the_generated_map(eu: eu_generator.EuFarmland, tmp_path: Path) -> None:
    eu.points.to_csv(tmp_path / "points.csv", index=False)
    report = evaluate_against_lucas(tmp_path / "points.csv", eu.map_path)
    assert report.points_used > 200
    assert report.excluded["outside_country"] <= 2  # NUTS0 comes from the location
    # the map relabels 15 % of parcels; the 10 m rule forgives the road-side observations
    assert 0.75 < report.within_radius.overall_accuracy < 0.95
    assert report.within_radius.overall_accuracy > report.nearest.overall_accuracy


def test_hilbert_index_is_a_path_through_adjacent_cells() -> None:
    assert hilbert_index(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 0]), 1).tolist() == [
        0, 1, 2, 3]
    ty, tx = np.divmod(np.arange(64), 8)
    d = hilbert_index(tx, ty, 3)
    assert sorted(d.tolist()) == list(range(64))
    order = np.argsort(d)
    steps = np.abs(np.diff(tx[order])) + np.abs(np.diff(ty[order]))
    assert (steps == 1).all()


def test_quad_wkb_round_trip() -> None:
    ring = np.array([[[0, 0], [10, 0], [11, 5], [1, 6], [0, 0]],
                     [[4e6, 3e6], [4e6 + 1, 3e6], [4e6 + 1, 3e6 + 2], [4e6, 3e6 + 2],
                      [4e6, 3e6]]], dtype="float64")
    geoms = shapely.from_wkb(quad_wkb(ring).to_numpy(zero_copy_only=False))
    assert shapely.equals(geoms[0], shapely.Polygon(ring[0]))
    np.testing.assert_array_equal(shapely.get_coordinates(geoms[1]), ring[1])


def test_perturbation_relabels_to_confusable_classes() -> None:
    truth = np.repeat(np.arange(len(CROP_CLASSES), dtype="int16"), 2000)
    model = perturb_classes_fast(truth, 0.15, np.random.default_rng(0))
    changed = model != truth
    assert 0.13 < changed.mean() < 0.17
    for t, m in set(zip(truth[changed].tolist(), model[changed].tolist(), strict=True)):
        assert CROP_CLASSES[m] in CONFUSABLE[CROP_CLASSES[t]]


def test_nuts0_of_smallest_box() -> None:
    # Innsbruck (AT), Luxembourg (LU, inside the boxes of BE/DE/FR too), the Atlantic (none);
    # Vienna lies in Hungary's box too, which is smaller than Austria's
    codes = nuts0_of(np.array([11.4, 6.13, -30.0, 16.37]), np.array([47.26, 49.61, 45.0, 48.21]))
    assert codes.tolist() == ["AT", "LU", "", "HU"]
    codes = nuts0_of(np.array([16.37, 17.5]), np.array([48.21, 48.2]), prefer="AT")
    assert codes.tolist() == ["AT", "SK"]  # Bratislava's longitude is beyond Austria's box


def test_bad_sizes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_parcels and n_points must be >= 1, got 0, 5"):
        write_eu_farmland(tmp_path / "m.parquet", 0, 5)
