"""P2 on a GPU: dense ice-chart inference of a synthetic scene through tasks/models/dense.py.

Needs only torch and numpy (no zarr / xarray / pydantic / rasterio), so it runs on a bare CUDA
machine from the repository root::

    PYTHONPATH=. python3 bench/p2_gpu.py --size 10000 --out "$OUT"          # CUDA
    PYTHONPATH=. python3 bench/p2_gpu.py --device cpu --size 1024 --out /tmp/p2gpu   # smoke run
    .venv/bin/python bench/p2_gpu.py --quick     # make bench-quick: 512^2, ad-hoc CNN only

What it does, per model (random-init ad-hoc CNN at full width; VGG-16 modified unless
``--models`` leaves it out) and per precision (CUDA: fp32 with TF32 off, fp32 with cuDNN's
default TF32 convolutions, bf16 autocast; CPU: fp32 and int8):

1. a synthetic 3-band scene of ``--size`` x ``--size`` pixels (smooth random fields plus noise)
   in host memory, edge-padded once by the halo and context margin, cut into tiles of
   ``--tile`` output pixels (every tile the same shape; the last row / column overhangs);
2. warm-up: one batch;
3. the scene: every tile batch copied to the device (``channels_last`` on CUDA), classified by
   :class:`tasks.models.dense.DenseKernel` and the uint8 classes copied back to the host
   (timed end to end, ``torch.cuda.synchronize`` around it), plus the compute alone on tiles
   already on the device;
4. agreement of each precision's class map with the strict fp32 one. Random weights put almost
   every cell in one class, so the class layer's bias is first shifted until both classes cover
   about half of a few crops (:func:`balance_classes`); random weights still give near-tied
   logits, so this is a pessimistic figure (a trained model's is higher).

Prints progress and the summary line ``P2: ratio=...`` (ratio: strict fp32 / the fastest
precision, same device, same run); writes ``p2_gpu.json`` (``p2_gpu.quick.json`` with ``--quick``)
into ``--out`` (default ``bench/results``) through ``bench/common.py`` (standard library only).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from common import add_quick_flag, report  # noqa: E402  (bench/common.py: standard library only)

from tasks.models.adhoc_cnn import AdhocCNN  # noqa: E402
from tasks.models.dense import DenseKernel, multiply_adds_per_cell  # noqa: E402
from tasks.models.vgg16 import VGG16Modified  # noqa: E402

#: CPU goal of issue 17 for the 10,000^2 scene (the GPU figure is reported beside it).
GOAL_S_10K = 60.0


def synthetic_scene(size: int, seed: int = 0) -> torch.Tensor:
    """(3, size, size) float32 on the host: smooth random fields (~100 px blobs) plus noise."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, 3, size // 100 + 3, size // 100 + 3, generator=generator)
    scene = torch.empty(3, size, size)
    strip = 2048
    for r0 in range(0, size, strip):  # upsample strip by strip: bounded temporary memory
        r1 = min(size, r0 + strip)
        rows = torch.linspace(r0, r1 - 1, r1 - r0) / size * (coarse.shape[2] - 3) + 1
        cols = torch.linspace(0, size - 1, size) / size * (coarse.shape[3] - 3) + 1
        grid_y = (rows / (coarse.shape[2] - 1)) * 2 - 1
        grid_x = (cols / (coarse.shape[3] - 1)) * 2 - 1
        grid = torch.stack(torch.meshgrid(grid_x, grid_y, indexing="xy"), dim=-1)[None]
        smooth = nn.functional.grid_sample(coarse, grid, align_corners=True)[0]
        scene[:, r0:r1] = 1.5 * smooth + 0.3 * torch.randn(3, r1 - r0, size, generator=generator)
    return scene


def build(name: str) -> nn.Module:
    """A random-init (seeded) full-width network by name, eval mode."""
    torch.manual_seed(0)
    if name == "adhoc_cnn":
        return AdhocCNN(2, 3, 32, dropout=0.0).eval()
    if name == "vgg16_modified":
        return VGG16Modified(2, 3, 32, dropout=0.0).eval()
    raise SystemExit(f"--models: unknown model {name!r}; use adhoc_cnn and/or vgg16_modified")


class TiledScene:
    """A host scene edge-padded once and cut into equal tiles for a network's dense pass."""

    def __init__(self, scene: torch.Tensor, net: nn.Module, tile: int) -> None:
        stride, patch = int(net.output_stride), int(net.patch_size)  # type: ignore[arg-type]
        margin = int(net.context_margin())  # type: ignore[operator]
        self.stride, self.crop = stride, margin // stride
        self.tile = max(stride, tile // stride * stride)
        size = scene.shape[1]
        self.cells = -(-size // stride)
        self.step = self.tile // stride
        self.n_side = -(-self.cells // self.step)
        before = (patch - stride) // 2 + margin
        self.window = self.tile + patch - stride + 2 * margin
        after = self.n_side * self.tile + self.window - self.tile - before - size
        self.padded = nn.functional.pad(scene[None], (before, after, before, after),
                                        mode="replicate")[0]
        self.tiles = [(r, c) for r in range(self.n_side) for c in range(self.n_side)]
        #: int8 calibration crop: 16 x 16 output cells with halo and margin (as predict.py)
        self.calibration_px = 16 * stride + patch - stride + 2 * margin

    def batch(self, tiles: list[tuple[int, int]]) -> torch.Tensor:
        """(len(tiles), 3, window, window) float32 on the host."""
        return torch.stack([self.padded[:, r * self.tile:r * self.tile + self.window,
                                        c * self.tile:c * self.tile + self.window]
                            for r, c in tiles])

    def store(self, out: torch.Tensor, tiles: list[tuple[int, int]],
              classes: torch.Tensor) -> None:
        """Write per-tile classes (n, step, step) into the scene's class map ``out``."""
        for (r, c), values in zip(tiles, classes, strict=True):
            rows = min(self.step, self.cells - r * self.step)
            cols = min(self.step, self.cells - c * self.step)
            out[r * self.step:r * self.step + rows, c * self.step:c * self.step + cols] = \
                values[:rows, :cols]


def balance_classes(net: nn.Module, sample: torch.Tensor) -> float:
    """Shift the class layer's bias so both classes cover about half of ``sample``'s cells.

    Random weights put nearly every cell in one class, which would make any agreement figure
    trivially 1. Returns the share of class 1 on ``sample`` after the shift.
    """
    last = [m for m in net.modules() if isinstance(m, nn.Conv2d)][-1]
    with torch.inference_mode():
        logits = net.forward_dense(sample)  # type: ignore[operator]
        margin = (logits[:, 1] - logits[:, 0]).flatten().median()
    with torch.no_grad():
        assert last.bias is not None
        last.bias[1] -= margin
    with torch.inference_mode():
        return float(net.forward_dense(sample).argmax(1).float().mean())  # type: ignore[operator]


def sync(device: torch.device) -> None:
    """Wait for queued device work (CUDA), so wall times cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_config(scene: TiledScene, kernel: DenseKernel, batch_size: int,
               compute_only: bool) -> tuple[torch.Tensor, dict[str, Any]]:
    """Classify the whole scene; returns the class map and timings."""
    device = kernel.device
    batches = [scene.tiles[i:i + batch_size] for i in range(0, len(scene.tiles), batch_size)]
    out = torch.zeros(scene.cells, scene.cells, dtype=torch.uint8)
    kernel.classes(scene.batch(batches[0]), crop=scene.crop)  # warm-up (cuDNN plans, caches)
    sync(device)
    start = time.perf_counter()
    for tiles in batches:
        classes = kernel.classes(scene.batch(tiles), crop=scene.crop)
        scene.store(out, tiles, classes.to("cpu"))
    sync(device)
    seconds = time.perf_counter() - start
    row: dict[str, Any] = {"scene_s": round(seconds, 3),
                           "cells_per_s": round(scene.cells**2 / seconds),
                           "batches": len(batches)}
    if compute_only:
        on_device = [scene.batch(tiles).to(device) for tiles in batches]
        sync(device)
        start = time.perf_counter()
        for batch in on_device:
            kernel.classes(batch, crop=scene.crop)
        sync(device)
        compute = time.perf_counter() - start
        row["compute_only_s"] = round(compute, 3)
        del on_device
    return out, row


def precisions_for(device: torch.device) -> list[tuple[str, str, bool]]:
    """(label, DenseKernel precision, cuDNN TF32 allowed) rows for a device."""
    if device.type == "cuda":
        return [("fp32", "fp32", False), ("tf32", "fp32", True), ("bf16", "bf16", False)]
    return [("fp32", "fp32", False), ("int8", "int8", False)]


def bench_model(name: str, host_scene: torch.Tensor, device: torch.device,
                args: argparse.Namespace) -> dict[str, Any]:
    """Every precision of one model on the scene; agreement against strict fp32."""
    net = build(name)
    scene = TiledScene(host_scene, net, args.tile)
    lattice = torch.linspace(0, max(len(scene.tiles) - 1, 0), 3).long().tolist()
    span = scene.calibration_px
    crops = scene.batch([scene.tiles[i] for i in lattice])[:, :, :span, :span]
    class_1_share = balance_classes(net, crops)
    macs = multiply_adds_per_cell(net)
    result: dict[str, Any] = {"output_cells": scene.cells**2, "tiles": len(scene.tiles),
                              "tile_px": scene.tile, "window_px": scene.window,
                              "multiply_adds_per_cell": round(macs),
                              "class_1_share_on_crops": round(class_1_share, 3),
                              "scene_multiply_adds_T": round(macs * scene.cells**2 / 1e12, 3),
                              "rows": {}}
    reference: torch.Tensor | None = None
    for label, precision, tf32 in precisions_for(device):
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        kernel = DenseKernel(net, precision, device)
        if kernel.needs_calibration:  # int8 on the CPU: crops spread over the scene
            kernel.calibrate([crops])
        batch_size = args.batch if device.type == "cuda" else 1
        try:
            classes, row = run_config(scene, kernel, batch_size, compute_only=device.type == "cuda")
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            print(f"  {name} {label}: out of memory at batch {batch_size}; retrying at 1",
                  flush=True)
            batch_size = 1
            classes, row = run_config(scene, kernel, 1, compute_only=device.type == "cuda")
        row["batch_tiles"] = batch_size
        row["effective_T_multiply_adds_per_s"] = round(
            result["scene_multiply_adds_T"] / row["scene_s"], 2)
        if reference is None:
            reference = classes
        row["agreement_vs_fp32"] = round(float((classes == reference).float().mean()), 5)
        print(f"  {name} {label}: scene {row['scene_s']:.2f} s, {row['cells_per_s']:,} cells/s, "
              f"agreement {row['agreement_vs_fp32']:.4f}", flush=True)
        result["rows"][label] = row
        del kernel
        if device.type == "cuda":
            torch.cuda.empty_cache()
    torch.backends.cudnn.allow_tf32 = True  # torch's default
    torch.backends.cuda.matmul.allow_tf32 = False  # torch's default
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns (and writes) the result dictionary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000, help="scene edge in pixels")
    parser.add_argument("--tile", type=int, default=1024, help="tile edge in pixels")
    parser.add_argument("--batch", type=int, default=8, help="tiles per forward pass (CUDA)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", default="adhoc_cnn,vgg16_modified")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for p2_gpu.json (default: bench/results, as every benchmark)")
    add_quick_flag(parser)
    args = parser.parse_args(argv)
    if args.quick:  # make bench-quick: a CPU-sized smoke run wherever it runs
        args.size, args.tile, args.models = 512, 256, "adhoc_cnn"
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch finds no CUDA device here; use --device cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    print(f"p2_gpu: {args.size}^2 scene, tile {args.tile}, device {device}", flush=True)
    host_scene = synthetic_scene(args.size)
    facts: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "torch": torch.__version__, "python": platform.python_version(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(), "load_average_1min": os.getloadavg()[0],
        "scene_px": args.size, "scene_build_s": round(time.perf_counter() - started, 2)}
    print(f"  scene built in {facts['scene_build_s']} s", flush=True)
    models: dict[str, Any] = {}
    for name in args.models.split(","):
        models[name] = bench_model(name.strip(), host_scene, device, args)
    facts["total_s"] = round(time.perf_counter() - started, 1)
    result = {"facts": facts, "models": models}
    rows = models[next(iter(models))]["rows"]
    best = min(rows, key=lambda k: rows[k]["scene_s"])
    seconds = rows[best]["scene_s"] * (10_000 / args.size) ** 2
    print(f"  {next(iter(models))}: 10,000^2 scene {seconds:.1f} s ({best}, "
          f"{rows[best]['cells_per_s']:,} cells/s, agreement "
          f"{rows[best]['agreement_vs_fp32']:.4f}) on {facts['device']}", flush=True)
    report("p2_gpu", rows["fp32"]["scene_s"] / rows[best]["scene_s"],
           f"10,000^2 scene <= {GOAL_S_10K:g} s (issue 17's CPU goal; here {best}, scaled "
           f"{seconds:.1f} s)", seconds <= GOAL_S_10K, result,
           baseline=f"strict fp32 on the same {device.type} device", quick=args.quick,
           results_dir=args.out)
    print(f"done in {facts['total_s']} s", flush=True)
    return result


if __name__ == "__main__":
    main()
