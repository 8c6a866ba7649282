import datetime as dt

import pytest

from operators.context import load_run_config, overrides_from_params, run_date_from_context
from operators.stage import check_small, import_target
from tasks.config import ConfigError


def test_run_date_order():
    d = dt.datetime(2026, 3, 4, tzinfo=dt.UTC)
    assert run_date_from_context(
        {"params": {"run_date": "2026-01-02"}, "data_interval_start": d}
    ) == dt.date(2026, 1, 2)
    assert run_date_from_context({"params": {"run_date": ""}, "data_interval_start": d}) == dt.date(
        2026, 3, 4
    )
    assert run_date_from_context({"logical_date": None, "run_after": d}) == dt.date(2026, 3, 4)
    with pytest.raises(ValueError, match="no run_date"):
        run_date_from_context({})


def test_params_override_config(repo_root, monkeypatch):
    monkeypatch.setenv("EEFLOW_HOME", str(repo_root))
    mapping = {"epochs": "train.epochs", "model": "train.model"}
    assert overrides_from_params({"epochs": 3, "model": ""}, mapping) == {"train.epochs": 3}
    cfg = load_run_config({"params": {"epochs": 3}}, "configs/polar.yaml", mapping)
    assert cfg.train.epochs == 3
    with pytest.raises(ConfigError, match="train.model"):
        load_run_config({"params": {"model": "resnet"}}, "configs/polar.yaml", mapping)


def test_import_target_and_small_results():
    assert import_target("tasks.storage:day_run_key")("2026-01-02") == "2026-01-02"
    with pytest.raises(ValueError, match="tasks.module:function"):
        import_target("tasks.storage.day_run_key")
    assert check_small({"a": 1}, "x") == {"a": 1}
    with pytest.raises(ValueError, match="small"):
        check_small({"data": list(range(100_000))}, "x")
