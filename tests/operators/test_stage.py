"""EeflowStageOperator: target import, the typed result it pushes, XCom size, error boundary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from operators.stage import MAX_XCOM_BYTES, EeflowStageOperator, import_target
from tasks.stage_result import StagePlan, StageResult, as_json

REPO = Path(__file__).resolve().parents[2]
HERE = "tests.operators.test_stage"
CONFIG = "configs/linked_data.yaml"
DAY = "2026-01-15"


# --------------------------------------------------------------------- targets the tests call


def typed_stage(cfg, run_date, product="vocabulary", flag=None):
    return StageResult(outputs={"rdf": f"/data/{product}.ttl"},
                       summary={"product": product, "day": run_date.isoformat(),
                                "use_case": cfg.use_case, "flag": flag})


def planning_stage(cfg, run_date, products=()):
    return StagePlan(tuple({"product": p} for p in products))


def untyped_stage(cfg, run_date):
    return {"rdf": "/data/vocabulary.ttl"}


def huge_stage(cfg, run_date):
    return StageResult(summary={"rows": list(range(MAX_XCOM_BYTES))})


def unavailable_stage(cfg, run_date):
    from tasks.linked_data.store import StoreUnavailableError

    raise StoreUnavailableError("http://oxigraph:7878/store did not answer after 4 tries")


def broken_stage(cfg, run_date):
    raise ValueError("parcel map has no crop column")


# --------------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _home(monkeypatch):
    monkeypatch.setenv("EEFLOW_HOME", str(REPO))


def _run(function: str, params: dict | None = None, **kwargs):
    op = EeflowStageOperator(task_id="stage", target=f"{HERE}:{function}",
                             default_config=CONFIG, **kwargs)
    return op.execute({"params": {"run_date": DAY, **(params or {})}})


# ------------------------------------------------------------------------------ operator


def test_import_target_needs_module_and_function():
    assert import_target(f"{HERE}:typed_stage") is typed_stage
    with pytest.raises(ValueError, match="must look like 'tasks.module:function'"):
        import_target("tasks.polar.stages")


def test_stage_result_is_pushed_as_its_flat_json_dict():
    pushed = _run("typed_stage", stage_kwargs={"product": "ice_chart"})
    assert pushed == {"rdf": "/data/ice_chart.ttl", "product": "ice_chart", "day": DAY,
                      "use_case": "linked_data", "flag": None}
    json.dumps(pushed)  # plain JSON, as XCom stores it


def test_params_become_kwargs_and_stage_kwargs_win():
    pushed = _run("typed_stage", params={"products": ["x"], "flag": "on"},
                  param_to_kwarg={"flag": "flag"})
    assert pushed["flag"] == "on" and pushed["product"] == "vocabulary"
    pushed = _run("typed_stage", params={"flag": "on"}, param_to_kwarg={"flag": "product"},
                  stage_kwargs={"product": "model"})
    assert pushed["product"] == "model"


def test_a_plan_is_pushed_as_the_list_of_mapped_kwargs():
    pushed = _run("planning_stage", params={"products": ["a", "b"]},
                  param_to_kwarg={"products": "products"})
    assert pushed == [{"product": "a"}, {"product": "b"}]


def test_untyped_returns_are_refused_at_once():
    with pytest.raises(AirflowFailException, match="returned a dict; stage functions return a "
                       "tasks.stage_result.StageResult"):
        _run("untyped_stage")


def test_results_over_the_xcom_limit_are_refused():
    with pytest.raises(AirflowFailException, match=f"< {MAX_XCOM_BYTES} bytes"):
        _run("huge_stage")


def test_error_boundary_retries_an_unavailable_store_and_fails_bad_data_at_once():
    with pytest.raises(AirflowException) as caught:
        _run("unavailable_stage")
    assert not isinstance(caught.value, AirflowFailException)
    assert "store or service unavailable" in str(caught.value)
    with pytest.raises(AirflowFailException) as caught:
        _run("broken_stage")
    message = str(caught.value)
    assert f"stage ({HERE}:broken_stage)" in message and "parcel map has no crop column" in message
    assert CONFIG in message and DAY in message
    assert caught.value.__cause__ is None


def test_default_config_is_templated():
    assert "default_config" in EeflowStageOperator.template_fields
    assert "stage_kwargs" in EeflowStageOperator.template_fields


# --------------------------------------------------------------------------- StageResult


def test_stage_result_serialises_outputs_and_summary_flat():
    result = StageResult(outputs={"folder": Path("/data/x"), "charts": (Path("/a.tif"),)},
                         summary={"counts": {"n": 2}, "day": Path("2026-01-15")})
    assert result.as_dict() == {"counts": {"n": 2}, "day": "2026-01-15", "folder": "/data/x",
                                "charts": ["/a.tif"]}
    assert result["folder"] == "/data/x" and result.get("missing") is None
    assert dict(result) == result.as_dict() and result == result.as_dict()
    assert json.loads(json.dumps({"stage": result}, default=as_json)) == {
        "stage": result.as_dict()}
    with pytest.raises(AttributeError):
        result.outputs = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        result.summary["day"] = "x"  # type: ignore[index]


def test_stage_result_from_dict_and_its_refusals():
    result = StageResult.from_dict({"output": "/o", "report": None, "n": 1},
                                   outputs=("output", "report"))
    assert dict(result.outputs) == {"output": "/o"}
    assert dict(result.summary) == {"report": None, "n": 1}
    with pytest.raises(ValueError, match=r"\['n'\] are both outputs and summary keys"):
        StageResult(outputs={"n": "/x"}, summary={"n": 1})
    with pytest.raises(TypeError, match="not a mapping"):
        StageResult(outputs={"datasets": {"train": "/t.zarr"}})


def test_stage_plan_is_a_json_list():
    plan = StagePlan(({"tile": "33UVP", "model": None}, {"tile": "33UUP", "model": None}))
    assert plan.as_list() == [{"tile": "33UVP", "model": None}, {"tile": "33UUP", "model": None}]
    assert as_json(plan) == plan.as_list() and as_json(Path("/x")) == "/x"
