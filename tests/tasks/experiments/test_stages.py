"""tasks.experiments.stages: prepare -> worker -> report as StageResults; the DAG stages' checks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tasks.experiments import stages
from tasks.stage_result import StagePlan, StageResult
from tests.tasks.experiments.experiments_toy import fast_adapter, toy_config

DAY = dt.date(2026, 1, 14)


def test_prepare_worker_report_return_stage_results(tmp_path):
    cfg = toy_config(tmp_path, n_trials=3, sampler="random")
    cfg.train.sleep_per_epoch_s = 0.0
    plan = stages.prepare_experiment(cfg, DAY, workers=2, adapter=fast_adapter(cfg))
    assert isinstance(plan, StageResult)
    assert plan["workers"] == [0, 1] and plan["mode"] == "search" and plan["use_case"] == "toy"
    worked = stages.run_experiment_worker(cfg, DAY, adapter=fast_adapter(cfg))
    assert isinstance(worked, StageResult) and worked["trials_run"]
    report = stages.report_experiment(cfg)
    assert isinstance(report, StageResult) and set(report.outputs) == {"report_dir"}
    assert Path(str(report.outputs["report_dir"])).is_dir()
    assert report["counts"]["complete"] == 3


def test_worker_indices_plan_one_mapped_worker_each(tmp_path):
    cfg = toy_config(tmp_path)
    plan = stages.worker_indices(cfg, DAY, use_case="toy", mode="ablation", workers=3,
                                 dataset="")
    assert isinstance(plan, StagePlan)
    assert plan.as_list() == [{"use_case": "toy", "mode": "ablation", "worker_index": i,
                               "dataset": None} for i in range(3)]


@pytest.mark.parametrize("stage", [stages.prepare_stage, stages.worker_indices,
                                   stages.run_trials_stage, stages.report_stage,
                                   stages.register_stage])
def test_dag_stages_refuse_a_config_of_another_use_case(tmp_path, stage):
    with pytest.raises(ValueError) as caught:
        stage(toy_config(tmp_path), DAY, use_case="polar")
    assert str(caught.value) == ("the config is for 'toy', the run asks param use_case='polar'; "
                                 "give a polar config or leave it empty")


def test_ablations_are_not_registered(tmp_path):
    result = stages.register_stage(toy_config(tmp_path), DAY, use_case="toy", mode="ablation")
    assert result.as_dict() == {"registered": False,
                                "reason": "ablation runs are not registered"}


def test_an_unknown_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"experiment mode 'grid'; allowed: \['search', "
                       r"'ablation'\]"):
        stages.report_experiment(toy_config(tmp_path), mode="grid")
