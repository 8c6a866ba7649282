"""P5: RDF export throughput (triples/s per core) of crop field instances, with baselines.

Input: a synthetic GeoParquet of N square fields (UTM 33N, 16 classes) written once to a temp
folder. Measured in one run, each in its own subprocess (peak RSS per engine):
  fast        eeflow's vectorised N-Triples writer (the default engine), on N features
  fast-half   the same on N/4 features (memory must stay flat in the input size)
  pyoxigraph  the same mapping, terms built as pyoxigraph objects + its serialiser (baseline)
  rdflib      the same mapping, an rdflib graph per batch serialised to N-Triples (baseline)
Arrow is pinned to one thread, so triples/s of CPU time (time.process_time of the child process)
= triples/s per core; the baselines run on subsamples and are extrapolated to N features at their
measured CPU rate. The load average (os.getloadavg) is recorded before and after each engine.
Headline ratio: eeflow fast / pyoxigraph (the strongest plain alternative: same mapping, terms and
serialiser from the store's own library) in triples per CPU-second (user + system); goal: fast
>= 1 M triples per CPU-second on N features.

Run: .venv/bin/python bench/p5_export.py [--features 1000000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import add_quick_flag, report  # noqa: E402


def make_fields(folder: Path, n: int, seed: int = 0, prefix: str = "T") -> list[Path]:
    """Write n square fields (60-250 m, UTM 33N) as GeoParquet tiles of <= 250k fields each."""
    import geopandas as gpd
    import numpy as np
    import shapely

    from tasks.domain.crops import CROP_CLASSES

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    paths = []
    for tile, start in enumerate(range(0, n, 250_000)):
        idx = np.arange(start, min(n, start + 250_000))
        x0 = 500_000 + (idx % side) * 260.0
        y0 = 5_200_000 + (idx // side) * 260.0
        size = rng.uniform(60, 250, len(idx))
        frame = gpd.GeoDataFrame(
            {"crop_class": np.array(CROP_CLASSES)[rng.integers(0, 16, len(idx))],
             "confidence": rng.uniform(0.3, 1.0, len(idx)).round(4)},
            geometry=shapely.box(x0, y0, x0 + size, y0 + size), crs="EPSG:32633")
        path = folder / f"{prefix}{tile:02d}_instances.parquet"
        frame.to_parquet(path)
        paths.append(path)
    return paths


def _peak_rss_mb() -> float:
    """Peak RSS of this process image (VmHWM; ru_maxrss keeps the parent's peak across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_engine(engine: str, folder: Path, out: Path) -> dict:
    """Export every tile of ``folder`` with one engine in this process; return the figures."""
    import pyarrow as pa

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    from tasks.linked_data.export import export_rows
    from tasks.linked_data.mapping import load_mapping
    from tasks.linked_data.terms import open_sink

    mapping = load_mapping("crop_field_instances")
    inputs = sorted(folder.glob("*_instances.parquet"))
    wall, cpu, times = time.perf_counter(), time.process_time(), os.times()
    with out.open("wb", buffering=1 << 20) as fh:
        sink = open_sink(fh, "nt", engine)  # type: ignore[arg-type]
        stats = export_rows(mapping, inputs, "2017-09_2018-08", sink,
                            base="https://w3id.org/eeflow/data/", batch_rows=50_000)
        sink.close()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    user_s, sys_s = os.times().user - times.user, os.times().system - times.system
    rss_mb = _peak_rss_mb()
    return {"engine": engine, "features": stats.features, "rejected": len(stats.rejected),
            "triples": stats.triples, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "user_s": round(user_s, 2), "sys_s": round(sys_s, 2),
            "triples_per_user_cpu_s": round(stats.triples / max(user_s, 1e-9)),
            "triples_per_cpu_s": round(stats.triples / cpu), "peak_rss_mb": round(rss_mb),
            "bytes": out.stat().st_size}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--features", type=int, default=1_000_000)
    parser.add_argument("--oxigraph-features", type=int, default=100_000)
    parser.add_argument("--rdflib-features", type=int, default=20_000)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--keep", type=Path, default=None, help="keep the fast N-Triples here")
    add_quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.features, args.oxigraph_features, args.rdflib_features = 20_000, 5_000, 1_000
    if args.child:
        engine, folder, out = args.child
        print(json.dumps(run_engine(engine, Path(folder), Path(out))))
        return
    with tempfile.TemporaryDirectory(prefix="p5-") as tmp:
        started = time.perf_counter()
        sizes = {"full": args.features, "quarter": args.features // 4,
                 "oxigraph": args.oxigraph_features, "rdflib": args.rdflib_features}
        for name, n in sizes.items():
            make_fields(Path(tmp) / name, n)
        print(f"generated inputs in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        runs = [("fast", "full"), ("fast", "quarter"), ("pyoxigraph", "oxigraph"),
                ("rdflib", "rdflib")]
        results = []
        for engine, name in runs:
            out = Path(tmp) / f"{engine}-{name}.nt"
            proc = subprocess.run([sys.executable, __file__, "--child", engine,
                                   str(Path(tmp) / name), str(out)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr[-3000:])
            result = {"input": name, **json.loads(proc.stdout.strip().splitlines()[-1])}
            per_feature_cpu = result["cpu_s"] / max(result["features"], 1)
            result["extrapolated_cpu_s_for_n"] = round(per_feature_cpu * args.features, 1)
            result["loadavg_1m"] = round(os.getloadavg()[0], 2)
            results.append(result)
            print(json.dumps(result), file=sys.stderr)
            if engine == "fast" and name == "full" and args.keep:
                args.keep.parent.mkdir(parents=True, exist_ok=True)
                out.replace(args.keep)
            else:
                out.unlink(missing_ok=True)
        print(json.dumps({"features": args.features, "results": results}, indent=1))
    rate = {(r["engine"], r["input"]): r["triples_per_cpu_s"] for r in results}
    fast = rate[("fast", "full")]
    report("p5_export", fast / rate[("pyoxigraph", "oxigraph")],
           ">= 1 M triples per CPU-second (user + system), fast writer", fast >= 1_000_000,
           {"features": args.features, "results": results},
           baseline="pyoxigraph terms + its N-Triples serialiser, same mapping (per CPU-s)",
           quick=args.quick)


if __name__ == "__main__":
    main()
