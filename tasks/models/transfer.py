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
