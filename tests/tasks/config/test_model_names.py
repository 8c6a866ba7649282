"""The model names come from the config's Literal types; other lists must agree with them."""

from __future__ import annotations

from typing import get_args

from tasks.config.food_security import CROP_MODEL_NAMES, CropModelName, FoodSecurityConfig
from tasks.config.polar import ICE_MODEL_NAMES, IceModelName


def test_name_tuples_follow_the_literals():
    assert CROP_MODEL_NAMES == get_args(CropModelName) == ("lstm", "tempcnn", "starrnn")
    assert ICE_MODEL_NAMES == get_args(IceModelName) == (
        "adhoc_cnn", "vgg16", "vgg16_transfer", "vgg16_modified")
    assert FoodSecurityConfig().evaluate.models == list(CROP_MODEL_NAMES)


def test_model_zoos_build_exactly_the_config_names():
    from tasks.models.ice_zoo import ICE_MODELS

    assert tuple(ICE_MODELS) == ICE_MODEL_NAMES
    from tasks.food_security.evaluate import MODEL_LABELS

    assert tuple(MODEL_LABELS) == CROP_MODEL_NAMES


def test_process_requests_and_the_crop_dag_param_take_the_config_names():
    from tasks.serving.process import CROP_MODELS

    assert CROP_MODELS == ("all", *CROP_MODEL_NAMES)
