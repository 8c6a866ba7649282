"""Requests saved by source selection: three local SPARQL endpoints, federated queries.

Endpoints (eeflow's SparqlServer, in-memory, 127.0.0.1, stopped at the end): ``fields`` (N
synthetic crop field instances, bench/p5_export), ``lucas`` (M LUCAS points near them,
bench/queries.py) and ``codes`` (the vocabulary graph: code lists + LC1 -> crop SKOS mapping).
Every request an endpoint receives is counted at the endpoint. For each query and mode:

* ``all``: no source selection, every triple pattern goes to every endpoint (UNION of SERVICE
  blocks per pattern), no probes: what a federation without source selection sends;
* ``ask`` cold: ASK probes (one per pattern shape and endpoint) + the SERVICE requests;
* ``ask`` warm: the same query again, probes answered by the cache (TTL);
* ``void+ask``: each endpoint publishes VoID property / class partitions: one VoID request per
  endpoint, no ASK.

Every mode's rows must equal the query's rows on one store holding the union of the three
datasets. Headline ratio: requests without source selection / requests with ASK selection and a
warm cache, summed over the queries (the plain federation is the baseline; no goal, measured).
Run: .venv/bin/python bench/federation.py [--fields 20000 --points 500] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import add_quick_flag, report  # noqa: E402

PREFIXES = """PREFIX eeo: <https://w3id.org/eeflow/ontology#>
PREFIX geo: <http://www.opengis.net/ont/geosparql#>
PREFIX geof: <http://www.opengis.net/def/function/geosparql/>
PREFIX skos: <http://www.w3.org/2004/02/skos/core#>
PREFIX uom: <http://www.opengis.net/def/uom/OGC/1.0/>
"""
QUERIES = {
    "points of one LC1 class (1 source)": """SELECT ?point_id WHERE {
  ?point eeo:pointId ?point_id ; eeo:hasLandCover ?lc1 .
  FILTER(STRENDS(STR(?lc1), "/B16")) }""",
    "points + crop label (OPTIONAL, 2 sources)": """SELECT ?point_id ?label WHERE {
  ?point eeo:pointId ?point_id ; eeo:hasLandCover ?lc1 .
  OPTIONAL { ?lc1 skos:closeMatch ?crop_type . ?crop_type skos:prefLabel ?label } }""",
    "points -> crop type -> fields in the same grid cell (3 sources)": """SELECT ?point_id ?field
WHERE {
  ?point a eeo:LucasPoint ; eeo:pointId ?point_id ; eeo:hasLandCover ?lc1 ;
         geo:hasGeometry ?point_geometry .
  ?point_geometry eeo:gridCell ?cell .
  ?lc1 skos:closeMatch ?crop_type .
  ?field eeo:hasCropType ?crop_type ; geo:hasGeometry ?field_geometry .
  ?field_geometry eeo:gridCell ?cell . }""",
    "... + geof:distance < 10 m (FILTER evaluated locally)": """SELECT ?point_id ?field WHERE {
  ?point a eeo:LucasPoint ; eeo:pointId ?point_id ; eeo:hasLandCover ?lc1 ;
         geo:hasGeometry ?point_geometry .
  ?point_geometry eeo:gridCell ?cell ; geo:asWKT ?point_wkt .
  ?lc1 skos:closeMatch ?crop_type .
  ?field eeo:hasCropType ?crop_type ; geo:hasGeometry ?field_geometry .
  ?field_geometry eeo:gridCell ?cell ; geo:asWKT ?field_wkt .
  FILTER(geof:distance(?point_wkt, ?field_wkt, uom:metre) < 10) }""",
}
VOID = "http://rdfs.org/ns/void#"
VOID_UPDATE = f"""INSERT {{ <urn:eeflow:dataset> a <{VOID}Dataset> ;
    <{VOID}propertyPartition> [ <{VOID}property> ?p ] .
  <urn:eeflow:dataset> <{VOID}classPartition> [ <{VOID}class> ?c ] }}
WHERE {{ {{ SELECT DISTINCT ?p WHERE {{ ?s ?p ?o }} }}
         OPTIONAL {{ SELECT DISTINCT ?c WHERE {{ ?s a ?c }} }} }}"""


def serve(path: Path, counter: list[int]) -> Any:
    """An in-memory eeflow SPARQL server on 127.0.0.1 holding ``path``, counting its queries."""
    import pyoxigraph as ox

    from tasks.linked_data.server import SparqlServer

    server = SparqlServer(None)
    server.store.load(path=str(path), format=ox.RdfFormat.N_TRIPLES)
    answer = server.service.query

    def counted(sparql: str, *args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return answer(sparql, *args, **kwargs)

    server.service.query = counted  # type: ignore[method-assign]
    return server.start()


def rows_key(rows: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """Order-free comparable form of result rows."""
    return sorted(tuple(str(v) for v in row.values()) for row in rows)


def main() -> None:
    import pyoxigraph as ox
    from p5_export import make_fields
    from queries import write_lucas_points

    from tasks.config.linked_data import LinkedDataConfig
    from tasks.linked_data.export import export_product
    from tasks.linked_data.federation import run_source_selected_query
    from tasks.linked_data.geosparql.engine import query as geosparql_query
    from tasks.linked_data.query import term_value
    from tasks.linked_data.source_selection import SourceSelector

    parser = argparse.ArgumentParser()
    parser.add_argument("--fields", type=int, default=20_000)
    parser.add_argument("--points", type=int, default=500)
    add_quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.fields, args.points = 2_000, 100
    year = "2017-09_2018-08"
    with tempfile.TemporaryDirectory(prefix="federation-") as tmp:
        cfg = LinkedDataConfig(data_root=str(Path(tmp) / "data"))
        root = cfg.resolved_root()
        tiles = make_fields(root / "food_security" / "predict" / year / "T00", args.fields)
        lucas_dir = root / "lucas" / "points" / "2018"
        lucas_dir.mkdir(parents=True)
        write_lucas_points(lucas_dir / "lucas.csv", tiles[0], args.points)
        files = {
            "fields": Path(export_product(cfg, "crop_field_instances", year)["rdf"]),
            "lucas": Path(export_product(cfg, "lucas_points", "2018")["rdf"]),
            "codes": Path(export_product(cfg, "vocabulary", "current")["rdf"]),
        }
        union = ox.Store()
        for path in files.values():
            union.load(path=str(path), format=ox.RdfFormat.N_TRIPLES)
        triples = {name: sum(1 for _ in path.open()) for name, path in files.items()}
        print(f"endpoints: {triples} triples", file=sys.stderr)
        counters = {name: [0] for name in files}
        servers = {name: serve(path, counters[name]) for name, path in files.items()}
        endpoints = {name: f"{s.url}/query" for name, s in servers.items()}
        results = []
        try:
            for label, body in QUERIES.items():
                sparql = PREFIXES + body
                solutions = geosparql_query(union, sparql, rewrite=False)
                names = [v.value for v in solutions.variables]
                expected = rows_key([{n: term_value(r[n]) for n in names} for r in solutions])
                row: dict[str, Any] = {"query": label, "rows": len(expected)}
                ask = SourceSelector(endpoints, mode="ask", ttl_s=300)
                for mode, selector in [("all", SourceSelector(endpoints, mode="all")),
                                       ("ask_cold", ask), ("ask_warm", ask),
                                       ("void", SourceSelector(endpoints, mode="void+ask"))]:
                    if mode == "void":
                        for server in servers.values():
                            server.store.update(VOID_UPDATE)
                    for counter in counters.values():
                        counter[0] = 0
                    started = time.perf_counter()
                    result = run_source_selected_query(sparql, selector)
                    seconds = time.perf_counter() - started
                    if mode == "void":
                        for server in servers.values():
                            server.store.update(
                                "DELETE WHERE { <urn:eeflow:dataset> ?p ?part . ?part ?q ?o }; "
                                "DELETE WHERE { <urn:eeflow:dataset> ?p ?o }")
                    if rows_key(result["rows"]) != expected:
                        raise AssertionError(f"{label} ({mode}): rows differ from the union")
                    requests = {n: c[0] for n, c in counters.items()}
                    row[mode] = {"requests": sum(requests.values()), "per_endpoint": requests,
                                 "probes": result["probe_requests"],
                                 "service_blocks": result["service_blocks"],
                                 "seconds": round(seconds, 3)}
                row["patterns"] = len(result["patterns"])
                results.append(row)
                print(json.dumps(row), file=sys.stderr)
        finally:
            for server in servers.values():
                server.stop()
    total_all = sum(r["all"]["requests"] for r in results)
    total_warm = sum(r["ask_warm"]["requests"] for r in results)
    report("federation", total_all / max(total_warm, 1), "none (measured)", None,
           {"triples": triples, "results": results, "fields": args.fields,
            "points": args.points},
           baseline="every pattern sent to every endpoint (no source selection)",
           quick=args.quick)
    print("| query | patterns | rows | all endpoints: requests (s) | ASK, cold cache | "
          "ASK, warm cache | VoID | saved (warm vs all) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        def cell(mode: str, r: dict[str, Any] = r) -> str:
            return f"{r[mode]['requests']} ({r[mode]['seconds']:.2f})"
        saved = 1 - r["ask_warm"]["requests"] / r["all"]["requests"]
        print(f"| {r['query']} | {r['patterns']} | {r['rows']} | {cell('all')} | "
              f"{cell('ask_cold')} | {cell('ask_warm')} | {cell('void')} | {saved:.0%} |")


if __name__ == "__main__":
    main()
