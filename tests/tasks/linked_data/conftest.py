"""Fixtures of the linked-data tests (tiny product files, a config on tmp_path)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.config.linked_data import LinkedDataConfig
from tests.tasks.linked_data.linked_data_samples import (
    write_crop_instances,
    write_ice_chart,
    write_lucas,
    write_model_and_evaluation,
)


@pytest.fixture
def ld_cfg(tmp_path: Path) -> LinkedDataConfig:
    return LinkedDataConfig(data_root=str(tmp_path / "data"))


@pytest.fixture
def products(ld_cfg: LinkedDataConfig) -> dict[str, Path]:
    root = ld_cfg.resolved_root()
    model, evaluation = write_model_and_evaluation(root)
    return {
        "ice_chart": write_ice_chart(root),
        "crop_field_instances": write_crop_instances(root),
        "lucas_points": write_lucas(root),
        "model": model,
        "evaluation": evaluation,
    }
