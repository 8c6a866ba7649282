"""What training configures and what its model card states, against the config (issue 19).

One tiny run (validation loss monitored, relative ``train.samples_dir``, phase-1 only or both
phases) records each phase's trainer, checkpoint and early-stopping settings from a callback; the
model card, manifest and result are compared key by key with the config and the sample store.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import zarr

from tasks.config.common import config_hash
from tasks.food_security.train import (
    CURVE_STYLE,
    MONITOR_MODES,
    model_dir_for,
    train_crop_model,
    training_samples_dir,
)
from tasks.plots import plot_learning_curve
from tasks.storage import code_version
from tasks.trainers.card import SCHEMA_VERSION, ModelCard
from tests.tasks.food_security.conftest_ml import tiny_config, write_sample_year

RUN_DATE = "2017-09-01"
YEAR = "2017-09_2018-08"


class _TrainerSpy:
    """Records per phase what the trainer was set up with (``on_train_start``)."""

    def __init__(self) -> None:
        self.phases: list[dict[str, Any]] = []

    def callback(self) -> Any:
        import lightning as L
        from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

        spy = self

        class Recorder(L.Callback):
            def on_train_start(self, trainer: Any, pl_module: Any) -> None:
                (ckpt,) = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
                (stop,) = [c for c in trainer.callbacks if isinstance(c, EarlyStopping)]
                spy.phases.append({
                    "max_epochs": trainer.max_epochs,
                    "torch_seed": torch.initial_seed(),
                    "data_seed": trainer.datamodule.seed,
                    "weighted": bool(pl_module.use_class_weights),
                    "checkpoint": (Path(str(ckpt.dirpath)).name,
                                   Path(str(ckpt.dirpath)).parent.name,
                                   ckpt.filename, ckpt.monitor, ckpt.mode, ckpt.save_top_k,
                                   ckpt.save_weights_only),
                    "stopping": (stop.monitor, stop.mode, stop.patience),
                    "log_dir": "/".join(Path(trainer.logger.log_dir).parts[-2:]),
                    "log_every_n_steps": trainer.log_every_n_steps,
                    "sanity_steps": trainer.num_sanity_val_steps,
                    "deterministic": torch.are_deterministic_algorithms_enabled(),
                    "summary": trainer.enable_model_summary if hasattr(
                        trainer, "enable_model_summary") else None,
                    "callbacks": [type(c).__name__ for c in trainer.callbacks],
                })

        return Recorder()


@pytest.fixture()
def variant_root(tmp_path: Path) -> Path:
    """Samples of the year moved to ``{root}/variant`` (read through ``train.samples_dir``)."""
    folder = write_sample_year(tmp_path, RUN_DATE, n_train=200, n_val=60, n_test=20)
    shutil.move(str(folder), str(tmp_path / "variant"))
    return tmp_path


def _store_attrs(path: Path) -> dict[str, Any]:
    return dict(zarr.open_group(str(path), mode="r").attrs)


def test_card_and_trainers_follow_the_config(variant_root: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    cfg = tiny_config(variant_root, epochs_phase1=2, epochs_phase2=1, monitor="val_loss",
                      early_stopping_patience=3, samples_dir="variant",
                      learning_rate=0.003, dropout=0.1, weight_decay=0.2, batch_size=32)
    cfg.seed = 11
    assert training_samples_dir(cfg, RUN_DATE) == variant_root / "variant"
    spy = _TrainerSpy()
    with caplog.at_level("INFO", logger="tasks.food_security.train"):
        result = train_crop_model(cfg, RUN_DATE, callbacks=[spy.callback()])
    folder = model_dir_for(cfg, RUN_DATE, "lstm")
    assert result["model_dir"] == str(folder) and result["dataset"] == str(variant_root / "variant")
    assert result["checkpoint"] == str(folder / "model.ckpt")
    assert result["model_json"] == str(folder / "model.json")
    assert result["n_samples"] == {"train": 200, "val": 60}
    assert isinstance(result["seconds"], float) and result["seconds"] > 0
    assert result["seconds"] == round(result["seconds"], 2)
    assert result["monitor"] == "val_loss"
    assert result["monitor_value"] == result["metrics"]["val_loss"]

    common = {"log_every_n_steps": 1, "sanity_steps": 0, "deterministic": True}
    assert [{k: p[k] for k in common} for p in spy.phases] == [common, common]
    assert [(p["max_epochs"], p["torch_seed"], p["data_seed"], p["weighted"]) for p in spy.phases] \
        == [(2, 11, 11, True), (1, 12, 1011, False)]
    assert [p["checkpoint"] for p in spy.phases] == [
        ("phase1", "checkpoints", "phase1", "val_loss", "min", 1, True),
        ("phase2", "checkpoints", "phase2", "val_loss", "min", 1, True)]
    assert [p["stopping"] for p in spy.phases] == [("val_loss", "min", 3)] * 2
    assert [p["log_dir"] for p in spy.phases] == ["logs/phase1", "logs/phase2"]
    for name in ("ModelCheckpoint", "EarlyStopping", "Recorder"):
        assert [p["callbacks"].count(name) for p in spy.phases] == [1, 1], name

    card = json.loads((folder / "model.json").read_text())
    attrs = _store_attrs(variant_root / "variant" / "train.zarr")
    labels = np.asarray(zarr.open_array(str(variant_root / "variant" / "train.zarr" / "y"),
                                        mode="r")[...])
    assert card["model"] == "lstm" and card["agronomic_year"] == YEAR
    assert card["checkpoint"] == "model.ckpt"
    assert card["classes"] == attrs["class_names"] and card["bands"] == attrs["bands"]
    assert card["n_timesteps"] == 12
    assert card["normalisation"] == {"band_mean": pytest.approx(attrs["band_mean"]),
                                     "band_std": pytest.approx(attrs["band_std"])}
    assert card["hyperparameters"] == {
        "model_name": "lstm", "n_bands": 10, "n_classes": 16, "n_timesteps": 12, "layers": 1,
        "cells": 8, "dropout": 0.1, "learning_rate": 0.003, "weight_decay": 0.2,
        "weight_decay_mode": cfg.train.weight_decay_mode, "optimizer": "rmsprop",
        "batch_size": 32, "weighted": True, "epochs_phase1": 2, "epochs_phase2": 1,
        "early_stopping_patience": 3, "seed": 11,
    }
    assert card["train_class_counts"] == np.bincount(labels, minlength=16).tolist()
    assert card["dataset_version"] == "test-v1"
    assert card["samples_dir"] == str(variant_root / "variant")
    assert card["monitor"] == {"metric": "val_loss", "mode": "min"}
    assert card["code_version"] == code_version() and card["config_hash"] == config_hash(cfg)
    phases = card["metrics"]["phases"]
    assert set(phases) == {"phase1", "phase2"}
    assert phases["phase1"]["weighted_loss"] is True and phases["phase2"]["weighted_loss"] is False
    assert set(phases["phase1"]) == {"weighted_loss", "epochs_run", "best_val_loss"}
    assert [phases[p]["epochs_run"] for p in ("phase1", "phase2")] == [2, 1]
    assert card["metrics"]["validation"] == result["metrics"]
    # the final model is phase 2's best checkpoint: its validation loss is the one recorded
    assert result["metrics"]["val_loss"] == pytest.approx(phases["phase2"]["best_val_loss"],
                                                          rel=1e-5)
    logged = np.genfromtxt(folder / "logs/phase2/metrics.csv", delimiter=",", names=True)
    val_losses = np.atleast_1d(logged["val_loss"])
    assert phases["phase2"]["best_val_loss"] == pytest.approx(np.nanmin(val_losses), rel=1e-6)
    assert result["epochs"] == {"phase1": 2, "phase2": 1}

    logged_lines = [r.getMessage() for r in caplog.records
                    if r.name == "tasks.food_security.train"]
    best1, best2 = phases["phase1"]["best_val_loss"], phases["phase2"]["best_val_loss"]
    assert logged_lines[:5] == [
        f"training lstm for {YEAR} on 200 train / 60 val samples (16 classes, 10 bands); class "
        f"counts {card['train_class_counts']}",
        "phase1: weighted loss, up to 2 epochs",
        f"phase1 done after 2 epochs; best val_loss = {best1:.4f}",
        "phase2: plain loss, up to 1 epochs",
        f"phase2 done after 1 epochs; best val_loss = {best2:.4f}",
    ]
    assert len(logged_lines) == 6
    assert logged_lines[5].startswith(
        f"model lstm of {YEAR} written to {folder} (val_loss = "
        f"{result['metrics']['val_loss']:.4f}, ")
    assert re.search(r", \d+\.\d s\)$", logged_lines[5]), logged_lines[5]

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["stage"] == "train"
    assert manifest["inputs"] == {"samples": str(variant_root / "variant")}
    assert manifest["counts"] == {"train_samples": 200, "val_samples": 60}
    assert manifest["model"] == "lstm" and manifest["agronomic_year"] == YEAR
    assert manifest["learning_curve"] == "learning_curve.png"
    assert manifest["config_hash"] == config_hash(cfg)
    assert sorted(p.name for p in folder.iterdir()) == [
        "learning_curve.png", "logs", "manifest.json", "model.ckpt", "model.json", "phase1.ckpt"]
    written = ModelCard.load(folder)
    assert written.schema_version == SCHEMA_VERSION == 2
    assert written.created is not None
    age = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(written.created)
    assert dt.timedelta(0) <= age < dt.timedelta(hours=1)
    assert written.epochs == result["epochs"] and written.metrics == result["metrics"]
    # the learning curve is the two phases' logs drawn with the module's style and title
    expected_png = variant_root / "expected.png"
    plot_learning_curve([(p, folder / "logs" / p / "metrics.csv") for p in ("phase1", "phase2")],
                        expected_png, f"lstm {YEAR}: weighted phase 1 | plain phase 2",
                        CURVE_STYLE)
    assert (folder / "learning_curve.png").read_bytes() == expected_png.read_bytes()
    best = torch.load(folder / "model.ckpt", weights_only=False)["state_dict"]
    first = torch.load(folder / "phase1.ckpt", weights_only=False)["state_dict"]
    assert any(not torch.equal(best[k], first[k]) for k in best)  # phase 2 trained on


def test_phase_two_only_and_absolute_samples_dir(variant_root: Path) -> None:
    samples = variant_root / "variant"
    cfg = tiny_config(variant_root, epochs_phase1=0, epochs_phase2=1, monitor="val_accuracy",
                      samples_dir=str(samples))
    spy = _TrainerSpy()
    out = variant_root / "elsewhere"
    result = train_crop_model(cfg, "2018-08-31", model="tempcnn", callbacks=[spy.callback()],
                              output_dir=out)
    assert result["model_dir"] == str(out) and result["dataset"] == str(samples)
    assert [(p["max_epochs"], p["torch_seed"], p["data_seed"], p["weighted"]) for p in spy.phases] \
        == [(1, cfg.seed, cfg.seed, False)]
    assert spy.phases[0]["checkpoint"][2:5] == ("phase2", "val_accuracy", "max")
    card = json.loads((out / "model.json").read_text())
    assert card["class_weights_phase1"] is None and card["model"] == "tempcnn"
    assert card["monitor"] == {"metric": "val_accuracy", "mode": MONITOR_MODES["val_accuracy"]}
    assert set(card["metrics"]["phases"]) == {"phase2"}
    assert not (out / "phase1.ckpt").exists() and not (out / "checkpoints").exists()
    assert result["epochs"] == {"phase2": 1}
