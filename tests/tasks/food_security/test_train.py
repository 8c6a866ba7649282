import json
from pathlib import Path

import pytest
import torch

from tasks.datasets.crop_samples import (
    CropSampleBatches,
    SampleStoreError,
    inverse_frequency_weights,
)
from tasks.food_security.train import train_crop_model
from tasks.trainers.card import ModelCard
from tasks.trainers.contract import TRAIN_RESULT_KEYS
from tests.tasks.food_security.conftest_ml import tiny_config, write_sample_year

RUN_DATE = "2017-09-01"


@pytest.fixture()
def sample_root(tmp_path: Path) -> Path:
    write_sample_year(tmp_path, RUN_DATE, n_train=300, n_val=80, n_test=40)
    return tmp_path


def test_inverse_frequency_weights_average_one_over_samples() -> None:
    weights = inverse_frequency_weights([300, 100, 0, 20])
    assert weights[2] == 0.0
    assert weights[3] / weights[0] == pytest.approx(15.0)
    counts = [300, 100, 0, 20]
    weighted = sum(w * c for w, c in zip(weights, counts, strict=True))
    assert weighted / sum(counts) == pytest.approx(1)


def test_batches_cover_every_row_once_and_shuffle_per_epoch(sample_root: Path) -> None:
    store = sample_root / "food_security/samples/2017-09_2018-08/train.zarr"
    batches = CropSampleBatches(store, batch_size=50, shuffle=True, seed=3, block_rows=128)
    first = torch.cat([y for _, y in batches])
    second = torch.cat([y for _, y in batches])
    assert len(first) == 300 and sorted(first.tolist()) == sorted(second.tolist())
    assert not torch.equal(first, second)  # a new order each epoch
    again = CropSampleBatches(store, batch_size=50, shuffle=True, seed=3, block_rows=128)
    assert torch.equal(torch.cat([y for _, y in again]), first)  # seeded
    x, _ = next(iter(batches))
    assert x.shape == (50, 12, 10) and x.dtype == torch.float32
    assert len(batches) == sum(1 for _ in batches)


def test_train_writes_model_folder_and_is_reproducible(sample_root: Path) -> None:
    cfg = tiny_config(sample_root)
    result = train_crop_model(cfg, RUN_DATE)
    folder = Path(result["model_dir"])
    assert folder == sample_root / "food_security/models/2017-09_2018-08/lstm"
    for name in ("model.ckpt", "phase1.ckpt", "model.json", "manifest.json", "learning_curve.png",
                 "logs/phase1/metrics.csv", "logs/phase2/metrics.csv"):
        assert (folder / name).is_file(), name
    meta = json.loads((folder / "model.json").read_text())
    assert meta["classes"][0] == "grassland" and len(meta["bands"]) == 10
    assert len(meta["normalisation"]["band_mean"]) == 10
    assert meta["hyperparameters"]["layers"] == 1 and meta["hyperparameters"]["weight_decay"] == 0.4
    assert meta["dataset_version"] == "test-v1"
    assert meta["class_weights_phase1"][3] > meta["class_weights_phase1"][0]
    assert result["monitor"] == "val_median_f1"
    assert 0.0 <= result["monitor_value"] <= 1.0
    assert set(result) == TRAIN_RESULT_KEYS and result["use_case"] == "food_security"
    assert result["monitor_value"] == result["metrics"]["val_median_f1"]
    assert result["metrics"] == meta["metrics"]["validation"]
    assert result["extra"] == {"agronomic_year": "2017-09_2018-08"}
    card = ModelCard.load(folder)
    assert card.schema_version == 2 and card.use_case == "food_security"
    assert card.metrics == result["metrics"] and card.epochs == result["epochs"]
    first_state = torch.load(folder / "model.ckpt", weights_only=False)["state_dict"]
    # same year again: same weights, same metrics, one folder (replaced atomically)
    again = train_crop_model(cfg, RUN_DATE)
    assert again["metrics"] == result["metrics"]
    second_state = torch.load(folder / "model.ckpt", weights_only=False)["state_dict"]
    assert all(torch.equal(first_state[k], second_state[k]) for k in first_state)
    assert sorted(p.name for p in folder.parent.iterdir()) == ["lstm"]


@pytest.mark.parametrize("model", ["tempcnn", "starrnn"])
def test_train_baselines(sample_root: Path, model: str) -> None:
    cfg = tiny_config(sample_root, epochs_phase1=1, epochs_phase2=0)
    result = train_crop_model(cfg, RUN_DATE, model=model)
    assert result["epochs"] == {"phase1": 1}
    assert json.loads(Path(result["model_json"]).read_text())["model"] == model


def test_train_accepts_extra_callbacks(sample_root: Path) -> None:
    import lightning as L

    class EpochRecorder(L.Callback):
        def __init__(self) -> None:
            self.values: list[float] = []

        def on_validation_end(self, trainer, pl_module) -> None:  # as Optuna
            self.values.append(float(trainer.callback_metrics["val_median_f1"]))

    recorder = EpochRecorder()
    cfg = tiny_config(sample_root, epochs_phase1=1, epochs_phase2=1)
    out = sample_root / "trial-0"
    result = train_crop_model(cfg, RUN_DATE, callbacks=[recorder], output_dir=out)
    assert len(recorder.values) >= 2 and result["model_dir"] == str(out)
    assert (out / "model.json").is_file()  # output_dir is the model folder itself


def test_train_without_samples_names_the_missing_store(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    with pytest.raises(SampleStoreError, match=r"train.zarr does not exist.*samples stage"):
        train_crop_model(cfg, "2016-10-01")
    assert not (tmp_path / "food_security/models").exists() or not any(
        (tmp_path / "food_security/models").rglob("model.json")
    )


def test_train_rejects_unknown_model(sample_root: Path) -> None:
    with pytest.raises(ValueError, match="allowed"):
        train_crop_model(tiny_config(sample_root), RUN_DATE, model="svm")


def test_train_rejects_nan_samples(tmp_path: Path) -> None:
    import zarr

    write_sample_year(tmp_path, RUN_DATE, n_train=100, n_val=40, n_test=20)
    store = zarr.open_group(str(tmp_path / "food_security/samples/2017-09_2018-08/train.zarr"))
    x = store["x"][:]
    x[7, 3, 2] = float("nan")
    store["x"][:] = x
    with pytest.raises(SampleStoreError, match="NaN"):
        train_crop_model(tiny_config(tmp_path), RUN_DATE)
