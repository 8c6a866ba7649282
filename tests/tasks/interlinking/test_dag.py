"""The interlinking DAG's tasks run the stage and the load on generated files (no scheduler)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from tests.dags.stage_tasks import run_task

REPO = Path(__file__).resolve().parents[3]


def _dag():
    spec = importlib.util.spec_from_file_location("dagfile_interlinking_test",
                                                  REPO / "dags" / "interlinking.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.interlinking_dag


def test_interlink_then_load_tasks(eeflow_home: Path, generated):
    (eeflow_home / "configs").mkdir()
    shutil.copy(REPO / "configs" / "linked_data.yaml", eeflow_home / "configs")
    data = eeflow_home / "work" / "data"
    generated.write(data / "inputs")
    dag = _dag()
    assert [t.task_id for t in dag.topological_sort()] == ["interlink", "load_relations"]
    params = {"config": "configs/linked_data.yaml", "source": "inputs/parcels.parquet",
              "target": "inputs/fields.parquet", "target_crs": None, "budget": None,
              "selector": "chi2_mbro", "workers": None, "run_date": "2026-02-01"}
    context = {"params": params, "logical_date": dt.datetime(2026, 2, 1, tzinfo=dt.UTC)}
    linked = run_task(dag, "interlink", context)
    json.dumps(linked)  # XCom-sized
    assert linked["out_dir"].endswith("linked_data/interlinking/2026-02-01/parcels__fields")
    assert dag.get_task("load_relations").stage_kwargs == {
        "out_dir": "{{ ti.xcom_pull(task_ids='interlink')['out_dir'] }}"}
    loaded = run_task(dag, "load_relations", context, out_dir=linked["out_dir"])
    assert loaded["graph"] == linked["graph"] and loaded["triples"] == linked["triples"] > 0
    with pytest.raises(AirflowFailException, match=r"\['target'\] are empty"):
        run_task(dag, "interlink", {"params": {**params, "target": None},
                                    "logical_date": context["logical_date"]})
