"""Load weights from a checkpoint into a model, layer by layer (transfer learning).

The same function loads a Lightning checkpoint of an eeflow model, a plain ``state_dict`` file, or
published weights saved as a ``state_dict``: every tensor whose name (after stripping a
``net.`` / ``model.`` / ``module.`` prefix) and shape match is copied; the rest is reported.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

_PREFIXES = ("net.", "model.", "module.")


def read_state_dict(checkpoint_path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a Lightning ``.ckpt`` or a ``torch.save``'d state dict.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable checkpoint.

    """
    path = Path(checkpoint_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt files
        raise ValueError(f"checkpoint {path} is not a readable torch checkpoint: {err}") from err
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"checkpoint {path} holds no state dict of tensors")
    if any(name.startswith("net.") for name in state):
        # an eeflow Lightning checkpoint: the network is under "net.", the rest is the loss etc.
        state = {name: tensor for name, tensor in state.items() if name.startswith("net.")}
    out = {}
    for name, tensor in state.items():
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
        out[name] = tensor
    return out


def load_pretrained(model: nn.Module, checkpoint_path: str | Path,
                    strict: bool = False) -> dict[str, Any]:
    """Copy matching layers of ``checkpoint_path`` into ``model`` (in place).

    Args:
        model: the model to initialise.
        checkpoint_path: Lightning checkpoint or state-dict file.
        strict: when True, any skipped or missing tensor is an error.

    Returns:
        ``{"loaded": [names], "skipped": {name: reason}, "missing": [names of the model left
        at their initial values]}``.

    Raises:
        ValueError: ``strict`` and something did not match, or nothing matched at all.

    """
    source = read_state_dict(checkpoint_path)
    target = model.state_dict()
    loaded, skipped = [], {}
    update = {}
    for name, tensor in source.items():
        if name not in target:
            skipped[name] = "not in model"
        elif target[name].shape != tensor.shape:
            skipped[name] = f"shape {tuple(tensor.shape)} != model {tuple(target[name].shape)}"
        else:
            update[name] = tensor
            loaded.append(name)
    missing = [name for name in target if name not in update]
    if not loaded:
        raise ValueError(f"checkpoint {checkpoint_path}: no tensor matches the model's layers")
    if strict and (skipped or missing):
        raise ValueError(
            f"checkpoint {checkpoint_path} does not match the model strictly: "
            f"skipped {skipped}, missing {missing}"
        )
    model.load_state_dict(update, strict=False)
    log.info("loaded %d tensors from %s; skipped %d, left %d at initial values",
             len(loaded), checkpoint_path, len(skipped), len(missing))
    return {"loaded": loaded, "skipped": skipped, "missing": missing}


# --- ImageNet VGG-16 weights (torchvision layout) -------------------------------------------------

#: torchvision's VGG-16 configuration "D": output channels of each convolution, "M" = max-pool.
_TORCHVISION_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)
_BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def torchvision_vgg16_layout(batch_norm: bool) -> list[tuple[int, int | None, int]]:
    """Return ``(conv index, batch-norm index or None, out channels)`` of torchvision's VGG-16.

    The indices are those of ``torchvision.models.vgg16().features`` (``batch_norm=False``) or
    ``vgg16_bn().features`` (``batch_norm=True``): a convolution, its ``BatchNorm2d`` (``_bn``
    only) and ``ReLU`` per layer, one ``MaxPool2d`` per block.
    """
    layout, index = [], 0
    for item in _TORCHVISION_VGG16_CFG:
        if item == "M":
            index += 1
            continue
        channels = int(item)
        layout.append((index, index + 1 if batch_norm else None, channels))
        index += 3 if batch_norm else 2
    return layout


def adapt_first_conv(rgb_weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Turn a first-convolution weight (out, 3, k, k) for RGB into one for ``in_channels`` bands.

    SAR bands (HH, HV, incidence angle) have no counterpart among red, green and blue, so every
    band gets the same filter: the sum of the three RGB filters divided by ``in_channels`` (the
    mean RGB filter scaled by ``3 / in_channels``). An input that is constant across bands thus
    gives the response the RGB network gives a grey image of that value. For one band this is
    timm's ``adapt_input_conv`` (sum of the RGB filters); for other band counts timm repeats the
    RGB filters cyclically (R, G, B, R, ...) scaled by ``3 / in_chans``, which would tie HH to red
    and HV to green for no physical reason, and keeps RGB unchanged for 3 bands.

    Raises:
        ValueError: the weight does not have 3 input channels.

    """
    if rgb_weight.ndim != 4 or rgb_weight.shape[1] != 3:
        raise ValueError(
            f"expected an RGB conv weight (out, 3, k, k), got {tuple(rgb_weight.shape)}"
        )
    summed = rgb_weight.float().sum(dim=1, keepdim=True) / in_channels
    return summed.repeat(1, in_channels, 1, 1).to(rgb_weight.dtype)


def _model_layers(model: nn.Module) -> tuple[list[nn.Conv2d], list[nn.BatchNorm2d | None]]:
    """Convolutions of ``model.features`` and the batch norm right after each (or None)."""
    # torch types a module attribute as Tensor | Module; ``features`` is an nn.Sequential
    modules = list(model.features)  # type: ignore[arg-type]
    convs: list[nn.Conv2d] = []
    norms: list[nn.BatchNorm2d | None] = []
    for position, module in enumerate(modules):
        if isinstance(module, nn.Conv2d):
            convs.append(module)
            following = modules[position + 1] if position + 1 < len(modules) else None
            norms.append(following if isinstance(following, nn.BatchNorm2d) else None)
    return convs, norms


def _check_layout(source: dict[str, torch.Tensor], layout: list[tuple[int, int | None, int]],
                  weights_path: str | Path) -> None:
    """Raise ValueError naming every missing or mis-shaped tensor of a torchvision VGG-16."""
    problems: list[str] = []
    previous = 3
    for conv_index, bn_index, channels in layout:
        shapes = {f"features.{conv_index}.weight": (channels, previous, 3, 3),
                  f"features.{conv_index}.bias": (channels,)}
        if bn_index is not None:
            shapes.update({f"features.{bn_index}.{key}": (channels,) for key in _BN_KEYS[:4]})
        for name, shape in shapes.items():
            if name not in source:
                problems.append(f"{name} missing")
            elif tuple(source[name].shape) != shape:
                problems.append(f"{name} has shape {tuple(source[name].shape)}, expected {shape}")
        previous = channels
    if problems:
        name = "vgg16_bn" if layout[0][1] is not None else "vgg16"
        more = f"; and {len(problems) - 8} more" if len(problems) > 8 else ""
        raise ValueError(
            f"{weights_path} is not a torchvision VGG-16 state dict ({name} layout): "
            + "; ".join(problems[:8]) + more
        )


def load_imagenet_vgg16(model: nn.Module, weights_path: str | Path) -> dict[str, Any]:
    """Initialise an eeflow VGG-16's 13 convolutions from ImageNet weights (in place).

    ``weights_path`` is a ``torch.save``'d state dict in torchvision's layout: ``vgg16``
    (``features.{0,2,5,...,28}.weight/bias``) or ``vgg16_bn`` (with ``features.{1,4,...}``
    batch norms), e.g. ``torch.save(torchvision.models.vgg16(weights="IMAGENET1K_V1")
    .state_dict(), "vgg16.pth")``. Convolutions are matched by order. The first convolution's RGB
    filters become SAR filters by :func:`adapt_first_conv`. With a ``vgg16_bn`` file, a model
    with batch norm gets the batch norm tensors; a model without gets each batch norm folded into
    its convolution (exact at inference: ``w * g / sqrt(v + eps)``, ``(b - m) * g / sqrt(v + eps)
    + beta``). A ``vgg16`` file leaves a model's batch norms at their initial values.
    torchvision's ``classifier.*`` (4096-unit layers on a 7 x 7 map of a 224 px image, 1000
    ImageNet classes) does not fit the 1024 / 512 head on a 1 x 1 to 4 x 4 map of a 20 / 32 px
    patch: it is skipped and the head keeps its random initialisation.

    Args:
        model: a :class:`tasks.models.vgg16.VGG16` (or modified) at ``width_multiplier`` 1.
        weights_path: the state-dict file.

    Returns:
        ``{"layout": "vgg16" | "vgg16_bn", "loaded": [model tensor names], "skipped": {source
        name: reason}, "first_conv": rule, "missing": [model tensors left at initial values]}``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the model is not a full-width VGG-16, or the file is not in torchvision's
            VGG-16 layout (the message names the file and the missing or mismatched keys).

    """
    convs, norms = _model_layers(model)
    widths = [c.out_channels for c in convs]
    if getattr(model, "width_multiplier", 1.0) != 1.0 or widths != [c for _, _, c in
                                                                 torchvision_vgg16_layout(False)]:
        raise ValueError(
            "ImageNet VGG-16 weights need the full-width VGG-16 (train.width_multiplier: 1); "
            f"this model's convolutions have {widths} channels"
        )
    source = read_state_dict(weights_path)
    has_bn = "features.1.running_mean" in source
    layout = torchvision_vgg16_layout(has_bn)
    _check_layout(source, layout, weights_path)
    model_names = {id(m): n for n, m in model.named_modules()}
    loaded: list[str] = []
    used: set[str] = set()
    with torch.no_grad():
        for position, ((conv_index, bn_index, _), conv, norm) in enumerate(
                zip(layout, convs, norms, strict=True)):
            weight = source[f"features.{conv_index}.weight"].float()
            bias = source[f"features.{conv_index}.bias"].float()
            used.update({f"features.{conv_index}.weight", f"features.{conv_index}.bias"})
            if bn_index is not None:
                stats = {key: source[f"features.{bn_index}.{key}"] for key in _BN_KEYS
                         if f"features.{bn_index}.{key}" in source}
                used.update(f"features.{bn_index}.{key}" for key in stats)
                if norm is None:  # fold the batch norm into the convolution
                    scale = stats["weight"].float() / torch.sqrt(stats["running_var"].float()
                                                                 + 1e-5)
                    weight = weight * scale[:, None, None, None]
                    bias = (bias - stats["running_mean"].float()) * scale + stats["bias"].float()
                else:
                    for key, value in stats.items():
                        getattr(norm, key).copy_(value)
                    loaded += [f"{model_names[id(norm)]}.{key}" for key in stats]
            if position == 0:
                weight = adapt_first_conv(weight, conv.in_channels)
            conv.weight.copy_(weight)
            if conv.bias is not None:
                conv.bias.copy_(bias)
            loaded += [f"{model_names[id(conv)]}.weight", f"{model_names[id(conv)]}.bias"]
    skipped = {name: ("torchvision's classifier (4096-unit layers on a 224 px image) does not "
                      "fit eeflow's 1024 / 512 head" if name.startswith("classifier.")
                      else "not part of torchvision's VGG-16 features")
               for name in source if name not in used}
    missing = [name for name in model.state_dict() if name not in loaded]
    log.info("ImageNet VGG-16 (%s layout) from %s: %d tensors loaded, head left at random "
             "initialisation", "vgg16_bn" if has_bn else "vgg16", weights_path, len(loaded))
    return {"layout": "vgg16_bn" if has_bn else "vgg16", "loaded": loaded, "skipped": skipped,
            "first_conv": f"sum of the RGB filters / {convs[0].in_channels}, per input band",
            "missing": missing}
