"""End to end: both polar DAGs run with `airflow dags test` on a tiny generated scene."""

from __future__ import annotations

import json

import pytest
import yaml

from tasks.local_airflow import airflow_env, init_db, list_dags, run_dag_test

pytestmark = pytest.mark.integration

TINY = {
    "use_case": "polar",
    "data_root": "data",
    "seed": 7,
    "dask": {"cluster": "synchronous"},
    "ingest": {"generator": {"lines": 320, "samples": 320, "scenes_per_day": 1}},
    "harmonise": {"chunk": 160},
    "patches": {"sizes": [20], "max_per_class": 150, "min_purity": 0.8},
    "train": {"model": "adhoc_cnn", "patch_size": 20, "epochs": 1, "batch_size": 32},
    "predict": {"tile": 160},
}


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("e2e")
    (home / "configs").mkdir()
    (home / "configs" / "polar.yaml").write_text(yaml.safe_dump(TINY))
    env = airflow_env(home)
    init_db(env)
    return home, env


def test_dags_list(airflow_home):
    _, env = airflow_home
    assert {"polar_ice_chart_daily", "polar_training"} <= set(list_dags(env))


def test_training_then_daily_chart_then_rerun_is_idempotent(airflow_home):
    home, env = airflow_home
    run_dag_test("polar_training", "2026-01-14", env, conf={"run_date": "2026-01-14"})
    models = list((home / "data" / "polar" / "models").iterdir())
    assert len(models) == 1 and (models[0] / "model.json").is_file()

    run_dag_test("polar_ice_chart_daily", "2026-01-15", env, conf={"run_date": "2026-01-15"})
    published = home / "data" / "polar" / "published" / "2026-01-15"
    first = sorted(p.name for p in published.iterdir())
    assert any(n.endswith(".tif") for n in first) and any(n.endswith(".png") for n in first)
    assert any(n.endswith(".geojson") for n in first)
    latest = json.loads((published.parent / "latest.json").read_text())
    assert latest["day"] == "2026-01-15"

    run_dag_test("polar_ice_chart_daily", "2026-01-15", env, conf={"run_date": "2026-01-15"})
    assert sorted(p.name for p in published.iterdir()) == first
    leftovers = [p.name for p in published.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []
