"""Rules between sections, checked once when a config is validated (messages name both keys)."""

from __future__ import annotations

import pytest

from tasks.config.common import ConfigError, validate_config


def _error(data: dict) -> str:
    with pytest.raises(ConfigError) as err:
        validate_config(data, "x.yaml")
    return str(err.value)


def test_train_patch_size_must_be_a_built_patch_size():
    msg = _error({"use_case": "polar", "patches": {"sizes": [20]}})
    assert msg == (
        "invalid configuration:\n  x.yaml: key '<root>': Value error, train.patch_size 32 is not "
        "one of patches.sizes [20]: the patches stage builds no 32 px training set; add 32 to "
        "patches.sizes or set train.patch_size to one of [20]"
    )
    cfg = validate_config({"use_case": "polar", "patches": {"sizes": [20]},
                           "train": {"patch_size": 20}})
    assert cfg.train.patch_size == 20  # type: ignore[attr-defined]


def test_patch_sizes_are_listed_once():
    msg = _error({"use_case": "polar", "patches": {"sizes": [20, 20]}, "train": {"patch_size": 20}})
    assert "key 'patches.sizes'" in msg
    assert "sizes [20] are listed twice; list each patch size once (got [20, 20])" in msg


def test_evaluate_models_are_known_distinct_and_not_empty():
    assert "key 'evaluate.models.0'" in _error(
        {"use_case": "food_security", "evaluate": {"models": ["resnet"]}})
    msg = _error({"use_case": "food_security", "evaluate": {"models": ["lstm", "tempcnn", "lstm"]}})
    assert "key 'evaluate.models'" in msg
    assert "models ['lstm'] are listed twice; list each model once" in msg
    assert "key 'evaluate.models': List should have at least 1 item" in _error(
        {"use_case": "food_security", "evaluate": {"models": []}})


def test_the_model_predict_maps_with_must_be_trained_by_the_dag():
    msg = _error({"use_case": "food_security", "evaluate": {"models": ["tempcnn"]}})
    assert (
        "predict.model 'latest' maps with train.model 'lstm', which evaluate.models ['tempcnn'] "
        "does not train (the crop DAG's model 'all' trains and maps evaluate.models); add 'lstm' "
        "to evaluate.models or choose a predict.model among them"
    ) in msg
    msg = _error({"use_case": "food_security", "evaluate": {"models": ["lstm"]},
                  "predict": {"model": "starrnn"}})
    assert "predict.model 'starrnn' maps with that model, which evaluate.models ['lstm']" in msg
    # consistent choices, and references the config cannot check, pass
    for predict, train in (("latest", "tempcnn"), ("tempcnn", "lstm"),
                           ("registry:production", "starrnn"), ("best:val_f1", "starrnn")):
        validate_config({"use_case": "food_security", "evaluate": {"models": ["lstm", "tempcnn"]},
                         "predict": {"model": predict}, "train": {"model": train}})
