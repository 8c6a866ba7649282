"""The loss each training phase really uses (issue 19): weighted in phase 1, plain in phase 2.

Every ``cross_entropy`` call of a training step is recorded with its ``weight``; the expected
phase-1 weights are computed here from the train store's labels (``n / (present classes *
count)``, 0 for absent classes), independently of the code under test. The model card must state
what was applied.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import zarr
from torch import nn

from tasks.food_security.train import train_crop_model
from tests.tasks.food_security.conftest_ml import tiny_config, write_sample_year

RUN_DATE = "2017-09-01"
YEAR = "2017-09_2018-08"


class _PhaseSpy:
    """Records the ``weight`` of each training-step cross-entropy, per phase."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.phase = "?"

    def wrap(self, real: Any) -> Any:
        def spy(logits: torch.Tensor, target: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("reduction", "mean") == "mean":  # training steps (validation sums)
                weight = kwargs.get("weight")
                self.calls.append((self.phase,
                                   None if weight is None else weight.detach().clone().tolist()))
            return real(logits, target, *args, **kwargs)
        return spy


@pytest.fixture()
def sample_root(tmp_path: Path) -> Path:
    write_sample_year(tmp_path, RUN_DATE, n_train=300, n_val=80, n_test=40)
    return tmp_path


def _expected_weights(root: Path) -> list[float]:
    labels = np.asarray(zarr.open_group(
        str(root / f"food_security/samples/{YEAR}/train.zarr"), mode="r")["y"][...])
    n_classes = 16
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return weights.tolist()


@pytest.mark.parametrize("weighted", [True, False])
def test_each_phase_trains_with_the_configured_loss(
    sample_root: Path, monkeypatch: pytest.MonkeyPatch, weighted: bool
) -> None:
    import lightning as L

    from tasks.trainers import crops

    spy = _PhaseSpy()
    monkeypatch.setattr(crops.nn.functional, "cross_entropy",
                        spy.wrap(nn.functional.cross_entropy))

    class PhaseMarker(L.Callback):
        def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            spy.phase = "phase1" if spy.phase in ("?",) else "phase2"

    cfg = tiny_config(sample_root, epochs_phase1=1, epochs_phase2=1, weighted=weighted)
    result = train_crop_model(cfg, RUN_DATE, callbacks=[PhaseMarker()])
    expected = _expected_weights(sample_root)
    phase1 = [w for p, w in spy.calls if p == "phase1"]
    phase2 = [w for p, w in spy.calls if p == "phase2"]
    assert phase1 and phase2, spy.calls[:3]
    if weighted:
        assert all(w is not None and w == pytest.approx(expected, rel=1e-6) for w in phase1)
        assert len(set(map(tuple, phase1))) == 1
    else:
        assert all(w is None for w in phase1)
    assert all(w is None for w in phase2)  # phase 2: the plain loss
    card = json.loads((Path(result["model_dir"]) / "model.json").read_text())
    assert card["hyperparameters"]["weighted"] is weighted
    if weighted:
        assert card["class_weights_phase1"] == pytest.approx(expected, rel=1e-6)
    else:  # the card states what was applied, not what the weights would have been
        assert card["class_weights_phase1"] is None
