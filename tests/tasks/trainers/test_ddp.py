"""Validation scores under a two-process DDP strategy equal those of the whole validation set.

Runs Lightning's ``ddp_spawn`` on two CPU processes (gloo), as ``train.lightning.strategy: ddp``
would on two GPUs: each process validates half of the set, and the logged scores must still be
those of the whole set (the crop classifier sums the confusion matrices across processes; the ice
classifier's epoch means are reduced with ``sync_dist``).
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from tasks.trainers.crops import CropClassifier
from tasks.trainers.ice import IceClassifier


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


def test_crop_scores_over_two_processes_are_those_of_the_whole_set(
        crop_data: TensorDataset) -> None:
    torch.manual_seed(0)
    module = CropClassifier("tempcnn", 4, 5, [0.2] * 4, [0.1] * 4)
    single = _validate(module, crop_data, devices=1)
    double = _validate(module, crop_data, devices=2)
    assert set(single) == {"val_loss", "val_accuracy", "val_median_f1", "val_macro_f1"}
    for key, value in single.items():
        assert double[key] == pytest.approx(value, rel=1e-5), key


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
