"""StarRNN baseline: stacked STAR cells.

Turkoglu et al. 2019, "Gating revisited: deep multi-layer RNNs that can be trained".

The STAR cell keeps one gate:
``k_t = sigmoid(W_k x_t + U_k h_{t-1} + b_k)``, ``z_t = tanh(W_z x_t + b_z)``,
``h_t = tanh((1 - k_t) * h_{t-1} + k_t * z_t)``. Layers are stacked; the last layer's final state is
classified.

Compared with BreizhCrops' ``StarRNN`` (``breizhcrops/models/StarRNN.py``, README "Models"): it
adds an input LayerNorm, a BatchNorm1d over each layer's outputs, dropout on every layer, a
LayerNorm before the classifier and orthogonal weight init, and repeats one ``StarLayer`` object
for layers 2..n (shared weights; these layers are independent). Its cell computes
``h = tanh(K * h + (1 - K) * z)`` (gate on the previous state): with the same +1 gate bias it starts
leaning to keep the state, this cell (gate on the candidate) to take the candidate.
"""

from __future__ import annotations

import torch
from torch import nn


class STARCell(nn.Module):
    """One STAR recurrent cell (input ``x_t`` (batch, in), state ``h`` (batch, hidden))."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_to_gate_and_candidate = nn.Linear(input_size, 2 * hidden_size)
        self.state_to_gate = nn.Linear(hidden_size, hidden_size, bias=False)
        # +1 gate bias as in BreizhCrops' StarCell; here the gate weighs the candidate, so the
        # cell starts leaning to the new input (see the module docstring).
        with torch.no_grad():
            self.input_to_gate_and_candidate.bias[:hidden_size].fill_(1.0)

    def forward(self, x_t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Return the next state (batch, hidden)."""
        gate_in, candidate_in = self.input_to_gate_and_candidate(x_t).chunk(2, dim=-1)
        gate = torch.sigmoid(gate_in + self.state_to_gate(h))
        candidate = torch.tanh(candidate_in)
        return torch.tanh((1.0 - gate) * h + gate * candidate)


class StarRNNClassifier(nn.Module):
    """Stacked STAR RNN over a pixel time series.

    Args:
        n_bands: input features per time step.
        n_classes: output classes.
        layers: stacked STAR layers.
        cells: hidden units per layer.
        dropout: dropout between layers and before the classifier.

    """

    def __init__(
        self, n_bands: int, n_classes: int, layers: int = 3, cells: int = 128, dropout: float = 0.2
    ) -> None:
        super().__init__()
        if layers < 1 or cells < 1:
            raise ValueError(f"StarRNN needs layers >= 1 and cells >= 1, got {layers=} {cells=}")
        self.cells = nn.ModuleList(
            STARCell(n_bands if i == 0 else cells, cells) for i in range(layers)
        )
        self.hidden_size = cells
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(cells, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (batch, time, band) normalised reflectance to (batch, class) logits."""
        sequence = x
        for depth, cell in enumerate(self.cells):
            h = x.new_zeros(x.shape[0], self.hidden_size)
            outputs = []
            for t in range(sequence.shape[1]):
                h = cell(sequence[:, t], h)
                outputs.append(h)
            sequence = torch.stack(outputs, dim=1)
            if depth < len(self.cells) - 1:
                sequence = self.dropout(sequence)
        return self.classifier(self.dropout(sequence[:, -1]))
