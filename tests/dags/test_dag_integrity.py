"""Every DAG file imports cleanly, is well described, and touches no network or DB when parsed."""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
HEAVY = ("torch", "lightning", "optuna", "rasterio", "geopandas", "zarr", "pyoxigraph", "mlflow")


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(f"dagfile_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dags_of(module):
    from airflow.sdk import DAG

    return [v for v in vars(module).values() if isinstance(v, DAG)]


def test_there_are_dag_files():
    assert {"polar_ice_chart_daily.py", "polar_training.py"} <= {p.name for p in DAG_FILES}


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_without_network_db_or_heavy_libraries(path, monkeypatch):
    def no_connect(*args, **kwargs):
        raise AssertionError(f"{path.name} opened a network connection at parse time")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    monkeypatch.setattr(socket, "create_connection", no_connect)
    before = {m for m in sys.modules if m.split(".")[0] in HEAVY}
    module = _import(path)
    after = {m for m in sys.modules if m.split(".")[0] in HEAVY}
    assert not (after - before), (
        f"{path.name} imports heavy modules at parse time: {after - before}"
    )
    assert _dags_of(module), f"{path.name} defines no DAG"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_has_tags_owner_retries_and_docs(path):
    for dag in _dags_of(_import(path)):
        assert dag.tags and "eeflow" in dag.tags, dag.dag_id
        assert dag.doc_md or dag.description, dag.dag_id
        for t in dag.tasks:
            assert t.owner and t.owner != "airflow", f"{dag.dag_id}.{t.task_id} has no owner"
            assert t.retries >= 1, f"{dag.dag_id}.{t.task_id} has no retries"


def test_dagbag_has_no_import_errors():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    assert {"polar_ice_chart_daily", "polar_training"} <= set(bag.dag_ids)


def test_polar_daily_schedule_and_catchup():
    dag = _dags_of(_import(DAGS / "polar_ice_chart_daily.py"))[0]
    assert dag.catchup is False
    assert [t.task_id for t in dag.topological_sort()] == [
        "wait_for_scenes",
        "ingest",
        "harmonise",
        "predict",
        "publish",
        "rdf_export",
        "load_triples",
    ]


def test_polar_training_params_form():
    dag = _dags_of(_import(DAGS / "polar_training.py"))[0]
    params = dag.params
    # empty params fall back to the config's values
    assert params["model"] is None and params["patch_size"] is None
    assert params.get_param("model").schema["type"] == ["null", "string"]
    assert set(params.get_param("model").schema["enum"]) == {
        None,
        "adhoc_cnn",
        "vgg16",
        "vgg16_transfer",
        "vgg16_modified",
    }
    assert params.get_param("patch_size").schema["enum"] == [None, 20, 32]


@pytest.mark.parametrize("path", sorted(DAGS.glob("*.py")), ids=lambda p: p.stem)
def test_trigger_form_submits_with_its_defaults(path):
    """The UI shows a param with default "" as required: every default must be valid as is."""
    for dag in _dags_of(_import(path)):
        dag.params.validate()  # what Trigger does with the form's defaults
        for name in dag.params:
            param = dag.params.get_param(name)
            assert param.value != "", f"{dag.dag_id}.{name} defaults to '' (a required field)"
            if param.value is None:
                assert "null" in param.schema["type"], f"{dag.dag_id}.{name}"
                assert "empty" in (param.description or "").lower(), (
                    f"{dag.dag_id}.{name}: the description must say what empty means "
                    "(the config's value, or that the run fails)")


def test_every_dag_is_stage_operator_wiring():
    """One idiom: every task is an EeflowStageOperator (mapped or not) or the scene sensor,
    calling a function of a ``tasks.<use case>.stages`` module."""
    from operators.sensors import SceneAvailableSensor
    from operators.stage import EeflowStageOperator, import_target

    for path in DAG_FILES:
        for dag in _dags_of(_import(path)):
            for task in dag.tasks:
                name = f"{dag.dag_id}.{task.task_id}"
                if isinstance(task, SceneAvailableSensor):
                    continue
                if isinstance(task, EeflowStageOperator):
                    target = task.target
                else:
                    assert task.operator_class is EeflowStageOperator, name
                    target = task.partial_kwargs["target"]
                module, _, function = target.partition(":")
                assert module.startswith("tasks.") and module.endswith(".stages"), name
                assert callable(import_target(target)), name
                assert function, name
