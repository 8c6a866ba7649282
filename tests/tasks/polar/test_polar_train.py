from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from tasks.datasets.ice_patches import IcePatchDataModule, split_indices
from tasks.polar.train import latest_model, load_model, train_model
from tasks.trainers.card import ModelCard
from tasks.trainers.contract import TRAIN_RESULT_KEYS
from tests.tasks.polar.polar_synthetic_scene import tiny_polar_config

torch.set_num_threads(1)


def test_datamodule_normalises_splits_and_augments(polar_patch_dataset: dict) -> None:
    dm = IcePatchDataModule(Path(polar_patch_dataset["datasets"][32]), class_scheme="binary",
                            bands=["HH", "HV"], batch_size=16, val_fraction=0.25, seed=1)
    dm.setup()
    assert dm.n_classes == 2 and len(dm.band_mean) == 2
    x, targets, codes = dm.load_arrays()
    assert abs(float(x.mean())) < 0.2 and set(np.unique(targets)) == {0, 1}
    assert np.array_equal(targets == 0, codes == 1)
    train, val = split_indices(codes, 0.25, 1)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == len(codes)
    assert set(codes[val]) == set(codes)
    patches, target = next(iter(dm.train_dataloader()))
    assert patches.shape == (16, 2, 32, 32) and target.dtype == torch.int64
    with pytest.raises(ValueError, match="bands"):
        IcePatchDataModule(Path(polar_patch_dataset["datasets"][32]), bands=["VV"])


class _Recorder(Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self.values.append(float(trainer.callback_metrics["val_loss"]))


def test_train_model_writes_model_folder(polar_patch_dataset: dict, tmp_path: Path) -> None:
    cfg = tiny_polar_config(tmp_path, train={"model": "adhoc_cnn", "epochs": 6,
                                             "early_stopping_patience": 3, "augment": False,
                                             "width_multiplier": 0.25, "learning_rate": 3e-3})
    recorder = _Recorder()
    result = train_model(cfg, Path(polar_patch_dataset["datasets"][32]), callbacks=[recorder])
    folder = Path(result["model_dir"])
    assert folder.parent == tmp_path / "polar" / "models"
    assert folder.name.startswith("adhoc_cnn_32_binary_")
    meta = json.loads((folder / "model.json").read_text())
    assert meta["classes"] == ["water", "ice"] and meta["bands"] == ["HH", "HV", "incidence"]
    assert meta["dataset_version"] == "vtest" and meta["patch_size"] == 32
    assert result["monitor"] == "val_loss" and result["monitor_value"] == meta["monitor_value"]
    assert result["metrics"]["val_acc"] > 0.8  # the fixture classes are well separated
    assert set(result) == TRAIN_RESULT_KEYS and result["use_case"] == "polar"
    assert result["metrics"] == meta["val_metrics"] and result["epochs"] == {
        "train": meta["epochs_trained"]}
    assert result["model_json"] == str(folder / "model.json")
    card = ModelCard.load(folder)
    assert card.schema_version == 2 and card.use_case == "polar" and card.metrics == result[
        "metrics"] and card.monitor_value == result["monitor_value"]
    assert recorder.values  # extra callbacks run
    for name in ("model.pt", "checkpoints/best.ckpt", "logs/csv/metrics.csv", "learning_curve.png"):
        assert (folder / name).is_file(), name
    assert list((folder / "logs" / "tensorboard").glob("events.*"))
    assert latest_model(tmp_path) == folder
    loaded = load_model(folder)
    assert loaded.net.training is False and loaded.band_mean.shape == (3,)
    # deterministic: same seed, same result
    again = train_model(cfg, Path(polar_patch_dataset["datasets"][32]))
    assert again["metrics"]["val_loss"] == pytest.approx(result["metrics"]["val_loss"], rel=1e-5)
    assert latest_model(tmp_path) == Path(again["model_dir"]) != folder


def test_transfer_pretrains_then_fine_tunes(polar_patch_dataset: dict, tmp_path: Path) -> None:
    cfg = tiny_polar_config(tmp_path, train={"model": "vgg16_transfer", "patch_size": 20,
                                             "width_multiplier": 0.125, "epochs": 1})
    result = train_model(cfg, Path(polar_patch_dataset["datasets"][20]),
                         trainer_kwargs={"limit_train_batches": 2})
    folder = Path(result["model_dir"])
    meta = json.loads((folder / "model.json").read_text())
    transfer = meta["transfer"]
    assert transfer["source"].startswith("pretrain/") and "five_class" in transfer["source"]
    # 13 convolutions (weight, bias; no batch norm by default) + the two hidden head layers
    assert transfer["loaded"] == 13 * 2 + 4 and any("head" in k for k in transfer["skipped"])
    pre = json.loads((folder / "pretrain" / "model.json").read_text())
    assert pre["class_scheme"] == "five_class" and len(pre["classes"]) == 5
    # fine-tune again from the published folder, as from published weights
    cfg2 = tiny_polar_config(tmp_path, train={
        "model": "vgg16_transfer", "patch_size": 20, "width_multiplier": 0.125,
        "pretrained_checkpoint": str(folder / "pretrain")})
    second = train_model(cfg2, Path(polar_patch_dataset["datasets"][20]),
                         trainer_kwargs={"fast_dev_run": True})
    assert second["extra"]["transfer"]["loaded"] == transfer["loaded"]


def test_output_dir_is_the_model_folder(polar_patch_dataset: dict, tmp_path: Path) -> None:
    cfg = tiny_polar_config(tmp_path, train={"model": "adhoc_cnn", "width_multiplier": 0.25})
    out = tmp_path / "trial-0"
    result = train_model(cfg, Path(polar_patch_dataset["datasets"][32]), output_dir=out,
                         trainer_kwargs={"fast_dev_run": True})
    assert result["model_dir"] == str(out) and (out / "model.json").is_file()
    assert set(result) == TRAIN_RESULT_KEYS
    assert not (tmp_path / "polar" / "models").exists()


def test_train_errors(polar_patch_dataset: dict, tmp_path: Path) -> None:
    cfg = tiny_polar_config(tmp_path, train={"patch_size": 20})
    with pytest.raises(ValueError, match="32 px patches but train.patch_size is 20"):
        train_model(cfg, Path(polar_patch_dataset["datasets"][32]))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train_model(cfg, tmp_path / "nope.zarr")
    assert not (tmp_path / "polar" / "models").exists() or not any(
        (tmp_path / "polar" / "models").iterdir())
    with pytest.raises(FileNotFoundError, match="no trained model"):
        latest_model(tmp_path)


def test_block_split_keeps_overlapping_patches_on_one_side():
    rng = np.random.default_rng(0)
    n = 400
    origin = rng.integers(0, 1024, size=(n, 2))
    codes = rng.integers(1, 6, size=n)
    blocks = (origin // 256)[:, 0] * 10 + (origin // 256)[:, 1]
    train, val = split_indices(codes, 0.25, 3, blocks)
    assert len(train) + len(val) == n and len(val) > 0 and len(train) > 0
    assert not set(blocks[train]) & set(blocks[val])
    again = split_indices(codes, 0.25, 3, blocks)
    assert (again[0] == train).all() and (again[1] == val).all()
