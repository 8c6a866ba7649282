"""Pixel time-series samples of the food-security use case, read in blocks for training.

A split store (``{root}/food_security/samples/{agronomic_year}/{split}.zarr``, contract in
:mod:`tasks.food_security.schema`) holds ``x`` float32 (n, 12, band) and ``y`` int16 (n,). Reading
single rows from zarr is slow and loading a whole split does not scale, so
:class:`CropSampleBatches` reads contiguous blocks of rows (a multiple of the zarr chunk), shuffles
the block order and the rows inside each block with a seeded generator, and yields ready batches.
Memory stays at one block per worker.

Under a multi-process strategy (DDP: ``torch.distributed`` initialised with ``world_size > 1``)
each process yields its own share of the epoch's batches, :meth:`CropSampleBatches.__iter__`
explains how; the shares are disjoint, their union is the whole split, and every process takes
the same number of steps (DDP needs that). A single process reads exactly as before.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import zarr
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from tasks.errors import EeflowError
from tasks.storage import zarr_array, zarr_attrs

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")


class SampleStoreError(EeflowError, ValueError):
    """A sample store is missing or breaks the on-disk contract; the message says which and why."""


@dataclass(frozen=True)
class SampleSplitInfo:
    """Metadata of one split store.

    Attributes:
        path: the ``{split}.zarr`` folder.
        n_samples: rows.
        n_timesteps: months per series.
        bands: band names (last axis of ``x``).
        class_names: class names in model-output order.
        class_counts: samples per class in this split.
        band_mean: train-split mean per band (reflectance).
        band_std: train-split standard deviation per band.
        dataset_version: version tag of the sample set.
        chunk_rows: rows per zarr chunk of ``x``.

    """

    path: Path
    n_samples: int
    n_timesteps: int
    bands: list[str]
    class_names: list[str]
    class_counts: list[int]
    band_mean: list[float]
    band_std: list[float]
    dataset_version: str
    chunk_rows: int


def read_split_info(path: str | Path) -> SampleSplitInfo:
    """Open a split store and check it against the contract.

    Raises:
        SampleStoreError: the store is missing, lacks ``x``/``y`` or an attribute, or shapes and
            attributes disagree.

    """
    path = Path(path)
    if not path.exists():
        raise SampleStoreError(
            f"sample store {path} does not exist; run the samples stage for this agronomic year "
            "first (eeflow crops samples --run-date ...)"
        )
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as err:  # zarr raises several types for a non-store folder
        raise SampleStoreError(f"{path} is not a readable zarr store: {err}") from err
    for name in ("x", "y"):
        if name not in group:
            raise SampleStoreError(f"sample store {path} has no array {name!r}")
    x, y = zarr_array(group, "x"), zarr_array(group, "y")
    attrs = zarr_attrs(group)
    missing = [k for k in ("class_names", "bands", "band_mean", "band_std") if k not in attrs]
    if missing:
        raise SampleStoreError(f"sample store {path} lacks attributes {missing}")
    if len(x.shape) != 3 or len(y.shape) != 1 or x.shape[0] != y.shape[0]:
        raise SampleStoreError(
            f"sample store {path}: x must be (n, month, band) and y (n,), got {x.shape} and "
            f"{y.shape}"
        )
    bands = list(attrs["bands"])
    if x.shape[2] != len(bands) or len(attrs["band_mean"]) != len(bands) or len(
        attrs["band_std"]
    ) != len(bands):
        raise SampleStoreError(
            f"sample store {path}: x has {x.shape[2]} bands, attrs name {len(bands)} bands with "
            f"{len(attrs['band_mean'])} means and {len(attrs['band_std'])} stds"
        )
    class_names = list(attrs["class_names"])
    counts = attrs.get("class_counts")
    if isinstance(counts, dict):
        counts = [int(counts.get(name, 0)) for name in class_names]
    elif counts is None:
        counts = np.bincount(np.asarray(y[:]), minlength=len(class_names)).tolist()
    return SampleSplitInfo(
        path=path,
        n_samples=int(x.shape[0]),
        n_timesteps=int(x.shape[1]),
        bands=bands,
        class_names=class_names,
        class_counts=[int(c) for c in counts],
        band_mean=[float(v) for v in attrs["band_mean"]],
        band_std=[float(v) for v in attrs["band_std"]],
        dataset_version=str(attrs.get("dataset_version", "unknown")),
        chunk_rows=int(x.chunks[0]),
    )


def inverse_frequency_weights(class_counts: list[int]) -> list[float]:
    """Phase-1 class weights: ``n_samples / (n_present_classes * count)``; 0 for absent classes.

    The weights average 1 over the samples, so the weighted loss keeps the plain loss's scale.
    """
    counts = np.asarray(class_counts, dtype=np.float64)
    present = counts > 0
    weights = np.zeros_like(counts)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.tolist()


class CropSampleBatches(IterableDataset):
    """Batches ``(x float32 (b, month, band), y int64 (b,))`` of one split store.

    Args:
        path: the ``{split}.zarr`` store.
        batch_size: rows per batch.
        shuffle: shuffle block order and rows within a block (each epoch a new, seeded order).
        seed: base seed of the shuffling.
        block_rows: rows read at once (rounded up to whole zarr chunks); bounds the memory.
        rank: this process's rank among ``world_size`` training processes; default (``None``,
            with ``world_size`` ``None``) the ``torch.distributed`` rank when a process group is
            initialised, else 0. The loader is built inside each process, after the strategy
            started the group (Lightning calls ``train_dataloader`` there).
        world_size: processes sharing the epoch; default as ``rank`` (1 without a group).

    Raises:
        ValueError: ``rank`` is not in ``0..world_size - 1``, or only one of them is given.
        SampleStoreError: the split has fewer rows than processes (a process would have none).

    """

    def __init__(
        self,
        path: str | Path,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        block_rows: int = 65536,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__()
        self.info = read_split_info(path)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        chunk = max(self.info.chunk_rows, 1)
        self.block_rows = max(chunk, math.ceil(max(block_rows, batch_size) / chunk) * chunk)
        self._epoch = 0
        self.rank, self.world_size = _rank_and_world_size(rank, world_size)
        if self.world_size > 1 and self.info.n_samples < self.world_size:
            raise SampleStoreError(
                f"{self.info.path} has {self.info.n_samples} samples, fewer than the "
                f"{self.world_size} training processes; every process needs at least one "
                "(train on fewer devices or make more samples)"
            )

    def _n_batches(self) -> int:
        """Batches of the whole split per epoch (each block ends in its own, maybe short, batch)."""
        n_blocks, rest = divmod(self.info.n_samples, self.block_rows)
        per_block = math.ceil(self.block_rows / self.batch_size)
        return n_blocks * per_block + math.ceil(rest / self.batch_size)

    def __len__(self) -> int:
        """Return this process's batches per epoch (all of them in a single process)."""
        if self.world_size == 1:
            return self._n_batches()
        return max(self._n_batches() // self.world_size, 1)

    def advance_epoch(self) -> None:
        """Count an epoch started in worker processes (:class:`EpochDataLoader` calls it).

        Under several processes the shuffling seed of an epoch is ``seed + epoch`` on every
        process (they must agree on the order to split it); worker processes get a copy of
        this object per epoch, so the count is kept here in the main process.
        """
        self._epoch += 1

    def _block_starts(self) -> list[int]:
        return list(range(0, self.info.n_samples, self.block_rows))

    def _read_block(
        self, x_array: zarr.Array, y_array: zarr.Array, start: int, stop: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Read rows ``start:stop`` as float32 x and int64 y, checking values."""
        x_block = np.asarray(x_array[start:stop], dtype=np.float32)
        y_block = np.asarray(y_array[start:stop]).astype(np.int64)
        n_classes = len(self.info.class_names)
        if not np.isfinite(x_block).all():
            bad = int(np.flatnonzero(~np.isfinite(x_block).all(axis=(1, 2)))[0]) + start
            raise SampleStoreError(
                f"{self.info.path}: x has NaN/inf values (first at row {bad}); the samples "
                "need gap-filled composites (harmonise.gap_fill: linear or nearest)"
            )
        if y_block.size and (y_block.min() < 0 or y_block.max() >= n_classes):
            raise SampleStoreError(
                f"{self.info.path}: y holds class indices outside 0..{n_classes - 1} "
                f"(rows {start}..{stop}); unlabelled pixels must not be in a sample store"
            )
        return x_block, y_block

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield the batches of this epoch (this process's and this worker's share).

        A single process yields every batch: blocks in (shuffled) order, rows shuffled inside
        each block; DataLoader workers split the blocks. Under ``world_size`` processes, all
        processes derive the same global batch sequence from ``seed + epoch`` and process
        ``rank`` takes the batches ``rank, rank + world_size, ...``. When the count does not
        divide, the last ``world_size`` batches plus the remainder are pooled and split into
        ``world_size`` near-equal batches, one per process (so the last batch may be up to about
        twice ``batch_size``): the shares are disjoint, cover the split, and have equal step
        counts.
        """
        if self.world_size > 1:
            yield from self._sharded_batches()
            return
        worker = get_worker_info()
        if worker is None:
            epoch_seed = self.seed + self._epoch
            self._epoch += 1
            worker_id, n_workers = 0, 1
        else:
            # The DataLoader draws a fresh base seed per epoch from the (seeded) main process.
            epoch_seed = (self.seed + worker.seed - worker.id) % 2**32
            worker_id, n_workers = worker.id, worker.num_workers
        rng = np.random.default_rng(epoch_seed)
        starts = self._block_starts()
        if self.shuffle:
            starts = [starts[i] for i in rng.permutation(len(starts))]
        group = zarr.open_group(str(self.info.path), mode="r")
        x_array, y_array = zarr_array(group, "x"), zarr_array(group, "y")
        for start in starts[worker_id::n_workers]:
            stop = min(start + self.block_rows, self.info.n_samples)
            x_block, y_block = self._read_block(x_array, y_array, start, stop)
            order = rng.permutation(len(y_block)) if self.shuffle else np.arange(len(y_block))
            for i in range(0, len(order), self.batch_size):
                rows = order[i : i + self.batch_size]
                yield torch.from_numpy(x_block[rows]), torch.from_numpy(y_block[rows])

    def _sharded_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield this rank's (and this worker's) batches of the epoch; see :meth:`__iter__`."""
        worker = get_worker_info()
        worker_id, n_workers = (0, 1) if worker is None else (worker.id, worker.num_workers)
        rng = np.random.default_rng(self.seed + self._epoch)
        if worker is None:
            self._epoch += 1
        starts = self._block_starts()
        if self.shuffle:
            starts = [starts[i] for i in rng.permutation(len(starts))]
        world, rank = self.world_size, self.rank
        n_batches = self._n_batches()
        quotient, remainder = divmod(n_batches, world)
        # global batches before `pooled_from` go round-robin; the rest are pooled and split
        pooled_from = n_batches if remainder == 0 else max(n_batches - remainder - world, 0)
        tail_worker = (len(starts) - 1) % n_workers
        group = zarr.open_group(str(self.info.path), mode="r")
        x_array, y_array = zarr_array(group, "x"), zarr_array(group, "y")
        pooled: list[tuple[np.ndarray, np.ndarray]] = []
        first_batch = 0  # global index of the block's first batch
        for position, start in enumerate(starts):
            stop = min(start + self.block_rows, self.info.n_samples)
            # every process draws every block's permutation: the global order stays in step
            order = rng.permutation(stop - start) if self.shuffle else np.arange(stop - start)
            indices = range(first_batch, first_batch + math.ceil((stop - start) / self.batch_size))
            first_batch = indices.stop
            mine = [g for g in indices if g < pooled_from and g % world == rank] \
                if position % n_workers == worker_id else []
            pool = [g for g in indices if g >= pooled_from] if worker_id == tail_worker else []
            if not mine and not pool:
                continue
            x_block, y_block = self._read_block(x_array, y_array, start, stop)
            for g in mine:
                rows = order[(g - indices.start) * self.batch_size :][: self.batch_size]
                yield torch.from_numpy(x_block[rows]), torch.from_numpy(y_block[rows])
            for g in pool:
                rows = order[(g - indices.start) * self.batch_size :][: self.batch_size]
                pooled.append((x_block[rows], y_block[rows]))
        if pooled:
            x_pool = np.concatenate([x for x, _ in pooled])
            y_pool = np.concatenate([y for _, y in pooled])
            share = np.array_split(np.arange(len(y_pool)), world)[rank]
            yield torch.from_numpy(x_pool[share]), torch.from_numpy(y_pool[share])


def _rank_and_world_size(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Return the given rank and world size, or those of ``torch.distributed`` (0, 1 without)."""
    if rank is None and world_size is None:
        distributed = torch.distributed
        if distributed.is_available() and distributed.is_initialized():
            return distributed.get_rank(), distributed.get_world_size()
        return 0, 1
    if rank is None or world_size is None:
        raise ValueError(
            f"give both rank and world_size or neither, got rank={rank}, world_size={world_size}"
        )
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(
            f"rank must be in 0..world_size - 1 and world_size >= 1, got rank={rank}, "
            f"world_size={world_size}"
        )
    return rank, world_size


class EpochDataLoader(DataLoader):
    """A DataLoader that counts epochs on its :class:`CropSampleBatches` in the main process.

    Worker processes get a fresh copy of the dataset each epoch; advancing the count here after
    they start gives every epoch its own shuffle under several training processes.
    """

    def __iter__(self) -> Any:
        """Start the epoch's iterator (and workers), then count the epoch."""
        iterator = super().__iter__()
        if self.num_workers > 0 and isinstance(self.dataset, CropSampleBatches):
            self.dataset.advance_epoch()
        return iterator


class CropSamplesDataModule(L.LightningDataModule):
    """Train / val (/ test) loaders of one agronomic year's sample set.

    Args:
        samples_dir: ``{root}/food_security/samples/{agronomic_year}`` with ``train.zarr`` and
            ``val.zarr`` (``test.zarr`` optional).
        batch_size: rows per batch.
        seed: shuffling seed.
        num_workers: DataLoader worker processes (0 reads in the training process).
        block_rows: rows read at once per worker.

    """

    def __init__(
        self,
        samples_dir: str | Path,
        batch_size: int = 512,
        seed: int = 0,
        num_workers: int = 0,
        block_rows: int = 65536,
    ) -> None:
        super().__init__()
        self.samples_dir = Path(samples_dir)
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.block_rows = block_rows
        self.train_info = read_split_info(self.samples_dir / "train.zarr")
        self.val_info = read_split_info(self.samples_dir / "val.zarr")
        for info in (self.train_info, self.val_info):
            if info.n_samples == 0:
                raise SampleStoreError(
                    f"{info.path} has no samples; check the split tiles and the labels report"
                )
        if self.val_info.class_names != self.train_info.class_names or (
            self.val_info.bands != self.train_info.bands
        ):
            raise SampleStoreError(
                f"{self.samples_dir}: train and val stores disagree on classes or bands"
            )

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = CropSampleBatches(
            self.samples_dir / f"{split}.zarr", self.batch_size, shuffle, self.seed, self.block_rows
        )
        return EpochDataLoader(
            dataset,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=False,
        )

    def train_dataloader(self) -> DataLoader:
        """Return shuffled train batches."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Return validation batches in store order."""
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Return test batches in store order (needs ``test.zarr``)."""
        return self._loader("test", shuffle=False)
