"""eeflow's SPARQL server (``eeflow rdf serve``): protocol, HttpStore loads, shipped queries."""

from __future__ import annotations

import pytest
import requests
from typer.testing import CliRunner

from tasks.config.linked_data import StoreConfig
from tasks.linked_data.cli import app
from tasks.linked_data.export import export_product
from tasks.linked_data.query import run_named_query
from tasks.linked_data.server import SparqlServer
from tasks.linked_data.store import EmbeddedStore, HttpStore, load_product
from tests.tasks.linked_data.linked_data_samples import YEAR

GEO = "http://www.opengis.net/ont/geosparql#"
TTL = (
    f"@prefix geo: <{GEO}> .\n<http://ex/f> geo:hasDefaultGeometry <http://ex/g> .\n"
    '<http://ex/g> geo:asWKT "POINT(1 2)"^^geo:wktLiteral .\n'
)


@pytest.fixture
def server(tmp_path):
    with SparqlServer(tmp_path / "server") as running:
        assert running.host == "127.0.0.1"
        yield running


def test_protocol_query_update_graph_store(server):
    base = server.url
    graph = {"graph": "http://ex/graph"}
    assert requests.get(f"{base}/store", params=graph).status_code == 404
    put = requests.put(f"{base}/store", params=graph, data=TTL,
                       headers={"Content-Type": "text/turtle"})
    assert put.status_code == 201
    got = requests.get(f"{base}/store", params=graph, headers={"Accept": "application/n-triples"})
    assert got.status_code == 200 and got.text.count(" .\n") == 2  # entailment stays apart
    ask = f"ASK {{ <http://ex/f> a <{GEO}Feature> ; <{GEO}hasGeometry> <http://ex/g> }}"
    assert requests.get(f"{base}/query", params={"query": ask}).json()["boolean"] is True
    assert requests.post(f"{base}/query", data=ask,
                         headers={"Content-Type": "application/sparql-query"}).json()["boolean"]
    update = requests.post(f"{base}/update",
                           data={"update": "INSERT DATA { <http://ex/a> <http://ex/p> 1 }"})
    assert update.status_code == 204
    csv = requests.post(f"{base}/query", data={"query": "SELECT ?o { <http://ex/a> ?p ?o }"},
                        headers={"Accept": "text/csv"})
    assert csv.headers["Content-Type"] == "text/csv" and csv.text.split() == ["o", "1"]
    construct = requests.get(f"{base}/query",
                             params={"query": "CONSTRUCT WHERE { <http://ex/a> ?p ?o }"},
                             headers={"Accept": "text/turtle"})
    assert construct.headers["Content-Type"] == "text/turtle" and "<http://ex/p>" in construct.text
    bad = requests.post(f"{base}/query", data={"query": "SELEC"})
    assert bad.status_code == 400 and "SPARQL syntax error" in bad.text
    wrong_type = requests.post(f"{base}/store", params=graph, data=b"x",
                               headers={"Content-Type": "image/png"})
    assert wrong_type.status_code == 415 and "application/n-triples" in wrong_type.text
    assert requests.delete(f"{base}/store", params=graph).status_code == 204
    gone = "ASK { GRAPH ?g { <http://ex/f> ?p ?o } }"
    assert requests.get(f"{base}/query", params={"query": gone}).json()["boolean"] is False
    assert requests.get(f"{base}/nothing").status_code == 404


@pytest.mark.parametrize("atomic_max_triples", [100_000, 0])  # one PUT, or chunked POSTs
def test_http_store_loads_and_embedded_only_queries_run(
    ld_cfg, products, server, atomic_max_triples
):
    for product, key in [("vocabulary", "current"), ("crop_field_instances", YEAR),
                         ("lucas_points", "2018")]:
        export_product(ld_cfg, product, key)
    cfg = ld_cfg.model_copy(update={"store": StoreConfig(
        mode="http", url=server.url, chunk_triples=1000, atomic_max_triples=atomic_max_triples
    )})
    for product, key in [("vocabulary", "current"), ("crop_field_instances", YEAR),
                         ("lucas_points", "2018")]:
        first = load_product(cfg, product, key, entail=True)
        again = load_product(cfg, product, key, entail=True)  # re-load: diff / PUT path
        assert first["triples"] == again["triples"]
        assert first["entailed"] == again["entailed"]
        assert again["entailed"] > 0 or product == "vocabulary"  # SKOS only: nothing to entail
    http = HttpStore(cfg.store)
    embedded = EmbeddedStore(None)
    crop = load_product(ld_cfg, "crop_field_instances", YEAR, store=embedded)
    assert http.graph_size(crop["graph"]) == crop["triples"]
    # lucas_unmatched needs geof:distance for polygons: refused on plain Oxigraph, runs here
    unmatched = run_named_query(cfg, "lucas_unmatched", {"radius": 10}, http)
    assert [r["point_id"] for r in unmatched["rows"]] == ["47003", "47004", "47006"]
    http.close()
    embedded.close()


def test_load_product_materialises_entailment_embedded(ld_cfg, products):
    export_product(ld_cfg, "crop_field_instances", YEAR)
    store = EmbeddedStore(None)
    loaded = load_product(ld_cfg, "crop_field_instances", YEAR, store=store, entail=True)
    assert store.graph_size(loaded["graph"] + "/entailed") == loaded["entailed"] > 0
    assert bool(store.query(f"ASK {{ ?f a <{GEO}SpatialObject> ; <{GEO}hasGeometry> ?g . "
                            f"?g <{GEO}dimension> 2 }}"))
    store.close()


def test_cli_serve_rejects_unknown_engine(tmp_path):
    config = tmp_path / "linked_data.yaml"
    config.write_text(f"use_case: linked_data\ndata_root: {tmp_path / 'data'}\n")
    result = CliRunner().invoke(app, ["serve", "-c", str(config), "--engine", "jena"])
    assert result.exit_code != 0 and "allowed: eeflow, oxigraph" in result.output


def test_pipeline_loads_materialise_entailment_unless_switched_off(ld_cfg, products):
    """The DAGs' load_triples stage entails by default (store.entail): conformance holds."""
    import datetime as dt

    from tasks.linked_data.stages import load_triples_stage
    from tasks.linked_data.store import open_store

    export_product(ld_cfg, "crop_field_instances", YEAR)
    day = dt.date(int(YEAR[:4]), 9, 1)
    loaded = load_triples_stage(ld_cfg, day, product="crop_field_instances")
    assert loaded["entailed"] > 0
    off = ld_cfg.model_copy(update={"store": ld_cfg.store.model_copy(update={"entail": False})})
    assert load_triples_stage(off, day, product="crop_field_instances")["entailed"] == 0
    store = open_store(ld_cfg)
    try:
        assert store.graph_size(loaded["graph"] + "/entailed") == 0  # switched off: replaced
    finally:
        store.close()
