"""P7 raster: LUCAS sampling of a crop-type class raster, block-grouped vs one read per point.

Generates (not timed) a Sentinel-2-tile-sized class raster, 10,980 x 10,980 pixels of 10 m
(UTM 33N, uint8 class indices, nodata 255 on field borders, tiled 512 x 512, deflate), made of
rectangular fields of random classes with 3 % of pixels set to a random class (a model's noise),
and uniformly random points over it (plus 1 % just beyond its edges). Then, each in a fresh
subprocess so that its peak RSS is its own, it times ``raster_neighbourhood`` (tile-grouped,
vectorised) on all points and on the first ``--baseline-points``, and
``raster_neighbourhood_per_point`` (the former one-windowed-read-per-point reader) on the first
``--baseline-points``, and checks that both give identical results.

Run: ``.venv/bin/python bench/p7_raster.py [--size 10980] [--points 100000]
[--baseline-points 10000]``
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RADIUS_M = 10.0
NEAREST_MAX_M = 1000.0


def generate(folder: Path, size: int, n_points: int, seed: int = 11) -> dict:
    """Write map.tif and points.npy (x, y in the raster CRS) into ``folder``."""
    import rasterio
    from rasterio.transform import from_origin

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    field_h, field_w = 23, 37  # 230 m x 370 m fields
    fields = rng.integers(0, 16, size=(size // field_h + 1, size // field_w + 1), dtype="uint8")
    transform = from_origin(399_960.0, 5_400_000.0, 10.0, 10.0)
    with rasterio.open(
        folder / "map.tif", "w", driver="GTiff", width=size, height=size, count=1,
        dtype="uint8", crs="EPSG:32633", transform=transform, nodata=255, tiled=True,
        blockxsize=512, blockysize=512, compress="deflate",
    ) as dst:
        for r0 in range(0, size, 1024):
            rows = np.arange(r0, min(r0 + 1024, size))
            cols = np.arange(size)
            data = fields[rows[:, None] // field_h, cols[None, :] // field_w]
            noisy = rng.random(data.shape) < 0.03  # 3 % misclassified pixels, as a model map
            data[noisy] = rng.integers(0, 16, int(noisy.sum()), dtype="uint8")
            data[rows % field_h == 0, :] = 255  # 10 m roads between fields: no instance
            data[:, cols % field_w == 0] = 255
            dst.write(data, 1, window=rasterio.windows.Window(0, r0, size, rows.size))
    extent = size * 10.0
    x = 399_960.0 + rng.uniform(0, extent, n_points)
    y = 5_400_000.0 - rng.uniform(0, extent, n_points)
    edge = rng.random(n_points) < 0.01
    x[edge] = np.where(rng.random(edge.sum()) < 0.5, 399_960.0 - rng.uniform(0, 50, edge.sum()),
                       399_960.0 + extent + rng.uniform(0, 50, edge.sum()))
    np.save(folder / "points.npy", np.column_stack([x, y]))
    return {"generate_s": round(time.perf_counter() - t0, 1), "raster_px": [size, size],
            "map_mb": round((folder / "map.tif").stat().st_size / 1e6, 2), "points": n_points}


def measure(folder: Path, method: str, n: int) -> dict:
    """Runs in its own process: one sampling call, its time and peak RSS."""
    from tasks.lucas.crop_map import read_class_raster
    from tasks.lucas.matching import raster_neighbourhood, raster_neighbourhood_per_point

    xy = np.load(folder / "points.npy")[:n]
    crop_map = read_class_raster(folder / "map.tif")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    func = raster_neighbourhood if method == "blocked" else raster_neighbourhood_per_point
    t0 = time.perf_counter()
    hood = func(crop_map, xy[:, 0], xy[:, 1], RADIUS_M, NEAREST_MAX_M)
    seconds = time.perf_counter() - t0
    np.savez(folder / f"{method}_{n}.npz", within=hood.within, n_within=hood.n_within,
             nearest_class=hood.nearest_class, nearest_distance_m=hood.nearest_distance_m)
    return {"method": method, "points": n, "seconds": round(seconds, 3),
            "points_per_s": round(n / seconds), "peak_rss_mb": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_before_call_mb": round(rss_before, 1),
            "points_with_class_within_radius": int(hood.within.any(axis=1).sum())}


def _run(folder: Path, method: str, n: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", method, "--folder", str(folder), "--points",
         str(n)], check=True, capture_output=True, text=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result), file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_980)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--baseline-points", type=int, default=10_000)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--measure", choices=("blocked", "per_point"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.folder, args.measure, args.points)))
        return
    with tempfile.TemporaryDirectory(prefix="p7_raster_") as tmp:
        folder = args.folder or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        info = {"load_avg_1m_start": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
        info.update(generate(folder, args.size, args.points))
        print(f"generated: {info}", file=sys.stderr)
        nb = min(args.baseline_points, args.points)
        runs = [_run(folder, "blocked", args.points), _run(folder, "blocked", nb),
                _run(folder, "per_point", nb)]
        a, b = np.load(folder / f"blocked_{nb}.npz"), np.load(folder / f"per_point_{nb}.npz")
        identical = all(np.array_equal(a[k], b[k]) for k in a.files)
        full = np.load(folder / f"blocked_{args.points}.npz")
        prefix_same = all(np.array_equal(full[k][:nb], a[k]) for k in a.files)
        result = {**info, "runs": runs, "identical_to_per_point": identical,
                  "blocked_full_run_prefix_equals_small_run": prefix_same,
                  "speedup_same_points": round(runs[2]["seconds"] / runs[1]["seconds"], 1),
                  "load_avg_1m_end": round(os.getloadavg()[0], 2)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
