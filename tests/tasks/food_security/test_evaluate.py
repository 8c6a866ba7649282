import json
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from tasks.food_security.evaluate import run_evaluate
from tasks.food_security.predict import (
    PredictInputError,
    TileComposites,
    classify_pixels,
    load_crop_model,
)
from tasks.food_security.train import train_crop_model
from tests.tasks.food_security.conftest_ml import tiny_config as shared_tiny_config
from tests.tasks.food_security.conftest_ml import write_sample_year, write_tile_year

RUN_DATE = "2018-08-31"
YEAR = "2017-09_2018-08"


#: two models are trained here, so one epoch per phase.
tiny_config = partial(shared_tiny_config, epochs_phase1=1, block_rows=7)


@pytest.fixture(scope="module")
def trained_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fs_eval")
    write_sample_year(root, RUN_DATE, n_train=300, n_val=80, n_test=40)
    write_tile_year(root, RUN_DATE, size=32)
    cfg = tiny_config(root)
    train_crop_model(cfg, RUN_DATE, model="lstm")
    train_crop_model(cfg, RUN_DATE, model="tempcnn")
    return root


@pytest.fixture()
def root(trained_root: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "root"
    shutil.copytree(trained_root, copy)
    return copy


def test_evaluate_scores_match_a_direct_count(root: Path) -> None:
    import xarray as xr

    result = run_evaluate(tiny_config(root), RUN_DATE)
    folder = root / f"food_security/evaluate/{YEAR}"
    assert result["folder"] == str(folder)
    assert result["missing_models"] == ["starrnn"]
    metrics = json.loads((folder / "metrics.json").read_text())
    labels = xr.open_zarr(root / f"food_security/labels/{YEAR}/33UVP.zarr")["label"].values
    module, meta = load_crop_model(root / f"food_security/models/{YEAR}/lstm")
    source = TileComposites(root / f"food_security/harmonise/{YEAR}/33UVP.zarr", meta["bands"], 12)
    predicted, _ = classify_pixels(module, source.read_rows(0, source.height), 512)
    reference = labels.reshape(-1)
    keep = reference >= 0
    accuracy = float((predicted[keep] == reference[keep]).mean())
    lstm = metrics["models"]["lstm"]
    assert lstm["overall_accuracy"] == pytest.approx(accuracy)
    assert lstm["n_samples"] == int(keep.sum())
    confusion = np.asarray(lstm["confusion"])
    assert confusion.shape == (16, 16) and confusion.sum() == keep.sum()
    present = [f for f in lstm["f1"] if f is not None]
    assert lstm["median_f1"] == pytest.approx(float(np.median(present)))
    for name in ("comparison.md", "comparison.json", "confusion_lstm.png", "confusion_tempcnn.png",
                 "manifest.json"):
        assert (folder / name).is_file(), name
    table = (folder / "comparison.md").read_text()
    assert "| LSTM (weighted two-phase) |" in table and "| TempCNN |" in table
    assert "| StarRNN | not trained |" in table
    rows = json.loads((folder / "comparison.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["lstm", "tempcnn"]
    assert len(rows[0]["rarest_class_f1"]) == 3


def test_evaluate_twice_is_identical(root: Path) -> None:
    cfg = tiny_config(root)
    run_evaluate(cfg, RUN_DATE)
    folder = root / f"food_security/evaluate/{YEAR}"
    first = (folder / "metrics.json").read_text()
    run_evaluate(cfg, RUN_DATE)
    assert (folder / "metrics.json").read_text() == first
    assert [p.name for p in folder.parent.iterdir()] == [YEAR]


def test_evaluate_without_models_is_an_error(root: Path) -> None:
    with pytest.raises(PredictInputError, match="no trained model"):
        run_evaluate(tiny_config(root), RUN_DATE, models=["starrnn"])


def test_tile_outside_parcel_map_has_nothing_to_evaluate(root: Path) -> None:
    import zarr

    store = zarr.open_group(str(root / f"food_security/labels/{YEAR}/33UVP.zarr"))
    store["label"][:] = -1
    with pytest.raises(PredictInputError, match="no labelled pixel"):
        run_evaluate(tiny_config(root), RUN_DATE)


def test_evaluate_without_labels_says_run_labels(root: Path) -> None:
    shutil.rmtree(root / f"food_security/labels/{YEAR}")
    with pytest.raises(PredictInputError, match="run the labels stage"):
        run_evaluate(tiny_config(root), RUN_DATE)


def test_cli_predict_and_evaluate_print_json(root: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from tasks.food_security.cli import app

    config = root / "fs.yaml"
    config.write_text(yaml.safe_dump({"use_case": "food_security", "data_root": str(root),
                                      "predict": {"block_rows": 8}}))
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", "--config", str(config), "--run-date", RUN_DATE,
                                 "--model", "lstm"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    assert set(payload["scores"]) == {"lstm"} and payload["missing_models"] == []
    result = runner.invoke(app, ["predict", "--config", str(config), "--run-date", RUN_DATE,
                                 "--model", "tempcnn"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout[result.stdout.index("{"):])["model"] == "tempcnn"
