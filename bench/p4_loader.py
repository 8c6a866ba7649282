"""P4: crop-sample loader throughput vs the model's training-step throughput (issue 4).

Writes a synthetic ``train.zarr`` (contract of tasks/food_security/schema.py), then measures:
- the eeflow loader (``CropSampleBatches``: block reads + in-block shuffle), samples/s;
- the headline baseline in the same run: a plain torch ``DataLoader`` over the same zarr whose
  dataset returns one contiguous batch slice per item (``batch_size=None``, shuffled batch
  order), with 0 and with 2 worker processes; the faster of the two is the baseline;
- an extra row: a map-style ``Dataset`` reading one zarr row per item through a shuffled
  ``DataLoader`` (the naive implementation), samples/s;
- the model's training step (LSTM 2 x 100, RMSprop, forward + backward + step), samples/s;
- samples per CPU-second (user + system, process and worker children) of each loader;
- peak RSS of the process.
Goal: the loader at least 5x faster than the model consumes. Headline ratio: eeflow loader /
the plain batch-slice DataLoader.

Run: ``.venv/bin/python bench/p4_loader.py [--samples 200000] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Timer, add_quick_flag, report  # noqa: E402

from tasks.datasets.crop_samples import CropSampleBatches  # noqa: E402
from tasks.domain.crops import CROP_CLASSES, S2_BANDS  # noqa: E402
from tasks.trainers.crops import CropClassifier  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_store(path: Path, n: int, chunk: int = 16384) -> None:
    rng = np.random.default_rng(0)
    group = zarr.open_group(str(path), mode="w")
    x = group.create_array("x", shape=(n, 12, len(S2_BANDS)), chunks=(chunk, 12, len(S2_BANDS)),
                           dtype="float32")
    y = group.create_array("y", shape=(n,), chunks=(chunk,), dtype="int16")
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        x[start:stop] = rng.random((stop - start, 12, len(S2_BANDS)), dtype=np.float32) * 0.4
        y[start:stop] = rng.integers(0, len(CROP_CLASSES), stop - start)
    group.attrs.update({
        "class_names": list(CROP_CLASSES), "bands": list(S2_BANDS),
        "band_mean": [0.2] * len(S2_BANDS), "band_std": [0.1] * len(S2_BANDS),
        "class_counts": np.bincount(y[:], minlength=len(CROP_CLASSES)).tolist(),
        "dataset_version": "bench",
    })


class RowDataset(torch.utils.data.Dataset):
    """Baseline: one zarr row per item."""

    def __init__(self, path: Path) -> None:
        group = zarr.open_group(str(path), mode="r")
        self.x, self.y = group["x"], group["y"]

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.asarray(self.x[i])), torch.tensor(int(self.y[i]))


class BatchSliceDataset(torch.utils.data.Dataset):
    """Baseline: one contiguous batch slice of the zarr arrays per item."""

    def __init__(self, path: Path, batch_size: int) -> None:
        group = zarr.open_group(str(path), mode="r")
        self.x, self.y = group["x"], group["y"]
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-self.x.shape[0] // self.batch_size)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return (torch.from_numpy(np.asarray(self.x[rows])),
                torch.from_numpy(np.asarray(self.y[rows]).astype(np.int64)))


def slice_loader_rate(store: Path, batch_size: int, workers: int) -> tuple[float, float]:
    """Samples/s and samples per CPU-s of a shuffled DataLoader over batch slices."""
    loader = torch.utils.data.DataLoader(
        BatchSliceDataset(store, batch_size), batch_size=None, shuffle=True,
        num_workers=workers, generator=torch.Generator().manual_seed(0))
    with Timer() as timer:
        seen = sum(len(y) for _, y in loader)
    return seen / timer.wall_s, timer.per_cpu_s(seen)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--baseline-samples", type=int, default=4096)
    parser.add_argument("--model-batches", type=int, default=20)
    add_quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.samples, args.baseline_samples, args.model_batches = 40_000, 256, 2
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "train.zarr"
        write_store(store, args.samples)
        rss_after_write = peak_rss_mib()

        batches = CropSampleBatches(store, args.batch_size, shuffle=True, seed=0)
        with Timer() as timer:
            seen = sum(len(y) for _, y in batches)
        loader_rate, loader_per_cpu = seen / timer.wall_s, timer.per_cpu_s(seen)
        slice_rates = {w: slice_loader_rate(store, args.batch_size, w) for w in (0, 2)}
        best_workers = max(slice_rates, key=lambda w: slice_rates[w][0])
        slice_rate = slice_rates[best_workers][0]

        baseline = torch.utils.data.DataLoader(
            RowDataset(store), batch_size=args.batch_size, shuffle=True,
            generator=torch.Generator().manual_seed(0),
        )
        started = time.perf_counter()
        baseline_seen = 0
        for _, y in baseline:
            baseline_seen += len(y)
            if baseline_seen >= args.baseline_samples:
                break
        baseline_rate = baseline_seen / (time.perf_counter() - started)

        module = CropClassifier("lstm", len(S2_BANDS), len(CROP_CLASSES), [0.2] * 10, [0.1] * 10,
                                layers=2, cells=100)
        optimiser = module.configure_optimizers()
        x = torch.rand(args.batch_size, 12, len(S2_BANDS))
        y = torch.randint(0, len(CROP_CLASSES), (args.batch_size,))
        module.train()
        for step in range(args.model_batches + 2):
            if step == 2:
                started = time.perf_counter()
            optimiser.zero_grad()
            loss = module.training_step((x, y), step)
            loss.backward()
            optimiser.step()
        model_rate = args.model_batches * args.batch_size / (time.perf_counter() - started)
    result = {
        "samples": args.samples,
        "batch_size": args.batch_size,
        "loader_samples_per_s": round(loader_rate),
        "loader_samples_per_cpu_s": round(loader_per_cpu),
        "slice_dataloader_samples_per_s": {str(w): round(r[0]) for w, r in slice_rates.items()},
        "slice_dataloader_samples_per_cpu_s": {str(w): round(r[1])
                                               for w, r in slice_rates.items()},
        "slice_dataloader_best_workers": best_workers,
        "loader_vs_slice_dataloader": round(loader_rate / slice_rate, 2),
        "baseline_row_loader_samples_per_s": round(baseline_rate),
        "loader_vs_baseline": round(loader_rate / baseline_rate, 1),
        "lstm_2x100_train_step_samples_per_s": round(model_rate),
        "loader_vs_model": round(loader_rate / model_rate, 1),
        "peak_rss_mib_after_writing_store": round(rss_after_write),
        "peak_rss_mib": round(peak_rss_mib()),
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(result, indent=2))
    report("p4_loader", loader_rate / slice_rate, ">= 5x the LSTM 2x100 train step (samples/s)",
           loader_rate / model_rate >= 5, result,
           baseline="torch DataLoader over contiguous batch slices of the same zarr "
                    "(shuffled batch order, best of 0 / 2 workers)", quick=args.quick)


if __name__ == "__main__":
    main()
