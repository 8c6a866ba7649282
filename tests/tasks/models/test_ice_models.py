from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tasks.models.ice_zoo import ICE_MODELS, build_model
from tasks.models.transfer import load_pretrained
from tasks.models.vgg16 import LEGACY_HEAD_WIDTHS

torch.set_num_threads(1)


@pytest.mark.parametrize("name", sorted(ICE_MODELS))
@pytest.mark.parametrize("patch_size", [20, 32])
def test_models_classify_patches_and_run_dense(name: str, patch_size: int) -> None:
    torch.manual_seed(0)
    net = build_model(name, n_classes=5, in_channels=3, patch_size=patch_size, dropout=0.3,
                      width_multiplier=0.125).eval()
    assert net(torch.randn(4, 3, patch_size, patch_size)).shape == (4, 5)
    s = net.output_stride
    image = torch.randn(1, 3, patch_size + 5 * s, patch_size + 3 * s)
    dense = net.forward_dense(image)
    assert dense.shape == (1, 5, 6, 4)
    if name == "adhoc_cnn":
        assert s == 8
    if name == "vgg16_modified":
        assert s == 8 and len([m for m in net.features if isinstance(m, torch.nn.MaxPool2d)]) == 3
    if name == "vgg16":
        assert s == (32 if patch_size == 32 else 16)
    with pytest.raises(ValueError, match="expected patches"):
        net(image)


def test_full_size_architectures() -> None:
    adhoc = build_model("adhoc_cnn", 2, 3, 32)
    convs = [m for m in adhoc.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 64]
    head = [m for m in adhoc.head if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in head] == [1024, 512, 2]
    vgg = build_model("vgg16", 2, 3, 32)
    assert len([m for m in vgg.features if isinstance(m, torch.nn.Conv2d)]) == 13
    # the paper: VGG-16 has the ad-hoc CNN's fully connected layers, and no batch norm
    assert [c.out_channels for c in vgg.head if isinstance(c, torch.nn.Conv2d)] == [1024, 512, 2]
    assert not [m for m in vgg.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with_bn = build_model("vgg16_modified", 2, 3, 20, batch_norm=True)
    assert len([m for m in with_bn.features if isinstance(m, torch.nn.BatchNorm2d)]) == 13
    legacy = build_model("vgg16", 2, 3, 32, batch_norm=True, head_widths=LEGACY_HEAD_WIDTHS)
    assert [c.out_channels for c in legacy.head if isinstance(c, torch.nn.Conv2d)] == [512, 512, 2]
    # adhoc_cnn ignores the VGG-only options
    assert str(build_model("adhoc_cnn", 2, 3, 32, batch_norm=True)) == str(adhoc)


def test_unknown_model_name() -> None:
    with pytest.raises(ValueError, match="allowed"):
        build_model("resnet", 2, 3, 32)


def test_load_pretrained_maps_matching_layers(tmp_path: Path) -> None:
    five = build_model("vgg16", 5, 3, 32, width_multiplier=0.125)
    torch.save({"state_dict": {f"net.{k}": v for k, v in five.state_dict().items()}},
               tmp_path / "five.ckpt")
    binary = build_model("vgg16", 2, 3, 32, width_multiplier=0.125)
    report = load_pretrained(binary, tmp_path / "five.ckpt")
    assert "features.0.weight" in report["loaded"]
    last = f"head.{len(binary.head) - 1}.weight"
    assert last in report["skipped"] and "shape" in report["skipped"][last]
    assert last in report["missing"]
    torch.testing.assert_close(binary.features[0].weight, five.features[0].weight)
    with pytest.raises(ValueError, match="strictly"):
        load_pretrained(binary, tmp_path / "five.ckpt", strict=True)
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable"):
        load_pretrained(binary, tmp_path / "bad.ckpt")
    with pytest.raises(FileNotFoundError):
        load_pretrained(binary, tmp_path / "none.ckpt")
