"""Generator + harmonise throughput and peak RSS for growing EW scenes.

Each size runs in a fresh subprocess (peak RSS per run). Baseline in the same run: reading both
measurement GeoTIFFs and writing the same float32 volume to zarr with the same chunks and codec.
Headline ratio: baseline / harmonise wall time at the largest size (< 1: harmonise slower; no goal,
measured); CPU = user + system of the child (harmonise runs on 2 Dask threads in it).
Usage: .venv/bin/python bench/s1_generate_harmonise.py [size ...] [--quick]   (default: 1200 3000)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_quick_flag, report  # noqa: E402

CHILD = r"""
import datetime as dt, json, resource, sys, time, warnings
from pathlib import Path
warnings.simplefilter("ignore")
import dask, numpy as np, rasterio, zarr
from tasks.config.polar import HarmoniseConfig
from tasks.polar.harmonise import harmonise_scene
from tasks.sentinel1.generator import generate_ew_grd_scene
size, out = int(sys.argv[1]), Path(sys.argv[2])
t0 = time.perf_counter()
scene = generate_ew_grd_scene(out, seed=1, start_time=dt.datetime(2026, 1, 15, tzinfo=dt.UTC),
                              lines=size, samples=size)
t_gen = time.perf_counter() - t0
rss_gen = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
tiffs = sorted((scene.safe_path / "measurement").glob("*.tiff"))
z = zarr.create_array(out / "baseline.zarr", shape=(3, size, size), chunks=(3, 512, 512),
                      dtype="float32")
for r0 in range(0, size, 512):
    r1 = min(size, r0 + 512)
    block = np.zeros((3, r1 - r0, size), np.float32)
    for k, t in enumerate(tiffs):
        with rasterio.open(t) as src:
            block[k] = src.read(1, window=((r0, r1), (0, size)))
    z[:, r0:r1, :] = block
t_base = time.perf_counter() - t0
t0 = time.perf_counter()
cpu0 = resource.getrusage(resource.RUSAGE_SELF)
with dask.config.set(scheduler="threads", num_workers=2):
    harmonise_scene(scene.safe_path, out / "h.zarr", HarmoniseConfig(chunk=512),
                    land_mask_path=scene.land_mask_path)
t_h = time.perf_counter() - t0
cpu1 = resource.getrusage(resource.RUSAGE_SELF)
cpu_h = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"size": size, "generate_s": t_gen, "generate_peak_rss_mb": rss_gen,
                  "baseline_read_write_s": t_base, "harmonise_s": t_h, "harmonise_cpu_s": cpu_h,
                  "peak_rss_mb": rss}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", type=int, nargs="*", default=[1200, 3000])
    add_quick_flag(parser)
    args = parser.parse_args()
    sizes = [600] if args.quick else args.sizes
    rows = []
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run([sys.executable, "-c", CHILD, str(size), tmp], check=True,
                                 capture_output=True, text=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            print(json.dumps(result))
            rows.append(result)
    last = rows[-1]
    report("s1_generate_harmonise", last["baseline_read_write_s"] / last["harmonise_s"],
           "none (measured)", None, {"rows": rows},
           baseline="rasterio read of both measurement GeoTIFFs + zarr write of the same volume",
           quick=args.quick)


if __name__ == "__main__":
    main()
