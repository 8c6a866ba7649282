"""The experiments adapters call both training functions through the one training contract."""

from pathlib import Path
from typing import Any

import pytest

from tasks.experiments.trainers import (
    MetricNotLoggedError,
    crop_adapter,
    metric_from_result,
    polar_adapter,
    result_metrics,
)
from tests.tasks.food_security.conftest_ml import tiny_config
from tests.tasks.polar.polar_synthetic_scene import tiny_polar_config


def _result(use_case: str, **metrics: float) -> dict[str, Any]:
    return {"use_case": use_case, "model": "m", "model_dir": "/m", "model_json": "/m/model.json",
            "checkpoint": None, "monitor": "val_loss", "monitor_value": 0.25,
            "metrics": metrics, "epochs": {"train": 1}, "n_samples": {"train": 8, "val": 2},
            "dataset": "/d", "seconds": 1.0, "extra": {}}


def test_result_metrics_read_the_metrics_and_the_monitored_value() -> None:
    assert result_metrics(_result("polar", val_acc=0.9)) == {"val_acc": 0.9, "val_loss": 0.25}
    assert result_metrics(_result("food_security", val_loss=0.5)) == {"val_loss": 0.5}
    assert result_metrics({"metrics": {"val_acc": 1}}) == {"val_acc": 1.0}
    with pytest.raises(MetricNotLoggedError, match=r"'val_f1'.*\['val_acc', 'val_loss'\]"):
        metric_from_result(_result("polar", val_acc=0.9), "val_f1")


def test_adapters_pass_output_dir_and_callbacks(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import tasks.food_security.train as crop_train
    import tasks.polar.train as polar_train

    calls: list[tuple[str, dict[str, Any]]] = []

    def fake_polar(cfg: Any, dataset_path: Path, **kwargs: Any) -> dict[str, Any]:
        calls.append(("polar", kwargs))
        return _result("polar", val_acc=0.5)

    def fake_crops(cfg: Any, run_date: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(("food_security", kwargs))
        return _result("food_security", val_loss=0.5)

    monkeypatch.setattr(polar_train, "train_model", fake_polar)
    monkeypatch.setattr(crop_train, "train_crop_model", fake_crops)
    patches = tmp_path / "patches_32.zarr"
    patches.mkdir()
    polar_cfg = tiny_polar_config(tmp_path)
    polar = polar_adapter(polar_cfg, patches).train(polar_cfg, ["cb"], tmp_path / "00000")
    crop_cfg = tiny_config(tmp_path)
    crops = crop_adapter(crop_cfg, "2017-09-01").train(crop_cfg, ["cb"], tmp_path / "00001")
    assert calls == [("polar", {"output_dir": tmp_path / "00000", "callbacks": ["cb"]}),
                     ("food_security", {"output_dir": tmp_path / "00001", "callbacks": ["cb"]})]
    # the polar patch set is fixed: its trials record no sample counts (reports unchanged)
    assert "n_samples" not in polar and crops["n_samples"] == {"train": 8, "val": 2}
