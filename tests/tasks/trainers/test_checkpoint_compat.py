"""Lightning checkpoints written before the modules moved to tasks.trainers still load.

The fixtures in tests/data/checkpoints were written by the old classes
(``tasks.models.crop_classifier.CropClassifier`` and ``tasks.polar.train.IceClassifier``) with a
one-epoch fit on random data.
"""

from pathlib import Path

import torch

from tasks.models.ice_zoo import build_model
from tasks.models.transfer import load_pretrained
from tasks.trainers.crops import CropClassifier
from tasks.trainers.ice import IceClassifier

CHECKPOINTS = Path(__file__).parents[2] / "data" / "checkpoints"


def test_old_crop_checkpoint_loads_into_the_moved_module() -> None:
    module = CropClassifier.load_from_checkpoint(
        CHECKPOINTS / "crop_classifier_lstm_v1.ckpt", map_location="cpu")
    assert module.hparams.model_name == "lstm" and module.hparams.n_classes == 3
    assert module.band_mean.tolist() == torch.tensor([0.1, 0.2]).tolist()
    assert module.eval()(torch.rand(5, 4, 2)).shape == (5, 3)


def test_old_ice_checkpoint_loads_into_the_moved_module_and_the_network() -> None:
    path = CHECKPOINTS / "ice_classifier_adhoc_cnn_v1.ckpt"
    module = IceClassifier.load_from_checkpoint(path, map_location="cpu")
    assert module.hparams.model_name == "adhoc_cnn" and module.hparams.class_weights == [1.0, 2.0]
    net = build_model("adhoc_cnn", 2, 3, 20, 0.5, 0.125)
    report = load_pretrained(net, path, strict=True)  # how tasks.polar.train.load_model reads it
    assert not report["missing"] and not report["skipped"]
    for name, value in net.state_dict().items():
        assert torch.equal(value, module.net.state_dict()[name])
