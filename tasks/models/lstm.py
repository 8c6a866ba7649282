"""Multilayer pixel-level LSTM crop classifier (the paper's model).

A stack of ``layers`` LSTM layers with ``cells`` hidden units reads a pixel's 12 monthly composites
(September..August) and a linear layer maps the last hidden state to class logits. The paper's grid
(layers in {2, 3, 4} x cells in {100, 125, 200, 225, 300}) is the ``train.layers`` / ``train.cells``
keys (or ``train.grid``) of ``configs/food_security.yaml``.

Compared with BreizhCrops' ``LSTM`` (``breizhcrops/models/LongShortTermMemory.py``): that one
normalises the input with a LayerNorm, has no LSTM biases, and classifies the final *cell* states
of all layers, concatenated and layer-normalised; the paper does not say how the LSTM is read out,
and this one reads the last layer's final hidden state without normalisation (README "Models").
"""

from __future__ import annotations

import torch
from torch import nn


class LSTMClassifier(nn.Module):
    """Multilayer LSTM over a pixel time series.

    Args:
        n_bands: input features per time step (spectral bands).
        n_classes: output classes.
        layers: stacked LSTM layers.
        cells: hidden units per layer.
        dropout: dropout between LSTM layers and before the classifier.

    """

    def __init__(
        self, n_bands: int, n_classes: int, layers: int = 2, cells: int = 100, dropout: float = 0.2
    ) -> None:
        super().__init__()
        if layers < 1 or cells < 1:
            raise ValueError(f"LSTM needs layers >= 1 and cells >= 1, got {layers=} {cells=}")
        self.lstm = nn.LSTM(
            input_size=n_bands,
            hidden_size=cells,
            num_layers=layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(cells, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (batch, time, band) normalised reflectance to (batch, class) logits."""
        _, (hidden, _) = self.lstm(x)
        return self.classifier(self.dropout(hidden[-1]))
