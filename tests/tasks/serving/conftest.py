"""Fixtures of the serving tests: tiny trained models, a registry, a serving config, API keys.

The polar model trains one epoch of a quarter-width ad-hoc CNN on a hand-written 32 px patch set
(classes differ in HH / HV level); the crop model one + one epochs of a 1 x 8 LSTM on the
food-security test samples (``conftest_ml``). Both are registered in an MLflow SQLite registry
under the serving data root, as the training pipelines would.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from tests.tasks.food_security.conftest_ml import tiny_config, write_sample_year
from tests.tasks.polar.polar_synthetic_scene import tiny_polar_config
from tests.tasks.serving.serving_fixtures import (
    RUN_DATE,
    serving_config,
    write_patch_set,
)

torch.set_num_threads(1)
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
logging.getLogger("lightning.fabric").setLevel(logging.WARNING)

@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Model folders of a tiny polar CNN and a tiny crop LSTM."""
    from tasks.food_security.train import train_crop_model
    from tasks.polar.train import train_model

    root = tmp_path_factory.mktemp("serving_models")
    patches = write_patch_set(root / "patches_32.zarr")
    polar_cfg = tiny_polar_config(root, train={"model": "adhoc_cnn", "epochs": 1,
                                               "augment": False, "width_multiplier": 0.25})
    polar_dir = Path(train_model(polar_cfg, patches)["model_dir"])
    write_sample_year(root, RUN_DATE, n_train=200, n_val=60, n_test=20)
    crop_cfg = tiny_config(root, epochs_phase1=1, epochs_phase2=1)
    crop_dir = Path(train_crop_model(crop_cfg, RUN_DATE)["model_dir"])
    return {"polar": polar_dir, "food_security": crop_dir}


@pytest.fixture(scope="session")
def serving_root(trained_models: dict[str, Path],
                 tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root whose registry holds sea-ice v1 (production), v2 (staging), crops v1."""
    from tasks.model_registry import ModelRegistry

    root = tmp_path_factory.mktemp("serving_root")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        registry = ModelRegistry.from_config(serving_config(root))
        registry.register("polar", trained_models["polar"], alias="production")
        registry.register("polar", trained_models["polar"], metrics={"val_acc": 0.1},
                          alias="staging")
        registry.register("food_security", trained_models["food_security"], alias="production")
    return root


@pytest.fixture()
def no_tracking_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry of the config, not one from the environment."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
