import pytest
import torch

from tasks.models.lstm import LSTMClassifier


@pytest.mark.parametrize(("layers", "cells"), [(2, 100), (3, 125), (4, 8)])
def test_lstm_grid_shapes(layers: int, cells: int) -> None:
    model = LSTMClassifier(n_bands=10, n_classes=16, layers=layers, cells=cells)
    assert model.lstm.num_layers == layers and model.lstm.hidden_size == cells
    logits = model(torch.randn(5, 12, 10))
    assert logits.shape == (5, 16)


def test_lstm_uses_the_time_order() -> None:
    torch.manual_seed(0)
    model = LSTMClassifier(n_bands=3, n_classes=4, layers=2, cells=8, dropout=0.0).eval()
    x = torch.randn(2, 12, 3)
    assert not torch.allclose(model(x), model(x.flip(1)))


def test_lstm_rejects_zero_layers() -> None:
    with pytest.raises(ValueError, match="layers >= 1"):
        LSTMClassifier(n_bands=3, n_classes=4, layers=0)
