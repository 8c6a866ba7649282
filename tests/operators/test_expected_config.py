"""The operators refuse a ``config`` param of another use case before the stage runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from operators.stage import EeflowStageOperator, expected_config, import_target
from tasks.config.common import ConfigError
from tasks.config.food_security import FoodSecurityConfig
from tasks.config.polar import PolarConfig
from tasks.stage_result import StageResult

REPO = Path(__file__).resolve().parents[2]
HERE = "tests.operators.test_expected_config"
DAY = "2026-01-15"
CALLS: list[str] = []


def polar_only_stage(cfg: PolarConfig, run_date: object) -> StageResult:
    CALLS.append(cfg.use_case)
    return StageResult(summary={"use_case": cfg.use_case})


def polar_or_crops_stage(cfg: PolarConfig | FoodSecurityConfig, run_date: object) -> StageResult:
    CALLS.append(cfg.use_case)
    return StageResult(summary={"use_case": cfg.use_case})


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EEFLOW_HOME", str(REPO))
    CALLS.clear()


def _run(function: str, config: str) -> object:
    op = EeflowStageOperator(task_id="stage", target=f"{HERE}:{function}",
                             default_config="configs/polar.yaml")
    return op.execute({"params": {"run_date": DAY, "config": config}})


def test_the_expected_config_is_the_stage_annotation() -> None:
    assert expected_config(polar_only_stage) is PolarConfig
    assert expected_config(polar_or_crops_stage) == (PolarConfig, FoodSecurityConfig)
    assert expected_config(import_target("tasks.polar.stages:train_stage")) is PolarConfig
    assert expected_config(import_target("tasks.food_security.stages:predict_stage")) \
        is FoodSecurityConfig
    assert expected_config(import_target("tasks.experiments.stages:run_trials_stage")) \
        == (PolarConfig, FoodSecurityConfig)
    # any use case: UseCaseConfig itself, no annotation
    assert expected_config(import_target("tasks.linked_data.stages:rdf_export_stage")) is None
    assert expected_config(lambda cfg, run_date: None) is None


def test_a_config_of_another_use_case_is_refused_before_the_stage_runs() -> None:
    with pytest.raises(AirflowFailException) as caught:
        _run("polar_only_stage", "configs/food_security.yaml")
    message = str(caught.value)
    assert "use_case is 'food_security', expected 'polar'" in message
    assert "configs/food_security.yaml" in message
    assert CALLS == []
    with pytest.raises(AirflowFailException, match="expected 'polar' or 'food_security'"):
        _run("polar_or_crops_stage", "configs/linked_data.yaml")
    assert CALLS == []


def test_a_config_of_the_expected_use_case_runs() -> None:
    assert _run("polar_only_stage", "configs/polar.yaml") == {"use_case": "polar"}
    assert _run("polar_or_crops_stage", "configs/food_security.yaml") == {
        "use_case": "food_security"}
    assert CALLS == ["polar", "food_security"]


def test_the_scene_sensor_loads_polar_configs_only() -> None:
    from operators.sensors import _load

    assert isinstance(_load(str(REPO / "configs/polar.yaml"), {}), PolarConfig)
    with pytest.raises(ConfigError, match="use_case is 'linked_data', expected 'polar'"):
        _load(str(REPO / "configs/linked_data.yaml"), {})
