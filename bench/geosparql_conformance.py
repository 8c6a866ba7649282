"""GeoSPARQL 1.0 conformance per class: eeflow vs plain Oxigraph, in the same run.

Runs the standard's 30 requirements (tasks/linked_data/geosparql_conformance.py: one entry per
requirement, WKT / GML / mixed variants as checks) on four targets:

* eeflow embedded: pyoxigraph + eeflow's geof: functions, query rewrite, entailment at load;
* eeflow rdf serve: the same behind eeflow's SPARQL 1.1 Protocol server (127.0.0.1);
* plain pyoxigraph (embedded, no custom functions, no entailment, no rewrite) - the baseline;
* plain ``oxigraph serve`` (the binary of the ``oxigraph`` package, --union-default-graph).

A requirement passes when all its checks pass; the score weighs requirements equally. Also times
the price of eeflow's Python ``geof:sfIntersects`` (it replaces Oxigraph's built-in, which reads
CRS84 WKT only) on a scan of N polygons, built-in vs eeflow, same store, same run.

Headline ratio: requirements passed by eeflow (the worse of its two targets) / by plain
pyoxigraph (the baseline: the store a user would run without eeflow); goal: every class and
>= 90 % of the requirements on both eeflow targets.
Writes bench/results/geosparql_conformance.json and prints the Markdown table for RESULTS.md.
Run: ``.venv/bin/python bench/geosparql_conformance.py [--scan 20000] [--quick]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_quick_flag, report  # noqa: E402

HERE = Path(__file__).resolve().parent


def conformance_runs() -> list[dict]:
    from tasks.linked_data import geosparql_conformance as c

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for target, stop in c.make_targets(Path(tmp)):
            started = time.perf_counter()
            try:
                results = c.run_suite(target)
            finally:
                stop()
            seconds = time.perf_counter() - started
            table = c.class_table(results)
            checks = {
                klass: (
                    sum(r.passed for req in c.requirements() if req.klass == klass
                        for r in results[req.number]),
                    sum(len(results[req.number]) for req in c.requirements()
                        if req.klass == klass),
                )
                for klass in c.CLASSES
            }
            failed = [
                {"requirement": r.requirement, "check": r.check, "error": r.error}
                for rs in results.values() for r in rs if not r.passed
            ]
            runs.append({"target": target.name, "classes": table, "checks": checks,
                         "seconds": round(seconds, 2), "failed": failed})
    return runs


def scan_cost(n: int) -> dict:
    """Time ``FILTER(geof:sfIntersects(?w, region))`` over n polygons: built-in vs eeflow."""
    import numpy as np
    import pyoxigraph as ox

    from tasks.linked_data.geosparql import engine

    rng = np.random.default_rng(7)
    geo = "http://www.opengis.net/ont/geosparql#"
    store = ox.Store()
    quads = []
    for i, (x, y) in enumerate(rng.uniform(0, 10, size=(n, 2))):
        wkt = (f"<http://www.opengis.net/def/crs/OGC/1.3/CRS84> POLYGON(({x:.5f} {y:.5f}, "
               f"{x + 0.01:.5f} {y:.5f}, {x + 0.01:.5f} {y + 0.01:.5f}, {x:.5f} {y:.5f}))")
        quads.append(ox.Quad(ox.NamedNode(f"http://ex/g{i}"), ox.NamedNode(geo + "asWKT"),
                             ox.Literal(wkt, datatype=ox.NamedNode(geo + "wktLiteral"))))
    store.extend(quads)
    query = (
        f"SELECT (COUNT(*) AS ?n) WHERE {{ ?g <{geo}asWKT> ?w FILTER(<http://www.opengis.net/"
        f"def/function/geosparql/sfIntersects>(?w, \"POLYGON((2 2, 4 2, 4 4, 2 4, 2 2))\"^^<{geo}"
        "wktLiteral>)) }"
    )
    timings: dict[str, list[float]] = {"built-in": [], "eeflow": []}
    counts = {}
    for _ in range(3):
        for name in timings:
            started = time.perf_counter()
            if name == "eeflow":
                rows = list(engine.query(store, query))
            else:
                rows = list(store.query(query))
            timings[name].append(time.perf_counter() - started)
            counts[name] = int(rows[0]["n"].value)
    return {"polygons": n, "matches": counts,
            "seconds": {k: round(min(v), 3) for k, v in timings.items()}}


def markdown(runs: list[dict], scan: dict) -> str:
    from tasks.linked_data.geosparql_conformance import CLASSES

    lines = ["| conformance class | " + " | ".join(r["target"] for r in runs) + " |",
             "|---|" + "---|" * len(runs)]
    for klass in CLASSES:
        cells = []
        for run in runs:
            done, total = run["classes"][klass]
            ok, checks = run["checks"][klass]
            cells.append(f"{done}/{total} ({ok}/{checks} checks)")
        lines.append(f"| {klass} | " + " | ".join(cells) + " |")
    totals = []
    for run in runs:
        done = sum(d for d, _ in run["classes"].values())
        total = sum(t for _, t in run["classes"].values())
        classes = sum(d == t for d, t in run["classes"].values())
        totals.append(f"**{done}/{total} = {100 * done / total:.0f} %**, {classes}/6 classes")
    lines.append("| requirements (equal weights) | " + " | ".join(totals) + " |")
    lines.append("")
    lines.append(
        f"Scan of {scan['polygons']:,} polygons with `geof:sfIntersects`: built-in "
        f"{scan['seconds']['built-in']} s, eeflow {scan['seconds']['eeflow']} s (matches "
        f"{scan['matches']['built-in']} / {scan['matches']['eeflow']})."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scan", type=int, default=20_000, help="polygons in the scan timing")
    add_quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.scan = 2_000
    runs = conformance_runs()
    scan = scan_cost(args.scan)
    print(markdown(runs, scan))
    for run in runs:
        print(f"{run['target']}: {run['seconds']} s, {len(run['failed'])} failed checks")

    def passed(run: dict) -> tuple[int, int, bool]:
        done = sum(d for d, _ in run["classes"].values())
        total = sum(t for _, t in run["classes"].values())
        return done, total, all(d == t for d, t in run["classes"].values())

    eeflow = [passed(r) for r in runs if r["target"].lower().startswith("eeflow")]
    plain = [passed(r) for r in runs if not r["target"].lower().startswith("eeflow")]
    worst = min(eeflow, key=lambda p: p[0] / p[1])
    best_plain = max(p[0] for p in plain)
    report("geosparql_conformance", worst[0] / max(best_plain, 1),
           "every class and >= 90 % of requirements (eeflow, embedded and served)",
           all(full and done >= 0.9 * total for done, total, full in eeflow),
           {"runs": runs, "scan": scan},
           baseline="plain Oxigraph (requirements passed, the better of embedded / served)",
           quick=args.quick)


if __name__ == "__main__":
    main()
