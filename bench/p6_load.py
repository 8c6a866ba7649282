"""P6: load throughput (triples/s) into the embedded store and into an Oxigraph server over HTTP.

Input: N-Triples of synthetic crop field instances exported with the fast path (bench/p5_export).
Measured in one run:
  embedded   EmbeddedStore.replace_graph (pyoxigraph bulk_load) of the full file, then a re-load
             (replace: same triple count, no duplicates)
  http       HttpStore.replace_graph: DROP + chunked (chunk_triples) parallel (parallel_requests)
             Graph Store Protocol POSTs to `oxigraph serve` on 127.0.0.1
  http-1post baseline: the same server, one POST of a smaller file
Run: .venv/bin/python bench/p6_load.py [--features 300000]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

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
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="p6-") as tmp:
        tmp_path = Path(tmp)
        big, small = tmp_path / "big.nt", tmp_path / "small.nt"
        n_big = export_nt(tmp_path / "big", args.features, big)
        n_small = export_nt(tmp_path / "small", args.baseline_features, small)
        print(f"exported {n_big} + {n_small} triples", file=sys.stderr)

        store = EmbeddedStore(tmp_path / "store")
        for label in ("embedded", "embedded-reload"):
            started = time.perf_counter()
            size = store.replace_graph(GRAPH, big, "nt")
            seconds = time.perf_counter() - started
            results.append({"target": label, "triples": size, "seconds": round(seconds, 2),
                            "triples_per_s": round(size / seconds)})
            print(json.dumps(results[-1]), file=sys.stderr)
        store.close()

        with OxigraphServer(tmp_path / "server") as server:
            cfg = StoreConfig(mode="http", url=server.url, chunk_triples=args.chunk,
                              parallel_requests=args.parallel, timeout_s=600)
            http = HttpStore(cfg)
            started = time.perf_counter()
            size = http.replace_graph(GRAPH, big, "nt")
            seconds = time.perf_counter() - started
            results.append({"target": f"http chunk={args.chunk} parallel={args.parallel}",
                            "triples": size, "seconds": round(seconds, 2),
                            "triples_per_s": round(size / seconds)})
            print(json.dumps(results[-1]), file=sys.stderr)
            started = time.perf_counter()
            response = requests.post(f"{server.url}/store", params={"graph": GRAPH + "/one"},
                                     data=small.read_bytes(), timeout=600,
                                     headers={"Content-Type": "application/n-triples"})
            response.raise_for_status()
            seconds = time.perf_counter() - started
            results.append({"target": "http one POST (baseline)", "triples": n_small,
                            "seconds": round(seconds, 2),
                            "triples_per_s": round(n_small / seconds)})
            print(json.dumps(results[-1]), file=sys.stderr)
            http.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"results": results, "client_peak_rss_mb": round(rss)}, indent=1))


if __name__ == "__main__":
    main()
