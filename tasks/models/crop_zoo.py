"""Build a crop-type network by name (``train.model`` of configs/food_security.yaml)."""

from __future__ import annotations

from torch import nn

from tasks.config.food_security import CROP_MODEL_NAMES
from tasks.models.lstm import LSTMClassifier
from tasks.models.starrnn import StarRNNClassifier
from tasks.models.tempcnn import TempCNNClassifier


def build_crop_network(
    name: str,
    n_bands: int,
    n_classes: int,
    n_timesteps: int = 12,
    layers: int = 2,
    cells: int = 100,
    dropout: float = 0.2,
) -> nn.Module:
    """Return the network called ``name`` (``lstm``, ``tempcnn`` or ``starrnn``).

    ``layers``/``cells`` size the recurrent models; TempCNN uses its paper architecture with
    ``cells`` ignored.
    """
    if name == "lstm":
        return LSTMClassifier(n_bands, n_classes, layers=layers, cells=cells, dropout=dropout)
    if name == "starrnn":
        return StarRNNClassifier(n_bands, n_classes, layers=layers, cells=cells, dropout=dropout)
    if name == "tempcnn":
        return TempCNNClassifier(n_bands, n_classes, n_timesteps=n_timesteps, dropout=dropout)
    raise ValueError(f"unknown crop model {name!r}; allowed: {list(CROP_MODEL_NAMES)}")
