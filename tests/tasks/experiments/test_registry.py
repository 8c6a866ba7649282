import shutil
from pathlib import Path

import pytest

from tasks.experiments.stages import register_best
from tasks.model_registry import (
    CorruptedModelError,
    ModelRegistry,
    NoModelError,
    RegistryError,
)


@pytest.fixture(scope="module")
def registry_with_search(finished_search):
    cfg, _ = finished_search
    return cfg, ModelRegistry.from_config(cfg)


def test_register_best_trial_promotes_and_resolves(registry_with_search):
    cfg, registry = registry_with_search
    first = register_best(cfg)
    assert first["promoted"] and first["version"] == 1 and first["alias"] == "production"
    again = register_best(cfg)  # idempotent: the same trial is not registered twice
    assert again["version"] == 1 and len(registry.versions("toy")) == 1
    record = registry.get("toy", 1)
    assert record.tags["dataset_version"] == "toy-v1" and record.tags["code_version"] == "test"
    assert "band_mean" in record.tags["normalisation"]
    assert "learning_rate" in record.tags["hyperparameters"] and record.family == "mlp"
    folder = registry.resolve("toy", alias="production")
    assert (folder / "model.ckpt").is_file() and (folder / "model.json").is_file()
    assert registry.resolve("toy") == folder  # cached and verified


def test_best_model_by_metric_and_aliases(registry_with_search, tmp_path):
    cfg, registry = registry_with_search
    source = Path(registry.resolve("toy"))
    copy = tmp_path / "worse"
    shutil.copytree(source, copy)
    worse = registry.register("toy", copy, metrics={"val_acc": 0.1}, family="linear")
    assert registry.best_model("toy", "val_acc", "maximize").version != worse.version
    assert registry.best_model("toy", "val_acc", "minimize").version == worse.version
    registry.set_alias("toy", "staging", worse.version)
    assert registry.by_alias("toy", "staging").version == worse.version
    with pytest.raises(RegistryError, match=r"no toy model has metric 'val_f1'.*'val_acc'"):
        registry.best_model("toy", "val_f1")
    with pytest.raises(NoModelError, match="no alias 'canary'"):
        registry.by_alias("toy", "canary")


def test_registry_reference_of_a_config(registry_with_search):
    # before test_corrupted_checkpoint_is_refused, which damages version 1
    from tasks.model_registry import is_registry_reference, resolve_registry_reference

    cfg, registry = registry_with_search
    register_best(cfg)  # idempotent: version 1 under "production"
    assert is_registry_reference("registry:production") and is_registry_reference("best:val_acc")
    assert not is_registry_reference("latest") and not is_registry_reference("models/lstm")
    production = resolve_registry_reference("toy", "registry:production", cfg=cfg)
    assert production == registry.resolve("toy", alias="production")
    best = registry.best_model("toy", "val_acc")
    assert resolve_registry_reference("toy", "best:val_acc", cfg=cfg) == registry.resolve(
        "toy", version=best.version)
    with pytest.raises(NoModelError, match="no alias 'canary'"):
        resolve_registry_reference("toy", "registry:canary", cfg=cfg)
    with pytest.raises(ValueError, match=r"'best: ' is incomplete; give a metric"):
        resolve_registry_reference("toy", "best: ", cfg=cfg)
    with pytest.raises(ValueError, match=r"'latest' is not a registry reference; allowed: "
                                         r"\['registry:<alias>', 'best:<metric>'\]"):
        resolve_registry_reference("toy", "latest", cfg=cfg)


def test_no_model_for_use_case(registry_with_search):
    _, registry = registry_with_search
    with pytest.raises(NoModelError, match="no model is registered for use case 'polar'"):
        registry.resolve("polar")


def test_corrupted_checkpoint_is_refused(registry_with_search, tmp_path):
    cfg, registry = registry_with_search
    bad = tmp_path / "bad"
    shutil.copytree(registry.resolve("toy"), bad)
    (bad / "model.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CorruptedModelError, match="cannot be loaded"):
        registry.register("toy", bad)
    # damage the stored artifact of version 1 behind the registry's back
    stored = Path(registry.artifact_root)
    (ckpt,) = [p for p in stored.rglob("model.ckpt")
               if registry.get("toy", 1).run_id in str(p)]
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    shutil.rmtree(registry.cache_dir / "eeflow-toy" / "v1")
    with pytest.raises(CorruptedModelError, match="do not match their registered SHA-256"):
        registry.resolve("toy", version=1)


def test_not_a_model_folder(registry_with_search, tmp_path):
    _, registry = registry_with_search
    with pytest.raises(FileNotFoundError, match="has no model.json"):
        registry.register("toy", tmp_path)
