"""VGG-16 as published (issue 18): ImageNet weights in training, batch-norm option, old folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from tasks.models.ice_zoo import build_model
from tasks.models.vgg16 import LEGACY_HEAD_WIDTHS
from tasks.polar.train import load_model, train_model
from tests.tasks.models.test_vgg16_imagenet import imagenet_like_file
from tests.tasks.polar.polar_synthetic_scene import tiny_polar_config

torch.set_num_threads(1)


def test_training_starts_from_imagenet_weights(polar_patch_dataset: dict, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    weights, source = imagenet_like_file(tmp_path, batch_norm=False)
    cfg = tiny_polar_config(tmp_path, train={"model": "vgg16_modified", "patch_size": 20,
                                             "imagenet_weights": str(weights)})
    started: dict[str, torch.Tensor] = {}
    import lightning as L

    original_fit = L.Trainer.fit

    def fit_and_record(self: L.Trainer, module: L.LightningModule, **kwargs: object) -> None:
        started["conv13"] = module.net.features[-2].weight.detach().clone()
        started["conv1"] = module.net.features[0].weight.detach().clone()
        original_fit(self, module, **kwargs)

    monkeypatch.setattr(L.Trainer, "fit", fit_and_record)
    result = train_model(cfg, Path(polar_patch_dataset["datasets"][20]),
                         trainer_kwargs={"fast_dev_run": True})
    torch.testing.assert_close(started["conv13"], source[28].weight)
    torch.testing.assert_close(started["conv1"][:, 2], source[0].weight.sum(dim=1) / 3)
    transfer = result["extra"]["transfer"]
    assert "ImageNet, vgg16" in transfer["source"] and transfer["loaded"] == 26
    meta = json.loads((Path(result["model_dir"]) / "model.json").read_text())
    assert meta["hyperparameters"]["vgg_head"] == [1024, 512]
    assert meta["hyperparameters"]["vgg_batch_norm"] is False
    assert not [m for m in load_model(result["model_dir"]).net.modules()
                if isinstance(m, nn.BatchNorm2d)]


def test_batch_norm_option_and_old_model_folders(polar_patch_dataset: dict,
                                                 tmp_path: Path) -> None:
    cfg = tiny_polar_config(tmp_path, train={"model": "vgg16", "patch_size": 20,
                                             "width_multiplier": 0.125, "vgg_batch_norm": True})
    result = train_model(cfg, Path(polar_patch_dataset["datasets"][20]),
                         trainer_kwargs={"fast_dev_run": True})
    folder = Path(result["model_dir"])
    loaded = load_model(folder)
    assert len([m for m in loaded.net.modules() if isinstance(m, nn.BatchNorm2d)]) == 13
    # a folder written before issue 18: 512 / 512 head with batch norm, no "vgg_head" key
    meta = json.loads((folder / "model.json").read_text())
    for key in ("vgg_head", "vgg_batch_norm"):
        del meta["hyperparameters"][key]
    (folder / "model.json").write_text(json.dumps(meta))
    old = build_model("vgg16", 2, 3, 20, 0.5, 0.125, batch_norm=True,
                      head_widths=LEGACY_HEAD_WIDTHS)
    torch.save(old.state_dict(), folder / meta["weights"])
    net = load_model(folder).net
    assert [c.out_channels for c in net.head if isinstance(c, nn.Conv2d)] == [64, 64, 2]


def test_adhoc_cnn_model_json_has_no_vgg_keys(polar_patch_dataset: dict, tmp_path: Path) -> None:
    cfg = tiny_polar_config(tmp_path, train={"model": "adhoc_cnn", "width_multiplier": 0.25})
    result = train_model(cfg, Path(polar_patch_dataset["datasets"][32]),
                         trainer_kwargs={"fast_dev_run": True})
    meta = json.loads((Path(result["model_dir"]) / "model.json").read_text())
    assert not {"vgg_head", "vgg_batch_norm"} & set(meta["hyperparameters"])


@pytest.mark.parametrize(("train", "message"), [
    ({"model": "vgg16", "imagenet_weights": "w.pth"}, "vgg16_transfer or vgg16_modified only"),
    ({"model": "vgg16_transfer", "imagenet_weights": "w.pth", "pretrained_checkpoint": "c"},
     "both set"),
    ({"model": "vgg16_transfer", "imagenet_weights": "w.pth", "width_multiplier": 0.5},
     "width_multiplier 1"),
])
def test_imagenet_weights_config_errors(tmp_path: Path, train: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        tiny_polar_config(tmp_path, train=train)
