"""Validation scores under a two-process DDP strategy equal those of the whole validation set.

Runs Lightning's ``ddp_spawn`` on two CPU processes (gloo), as ``train.lightning.strategy: ddp``
would on two GPUs: each process validates half of the set, and the logged scores must still be
those of the whole set (the crop classifier sums the confusion matrices across processes; the ice
classifier's epoch means are reduced with ``sync_dist``). Crop training batches come from an
iterable dataset that shards itself per process: the two processes must see disjoint batches
whose union is each epoch's whole split.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from tasks.datasets.crop_samples import CropSamplesDataModule
from tasks.trainers.crops import CropClassifier
from tasks.trainers.ice import IceClassifier
from tests.tasks.datasets.test_crop_samples import row_ids, write_numbered_store


@pytest.fixture(autouse=True)
def _free_master_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """A free rendezvous port per test (an inherited MASTER_PORT may be taken: EADDRINUSE)."""
    from tasks.net import free_port

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))


def _validate(module: L.LightningModule, data: TensorDataset, devices: int) -> dict[str, float]:
    trainer = L.Trainer(accelerator="cpu", devices=devices,
                        strategy="ddp_spawn" if devices > 1 else "auto", logger=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False)
    (metrics,) = trainer.validate(module, DataLoader(data, batch_size=8), verbose=False)
    return {key: float(value) for key, value in metrics.items()}


@pytest.fixture(scope="module")
def crop_data() -> TensorDataset:
    generator = torch.Generator().manual_seed(3)
    # 64 series: divisible by 2 processes x batch 8, so the DistributedSampler pads nothing
    x = torch.rand(64, 12, 4, generator=generator) * 0.4
    y = torch.randint(0, 5, (64,), generator=generator)
    return TensorDataset(x, y)


@pytest.mark.slow  # the sharded-batches test below checks the same scores through the data module
def test_crop_scores_over_two_processes_are_those_of_the_whole_set(
        crop_data: TensorDataset) -> None:
    torch.manual_seed(0)
    module = CropClassifier("tempcnn", 4, 5, [0.2] * 4, [0.1] * 4)
    single = _validate(module, crop_data, devices=1)
    double = _validate(module, crop_data, devices=2)
    assert set(single) == {"val_loss", "val_accuracy", "val_median_f1", "val_macro_f1"}
    for key, value in single.items():
        assert double[key] == pytest.approx(value, rel=1e-5), key


class RowRecordingClassifier(CropClassifier):
    """A crop classifier that writes the row ids of its batches to ``{folder}/rank{r}.json``."""

    def __init__(self, folder: str) -> None:
        super().__init__("tempcnn", 10, 4, [0.1] * 10, [0.1] * 10)
        self.folder = folder
        self.rows: dict[str, list[list[int]]] = {}

    def _record(self, stage: str, x: torch.Tensor) -> None:
        self.rows.setdefault(f"{stage}{self.current_epoch}", []).extend([row_ids(x)])

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor],
                      batch_idx: int) -> torch.Tensor:
        """Record, then train."""
        self._record("train", batch[0])
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """Record, then validate."""
        self._record("val", batch[0])
        super().validation_step(batch, batch_idx)

    def on_fit_end(self) -> None:
        """Write this process's rows."""
        path = Path(self.folder) / f"rank{self.global_rank}.json"
        path.write_text(json.dumps(self.rows))


def test_crop_batches_are_split_between_two_processes(tmp_path: Path) -> None:
    # train: blocks of 64, 64, 22 rows -> 5 batches of <= 32: two dealt out, three pooled and split
    write_numbered_store(tmp_path / "train.zarr", 150)
    write_numbered_store(tmp_path / "val.zarr", 70)
    data = CropSamplesDataModule(tmp_path, batch_size=32, seed=4, block_rows=64)
    torch.manual_seed(0)
    module = RowRecordingClassifier(str(tmp_path))
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=2,
                        logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=data)
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    for key, n in (("train0", 150), ("train1", 150), ("val0", 70), ("val1", 70)):
        shares = [[i for batch in rows[key] for i in batch] for rows in ranks]
        assert not set(shares[0]) & set(shares[1]), key
        assert sorted(shares[0] + shares[1]) == list(range(n)), key
    assert len(ranks[0]["train0"]) == len(ranks[1]["train0"]) == 2
    assert ranks[0]["train0"] != ranks[0]["train1"]  # a new shuffle in the second epoch
    # the scores logged under DDP are those of the whole validation set (trained weights are
    # back in this process after ddp_spawn)
    ddp_scores = {key: float(value) for key, value in trainer.callback_metrics.items()
                  if key.startswith("val_")}
    single = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                       enable_model_summary=False)
    (scores,) = single.validate(module, datamodule=data, verbose=False)
    assert set(ddp_scores) == set(scores)
    for key, value in scores.items():
        assert ddp_scores[key] == pytest.approx(float(value), rel=1e-5), key


@pytest.mark.slow  # a second pair of spawned processes (~1 min); the crop test covers DDP
def test_ice_epoch_means_over_two_processes_are_those_of_the_whole_set() -> None:
    generator = torch.Generator().manual_seed(5)
    data = TensorDataset(torch.randn(32, 3, 20, 20, generator=generator),
                         torch.randint(0, 2, (32,), generator=generator))
    torch.manual_seed(0)
    module = IceClassifier("adhoc_cnn", 2, 3, 20, width_multiplier=0.25)
    single = _validate(module, data, devices=1)
    double = _validate(module, data, devices=2)
    assert set(single) == {"val_loss", "val_acc"}
    for key, value in single.items():
        assert double[key] == pytest.approx(value, rel=1e-5), key
