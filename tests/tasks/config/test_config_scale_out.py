"""Config keys of the scale-out: dask.kubernetes and the train sections' Lightning settings."""

from __future__ import annotations

import pytest

from tasks.config.common import ConfigError, load_config


def _load(tmp_path, text: str):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return load_config(path)


def test_dask_kubernetes_defaults_and_keys(tmp_path):
    cfg = _load(tmp_path, "use_case: polar\ndask:\n  cluster: kubernetes\n  kubernetes:\n"
                          "    image: registry.example/eeflow-dask:1\n"
                          "    resources: {cpu: 500m, memory: 3Gi}\n    env: {A_B: '1'}\n")
    kube = cfg.dask.kubernetes
    assert (kube.image, kube.resources.cpu, kube.resources.memory) == (
        "registry.example/eeflow-dask:1", "500m", "3Gi")
    assert kube.env == {"A_B": "1"} and kube.namespace == "default"


@pytest.mark.parametrize(("snippet", "where"), [
    ("resources: {cpu: two}", r"dask\.kubernetes\.resources\.cpu"),
    ("resources: {memory: 3GB!}", r"dask\.kubernetes\.resources\.memory"),
    ("env: {1BAD: x}", r"dask\.kubernetes\.env.*1BAD"),
    ("name: Eeflow_Cluster", r"dask\.kubernetes\.name"),
    ("replicas: 3", r"dask\.kubernetes.*replicas"),
])
def test_dask_kubernetes_errors_name_the_key(tmp_path, snippet, where):
    with pytest.raises(ConfigError, match=where):
        _load(tmp_path, f"use_case: polar\ndask:\n  kubernetes: {{{snippet}}}\n")


@pytest.mark.parametrize("use_case", ["polar", "food_security"])
def test_train_lightning_settings(tmp_path, use_case):
    cfg = _load(tmp_path, f"use_case: {use_case}\ntrain:\n  accelerator: gpu\n  devices: 4\n"
                          "  precision: bf16-mixed\n  strategy: ddp\n")
    assert cfg.train.trainer_kwargs() == {"accelerator": "gpu", "devices": 4,
                                          "precision": "bf16-mixed", "strategy": "ddp"}
    assert _load(tmp_path, f"use_case: {use_case}\n").train.trainer_kwargs() == {
        "accelerator": "auto", "devices": 1, "precision": "32-true", "strategy": "auto"}


@pytest.mark.parametrize(("train", "message"), [
    ("{precision: fp8}", r"train\.precision.*bf16-mixed"),
    ("{strategy: fsdp}", r"train\.strategy.*ddp"),
    ("{devices: 0}", r"train\.devices"),
    ("{accelerator: cpu, precision: 16-mixed}", r"train.*16-mixed needs a GPU.*bf16-mixed"),
])
def test_train_lightning_settings_errors(tmp_path, train, message):
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, f"use_case: polar\ntrain: {train}\n")
