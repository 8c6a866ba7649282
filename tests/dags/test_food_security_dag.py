"""The agronomic-year DAG: wiring, schedule, backfill ranges, and its tasks run per year.

The default suite drives the DAG's task callables in-process for two agronomic years (no
Airflow database); tests/e2e/test_scheduler.py runs a real backfill under the scheduler.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException

from tests.dags.stage_tasks import run_task

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "dags" / "food_security_agronomic_year.py"
DAG_ID = "food_security_agronomic_year"


def _dag_module():
    spec = importlib.util.spec_from_file_location("dagfile_food_security", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dag_wiring_params_and_defaults():
    dag = _dag_module().agronomic_year_dag
    assert dag.dag_id == DAG_ID and dag.catchup is False
    assert "eeflow" in dag.tags and "food_security" in dag.tags
    order = [t.task_id for t in dag.topological_sort()]
    for before, after in [("ingest", "harmonise"), ("harmonise", "labels"), ("labels", "samples"),
                          ("samples", "train"), ("train", "predict"), ("predict", "evaluate")]:
        assert order.index(before) < order.index(after)
    assert dag.get_task("train").upstream_task_ids >= {"samples", "models_to_train"}
    params = dag.params
    assert params["config"] == "configs/food_security.yaml" and params["model"] == "all"
    assert params["tiles"] is None and params["run_date"] is None
    assert set(params.get_param("model").schema["enum"]) == {"all", "lstm", "tempcnn", "starrnn"}
    for task in dag.tasks:
        assert task.owner == "eeflow-food-security" and task.retries >= 1


def test_backfill_range_gives_one_run_per_agronomic_year():
    """The timetable turns 2016-09-01..2018-08-31 into two runs, each one whole year."""
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    from operators.context import run_date_from_context
    from tasks.storage import agronomic_year_key

    timetable = coerce_to_core_timetable(_dag_module().agronomic_year_dag.timetable)
    utc = dt.UTC
    restriction = TimeRestriction(earliest=dt.datetime(2016, 9, 1, tzinfo=utc),
                                  latest=dt.datetime(2018, 8, 31, tzinfo=utc), catchup=True)
    runs, last = [], None
    while (info := timetable.next_dagrun_info(last_automated_data_interval=last,
                                              restriction=restriction)) is not None:
        runs.append(info)
        last = info.data_interval
    intervals = [(r.data_interval.start.date(), r.data_interval.end.date()) for r in runs]
    assert intervals == [(dt.date(2016, 9, 1), dt.date(2017, 9, 1)),
                         (dt.date(2017, 9, 1), dt.date(2018, 9, 1))]
    keys = [agronomic_year_key(run_date_from_context(
        {"params": {"run_date": ""}, "data_interval_start": r.data_interval.start})) for r in runs]
    assert keys == ["2016-09_2017-08", "2017-09_2018-08"]


def test_dag_file_imports_no_heavy_module():
    code = (f"import importlib.util, sys; s = importlib.util.spec_from_file_location('d', "
            f"{str(DAG_FILE)!r}); m = importlib.util.module_from_spec(s); s.loader.exec_module(m); "
            "heavy = [k for k in sys.modules if k.split('.')[0] in ('torch', 'lightning', "
            "'zarr', 'rasterio', 'geopandas', 'dask', 'xarray')]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def _tiny_training_config(home: Path) -> Path:
    config = {
        "use_case": "food_security",
        "data_root": "data",
        "seed": 5,
        "dask": {"cluster": "synchronous"},
        "train": {"layers": 1, "cells": 8, "epochs_phase1": 1, "epochs_phase2": 1,
                  "batch_size": 64, "accelerator": "cpu"},
        "predict": {"tile": "33UVP", "block_rows": 16},
    }
    path = home / "configs" / "food_security.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(config))
    return path


def test_tasks_run_per_year_on_their_own_data_and_rerun_identically(eeflow_home: Path):
    """Train -> predict -> evaluate tasks of two backfilled years (stores made by fixtures)."""
    from tests.tasks.food_security.conftest_ml import write_sample_year, write_tile_year

    module = _dag_module()
    _tiny_training_config(eeflow_home)
    root = eeflow_home / "data"
    years = {"2016-09_2017-08": dt.datetime(2016, 9, 1, tzinfo=dt.UTC),
             "2017-09_2018-08": dt.datetime(2017, 9, 1, tzinfo=dt.UTC)}
    for seed, start in enumerate(years.values()):
        write_sample_year(root, start.date().isoformat(), n_train=200, n_val=60, n_test=20,
                          seed=seed)
        write_tile_year(root, start.date().isoformat(), size=24, seed=seed)

    def run_year(start: dt.datetime) -> dict:
        context = {"params": {"config": "configs/food_security.yaml", "run_date": "",
                              "tiles": ["33UVP"], "model": "lstm"},
                   "data_interval_start": start, "logical_date": start}
        dag = module.agronomic_year_dag
        models = run_task(dag, "models_to_train", context)
        assert models == [{"model": "lstm"}]
        trained = run_task(dag, "train", context, **models[0])
        tiles = run_task(dag, "tiles_to_map", context)
        assert tiles == [{"tile": "33UVP", "model": "lstm"}]
        mapped = [run_task(dag, "predict", context, **kwargs) for kwargs in tiles]
        evaluated = run_task(dag, "evaluate", context)
        summary = {"train": trained, "predict": mapped, "evaluate": evaluated}
        json.dumps(summary)  # XCom-sized, JSON-serialisable
        return summary

    first = {key: run_year(start) for key, start in years.items()}
    for key, summary in first.items():
        assert f"/models/{key}/lstm" in summary["train"]["model_dir"]
        assert f"/predict/{key}/33UVP" in summary["predict"][0]["folder"]
        manifest = json.loads((root / f"food_security/predict/{key}/33UVP/manifest.json")
                              .read_text())
        assert f"/harmonise/{key}/" in manifest["inputs"]["composites"]
        model_json = json.loads((root / f"food_security/models/{key}/lstm/model.json").read_text())
        assert model_json["samples_dir"].endswith(f"/samples/{key}")
    metrics = {key: (root / f"food_security/evaluate/{key}/metrics.json").read_text()
               for key in years}
    again = run_year(years["2017-09_2018-08"])
    assert again["train"]["monitor_value"] == first["2017-09_2018-08"]["train"]["monitor_value"]
    assert (root / "food_security/evaluate/2017-09_2018-08/metrics.json").read_text() == \
        metrics["2017-09_2018-08"]
    for stage in ("models", "predict", "evaluate"):
        assert sorted(p.name for p in (root / "food_security" / stage).iterdir()) == sorted(years)


def test_tiles_param_naming_an_unknown_or_repeated_tile_fails(eeflow_home: Path):
    module = _dag_module()
    _tiny_training_config(eeflow_home)
    start = dt.datetime(2017, 9, 1, tzinfo=dt.UTC)
    for tiles, message in ((["33UVP", "33UVP"], "twice"), (["99ZZZ"], "not configured")):
        context = {"params": {"config": "configs/food_security.yaml", "run_date": "",
                              "tiles": tiles, "model": "all"}, "data_interval_start": start}
        with pytest.raises(AirflowFailException, match=message):
            run_task(module.agronomic_year_dag, "tiles_to_map", context)
