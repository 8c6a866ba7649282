import numpy as np
import pytest
import torch

from tasks.models.crop_zoo import build_crop_network
from tasks.trainers.crops import CropClassifier, DecoupledRMSprop
from tasks.trainers.scores import classification_scores


def test_scores_of_a_known_confusion_matrix() -> None:
    confusion = np.array([[8, 2, 0], [1, 9, 0], [0, 0, 0]])
    scores = classification_scores(confusion)
    assert scores["overall_accuracy"] == pytest.approx(17 / 20)
    f1_a = 2 * (8 / 9) * 0.8 / (8 / 9 + 0.8)
    f1_b = 2 * (9 / 11) * 0.9 / (9 / 11 + 0.9)
    assert scores["f1"][0] == pytest.approx(f1_a) and scores["f1"][1] == pytest.approx(f1_b)
    assert scores["f1"][2] is None  # no reference pixel: not counted
    assert scores["median_f1"] == pytest.approx(np.median([f1_a, f1_b]))
    assert scores["support"] == [10, 10, 0]


def test_module_normalises_with_the_band_statistics() -> None:
    module = CropClassifier("lstm", 2, 3, band_mean=[1.0, 2.0], band_std=[2.0, 4.0], cells=4)
    x = torch.tensor([[[3.0, 6.0]] * 12])
    assert torch.allclose(module.normalise(x), torch.ones_like(x))


def test_module_rejects_bad_statistics_and_names() -> None:
    with pytest.raises(ValueError, match="band_std must be positive"):
        CropClassifier("lstm", 2, 3, band_mean=[0.0, 0.0], band_std=[1.0, 0.0])
    with pytest.raises(ValueError, match="allowed"):
        build_crop_network("transformer", 2, 3)


def test_decoupled_weight_decay_shrinks_by_lr_times_decay() -> None:
    weight = torch.nn.Parameter(torch.ones(3))
    optimiser = DecoupledRMSprop([weight], lr=0.1, decoupled_weight_decay=0.4)
    weight.grad = torch.zeros(3)
    optimiser.step()
    assert torch.allclose(weight.detach(), torch.full((3,), 1 - 0.1 * 0.4))
