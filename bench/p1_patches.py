"""P1: patch extraction throughput vs a plain zarr read-then-write, and peak RSS vs scene size.

For a synthetic harmonised scene of N x N and one of 2N x 2N pixels (4x the pixels), in a fresh
subprocess each:
  * baseline: dask ``from_zarr(backscatter) -> to_zarr`` (same bytes read, written with the zarr
    default codec: zstd at its default level, the codec of the patch store, whose chunks are
    stored band-major like the scene's (band, y, x) chunks), after an untimed warm-up copy;
    timed ``--repeats`` times (default 5) with each scheduler, alternating with the extraction's
    runs (the same count): on the LocalCluster rows the same LocalCluster and Dask's threaded
    scheduler (2 threads) in the same process, on the synchronous rows the synchronous and the
    threaded scheduler. The fastest copy is the baseline (the strongest plain alternative), and
    the row names its scheduler; the fastest extraction is compared with it (medians reported);
  * extraction: ``extract_patches`` of 32 px patches, stride 32, min purity 0.5, no balancing, so
    nearly every valid sea patch is written.
Both run on a LocalCluster (2 worker processes x 1 thread), in-process (Dask ``synchronous``
scheduler; zarr's own threaded codecs give the parallelism) and on a ``threads`` LocalCluster
(one in-process worker with 2 threads, ``dask.workers: threads``; rows "threads", whose own copy
is named "threads_cluster"). ``--modes`` picks a subset (the headline needs ``local``).
Throughput = bytes written / wall time for both; ratio = extraction / baseline (goal >= 0.8).
The headline is the worst LocalCluster ratio over both sizes (the zarr-to-zarr copy is the fair
baseline: the same bytes through the same library). CPU = user + system of the driver process
plus, on a LocalCluster, of every worker process, for the extraction and for the baseline copy
with the same scheduler. Peak RSS = max resident set of the driver and of every Dask worker
(goal: no growth with size).

    .venv/bin/python bench/p1_patches.py [--size 3072] [--repeats 5] [--modes local,...] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "p1"
sys.path.insert(0, str(REPO / "bench"))

from common import Timer, add_quick_flag, report  # noqa: E402

GOAL = 0.8


def _scene(size: int) -> tuple[Path, Path]:
    sys.path.insert(0, str(REPO / "tests" / "tasks" / "polar"))
    from polar_synthetic_scene import write_synthetic_scene

    folder = OUT / f"scene_{size}"
    scene = folder / "harmonise" / f"P1_{size}.zarr"
    label = folder / "labels" / f"P1_{size}.zarr"
    if not (scene / "zarr.json").exists() or not (label / "zarr.json").exists():
        shutil.rmtree(folder, ignore_errors=True)
        t = time.perf_counter()
        write_synthetic_scene(folder, f"P1_{size}", size, size, seed=size, chunk=512,
                              blob_px=400.0)
        print(f"wrote scene {size}x{size} in {time.perf_counter() - t:.0f} s", flush=True)
    return scene, label


def peak_rss_bytes() -> int:
    """Peak resident set size (VmHWM) of the calling process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu_s(client: Any) -> float:
    """User + system CPU seconds of this process and, with a client, of every Dask worker.

    Each process counts once (the worker of a ``threads`` cluster is this process).
    """
    def own() -> tuple[int, float]:
        t = os.times()
        return os.getpid(), t.user + t.system

    per_pid = dict([own(), *(client.run(own).values() if client is not None else [])])
    return sum(per_pid.values())


def child(size: int, mode: str, repeats: int) -> None:
    """Run baseline then extraction for one scene size and Dask mode; print a JSON line."""
    import dask
    import dask.array as da
    import numpy as np
    import zarr

    from tasks.config.common import DaskConfig
    from tasks.dask_cluster import dask_client
    from tasks.polar.patches import extract_patches

    scene, label = _scene(size)
    work = OUT / f"work_{size}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result: dict = {"size": size, "mode": mode}
    peak_workers = 0

    def worker_rss(client: Any) -> int:
        if client is None:
            return 0
        return max(client.run(peak_rss_bytes).values())

    dask_cfg = {
        "local": DaskConfig(n_workers=2, threads_per_worker=1, memory_limit="3GiB"),
        "threads": DaskConfig(n_workers=2, threads_per_worker=1, workers="threads"),
        "synchronous": DaskConfig(cluster="synchronous"),
    }[mode]
    with dask_client(dask_cfg) as client:
        src = zarr.open_array(scene / "backscatter", mode="r")
        own = "threads_cluster" if mode == "threads" else mode  # the row's own scheduler
        copies: dict[str, list[float]] = {own: [], "threads": []}
        copy_cpu: dict[str, list[float]] = {own: [], "threads": []}

        # every copy and extraction writes a new folder, all deleted at the end: deleting a
        # store between runs (ext4 with discard here) costs time in whatever runs next
        serial = iter(range(10**6))

        def copy(scheduler: str, record: bool = True) -> None:
            cpu = _cpu_s(client)
            t = time.perf_counter()
            with dask.config.set(scheduler="threads" if scheduler == "threads" else
                                 ("synchronous" if mode == "synchronous" else None),
                                 num_workers=2):
                da.from_zarr(str(scene), component="backscatter").to_zarr(
                    str(work / f"copy{next(serial)}.zarr"))
            if record:
                copies[scheduler].append(time.perf_counter() - t)
                copy_cpu[scheduler].append(_cpu_s(client) - cpu)

        copy(own, record=False)  # warm-up: worker imports, page cache; not timed
        copy("threads", record=False)
        if client is not None:  # same warm-up for extraction
            client.run(lambda: __import__("tasks.polar.patches"))
        runs = []
        for attempt in range(repeats):  # each copy and the extraction alternately, same count
            for scheduler in copies:
                copy(scheduler)
            cpu = _cpu_s(client)
            with Timer() as timer:
                summary = extract_patches([scene], [label], work / f"patches{attempt}.zarr",
                                          size=32, stride=32, min_purity=0.5, balance="none",
                                          max_per_class=10**9, tile_px=1024, client=client)
            runs.append((timer.wall_s, _cpu_s(client) - cpu, timer.cpu_s))
        result["extract_runs_s"] = [run[0] for run in runs]
        wall, cpu_s, driver_cpu = min(runs)
        result["extract_cpu_s"] = cpu_s
        result["extract_s"] = wall
        result["extract_driver_cpu_s"] = driver_cpu
        result["extract_bytes"] = summary["n_patches"] * 3 * 32 * 32 * 4
        result["n_patches"] = summary["n_patches"]
        result["band_mean"] = summary["band_mean"]
        result["band_std"] = summary["band_std"]
        best = min(copies, key=lambda k: min(copies[k]))
        result["baseline_scheduler"] = best
        result["baseline_s"] = min(copies[best])  # the fastest copy: a conservative ratio
        result["baseline_cpu_s"] = min(copy_cpu[best])
        # medians: the fastest run of each is the headline, the medians show the spread
        result["extract_median_s"] = float(np.median(result["extract_runs_s"]))
        result["baseline_median_s"] = float(min(np.median(v) for v in copies.values()))
        result["copies_s"] = copies
        result["copies_cpu_s"] = copy_cpu
        result["baseline_bytes"] = src.nbytes
        peak_workers = worker_rss(client)
    result["driver_peak_rss_mb"] = peak_rss_bytes() / 2**20
    result["worker_peak_rss_mb"] = peak_workers / 2**20
    result["scene_backscatter_mb"] = result["baseline_bytes"] / 2**20
    shutil.rmtree(work, ignore_errors=True)
    print("RESULT " + json.dumps(result), flush=True)


def median_ratio(row: dict) -> float:
    """Extraction / copy throughput of the median runs (the headline uses the fastest)."""
    return (row["extract_bytes"] / row["extract_median_s"]) / (
        row["baseline_bytes"] / row["baseline_median_s"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=3072)
    parser.add_argument("--child", type=int, default=0)
    parser.add_argument("--mode", default="local", choices=["local", "threads", "synchronous"])
    parser.add_argument("--repeats", type=int, default=5,
                        help="runs of the extraction and of each copy, alternately (fastest "
                             "counts)")
    parser.add_argument("--modes", default="local,synchronous,threads",
                        help="comma-separated modes of a full run (the headline needs local)")
    add_quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.size = 512
    if args.child:
        child(args.child, args.mode, args.repeats)
        return
    rows = []
    for mode in ("local",) if args.quick else args.modes.split(","):
        for size in (args.size, 2 * args.size):
            _scene(size)
            out = subprocess.run([sys.executable, __file__, "--child", str(size), "--mode", mode,
                                  "--repeats", str(1 if args.quick else args.repeats)],
                                 cwd=REPO, capture_output=True, text=True, check=False)
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if not line:
                print(out.stdout[-3000:], out.stderr[-3000:])
                raise SystemExit(f"child for {size} failed")
            rows.append(json.loads(line[0][7:]))
    print("| Dask | scene (px) | backscatter MB | baseline copy MB/s (scheduler) "
          "| extraction MB/s (written) | ratio | ratio of medians | CPU s copy / extraction "
          "| patches "
          "| driver peak RSS MB | worker peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        base = r["baseline_bytes"] / 2**20 / r["baseline_s"]
        ext = r["extract_bytes"] / 2**20 / r["extract_s"]
        print(f"| {r['mode']} | {r['size']}x{r['size']} | {r['scene_backscatter_mb']:.0f} | "
              f"{base:.1f} ({r['baseline_scheduler']}) | {ext:.1f} | {ext / base:.2f} | "
              f"{median_ratio(r):.2f} | "
              f"{r['baseline_cpu_s']:.2f} / {r['extract_cpu_s']:.2f} | {r['n_patches']} | "
              f"{r['driver_peak_rss_mb']:.0f} | {r['worker_peak_rss_mb']:.0f} |")
    print(json.dumps(rows, indent=1))
    for r in rows:
        r["ratio"] = (r["extract_bytes"] / r["extract_s"]) / (r["baseline_bytes"] / r["baseline_s"])
    local = [r["ratio"] for r in rows if r["mode"] == "local"]
    rss = [r["worker_peak_rss_mb"] + r["driver_peak_rss_mb"] for r in rows if r["mode"] == "local"]
    if not local:
        raise SystemExit("the headline needs the local mode (--modes local,...)")
    ratio = min(local)
    report("p1_patches", ratio, f">= {GOAL}x zarr-to-zarr copy (LocalCluster, worst size)",
           ratio >= GOAL, {"rows": rows, "local_rss_growth_4x_pixels": rss[-1] / rss[0],
                           "local_median_ratio": min(median_ratio(r) for r in rows
                                                     if r["mode"] == "local")},
           baseline="dask from_zarr -> to_zarr copy of the backscatter, the faster of the same "
                    "LocalCluster and the threaded scheduler",
           quick=args.quick)


if __name__ == "__main__":
    main()
