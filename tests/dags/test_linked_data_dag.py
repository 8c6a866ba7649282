"""The linked_data DAG: manual trigger, product-set param, export -> load wiring."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "linked_data.py"


def _load():
    spec = importlib.util.spec_from_file_location("dagfile_linked_data_test", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_linked_data_dag_structure():
    before = {
        m for m in sys.modules if m.startswith(("pyoxigraph", "geopandas", "tasks.linked_data"))
    }
    dag = _load().linked_data_dag
    after = {
        m for m in sys.modules if m.startswith(("pyoxigraph", "geopandas", "tasks.linked_data"))
    }
    assert after == before, f"parsing imported {after - before}"
    assert dag.dag_id == "linked_data"
    assert dag.schedule is None or str(dag.timetable.summary) in ("None", "")
    assert {"eeflow", "linked-data"} <= set(dag.tags)
    assert set(dag.task_ids) == {"product_set", "rdf_export", "load_triples"}
    assert dag.get_task("rdf_export").downstream_task_ids == {"load_triples"}
    assert dag.get_task("load_triples").max_active_tis_per_dag == 1
    products = dag.params.get_param("products")
    assert "ice_chart" in products.value
    assert set(products.schema["items"]["enum"]) >= {"lucas_points", "model", "evaluation"}
    for task in dag.tasks:
        assert task.owner == "eeflow-linked-data" and task.retries >= 1
