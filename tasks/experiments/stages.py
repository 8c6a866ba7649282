"""Stage functions of the ``experiments`` pipeline, called by the DAG and the CLI.

prepare (study + enqueued runs) -> workers (trials, in parallel) -> report -> register the best
model. Each returns a :class:`~tasks.stage_result.StageResult` (XCom-safe); no secret (the storage
password) is ever returned. The ``*_stage`` functions are the ``experiments`` DAG's uniform
``stage(cfg, run_date, **params)`` calls: they check that the config is the ``use_case`` param's.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any, Literal, TypeAlias

from tasks.config.food_security import FoodSecurityConfig
from tasks.config.polar import PolarConfig
from tasks.experiments.trainers import TrainingAdapter, adapter_for
from tasks.stage_result import StagePlan, StageResult

log = logging.getLogger(__name__)

Mode = Literal["search", "ablation"]
MODES = ("search", "ablation")
#: The configs an experiment runs on (the use cases with a trainer).
ExperimentConfig: TypeAlias = PolarConfig | FoodSecurityConfig
#: A day of the run (the crop adapter picks the agronomic year of it); None: the polar trainer.
DateLike: TypeAlias = dt.date | str


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"experiment mode {mode!r}; allowed: {list(MODES)}")


def prepare_experiment(cfg: ExperimentConfig, run_date: DateLike | None = None,
                       *, mode: str = "search",
                       trials: int | None = None, workers: int = 1,
                       dataset_path: str | None = None,
                       adapter: TrainingAdapter | None = None) -> StageResult:
    """Create the study, enqueue grid points / ablation runs; return the plan for the workers."""
    from tasks.experiments.ablation import prepare_ablation
    from tasks.experiments.search import prepare_study

    _check_mode(mode)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    adapter = adapter or adapter_for(cfg, run_date, dataset_path)
    if mode == "search":
        plan = prepare_study(cfg, adapter, n_trials=trials or None)
    else:
        plan = prepare_ablation(cfg, adapter)
    return StageResult(summary={**plan, "mode": mode, "use_case": cfg.use_case,
                                "dataset": adapter.dataset, "workers": list(range(workers))})


def run_experiment_worker(cfg: ExperimentConfig, run_date: DateLike | None = None,
                          *, mode: str = "search",
                          worker_index: int = 0, dataset_path: str | None = None,
                          adapter: TrainingAdapter | None = None) -> StageResult:
    """Run trials of the prepared study until its budget is met (one parallel worker)."""
    from tasks.experiments.ablation import run_ablation_worker
    from tasks.experiments.search import run_search_worker

    _check_mode(mode)
    adapter = adapter or adapter_for(cfg, run_date, dataset_path)
    if mode == "search":
        return StageResult(summary=run_search_worker(cfg, adapter, worker_index=worker_index,
                                                     prepare=False))
    return StageResult(summary=run_ablation_worker(cfg, adapter, worker_index=worker_index,
                                                   prepare=False))


def report_experiment(cfg: ExperimentConfig, *, mode: str = "search") -> StageResult:
    """Write the study report (search) or the ablation table and plot."""
    from tasks.experiments.ablation import write_ablation_report
    from tasks.experiments.report import write_study_report

    _check_mode(mode)
    if mode == "search":
        result = write_study_report(cfg)
        return StageResult(outputs={"report_dir": result["report_dir"]},
                           summary={k: result[k] for k in ("study_name", "best", "counts")})
    return StageResult.from_dict(write_ablation_report(cfg))


def register_best(cfg: ExperimentConfig, *, mode: str = "search") -> StageResult:
    """Register the best trial's model of the study; give it the alias when it is the best.

    Idempotent: a trial already registered (tags ``study`` + ``trial``) is not registered again.
    The alias (``registry.alias``) moves to the new version only when ``registry.promote_best``
    and its metric beats the version holding the alias (or no version holds it).
    """
    from tasks.experiments.search import best_trial_or_none, default_study_name, load_study
    from tasks.model_registry import ModelRegistry, NoModelError

    _check_mode(mode)
    name = default_study_name(cfg, mode)
    study = load_study(cfg, name)
    best = best_trial_or_none(study)
    if best is None or not best.user_attrs.get("model_dir"):
        raise NoModelError(f"study {name!r} has no completed trial with a model to register")
    metric = str(study.user_attrs["metric"])
    direction = study.direction.name.lower()
    registry = ModelRegistry.from_config(cfg)
    existing = [r for r in registry.versions(cfg.use_case)
                if r.tags.get("study") == name and r.tags.get("trial") == str(best.number)]
    if existing:
        record = existing[0]
    else:
        record = registry.register(
            cfg.use_case, Path(best.user_attrs["model_dir"]),
            metrics={metric: float(best.value)}, family=best.user_attrs.get("family"),
            tags={"study": name, "trial": str(best.number), "params": best.params},
        )
    promoted = False
    if cfg.registry.promote_best:
        try:
            current = registry.by_alias(cfg.use_case, cfg.registry.alias)
            old = current.metrics.get(metric)
            better = old is None or (record.metrics[metric] > old if direction == "maximize"
                                     else record.metrics[metric] < old)
        except NoModelError:
            better = True
        if better:
            record = registry.set_alias(cfg.use_case, cfg.registry.alias, record.version)
            promoted = True
    return StageResult(summary={**record.as_dict(), "promoted": promoted,
                                "alias": cfg.registry.alias, "study_name": name,
                                "trial": best.number})


def run_experiment(cfg: ExperimentConfig, run_date: DateLike | None = None,
                   *, mode: str = "search",
                   trials: int | None = None, workers: int = 1, register: bool = True,
                   dataset_path: str | None = None) -> StageResult:
    """Run a whole experiment in-process: prepare -> workers (Dask) -> report -> register."""
    from tasks.experiments.search import run_parallel_workers

    plan = prepare_experiment(cfg, run_date, mode=mode, trials=trials, workers=workers,
                              dataset_path=dataset_path)
    results = run_parallel_workers(
        _worker_entry, workers, cfg.dask, cfg=cfg, run_date=run_date, mode=mode,
        dataset_path=dataset_path,
    )
    report = report_experiment(cfg, mode=mode)
    registered = register_best(cfg, mode=mode) if (register and mode == "search") else None
    return StageResult(summary={"plan": plan.as_dict(), "workers": results,
                                "report": report.as_dict(),
                                "registered": registered.as_dict() if registered else None})


def _worker_entry(*, worker_index: int, prepare: bool, cfg: ExperimentConfig,
                  run_date: DateLike | None,
                  mode: str, dataset_path: str | None) -> dict[str, Any]:
    del prepare  # the plan was prepared once before the workers started
    return run_experiment_worker(cfg, run_date, mode=mode, worker_index=worker_index,
                                 dataset_path=dataset_path).as_dict()


def _check_use_case(cfg: ExperimentConfig, use_case: str) -> None:
    if cfg.use_case != use_case:
        raise ValueError(f"the config is for {cfg.use_case!r}, the run asks param "
                         f"use_case={use_case!r}; give a {use_case} config or leave it empty")


def prepare_stage(cfg: ExperimentConfig, run_date: dt.date, *, use_case: str,
                  mode: str = "search", trials: int | None = None, workers: int = 1,
                  dataset: str | None = None) -> StageResult:
    """DAG stage: :func:`prepare_experiment` with the run's params (0 / empty = config's)."""
    _check_use_case(cfg, use_case)
    return prepare_experiment(cfg, run_date, mode=mode, trials=trials or None, workers=workers,
                              dataset_path=dataset or None)


def worker_indices(cfg: ExperimentConfig, run_date: dt.date, *, use_case: str,
                   mode: str = "search", workers: int = 1,
                   dataset: str | None = None) -> StagePlan:
    """Plan one ``run_trials`` task per worker (its index, mode and dataset)."""
    del run_date  # each worker has the run's own date
    _check_use_case(cfg, use_case)
    return StagePlan(tuple({"use_case": use_case, "mode": mode, "worker_index": index,
                            "dataset": dataset or None} for index in range(workers)))


def run_trials_stage(cfg: ExperimentConfig, run_date: dt.date, *, use_case: str,
                     mode: str = "search", worker_index: int = 0,
                     dataset: str | None = None) -> StageResult:
    """DAG stage: one parallel worker of the prepared study (:func:`run_experiment_worker`)."""
    _check_use_case(cfg, use_case)
    return run_experiment_worker(cfg, run_date, mode=mode, worker_index=worker_index,
                                 dataset_path=dataset or None)


def report_stage(cfg: ExperimentConfig, run_date: dt.date, *, use_case: str,
                 mode: str = "search") -> StageResult:
    """DAG stage: the study report or ablation table (:func:`report_experiment`)."""
    del run_date  # the study holds every trial of the run
    _check_use_case(cfg, use_case)
    return report_experiment(cfg, mode=mode)


def register_stage(cfg: ExperimentConfig, run_date: dt.date, *, use_case: str,
                   mode: str = "search") -> StageResult:
    """DAG stage: register the search's best model (:func:`register_best`); ablations are not."""
    del run_date  # the study names the model
    _check_use_case(cfg, use_case)
    if mode != "search":
        return StageResult(summary={"registered": False,
                                    "reason": "ablation runs are not registered"})
    return register_best(cfg, mode="search")
