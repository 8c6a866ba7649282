"""The model card reads the polar and crop model.json files of before the card, and new ones."""

import json
from pathlib import Path

import pytest

from tasks.trainers.card import CARD_KEY, SCHEMA_VERSION, ModelCard, ModelCardError, load

CARDS = Path(__file__).parents[2] / "data" / "model_cards"


def test_old_polar_model_json_loads() -> None:
    card = load(CARDS / "polar_v1.json")
    assert card.schema_version == 1 and card.use_case == "polar"
    assert card.model == card.architecture == "adhoc_cnn"
    assert card.classes == ["water", "ice"] and card.bands == ["HH", "HV", "incidence"]
    assert card.normalisation == {"band_mean": [-18.25, -26.5, 35.0],
                                  "band_std": [4.5, 3.25, 6.0]}
    assert card.input_contract["modes"] == ["EW"] and card.input_contract["patch_size"] == 32
    assert card.monitor == "val_loss" and card.monitor_mode == "min"
    assert card.monitor_value == pytest.approx(0.1873)
    assert card.metrics == {"val_acc": 0.953125, "val_loss": 0.1873}
    assert card.epochs == {"train": 5} and card.hyperparameters["max_epochs"] == 6
    assert card.dataset == "/data/polar/training/vtest/patches_32.zarr"
    assert card.dataset_version == "vtest"
    assert card.weights == "model.pt" and card.checkpoint == "checkpoints/best.ckpt"
    assert card.code_version == "51ea29e" and card.created.startswith("2026-11-29")
    assert card.document["output_stride"] == 4  # the use case's own keys stay readable


def test_old_crop_model_json_loads() -> None:
    card = ModelCard.load(CARDS / "food_security_v1.json")
    assert card.schema_version == 1 and card.use_case == "food_security"
    assert card.model == card.architecture == "lstm"
    assert card.classes[:2] == ["grassland", "maize"] and len(card.bands) == 10
    assert card.input_contract == {"bands": card.bands, "n_timesteps": 12}
    assert len(card.normalisation["band_mean"]) == 10
    assert card.monitor == "val_median_f1" and card.monitor_mode == "max"
    assert card.monitor_value == pytest.approx(0.64)
    assert card.metrics == {"val_accuracy": 0.7, "val_loss": 0.91, "val_macro_f1": 0.58,
                            "val_median_f1": 0.64}
    assert card.epochs == {"phase1": 2, "phase2": 1}
    assert card.dataset == "/data/food_security/samples/2017-09_2018-08"
    assert card.weights == card.checkpoint == "model.ckpt" and card.created is None


@pytest.mark.parametrize("name", ["polar_v1.json", "food_security_v1.json"])
def test_new_model_json_round_trips_and_keeps_the_use_case_keys(name: str,
                                                                 tmp_path: Path) -> None:
    old = load(CARDS / name)
    card = old.model_copy(update={"schema_version": SCHEMA_VERSION})
    path = card.write(tmp_path, old.document)
    written = json.loads(path.read_text())
    assert {k: v for k, v in written.items() if k != CARD_KEY} == old.document
    again = load(tmp_path)  # a folder works too
    assert again.schema_version == SCHEMA_VERSION
    assert again.model_dump() == card.model_dump()
    assert again.document == written


def test_same_fields_for_both_use_cases() -> None:
    polar, crops = load(CARDS / "polar_v1.json"), load(CARDS / "food_security_v1.json")
    assert polar.model_dump().keys() == crops.model_dump().keys()
    assert "val_loss" in polar.metrics and "val_loss" in crops.metrics


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken" / "model.json"
    broken.parent.mkdir()
    broken.write_text("{not json")
    with pytest.raises(ModelCardError, match=rf"{broken}.*not valid JSON"):
        load(broken)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(ModelCardError, match=rf"{listed} is not a model card.*list"):
        load(listed)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"model": "lstm", "classes": "grassland"}))
    with pytest.raises(ModelCardError, match=rf"{wrong} is not a valid model card: classes"):
        load(wrong)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.json")


def test_files_written_by_the_old_training_load() -> None:
    """model.json files written by train_model / train_crop_model of commit 49904e5."""
    polar = load(CARDS / "polar_vgg16_transfer_written_v1.json")
    doc = polar.document
    assert polar.use_case == "polar" and polar.model == "vgg16_transfer"
    assert polar.architecture == "vgg16" and polar.monitor_value == doc["monitor_value"]
    assert polar.metrics == doc["val_metrics"] and polar.epochs == {"train": doc["epochs_trained"]}
    assert polar.input_contract == doc["input_contract"]
    crops = load(CARDS / "food_security_lstm_written_v1.json")
    doc = crops.document
    assert crops.use_case == "food_security" and crops.model == "lstm"
    assert crops.metrics == doc["metrics"]["validation"]
    assert crops.monitor_value == doc["metrics"]["validation"][doc["monitor"]["metric"]]
    assert crops.epochs == {p: r["epochs_run"] for p, r in doc["metrics"]["phases"].items()}
