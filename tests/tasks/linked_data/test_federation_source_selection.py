"""Federation with source selection over three local SPARQL endpoints (fields, LUCAS, code lists).

Each endpoint is eeflow's SparqlServer on 127.0.0.1 (started here, stopped after); the expected
rows come from the same query on one store holding the union of the three datasets.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks.config.linked_data import LinkedDataConfig
from tasks.linked_data.export import export_product
from tasks.linked_data.federation import (
    resolve_endpoint,
    run_federated_file,
    run_federated_query,
    run_source_selected_query,
)
from tasks.linked_data.server import SparqlServer
from tasks.linked_data.source_selection import (
    EndpointUnavailableError,
    FederationError,
    SourceSelector,
    pattern_key,
)
from tasks.net import free_port
from tests.tasks.linked_data.linked_data_samples import YEAR

PREFIXES = """PREFIX eeo: <https://w3id.org/eeflow/ontology#>
PREFIX geo: <http://www.opengis.net/ont/geosparql#>
PREFIX geof: <http://www.opengis.net/def/function/geosparql/>
PREFIX skos: <http://www.w3.org/2004/02/skos/core#>
PREFIX uom: <http://www.opengis.net/def/uom/OGC/1.0/>
"""
#: points -> LC1 -> crop type (code list) -> fields of that type in the point's grid cell.
JOIN_QUERY = PREFIXES + """SELECT ?point_id ?crop_type ?field WHERE {
  ?point a eeo:LucasPoint ; eeo:pointId ?point_id ; eeo:hasLandCover ?lc1 ;
         geo:hasGeometry ?point_geometry .
  ?point_geometry eeo:gridCell ?cell .
  ?lc1 skos:closeMatch ?crop_type .
  ?field eeo:hasCropType ?crop_type ; geo:hasGeometry ?field_geometry .
  ?field_geometry eeo:gridCell ?cell .
  FILTER(?point_id != "47001")
}"""
OPTIONAL_QUERY = PREFIXES + """SELECT ?point_id ?lc1 ?label WHERE {
  ?point eeo:pointId ?point_id ; eeo:hasLandCover ?lc1 .
  OPTIONAL { ?lc1 skos:closeMatch ?crop_type . ?crop_type skos:prefLabel ?label
             FILTER(langMatches(lang(?label), "en") || lang(?label) = "") }
} ORDER BY ?point_id ?label"""
DISTANCE_QUERY = PREFIXES + """SELECT DISTINCT ?point_id ?field WHERE {
  ?point eeo:pointId ?point_id ; geo:hasGeometry/geo:asWKT ?point_wkt .
  ?field eeo:hasCropType ?crop_type ; geo:hasGeometry ?g . ?g geo:asWKT ?field_wkt .
  FILTER(geof:distance(?point_wkt, ?field_wkt, uom:metre) < 50)
}"""


def _served(path: Path, calls: list[str]) -> SparqlServer:
    import pyoxigraph as ox

    server = SparqlServer(None)
    server.store.load(path=str(path), format=ox.RdfFormat.N_TRIPLES)
    answer = server.service.query

    def counted(sparql: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(sparql)
        return answer(sparql, *args, **kwargs)

    server.service.query = counted  # type: ignore[method-assign]
    return server.start()


@pytest.fixture
def three_endpoints(ld_cfg, products) -> Iterator[dict[str, Any]]:
    """Endpoints fields / lucas / codes on 127.0.0.1, plus the union store of their data."""
    import pyoxigraph as ox

    files = {
        "fields": Path(export_product(ld_cfg, "crop_field_instances", YEAR)["rdf"]),
        "lucas": Path(export_product(ld_cfg, "lucas_points", "2018")["rdf"]),
        "codes": Path(export_product(ld_cfg, "vocabulary", "current")["rdf"]),
    }
    union = ox.Store()
    for path in files.values():
        union.load(path=str(path), format=ox.RdfFormat.N_TRIPLES)
    calls: dict[str, list[str]] = {name: [] for name in files}
    servers = {name: _served(path, calls[name]) for name, path in files.items()}
    try:
        yield {
            "endpoints": {name: f"{s.url}/query" for name, s in servers.items()},
            "servers": servers,
            "calls": calls,
            "union": union,
            "cfg": ld_cfg,
        }
    finally:
        for server in servers.values():
            server.stop()


def _rows_on(store: Any, sparql: str) -> list[dict[str, Any]]:
    from tasks.linked_data.geosparql.engine import query
    from tasks.linked_data.query import term_value

    solutions = query(store, sparql, rewrite=False)
    variables = [v.value for v in solutions.variables]
    return [{n: term_value(row[n]) for n in variables} for row in solutions]


def _key(rows: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    return sorted(tuple(str(v) for v in row.values()) for row in rows)


@pytest.mark.integration
@pytest.mark.parametrize("query", [JOIN_QUERY, OPTIONAL_QUERY], ids=["bgp_filter", "optional"])
def test_same_rows_as_the_union_of_all_sources(three_endpoints, query):
    env = three_endpoints
    expected = _rows_on(env["union"], query)
    assert expected, "the test query must have answers"
    selected = run_source_selected_query(query, SourceSelector(env["endpoints"], mode="ask"))
    everywhere = run_source_selected_query(query, SourceSelector(env["endpoints"], mode="all"))
    assert _key(selected["rows"]) == _key(everywhere["rows"]) == _key(expected)
    if "ORDER BY" in query:
        assert [r["point_id"] for r in selected["rows"]] == [r["point_id"] for r in expected]
    # every pattern of the fields / code-list / LUCAS data goes only where it can be answered
    sources = {p["pattern"]: p["sources"] for p in selected["patterns"]}
    assert sources["?point <https://w3id.org/eeflow/ontology#pointId> ?point_id ."] == ["lucas"]
    assert sources[
        "?lc1 <http://www.w3.org/2004/02/skos/core#closeMatch> ?crop_type ."
    ] == ["codes"]
    assert selected["service_blocks"] < everywhere["service_blocks"]


@pytest.mark.integration
def test_selection_saves_requests_and_probes_are_cached(three_endpoints):
    env = three_endpoints
    clock = [1000.0]
    selector = SourceSelector(env["endpoints"], mode="ask", ttl_s=60, clock=lambda: clock[0])
    first = run_source_selected_query(JOIN_QUERY, selector)
    # 9 patterns of 7 shapes (hasGeometry and gridCell twice): one ASK per shape and endpoint
    assert len(first["patterns"]) == 9
    assert first["probe_requests"] == 7 * 3 and first["probe_cache_hits"] == 2 * 3
    asks = sum(c.startswith("ASK") for calls in env["calls"].values() for c in calls)
    assert asks == first["probe_requests"]

    for calls in env["calls"].values():
        calls.clear()
    second = run_source_selected_query(JOIN_QUERY, selector)
    assert second["probe_requests"] == 0 and second["probe_cache_hits"] == 9 * 3
    warm = {name: len(calls) for name, calls in env["calls"].items()}
    assert _key(second["rows"]) == _key(first["rows"])

    for calls in env["calls"].values():
        calls.clear()
    run_source_selected_query(JOIN_QUERY, SourceSelector(env["endpoints"], mode="all"))
    every = {name: len(calls) for name, calls in env["calls"].items()}
    assert sum(warm.values()) < sum(every.values())
    assert warm["codes"] < every["codes"]  # the code list is asked only for skos:closeMatch

    clock[0] += 61  # the TTL is over: probed again
    third = run_source_selected_query(JOIN_QUERY, selector)
    assert third["probe_requests"] == 7 * 3


@pytest.mark.integration
def test_void_description_replaces_ask_probes(three_endpoints):
    """An endpoint publishing VoID partitions is asked once for them, never with ASK."""
    env = three_endpoints
    codes = env["servers"]["codes"].store
    void = "http://rdfs.org/ns/void#"
    codes.update(
        f"""INSERT {{ <urn:codes> a <{void}Dataset> ;
                       <{void}propertyPartition> [ <{void}property> ?p ] .
                     <urn:codes> <{void}classPartition> [ <{void}class> ?c ] }}
            WHERE {{ {{ SELECT DISTINCT ?p WHERE {{ ?s ?p ?o }} }}
                     OPTIONAL {{ SELECT DISTINCT ?c WHERE {{ ?s a ?c }} }} }}"""
    )
    env["calls"]["codes"].clear()
    selector = SourceSelector(env["endpoints"], mode="void+ask")
    result = run_source_selected_query(JOIN_QUERY, selector)
    codes_calls = env["calls"]["codes"]
    assert not any(c.startswith("ASK") for c in codes_calls)
    assert sum("void#Dataset" in c for c in codes_calls) == 1
    assert _key(result["rows"]) == _key(_rows_on(env["union"], JOIN_QUERY))
    assert selector.stats.void_requests == 3  # one per endpoint; fields and lucas publish none


@pytest.mark.integration
def test_geosparql_filter_runs_locally_on_remote_rows(three_endpoints):
    env = three_endpoints
    query = DISTANCE_QUERY.replace("geo:hasGeometry/geo:asWKT ?point_wkt",
                                   "geo:hasGeometry ?pg . ?pg geo:asWKT ?point_wkt")
    result = run_source_selected_query(query, SourceSelector(env["endpoints"], mode="ask"))
    assert _key(result["rows"]) == _key(_rows_on(env["union"], query))


@pytest.mark.integration
def test_probe_cache_file_survives_runs(three_endpoints, tmp_path):
    env = three_endpoints
    cache = tmp_path / "sources.json"
    first = SourceSelector(env["endpoints"], mode="ask", cache_file=cache)
    run_source_selected_query(OPTIONAL_QUERY, first)
    assert cache.is_file()
    second = SourceSelector(env["endpoints"], mode="ask", cache_file=cache)
    result = run_source_selected_query(OPTIONAL_QUERY, second)
    assert result["probe_requests"] == 0


@pytest.mark.integration
def test_run_federated_file_with_config(three_endpoints, tmp_path):
    env = three_endpoints
    cfg = LinkedDataConfig.model_validate(
        {**env["cfg"].model_dump(), "federation": {"endpoints": env["endpoints"]}}
    )
    path = tmp_path / "points_of_crop.rq"
    path.write_text(
        "# @param crop_type concept:crop_type\n"
        + PREFIXES
        + "SELECT ?point_id WHERE { ?point eeo:pointId ?point_id ; eeo:hasLandCover ?lc1 . "
        "?lc1 skos:closeMatch ?crop_type } ORDER BY ?point_id"
    )
    result = run_federated_file(cfg, str(path), {"crop_type": "maize"})
    expected = _rows_on(env["union"], path.read_text().replace(
        "WHERE {", "WHERE { VALUES ?crop_type { <https://w3id.org/eeflow/data/concept/crop_type/"
        "maize> }", 1))
    assert result["rows"] == expected and result["count"] > 0
    assert (cfg.resolved_root() / cfg.federation.probe_cache).is_file()


def test_patterns_are_cached_by_shape():
    from rdflib import URIRef, Variable

    a = (Variable("x"), URIRef("urn:p"), Variable("y"))
    b = (Variable("s"), URIRef("urn:p"), Variable("o"))
    loop = (Variable("s"), URIRef("urn:p"), Variable("s"))
    assert pattern_key(a) == pattern_key(b) == "?v0 <urn:p> ?v1"
    assert pattern_key(loop) == "?v0 <urn:p> ?v0"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT * WHERE { GRAPH ?g { ?s ?p ?o } }", "GRAPH is not supported"),
        ("SELECT * WHERE { SERVICE <http://x/q> { ?s ?p ?o } }", "SERVICE"),
        ("SELECT * WHERE { ?s <urn:a>/<urn:b> ?o }", "property paths"),
        ("SELECT (COUNT(?s) AS ?n) WHERE { ?s ?p ?o }", "aggregates"),
        ("ASK { ?s ?p ?o }", "ASK queries are not supported"),
        ("SELECT * FROM <urn:g> WHERE { ?s ?p ?o }", "FROM"),
        ("SELECT * WHERE { { SELECT ?s WHERE { ?s ?p ?o } } }", "sub-queries"),
        ("SELECT * WHERE { ?s ?p }", "syntax error"),
    ],
)
def test_unsupported_queries_are_refused_before_any_request(query, message):
    selector = SourceSelector({"nowhere": f"http://127.0.0.1:{free_port()}/query"}, mode="all")
    with pytest.raises(FederationError, match=message):
        run_source_selected_query(query, selector)


def test_unreachable_endpoint_is_named():
    url = f"http://127.0.0.1:{free_port()}/query"
    selector = SourceSelector({"gone": url}, mode="ask", timeout_s=2)
    with pytest.raises(EndpointUnavailableError, match=r"'gone' \(http://127.0.0.1:\d+/query\)"):
        run_source_selected_query("SELECT * WHERE { ?s ?p ?o }", selector)


def test_endpoints_outside_the_configuration_are_refused(ld_cfg):
    endpoints = {"lucas": "http://127.0.0.1:7879/query"}
    assert resolve_endpoint("lucas", endpoints) == "http://127.0.0.1:7879/query"
    assert resolve_endpoint("http://127.0.0.1:7879/query/", endpoints) == endpoints["lucas"]
    cfg = LinkedDataConfig.model_validate(
        {**ld_cfg.model_dump(), "federation": {"endpoints": endpoints}}
    )
    with pytest.raises(FederationError, match=r"'http://evil.example/sparql' is not configured.*"
                       r"lucas=http://127.0.0.1:7879/query.*add it there"):
        run_federated_query(cfg, "http://evil.example/sparql")
    with pytest.raises(FederationError, match="no federation endpoints configured"):
        SourceSelector({})


@pytest.mark.integration
def test_cli_federate_query_and_refusals(three_endpoints, tmp_path):
    import json

    import yaml
    from typer.testing import CliRunner

    from tasks.linked_data.cli import app

    env = three_endpoints
    config = tmp_path / "linked_data.yaml"
    config.write_text(yaml.safe_dump({
        "use_case": "linked_data", "data_root": env["cfg"].data_root,
        "federation": {"endpoints": env["endpoints"], "source_selection": "ask"},
    }))
    query = tmp_path / "optional.rq"
    query.write_text(OPTIONAL_QUERY)
    runner = CliRunner()
    result = runner.invoke(app, ["federate", "--query", str(query), "-c", str(config)])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert [r["point_id"] for r in answer["rows"]] == [
        r["point_id"] for r in _rows_on(env["union"], OPTIONAL_QUERY)
    ]
    assert "SERVICE" in answer["sparql"] and answer["service_blocks"] == 2

    refused = runner.invoke(
        app, ["federate", "--endpoint", "http://other-host:7878/query", "-c", str(config)]
    )
    assert refused.exit_code != 0
    assert "is not configured" in str(refused.exception or refused.output)
    both = runner.invoke(app, ["federate", "-c", str(config)])
    assert both.exit_code != 0 and "exactly one of --endpoint" in both.output
