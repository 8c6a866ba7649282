"""The linked-data config of the RDF stages is loaded with the use-case config, never defaulted."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tasks.config.common import ConfigError, config_hash, load_config
from tasks.config.linked_data import LinkedDataConfig
from tasks.config.polar import PolarConfig

REPO = Path(__file__).resolve().parents[3]


def _polar(tmp_path: Path, **keys: object) -> Path:
    path = tmp_path / "polar.yaml"
    path.write_text(yaml.safe_dump({"use_case": "polar", "data_root": "data", **keys}))
    return path


def test_shipped_use_cases_name_the_shipped_linked_data_config(monkeypatch):
    monkeypatch.setenv("EEFLOW_HOME", str(REPO))
    for name in ("polar", "food_security"):
        cfg = load_config(REPO / "configs" / f"{name}.yaml")
        link = cfg.linked_data  # type: ignore[attr-defined]
        assert link.config == "configs/linked_data.yaml"
        assert isinstance(link.settings, LinkedDataConfig)
        # the linked-data settings of the file, written under the use case's data root
        assert link.settings.data_root == str(cfg.resolved_root())
        assert link.settings.store.path == "linked_data/store"


def test_linked_data_config_is_resolved_against_eeflow_home(monkeypatch, tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "ld.yaml").write_text(yaml.safe_dump(
        {"use_case": "linked_data", "export": {"format": "ttl"}}))
    monkeypatch.setenv("EEFLOW_HOME", str(tmp_path))
    cfg = load_config(_polar(tmp_path, linked_data={"config": "configs/ld.yaml"}),
                      expect=PolarConfig)
    settings = cfg.linked_data_settings()
    assert settings.export.format == "ttl"
    assert settings.data_root == str(tmp_path / "data")


def test_a_missing_linked_data_file_is_an_error_naming_the_key(monkeypatch, tmp_path):
    monkeypatch.setenv("EEFLOW_HOME", str(tmp_path))
    path = _polar(tmp_path, linked_data={"config": "configs/nowhere.yaml"})
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == (
        f"{path}: key 'linked_data.config': file {tmp_path / 'configs' / 'nowhere.yaml'} does not "
        "exist (got 'configs/nowhere.yaml'; relative paths are resolved against $EEFLOW_HOME or "
        "the current directory)"
    )


def test_a_linked_data_file_of_another_use_case_is_refused(monkeypatch):
    monkeypatch.setenv("EEFLOW_HOME", str(REPO))
    with pytest.raises(ConfigError, match="use_case is 'serving', expected 'linked_data'"):
        load_config(REPO / "configs" / "polar.yaml",
                    {"linked_data.config": "configs/serving.yaml"})


def test_rdf_stages_refuse_a_config_naming_no_linked_data(tmp_path):
    from tasks.linked_data.stages import linked_data_config_for

    cfg = load_config(_polar(tmp_path), expect=PolarConfig)
    assert cfg.linked_data is None
    with pytest.raises(ConfigError, match=r"the polar config names no linked-data config; add "
                       r"'linked_data: \{config: configs/linked_data.yaml\}'"):
        linked_data_config_for(cfg)
    unloaded = PolarConfig(linked_data={"config": "configs/linked_data.yaml"})
    with pytest.raises(ConfigError, match="is not loaded; load the config with"):
        linked_data_config_for(unloaded)


def test_rdf_stages_take_the_loaded_settings(monkeypatch):
    from tasks.linked_data.stages import linked_data_config_for

    monkeypatch.setenv("EEFLOW_HOME", str(REPO))
    cfg = load_config(REPO / "configs" / "polar.yaml", expect=PolarConfig)
    assert linked_data_config_for(cfg) is cfg.linked_data_settings()
    linked = load_config(REPO / "configs" / "linked_data.yaml", expect=LinkedDataConfig)
    assert linked_data_config_for(linked) is linked


def test_the_reference_leaves_the_config_hash_alone(monkeypatch, tmp_path):
    monkeypatch.setenv("EEFLOW_HOME", str(REPO))
    data = yaml.safe_load((REPO / "configs" / "polar.yaml").read_text())
    del data["linked_data"]
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump(data))
    shipped = load_config(REPO / "configs" / "polar.yaml")
    assert config_hash(load_config(bare)) == config_hash(shipped)


def test_copies_keep_the_loaded_settings(monkeypatch):
    from tasks.experiments.spaces import apply_overrides

    monkeypatch.setenv("EEFLOW_HOME", str(REPO))
    cfg = load_config(REPO / "configs" / "polar.yaml", expect=PolarConfig)
    trial = apply_overrides(cfg, {"train.epochs": 1})
    assert trial.linked_data_settings() == cfg.linked_data_settings()
