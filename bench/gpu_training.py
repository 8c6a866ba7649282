"""Training throughput of the paper's networks under the Lightning settings of the configs.

Runs the same LightningModules as the pipeline (:class:`tasks.trainers.ice.IceClassifier`,
:class:`tasks.trainers.crops.CropClassifier`) for a fixed number of optimiser steps on random
in-memory batches, once per network and precision, with ``accelerator`` / ``devices`` /
``precision`` / ``strategy`` passed to ``lightning.Trainer`` exactly as
``train.lightning`` passes them (:class:`tasks.config.common.LightningTrainerSettings`). It
needs only torch, numpy and lightning, so it runs unchanged on a GPU machine that has none of
eeflow's data dependencies::

    PYTHONPATH=. python3 bench/gpu_training.py --accelerator gpu --out $OUT     # a CUDA machine
    .venv/bin/python bench/gpu_training.py --quick                              # CPU, seconds

Figures: samples/s per network and precision (after ``--warmup`` steps), the time one epoch of
the Table III grid would take (``--epoch-samples`` patches), and for a ``ddp`` strategy on one
device whether it ran. The headline ratio is bf16-mixed over 32-true samples/s of the ad-hoc
CNN (no goal: it is a measurement for planning ``make paper-tables`` runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import lightning as L  # noqa: E402
import torch  # noqa: E402
from common import add_quick_flag, report  # noqa: E402  (bench/common.py: standard library only)
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from tasks.trainers.ice import IceClassifier  # noqa: E402

ICE_NETS = {"adhoc_cnn": 32, "vgg16": 32, "vgg16_modified": 20}
CROP_NETS = ("lstm", "tempcnn", "starrnn")


class _StepClock(L.Callback):
    """Wall time of the steps after the warm-up, to the end of the epoch (CUDA synchronised)."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start: float | None = None
        self.end: float | None = None
        self.steps = 0
        self.device = "?"

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.device = str(pl_module.device)  # Lightning moves the module back to the CPU after fit

    def _sync(self, pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        if batch_idx == self.warmup:
            self._sync(pl_module)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if batch_idx >= self.warmup:
            self.steps += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # one synchronisation after the last step (one per step would stall the launch queue)
        self._sync(pl_module)
        self.end = time.perf_counter()


def _fit(module: L.LightningModule, data: TensorDataset, batch: int, args: argparse.Namespace,
         precision: str) -> dict[str, Any]:
    clock = _StepClock(args.warmup)
    trainer = L.Trainer(
        accelerator=args.accelerator, devices=args.devices, precision=precision,  # type: ignore[arg-type]
        strategy=args.strategy, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        limit_val_batches=0, callbacks=[clock],
    )
    loader = DataLoader(data, batch_size=batch, shuffle=False, drop_last=True)
    trainer.fit(module, loader)
    if clock.start is None or clock.end is None or clock.steps == 0:
        raise RuntimeError(f"no timed step: {len(loader)} batches <= --warmup {args.warmup}")
    seconds = clock.end - clock.start
    return {"precision": precision, "steps": clock.steps, "batch": batch, "seconds": seconds,
            "samples_per_s": clock.steps * batch / seconds,
            "device": clock.device, "final_loss": float(trainer.callback_metrics.get(
                "train_loss", torch.tensor(float("nan"))))}


def _ice_run(name: str, size: int, precision: str, args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    n = args.batch * (args.warmup + args.steps)
    data = TensorDataset(torch.randn(n, 3, size, size), torch.randint(0, 5, (n,)))
    module = IceClassifier(name, 5, 3, size, width_multiplier=args.width)
    row = _fit(module, data, args.batch, args, precision)
    row.update(network=name, patch_size=size, width=args.width,
               epoch_s=args.epoch_samples / row["samples_per_s"])
    return row


def _crop_run(name: str, precision: str, args: argparse.Namespace) -> dict[str, Any]:
    # the crop networks' module reads the model names from the (pydantic) config package, which
    # a bare GPU machine may lack: imported here, so the ice rows run without it
    from tasks.trainers.crops import CropClassifier

    torch.manual_seed(0)
    n = args.batch * (args.warmup + args.steps)
    data = TensorDataset(torch.rand(n, 12, 13) * 0.4, torch.randint(0, 16, (n,)))
    module = CropClassifier(name, 13, 16, [0.2] * 13, [0.1] * 13)
    row = _fit(module, data, args.batch, args, precision)
    row.update(network=name, epoch_s=args.epoch_samples / row["samples_per_s"])
    return row


def main(argv: list[str] | None = None) -> int:
    """Command line; prints one line per run and the summary line, writes the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu", "auto"])
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--precision", action="append", default=[],
                        help="repeatable; default 32-true and bf16-mixed")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier of the ice nets")
    parser.add_argument("--epoch-samples", type=int, default=100_000)
    add_quick_flag(parser)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.accelerator, args.batch, args.steps, args.warmup, args.width = "cpu", 16, 2, 1, 0.25
    precisions = args.precision or ["32-true", "bf16-mixed"]
    ice_nets = {"adhoc_cnn": 32} if args.quick else ICE_NETS
    crop_nets = ("tempcnn",) if args.quick else CROP_NETS
    rows: list[dict[str, Any]] = []
    for precision in precisions:
        for name, size in ice_nets.items():
            rows.append(_ice_run(name, size, precision, args))
            print(json.dumps(rows[-1]), flush=True)
        for crop in crop_nets:
            try:
                rows.append(_crop_run(crop, precision, args))
            except ImportError as err:  # no pydantic on this machine: say so, keep the ice rows
                print(f"crop networks skipped: {err}", flush=True)
                break
            print(json.dumps(rows[-1]), flush=True)
    rate = {(r["network"], r["precision"]): r["samples_per_s"] for r in rows}
    ratio = None
    if ("adhoc_cnn", "bf16-mixed") in rate and ("adhoc_cnn", "32-true") in rate:
        ratio = rate[("adhoc_cnn", "bf16-mixed")] / rate[("adhoc_cnn", "32-true")]
    result = {"accelerator": args.accelerator, "devices": args.devices, "strategy": args.strategy,
              "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
              "torch": torch.__version__, "lightning": L.__version__, "rows": rows,
              "ratio_bf16_over_fp32_adhoc": ratio}
    report("gpu_training", ratio, "none (a measurement for planning paper-table runs)", None,
           result, baseline="32-true samples/s of the ad-hoc CNN, same device, same run",
           quick=args.quick, results_dir=args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
