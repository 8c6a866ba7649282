import torch

from tasks.models.starrnn import STARCell, StarRNNClassifier


def test_star_cell_state_stays_bounded() -> None:
    cell = STARCell(3, 5)
    h = torch.zeros(2, 5)
    for _ in range(50):
        h = cell(torch.randn(2, 3) * 10, h)
    assert h.shape == (2, 5) and h.abs().max() <= 1.0


def test_starrnn_shapes_and_gradients() -> None:
    model = StarRNNClassifier(n_bands=10, n_classes=16, layers=3, cells=8)
    x = torch.randn(4, 12, 10)
    logits = model(x)
    assert logits.shape == (4, 16)
    logits.sum().backward()
    first = model.cells[0].input_to_gate_and_candidate.weight.grad
    assert first is not None and first.abs().sum() > 0
