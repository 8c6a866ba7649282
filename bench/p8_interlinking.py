"""P8: topological interlinking (JedAI-spatial style) against shapely's own relate.

For each size: generates (not timed) parcels tessellating a region and field instances derived
from them (tasks.interlinking.generator: equal / shrunk / shifted / split / merged polygons and
ditches, skewed sizes and densities), then times, interleaved and repeated in the same process:

* ours: ``interlink(parcels, fields)``, the whole thing: bounds, data-derived equi-grid, candidate
  pairs with reference-cell dedup, MBR test, vectorised ``shapely.relate`` + relation masks;
* baseline: ``shapely.relate(a, b)`` on just the pairs ours verified (arrays gathered beforehand,
  in the (source, target) order ours returns), i.e. the verification alone, no filtering.

* plain pipeline (the headline baseline: what a competent user writes with shapely alone):
  ``STRtree(fields).query(parcels, predicate="intersects")`` then ``shapely.relate`` on the pairs
  it returns.

Goal ratio = ours / relate-alone with the minimum over repeats of each, on CPU time (user +
system of the process, less exposed to other jobs on the shared 2-core box) and on wall time;
goal <= 1.25 at every size. Headline ratio = plain STRtree pipeline / ours (CPU, largest size;
> 1: ours faster). Then, at the selector size:
recall / precision at 10 / 25 / 50 % of the exhaustive candidate count per selector, the paper's
ordering check and the recall-vs-budget PNG; and the Dask run (LocalCluster) checked equal to the
single-process result. Writes bench/results/p8_interlinking.json, the PNG under bench/out/.

Run: ``.venv/bin/python bench/p8_interlinking.py [--sizes 100000,300000,1000000] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Timer, add_quick_flag  # noqa: E402
from common import report as bench_report  # noqa: E402

HERE = Path(__file__).resolve().parent
GOAL = 1.25


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn):
    with Timer() as timer:
        out = fn()
    return out, timer.cpu_s, timer.wall_s


def strtree_relate(parcels: np.ndarray, fields: np.ndarray) -> np.ndarray:
    """The plain pipeline: an STRtree query for intersecting pairs, then relate on them."""
    import shapely

    tree = shapely.STRtree(fields)
    source, target = tree.query(parcels, predicate="intersects")
    return shapely.relate(parcels[source], fields[target])


def measure_size(n_parcels: int, repeats: int, seed: int) -> tuple[dict, np.ndarray, np.ndarray]:
    import shapely

    from tasks.interlinking.generator import generate_sets
    from tasks.interlinking.link import interlink
    from tasks.interlinking.triples import relation_counts

    sets, _, gen_wall = timed(lambda: generate_sets(n_parcels, seed=seed))
    parcels = sets.parcels.geometry.to_numpy()
    fields = sets.fields.geometry.to_numpy()
    print(f"[{n_parcels}] generated {parcels.size} parcels x {fields.size} fields in "
          f"{gen_wall:.1f}s", flush=True)
    ours_cpu, ours_wall, base_cpu, base_wall = [], [], [], []
    tree_cpu, tree_wall = [], []
    result = None
    pair_a = pair_b = None
    for repeat in range(repeats):
        result, cpu, wall = timed(lambda: interlink(parcels, fields))
        ours_cpu.append(cpu)
        ours_wall.append(wall)
        if pair_a is None:
            pair_a, pair_b = parcels[result.source], fields[result.target]
        _, cpu, wall = timed(lambda a=pair_a, b=pair_b: shapely.relate(a, b))
        base_cpu.append(cpu)
        base_wall.append(wall)
        tree_pairs, cpu, wall = timed(lambda: strtree_relate(parcels, fields))
        tree_cpu.append(cpu)
        tree_wall.append(wall)
        print(f"[{n_parcels}] repeat {repeat}: ours {ours_wall[-1]:.2f}s wall / "
              f"{ours_cpu[-1]:.2f}s cpu, relate alone {base_wall[-1]:.2f}s / {base_cpu[-1]:.2f}s",
              flush=True)
    counts = relation_counts(result.masks)
    return {
        "parcels": int(parcels.size), "fields": int(fields.size),
        "vertices": int(shapely.get_num_coordinates(parcels).sum()
                        + shapely.get_num_coordinates(fields).sum()),
        "generate_s": round(gen_wall, 2),
        "candidates": result.candidates, "verified": result.verified,
        "related": counts["intersects"], "relations": counts,
        "grid": {"dx_m": round(result.grid.dx, 2), "dy_m": round(result.grid.dy, 2),
                 "cells": result.grid.nx * result.grid.ny},
        "ours_wall_s": [round(x, 3) for x in ours_wall],
        "ours_cpu_s": [round(x, 3) for x in ours_cpu],
        "relate_wall_s": [round(x, 3) for x in base_wall],
        "relate_cpu_s": [round(x, 3) for x in base_cpu],
        "strtree_relate_wall_s": [round(x, 3) for x in tree_wall],
        "strtree_relate_cpu_s": [round(x, 3) for x in tree_cpu],
        "strtree_pairs": int(tree_pairs.size),
        "speedup_vs_strtree_cpu": round(min(tree_cpu) / min(ours_cpu), 3),
        "ratio_cpu": round(min(ours_cpu) / min(base_cpu), 3),
        "ratio_wall": round(min(ours_wall) / min(base_wall), 3),
        "relate_pairs_per_s": round(result.verified / min(base_cpu)),
        "ours_pairs_per_s": round(result.verified / min(ours_cpu)),
        "peak_rss_mb": round(rss_mb()),
    }, parcels, fields


def measure_triples(parcels, fields, tmp: Path) -> dict:
    from tasks.interlinking.link import interlink
    from tasks.interlinking.triples import write_ntriples

    result = interlink(parcels, fields)
    base = "https://w3id.org/eeflow/data/feature/interlinking/"
    iris_a = np.array([f"{base}parcels/{i}" for i in range(parcels.size)], dtype=object)
    iris_b = np.array([f"{base}fields/{i}" for i in range(fields.size)], dtype=object)
    triples, cpu, wall = timed(lambda: write_ntriples(tmp / "relations.nt", iris_a, iris_b,
                                                      result.source, result.target, result.masks))
    size = (tmp / "relations.nt").stat().st_size
    (tmp / "relations.nt").unlink()
    return {"triples": triples, "write_s": round(wall, 2), "mb": round(size / 1e6, 1)}


def measure_dask(parcels, fields, workers: int) -> dict:
    from tasks.config.common import DaskConfig
    from tasks.dask_cluster import dask_client
    from tasks.interlinking.link import interlink

    single, _, single_wall = timed(lambda: interlink(parcels, fields))
    cfg = DaskConfig(cluster="local", n_workers=workers, threads_per_worker=1,
                     memory_limit="6GiB")
    with dask_client(cfg) as client:
        parted, _, dask_wall = timed(lambda: interlink(parcels, fields, n_partitions=4 * workers,
                                                       client=client))
    equal = all(np.array_equal(getattr(single, f), getattr(parted, f))
                for f in ("source", "target", "de9im", "masks"))
    return {"workers": workers, "partitions": 4 * workers, "single_wall_s": round(single_wall, 2),
            "dask_wall_s": round(dask_wall, 2), "equal_to_single_process": equal}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,300000,1000000",
                        help="parcel counts (fields come out at ~0.9x)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--selector-size", type=int, default=0,
                        help="parcels for the selector comparison (default: largest size)")
    parser.add_argument("--dask-workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=11)
    add_quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeats, args.dask_workers = "10000", 1, 0
    sizes = [int(s) for s in args.sizes.split(",")]
    out: dict = {"goal": GOAL, "sizes": []}
    keep = None
    for n in sizes:
        repeats = args.repeats if n < 1_000_000 else max(2, args.repeats - 1)
        row, parcels, fields = measure_size(n, repeats, args.seed)
        out["sizes"].append(row)
        keep = (n, parcels, fields)
    largest_n, parcels, fields = keep
    tmp = HERE / "out"
    tmp.mkdir(exist_ok=True)
    out["triples_largest"] = measure_triples(parcels, fields, tmp)
    print(f"triples: {out['triples_largest']}", flush=True)

    from tasks.interlinking.progressive import compare_selectors, plot_recall_curves

    selector_n = args.selector_size or largest_n
    if selector_n != largest_n:
        from tasks.interlinking.generator import generate_sets

        sets = generate_sets(selector_n, seed=args.seed)
        parcels, fields = sets.parcels.geometry.to_numpy(), sets.fields.geometry.to_numpy()
    report, _, wall = timed(lambda: compare_selectors(parcels, fields))
    report["parcels"], report["fields"], report["wall_s"] = selector_n, int(fields.size), wall
    plot_recall_curves(report, tmp / "p8_recall_vs_budget.png",
                       title=f"P8: {parcels.size:,} parcels x {fields.size:,} fields, "
                             f"{report['candidates']:,} candidates")
    out["selectors"] = {k: report[k] for k in ("parcels", "fields", "candidates", "related",
                                               "at_fractions", "paper_ordering", "seconds")}
    print(json.dumps(report["at_fractions"]), flush=True)
    if args.dask_workers:
        out["dask"] = measure_dask(parcels, fields, args.dask_workers)
        out["dask"]["parcels"] = int(parcels.size)
        print(f"dask: {out['dask']}", flush=True)

    last = out["sizes"][-1]
    pairs_per_geometry = last["verified"] / last["parcels"]
    seconds_per_pair = min(last["ours_cpu_s"]) / last["verified"]
    out["extrapolation_1M_x_1M"] = {
        "basis": f"{last['parcels']} parcels x {last['fields']} fields",
        "verified_pairs": round(pairs_per_geometry * 1_000_000),
        "ours_s": round(pairs_per_geometry * 1_000_000 * seconds_per_pair, 1),
    }
    out["peak_rss_mb"] = round(rss_mb())
    ratio = max(r["ratio_cpu"] for r in out["sizes"])
    out["ratio"] = ratio
    out["met"] = ratio <= GOAL
    print(f"goal ratio (ours / relate alone, worst CPU over sizes) {ratio:.3f}; largest "
          f"{last['parcels']} x {last['fields']}: {min(last['ours_wall_s']):.1f}s wall, wall "
          f"ratio {last['ratio_wall']}")
    bench_report("p8_interlinking", last["speedup_vs_strtree_cpu"],
           f"ours <= {GOAL}x shapely.relate alone on the verified pairs (CPU, every size; worst "
           f"{ratio:.3f})", bool(out["met"]), out,
           baseline="STRtree query (predicate=intersects) + shapely.relate on its pairs (CPU)",
           quick=args.quick)


if __name__ == "__main__":
    main()
