"""P7: LUCAS evaluation at the paper's scale, 936,566 map instances x 8,841 evaluated points.

Generates (not timed) a farmland of 936,566 parcels (UTM 33N, ~190 km square), a model map with
15 % of the instances relabelled, and LUCAS-like points of which exactly 8,841 are crop points
inside the map (plus the non-crop points a LUCAS file also holds). Then, in a fresh subprocess so
that its peak RSS is its own, it times ``evaluate_against_lucas(points.csv, map.parquet)`` (reading
both files included) three times, and the naive all-pairs baseline (point-to-every-polygon
distances) on a subsample of the same points, extrapolated to all of them.

Run: ``.venv/bin/python bench/p7_lucas.py [--instances 936566] [--points 8841]``
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def generate(folder: Path, n_instances: int, n_points: int) -> dict:
    from tasks.lucas.codelist import load_lc1_mapping
    from tasks.lucas.generator import (
        generate_farmland,
        generate_lucas_points,
        map_instances,
        perturb_classes,
        write_instances,
    )

    t0 = time.perf_counter()
    layout = generate_farmland(n_instances, seed=7)
    model = perturb_classes(layout.parcel_class, 0.15, seed=8)
    write_instances(map_instances(layout, model), folder / "map.parquet")
    points = generate_lucas_points(layout, int(n_points * 1.7), seed=9)
    mapping = load_lc1_mapping()
    crop = np.array([mapping.classify(c) not in ("non_crop", "not_comparable") for c in
                     points["LC1"]])
    keep_crop = np.flatnonzero(crop)[:n_points]
    if keep_crop.size < n_points:
        raise RuntimeError(f"only {keep_crop.size} crop points generated; raise the oversampling")
    keep = np.sort(np.concatenate([keep_crop, np.flatnonzero(~crop)]))
    points.iloc[keep].to_csv(folder / "points.csv", index=False)
    x0, y0, x1, y1 = layout.bounds
    return {"generate_s": time.perf_counter() - t0, "points_in_file": int(keep.size),
            "extent_km": [round((x1 - x0) / 1e3, 1), round((y1 - y0) / 1e3, 1)],
            "map_mb": round((folder / "map.parquet").stat().st_size / 1e6, 1)}


def measure(folder: Path, repeats: int, naive_points: int) -> dict:
    """Runs in its own process: timed evaluation, then the all-pairs baseline."""
    import shapely

    from tasks.lucas.crop_map import read_instances
    from tasks.lucas.evaluate import evaluate_against_lucas
    from tasks.lucas.matching import all_pairs_neighbourhood

    times = []
    report = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        report = evaluate_against_lucas(folder / "points.csv", folder / "map.parquet")
        times.append(time.perf_counter() - t0)
    rss_indexed = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert report is not None
    table = report.point_results
    used = table[table["status"] == "used"]
    # naive baseline: decode every polygon, then point-to-all-polygons distances
    t0 = time.perf_counter()
    crop_map = read_instances(folder / "map.parquet")
    geoms = crop_map.all_geometries()
    shapely.prepare(geoms)
    load_s = time.perf_counter() - t0
    sample = used.sample(naive_points, random_state=0)
    t0 = time.perf_counter()
    naive = all_pairs_neighbourhood(geoms, crop_map.class_index, sample["x"].to_numpy(),
                                    sample["y"].to_numpy(), report.radius_m)
    per_point = (time.perf_counter() - t0) / naive_points
    from tasks.domain.crops import CROP_CLASSES
    naive_nearest = [CROP_CLASSES[c] for c in naive.nearest_class]
    merged = ["barley" if c in ("winter_barley", "spring_barley") else c for c in naive_nearest]
    agree = float(np.mean(np.array(merged) == sample["nearest_class"].to_numpy(dtype=str)))
    naive_total = load_s + per_point * len(used)
    return {
        "indexed_s": times, "indexed_best_s": min(times),
        "indexed_median_s": float(np.median(times)),
        "peak_rss_mb_indexed": round(rss_indexed, 1),
        "peak_rss_mb_with_baseline": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "points_read": report.points_total, "points_used": report.points_used,
        "instances": len(crop_map),
        "oa_within_radius": report.within_radius.overall_accuracy,
        "median_f1_within_radius": report.within_radius.median_f1,
        "oa_nearest": report.nearest.overall_accuracy,
        "naive_points": naive_points, "naive_load_s": load_s, "naive_per_point_s": per_point,
        "naive_extrapolated_s": naive_total,
        "speedup_vs_naive": naive_total / float(np.median(times)),
        "naive_nearest_agrees": agree,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=936_566)
    parser.add_argument("--points", type=int, default=8_841)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-points", type=int, default=20)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_only:
        print(json.dumps(measure(args.folder, args.repeats, args.naive_points)))
        return
    with tempfile.TemporaryDirectory(prefix="p7_lucas_") as tmp:
        folder = args.folder or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        info = generate(folder, args.instances, args.points)
        print(f"generated in {info['generate_s']:.1f} s: {info}", file=sys.stderr)
        out = subprocess.run(
            [sys.executable, __file__, "--measure-only", "--folder", str(folder),
             "--repeats", str(args.repeats), "--naive-points", str(args.naive_points)],
            check=True, capture_output=True, text=True,
        )
        result = {**info, **json.loads(out.stdout.strip().splitlines()[-1])}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
