"""P6: load throughput (triples/s) into the embedded store and into an Oxigraph server over HTTP.

Input: N-Triples of synthetic crop field instances exported with the fast path (bench/p5_export).
Measured in one run:
  embedded   EmbeddedStore.replace_graph (pyoxigraph bulk_load) of the full file, then a re-load
             (replace: same triple count, no duplicates); raw pyoxigraph bulk_load into a fresh
             store as the ceiling
  http       HttpStore.replace_graph, replace=drop_then_load: DROP + chunked (chunk_triples)
             parallel (parallel_requests) Graph Store POSTs with Oxigraph's no_transaction/lenient,
             to `oxigraph serve` on 127.0.0.1; the same with transactional chunks
  staging    replace=staging_move on a smaller file (chunks into a staging graph, then MOVE)
  http-1post baseline: the same server, one POST of a smaller file
CPU seconds are this process's time.process_time (the embedded store works in-process; over
HTTP the server's CPU is read from /proc/<pid>/stat); both are user + system time. Load average
recorded per row. Headline ratio: eeflow's embedded load / the store's own bulk loader (raw
pyoxigraph ``bulk_load`` of the same file, same run); goals: embedded >= 0.3 M triples/s, HTTP
>= 0.1 M triples/s (wall).
Run: .venv/bin/python bench/p6_load.py [--features 300000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import add_quick_flag, report  # noqa: E402

GRAPH = "https://w3id.org/eeflow/data/graph/food_security/crop_field_instances/bench"


def export_nt(folder: Path, n: int, out: Path) -> int:
    """Generate n fields and export them with the fast writer; return the triple count."""
    from p5_export import make_fields

    from tasks.linked_data.export import export_rows
    from tasks.linked_data.mapping import load_mapping
    from tasks.linked_data.terms import open_sink

    inputs = make_fields(folder, n)
    with out.open("wb", buffering=1 << 20) as fh:
        sink = open_sink(fh, "nt", "fast")
        stats = export_rows(load_mapping("crop_field_instances"), inputs, "2017-09_2018-08", sink,
                            base="https://w3id.org/eeflow/data/")
        sink.close()
    return stats.triples


def _server_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    import requests

    from tasks.config.linked_data import StoreConfig
    from tasks.linked_data.server import OxigraphServer
    from tasks.linked_data.store import EmbeddedStore, HttpStore

    parser = argparse.ArgumentParser()
    parser.add_argument("--features", type=int, default=300_000)
    parser.add_argument("--baseline-features", type=int, default=50_000)
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--staging-features", type=int, default=5_000)
    add_quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.features, args.baseline_features, args.staging_features = 5_000, 1_000, 500
        args.chunk = 10_000
    results = []
    with tempfile.TemporaryDirectory(prefix="p6-") as tmp:
        tmp_path = Path(tmp)
        big, small = tmp_path / "big.nt", tmp_path / "small.nt"
        n_big = export_nt(tmp_path / "big", args.features, big)
        n_small = export_nt(tmp_path / "small", args.baseline_features, small)
        tiny = tmp_path / "tiny.nt"
        n_tiny = export_nt(tmp_path / "tiny", args.staging_features, tiny)
        print(f"exported {n_big} + {n_small} triples", file=sys.stderr)

        import pyoxigraph as ox

        def record(label: str, size: int, seconds: float, cpu: float) -> None:
            results.append({"target": label, "triples": size, "seconds": round(seconds, 2),
                            "cpu_s": round(cpu, 2), "triples_per_s": round(size / seconds),
                            "triples_per_cpu_s": round(size / max(cpu, 1e-9)),
                            "loadavg_1m": round(os.getloadavg()[0], 2)})
            print(json.dumps(results[-1]), file=sys.stderr)

        raw = ox.Store(str(tmp_path / "raw"))
        started, cpu = time.perf_counter(), time.process_time()
        raw.bulk_load(path=str(big), format=ox.RdfFormat.N_TRIPLES, to_graph=ox.NamedNode(GRAPH))
        record("raw pyoxigraph bulk_load (ceiling)", n_big, time.perf_counter() - started,
               time.process_time() - cpu)
        del raw
        store = EmbeddedStore(tmp_path / "store")
        for label in ("embedded", "embedded-reload"):
            started, cpu = time.perf_counter(), time.process_time()
            size = store.replace_graph(GRAPH, big, "nt")
            record(label, size, time.perf_counter() - started, time.process_time() - cpu)
        started, cpu = time.perf_counter(), time.process_time()
        store.store.remove_graph(ox.NamedNode(GRAPH))
        record("embedded remove_graph (before: how a re-load cleared the graph)", size,
               time.perf_counter() - started, time.process_time() - cpu)
        store.close()

        with OxigraphServer(tmp_path / "server") as server:
            pid = server.process.pid  # type: ignore[union-attr]
            for bulk, graph in ((True, GRAPH), (False, GRAPH + "/tx")):
                cfg = StoreConfig(mode="http", url=server.url, chunk_triples=args.chunk,
                                  parallel_requests=args.parallel, timeout_s=600,
                                  oxigraph_bulk=bulk)
                http = HttpStore(cfg)
                started, cpu, server_cpu = time.perf_counter(), time.process_time(), \
                    _server_cpu_s(pid)
                size = http.replace_graph(graph, big, "nt")
                record(f"http drop_then_load chunk={args.chunk} parallel={args.parallel} "
                       f"{'no_transaction' if bulk else 'transactional'}", size,
                       time.perf_counter() - started,
                       time.process_time() - cpu + _server_cpu_s(pid) - server_cpu)
                if bulk:  # re-load: batched per-predicate clear of the old graph, then the load
                    started, cpu, server_cpu = time.perf_counter(), time.process_time(), \
                        _server_cpu_s(pid)
                    again = http.replace_graph(graph, big, "nt")
                    assert again == size, (again, size)
                    record("http re-load (batched clear + drop_then_load)", again,
                           time.perf_counter() - started,
                           time.process_time() - cpu + _server_cpu_s(pid) - server_cpu)
                http.close()
            staging_cfg = StoreConfig(mode="http", url=server.url, chunk_triples=args.chunk,
                                      parallel_requests=args.parallel, timeout_s=600,
                                      replace="staging_move")
            http = HttpStore(staging_cfg)
            for label in ("http staging_move (first load)", "http staging_move (re-load)"):
                started, cpu, server_cpu = time.perf_counter(), time.process_time(), \
                    _server_cpu_s(pid)
                size = http.replace_graph(GRAPH + "/staged", tiny, "nt")
                record(label, size, time.perf_counter() - started,
                       time.process_time() - cpu + _server_cpu_s(pid) - server_cpu)
            assert size == n_tiny
            started, server_cpu = time.perf_counter(), _server_cpu_s(pid)
            response = requests.post(f"{server.url}/store", params={"graph": GRAPH + "/one"},
                                     data=small.read_bytes(), timeout=600,
                                     headers={"Content-Type": "application/n-triples"})
            response.raise_for_status()
            seconds = time.perf_counter() - started
            record("http one POST (baseline)", n_small, seconds, _server_cpu_s(pid) - server_cpu)
            http.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"results": results, "client_peak_rss_mb": round(rss)}, indent=1))
    rate = {str(r["target"]): float(r["triples_per_s"]) for r in results}  # type: ignore[arg-type]
    raw_rate = rate["raw pyoxigraph bulk_load (ceiling)"]
    http_rate = next(v for k, v in rate.items() if k.startswith("http drop_then_load")
                     and k.endswith("no_transaction"))
    met = rate["embedded"] >= 300_000 and http_rate >= 100_000
    report("p6_load", rate["embedded"] / raw_rate,
           "embedded >= 0.3 M triples/s and HTTP >= 0.1 M triples/s (wall)", met,
           {"results": results, "client_peak_rss_mb": round(rss), "features": args.features},
           baseline="the store's own bulk loader (raw pyoxigraph bulk_load, same file)",
           quick=args.quick)


if __name__ == "__main__":
    main()
