"""tasks.polar.stages: each stage returns a StageResult whose outputs exist; clear input errors.

One tiny generated day (one 320 x 320 scene, the e2e tests' settings) runs through the training
and the daily chain.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.config.polar import PolarConfig
from tasks.polar import stages
from tasks.stage_result import StageResult

DAY = "2026-01-14"


def _tiny(root: Path) -> PolarConfig:
    from tasks.config.common import validate_config

    return validate_config({
        "use_case": "polar",
        "data_root": str(root),
        "seed": 7,
        "dask": {"cluster": "synchronous"},
        "ingest": {"source": "generator",
                   "generator": {"lines": 320, "samples": 320, "scenes_per_day": 1}},
        "harmonise": {"chunk": 160},
        "patches": {"sizes": [20], "max_per_class": 150, "min_purity": 0.8},
        "train": {"model": "adhoc_cnn", "patch_size": 20, "epochs": 1, "batch_size": 32,
                  "accelerator": "cpu"},
        "predict": {"tile": 160},
    })


def _outputs_exist(result: StageResult) -> bool:
    uris = [u for v in result.outputs.values() for u in (v if isinstance(v, list) else [v])]
    return bool(uris) and all(Path(u).exists() for u in uris)


def test_stages_run_a_day_and_return_results_whose_outputs_exist(tmp_path):
    cfg = _tiny(tmp_path / "data")
    for stage in (stages.ingest_stage, stages.harmonise_stage, stages.labels_stage,
                  stages.patches_stage, stages.train_stage):
        result = stage(cfg, DAY)
        assert isinstance(result, StageResult), stage.__name__
        assert _outputs_exist(result), (stage.__name__, result.as_dict())
    evaluated = stages.evaluate_stage(cfg, DAY, model_dir=result["model_dir"])
    assert _outputs_exist(evaluated) and "evaluation_dir" in evaluated.outputs
    cfg.predict.model = result["model_dir"]
    predicted = stages.predict_stage(cfg, DAY)
    assert _outputs_exist(predicted)
    published = stages.publish_stage(cfg, DAY)
    assert _outputs_exist(published) and published["latest_day"] == DAY
    assert all(c.endswith(".tif") for c in published["charts"])


def test_stages_name_the_missing_input(tmp_path):
    cfg = _tiny(tmp_path / "data")
    with pytest.raises(FileNotFoundError, match="no harmonise output for 2026-01-14 .* run the "
                       "harmonise stage for that day first"):
        stages.patches_stage(cfg, DAY)
    with pytest.raises(FileNotFoundError, match="run the patches stage with "
                       "patches.dataset_version="):
        stages.train_stage(cfg, DAY)
