"""Per-process sharding of crop sample batches (``CropSampleBatches`` with ``world_size > 1``).

Each sample's row number is written into its first value (``x[i, 0, 0] = i / 1024``, exact in
float32), so the rows every process saw can be read back from the batches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tasks.datasets.crop_samples import CropSampleBatches, EpochDataLoader, SampleStoreError
from tasks.domain.crops import CROP_CLASSES, S2_BANDS
from tests.tasks.food_security.conftest_ml import write_sample_store


def write_numbered_store(path: Path, n: int, chunk_rows: int = 64) -> Path:
    """A split store of ``n`` rows whose ``x[i, 0, 0]`` is ``i / 1024`` (4 classes)."""
    x = np.random.default_rng(0).random((n, 12, len(S2_BANDS))).astype(np.float32) * 0.3
    x[:, 0, 0] = np.arange(n) / 1024
    y = np.arange(n) % 4
    return write_sample_store(path, x, y, "33UVP", [0.1] * len(S2_BANDS), [0.1] * len(S2_BANDS),
                              list(CROP_CLASSES), chunk_rows=chunk_rows)


def row_ids(x: torch.Tensor) -> list[int]:
    """The row numbers written into ``x[:, 0, 0]``."""
    return [round(float(v) * 1024) for v in x[:, 0, 0]]


def epoch_per_rank(datasets: list[CropSampleBatches]) -> list[list[list[int]]]:
    """One epoch of every rank's dataset: per rank, the row ids of each batch."""
    return [[row_ids(x) for x, _ in dataset] for dataset in datasets]


@pytest.mark.parametrize(
    ("n", "batch_size", "block_rows", "world"),
    [(300, 50, 128, 2), (300, 50, 128, 3), (257, 32, 64, 4), (5, 64, 64, 4), (192, 32, 64, 2)],
)
def test_ranks_get_disjoint_shares_covering_the_epoch_in_equal_steps(
        tmp_path: Path, n: int, batch_size: int, block_rows: int, world: int) -> None:
    store = write_numbered_store(tmp_path / "train.zarr", n)
    datasets = [CropSampleBatches(store, batch_size, shuffle=True, seed=7, block_rows=block_rows,
                                  rank=rank, world_size=world) for rank in range(world)]
    epochs = [epoch_per_rank(datasets) for _ in range(2)]
    for shares in epochs:
        steps = {len(batches) for batches in shares}
        assert steps == {len(datasets[0])}, "every process takes the same number of steps"
        sizes = [len(batch) for batches in shares for batch in batches]
        assert min(sizes) >= 1 and max(sizes) < 2 * batch_size
        seen = [i for batches in shares for batch in batches for i in batch]
        assert sorted(seen) == list(range(n)), "disjoint shares whose union is the split"
    if n > batch_size:
        assert epochs[0] != epochs[1], "a new shuffle each epoch"
    again = CropSampleBatches(store, batch_size, shuffle=True, seed=7, block_rows=block_rows,
                              rank=1, world_size=world)
    assert epoch_per_rank([again]) == [epochs[0][1]], "seeded: the same shares again"


def test_the_split_is_the_single_process_epoch_dealt_round_robin(tmp_path: Path) -> None:
    # 192 rows / 32 = 6 batches, divisible by 2: no pooled tail, rank r has batches r, r + 2, ...
    store = write_numbered_store(tmp_path / "val.zarr", 192)
    single = [row_ids(x) for x, _ in CropSampleBatches(store, 32, block_rows=64)]
    shares = epoch_per_rank([CropSampleBatches(store, 32, block_rows=64, rank=rank, world_size=2)
                             for rank in range(2)])
    assert shares == [single[0::2], single[1::2]]
    assert single == [list(range(start, start + 32)) for start in range(0, 192, 32)]


def test_ranks_with_worker_processes_still_cover_each_epoch_once(tmp_path: Path) -> None:
    store = write_numbered_store(tmp_path / "train.zarr", 300)
    epochs: list[list[int]] = []
    steps: list[int] = []
    for epoch in range(2):
        seen: list[int] = []
        for rank in range(2):
            dataset = CropSampleBatches(store, 40, shuffle=True, seed=1, block_rows=64, rank=rank,
                                        world_size=2)
            loader = EpochDataLoader(dataset, batch_size=None, num_workers=2)
            for _ in range(epoch):  # the epochs before this one
                iter(loader)
            batches = [row_ids(x) for x, _ in loader]
            steps.append(len(batches))
            assert len(batches) == len(dataset) == len(loader)
            seen += [i for batch in batches for i in batch]
        assert sorted(seen) == list(range(300))
        epochs.append(seen)
    assert len(set(steps)) == 1 and epochs[0] != epochs[1]


def test_a_split_smaller_than_the_process_count_is_refused(tmp_path: Path) -> None:
    store = write_numbered_store(tmp_path / "val.zarr", 3)
    with pytest.raises(SampleStoreError, match="3 samples, fewer than the 4 training processes"):
        CropSampleBatches(store, 8, rank=0, world_size=4)
    with pytest.raises(ValueError, match="rank must be in 0..world_size - 1"):
        CropSampleBatches(store, 8, rank=2, world_size=2)
    with pytest.raises(ValueError, match="both rank and world_size"):
        CropSampleBatches(store, 8, rank=0)
