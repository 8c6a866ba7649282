"""Fixtures of the experiments tests: the toy use case and one shared, finished search."""

from __future__ import annotations

import logging

import pytest

from tests.tasks.experiments.experiments_toy import toy_adapter, toy_config

logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
logging.getLogger("lightning.fabric").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def finished_search(tmp_path_factory):
    """A TPE search of 6 toy trials (learning rate x hidden units) with the median pruner."""
    from tasks.experiments.search import run_search_worker

    root = tmp_path_factory.mktemp("finished-search")
    cfg = toy_config(root, n_trials=6, sampler="tpe", pruner="median", n_startup_trials=2,
                     space={"train.learning_rate": {"type": "float", "low": 1e-3, "high": 1.0,
                                                    "log": True},
                            "train.hidden": {"type": "categorical", "choices": [4, 16]}})
    result = run_search_worker(cfg, toy_adapter(cfg))
    return cfg, result
