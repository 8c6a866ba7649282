import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tasks.experiments.pruning import MetricNotLoggedError
from tasks.experiments.search import (
    SAMPLERS,
    SearchError,
    load_study,
    prepare_study,
    redact_url,
    run_search_worker,
    storage_url,
    trial_counts,
)
from tests.tasks.experiments.experiments_toy import fast_adapter, toy_adapter, toy_config

TOY = Path(__file__).resolve().parent / "experiments_toy.py"
REPO = Path(__file__).resolve().parents[3]


def test_search_finishes_budget_and_records_trials(finished_search):
    cfg, result = finished_search
    assert result["counts"]["complete"] + result["counts"]["pruned"] == 6
    assert result["trials_run"] == list(range(6))
    study = load_study(cfg, "toy-search")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert all(Path(t.user_attrs["model_dir"], "model.ckpt").is_file() for t in complete)
    assert all(len(t.intermediate_values) == t.user_attrs["epochs"] for t in study.trials)
    assert 0.5 < study.best_value <= 1.0


def test_rerun_after_completion_adds_no_trial(finished_search):
    cfg, _ = finished_search
    again = run_search_worker(cfg, toy_adapter(cfg))
    assert again["trials_run"] == []
    assert len(load_study(cfg, "toy-search").trials) == 6


@pytest.mark.parametrize("sampler", [s for s in SAMPLERS if s not in ("grid", "tpe")])
def test_every_sampler_runs(tmp_path, sampler):  # tpe: finished_search, grid: below
    cfg = toy_config(tmp_path, sampler=sampler, n_trials=2, n_startup_trials=1,
                     space={"train.learning_rate": {"type": "float", "low": 0.01, "high": 1.0,
                                                    "log": True},
                            "train.hidden": {"type": "int", "low": 2, "high": 16}})
    cfg.train.epochs = 1
    result = run_search_worker(cfg, toy_adapter(cfg))
    assert result["counts"]["complete"] == 2


def test_pruner_kinds():
    from tasks.config.experiments import SearchConfig
    from tasks.experiments.search import make_pruner

    search = SearchConfig(min_resource=1, reduction_factor=3)
    assert isinstance(make_pruner("hyperband", search, 9), optuna.pruners.HyperbandPruner)
    for name in ("asha", "successive_halving"):
        assert isinstance(make_pruner(name, search, 9), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(make_pruner("none", search, 9), optuna.pruners.NopPruner)


def test_grid_runs_each_point_once_and_caps_budget(tmp_path):
    cfg = toy_config(tmp_path, sampler="grid", n_trials=50,
                     space={"train.hidden": {"type": "categorical", "choices": [2, 8]},
                            "train.model": {"type": "categorical", "choices": ["mlp", "linear"]}})
    cfg.train.epochs = 1
    plan = prepare_study(cfg, toy_adapter(cfg))
    assert plan["n_trials"] == 4 and plan["enqueued"] == 4
    assert prepare_study(cfg, toy_adapter(cfg))["enqueued"] == 0  # idempotent
    run_search_worker(cfg, toy_adapter(cfg), prepare=False)
    study = load_study(cfg, "toy-search")
    params = [json.dumps(t.params, sort_keys=True) for t in study.trials]
    assert len(study.trials) == 4 and len(set(params)) == 4


@pytest.mark.parametrize("pruner", ["median", "asha"])
def test_pruners_stop_bad_trials_early(tmp_path, pruner):
    cfg = toy_config(tmp_path, pruner=pruner, n_trials=6, n_startup_trials=2, sampler="grid",
                     min_resource=1, reduction_factor=2,
                     space={"train.learning_rate": {"type": "categorical",
                                                    "choices": [0.5, 0.6, 1e-4, 2e-4, 3e-4, 4e-4]}})
    cfg.train.epochs = 4
    result = run_search_worker(cfg, toy_adapter(cfg))
    assert result["counts"]["complete"] + result["counts"]["pruned"] == 6
    study = load_study(cfg, "toy-search")
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert pruned, "no trial was pruned"
    assert all(t.params["train.learning_rate"] < 0.01 for t in pruned)
    assert all(t.user_attrs["epochs"] < 4 for t in pruned)


def test_metric_the_model_does_not_log_is_a_clear_error(tmp_path):
    cfg = toy_config(tmp_path, metric="val_f1", pruner="median")
    with pytest.raises(MetricNotLoggedError, match=r"'val_f1' is not logged.*'val_acc'"):
        run_search_worker(cfg, toy_adapter(cfg))
    assert trial_counts(load_study(cfg, "toy-search")).complete == 0


def test_changed_direction_on_existing_study_is_refused(finished_search):
    cfg, _ = finished_search
    other = cfg.model_copy(deep=True)
    other.search.direction = "minimize"
    with pytest.raises(SearchError, match="exists with direction maximize"):
        prepare_study(other, toy_adapter(other))


def test_too_many_failed_trials_stop_the_search(tmp_path):
    cfg = toy_config(tmp_path, max_failed_trials=1)
    adapter = toy_adapter(cfg)

    def broken(trial_cfg, callbacks, out):
        raise RuntimeError("out of memory")

    from dataclasses import replace

    with pytest.raises(SearchError, match="2 trials failed"):
        run_search_worker(cfg, replace(adapter, train=broken))


def test_storage_from_environment_and_redaction(tmp_path, monkeypatch):
    cfg = toy_config(tmp_path)
    assert storage_url(cfg) == f"sqlite:///{tmp_path}/toy/experiments/optuna.db"
    monkeypatch.setenv("EEFLOW_OPTUNA_STORAGE", "postgresql+psycopg://eeflow:s3cret@db/optuna")
    assert storage_url(cfg).endswith("@db/optuna")
    assert redact_url(storage_url(cfg)) == "postgresql+psycopg://eeflow:***@db/optuna"


def _spawn(cfg, **extra):
    spec = {"config": cfg.model_dump(mode="json"), **extra}
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(TOY), json.dumps(spec)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_running(cfg, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            study = optuna.load_study(study_name="toy-search", storage=storage_url(cfg))
            # a running trial whose parameters are stored: a kill before the sampler's suggestion
            # reached the storage would leave a trial with no parameters to requeue
            if any(t.params for t in study.get_trials(states=(TrialState.RUNNING,))):
                return study
        except KeyError:
            pass
        time.sleep(0.3)
    raise AssertionError("the worker never started a trial")


def test_killed_study_resumes_and_requeues_the_running_trial(tmp_path):
    cfg = toy_config(tmp_path, n_trials=3, heartbeat_interval_s=1, grace_period_s=2)
    cfg.train.sleep_per_epoch_s = 5.0
    worker = _spawn(cfg, fast=True)
    try:
        study = _wait_running(cfg)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    (killed,) = study.get_trials(states=(TrialState.RUNNING,))
    time.sleep(2.5)  # the heartbeat grace period passes
    cfg.train.sleep_per_epoch_s = 0.0
    result = run_search_worker(cfg, fast_adapter(cfg))
    study = load_study(cfg, "toy-search")
    by_number = {t.number: t for t in study.trials}
    assert by_number[killed.number].state == TrialState.FAIL
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == killed.params
    counts = trial_counts(study)
    assert counts.complete == 3 and counts.interrupted == 1 and counts.failed == 0
    assert result["counts"]["complete"] == 3


def test_two_workers_in_threads_share_one_study_without_duplicates(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    cfg = toy_config(tmp_path, n_trials=6, sampler="random")
    cfg.train.sleep_per_epoch_s = 0.02
    prepare_study(cfg, fast_adapter(cfg))
    with ThreadPoolExecutor(2) as pool:
        outputs = list(pool.map(lambda i: run_search_worker(
            cfg, fast_adapter(cfg), worker_index=i, prepare=False), range(2)))
    ran = [n for o in outputs for n in o["trials_run"]]
    study = load_study(cfg, "toy-search")
    counted = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(counted) == 6
    assert len(ran) == len(set(ran)) and all(o["trials_run"] for o in outputs)
    assert len({t.params["train.learning_rate"] for t in counted}) == 6


@pytest.mark.slow
def test_two_worker_processes_share_one_study_without_duplicates(tmp_path):
    cfg = toy_config(tmp_path, n_trials=6, sampler="random")
    cfg.train.sleep_per_epoch_s = 0.05
    prepare_study(cfg, toy_adapter(cfg))
    workers = [_spawn(cfg, index=i, prepare=False) for i in range(2)]
    outputs = []
    for worker in workers:
        out, _ = worker.communicate(timeout=240)
        assert worker.returncode == 0, out[-3000:]
        outputs.append(json.loads(out.rsplit("RESULT ", 1)[1]))
    ran = [n for o in outputs for n in o["trials_run"]]
    study = load_study(cfg, "toy-search")
    counted = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(counted) == 6
    assert len(ran) == len(set(ran)), "a trial ran in both workers"
    assert all(o["trials_run"] for o in outputs), "one worker did nothing"
    values = [t.params["train.learning_rate"] for t in counted]
    assert len(set(values)) == 6, "two workers sampled the same parameters"
    assert {t.number for t in counted} <= set(ran)
