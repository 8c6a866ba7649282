"""Grid-cell pre-filter of region queries (query.grid_prefilter): same rows as the plain scan."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from tasks.linked_data.export import export_product, grid_cells
from tasks.linked_data.query import (
    MAX_GRID_CELLS,
    bind_parameters,
    load_query,
    region_cells,
    run_named_query,
)
from tasks.linked_data.store import load_product, open_store
from tests.tasks.linked_data.linked_data_samples import YEAR

TILE = "T33TWN"
# Region: the CRS84 square [15.005, 15.025] x [47.005, 47.025] (cells 1500..1502 x 4700..4702).
REGION = "POLYGON((15.005 47.005, 15.025 47.005, 15.025 47.025, 15.005 47.025, 15.005 47.005))"
TRIANGLE = "POLYGON((15.005 47.005, 15.025 47.005, 15.005 47.025, 15.005 47.005))"
FIELDS = {  # name: (crop class, geometry in CRS84)
    "inside": ("maize", shapely.box(15.010, 47.010, 15.012, 47.012)),
    "touches_edge": ("maize", shapely.box(15.025, 47.010, 15.027, 47.012)),
    "touches_corner": ("maize", shapely.box(14.995, 46.995, 15.005, 47.005)),
    "crosses_edge": ("maize", shapely.box(15.020, 47.020, 15.030, 47.030)),
    "contains_region": ("maize", shapely.box(15.000, 47.000, 15.030, 47.030)),
    "near_same_cell": ("maize", shapely.box(15.0255, 47.010, 15.0275, 47.012)),
    "far": ("maize", shapely.box(15.200, 47.200, 15.210, 47.210)),
    "inside_other_class": ("grassland", shapely.box(15.013, 47.013, 15.015, 47.015)),
    "bbox_only_of_triangle": ("maize", shapely.box(15.020, 47.020, 15.024, 47.024)),
}
# The query without the pre-filter (the form before the grid cells): the reference answer.
SCAN_QUERY = """# @param crop_type concept:crop_type
# @param region wkt
PREFIX eeo: <https://w3id.org/eeflow/ontology#>
PREFIX geo: <http://www.opengis.net/ont/geosparql#>
PREFIX geof: <http://www.opengis.net/def/function/geosparql/>
PREFIX sosa: <http://www.w3.org/ns/sosa/>
SELECT ?field ?confidence ?run_key ?wkt WHERE {
  ?field a eeo:CropFieldInstance ;
         eeo:hasCropType ?crop_type ;
         eeo:confidence ?confidence ;
         sosa:isResultOf/eeo:runKey ?run_key ;
         geo:hasGeometry/geo:asWKT ?wkt .
  FILTER(geof:sfIntersects(?wkt, ?region))
}
ORDER BY ?field
"""


@pytest.fixture(scope="module")
def grid_store(tmp_path_factory):
    from tasks.config.linked_data import LinkedDataConfig

    tmp = tmp_path_factory.mktemp("grid")
    cfg = LinkedDataConfig(data_root=str(tmp / "data"))
    folder = cfg.resolved_root() / "food_security" / "predict" / YEAR / TILE
    folder.mkdir(parents=True)
    frame = gpd.GeoDataFrame(
        {
            "crop_class": [c for c, _ in FIELDS.values()],
            "confidence": np.linspace(0.5, 0.9, len(FIELDS)).round(3),
        },
        geometry=[g for _, g in FIELDS.values()],
        crs="EPSG:4326",
    )
    frame.to_parquet(folder / f"{TILE}_instances.parquet")
    (folder / "manifest.json").write_text(json.dumps({"stage": "predict", "inputs": [TILE]}))
    export_product(cfg, "crop_field_instances", YEAR)
    load_product(cfg, "crop_field_instances", YEAR)
    scan = tmp / "crop_fields_in_region_scan.rq"
    scan.write_text(SCAN_QUERY)
    store = open_store(cfg)
    yield cfg, store, scan
    store.close()


def _names(rows: list[dict]) -> set[str]:
    names = list(FIELDS)
    return {names[int(r["field"].rsplit("/", 1)[1])] for r in rows}


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        (
            REGION,
            {
                "inside",
                "touches_edge",
                "touches_corner",
                "crosses_edge",
                "contains_region",
                "bbox_only_of_triangle",
            },
        ),
        (TRIANGLE, {"inside", "touches_corner", "contains_region"}),
    ],
)
@pytest.mark.parametrize("max_cells", [MAX_GRID_CELLS, 1])  # 1: the no-prefilter path
def test_prefilter_gives_the_rows_of_the_full_scan(grid_store, region, expected, max_cells):
    cfg, store, scan = grid_store
    params = {"crop_type": "maize", "region": region}
    full = run_named_query(cfg, str(scan), params, store)
    grid = run_named_query(cfg, "crop_fields_in_region", params, store, max_grid_cells=max_cells)
    assert grid["rows"] == full["rows"]
    assert _names(grid["rows"]) == expected
    shapely_hits = {
        n for n, (c, g) in FIELDS.items() if c == "maize" and g.intersects(shapely.from_wkt(region))
    }
    assert expected == shapely_hits


def test_small_region_binds_cell_values_large_region_no_prefilter(grid_store):
    cfg, _store, _scan = grid_store
    query = load_query("crop_fields_in_region")
    small = bind_parameters(query, {"crop_type": "maize", "region": REGION}, cfg.base_iri)
    assert 'VALUES ?grid_cell { "1500_4700"' in small
    assert (
        '"1502_4702" } ?geometry <https://w3id.org/eeflow/ontology#gridCell> ?grid_cell .' in small
    )
    body = small.split("SELECT", 1)[1]
    assert "# @grid-values" not in body and "@if-no-grid" not in body
    assert "FILTER(?field_crop_type = ?crop_type)" in small
    assert "eeo:hasCropType ?crop_type ." not in small
    # 2 x 2 degrees = 40,000 cells > cap: no VALUES rows, no grid join (the plain scan).
    country = "POLYGON((14 46, 16 46, 16 48, 14 48, 14 46))"
    large = bind_parameters(query, {"crop_type": "maize", "region": country}, cfg.base_iri)
    assert "VALUES ?grid_cell" not in large and "gridCell> ?grid_cell" not in large
    body = large.split("SELECT", 1)[1]
    assert "# @grid-values" not in body and "@if-grid" not in body
    assert len(large) < len(query.text) + 1000
    assert "eeo:hasCropType ?crop_type ." in large and "?field_crop_type" not in large


def test_large_region_fallback_matches_full_scan(grid_store):
    cfg, store, scan = grid_store
    params = {"crop_type": "maize", "region": "POLYGON((14 46, 16 46, 16 48, 14 48, 14 46))"}
    grid = run_named_query(cfg, "crop_fields_in_region", params, store)
    assert grid["rows"] == run_named_query(cfg, str(scan), params, store)["rows"]
    assert grid["count"] == 8


def test_region_cells_are_the_exporters_labels():
    field = shapely.box(15.0101, 47.0099, 15.0312, 47.0207)
    _rows, labels = grid_cells(np.array([field]))  # exporter: bbox grown by 25 m
    assert region_cells(shapely.to_wkt(field), margin_m=25.0) == labels.to_pylist()
    point = "<http://www.opengis.net/def/crs/OGC/1.3/CRS84> POINT(15.0150 47.0150)"
    assert region_cells(point, margin_m=0.0) == ["1501_4701"]


def test_grid_header_must_name_a_wkt_parameter(tmp_path: Path):
    from tasks.linked_data.query import QueryError

    bad = tmp_path / "bad.rq"
    bad.write_text("# @param day date\n# @grid-cells day -> ?cell\nSELECT * WHERE { }\n")
    with pytest.raises(QueryError, match="must name a wkt parameter"):
        load_query(bad)
    bad.write_text("# @param area wkt\n# @grid-cells area -> ?cell\nSELECT * WHERE { }\n")
    with pytest.raises(QueryError, match="no '# @grid-values' line"):
        load_query(bad)
