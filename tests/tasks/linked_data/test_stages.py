"""tasks.linked_data.stages: the product plan, then export and load as StageResults."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tasks.linked_data.stages import load_triples_stage, product_set, rdf_export_stage
from tasks.stage_result import StagePlan, StageResult
from tests.tasks.linked_data.linked_data_samples import DAY


def test_product_set_plans_one_export_and_load_per_product(ld_cfg):
    plan = product_set(ld_cfg, dt.date(2026, 1, 25), ["vocabulary", "ice_chart"])
    assert isinstance(plan, StagePlan)
    assert plan.as_list() == [{"product": "vocabulary"}, {"product": "ice_chart"}]


def test_export_then_load_return_results_whose_outputs_exist(ld_cfg, products):
    exported = rdf_export_stage(ld_cfg, DAY, "ice_chart")
    assert isinstance(exported, StageResult) and "rdf" in exported.outputs
    assert all(Path(str(uri)).exists() for uri in exported.outputs.values())
    assert exported["product"] == "ice_chart" and exported["run_key"] == DAY
    loaded = load_triples_stage(ld_cfg, DAY, "ice_chart")
    assert isinstance(loaded, StageResult) and not loaded.outputs
    assert loaded["graph"] == exported["graph"] and loaded["triples"] > 0

