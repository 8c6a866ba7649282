import pytest
import torch

from tasks.models.tempcnn import TempCNNClassifier


def test_tempcnn_shapes_and_backward() -> None:
    model = TempCNNClassifier(n_bands=10, n_classes=16, n_timesteps=12, filters=8, hidden=16)
    x = torch.randn(4, 12, 10, requires_grad=True)
    logits = model(x)
    assert logits.shape == (4, 16)
    logits.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_tempcnn_needs_the_configured_length() -> None:
    model = TempCNNClassifier(n_bands=3, n_classes=2, n_timesteps=12, filters=4, hidden=8)
    with pytest.raises(RuntimeError):
        model(torch.randn(2, 10, 3))
