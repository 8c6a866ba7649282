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


class _Run:
    def __init__(self, run_type: str, run_after: dt.datetime | None = None) -> None:
        self.run_type = run_type
        self.run_after = run_after


@pytest.mark.parametrize("kind", ["scheduled", "backfill", "asset_triggered"])
def test_run_date_param_never_overrides_a_scheduled_or_backfill_interval(kind):
    start = dt.datetime(2016, 9, 1, tzinfo=dt.UTC)
    context = {"params": {"run_date": "2017-09-01"}, "data_interval_start": start,
               "dag_run": _Run(kind)}
    assert run_date_from_context(context) == dt.date(2016, 9, 1)


def test_run_date_param_applies_to_manual_runs_and_run_after_is_the_fallback():
    after = dt.datetime(2026, 11, 29, 19, 0, tzinfo=dt.UTC)
    manual = _Run("manual", run_after=after)
    assert run_date_from_context({"params": {"run_date": "2026-01-15"}, "dag_run": manual}) == (
        dt.date(2026, 1, 15))
    # a manual run without logical date (Airflow 3's default trigger): the day it was run after
    assert run_date_from_context({"params": {"run_date": None}, "logical_date": None,
                                  "dag_run": manual}) == dt.date(2026, 11, 29)
