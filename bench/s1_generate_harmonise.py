"""Generator + harmonise wall time, CPU and peak RSS per step for growing EW scenes (up to 10k).

Each step of each size runs in its own fresh subprocess, so every step has its own peak RSS:

1. ``generate``: :func:`tasks.sentinel1.generator.generate_ew_grd_scene` (SAFE writer + truth);
2. ``read_write`` (extra row, the earlier baseline): read both measurement GeoTIFFs with rasterio
   and write the same float32 (3, y, x) volume to zarr with the same chunks;
3. ``harmonise``: :func:`tasks.polar.harmonise.harmonise_scene` (noise removal, calibration,
   boxcar, GCP geocoding warp, land mask), threaded Dask scheduler with 2 workers, chunk 512;
4. ``zarr_copy`` (the headline baseline): a plain zarr-to-zarr copy of harmonise's output store,
   every array with its own chunks and codecs, ``dask.array.from_zarr(...).to_zarr(...)`` on the
   same 2 Dask threads.

Headline ratio: zarr copy / harmonise wall time at the largest size (1.0 = harmonise costs no
more than copying its own output; no goal, measured). CPU = user + system of the child.
Usage: .venv/bin/python bench/s1_generate_harmonise.py [--size N ...] [--keep DIR]
[--previous JSON ...] [--quick]
(default sizes 1200 3000 10000; ``--quick``: 400 only).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_quick_flag, report  # noqa: E402

#: one step in a fresh interpreter: argv = step, size, work folder; prints one JSON line
CHILD = r"""
import datetime as dt, json, resource, sys, time, warnings
from pathlib import Path
warnings.simplefilter("ignore")
import dask, numpy as np
step, size, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
scene_json = out / "scene.json"
# imports before the clock (process and library start-up are not the step's work)
import dask.array, rasterio, zarr
if step == "generate":
    import tasks.sentinel1.generator, rasterio.features, pyproj
if step == "harmonise":
    import tasks.polar.harmonise, xarray, rioxarray, geopandas, scipy.ndimage, rasterio.features
t0 = time.perf_counter()
cpu0 = resource.getrusage(resource.RUSAGE_SELF)
extra = {}
if step == "generate":
    from tasks.sentinel1.generator import generate_ew_grd_scene
    scene = generate_ew_grd_scene(out / "scene", seed=1,
                                  start_time=dt.datetime(2026, 1, 15, tzinfo=dt.UTC),
                                  lines=size, samples=size)
    scene_json.write_text(json.dumps({"safe": str(scene.safe_path.relative_to(out)),
                                      "land": str(scene.land_mask_path.relative_to(out))}))
    extra = {"grid_shape": list(scene.grid_shape)}
elif step == "read_write":
    import rasterio, zarr
    safe = out / json.loads(scene_json.read_text())["safe"]
    tiffs = sorted((safe / "measurement").glob("*.tiff"))
    z = zarr.create_array(out / "read_write.zarr", shape=(3, size, size), chunks=(3, 512, 512),
                          dtype="float32")
    srcs = [rasterio.open(t) for t in tiffs]
    for r0 in range(0, size, 512):
        r1 = min(size, r0 + 512)
        block = np.zeros((3, r1 - r0, size), np.float32)
        for k, src in enumerate(srcs):
            block[k] = src.read(1, window=((r0, r1), (0, size)))
        z[:, r0:r1, :] = block
    for src in srcs:
        src.close()
elif step == "harmonise":
    from tasks.config.polar import HarmoniseConfig
    from tasks.polar.harmonise import harmonise_scene
    paths = json.loads(scene_json.read_text())
    with dask.config.set(scheduler="threads", num_workers=2):
        result = harmonise_scene(out / paths["safe"], out / "h.zarr", HarmoniseConfig(chunk=512),
                                 land_mask_path=out / paths["land"])
    extra = {"output_shape": result["shape"], "valid_pixels": result["valid_pixels"],
             "warp_share": round(result["warp_share"], 3)}
elif step == "zarr_copy":
    import dask.array as da, zarr
    src = zarr.open_group(out / "h.zarr", mode="r")
    dst = zarr.open_group(out / "copy.zarr", mode="w")
    nbytes = 0
    with dask.config.set(scheduler="threads", num_workers=2):
        for name, arr in src.arrays():
            target = dst.create_array(name, shape=arr.shape, chunks=arr.chunks, dtype=arr.dtype,
                                      compressors=arr.compressors, filters=arr.filters,
                                      fill_value=arr.fill_value)
            da.from_zarr(arr).store(target, lock=False)
            nbytes += arr.nbytes
    extra = {"uncompressed_mb": round(nbytes / 2**20, 1)}
else:
    raise SystemExit(f"unknown step {step!r}")
wall = time.perf_counter() - t0
cpu1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime
print(json.dumps({"step": step, "size": size, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                  "peak_rss_mb": round(cpu1.ru_maxrss / 1024, 1), **extra}))
"""

STEPS = ("generate", "read_write", "harmonise", "zarr_copy")


def _steps(size: int, work: Path, row: dict[str, Any]) -> None:
    """Run the steps not yet in ``row`` in ``work``, one fresh subprocess each."""
    for step in STEPS:
        if step in row:
            continue
        done = subprocess.run([sys.executable, "-c", CHILD, step, str(size), str(work)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"step {step} at size {size} failed "
                               f"(exit {done.returncode}):\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(result), flush=True)
        row[step] = result
        if step == "generate":
            (work / "generate.json").write_text(json.dumps(result))
    du = subprocess.run(["du", "-sm", str(work / "scene"), str(work / "h.zarr")],
                        capture_output=True, text=True, check=False).stdout.split()
    row["disk_mb"] = {Path(p).name: int(n) for n, p in zip(du[::2], du[1::2], strict=True)}


def run_size(size: int, keep: Path | None = None) -> dict[str, Any]:
    """Run every step for one scene size (fresh subprocess each); return the figures by step.

    With ``keep``, the generated scene stays in ``keep/<size>`` and a later run reuses it (its
    ``generate`` figures are those of the run that made it, marked ``reused``).
    """
    row: dict[str, Any] = {"size": size}
    if keep is None:
        with tempfile.TemporaryDirectory(prefix="s1bench-") as tmp:
            _steps(size, Path(tmp), row)
    else:
        work = keep / str(size)
        work.mkdir(parents=True, exist_ok=True)
        if (work / "generate.json").is_file() and (work / "scene.json").is_file():
            row["generate"] = {**json.loads((work / "generate.json").read_text()), "reused": True}
        _steps(size, work, row)
        for name in ("h.zarr", "copy.zarr", "read_write.zarr"):
            shutil.rmtree(work / name, ignore_errors=True)
    row["harmonise_vs_copy"] = round(row["zarr_copy"]["wall_s"] / row["harmonise"]["wall_s"], 4)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs="+", default=[1200, 3000, 10000],
                        help="image lines = samples of each scene (default 1200 3000 10000)")
    parser.add_argument("--previous", type=Path, nargs="+", default=[],
                        help="results JSON of earlier runs: their rows of sizes not run now are "
                        "kept in this run's JSON (marked with that run's start)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep each generated scene in KEEP/<size> and reuse one found there")
    add_quick_flag(parser)
    args = parser.parse_args()
    sizes = [400] if args.quick else args.size
    rows = [run_size(size, args.keep) for size in sizes]
    for previous in args.previous:
        earlier = json.loads(previous.read_text())
        rows += [{**row, "from_run": row.get("from_run", earlier["machine"]["started"])}
                 for row in earlier["figures"]["rows"]
                 if row["size"] not in {r["size"] for r in rows}]
    rows.sort(key=lambda row: row["size"])
    last = rows[-1]
    report("s1_generate_harmonise", last["harmonise_vs_copy"], "none (measured)", None,
           {"rows": rows, "headline_size": last["size"]},
           baseline="zarr-to-zarr copy of harmonise's output (dask, 2 threads, same chunks/codecs)",
           quick=args.quick)


if __name__ == "__main__":
    main()
