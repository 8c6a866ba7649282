"""Hyperband and ASHA prune for real: a search over a synthetic learning curve (no torch).

The trainer below reports a validation score per "epoch" through the real
:class:`OptunaPruningCallback` (fed a stand-in trainer), so the whole path runs:
``run_search_worker`` -> ``make_pruner`` -> ``make_objective`` -> callback -> ``drive_study``.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from tasks.config.common import ConfigError
from tasks.config.experiments import SearchConfig
from tasks.experiments.search import (
    BRACKET_ATTR,
    load_study,
    make_pruner,
    run_search_worker,
    summarise_trials,
)
from tasks.experiments.trainers import TrainingAdapter
from tests.tasks.experiments.experiments_toy import toy_config

EPOCHS = 27
N_TRIALS = 24


def quality(learning_rate: float) -> float:
    """Final score of a learning rate: 1 at 0.1, falling linearly per decade."""
    return 1.0 - abs(math.log10(learning_rate) + 1.0) / 4.0


def curve_train(cfg: Any, callbacks: list[Any], output_dir: Path) -> dict[str, Any]:
    """Report ``quality * (1 - 0.5 ** (epoch + 1))`` per epoch; raises TrialPruned when pruned."""
    (pruning,) = callbacks
    final = quality(cfg.train.learning_rate)
    value = 0.0
    for epoch in range(cfg.train.epochs):
        value = final * (1.0 - 0.5 ** (epoch + 1))
        trainer = SimpleNamespace(sanity_checking=False, callback_metrics={"val_acc": value})
        pruning.on_validation_end(trainer, None)
    output_dir.mkdir(parents=True, exist_ok=True)
    return {"model_dir": str(output_dir), "metrics": {"val_acc": value}}


def curve_adapter() -> TrainingAdapter:
    return TrainingAdapter(use_case="toy", train=curve_train, default_metric="val_acc",
                           max_epochs=lambda c: c.train.epochs, dataset="curve-v1")


def _search(tmp_path: Path, pruner: str) -> optuna.Study:
    cfg = toy_config(tmp_path, pruner=pruner, sampler="random", n_trials=N_TRIALS,
                     min_resource=1, reduction_factor=3, heartbeat_interval_s=60,
                     grace_period_s=120)
    cfg.train.epochs = EPOCHS
    result = run_search_worker(cfg, curve_adapter())
    assert result["counts"]["complete"] + result["counts"]["pruned"] == N_TRIALS
    return load_study(cfg, "toy-search")


def _assert_real_pruning(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    trials = study.get_trials(deepcopy=False)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert pruned and complete
    assert all(len(t.intermediate_values) < EPOCHS for t in pruned)
    assert all(len(t.intermediate_values) == EPOCHS for t in complete)
    assert study.best_trial.state == TrialState.COMPLETE
    # a pruned trial lost to one that went on: the best is better than every pruned trial
    best_lr = study.best_trial.params["train.learning_rate"]
    assert all(quality(t.params["train.learning_rate"]) <= quality(best_lr) for t in pruned)
    steps = sum(len(t.intermediate_values) for t in trials)
    assert steps < 0.5 * N_TRIALS * EPOCHS, f"{steps} epochs: hardly anything was pruned"
    return trials


def test_hyperband_prunes_per_bracket(tmp_path):
    study = _search(tmp_path, "hyperband")
    trials = _assert_real_pruning(study)
    brackets = Counter(t.user_attrs[BRACKET_ATTR] for t in trials)
    # min_resource 1, reduction 3, 27 epochs: floor(log3(27)) + 1 = 4 brackets
    assert set(brackets) <= {0, 1, 2, 3} and len(brackets) >= 3, brackets
    first_rung = {0: 1, 1: 3, 2: 9, 3: 27}  # step (0-based epoch) of each bracket's first rung
    for t in trials:
        if t.state == TrialState.PRUNED:  # a trial is pruned at a rung of its own bracket
            last = t.last_step
            rung = first_rung[t.user_attrs[BRACKET_ATTR]]
            assert last >= rung and any(last == rung * 3**k for k in range(4)), (last, rung)
    assert all(t.state == TrialState.COMPLETE for t in trials
               if t.user_attrs[BRACKET_ATTR] == 3)  # the last bracket is plain random search
    rows = summarise_trials(trials)
    assert {r["bracket"] for r in rows} == set(brackets)


def test_asha_prunes_at_geometric_rungs(tmp_path):
    study = _search(tmp_path, "asha")
    trials = _assert_real_pruning(study)
    assert all(BRACKET_ATTR not in t.user_attrs for t in trials)
    rungs = {1, 3, 9}  # min_resource * 3 ** k below 27 epochs
    assert {t.last_step for t in trials if t.state == TrialState.PRUNED} <= rungs


@pytest.mark.parametrize("name", ["asha", "successive_halving", "hyperband"])
def test_min_resource_that_can_never_prune_is_refused(name):
    search = SearchConfig(min_resource=5, reduction_factor=3)
    with pytest.raises(ConfigError, match=r"search.min_resource \(5\) must be below the epochs"):
        make_pruner(name, search, 5)
    assert make_pruner(name, search, 6) is not None


def test_hyperband_max_resource_is_the_trial_epochs():
    pruner = make_pruner("hyperband", SearchConfig(min_resource=2, reduction_factor=2), 16)
    assert pruner._max_resource == 16 and pruner._reduction_factor == 2
    assert pruner._min_resource == 2
