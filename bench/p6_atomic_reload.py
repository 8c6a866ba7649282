"""P6 atomic re-load: first load vs re-load of the same graph (embedded store and HTTP server).

Input: N-Triples of synthetic crop field instances exported with the fast writer (bench/p5_export),
``--features`` fields (about 9.5 triples each), and a second export whose field ids are shifted
by ``--changed`` of the features (the part of a re-run whose content changed).
Measured in one run, wall seconds and triples/s (file triples / wall s):
  first      replace_graph into an absent graph (checked parse + bulk_load / chunked POSTs)
  same       re-load of the identical file (checked parse + diff + nothing to apply)
  changed    re-load of the changed file (diff applied in one DELETE DATA ; INSERT DATA update)
  baseline   the previous, non-atomic embedded re-load (batched clear, then bulk_load)
The HTTP rows use `oxigraph serve` on 127.0.0.1 with atomic_max_triples=0 (the chunked path).
Headline ratio: the slowest re-load (same file or ``--changed`` changed, embedded and HTTP) / the
first load of the same store (the store's own bulk loader), goal >= 0.5x; the all-changed case and
the non-atomic baseline are extra rows. CPU = user + system of this process (the embedded store).
Run: .venv/bin/python bench/p6_atomic_reload.py [--features 40000 --changed 0.1] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import Timer, add_quick_flag, report  # noqa: E402

GRAPH = "https://w3id.org/eeflow/data/graph/food_security/crop_field_instances/bench"


def _shift(src: Path, dst: Path, share: float, n_features: int) -> None:
    """Copy ``src`` with the subjects of the first ``share`` of features renamed (changed rows)."""
    import re

    limit = int(share * n_features)
    pattern = re.compile(rb"/(\d+)>")

    def rename(match: re.Match[bytes]) -> bytes:
        number = int(match.group(1))
        return b"/%d>" % (number + 10_000_000) if number < limit else match.group(0)

    with src.open("rb") as fin, dst.open("wb") as fout:
        for line in fin:
            fout.write(pattern.sub(rename, line))


def main() -> None:
    """Run the three cases on both stores and print one JSON line per case."""
    from p6_load import export_nt

    from tasks.config.linked_data import StoreConfig
    from tasks.linked_data.server import OxigraphServer
    from tasks.linked_data.store import EmbeddedStore, HttpStore, count_lines_up_to

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", type=int, default=40_000)
    parser.add_argument("--changed", type=float, default=0.1)
    add_quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.features = 3_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        first = folder / "first.nt"
        export_nt(folder, args.features, first)
        changed = folder / "changed.nt"
        _shift(first, changed, args.changed, args.features)
        triples = count_lines_up_to(first, 1 << 62)
        rows = []

        def timed(label: str, action: object) -> None:
            load = os.getloadavg()[0]
            with Timer() as timer:
                size = action()  # type: ignore[operator]
            seconds = timer.wall_s
            rows.append({"case": label, "triples": triples, "graph_size": size,
                         "seconds": round(seconds, 2), "triples_per_s": round(triples / seconds),
                         "cpu_s": round(timer.cpu_s, 2),
                         "triples_per_cpu_s": round(timer.per_cpu_s(triples)),
                         "load_avg": round(load, 2)})
            print(json.dumps(rows[-1]), flush=True)

        store = EmbeddedStore(folder / "store")
        timed("embedded first load", lambda: store.replace_graph(GRAPH, first, "nt"))
        timed("embedded re-load, same file", lambda: store.replace_graph(GRAPH, first, "nt"))
        timed(f"embedded re-load, {args.changed:.0%} of features changed",
              lambda: store.replace_graph(GRAPH, changed, "nt"))
        def old_way() -> int:  # baseline: what a re-load did before (not atomic)
            import pyoxigraph as ox

            store.clear_graph(GRAPH)
            store.store.bulk_load(path=str(first), format=ox.RdfFormat.N_TRIPLES,
                                  to_graph=ox.NamedNode(GRAPH))
            store.store.flush()
            return store.graph_size(GRAPH)

        timed("embedded re-load, baseline: batched clear + bulk_load (not atomic)", old_way)
        renamed = folder / "renamed.nt"
        renamed.write_bytes(first.read_bytes().replace(b"/data/", b"/data2/"))
        store.replace_graph(GRAPH, renamed, "nt")
        timed("embedded re-load, every triple changed",
              lambda: store.replace_graph(GRAPH, first, "nt"))
        store.close()
        with OxigraphServer(folder / "server") as server:
            http = HttpStore(StoreConfig(mode="http", url=server.url, atomic_max_triples=0,
                                         chunk_triples=50_000))
            timed("http first load", lambda: http.replace_graph(GRAPH, first, "nt"))
            timed("http re-load, same file", lambda: http.replace_graph(GRAPH, first, "nt"))
            timed(f"http re-load, {args.changed:.0%} of features changed",
                  lambda: http.replace_graph(GRAPH, changed, "nt"))
            http.close()
        for row in rows:
            first_rate = rows[0 if row["case"].startswith("embedded") else 5]["triples_per_s"]
            row["vs_first_load"] = round(row["triples_per_s"] / first_rate, 2)
        print(json.dumps(rows, indent=1))
    headline = [r["vs_first_load"] for r in rows
                if "same file" in r["case"] or "of features changed" in r["case"]]
    ratio = min(headline)
    report("p6_atomic_reload", ratio, ">= 0.5x a first load (slowest re-load: same file / "
           f"{args.changed:.0%} changed, embedded and HTTP)", ratio >= 0.5,
           {"rows": rows, "features": args.features, "changed": args.changed},
           baseline="first load of the same file into the same store (its bulk loader)",
           quick=args.quick)


if __name__ == "__main__":
    main()
