"""Stage functions of the ``experiments`` pipeline, called by the DAG and the CLI.

prepare (study + enqueued runs) -> workers (trials, in parallel) -> report -> register the best
model. Each returns a small JSON-able dict (XCom-safe); no secret (the storage password) is ever
returned.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from tasks.experiments.trainers import TrainingAdapter, adapter_for

log = logging.getLogger(__name__)

Mode = Literal["search", "ablation"]
MODES = ("search", "ablation")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"experiment mode {mode!r}; allowed: {list(MODES)}")


def prepare_experiment(cfg: Any, run_date: Any = None, *, mode: str = "search",
                       trials: int | None = None, workers: int = 1,
                       dataset_path: str | None = None,
                       adapter: TrainingAdapter | None = None) -> dict[str, Any]:
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
    return {**plan, "mode": mode, "use_case": cfg.use_case, "dataset": adapter.dataset,
            "workers": list(range(workers))}


def run_experiment_worker(cfg: Any, run_date: Any = None, *, mode: str = "search",
                          worker_index: int = 0, dataset_path: str | None = None,
                          adapter: TrainingAdapter | None = None) -> dict[str, Any]:
    """Run trials of the prepared study until its budget is met (one parallel worker)."""
    from tasks.experiments.ablation import run_ablation_worker
    from tasks.experiments.search import run_search_worker

    _check_mode(mode)
    adapter = adapter or adapter_for(cfg, run_date, dataset_path)
    if mode == "search":
        return run_search_worker(cfg, adapter, worker_index=worker_index, prepare=False)
    return run_ablation_worker(cfg, adapter, worker_index=worker_index, prepare=False)


def report_experiment(cfg: Any, *, mode: str = "search") -> dict[str, Any]:
    """Write the study report (search) or the ablation table and plot."""
    from tasks.experiments.ablation import write_ablation_report
    from tasks.experiments.report import write_study_report

    _check_mode(mode)
    if mode == "search":
        result = write_study_report(cfg)
        return {k: result[k] for k in ("study_name", "report_dir", "best", "counts")}
    return write_ablation_report(cfg)


def register_best(cfg: Any, *, mode: str = "search") -> dict[str, Any]:
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
    return {**record.as_dict(), "promoted": promoted, "alias": cfg.registry.alias,
            "study_name": name, "trial": best.number}


def run_experiment(cfg: Any, run_date: Any = None, *, mode: str = "search",
                   trials: int | None = None, workers: int = 1, register: bool = True,
                   dataset_path: str | None = None) -> dict[str, Any]:
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
    return {"plan": plan, "workers": results, "report": report, "registered": registered}


def _worker_entry(*, worker_index: int, prepare: bool, cfg: Any, run_date: Any, mode: str,
                  dataset_path: str | None) -> dict[str, Any]:
    del prepare  # the plan was prepared once before the workers started
    return run_experiment_worker(cfg, run_date, mode=mode, worker_index=worker_index,
                                 dataset_path=dataset_path)
