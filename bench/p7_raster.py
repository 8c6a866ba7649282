"""P7 raster: LUCAS sampling of a crop-type class raster, block-grouped vs one read per point.

Generates (not timed) a Sentinel-2-tile-sized class raster, 10,980 x 10,980 pixels of 10 m
(UTM 33N, uint8 class indices, nodata 255 on field borders, tiled 512 x 512, deflate), made of
rectangular fields of random classes with 3 % of pixels set to a random class (a model's noise),
and uniformly random points over it (plus 1 % just beyond its edges). Then, each in a fresh
subprocess so that its peak RSS is its own, it times ``raster_neighbourhood`` (tile-grouped,
vectorised) on all points and on the first ``--baseline-points``, and
``raster_neighbourhood_per_point`` (the former one-windowed-read-per-point reader) on the first
``--baseline-points``, and checks that both give identical results. Headline baseline, on all
points: what a competent user writes with rasterio + numpy: read the whole raster once
(``src.read(1)``), then for the 5 x 5 pixels around every point, vectorised over the points, the
point-to-pixel-square distance and the classes within the radius (no nearest-class search, which
eeflow also does: the ratio favours the baseline); its classes-within-radius must equal eeflow's.
Headline ratio = whole-raster baseline / eeflow wall time (no goal, measured); the per-point
reader stays as an extra row. CPU = user + system of each subprocess.

Run: ``.venv/bin/python bench/p7_raster.py [--size 10980] [--points 100000]
[--baseline-points 10000] [--quick]``
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Timer, add_quick_flag, report  # noqa: E402

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


def whole_raster_within(path: Path, x: np.ndarray, y: np.ndarray, radius_m: float) -> np.ndarray:
    """Baseline: whole raster in memory, classes within the radius from the 5 x 5 pixels around
    each point (point-to-square distance), vectorised over the points; (n, 16) bool."""
    import rasterio

    with rasterio.open(path) as src:
        data = src.read(1)
        transform, nodata = src.transform, src.nodata
    px, py = transform.a, -transform.e
    col0 = np.floor((x - transform.c) / px).astype(np.int64)
    row0 = np.floor((transform.f - y) / py).astype(np.int64)
    reach = int(np.ceil(radius_m / min(px, py)))
    within = np.zeros((x.size, 16), bool)
    points = np.arange(x.size)
    for dr in range(-reach, reach + 1):
        for dc in range(-reach, reach + 1):
            row, col = row0 + dr, col0 + dc
            left = transform.c + col * px
            top = transform.f - row * py
            dx = np.maximum(np.maximum(left - x, x - (left + px)), 0.0)
            dy = np.maximum(np.maximum((top - py) - y, y - top), 0.0)
            ok = ((np.hypot(dx, dy) <= radius_m) & (row >= 0) & (row < data.shape[0])
                  & (col >= 0) & (col < data.shape[1]))
            value = np.full(x.size, 255, np.int64)
            value[ok] = data[row[ok], col[ok]]
            ok &= (value < 16) & (value != (nodata if nodata is not None else -1))
            within[points[ok], value[ok]] = True
    return within


def measure(folder: Path, method: str, n: int) -> dict:
    """Runs in its own process: one sampling call, its time and peak RSS."""
    from tasks.lucas.crop_map import read_class_raster
    from tasks.lucas.matching import raster_neighbourhood, raster_neighbourhood_per_point

    xy = np.load(folder / "points.npy")[:n]
    crop_map = read_class_raster(folder / "map.tif")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if method == "whole_raster":
        with Timer() as timer:
            within = whole_raster_within(folder / "map.tif", xy[:, 0], xy[:, 1], RADIUS_M)
        np.savez(folder / f"{method}_{n}.npz", within=within)
        hood_within = within
    else:
        func = raster_neighbourhood if method == "blocked" else raster_neighbourhood_per_point
        with Timer() as timer:
            hood = func(crop_map, xy[:, 0], xy[:, 1], RADIUS_M, NEAREST_MAX_M)
        np.savez(folder / f"{method}_{n}.npz", within=hood.within, n_within=hood.n_within,
                 nearest_class=hood.nearest_class, nearest_distance_m=hood.nearest_distance_m)
        hood_within = hood.within
    seconds = timer.wall_s
    return {"method": method, "points": n, "seconds": round(seconds, 3),
            "cpu_s": round(timer.cpu_s, 3), "points_per_cpu_s": round(timer.per_cpu_s(n)),
            "points_per_s": round(n / seconds), "peak_rss_mb": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_before_call_mb": round(rss_before, 1),
            "points_with_class_within_radius": int(hood_within.any(axis=1).sum())}


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
    parser.add_argument("--measure", choices=("blocked", "per_point", "whole_raster"),
                        help=argparse.SUPPRESS)
    add_quick_flag(parser)
    args = parser.parse_args()
    if args.quick and not args.measure:
        args.size, args.points, args.baseline_points = 2048, 5_000, 500
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
                _run(folder, "per_point", nb), _run(folder, "whole_raster", args.points)]
        a, b = np.load(folder / f"blocked_{nb}.npz"), np.load(folder / f"per_point_{nb}.npz")
        identical = all(np.array_equal(a[k], b[k]) for k in a.files)
        full = np.load(folder / f"blocked_{args.points}.npz")
        prefix_same = all(np.array_equal(full[k][:nb], a[k]) for k in a.files)
        whole = np.load(folder / f"whole_raster_{args.points}.npz")["within"]
        result = {**info, "runs": runs, "identical_to_per_point": identical,
                  "within_equal_to_whole_raster_baseline": bool(
                      np.array_equal(whole, full["within"])),
                  "speedup_vs_whole_raster": round(runs[3]["seconds"] / runs[0]["seconds"], 2),
                  "blocked_full_run_prefix_equals_small_run": prefix_same,
                  "speedup_same_points": round(runs[2]["seconds"] / runs[1]["seconds"], 1),
                  "load_avg_1m_end": round(os.getloadavg()[0], 2)}
    print(json.dumps(result, indent=2))
    report("p7_raster", runs[3]["seconds"] / runs[0]["seconds"], "none (measured)", None, result,
           baseline="whole-raster rasterio read + vectorised 5x5 numpy window (within only)",
           quick=args.quick)


if __name__ == "__main__":
    main()
