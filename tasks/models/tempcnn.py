"""TempCNN baseline (Pelletier, Webb & Petitjean 2019, Remote Sensing 11(5):523).

Three 1-D convolution blocks over time (convolution, batch norm, ReLU, dropout), a fully connected
layer with batch norm, ReLU and dropout, then the class logits.

The same layout as BreizhCrops' ``TempCNN`` (``breizhcrops/models/TempCNN.py``: 64 filters,
kernel 5, dense layer 4 x 64); BreizhCrops' default dropout is 0.5 (here ``train.dropout``, 0.2)
and it returns log-probabilities where this returns logits for the cross-entropy loss.
"""

from __future__ import annotations

import torch
from torch import nn


class TempCNNClassifier(nn.Module):
    """Temporal convolutional network over a pixel time series.

    Args:
        n_bands: input features per time step.
        n_classes: output classes.
        n_timesteps: length of the series (12 monthly composites).
        filters: convolution filters per block (paper: 64).
        kernel_size: temporal kernel (paper: 5, "same" padding).
        hidden: units of the fully connected layer (paper: 256).
        dropout: dropout rate (paper: 0.2).

    """

    def __init__(
        self,
        n_bands: int,
        n_classes: int,
        n_timesteps: int = 12,
        filters: int = 64,
        kernel_size: int = 5,
        hidden: int = 256,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        channels = n_bands
        for _ in range(3):
            blocks += [
                nn.Conv1d(channels, filters, kernel_size, padding=kernel_size // 2),
                nn.BatchNorm1d(filters),
                nn.ReLU(),
                nn.Dropout(dropout),
            ]
            channels = filters
        self.convolutions = nn.Sequential(*blocks)
        self.dense = nn.Sequential(
            nn.Flatten(),
            nn.Linear(filters * n_timesteps, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.classifier = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (batch, time, band) normalised reflectance to (batch, class) logits."""
        features = self.convolutions(x.transpose(1, 2))
        return self.classifier(self.dense(features))
