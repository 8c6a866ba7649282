from __future__ import annotations

import pytest

from tasks.config.common import ConfigError, load_config, validate_config
from tasks.config.food_security import FoodSecurityConfig


def _base(**extra):
    data = {"use_case": "food_security"}
    data.update(extra)
    return data


def test_yaml_and_defaults_validate(repo_root):
    cfg = load_config(repo_root / "configs" / "food_security.yaml")
    assert isinstance(cfg, FoodSecurityConfig)
    assert cfg.tile_ids() == ["33UWP", "33UXP", "33UVP"]
    assert cfg.train.weight_decay == 0.4 and cfg.train.learning_rate == 1e-3
    assert cfg.train.optimizer == "rmsprop"
    assert isinstance(validate_config(_base()), FoodSecurityConfig)


def test_tile_named_twice_is_an_error_naming_it():
    tiles = [{"id": "33UWP"}, {"id": "33UXP"}, {"id": "33UWP"}]
    with pytest.raises(ConfigError, match="33UWP.*named twice"):
        validate_config(_base(ingest={"generator": {"tiles": tiles}}))


def test_split_tile_must_be_configured_and_in_one_split():
    with pytest.raises(ConfigError, match="'33UAA' which is not configured"):
        validate_config(_base(samples={"split": {"train_tiles": ["33UAA"]}}))
    with pytest.raises(ConfigError, match="33UWP.*named twice in samples.split"):
        validate_config(_base(samples={"split": {"train_tiles": ["33UWP"],
                                                 "val_tiles": ["33UWP"]}}))


def test_train_grid_and_ranges():
    cfg = validate_config(_base(train={"grid": {"layers": [2, 3, 4],
                                                "cells": [100, 125, 200, 225, 300]}}))
    assert cfg.train.grid.cells == [100, 125, 200, 225, 300]
    with pytest.raises(ConfigError, match="train.layers"):
        validate_config(_base(train={"layers": 7}))
    with pytest.raises(ConfigError, match="train.model"):
        validate_config(_base(train={"model": "transformer"}))
    with pytest.raises(ConfigError, match="layers must be 1..6"):
        validate_config(_base(train={"grid": {"layers": [9]}}))


def test_bad_tile_id_and_directory_source():
    with pytest.raises(ConfigError, match="ingest.generator.tiles.0.id"):
        validate_config(_base(ingest={"generator": {"tiles": [{"id": "austria"}]}}))
    with pytest.raises(ConfigError, match="ingest.directory and ingest.parcel_map"):
        validate_config(_base(ingest={"source": "directory"}))
