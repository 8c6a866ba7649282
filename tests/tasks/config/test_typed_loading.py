"""load_config(..., expect=Model): the typed return, and a config of another use case refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tasks.config.common import ConfigError, UseCaseConfig, eeflow_home, load_config
from tasks.config.food_security import FoodSecurityConfig
from tasks.config.linked_data import LinkedDataConfig
from tasks.config.polar import PolarConfig
from tasks.config.serving import ServingConfig

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("name", "model"),
    [("polar", PolarConfig), ("food_security", FoodSecurityConfig),
     ("linked_data", LinkedDataConfig), ("serving", ServingConfig)],
)
def test_expect_returns_the_model_of_the_shipped_config(name, model):
    cfg = load_config(REPO / "configs" / f"{name}.yaml", expect=model)
    assert type(cfg) is model


def test_without_expect_any_use_case_loads():
    cfg = load_config(REPO / "configs" / "linked_data.yaml")
    assert isinstance(cfg, UseCaseConfig) and cfg.use_case == "linked_data"


def test_config_of_another_use_case_names_file_its_use_case_and_the_expected_one():
    path = REPO / "configs" / "linked_data.yaml"
    with pytest.raises(ConfigError) as err:
        load_config(path, expect=PolarConfig)
    assert str(err.value) == (
        f"{path}: use_case is 'linked_data', expected 'polar'; give a polar config "
        "(e.g. configs/polar.yaml)"
    )


def test_expect_a_pair_accepts_either_and_names_both():
    polar = load_config(REPO / "configs" / "polar.yaml", expect=(PolarConfig, FoodSecurityConfig))
    assert isinstance(polar, PolarConfig)
    with pytest.raises(ConfigError, match=r"use_case is 'serving', expected 'polar' or "
                       r"'food_security'; give a polar or food_security config"):
        load_config(REPO / "configs" / "serving.yaml", expect=(PolarConfig, FoodSecurityConfig))


def test_keys_of_the_file_are_checked_before_its_use_case(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"use_case": "linked_data", "store": {"replace": "drop_all"}}))
    with pytest.raises(ConfigError, match="key 'store.replace'"):
        load_config(path, expect=PolarConfig)


def test_one_eeflow_home_for_the_cli_and_airflow(monkeypatch, tmp_path):
    from operators import context

    assert context.eeflow_home is eeflow_home
    monkeypatch.delenv("EEFLOW_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert eeflow_home() == tmp_path
    assert context.config_path({}, "configs/polar.yaml") == tmp_path / "configs" / "polar.yaml"
    monkeypatch.setenv("EEFLOW_HOME", str(REPO))
    assert eeflow_home() == REPO
    assert context.config_path({}, "configs/polar.yaml") == REPO / "configs" / "polar.yaml"


def test_load_run_config_takes_expect(monkeypatch):
    from operators.context import load_run_config

    monkeypatch.setenv("EEFLOW_HOME", str(REPO))
    cfg = load_run_config({"params": {}}, "configs/polar.yaml", expect=PolarConfig)
    assert isinstance(cfg, PolarConfig)
    with pytest.raises(ConfigError, match="expected 'food_security'"):
        load_run_config({"params": {}}, "configs/polar.yaml", expect=FoodSecurityConfig)
