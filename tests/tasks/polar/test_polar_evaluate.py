from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tasks.polar.evaluate import evaluate_model, metrics_from_confusion
from tasks.polar.train import train_model
from tests.tasks.polar.polar_synthetic_scene import tiny_polar_config

torch.set_num_threads(1)


def test_metrics_from_confusion() -> None:
    m = metrics_from_confusion(np.array([[8, 2], [1, 9]]), ["water", "ice"])
    assert m["accuracy"] == pytest.approx(0.85)
    assert m["per_class"]["water"]["precision"] == pytest.approx(8 / 9)
    assert m["per_class"]["water"]["recall"] == pytest.approx(0.8)
    assert m["per_class"]["ice"]["support"] == 10


def test_evaluate_on_patches_and_scenes(polar_patch_dataset: dict, polar_scene_pair,
                                        tmp_path: Path) -> None:
    cfg = tiny_polar_config(tmp_path, train={"model": "adhoc_cnn", "epochs": 5, "augment": False,
                                             "width_multiplier": 0.25, "learning_rate": 3e-3,
                                             "early_stopping_patience": 3})
    dataset = Path(polar_patch_dataset["datasets"][32])
    model_dir = Path(train_model(cfg, dataset)["model_dir"])
    meta = json.loads((model_dir / "model.json").read_text())
    val = evaluate_model(model_dir, dataset)
    assert val["metrics"]["n_samples"] == meta["n_val"]
    assert val["metrics"]["accuracy"] == pytest.approx(meta["val_metrics"]["val_acc"])
    out = model_dir / "evaluation"
    assert json.loads((out / "confusion_matrix.json").read_text())["classes"] == ["water", "ice"]
    assert (out / "confusion_matrix.png").stat().st_size > 1000
    everything = evaluate_model(model_dir, dataset, split="all")
    assert everything["metrics"]["n_samples"] > val["metrics"]["n_samples"]
    dense = evaluate_model(model_dir, scene_zarrs=[polar_scene_pair[0]],
                           label_zarrs=[polar_scene_pair[1]], tile=128)
    assert dense["metrics"]["accuracy"] > 0.85 and dense["metrics"]["n_samples"] > 30_000
    assert sum(dense["metrics"]["per_class"][c]["support"] for c in ("water", "ice")) == \
        dense["metrics"]["n_samples"]
    with pytest.raises(ValueError, match="either dataset_path"):
        evaluate_model(model_dir)
    with pytest.raises(ValueError, match="20 px patches"):
        evaluate_model(model_dir, Path(polar_patch_dataset["datasets"][20]))
