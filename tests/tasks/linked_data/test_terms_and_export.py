from __future__ import annotations

import io
import json
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from rdflib import Dataset, Graph, URIRef
from rdflib.compare import isomorphic

from tasks.linked_data.export import export_product, grid_cells, run_key_for
from tasks.linked_data.mapping import MappingError
from tasks.linked_data.terms import FastNTriplesSink, OxigraphSink, TermArray
from tests.tasks.linked_data.linked_data_samples import DAY, YEAR, crop_fields, write_crop_instances

TRICKY = ["plain", 'quote " inside', "back\\slash", "new\nline\r", "unicode: äöü ❄", None, ""]


def _write_both(fmt: str) -> tuple[bytes, bytes]:
    subjects = TermArray.iris([f"https://example.org/s/{i}" for i in range(len(TRICKY))])
    objects = [
        TermArray.literals(TRICKY),
        TermArray.literals(["1.5"] * 7, "http://www.w3.org/2001/XMLSchema#double"),
        TermArray.literals(["x"] * 7, lang="en"),
        TermArray.iris(["https://example.org/o"] * 7),
    ]
    outs = []
    for cls in (FastNTriplesSink, OxigraphSink):
        buf = io.BytesIO()
        sink = (
            cls(buf, "https://example.org/g")
            if cls is FastNTriplesSink and fmt == "nq"
            else cls(buf)
            if cls is FastNTriplesSink
            else cls(buf, fmt, "https://example.org/g")
        )
        for obj in objects:
            sink.write(subjects, "https://example.org/p", obj)
        outs.append(buf.getvalue())
    return outs[0], outs[1]


def test_fast_path_is_isomorphic_to_pyoxigraph_with_escaping():
    fast, oxi = _write_both("nt")
    assert isomorphic(Graph().parse(data=fast, format="nt"), Graph().parse(data=oxi, format="nt"))
    graph = Graph().parse(data=fast, format="nt")
    assert len(graph) == 6 + 7 + 7 + 7  # the null literal gives no triple
    assert {str(o) for o in graph.objects()} >= {'quote " inside', "back\\slash", "new\nline\r"}


def test_fast_path_nquads_carry_the_graph():
    fast, oxi = _write_both("nq")
    one, two = (
        Dataset().parse(data=fast, format="nquads"),
        Dataset().parse(data=oxi, format="nquads"),
    )
    assert len(list(one.quads())) == len(list(two.quads())) == 27
    assert {str(q[3].identifier if hasattr(q[3], "identifier") else q[3]) for q in one.quads()} == {
        "https://example.org/g"
    }


def test_grid_cells_points_and_margins():
    point = shapely.Point(15.0055, 48.0055)
    box = shapely.box(15.0001, 48.0001, 15.0098, 48.0098)
    rows, labels = grid_cells(pa_geoms := __import__("numpy").array([point, box], dtype=object))
    del pa_geoms
    by_row = {}
    for r, label in zip(rows, labels.to_pylist(), strict=True):
        by_row.setdefault(int(r), set()).add(label)
    assert by_row[0] == {"1500_4800"}
    assert by_row[1] == {f"{i}_{j}" for i in (1499, 1500, 1501) for j in (4799, 4800, 4801)}


@pytest.mark.parametrize(
    "product,run_key",
    [
        ("ice_chart", DAY),
        ("crop_field_instances", YEAR),
        ("lucas_points", "2018"),
        ("model", "current"),
        ("evaluation", YEAR),
        ("vocabulary", "current"),
    ],
)
def test_export_products_fast_equals_pyoxigraph_and_is_idempotent(
    ld_cfg, products, product, run_key
):
    first = export_product(ld_cfg, product, run_key)
    graph_fast = Graph().parse(first["rdf"], format="nt")
    assert len(graph_fast) == first["triples"] > 0
    fast_bytes = Path(first["rdf"]).read_bytes()
    again = export_product(ld_cfg, product, run_key)
    assert Path(again["rdf"]).read_bytes() == fast_bytes
    if product != "vocabulary":
        oxi = export_product(ld_cfg, product, run_key, engine="pyoxigraph")
        assert isomorphic(graph_fast, Graph().parse(oxi["rdf"], format="nt"))
        ttl = export_product(ld_cfg, product, run_key, fmt="ttl")
        graph_ttl = Graph().parse(ttl["rdf"], format="turtle")
        media = URIRef("http://www.w3.org/ns/dcat#mediaType")  # differs by format, by design
        graph_fast.remove((None, media, None))
        graph_ttl.remove((None, media, None))
        assert isomorphic(graph_fast, graph_ttl)


def test_ice_chart_triples_are_geosparql_crs84(ld_cfg, products):
    result = export_product(ld_cfg, "ice_chart", DAY)
    text = Path(result["rdf"]).read_text()
    assert (
        "<http://www.opengis.net/ont/geosparql#asWKT> "
        '"<http://www.opengis.net/def/crs/OGC/1.3/CRS84> POLYGON' in text
    )
    graph = Graph().parse(result["rdf"], format="nt")
    wkts = [
        str(o)
        for o in graph.objects(
            predicate=__import__("rdflib").URIRef("http://www.opengis.net/ont/geosparql#asWKT")
        )
    ]
    lons = [shapely.from_wkt(w.split("> ", 1)[1]).centroid.x for w in wkts]
    assert all(-30 < lon < 30 for lon in lons)  # EPSG:3413 Fram Strait reprojected to lon/lat
    assert result["features"] == 3 and result["rejected"] == 0


def test_invalid_rows_are_reported_with_row_id_not_exported(ld_cfg, products, tmp_path):
    from tests.tasks.linked_data.linked_data_samples import write_ice_chart

    write_ice_chart(ld_cfg.resolved_root(), bad=True)
    result = export_product(ld_cfg, "ice_chart", DAY)
    assert result["features"] == 3 and result["rejected"] == 2
    rejected = Path(result["rejected_csv"]).read_text()
    assert ",3,3,invalid geometry: Self-intersection" in rejected
    assert "multiyear_glacier" in rejected
    # CSV with bad WKT / empty geometry through a custom mapping
    mapping = tmp_path / "fields_csv.yaml"
    mapping.write_text(
        "product: crop_field_instances\nuse_case: food_security\ntitle: t\n"
        "source: {format: csv, file_pattern: '\\.csv$', wkt_column: wkt, crs: 'EPSG:32633'}\n"
        "id_column: field_id\n"
        "features:\n  - subject: 'feature/f/{row}'\n    types: [eeo:CropFieldInstance]\n"
        "    properties: [{predicate: eeo:hasCropType, column: crop_class, concept: crop_type}]\n"
        "    geometry: {subject: 'geometry/f/{row}', grid_cells: true}\n"
    )
    csv_file = tmp_path / "fields.csv"
    csv_file.write_text(
        'field_id,crop_class,wkt\na1,maize,"POLYGON((540000 5330000, 540100 5330000, '
        '540100 5330100, 540000 5330000))"\na2,maize,POLYGON((1 2\na3,maize,POLYGON EMPTY\n'
    )
    cfg = ld_cfg.model_copy(update={"mappings": {"crop_field_instances": str(mapping)}})
    out = export_product(cfg, "crop_field_instances", YEAR, [csv_file])
    assert out["features"] == 1 and out["rejected"] == 2
    report = Path(out["rejected_csv"]).read_text()
    assert "a2,geometry is missing or not parsable" in report and "a3,geometry is empty" in report


def test_missing_column_is_a_clear_error(ld_cfg, tmp_path):
    root = ld_cfg.resolved_root()
    path = write_crop_instances(root)
    frame = gpd.read_parquet(path).drop(columns=["confidence"])
    frame.to_parquet(path)
    with pytest.raises(MappingError, match=r"crop_field_instances.yaml.*'confidence'.*columns"):
        export_product(ld_cfg, "crop_field_instances", YEAR)


def test_no_input_is_a_clear_error(ld_cfg):
    with pytest.raises(FileNotFoundError, match="no input for product 'ice_chart'"):
        export_product(ld_cfg, "ice_chart", DAY)


def test_shapefile_input(ld_cfg, tmp_path):
    shp_dir = tmp_path / "shp"
    shp_dir.mkdir()
    crop_fields().to_file(shp_dir / "T33UVP_instances.shp")
    mapping = tmp_path / "shp.yaml"
    src = (
        Path(__file__).resolve().parents[3] / "tasks/linked_data/mappings/crop_field_instances.yaml"
    ).read_text()
    mapping.write_text(
        src.replace("format: geoparquet", "format: shapefile").replace(
            "_instances\\.parquet$", "_instances\\.shp$"
        )
    )
    cfg = ld_cfg.model_copy(update={"mappings": {"crop_field_instances": str(mapping)}})
    out = export_product(cfg, "crop_field_instances", YEAR, [shp_dir / "T33UVP_instances.shp"])
    assert out["features"] == 16 and out["rejected"] == 0


def test_model_json_values_are_typed(ld_cfg, products):
    out = export_product(ld_cfg, "model", "current")
    text = Path(out["rdf"]).read_text()
    assert '"2"^^<http://www.w3.org/2001/XMLSchema#integer>' in text
    assert '"0.001"^^<http://www.w3.org/2001/XMLSchema#double>' in text
    assert '"rmsprop" .' in text
    assert json.loads((Path(out["rdf"]).parent / "manifest.json").read_text())["graph"].endswith(
        "/graph/models/model/current"
    )


def test_run_keys():
    assert run_key_for("ice_chart", "2026-01-25") == "2026-01-25"
    assert run_key_for("crop_field_instances", "2018-03-01") == "2017-09_2018-08"
    assert run_key_for("lucas_points", "2018-06-18") == "2018"
    with pytest.raises(ValueError, match="allowed"):
        run_key_for("tides", "2018-01-01")


def test_parcel_instance_columns_are_exported_when_present(ld_cfg, tmp_path):
    from tests.tasks.linked_data.linked_data_samples import crop_fields

    frame = crop_fields(n_per_side=2)
    frame["parcel_id"] = ["AT-1", "AT-2", "AT-3", "AT-4"]
    frame["agreement"] = [1.0, 0.75, 0.5, 0.9]
    frame["pixels"] = [400, 380, 12, 399]
    path = tmp_path / "T1_instances.parquet"
    frame.to_parquet(path)
    result = export_product(ld_cfg, "crop_field_instances", YEAR, [path])
    text = Path(result["rdf"]).read_text()
    assert text.count("ontology#parcelId> \"AT-") == 4
    assert '#agreement> "0.75"^^<http://www.w3.org/2001/XMLSchema#double>' in text
    assert '#pixelCount> "12"^^<http://www.w3.org/2001/XMLSchema#integer>' in text
    # connected-region outputs have no parcel columns: still exported, without those triples
    plain = tmp_path / "plain"
    plain.mkdir()
    crop_fields(n_per_side=2).to_parquet(plain / "T1_instances.parquet")
    other = export_product(ld_cfg, "crop_field_instances", YEAR, [plain / "T1_instances.parquet"])
    assert "parcelId" not in Path(other["rdf"]).read_text() and other["features"] == 4
