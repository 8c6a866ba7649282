"""Leave-one-component-out (LOCO) ablation on the same machinery as the search.

The ``ablation`` section declares components, each with the config overrides that remove it
(``train.input_bands: [HH, HV]`` drops the incidence-angle channel, ``train.augment: false`` ...).
The full model and one run per left-out component are trained with the same seeds and budget (the
config's epochs). The runs are enqueued once into an Optuna study (parameters ``component`` and
``seed``), so they persist, resume after a crash and spread over parallel workers like search
trials. The result is a table (CSV + markdown) and a bar plot of the metric change per component.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.config.common import config_hash
from tasks.errors import EeflowError
from tasks.experiments.search import (
    default_study_name,
    drive_study,
    experiments_dir,
    load_study,
    make_objective,
    open_storage,
    resolve_direction,
    storage_url,
    trial_counts,
    trials_dir,
)
from tasks.experiments.spaces import apply_overrides
from tasks.experiments.trainers import TrainingAdapter
from tasks.storage import atomic_dir, write_manifest

if TYPE_CHECKING:
    from tasks.config.use_cases import ExperimentConfig

log = logging.getLogger(__name__)

FULL = "full"


class AblationError(EeflowError, ValueError):
    """The ablation section is unusable (no components) or the study has no results yet."""


def ablation_runs(cfg: ExperimentConfig) -> list[dict[str, Any]]:
    """Return the runs of the ablation: ``{"component", "seed"}`` for the full model and each part.

    Raises:
        AblationError: no component is declared.

    """
    ablation = cfg.ablation
    if not ablation.components:
        raise AblationError(
            "ablation.components is empty: declare at least one component with the overrides "
            "that leave it out, e.g. 'incidence_angle: {overrides: {train.input_bands: [HH, HV]}}'"
        )
    names = [FULL, *ablation.components]
    return [{"component": name, "seed": seed} for name in names for seed in ablation.seeds]


def component_overrides(cfg: ExperimentConfig, component: str, seed: int) -> dict[str, Any]:
    """Return the dotted overrides of one ablation run (the component's changes and the seed)."""
    overrides: dict[str, Any] = {}
    if component != FULL:
        overrides.update(cfg.ablation.components[component].overrides)
    overrides["seed"] = int(seed)
    return overrides


def prepare_ablation(cfg: ExperimentConfig, adapter: TrainingAdapter) -> dict[str, Any]:
    """Create (or re-open) the ablation study and enqueue every run once.

    Every component's overrides are validated against the config first, so a misspelt key fails
    here, naming the component, before any training.
    """
    import optuna

    runs = ablation_runs(cfg)
    for name in cfg.ablation.components:
        apply_overrides(cfg, component_overrides(cfg, name, cfg.ablation.seeds[0]),
                        source=f"ablation.components.{name}.overrides")
    metric = cfg.ablation.metric or adapter.default_metric
    direction = resolve_direction(cfg.ablation.direction, metric)
    name = default_study_name(cfg, "ablation")
    url = storage_url(cfg)
    study = optuna.create_study(study_name=name, storage=open_storage(url, cfg.search),
                                direction=direction, load_if_exists=True)
    for key, value in {"kind": "ablation", "metric": metric, "n_trials": len(runs),
                       "use_case": cfg.use_case, "dataset": adapter.dataset,
                       "family": adapter.family(cfg), "config_hash": config_hash(cfg)}.items():
        study.set_user_attr(key, value)
    present = set()
    for t in study.get_trials(deepcopy=False):
        params = t.params or t.system_attrs.get("fixed_params") or {}
        if params and t.state.name != "FAIL":
            present.add((params.get("component"), params.get("seed")))
    enqueued = 0
    for run in runs:
        if (run["component"], run["seed"]) not in present:
            study.enqueue_trial(run)
            enqueued += 1
    log.info("ablation study %s: %d runs (%d enqueued now), metric %s (%s)", name, len(runs),
             enqueued, metric, direction)
    return {"study_name": name, "n_trials": len(runs), "metric": metric, "direction": direction,
            "enqueued": enqueued, "components": list(cfg.ablation.components)}


def run_ablation_worker(
    cfg: ExperimentConfig,
    adapter: TrainingAdapter,
    *,
    worker_index: int = 0,
    prepare: bool = True,
    requeue_running: bool = False,
) -> dict[str, Any]:
    """Train ablation runs in this process until every run of the study is done.

    Args:
        cfg: the use-case config with its ``ablation`` section.
        adapter: how to train one model.
        worker_index: distinct per parallel worker (only for logs).
        prepare: create the study and enqueue runs first.
        requeue_running: re-queue RUNNING runs at once (no other worker alive).

    """
    import optuna

    from tasks.experiments.ablation_crops import dataset_variant_adapter
    from tasks.experiments.search import force_requeue_running

    # a component that changes labels.* / samples.* (reliable_labels) trains on its own data
    adapter = dataset_variant_adapter(cfg, adapter)
    if prepare:
        prepare_ablation(cfg, adapter)
    name = default_study_name(cfg, "ablation")
    study = load_study(cfg, name, sampler=optuna.samplers.RandomSampler(seed=cfg.seed),
                       pruner=optuna.pruners.NopPruner())
    if requeue_running:
        force_requeue_running(study)
    budget = int(study.user_attrs["n_trials"])
    metric = str(study.user_attrs["metric"])
    components = [FULL, *cfg.ablation.components]
    seeds = list(cfg.ablation.seeds)

    def overrides_for(trial: Any) -> dict[str, Any]:
        component = trial.suggest_categorical("component", components)
        seed = trial.suggest_categorical("seed", seeds)
        return component_overrides(cfg, str(component), int(seed))

    objective = make_objective(cfg, adapter, metric=metric, n_trials=budget,
                               output_root=trials_dir(cfg, name), overrides_for=overrides_for)
    ran = drive_study(study, objective, budget, max_failed_trials=cfg.search.max_failed_trials,
                      poll_s=cfg.search.heartbeat_interval_s)
    return {"study_name": name, "worker_index": worker_index, "trials_run": ran,
            "counts": trial_counts(study).__dict__}


def ablation_table(cfg: ExperimentConfig, study: Any) -> list[dict[str, Any]]:
    """Return one row per component: mean/std of the metric over seeds and the change vs full.

    ``delta`` is ``component - full`` in the metric's units; ``harm`` is the loss of quality from
    leaving the component out (positive = the component helps), whatever the direction.
    ``train_samples`` is the training-set size the runs reported (None when the training does
    not report it; it differs from the full model's for data components like
    ``reliable_labels``).

    Raises:
        AblationError: the full model has no completed run.

    """
    from optuna.trial import TrialState

    metric = study.user_attrs.get("metric", "metric")
    sign = 1.0 if study.direction.name.lower() == "maximize" else -1.0
    values: dict[str, list[float]] = {}
    train_samples: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        values.setdefault(str(t.params["component"]), []).append(float(t.value))
        n_samples = t.user_attrs.get("n_samples")
        if isinstance(n_samples, dict) and "train" in n_samples:
            train_samples[str(t.params["component"])] = int(n_samples["train"])
    if FULL not in values:
        raise AblationError(
            f"ablation study {study.study_name!r} has no completed run of the full model; run "
            "'eeflow experiments ablation' first"
        )
    full_mean = statistics.fmean(values[FULL])
    rows = []
    for name in [FULL, *cfg.ablation.components]:
        runs = values.get(name, [])
        mean = statistics.fmean(runs) if runs else math.nan
        std = statistics.stdev(runs) if len(runs) > 1 else 0.0
        delta = mean - full_mean
        component = cfg.ablation.components.get(name)
        rows.append({
            "component": name,
            "description": component.description if component else "every component",
            "overrides": json.dumps(component.overrides if component else {}, sort_keys=True),
            "runs": len(runs),
            "train_samples": train_samples.get(name),
            f"{metric}_mean": round(mean, 6),
            f"{metric}_std": round(std, 6),
            "delta": round(delta, 6),
            "delta_percent": round(100 * delta / full_mean, 3) if full_mean else math.nan,
            "harm": round(-sign * delta, 6),
        })
    return rows


def write_ablation_report(
    cfg: ExperimentConfig, out_dir: str | Path | None = None
) -> dict[str, Any]:
    """Write ``ablation.csv``, ``ablation.md`` and ``ablation.png`` of the ablation study.

    Output: ``{root}/{use_case}/experiments/{study}/report`` (atomic) with ``manifest.json``.
    """
    name = default_study_name(cfg, "ablation")
    study = load_study(cfg, name)
    rows = ablation_table(cfg, study)
    metric = study.user_attrs.get("metric", "metric")
    final = Path(out_dir) if out_dir else experiments_dir(cfg) / name / "report"
    with atomic_dir(final) as out:
        with (out / "ablation.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        (out / "ablation.md").write_text(_markdown(rows, metric, study))
        _bar_plot(rows, metric, study, out / "ablation.png")
        write_manifest(out, stage="ablation_report", inputs={"study": name},
                       config_hash=config_hash(cfg),
                       counts={"components": len(rows) - 1, "runs": sum(r["runs"] for r in rows)})
    log.info("ablation report of %s written to %s", name, final)
    return {"study_name": name, "report_dir": str(final), "table": str(final / "ablation.csv"),
            "markdown": str(final / "ablation.md"), "plot": str(final / "ablation.png"),
            "rows": len(rows)}


def _markdown(rows: list[dict[str, Any]], metric: str, study: Any) -> str:
    lines = [f"# LOCO ablation `{study.study_name}`", "",
             f"Metric: `{metric}` ({study.direction.name.lower()}); mean over seeds; "
             "`delta` = without the component minus the full model.", "",
             f"| component | description | runs | train samples | {metric} mean | std | delta "
             "| delta % |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        samples = "" if r["train_samples"] is None else r["train_samples"]
        lines.append(f"| {r['component']} | {r['description']} | {r['runs']} | {samples} | "
                     f"{r[f'{metric}_mean']:.4f} | {r[f'{metric}_std']:.4f} | "
                     f"{r['delta']:+.4f} | {r['delta_percent']:+.2f} |")
    return "\n".join(lines) + "\n"


def _bar_plot(rows: list[dict[str, Any]], metric: str, study: Any, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [r for r in rows if r["component"] != FULL]
    names = [r["component"] for r in parts]
    deltas = [r["delta"] for r in parts]
    errors = [r[f"{metric}_std"] for r in parts]
    colours = ["tab:red" if r["harm"] > 0 else "tab:green" for r in parts]
    from matplotlib.patches import Patch

    with plt.style.context("default"):
        fig, ax = plt.subplots(figsize=(max(6.5, 1.3 * len(parts) + 3), 4.5))
    ax.bar(names, deltas, yerr=errors, color=colours, capsize=4)
    ax.axhline(0, color="black", lw=0.8)
    full = rows[0][f"{metric}_mean"]
    ax.set(ylabel=f"change of {metric}", xlabel="component left out")
    ax.set_title(f"LOCO ablation {study.study_name}: full model {metric} = {full:.4f}\n"
                 "bars: mean change over seeds, whiskers: std", fontsize=10)
    ax.legend(handles=[Patch(color="tab:red", label="component helps"),
                       Patch(color="tab:green", label="component hurts")], fontsize=8)
    ax.tick_params(axis="x", rotation=20)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
