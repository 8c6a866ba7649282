"""On-demand processing params (region, time window) -> the run's config and run date."""

import datetime as dt

import pytest

from operators.context import load_run_config, run_date_from_context, window_from_params
from tasks.config import ConfigError

REGION = "POLYGON ((-20 75, 10 75, 10 82, -20 82, -20 75))"
GEOJSON = '{"type": "Polygon", "coordinates": [[[14, 47], [15, 47], [15, 48], [14, 47]]]}'


@pytest.mark.parametrize(("config", "region"), [("configs/polar.yaml", REGION),
                                                ("configs/food_security.yaml", GEOJSON)])
def test_region_param_sets_the_ingestion_area(repo_root, monkeypatch, config, region):
    monkeypatch.setenv("EEFLOW_HOME", str(repo_root))
    cfg = load_run_config({"params": {"region": region}}, config)
    assert cfg.ingest.catalogue.area == region
    assert load_run_config({"params": {"region": None}}, config).ingest.catalogue.area is None


def test_bad_region_names_the_key(repo_root, monkeypatch):
    monkeypatch.setenv("EEFLOW_HOME", str(repo_root))
    with pytest.raises(ConfigError, match=r"ingest\.catalogue.*(WKT|GeoJSON)"):
        load_run_config({"params": {"region": "POLYGON ((0 0, 1 1"}}, "configs/polar.yaml")


def test_window_sets_and_bounds_the_run_date():
    manual = {"dag_run": type("Run", (), {"run_type": "manual"})()}
    day = dt.datetime(2026, 3, 4, tzinfo=dt.UTC)
    window = {"window_start": "2026-02-01", "window_end": "2026-02-03"}
    # no run_date: the window's first day, not the data interval
    assert run_date_from_context({**manual, "params": window, "data_interval_start": day}) == (
        dt.date(2026, 2, 1))
    assert run_date_from_context({**manual, "params": {**window, "run_date": "2026-02-03"}}) == (
        dt.date(2026, 2, 3))
    with pytest.raises(ValueError, match=r"run_date=2026-02-04 lies outside the window"):
        run_date_from_context({**manual, "params": {**window, "run_date": "2026-02-04"}})
    # a scheduled run keeps its own interval
    scheduled = {"dag_run": type("Run", (), {"run_type": "scheduled"})(), "params": window,
                 "data_interval_start": day}
    assert run_date_from_context(scheduled) == dt.date(2026, 3, 4)


@pytest.mark.parametrize(("params", "message"), [
    ({"window_start": "Feb 1"}, r"window_start='Feb 1' is not a date"),
    ({"window_start": "2026-02-03", "window_end": "2026-02-01"}, r"window_end.*before"),
])
def test_window_errors_name_the_param(params, message):
    with pytest.raises(ValueError, match=message):
        window_from_params(params)
