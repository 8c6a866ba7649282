"""tasks.food_security.stages: the planning functions, their errors, and the stages' results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tasks.config.food_security import CROP_MODEL_NAMES, FoodSecurityConfig
from tasks.food_security import stages
from tasks.food_security.stages import (
    ModelChoice,
    model_choice,
    models_to_train,
    tiles_to_map,
)
from tasks.stage_result import StagePlan, StageResult
from tests.tasks.food_security.s2_pipeline_data import RUN_DATE, YEAR_KEY, small_config


def _cfg(tmp_path: Path, models: list[str] | None = None) -> FoodSecurityConfig:
    cfg = small_config(tmp_path)
    if models is not None:
        cfg.evaluate.models = models
    return cfg


def test_model_param_all_means_the_configs_evaluate_models(tmp_path):
    cfg = _cfg(tmp_path, ["tempcnn", "lstm"])
    for value in ("all", None, ""):
        assert model_choice(cfg, value) == ModelChoice(models=("tempcnn", "lstm"), single=None)
    assert model_choice(cfg, "starrnn") == ModelChoice(models=("starrnn",), single="starrnn")
    assert stages.MODEL_PARAM_VALUES == ("all", *CROP_MODEL_NAMES)


def test_an_unknown_model_names_the_param_the_value_and_the_allowed_names(tmp_path):
    with pytest.raises(ValueError) as caught:
        model_choice(_cfg(tmp_path), "transformer")
    assert str(caught.value) == ("param model='transformer' is not a crop model; allowed: "
                                 f"{['all', *CROP_MODEL_NAMES]}")


def test_models_to_train_plans_one_task_per_model(tmp_path):
    cfg = _cfg(tmp_path, ["tempcnn", "lstm"])
    assert models_to_train(cfg, RUN_DATE, "all").as_list() == [{"model": "tempcnn"},
                                                                {"model": "lstm"}]
    assert models_to_train(cfg, RUN_DATE, "lstm").as_list() == [{"model": "lstm"}]


def test_tiles_to_map_plans_one_task_per_tile_with_the_chosen_model(tmp_path):
    cfg = _cfg(tmp_path)
    plan = tiles_to_map(cfg, RUN_DATE, None, "all")
    assert isinstance(plan, StagePlan)
    assert plan.as_list() == [{"tile": t, "model": None} for t in cfg.tile_ids()]
    assert tiles_to_map(cfg, RUN_DATE, ["33UVP"], "tempcnn").as_list() == [
        {"tile": "33UVP", "model": "tempcnn"}]


@pytest.mark.parametrize(("tiles", "message"), [
    (["33UVP", "33UVP"], "param tiles names a tile twice: ['33UVP', '33UVP']"),
    (["99ZZZ"], "param tiles names ['99ZZZ'], not configured: ['33UWP', '33UXP', '33UVP']"),
])
def test_tiles_to_map_refuses_unknown_or_repeated_tiles(tmp_path, tiles, message):
    with pytest.raises(ValueError) as caught:
        tiles_to_map(_cfg(tmp_path), RUN_DATE, tiles, "all")
    assert str(caught.value) == message


def test_data_stages_return_results_whose_outputs_exist(tmp_path):
    """ingest (generator) -> harmonise -> labels -> samples on three 64 x 64 tiles."""
    cfg = _cfg(tmp_path)
    for stage in (stages.ingest_stage, stages.harmonise_stage, stages.labels_stage,
                  stages.samples_stage):
        result = stage(cfg, RUN_DATE)
        assert isinstance(result, StageResult), stage.__name__
        assert result.outputs and all(Path(str(uri)).exists()
                                      for uri in result.outputs.values()), stage.__name__
        assert result["agronomic_year"] == YEAR_KEY


def test_model_stages_pass_the_choice_and_split_their_results(tmp_path, monkeypatch):
    """train / predict / evaluate hand the parsed choice to the science (faked here)."""
    import tasks.food_security.evaluate
    import tasks.food_security.predict
    import tasks.food_security.train

    calls: dict[str, Any] = {}
    folder = tmp_path / "out"
    folder.mkdir()

    def train(cfg, run_date, model=None):
        calls["train"] = model
        return {"model": model, "model_dir": str(folder), "monitor": "val_median_f1",
                "monitor_value": 0.5, "epochs": 3, "checkpoint": str(folder / "x.ckpt")}

    def predict(cfg, run_date, tile=None, model=None):
        calls["predict"] = (tile, model)
        return {"tile": tile, "model": model or "lstm", "folder": str(folder),
                "crop_map": str(folder), "fields": str(folder), "agronomic_year": YEAR_KEY}

    def evaluate(cfg, run_date, models=None):
        calls["evaluate"] = models
        return {"agronomic_year": YEAR_KEY, "folder": str(folder), "comparison": str(folder),
                "metrics": str(folder), "scores": {}}

    monkeypatch.setattr(tasks.food_security.train, "train_crop_model", train)
    monkeypatch.setattr(tasks.food_security.predict, "run_predict", predict)
    monkeypatch.setattr(tasks.food_security.evaluate, "run_evaluate", evaluate)
    cfg = _cfg(tmp_path, ["lstm", "starrnn"])

    trained = stages.train_stage(cfg, RUN_DATE, model="lstm")
    assert calls["train"] == "lstm" and dict(trained.outputs) == {"model_dir": str(folder)}
    assert set(trained.summary) == {"model", "monitor", "monitor_value", "epochs"}
    mapped = stages.predict_stage(cfg, RUN_DATE, tile="33UVP", model=None)
    assert calls["predict"] == ("33UVP", None)
    assert set(mapped.outputs) == {"folder", "crop_map", "fields"}
    assert dict(mapped.summary) == {"tile": "33UVP", "model": "lstm"}
    stages.evaluate_stage(cfg, RUN_DATE, "all")
    assert calls["evaluate"] == ["lstm", "starrnn"]
    evaluated = stages.evaluate_stage(cfg, RUN_DATE, "tempcnn")
    assert calls["evaluate"] == ["tempcnn"]
    assert all(Path(str(uri)).exists() for uri in evaluated.outputs.values())


def test_lucas_stage_without_points_is_skipped(tmp_path):
    result = stages.lucas_stage(_cfg(tmp_path), RUN_DATE)
    assert isinstance(result, StageResult) and not result.outputs
    assert result.as_dict() == {"skipped": "lucas.points_path is not configured",
                                "agronomic_year": YEAR_KEY}
