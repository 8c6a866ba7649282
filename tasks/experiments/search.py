"""Optuna hyper-parameter search over a use case's training function, shared by many workers.

A study lives in an RDB storage (SQLite file by default, ``$EEFLOW_OPTUNA_STORAGE`` e.g. Postgres
when set), so several processes (Airflow mapped tasks, Dask workers, a resumed CLI run) work on
one study:

* the budget ``n_trials`` counts trials that end COMPLETE or PRUNED; a worker stops when the study
  has that many, and a trial asked beyond the budget by a racing worker is closed at once as a
  ``surplus`` FAIL (it trains nothing and is never counted);
* every trial sends a heartbeat; a RUNNING trial whose worker died (killed, OOM, node lost) is
  marked FAILED after ``grace_period_s`` and re-queued with the same parameters
  (:class:`optuna.storages.RetryHeartbeatStaleTrialCallback`), so it is counted once, by its re-run;
* grid points and ablation runs are enqueued once by :func:`prepare_study` and popped atomically
  by the workers, so no point runs twice.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from tasks.config.common import ConfigError, eeflow_home
from tasks.config.experiments import OPTUNA_STORAGE_ENV, Direction, SearchConfig
from tasks.errors import EeflowError
from tasks.experiments.spaces import (
    SearchSpaceError,
    apply_overrides,
    check_space,
    grid_points,
    suggest,
)
from tasks.experiments.trainers import (
    MetricNotLoggedError,
    TrainingAdapter,
    metric_from_result,
    result_metrics,
)

if TYPE_CHECKING:
    from tasks.config.common import DaskConfig
    from tasks.config.use_cases import ExperimentConfig

log = logging.getLogger(__name__)
# heartbeats, stale-trial re-queueing and GPSampler are marked experimental by Optuna; we rely on
# them knowingly and keep the logs readable.
warnings.filterwarnings("ignore", message=r".*(heartbeat|fail_stale_trials|Retry|GPSampler).*")

SAMPLERS = ("grid", "random", "tpe", "gp", "cmaes")
PRUNERS = ("none", "median", "successive_halving", "asha", "hyperband")
#: user attribute of a trial closed because the budget was already allocated.
SURPLUS_ATTR = "eeflow_surplus"
#: user attribute holding a trial's Hyperband bracket.
BRACKET_ATTR = "hyperband_bracket"
#: training-result keys kept as trial user attributes when the training returns them.
RESULT_ATTRS = ("n_samples", "dataset_variant")
#: how often one trial's crash is re-queued before it stays FAILED.
MAX_RETRY = 2
#: errors that are the user's to fix: they stop the search instead of failing trial after trial.
ABORTING_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError, SearchSpaceError, FileNotFoundError, TypeError,
)


class SearchError(EeflowError, RuntimeError):
    """The search cannot go on (too many failed trials, inconsistent study)."""


class SurplusTrialError(EeflowError, RuntimeError):
    """A trial was asked after the budget was allocated to other trials."""


@dataclass(frozen=True)
class TrialCounts:
    """States of a study's trials as the budget sees them."""

    complete: int
    pruned: int
    running: int
    waiting: int
    failed: int
    interrupted: int
    surplus: int

    @property
    def done(self) -> int:
        """Trials that count against the budget (COMPLETE + PRUNED)."""
        return self.complete + self.pruned


def experiments_dir(cfg: ExperimentConfig) -> Path:
    """Return ``{root}/{use_case}/experiments``."""
    return cfg.resolved_root() / cfg.use_case / "experiments"


def default_study_name(cfg: ExperimentConfig, kind: str = "search") -> str:
    """Return ``search.study_name`` / ``ablation.study_name`` or ``'{use_case}-{kind}'``."""
    section = cfg.search if kind == "search" else cfg.ablation
    return section.study_name or f"{cfg.use_case}-{kind}"


def storage_url(cfg: ExperimentConfig) -> str:
    """Return the Optuna storage URL: ``$EEFLOW_OPTUNA_STORAGE`` or a SQLite file under data_root.

    The SQLite file is ``search.sqlite_path`` or ``{root}/{use_case}/experiments/optuna.db``.
    """
    from_env = os.environ.get(OPTUNA_STORAGE_ENV)
    if from_env:
        return from_env
    path = Path(cfg.search.sqlite_path) if cfg.search.sqlite_path else (
        experiments_dir(cfg) / "optuna.db")
    if not path.is_absolute():
        path = eeflow_home() / path
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (safe for logs and reports)."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def open_storage(url: str, search: SearchConfig) -> Any:
    """Open an Optuna RDB storage with heartbeats and re-queueing of crashed trials."""
    import optuna

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 120}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    try:
        storage = optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=search.heartbeat_interval_s,
            grace_period=search.grace_period_s,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=MAX_RETRY
            ),
        )
    except Exception as err:
        raise SearchError(
            f"cannot open the Optuna storage {redact_url(url)}: {err}; check "
            f"${OPTUNA_STORAGE_ENV} or search.sqlite_path"
        ) from err
    if url.startswith("sqlite"):
        _sqlite_wal(storage.engine)
    return storage


def _sqlite_wal(engine: Any) -> None:
    """Use a write-ahead log and normal sync: concurrent readers, fewer fsyncs per commit."""
    from sqlalchemy import event

    def on_connect(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()


def make_sampler(name: str, space: Mapping[str, Any], seed: int | None,
                 n_startup_trials: int = 3) -> Any:
    """Return the Optuna sampler called ``name`` (one of :data:`SAMPLERS`).

    Raises:
        ValueError: an unknown sampler name (the message lists the allowed ones).
        SearchSpaceError: ``grid`` over a parameter without a finite set of values.

    """
    import optuna

    if name == "grid":
        grid: dict[str, list[Any]] = {}
        for point in grid_points(space):
            for key, value in point.items():
                grid.setdefault(key, [])
                if value not in grid[key]:
                    grid[key].append(value)
        return optuna.samplers.GridSampler(grid, seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, n_startup_trials))
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=max(1, n_startup_trials))
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=n_startup_trials,
                                            warn_independent_sampling=False)
    raise ValueError(f"unknown sampler {name!r}; allowed: {list(SAMPLERS)}")


def make_pruner(name: str, search: SearchConfig, max_epochs: int) -> Any:
    """Return the Optuna pruner called ``name`` (one of :data:`PRUNERS`).

    ``successive_halving`` and ``asha`` are the same: Optuna's successive halving is asynchronous.
    ``max_epochs`` (validation epochs of one full trial) is Hyperband's maximum resource.

    Raises:
        ValueError: an unknown pruner name.
        ConfigError: ``asha`` / ``successive_halving`` / ``hyperband`` with ``search.min_resource``
            not below ``max_epochs`` (nothing could ever be pruned).

    """
    import optuna

    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=search.n_startup_trials,
                                           n_warmup_steps=search.n_warmup_steps)
    if name not in PRUNERS:
        raise ValueError(f"unknown pruner {name!r}; allowed: {list(PRUNERS)}")
    if search.min_resource >= max_epochs:
        raise ConfigError(
            f"search.min_resource ({search.min_resource}) must be below the epochs of one trial "
            f"({max_epochs}): the {name} pruner first compares trials after min_resource + 1 "
            "epochs, so it would never prune; lower search.min_resource, train longer or use "
            "search.pruner: none"
        )
    if name in ("successive_halving", "asha"):
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=search.min_resource,
                                                      reduction_factor=search.reduction_factor)
    # steps are 0-based validation epochs, so max_resource = epochs (Optuna's 'auto' rule:
    # last step + 1); brackets = floor(log_rf(max_resource / min_resource)) + 1.
    return optuna.pruners.HyperbandPruner(min_resource=search.min_resource,
                                          max_resource=max_epochs,
                                          reduction_factor=search.reduction_factor)


def hyperband_bracket(study: Any, trial: Any) -> int | None:
    """Return the Hyperband bracket (``s``, 0 = most aggressive early stopping) of ``trial``.

    Optuna assigns brackets by a hash of the study name and trial number; the bracket decides at
    which epoch a trial is first compared (``min_resource * reduction_factor ** s``). Returns None
    when the study's pruner is not Hyperband or its brackets cannot be computed yet.
    """
    import optuna

    pruner = getattr(study, "pruner", None)
    if not isinstance(pruner, optuna.pruners.HyperbandPruner):
        return None
    try:  # Optuna keeps the bracket computation private; fail soft if it changes
        if not pruner._pruners:
            pruner._try_initialization(study)
        if not pruner._pruners:
            return None
        return int(pruner._get_bracket_id(study, trial))
    except (AttributeError, TypeError, AssertionError):  # pragma: no cover - Optuna API change
        return None


def resolve_direction(direction: Direction | None, metric: str) -> Direction:
    """Return ``direction`` or, when unset, ``minimize`` for a loss metric and else ``maximize``."""
    if direction:
        return direction
    return "minimize" if "loss" in metric.lower() else "maximize"


def trial_counts(study: Any) -> TrialCounts:
    """Count a study's trials by state, telling crashed-and-requeued and surplus FAILs apart."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried: set[int] = set()
    for t in trials:
        retried.update(t.system_attrs.get("retry_history", []))
    counts = dict.fromkeys(("complete", "pruned", "running", "waiting", "failed",
                            "interrupted", "surplus"), 0)
    for t in trials:
        if t.state == TrialState.COMPLETE:
            counts["complete"] += 1
        elif t.state == TrialState.PRUNED:
            counts["pruned"] += 1
        elif t.state == TrialState.RUNNING:
            counts["running"] += 1
        elif t.state == TrialState.WAITING:
            counts["waiting"] += 1
        elif t.user_attrs.get(SURPLUS_ATTR):
            counts["surplus"] += 1
        elif t.number in retried:
            counts["interrupted"] += 1
        else:
            counts["failed"] += 1
    return TrialCounts(**counts)


def _preallocated(frozen: Any) -> bool:
    """Tell enqueued grid points, ablation runs and re-queued crashes (already budgeted)."""
    return "fixed_params" in frozen.system_attrs or "failed_trial" in frozen.system_attrs


def _claim_budget(trial: Any, n_trials: int) -> None:
    """Close ``trial`` as surplus when ``n_trials`` earlier trials already hold the budget."""
    from optuna.trial import TrialState

    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    trials = trial.study.get_trials(deepcopy=False)
    me = next(t for t in trials if t.number == trial.number)
    if _preallocated(me):
        return
    before = sum(1 for t in trials if t.number < trial.number and t.state in live
                 and not t.user_attrs.get(SURPLUS_ATTR))
    if before >= n_trials:
        trial.set_user_attr(SURPLUS_ATTR, True)
        raise SurplusTrialError(f"trial {trial.number}: the budget of {n_trials} is allocated")


def force_requeue_running(study: Any) -> list[int]:
    """Mark every RUNNING trial FAILED and re-queue it with the same parameters.

    Use only when no other worker is alive (e.g. resuming a single killed CLI run without waiting
    for the heartbeat grace period). Returns the numbers of the re-queued trials.
    """
    import copy

    import optuna
    from optuna.trial import TrialState

    storage = study._storage
    requeued = []
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        try:
            if storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                retry(study, copy.deepcopy(storage.get_trial(t._trial_id)))
                requeued.append(t.number)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    if requeued:
        log.warning("re-queued interrupted trials %s of study %s", requeued, study.study_name)
    return requeued


def drive_study(
    study: Any,
    objective: Callable[[Any], float],
    n_trials: int,
    *,
    max_failed_trials: int,
    poll_s: float,
) -> list[int]:
    """Run trials of ``study`` in this process until it holds ``n_trials`` COMPLETE/PRUNED trials.

    Returns the numbers of the trials this worker ran. While the remaining budget is held by
    RUNNING trials of other workers, waits (polling every ``poll_s``): if one of them dies, its
    re-queued copy is picked up here.

    Raises:
        SearchError: more than ``max_failed_trials`` trials failed with an error.

    """
    import optuna

    ran: list[int] = []
    while True:
        optuna.storages.fail_stale_trials(study)
        counts = trial_counts(study)
        if counts.done >= n_trials:
            break
        if counts.failed > max_failed_trials:
            raise SearchError(
                f"study {study.study_name}: {counts.failed} trials failed (limit "
                f"search.max_failed_trials = {max_failed_trials}); see the trial logs"
            )
        if counts.waiting == 0 and counts.done + counts.running >= n_trials:
            time.sleep(poll_s)
            continue
        numbers: list[int] = []

        def tracked(trial: Any, numbers: list[int] = numbers) -> float:
            numbers.append(trial.number)
            return objective(trial)

        try:
            study.optimize(tracked, n_trials=1, gc_after_trial=False)
        except SurplusTrialError:
            continue
        except ABORTING_ERRORS:
            raise
        except Exception as err:  # a failing trial: recorded as FAIL, counted against the limit
            if isinstance(err, MetricNotLoggedError):
                raise
            log.warning("trial %s failed: %s", numbers[-1] if numbers else "?", err)
        ran.extend(numbers)
        done = trial_counts(study).done
        log.info("study %s: %d/%d trials done", study.study_name, min(done, n_trials), n_trials)
    return ran


def _check_study_attrs(study: Any, expected: Mapping[str, Any]) -> None:
    for key, value in expected.items():
        stored = study.user_attrs.get(key)
        if stored is not None and stored != value:
            raise SearchError(
                f"study {study.study_name!r} was created with {key} = {stored!r}, the config now "
                f"says {value!r}; choose a new study_name (search.study_name) to start afresh"
            )


def space_json(space: Mapping[str, Any]) -> str:
    """Return a canonical JSON text of a search space (stored in the study)."""
    return json.dumps({k: v.model_dump(mode="json") for k, v in space.items()}, sort_keys=True)


def load_study(cfg: ExperimentConfig, study_name: str, *, sampler: Any = None, pruner: Any = None,
               storage: Any = None) -> Any:
    """Load an existing study of ``cfg``'s storage; a clear error when it does not exist.

    ``storage`` reuses an opened storage (opening one checks the schema: ~0.5-1 s).
    """
    import optuna

    url = storage_url(cfg)
    storage = storage or open_storage(url, cfg.search)
    try:
        return optuna.load_study(study_name=study_name, storage=storage, sampler=sampler,
                                 pruner=pruner)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise SearchError(
            f"no study {study_name!r} in {redact_url(url)}; studies there: {names}. Run "
            "'eeflow experiments search' first"
        ) from None


def prepare_study(cfg: ExperimentConfig, adapter: TrainingAdapter, *, n_trials: int | None = None
                  ) -> dict[str, Any]:
    """Create (or re-open) the search study of ``cfg`` and enqueue the grid points once.

    Validates the search space and sampler first. Re-running it does not enqueue anything twice.

    Returns:
        ``study_name``, ``storage`` (password redacted), ``n_trials``, ``metric``, ``direction``,
        ``sampler``, ``pruner``, ``enqueued`` (grid points added now).

    Raises:
        SearchSpaceError: empty space, or ``grid`` over a continuous parameter.
        SearchError: the study exists with another direction, metric or space.

    """
    import optuna

    search = cfg.search
    check_space(search.space)
    metric = search.metric or adapter.default_metric
    direction = resolve_direction(search.direction, metric)
    budget = int(n_trials or search.n_trials)
    points: list[dict[str, Any]] = []
    if search.sampler == "grid":
        points = grid_points(search.space)
        random.Random(cfg.seed).shuffle(points)
        if budget > len(points):
            log.info("grid has %d points; n_trials %d lowered to it", len(points), budget)
        budget = min(budget, len(points))
    name = default_study_name(cfg, "search")
    url = storage_url(cfg)
    storage = open_storage(url, search)
    study = optuna.create_study(study_name=name, storage=storage, direction=direction,
                                load_if_exists=True)
    if study.direction.name.lower() != direction:
        raise SearchError(
            f"study {name!r} exists with direction {study.direction.name.lower()}, the config "
            f"asks {direction}; choose a new search.study_name"
        )
    expected = {"metric": metric, "space": space_json(search.space), "sampler": search.sampler}
    _check_study_attrs(study, expected)
    attrs = {**expected, "n_trials": budget, "use_case": cfg.use_case, "kind": "search",
             "dataset": adapter.dataset, "family": adapter.family(cfg), "pruner": search.pruner}
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    enqueued = 0
    if points:
        seen = {json.dumps(t.params, sort_keys=True) for t in study.get_trials(deepcopy=False)
                if t.params}
        seen |= {json.dumps(t.system_attrs.get("fixed_params"), sort_keys=True)
                 for t in study.get_trials(deepcopy=False) if "fixed_params" in t.system_attrs}
        for point in points[:budget]:
            if json.dumps(point, sort_keys=True) not in seen:
                study.enqueue_trial(point)
                enqueued += 1
    log.info("study %s in %s: %s sampler, %s pruner, %d trials, %s %s (%d grid points enqueued)",
             name, redact_url(url), search.sampler, search.pruner, budget, direction, metric,
             enqueued)
    return {"study_name": name, "storage": redact_url(url), "n_trials": budget, "metric": metric,
            "direction": direction, "sampler": search.sampler, "pruner": search.pruner,
            "enqueued": enqueued}


def trials_dir(cfg: ExperimentConfig, study_name: str) -> Path:
    """Return ``{root}/{use_case}/experiments/{study_name}/trials`` (one folder per trial)."""
    return experiments_dir(cfg) / study_name / "trials"


def make_objective(
    cfg: ExperimentConfig,
    adapter: TrainingAdapter,
    *,
    metric: str,
    n_trials: int,
    output_root: Path,
    overrides_for: Callable[[Any], Mapping[str, Any]],
) -> Callable[[Any], float]:
    """Build the Optuna objective: overrides -> config -> train with pruning -> metric.

    Args:
        cfg: the base use-case config.
        adapter: how to train one model.
        metric: validation metric returned as the objective value.
        n_trials: the study's budget (for the surplus check).
        output_root: trial ``n`` writes its model to ``output_root/{n:05d}``.
        overrides_for: ``trial -> {dotted key: value}`` (search: suggested values; ablation: the
            left-out component's overrides and the seed).

    """
    import optuna

    def objective(trial: optuna.Trial) -> float:
        _claim_budget(trial, n_trials)
        overrides = dict(overrides_for(trial))
        trial_cfg = apply_overrides(cfg, overrides, source=f"trial {trial.number}")
        callbacks: list[Any] = []
        if adapter.lightning:
            from tasks.experiments.pruning import OptunaPruningCallback

            callbacks.append(OptunaPruningCallback(trial, metric))
        out = output_root / f"{trial.number:05d}"
        bracket = hyperband_bracket(trial.study, trial)
        if bracket is not None:
            trial.set_user_attr(BRACKET_ATTR, bracket)
        started = time.perf_counter()
        try:
            result = adapter.train(trial_cfg, callbacks, out)
        except optuna.TrialPruned:
            trial.set_user_attr("epochs", callbacks[0].step if callbacks else None)
            trial.set_user_attr("train_seconds", round(time.perf_counter() - started, 4))
            raise
        trial.set_user_attr("train_seconds", round(time.perf_counter() - started, 4))
        trial.set_user_attr("epochs", callbacks[0].step if callbacks else None)
        value = metric_from_result(result, metric)
        trial.set_user_attr("metrics", result_metrics(result))
        trial.set_user_attr("model_dir", str(result.get("model_dir") or out))
        trial.set_user_attr("family", adapter.family(trial_cfg))
        for key in RESULT_ATTRS:  # training-set facts, e.g. the crop ablation's data variant
            if isinstance(result.get(key), int | float | str | dict):
                trial.set_user_attr(key, result[key])
        return value

    return objective


def run_search_worker(
    cfg: ExperimentConfig,
    adapter: TrainingAdapter,
    *,
    worker_index: int = 0,
    prepare: bool = True,
    n_trials: int | None = None,
    requeue_running: bool = False,
) -> dict[str, Any]:
    """Run trials of ``cfg``'s search study in this process until the study's budget is met.

    Args:
        cfg: the use-case config with its ``search`` section.
        adapter: how to train one model (:mod:`tasks.experiments.trainers`).
        worker_index: distinct per parallel worker (seeds the sampler differently).
        prepare: create the study / enqueue grid points first (leave False in parallel workers
            when :func:`prepare_study` ran once before).
        n_trials: budget override (only with ``prepare``).
        requeue_running: re-queue RUNNING trials at once (resume after a crash when no other
            worker is alive); otherwise they are re-queued after the heartbeat grace period.

    Returns:
        ``study_name``, ``worker_index``, ``trials_run`` (numbers), ``counts`` and the best value.

    """
    search = cfg.search
    check_space(search.space)
    if prepare:
        plan = prepare_study(cfg, adapter, n_trials=n_trials)
        name = plan["study_name"]
    else:
        name = default_study_name(cfg, "search")
    from tasks.experiments.ablation_crops import dataset_variant_adapter

    adapter = dataset_variant_adapter(cfg, adapter)  # labels.* / samples.* parameters
    storage = open_storage(storage_url(cfg), search)
    probe = load_study(cfg, name, storage=storage)
    budget = int(probe.user_attrs.get("n_trials") or search.n_trials)
    metric = str(probe.user_attrs.get("metric") or search.metric or adapter.default_metric)
    seed = cfg.seed + 7919 * worker_index + len(probe.get_trials(deepcopy=False))
    sampler = make_sampler(search.sampler, search.space, seed, search.n_startup_trials)
    pruner = make_pruner(search.pruner, search, adapter.max_epochs(cfg))
    study = load_study(cfg, name, sampler=sampler, pruner=pruner, storage=storage)
    if requeue_running:
        force_requeue_running(study)
    space = search.space
    objective = make_objective(
        cfg, adapter, metric=metric, n_trials=budget, output_root=trials_dir(cfg, name),
        overrides_for=lambda trial: suggest(trial, space),
    )
    ran = drive_study(study, objective, budget, max_failed_trials=search.max_failed_trials,
                      poll_s=search.heartbeat_interval_s)
    counts = trial_counts(study)
    best = best_trial_or_none(study)
    return {"study_name": name, "worker_index": worker_index, "trials_run": ran,
            "counts": counts.__dict__,
            "best_value": best.value if best else None,
            "best_params": best.params if best else None}


def best_trial_or_none(study: Any) -> Any:
    """Return the best COMPLETE trial of ``study`` or None when none completed."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def run_parallel_workers(
    worker: Callable[..., dict[str, Any]], n_workers: int, dask_cfg: DaskConfig,
    **worker_kwargs: Any,
) -> list[dict[str, Any]]:
    """Run ``worker(worker_index=i, **worker_kwargs)`` for ``i < n_workers`` on Dask workers.

    The study must be prepared before (``prepare=False`` is passed to each worker).
    """
    from tasks.dask_cluster import dask_client

    if n_workers <= 1:
        return [worker(worker_index=0, prepare=False, **worker_kwargs)]
    with dask_client(dask_cfg) as client:
        if client is None:
            return [worker(worker_index=i, prepare=False, **worker_kwargs)
                    for i in range(n_workers)]
        futures = [client.submit(worker, worker_index=i, prepare=False, pure=False,
                                 **worker_kwargs) for i in range(n_workers)]
        return list(client.gather(futures))


def summarise_trials(trials: Sequence[Any]) -> list[dict[str, Any]]:
    """Return one small row per trial (number, state, value, params, epochs, seconds)."""
    rows = []
    for t in trials:
        duration = (t.datetime_complete - t.datetime_start).total_seconds() if (
            t.datetime_complete and t.datetime_start) else None
        rows.append({"number": t.number, "state": t.state.name, "value": t.value,
                     "params": t.params, "epochs": t.user_attrs.get("epochs"),
                     "train_seconds": t.user_attrs.get("train_seconds"),
                     "trial_seconds": duration,
                     "bracket": t.user_attrs.get(BRACKET_ATTR),
                     "surplus": bool(t.user_attrs.get(SURPLUS_ATTR))})
    return rows
