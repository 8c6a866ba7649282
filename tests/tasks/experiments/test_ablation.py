import csv
from pathlib import Path

import pytest

from tasks.config.common import ConfigError
from tasks.experiments.ablation import (
    AblationError,
    ablation_runs,
    prepare_ablation,
    run_ablation_worker,
    write_ablation_report,
)
from tasks.experiments.search import load_study
from tests.tasks.experiments.experiments_toy import fast_adapter, toy_adapter, toy_config


def _cfg(tmp_path, components, seeds=(1, 2)):
    cfg = toy_config(tmp_path)
    return cfg.model_validate({**cfg.model_dump(), "ablation": {
        "seeds": list(seeds), "components": components}})


def test_loco_runs_full_and_each_component_with_same_seeds(tmp_path):
    cfg = _cfg(tmp_path, {
        "second_feature_block": {"description": "features 5-8",
                                 "overrides": {"train.use_second_feature_block": False}},
        "hidden_layer": {"overrides": {"train.model": "linear"}},
    })
    cfg.train.epochs = 3
    result = run_ablation_worker(cfg, toy_adapter(cfg))
    assert result["counts"]["complete"] == 6
    study = load_study(cfg, "toy-ablation")
    runs = sorted((t.params["component"], t.params["seed"]) for t in study.trials)
    assert runs == sorted((c, s) for c in ("full", "second_feature_block", "hidden_layer")
                          for s in (1, 2))
    report = write_ablation_report(cfg)
    rows = list(csv.DictReader(Path(report["table"]).open()))
    assert [r["component"] for r in rows] == ["full", "second_feature_block", "hidden_layer"]
    by_name = {r["component"]: r for r in rows}
    assert float(by_name["full"]["delta"]) == 0.0
    assert float(by_name["second_feature_block"]["delta"]) < 0  # half the signal removed
    assert Path(report["plot"]).stat().st_size > 5000
    assert "| second_feature_block | features 5-8 | 2 |" in Path(report["markdown"]).read_text()
    assert run_ablation_worker(cfg, toy_adapter(cfg))["trials_run"] == []  # idempotent


def test_empty_or_misspelt_components_are_clear_errors(tmp_path):
    cfg = _cfg(tmp_path, {})
    with pytest.raises(AblationError, match="ablation.components is empty"):
        ablation_runs(cfg)
    cfg = _cfg(tmp_path, {"aug": {"overrides": {"train.augmnt": False}}})
    with pytest.raises(ConfigError, match=r"ablation.components.aug.overrides.*train.augmnt"):
        prepare_ablation(cfg, fast_adapter(cfg))
    with pytest.raises(ValueError, match="'full' is reserved"):
        _cfg(tmp_path, {"full": {"overrides": {"seed": 1}}})
