from __future__ import annotations

import json

import geopandas as gpd
import pytest
import rdflib
import shapely
from rdflib.compare import isomorphic
from typer.testing import CliRunner

from tasks.config.linked_data import LinkedDataConfig
from tasks.interlinking.readers import CrsMismatchError, read_geometry_sets
from tasks.interlinking.run import load_stage, run_interlinking

GEO = "http://www.opengis.net/ont/geosparql#"


def _write(path, geoms, crs, **columns):
    gpd.GeoDataFrame(columns, geometry=list(geoms), crs=crs).to_parquet(path)
    return path


@pytest.fixture()
def two_files(tmp_path):
    source = _write(tmp_path / "parcels.parquet",
                    [shapely.box(0, 0, 10, 10), shapely.box(10, 0, 20, 10)], "EPSG:32633",
                    parcel_id=["P-1", "P 2"])
    target = _write(tmp_path / "fields.parquet",
                    [shapely.box(2, 2, 4, 4), shapely.box(0, 0, 10, 10), shapely.box(15, 5, 25, 8)],
                    "EPSG:32633")
    return source, target


def test_crs_mismatch_names_files_crss_and_the_fix(tmp_path, two_files):
    source, _ = two_files
    other = _write(tmp_path / "lucas.parquet", [shapely.Point(15.0, 47.4)], "EPSG:4326")
    with pytest.raises(CrsMismatchError) as err:
        read_geometry_sets(source, other)
    message = str(err.value)
    for needed in ("parcels.parquet", "lucas.parquet", "EPSG:32633", "EPSG:4326", "--target-crs"):
        assert needed in message
    no_crs = tmp_path / "nocrs.parquet"
    gpd.GeoDataFrame(geometry=[shapely.Point(1, 1)]).to_parquet(no_crs)
    with pytest.raises(CrsMismatchError, match="nocrs.parquet has no CRS"):
        read_geometry_sets(source, no_crs, target_crs="EPSG:32633")
    with pytest.raises(ValueError, match="not a CRS pyproj knows"):
        read_geometry_sets(source, other, target_crs="EPSG:99999999")


def test_target_crs_reprojects_both(tmp_path, two_files):
    source, _ = two_files
    lonlat = gpd.GeoSeries([shapely.box(0, 0, 10, 10)], crs="EPSG:32633").to_crs("EPSG:4326")
    other = _write(tmp_path / "wgs84.parquet", lonlat, "EPSG:4326")
    a, b = read_geometry_sets(source, other, target_crs="EPSG:32633")
    assert a.crs == b.crs == "EPSG:32633"
    assert shapely.hausdorff_distance(b.geometries[0], shapely.box(0, 0, 10, 10)) < 1e-6


def test_iri_templates(two_files):
    source, target = two_files
    a, b = read_geometry_sets(source, target, source_iri_template="feature/parcel/{parcel_id}")
    assert a.iris.tolist() == ["https://w3id.org/eeflow/data/feature/parcel/P-1",
                               "https://w3id.org/eeflow/data/feature/parcel/P%202"]
    assert b.iris[2] == "https://w3id.org/eeflow/data/feature/interlinking/fields/2"
    with pytest.raises(ValueError, match="allowed: row, dataset"):
        read_geometry_sets(source, target, source_iri_template="x/{nope}")


def test_triples_round_trip_and_load_as_named_graph(tmp_path, two_files):
    from tasks.linked_data.store import EmbeddedStore

    source, target = two_files
    out = tmp_path / "out"
    summary = run_interlinking(source, target, out)
    base = "https://w3id.org/eeflow/data/feature/interlinking/"
    p = [rdflib.URIRef(f"{base}parcels/{i}") for i in range(2)]
    f = [rdflib.URIRef(f"{base}fields/{i}") for i in range(3)]
    g = rdflib.Namespace(GEO)
    eeo = rdflib.Namespace("https://w3id.org/eeflow/ontology#")
    expected = rdflib.Graph()
    for triple in [
        (p[0], g.sfContains, f[0]), (p[0], g.sfIntersects, f[0]), (p[0], eeo.sfCovers, f[0]),
        (p[0], g.sfEquals, f[1]), (p[0], g.sfIntersects, f[1]), (p[0], g.sfContains, f[1]),
        (p[0], g.sfWithin, f[1]), (p[0], eeo.sfCovers, f[1]), (p[0], eeo.sfCoveredBy, f[1]),
        (p[1], g.sfTouches, f[1]), (p[1], g.sfIntersects, f[1]),
        (p[1], g.sfOverlaps, f[2]), (p[1], g.sfIntersects, f[2]),
    ]:
        expected.add(triple)
    parsed = rdflib.Graph().parse(out / "relations.nt", format="nt")
    assert isomorphic(parsed, expected)
    assert summary["counts"]["triples"] == len(expected)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["graph"] == summary["graph"] and manifest["counts"]["verified"] == 4

    store = EmbeddedStore(None)
    cfg = LinkedDataConfig(data_root=str(tmp_path / "data"))
    loaded = load_stage(cfg, out, store=store)
    assert loaded["graph"] == summary["graph"] and loaded["triples"] == len(expected)
    rows = list(store.query(f"SELECT ?f WHERE {{ GRAPH <{summary['graph']}> "
                            f"{{ <{p[0]}> <{GEO}sfContains> ?f }} }}"))
    assert sorted(str(r["f"].value) for r in rows) == sorted(str(x) for x in f[:2])


def test_cli_generate_run_budget_and_compare(tmp_path):
    from tasks.cli.root import _register_subcommands, app

    _register_subcommands()
    runner = CliRunner()
    gen = runner.invoke(app, ["interlink", "generate", "--out", str(tmp_path / "gen"),
                              "--parcels", "400", "--seed", "3"])
    assert gen.exit_code == 0, gen.output
    files = json.loads(gen.output)["files"]
    run = runner.invoke(app, ["interlink", "run", "--source", files["parcels"], "--target",
                              files["fields"], "--out", str(tmp_path / "run")])
    assert run.exit_code == 0, run.output
    exhaustive = json.loads(run.output)["counts"]
    budgeted = runner.invoke(app, ["interlink", "run", "--source", files["parcels"], "--target",
                                   files["points"], "--out", str(tmp_path / "budget"),
                                   "--budget", "50", "--selector", "chi2_mbro"])
    assert budgeted.exit_code == 0, budgeted.output
    assert json.loads(budgeted.output)["counts"]["selected"] == 50
    compare = runner.invoke(app, ["interlink", "compare-selectors", "--source", files["parcels"],
                                  "--target", files["fields"], "--out", str(tmp_path / "cmp")])
    assert compare.exit_code == 0, compare.output
    assert (tmp_path / "cmp" / "recall_vs_budget.png").is_file()
    assert exhaustive["relations"]["intersects"] > 0
    bad = runner.invoke(app, ["interlink", "run", "--source", files["parcels"], "--target",
                              files["fields"], "--out", str(tmp_path / "x"), "--budget", "5",
                              "--selector", "nope"])
    assert bad.exit_code != 0 and "allowed" in bad.output
    assert exhaustive["triples"] > 0
