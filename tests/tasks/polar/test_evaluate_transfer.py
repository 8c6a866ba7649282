"""Transfer evaluation: train on days A, score days B / another generated region (issue 18)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from typer.testing import CliRunner

from tasks.config.polar import PolarConfig
from tasks.polar import generalisation, schema
from tasks.polar.cli import app
from tasks.polar.generalisation import evaluate_transfer, region_config
from tests.tasks.polar.polar_synthetic_scene import tiny_polar_config

torch.set_num_threads(1)
CONFIG = Path(__file__).resolve().parents[3] / "configs" / "polar.yaml"


def _cfg(root: Path) -> PolarConfig:
    return tiny_polar_config(
        root,
        ingest={"source": "generator",
                "generator": {"lines": 288, "samples": 288, "scenes_per_day": 1}},
        patches={"sizes": [32], "stride": 8, "min_purity": 0.8},
        train={"model": "adhoc_cnn", "patch_size": 32, "epochs": 1, "augment": False,
               "width_multiplier": 0.25, "class_scheme": "binary"})


def _scored_pixels(scenes: list[str]) -> int:
    """Count labelled, valid sea pixels of the scenes: what a dense evaluation must score."""
    total = 0
    for scene in scenes:
        labels = xr.open_zarr(Path(scene).parents[2] / "labels" / Path(scene).parent.name
                              / Path(scene).name)[schema.LABEL_VAR].values
        ds = xr.open_zarr(scene)
        total += int(((labels != schema.NO_LABEL) & (ds[schema.LAND_MASK_VAR].values == 0)
                      & (ds[schema.VALID_MASK_VAR].values == 1)).sum())
    return total


def test_transfer_to_another_day_and_region(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    days = evaluate_transfer(cfg, ["2026-01-10"], ["2026-01-11"])
    model_dir = Path(days["model_dir"])
    out = Path(days["evaluation_dir"])
    assert out == model_dir / "transfer" / "days_2026-01-11"
    assert days["train_days"] == ["2026-01-10"] and days["test_days"] == ["2026-01-11"]
    assert [Path(s).parent.name for s in days["test_scenes"]] == ["2026-01-11"]
    confusion = np.array(json.loads((out / "confusion_matrix.json").read_text())["matrix"])
    assert confusion.tolist() == days["confusion_matrix"]
    # every labelled sea pixel of day B is scored once, and the accuracy is the diagonal's share
    assert confusion.sum() == days["test"]["n_samples"] == _scored_pixels(days["test_scenes"])
    assert days["test"]["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    assert set(days["test"]["f1"]) == {"water", "ice"}
    assert json.loads((out / "transfer.json").read_text())["test"] == days["test"]
    assert (out / "confusion_matrix.png").stat().st_size > 1000
    # the model's own validation evaluation is kept, not replaced by the day-B one
    own = json.loads((model_dir / "evaluation" / "metrics.json").read_text())
    assert own["source"] == "patches" and own["accuracy"] == days["validation"]["accuracy"]

    region = evaluate_transfer(cfg, ["2026-01-10"], ["2026-01-11"],
                               test_overrides={"seed": 7}, model_dir=model_dir)
    assert region["name"].startswith("region_") and region["test_overrides"] == {"seed": 7}
    assert region["validation"] == days["validation"]
    region_scene = Path(region["test_scenes"][0])
    assert tmp_path / "transfer" / region["name"] in region_scene.parents
    a = xr.open_zarr(days["test_scenes"][0])[schema.LAND_MASK_VAR].values
    b = xr.open_zarr(region_scene)[schema.LAND_MASK_VAR].values
    assert not np.array_equal(a, b), "seed 7 must generate another scene"
    assert region["test"]["n_samples"] == _scored_pixels(region["test_scenes"])
    # training data was prepared once: day A is not regenerated for the second call
    assert sorted(p.name for p in (tmp_path / "polar" / "harmonise").iterdir()) == [
        "2026-01-10", "2026-01-11"]


def test_transfer_refuses_bad_input(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    with pytest.raises(ValueError, match=r"test days \['2026-01-10'\] are also training days"):
        evaluate_transfer(cfg, ["2026-01-10"], ["2026-01-10"])
    with pytest.raises(ValueError, match="no days given"):
        evaluate_transfer(cfg, [], ["2026-01-11"])
    with pytest.raises(ValueError, match=r"\['train.class_scheme'\] change what the model"):
        region_config(cfg, {"train.class_scheme": "five_class"}, "x")
    with pytest.raises(ValueError, match="give an invalid polar config"):
        region_config(cfg, {"ingest.generator.lines": 5}, "x")
    moved = region_config(cfg, {"seed": 9}, "north")
    assert moved.seed == 9 and moved.resolved_root() == tmp_path / "transfer" / "north"
    assert moved.train == cfg.train and cfg.seed != 9


def test_cli_evaluate_transfer(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake(cfg, train_days, test_days, *, test_overrides, model_dir):
        calls.append((cfg.train.epochs, train_days, test_days, test_overrides, model_dir))
        return {"name": "x", "test": {"accuracy": 0.5}}

    monkeypatch.setattr(generalisation, "evaluate_transfer", fake)
    result = CliRunner().invoke(app, [
        "evaluate-transfer", "--config", str(CONFIG), "--set", "train.epochs=2",
        "--train-day", "2026-01-10", "--train-day", "2026-01-11", "--test-day", "2026-01-14",
        "--test-set", "seed=7", "--test-set", "ingest.aoi_bbox=[-150, 71, -130, 76]",
        "--model-dir", "/m"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"name": "x", "test": {"accuracy": 0.5}}
    assert calls == [(2, ["2026-01-10", "2026-01-11"], ["2026-01-14"],
                      {"seed": 7, "ingest.aoi_bbox": [-150, 71, -130, 76]}, Path("/m"))]
    missing = CliRunner().invoke(app, ["evaluate-transfer", "--config", str(CONFIG),
                                       "--test-day", "2026-01-14"])
    assert missing.exit_code != 0 and "--train-day" in missing.output
