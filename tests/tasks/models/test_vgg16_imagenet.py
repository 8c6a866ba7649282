"""ImageNet VGG-16 weights (torchvision state-dict layout) into eeflow's VGG-16 (issue 18).

The state dicts are made here with torchvision's exact key names and shapes (``features.N`` of
``torchvision.models.vgg16`` / ``vgg16_bn``, built the way torchvision's ``make_layers`` builds
them; the 4096-wide ``classifier.0`` / ``classifier.3`` are left out to keep the file small, the
loader ignores ``classifier.*``); nothing is downloaded. With torchvision installed, its own
``vgg16(weights=None).state_dict()`` is loaded too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from tasks.models.ice_zoo import build_model
from tasks.models.transfer import adapt_first_conv, load_imagenet_vgg16, torchvision_vgg16_layout

torch.set_num_threads(1)

CFG_D = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def torchvision_like_features(batch_norm: bool) -> nn.Sequential:
    """``torchvision.models.vgg.make_layers(cfgs["D"], batch_norm)``, written out."""
    layers: list[nn.Module] = []
    channels = 3
    for item in CFG_D:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        layers.append(nn.Conv2d(channels, int(item), 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(int(item)))
        layers.append(nn.ReLU(inplace=True))
        channels = int(item)
    return nn.Sequential(*layers)


def imagenet_like_file(tmp_path: Path, batch_norm: bool) -> tuple[Path, nn.Sequential]:
    torch.manual_seed(1)
    features = torchvision_like_features(batch_norm)
    if batch_norm:  # non-trivial running statistics, as trained weights have
        for module in features:
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.data.uniform_(0.5, 1.5)
                module.bias.data.uniform_(-0.2, 0.2)
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.6.weight"] = torch.zeros(1000, 4096)
    state["classifier.6.bias"] = torch.zeros(1000)
    path = tmp_path / ("vgg16_bn.pth" if batch_norm else "vgg16.pth")
    torch.save(state, path)
    return path, features.eval()


def convs(net: nn.Module) -> list[nn.Conv2d]:
    return [m for m in net.features if isinstance(m, nn.Conv2d)]  # type: ignore[attr-defined]


def test_layout_matches_torchvision_indices() -> None:
    for batch_norm in (False, True):
        features = torchvision_like_features(batch_norm)
        conv_at = [i for i, m in enumerate(features) if isinstance(m, nn.Conv2d)]
        layout = torchvision_vgg16_layout(batch_norm)
        assert [c for c, _, _ in layout] == conv_at
        assert [b for _, b, _ in layout] == ([i + 1 for i in conv_at] if batch_norm
                                             else [None] * 13)
    assert [c for c, _, _ in torchvision_vgg16_layout(False)][-1] == 28
    assert [c for c, _, _ in torchvision_vgg16_layout(True)][-1] == 40


def test_first_conv_rule() -> None:
    rgb = torch.randn(64, 3, 3, 3)
    for bands in (1, 2, 3, 4):
        sar = adapt_first_conv(rgb, bands)
        assert sar.shape == (64, bands, 3, 3)
        for band in range(bands):
            torch.testing.assert_close(sar[:, band], rgb.sum(dim=1) / bands)
        # an input constant across bands gets the RGB network's response to a grey image
        torch.testing.assert_close(sar.sum(dim=1), rgb.sum(dim=1))
    with pytest.raises(ValueError, match="RGB conv weight"):
        adapt_first_conv(torch.randn(64, 2, 3, 3), 3)


@pytest.mark.parametrize("name", ["vgg16_transfer", "vgg16_modified"])
def test_vgg16_layout_loads_by_order(tmp_path: Path, name: str) -> None:
    path, source = imagenet_like_file(tmp_path, batch_norm=False)
    net = build_model(name, 2, 3, 32)
    head_before = {k: v.clone() for k, v in net.head.state_dict().items()}
    report = load_imagenet_vgg16(net, path)
    assert report["layout"] == "vgg16" and len(report["loaded"]) == 26
    assert set(report["skipped"]) == {"classifier.6.weight", "classifier.6.bias"}
    assert "224 px" in report["skipped"]["classifier.6.weight"]
    assert all(k.startswith("head.") for k in report["missing"])
    source_convs = [m for m in source if isinstance(m, nn.Conv2d)]
    for position, (mine, theirs) in enumerate(zip(convs(net), source_convs, strict=True)):
        expected = adapt_first_conv(theirs.weight, 3) if position == 0 else theirs.weight
        torch.testing.assert_close(mine.weight, expected)
        torch.testing.assert_close(mine.bias, theirs.bias)
    for key, value in net.head.state_dict().items():  # the head keeps its initialisation
        assert torch.equal(value, head_before[key])


def test_two_band_input(tmp_path: Path) -> None:
    path, source = imagenet_like_file(tmp_path, batch_norm=False)
    net = build_model("vgg16_transfer", 2, 2, 32)  # HH, HV without incidence angle
    load_imagenet_vgg16(net, path)
    first = convs(net)[0].weight
    assert first.shape == (64, 2, 3, 3)
    torch.testing.assert_close(first[:, 1], source[0].weight.sum(dim=1) / 2)


def test_vgg16_bn_layout_into_a_model_with_and_without_batch_norm(tmp_path: Path) -> None:
    path, source = imagenet_like_file(tmp_path, batch_norm=True)
    with_bn = build_model("vgg16_transfer", 5, 3, 32, batch_norm=True)
    report = load_imagenet_vgg16(with_bn, path)
    assert report["layout"] == "vgg16_bn" and len(report["loaded"]) == 13 * 2 + 13 * 5
    norms = [m for m in with_bn.features if isinstance(m, nn.BatchNorm2d)]
    source_norms = [m for m in source if isinstance(m, nn.BatchNorm2d)]
    for mine, theirs in zip(norms, source_norms, strict=True):
        torch.testing.assert_close(mine.running_var, theirs.running_var)
        torch.testing.assert_close(mine.weight, theirs.weight)
    # without batch norm, each one is folded into its convolution: same output at inference
    plain = build_model("vgg16_transfer", 5, 3, 32).eval()
    load_imagenet_vgg16(plain, path)
    x = torch.randn(2, 64, 8, 8)
    conv2, bn2 = source[3], source[4]  # the second convolution and its batch norm
    with torch.no_grad():
        torch.testing.assert_close(convs(plain)[1](x), bn2(conv2(x)), rtol=1e-4, atol=1e-4)


def test_wrong_layout_and_width_are_clear_errors(tmp_path: Path) -> None:
    path, _ = imagenet_like_file(tmp_path, batch_norm=False)
    with pytest.raises(ValueError, match="width_multiplier: 1"):
        load_imagenet_vgg16(build_model("vgg16_transfer", 2, 3, 32, width_multiplier=0.5), path)
    with pytest.raises(ValueError, match="full-width VGG-16"):
        load_imagenet_vgg16(build_model("adhoc_cnn", 2, 3, 32), path)
    state = torch.load(path, weights_only=True)
    del state["features.28.weight"]
    state["features.5.bias"] = torch.zeros(7)
    bad = tmp_path / "resnet_or_so.pth"
    torch.save(state, bad)
    with pytest.raises(ValueError, match="resnet_or_so.pth is not a torchvision VGG-16") as err:
        load_imagenet_vgg16(build_model("vgg16_transfer", 2, 3, 32), bad)
    assert "features.28.weight missing" in str(err.value)
    assert "features.5.bias has shape (7,), expected (128,)" in str(err.value)
    with pytest.raises(FileNotFoundError):
        load_imagenet_vgg16(build_model("vgg16_transfer", 2, 3, 32), tmp_path / "none.pth")


@pytest.mark.parametrize("batch_norm", [False, True])
def test_torchvision_state_dict_when_installed(tmp_path: Path, batch_norm: bool) -> None:
    models = pytest.importorskip("torchvision.models")
    source = (models.vgg16_bn if batch_norm else models.vgg16)(weights=None)
    torch.save(source.state_dict(), tmp_path / "tv.pth")
    net = build_model("vgg16_transfer", 2, 3, 32, batch_norm=batch_norm)
    report = load_imagenet_vgg16(net, tmp_path / "tv.pth")
    assert report["layout"] == ("vgg16_bn" if batch_norm else "vgg16")
    assert all(name.startswith("classifier.") for name in report["skipped"])
    torch.testing.assert_close(convs(net)[12].weight, source.features[40 if batch_norm else 28]
                               .weight)
