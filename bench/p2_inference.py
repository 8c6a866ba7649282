"""P2: dense (fully convolutional, tiled) scene inference in int8 and fp32 vs per-patch baselines.

Steps (all on CPU, torch threads = --threads, default 2):
  1. a synthetic harmonised scene of --size x --size pixels (default 10,000: a full EW scene at
     40 m), written strip by strip and cached in bench/out/p2/;
  2. an ad-hoc CNN (full width) trained for one epoch on patches of a small scene, through the
     real patches / train code (its weights do not change the timing);
  3. the fp32 arithmetic limit: the network's multiply-adds per output cell
     (``tasks.models.dense.multiply_adds_per_cell``) x cells, over --threads x the fp32 GEMM
     rate of one core measured in the same run (4096 x 1024 x 1024, per thread CPU-second, so
     other load does not lower it);
  4. dense: ``predict_scene`` end to end (inference + COG + PNG + GeoJSON) with
     ``predict.precision`` int8 (static quantisation, calibrated on 9 crops of the scene,
     reader / writer threads overlapping IO with compute); for scenes <= 3072 px (not with
     --quick) also fp32 (as trained) and the agreement of the two charts over charted pixels;
  5. on a corner of the scene (<= 3072 px): ``class_map`` in fp32, in int8 without and with
     the reader / writer threads; agreement of int8 with fp32 over output cells (the goal's
     figure), fp32 time extrapolated to the scene;
  6. naive: ``ScenePredictor.classify_windows`` (each 32 px window read from the zarr scene and
     classified, in batches of 256) on a random subsample of the output cells, extrapolated;
  7. batched sliding windows: one 1024 px tile read once, all its windows cut in memory
     (``unfold``) and classified in fp32 in batches of 1024 -- the strongest simple baseline,
     extrapolated;
  8. VGG-16 modified and VGG-16 fp32 dense on one 1024 px tile, extrapolated to the scene.

Headline ratio: batched sliding windows (step 7, what a competent user writes with torch:
``unfold`` + batches) / int8 dense inference time; fp32 dense and the naive reader are extra
rows. Goal: the 10,000 x 10,000 scene end to end in <= 60 s wall on the 2 cores (a smaller
``--size`` is held to 60 s scaled by its pixel count) with >= 99.5 % of charted pixels as in
the fp32 chart. CPU = user + system.

    .venv/bin/python bench/p2_inference.py [--size 10000] [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "p2"
sys.path.insert(0, str(REPO / "tests" / "tasks" / "polar"))
sys.path.insert(0, str(REPO / "bench"))

from common import Timer, add_quick_flag, report  # noqa: E402

GOAL_S_10K = 60.0
#: int8 charts must match the fp32 chart on this share of charted pixels (issue 17).
AGREEMENT_GOAL = 0.995
#: fp32 / int8 class maps, their agreement and the overlap rows run on a corner this large; the
#: full-scene fp32 run (end to end, chart agreement) only when the scene is no larger.
CROP_PX = 3072


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scene(size: int) -> Path:
    from polar_synthetic_scene import write_synthetic_scene

    folder = OUT / f"scene_{size}"
    scene_id = f"S1A_EW_GRDM_P2_{size}"  # the id names the mode: predict's input guard needs EW
    path = folder / "harmonise" / f"{scene_id}.zarr"
    if not (path / "zarr.json").exists() or not (folder / "labels" / f"{scene_id}.zarr").exists():
        shutil.rmtree(folder, ignore_errors=True)
        t = time.perf_counter()
        write_synthetic_scene(folder, scene_id, size, size, seed=7, chunk=1024, blob_px=600.0)
        print(f"wrote {size}x{size} scene in {time.perf_counter() - t:.0f} s", flush=True)
    return path


def model_dir() -> Path:
    from polar_synthetic_scene import write_synthetic_scene

    from tasks.config.polar import PolarConfig
    from tasks.polar.patches import run_patches
    from tasks.polar.train import latest_model, train_model

    root = OUT / "model_root"
    try:
        return latest_model(root)
    except FileNotFoundError:
        pass
    s, lab = write_synthetic_scene(root / "in", "P2_TRAIN", 768, 768, seed=3)
    cfg = PolarConfig.model_validate({
        "data_root": str(root), "dask": {"cluster": "synchronous"},
        "patches": {"sizes": [32], "stride": 16, "max_per_class": 200},
        "train": {"model": "adhoc_cnn", "epochs": 1, "accelerator": "cpu"}})
    data = run_patches(cfg, [s], [lab])
    return Path(train_model(cfg, Path(data["datasets"][32]))["model_dir"])


def fp32_gemm_rate_per_core() -> float:
    """fp32 GEMM multiply-adds per CPU-second on one thread (4096 x 1024 x 1024, MKL).

    The fp32 arithmetic limit of one core as MKL reaches it, measured in the same run; CPU
    time, not wall, so other processes on the machine do not lower it. The 2-core limit
    assumed is twice this (the dense network's big layers are GEMMs of this shape after
    im2col).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, b = torch.randn(4096, 1024), torch.randn(1024, 1024)
        for _ in range(2):
            a @ b
        best = float("inf")
        for _ in range(3):
            t = time.thread_time()
            for _ in range(4):
                a @ b
            best = min(best, (time.thread_time() - t) / 4)
    finally:
        torch.set_num_threads(threads)
    return 4096 * 1024 * 1024 / best


def chart_agreement(chart_a: str, chart_b: str) -> tuple[float, int]:
    """Share of charted (not land, not no-data) pixels with the same class in two charts."""
    import rasterio

    from tasks.polar.quicklook import CHART_LAND, CHART_NODATA

    same = total = 0
    with rasterio.open(chart_a) as a, rasterio.open(chart_b) as b:
        for _, window in a.block_windows(1):
            x, y = a.read(1, window=window), b.read(1, window=window)
            charted = (x != CHART_LAND) & (x != CHART_NODATA)
            same += int((x[charted] == y[charted]).sum())
            total += int(charted.sum())
    return same / max(total, 1), total


def dense_runs(mdir: Path, scene_path: Path, full_fp32: bool,
               rows: dict[str, Any]) -> None:
    """predict_scene end to end in int8 (the fast path), and in fp32 when ``full_fp32``."""
    from tasks.config.polar import PredictConfig
    from tasks.polar.predict import predict_scene

    results = {}
    for precision in ("int8", "fp32") if full_fp32 else ("int8",):
        out = OUT / f"products_{precision}"
        shutil.rmtree(out, ignore_errors=True)
        load = os.getloadavg()[0]
        with Timer() as timer:
            result = predict_scene(mdir, scene_path, out,
                                   PredictConfig(tile=1024, precision=precision))
        results[precision] = result
        rows[f"dense_{precision}_inference_s"] = result["inference_seconds"]
        rows[f"dense_{precision}_calibration_s"] = result["calibration_seconds"]
        rows[f"dense_{precision}_end_to_end_s"] = round(timer.wall_s, 1)
        rows[f"dense_{precision}_end_to_end_cpu_s"] = round(timer.cpu_s, 1)
        rows[f"dense_{precision}_write_products_s"] = round(
            result["total_seconds"] - result["inference_seconds"], 1)
        rows[f"dense_{precision}_load_average_before"] = round(load, 1)
        print(f"dense {precision}: inference {result['inference_seconds']} s, end to end "
              f"{timer.wall_s:.1f} s wall / {timer.cpu_s:.1f} s CPU (load {load:.1f})", flush=True)
    if full_fp32:
        agreement, pixels = chart_agreement(results["int8"]["chart"], results["fp32"]["chart"])
        rows["int8_vs_fp32_chart_agreement"] = round(agreement, 5)
        rows["agreement_charted_pixels"] = pixels


def crop_rows(loaded: Any, scene_path: Path, size: int, rows: dict[str, Any]) -> None:
    """On a corner of the scene (<= 3072 px): fp32 and int8 class maps (with and without the
    reader / writer threads), their agreement over output cells, wall and CPU times."""
    import xarray as xr

    from tasks.polar.predict import ScenePredictor

    edge = min(size, CROP_PX)
    ds = xr.open_zarr(scene_path).isel(y=slice(0, edge), x=slice(0, edge))
    maps = {}
    for label, precision, overlap in (("fp32", "fp32", True), ("int8_no_overlap", "int8", False),
                                      ("int8", "int8", True)):
        predictor = ScenePredictor(loaded, tile=1024, precision=precision, overlap=overlap)
        load = os.getloadavg()[0]
        with Timer() as timer:
            maps[label] = predictor.class_map(ds, progress=False)
        rows[f"crop_{label}_class_map_s"] = round(timer.wall_s, 2)
        rows[f"crop_{label}_class_map_cpu_s"] = round(timer.cpu_s, 2)
        rows[f"crop_{label}_calibration_s"] = round(predictor.calibration_seconds, 2)
        rows[f"crop_{label}_load_average_before"] = round(load, 1)
        print(f"crop {edge}px {label}: {timer.wall_s:.1f} s wall / {timer.cpu_s:.1f} s CPU "
              f"(calibration {predictor.calibration_seconds:.1f} s, load {load:.1f})", flush=True)
    rows["crop_px"] = edge
    rows["crop_cells"] = int(maps["fp32"].size)
    rows["crop_int8_vs_fp32_cell_agreement"] = round(float((maps["int8"] == maps["fp32"]).mean()),
                                                     5)
    rows["crop_overlap_gain_wall"] = round(
        rows["crop_int8_no_overlap_class_map_s"] / rows["crop_int8_class_map_s"], 2)


def baselines(loaded: Any, scene_path: Path, size: int, naive_cells: int,
              rows: dict[str, Any]) -> float:
    """Naive per-window and batched sliding-window fp32 baselines (extrapolated); sliding s."""
    import torch
    import xarray as xr

    from tasks.polar.predict import ScenePredictor

    ds = xr.open_zarr(scene_path)
    predictor = ScenePredictor(loaded, tile=1024)
    s = predictor.stride
    n_cells = (-(-size // s)) ** 2
    rng = np.random.default_rng(0)
    cells = np.stack([rng.integers(0, size // s, naive_cells),
                      rng.integers(0, size // s, naive_cells)], axis=1)
    t = time.perf_counter()
    predictor.classify_windows(ds, cells, batch_size=256)
    naive_total = (time.perf_counter() - t) / len(cells) * n_cells
    tile = 1024  # batched sliding windows over one in-memory tile
    window = predictor.read_normalised(
        ds["backscatter"].sel(band=loaded.meta["bands"]).transpose("band", "y", "x"),
        slice(0, tile + 24), slice(0, tile + 24))
    with Timer() as timer, torch.inference_mode():
        x = torch.from_numpy(window)[None]
        patches = torch.nn.functional.unfold(x, 32, stride=s)  # (1, C*32*32, L)
        patches = patches[0].T.reshape(-1, window.shape[0], 32, 32)
        for start in range(0, len(patches), 1024):
            loaded.net(patches[start:start + 1024].contiguous())
    sliding_total = timer.wall_s / len(patches) * n_cells
    rows["sliding_windows_cpu_s_extrapolated"] = round(timer.cpu_s / len(patches) * n_cells, 0)
    rows["naive_per_patch_s_extrapolated"] = round(naive_total, 0)
    rows["naive_sample_cells"] = len(cells)
    rows["sliding_windows_s_extrapolated"] = round(sliding_total, 0)
    return sliding_total


def vgg_rows(size: int, rows: dict[str, Any]) -> None:
    """VGG-16 modified and VGG-16 (full width, random weights) fp32 on one tile, extrapolated."""
    import torch

    from tasks.models.ice_zoo import build_model

    tile = 1024
    for name in ("vgg16_modified", "vgg16"):
        net = build_model(name, 2, 3, 32).eval()
        margin = net.context_margin()
        image = torch.randn(1, 3, tile + 24 + 2 * margin, tile + 24 + 2 * margin)
        with torch.inference_mode():
            t = time.perf_counter()
            net.forward_dense(image)
            per_tile = time.perf_counter() - t
        rows[f"{name}_dense_s_extrapolated"] = round(per_tile * (size / tile) ** 2, 0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--naive-cells", type=int, default=3000)
    parser.add_argument("--skip-vgg", action="store_true")
    add_quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.size, args.naive_cells, args.skip_vgg = 1024, 200, True
    import torch

    torch.set_num_threads(args.threads)
    from tasks.models.dense import multiply_adds_per_cell
    from tasks.polar.train import load_model

    scene_path = scene(args.size)
    mdir = model_dir()
    loaded = load_model(mdir)
    stride = int(loaded.net.output_stride)
    n_cells = (-(-args.size // stride)) ** 2
    macs = multiply_adds_per_cell(loaded.net) * n_cells
    gemm = fp32_gemm_rate_per_core() * args.threads
    rows: dict[str, Any] = {
        "scene_px": f"{args.size}x{args.size}", "threads": args.threads,
        "output_cells": n_cells, "output_stride": stride,
        "network_multiply_adds_T": round(macs / 1e12, 3),
        "fp32_gemm_G_multiply_adds_per_s_all_threads": round(gemm / 1e9, 1),
        "fp32_arithmetic_limit_s": round(macs / gemm, 1),
        "rss_before_mb": round(peak_rss_mb(), 0)}
    print(f"{rows['network_multiply_adds_T']} T multiply-adds; fp32 GEMM "
          f"{rows['fp32_gemm_G_multiply_adds_per_s_all_threads']} G/s -> fp32 limit "
          f"{rows['fp32_arithmetic_limit_s']} s", flush=True)
    dense_runs(mdir, scene_path, args.size <= CROP_PX and not args.quick, rows)
    rows["dense_peak_rss_mb"] = round(peak_rss_mb(), 0)
    crop_rows(loaded, scene_path, args.size, rows)
    scale = n_cells / rows["crop_cells"]
    crop_macs = macs / n_cells * rows["crop_cells"]
    for label in ("fp32", "int8"):  # per CPU-second: independent of other load on the machine
        rate = crop_macs / rows[f"crop_{label}_class_map_cpu_s"]
        rows[f"crop_{label}_G_multiply_adds_per_cpu_s"] = round(rate / 1e9, 1)
        rows[f"crop_{label}_rate_vs_fp32_gemm_per_core"] = round(rate / (gemm / args.threads), 2)
    rows["fp32_inference_s_extrapolated_from_crop"] = round(
        rows["crop_fp32_class_map_s"] * scale, 1)
    rows["fp32_inference_cpu_s_extrapolated_from_crop"] = round(
        rows["crop_fp32_class_map_cpu_s"] * scale, 1)
    fp32_infer = rows.get("dense_fp32_inference_s", rows["fp32_inference_s_extrapolated_from_crop"])
    dense_infer = rows["dense_int8_inference_s"]
    for label, seconds in (("int8", dense_infer), ("fp32", fp32_infer)):
        rows[f"dense_{label}_G_multiply_adds_per_s"] = round(macs / seconds / 1e9, 1)
        rows[f"dense_{label}_share_of_fp32_limit"] = round(
            rows["fp32_arithmetic_limit_s"] / seconds, 3)
    sliding_total = baselines(loaded, scene_path, args.size, args.naive_cells, rows)
    rows["speedup_int8_vs_fp32_dense"] = round(fp32_infer / dense_infer, 2)
    rows["speedup_vs_naive"] = round(rows["naive_per_patch_s_extrapolated"] / dense_infer, 1)
    rows["speedup_vs_sliding_windows"] = round(sliding_total / dense_infer, 1)
    rows["fp32_dense_speedup_vs_sliding_windows"] = round(sliding_total / fp32_infer, 1)
    # the same ratios in CPU time per cell (robust to other load): crop class maps vs sliding
    for label in ("int8", "fp32"):
        rows[f"speedup_{label}_vs_sliding_windows_cpu"] = round(
            rows["sliding_windows_cpu_s_extrapolated"]
            / (rows[f"crop_{label}_class_map_cpu_s"] * scale), 1)
    if not args.skip_vgg:
        vgg_rows(args.size, rows)
    rows["load_average_1min_end"] = round(os.getloadavg()[0], 1)
    print(json.dumps(rows, indent=1))
    (OUT / "result.json").write_text(json.dumps(rows, indent=1))
    goal_s = GOAL_S_10K * (args.size / 10_000) ** 2
    rows["goal_s_for_size"] = round(goal_s, 2)
    agreement = rows["crop_int8_vs_fp32_cell_agreement"]
    met = rows["dense_int8_end_to_end_s"] <= goal_s and agreement >= AGREEMENT_GOAL
    report("p2_inference", sliding_total / dense_infer,
           f"int8 end to end <= {GOAL_S_10K:g} s wall for 10,000^2 (scaled: {goal_s:.1f} s "
           f"here; {rows['dense_int8_end_to_end_s']} s) with >= {AGREEMENT_GOAL:.1%} of output "
           f"cells as fp32 ({agreement:.2%})", met, rows,
           baseline="batched sliding windows in fp32 (unfold + batches of 1024), extrapolated",
           quick=args.quick)


if __name__ == "__main__":
    main()
