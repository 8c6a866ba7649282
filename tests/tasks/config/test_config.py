from pathlib import Path

import pytest

from tasks.config import ConfigError, config_hash, load_config
from tasks.config.common import validate_config
from tasks.config.polar import PolarConfig

REPO = Path(__file__).resolve().parents[3]


def test_shipped_polar_config_is_valid():
    cfg = load_config(REPO / "configs" / "polar.yaml")
    assert isinstance(cfg, PolarConfig)
    assert cfg.harmonise.multilook == 3
    assert cfg.train.accelerator == "auto"


def test_unknown_key_names_path_value_and_allowed_keys():
    with pytest.raises(ConfigError) as err:
        validate_config({"use_case": "polar", "train": {"modle": "vgg16"}}, "polar.yaml")
    msg = str(err.value)
    assert "polar.yaml: key 'train.modle'" in msg
    assert "'vgg16'" in msg
    assert "'model'" in msg and "'epochs'" in msg


def test_wrong_type_and_out_of_range_name_the_key():
    with pytest.raises(ConfigError) as err:
        validate_config({"use_case": "polar", "train": {"epochs": -3, "batch_size": "many"}})
    msg = str(err.value)
    assert "train.epochs" in msg and "-3" in msg and "greater than or equal to 1" in msg
    assert "train.batch_size" in msg and "'many'" in msg


def test_literal_choice_lists_allowed_values():
    with pytest.raises(ConfigError) as err:
        validate_config({"use_case": "polar", "train": {"model": "resnet"}})
    assert "'adhoc_cnn'" in str(err.value) and "'resnet'" in str(err.value)


def test_unknown_use_case_lists_known_ones():
    with pytest.raises(ConfigError, match="unknown value 'mars'.*polar"):
        validate_config({"use_case": "mars"})


def test_even_multilook_rejected():
    with pytest.raises(ConfigError, match="multilook must be odd"):
        validate_config({"use_case": "polar", "harmonise": {"multilook": 4}})


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("use_case: [polar\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_overrides_and_hash(tmp_path):
    a = load_config(REPO / "configs" / "polar.yaml")
    b = load_config(REPO / "configs" / "polar.yaml", {"train.epochs": 2})
    assert b.train.epochs == 2
    assert config_hash(a) != config_hash(b)
    assert config_hash(a) == config_hash(load_config(REPO / "configs" / "polar.yaml"))


def test_relative_data_root_resolves_against_eeflow_home(eeflow_home):
    cfg = validate_config({"use_case": "polar", "data_root": "out"})
    assert cfg.resolved_root() == (eeflow_home / "out").resolve()


def test_object_store_root_rejected_with_hint():
    with pytest.raises(ConfigError, match="data_root.*only local paths and s3://"):
        validate_config({"use_case": "polar", "data_root": "gs://bucket/x"})
    assert validate_config({"use_case": "polar", "data_root": "s3://bucket/x"}).data_root == (
        "s3://bucket/x"
    )
