"""P6 atomic re-load: first load vs re-loads of the same graph (embedded store and HTTP server).

Input: N-Triples of synthetic crop field instances exported with the fast writer (bench/p5_export),
``--features`` fields (about 9.5 triples each; 200,000 give the issue's 1.9 M triples), a second
export whose field ids are shifted by ``--changed`` of the features (the part of a re-run whose
content changed), and a third in which every subject IRI differs (every triple changed).
Measured in one run, wall seconds and triples/s (file triples / wall s), in this order:
  first        replace_graph into an absent graph (checked parse + bulk_load / chunked POSTs)
  same         re-load of the identical file (checked parse + diff + nothing to apply)
  changed      re-load of the ``--changed`` file (small diff: one DELETE DATA ; INSERT DATA)
  all changed  re-load of the file whose every triple differs: embedded = the store rebuilt with
               bulk loads in a staging folder and swapped in (``reload="auto"`` picks it); HTTP on
               eeflow's server = one Graph Store PUT, which the server re-loads the same way
               (tasks/linked_data/server.py); HTTP on plain `oxigraph serve` = the difference in
               one SPARQL update (one transaction), or one PUT above its 128 MiB update limit
  baseline     embedded: the old non-atomic re-load (batched clear, then bulk_load); HTTP: a plain
               chunked POST of the file into an empty graph (no parse, no check; run last)
HTTP loads keep the load record in the store and the snapshot in the run's temporary folder
(tasks/linked_data/load_record.py): the same-file re-load sends nothing, the changed ones are
diffed against the snapshot (no GET); each HTTP row names the path taken. ``--no-snapshot`` adds
a 10 % re-load of the plain-POST graph (no record, no snapshot: read back by a GET, as before).
Extra rows: ``--inplace`` the embedded all-changed re-load forced through the one-update diff;
``--put`` the HTTP all-changed re-load as one Graph Store PUT.
HTTP servers (``--servers``, default ``eeflow``): ``eeflow`` = `eeflow rdf serve` (the triple
store docker-compose.yaml deploys; GeoSPARQL entailment of every write included), ``oxigraph`` =
plain `oxigraph serve` (extra rows); each in its own process on 127.0.0.1, HttpStore with
atomic_max_triples=0 (never the small-file PUT path).
Headline ratio: the slowest re-load (same, changed, all changed) on the stores eeflow deploys
(embedded and eeflow's server) / the first load into the same store, goal >= 0.5x; plain
`oxigraph serve` rows are reported beside it. CPU = user + system of this process (the embedded
store, the HTTP client); the HTTP server's CPU is read from /proc/<pid>/stat.
Run: .venv/bin/python bench/p6_atomic_reload.py [--features 200000 --changed 0.1] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

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


def _server_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_peak_rss_mb(pid: int) -> float:
    """The server process's peak resident set so far (``VmHWM``), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", type=int, default=200_000)
    parser.add_argument("--changed", type=float, default=0.1)
    parser.add_argument("--inplace", action="store_true",
                        help="extra row: embedded all-changed re-load forced through the diff")
    parser.add_argument("--put", action="store_true",
                        help="extra row: HTTP all-changed re-load as one Graph Store PUT")
    parser.add_argument("--no-http", action="store_true", help="embedded rows only")
    parser.add_argument("--no-embedded", action="store_true", help="HTTP rows only")
    parser.add_argument("--no-all-changed", action="store_true",
                        help="HTTP: leave out the every-triple-changed re-load (a PUT at 1.9 M)")
    parser.add_argument("--no-snapshot", action="store_true",
                        help="extra HTTP row: the 10 %% re-load without a snapshot (GET + diff)")
    parser.add_argument("--servers", default="eeflow",
                        help="comma-separated HTTP servers: eeflow (headline), oxigraph (extra)")
    add_quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.features = 3_000
    return args


def _embedded_rows(args: argparse.Namespace, timed: Any, first: Path, changed: Path,
                   renamed: Path, location: Path) -> None:
    """The embedded store's cases, in order (see the module doc)."""
    from tasks.linked_data.store import EmbeddedStore

    share = f"{args.changed:.0%} of features changed"
    store = EmbeddedStore(location)
    timed("embedded", "first load", lambda: store.replace_graph(GRAPH, first, "nt"))
    timed("embedded", "re-load, same file", lambda: store.replace_graph(GRAPH, first, "nt"))
    timed("embedded", f"re-load, {share}", lambda: store.replace_graph(GRAPH, changed, "nt"))
    timed("embedded", "re-load, every triple changed (rebuild + swap)",
          lambda: store.replace_graph(GRAPH, renamed, "nt"))
    if args.inplace:
        store.reload = "diff"
        timed("embedded", "extra: every triple changed, forced one-update diff",
              lambda: store.replace_graph(GRAPH, changed, "nt"))
        store.reload = "auto"

    def old_way() -> int:  # baseline: what a re-load did before (not atomic)
        import pyoxigraph as ox

        store.clear_graph(GRAPH)
        store.store.bulk_load(path=str(first), format=ox.RdfFormat.N_TRIPLES,
                              to_graph=ox.NamedNode(GRAPH))
        store.store.flush()
        return store.graph_size(GRAPH)

    timed("embedded", "baseline: batched clear + bulk_load (not atomic)", old_way)
    store.close()


def _http_rows(args: argparse.Namespace, timed: Any, http: Any, first: Path, changed: Path,
               renamed: Path, share: str, store: str) -> None:
    """The HTTP server's cases, in order (see the module doc)."""
    timed(store, "first load", lambda: http.replace_graph(GRAPH, first, "nt"))
    timed(store, "re-load, same file", lambda: http.replace_graph(GRAPH, first, "nt"))
    timed(store, f"re-load, {share}", lambda: http.replace_graph(GRAPH, changed, "nt"))
    if not args.no_all_changed:
        timed(store, "re-load, every triple changed",
              lambda: http.replace_graph(GRAPH, renamed, "nt"))
    if args.put:
        def put() -> int:
            http.put_graph(GRAPH, first, "nt")
            return int(http.graph_size(GRAPH))

        timed(store, "extra: every triple changed, one Graph Store PUT", put)


def _run_server(args: argparse.Namespace, name: str, timed: Any, folder: Path,
                server_pid: list[int], http_path: list[Any], files: tuple[Path, Path, Path],
                share: str) -> None:
    """Start one HTTP server (``eeflow`` / ``oxigraph``), run its cases, stop it."""
    from tasks.config.linked_data import StoreConfig
    from tasks.linked_data.server import EeflowServerProcess, OxigraphServer
    from tasks.linked_data.store import HttpStore

    first, changed, renamed = files
    if name not in ("eeflow", "oxigraph"):
        raise SystemExit(f"--servers: unknown server {name!r}; use eeflow and/or oxigraph")
    store = f"http {name}"
    server_class = EeflowServerProcess if name == "eeflow" else OxigraphServer
    with server_class(folder / f"server-{name}") as server:
        server_pid[:] = [server.process.pid]
        settings = StoreConfig(mode="http", url=server.url, atomic_max_triples=0,
                               chunk_triples=50_000, timeout_s=3600)
        http = HttpStore(settings, state_dir=folder / f"http_loads-{name}")
        http_path[:] = [http]
        _http_rows(args, timed, http, first, changed, renamed, share, store)

        def plain_post() -> int:  # the bare loader: no parse, no check, empty graph
            http.post_file(GRAPH + "/plain", first, "nt")
            return int(http.graph_size(GRAPH + "/plain"))

        timed(store, "baseline: plain chunked POST into an empty graph", plain_post)
        if args.no_snapshot:  # that graph has no record and no snapshot: GET + diff
            bare = HttpStore(settings)
            http_path[0] = bare
            timed(store, f"extra: re-load, {share}, no record / snapshot (GET diff)",
                  lambda: bare.replace_graph(GRAPH + "/plain", changed, "nt"))
            bare.close()
        http.close()
    server_pid.clear()


def main() -> None:
    """Run the cases on both stores and print one JSON line per case."""
    from p6_load import export_nt

    from tasks.linked_data.store import count_lines_up_to

    args = _args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("P6_TMP")) as tmp:
        folder = Path(tmp)
        first = folder / "first.nt"
        export_nt(folder, args.features, first)
        changed = folder / "changed.nt"
        _shift(first, changed, args.changed, args.features)
        renamed = folder / "renamed.nt"
        with first.open("rb") as fin, renamed.open("wb") as fout:
            for line in fin:
                fout.write(line.replace(b"/data/", b"/data2/"))
        triples = count_lines_up_to(first, 1 << 62)
        rows: list[dict[str, object]] = []
        server_pid: list[int] = []
        http_path: list[Any] = []

        def timed(store: str, case: str, action: object) -> None:
            load = os.getloadavg()[0]
            server_before = _server_cpu_s(server_pid[0]) if server_pid else 0.0
            with Timer() as timer:
                size = action()  # type: ignore[operator]
            seconds = timer.wall_s
            traced = store.startswith("http") and http_path and not case.startswith("baseline")
            path = http_path[0].last_path if traced else None
            rows.append({"store": store, "case": case, "path": path, "triples": triples,
                         "graph_size": size,
                         "seconds": round(seconds, 2), "triples_per_s": round(triples / seconds),
                         "cpu_s": round(timer.cpu_s, 2),
                         "server_cpu_s": round(_server_cpu_s(server_pid[0]) - server_before, 2)
                         if server_pid else None,
                         "server_peak_rss_mb": _server_peak_rss_mb(server_pid[0])
                         if server_pid else None,
                         "load_avg": round(load, 2)})
            print(json.dumps(rows[-1]), flush=True)

        share = f"{args.changed:.0%} of features changed"
        if not args.no_embedded:
            _embedded_rows(args, timed, first, changed, renamed, folder / "store")
        if not args.no_http:
            for name in args.servers.split(","):
                _run_server(args, name, timed, folder, server_pid, http_path,
                            (first, changed, renamed), share)
        for row in rows:
            base = next(r for r in rows if r["store"] == row["store"])
            rate, base_rate = float(row["triples_per_s"]), float(base["triples_per_s"])  # type: ignore[arg-type]
            row["vs_first_load"] = round(rate / base_rate, 2)
        print(json.dumps(rows, indent=1))
    headline = [r for r in rows if str(r["case"]).startswith("re-load")
                and r["store"] in ("embedded", "http eeflow")]
    worst = min(headline, key=lambda r: float(r["vs_first_load"]))  # type: ignore[arg-type]
    ratio = float(worst["vs_first_load"])  # type: ignore[arg-type]
    report("p6_atomic_reload", ratio, ">= 0.5x a first load (slowest re-load: same file / "
           f"{args.changed:.0%} changed / every triple changed, embedded and eeflow's server)",
           ratio >= 0.5,
           {"rows": rows, "features": args.features, "changed": args.changed,
            "worst": f"{worst['store']} {worst['case']}"},
           baseline="first load of the same file into the same store (its bulk loader)",
           quick=args.quick)


if __name__ == "__main__":
    main()
