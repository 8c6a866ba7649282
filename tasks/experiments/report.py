"""Study report: best trial, parameter importances, optimisation history and parallel coordinates.

Written to ``{root}/{use_case}/experiments/{study}/report/`` (atomic): ``best_trial.json``,
``trials.csv``, ``importances.json``, ``report.md``, PNG plots (Optuna's matplotlib backend) and,
when plotly is installed, the same plots as interactive HTML; ``manifest.json`` lists them.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.config.common import config_hash
from tasks.errors import EeflowError
from tasks.experiments.search import (
    best_trial_or_none,
    default_study_name,
    experiments_dir,
    load_study,
    redact_url,
    storage_url,
    summarise_trials,
    trial_counts,
)
from tasks.storage import atomic_dir, atomic_write_json, write_manifest

if TYPE_CHECKING:
    from tasks.config.use_cases import ExperimentConfig

log = logging.getLogger(__name__)

#: plot name -> optuna.visualization function name.
PLOTS = {
    "optimization_history": "plot_optimization_history",
    "parallel_coordinate": "plot_parallel_coordinate",
    "param_importances": "plot_param_importances",
    "intermediate_values": "plot_intermediate_values",
}


class ReportError(EeflowError, ValueError):
    """The study cannot be reported (no completed trial)."""


def parameter_importances(study: Any) -> dict[str, float]:
    """Return fANOVA importances of the study's parameters ({} with fewer than 2 trials)."""
    import optuna
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2 or not complete[0].params:
        return {}
    try:
        importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as err:  # e.g. every trial has the same parameters
        log.warning("parameter importances of %s not computed: %s", study.study_name, err)
        return {}
    return {name: round(float(v), 6) for name, v in importances.items()}


def _plots(study: Any, out: Path, importances: dict[str, float]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization as vis
    import optuna.visualization.matplotlib as vis_mpl

    written = []
    for name, function in PLOTS.items():
        if name == "param_importances" and not importances:
            continue
        if name == "parallel_coordinate" and not study.best_trial.params:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ax = getattr(vis_mpl, function)(study)
                fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
                fig.set_size_inches(9, 5)
                fig.tight_layout()
                fig.savefig(out / f"{name}.png", dpi=100)
                plt.close(fig)
                written.append(f"{name}.png")
            except (ValueError, RuntimeError) as err:
                log.warning("plot %s of %s skipped: %s", name, study.study_name, err)
                continue
            if vis.is_available():
                getattr(vis, function)(study).write_html(out / f"{name}.html",
                                                         include_plotlyjs="directory")
                written.append(f"{name}.html")
    return written


def write_study_report(cfg: ExperimentConfig, study_name: str | None = None,
                       out_dir: str | Path | None = None) -> dict[str, Any]:
    """Write the report of a search study and return its paths and the best trial.

    Raises:
        ReportError: the study has no COMPLETE trial yet.

    """
    name = study_name or default_study_name(cfg, "search")
    study = load_study(cfg, name)
    best = best_trial_or_none(study)
    if best is None:
        raise ReportError(
            f"study {name!r} has no completed trial (counts {trial_counts(study).__dict__}); "
            "run 'eeflow experiments search' first"
        )
    metric = study.user_attrs.get("metric", "value")
    importances = parameter_importances(study)
    rows = summarise_trials(study.get_trials(deepcopy=False))
    final = Path(out_dir) if out_dir else experiments_dir(cfg) / name / "report"
    best_payload = {
        "study_name": name, "metric": metric, "direction": study.direction.name.lower(),
        "number": best.number, "value": best.value, "params": best.params,
        "model_dir": best.user_attrs.get("model_dir"), "metrics": best.user_attrs.get("metrics"),
        "family": best.user_attrs.get("family"), "storage": redact_url(storage_url(cfg)),
    }
    with atomic_dir(final) as out:
        atomic_write_json(out / "best_trial.json", best_payload)
        atomic_write_json(out / "importances.json", importances)
        study.trials_dataframe().to_csv(out / "trials.csv", index=False)
        plots = _plots(study, out, importances)
        (out / "report.md").write_text(_markdown(study, best_payload, importances, rows, plots))
        write_manifest(out, stage="search_report", inputs={"study": name},
                       config_hash=config_hash(cfg), counts=trial_counts(study).__dict__,
                       extra={"plots": plots})
    log.info("report of study %s written to %s (best %s = %.4f, trial %d)", name, final, metric,
             best.value, best.number)
    return {"study_name": name, "report_dir": str(final), "best": best_payload,
            "importances": importances, "plots": [str(final / p) for p in plots],
            "counts": trial_counts(study).__dict__}


def _markdown(study: Any, best: dict[str, Any], importances: dict[str, float],
              rows: list[dict[str, Any]], plots: list[str]) -> str:
    counts = trial_counts(study)
    lines = [
        f"# Study `{study.study_name}`", "",
        f"- metric: `{best['metric']}` ({best['direction']})",
        f"- sampler / pruner: {study.user_attrs.get('sampler', '?')} / "
        f"{study.user_attrs.get('pruner', '?')}",
        f"- trials: {counts.complete} complete, {counts.pruned} pruned, {counts.failed} failed, "
        f"{counts.interrupted} interrupted and re-queued",
        f"- best: trial {best['number']}, value {best['value']:.4f}, params "
        f"`{json.dumps(best['params'], sort_keys=True)}`",
        f"- model: `{best['model_dir']}`", "",
        "## Parameter importances (fANOVA)", "",
    ]
    lines += [f"- `{k}`: {v:.3f}" for k, v in importances.items()] or ["- (too few trials)"]
    lines += ["", "## Trials", "", "| # | state | value | epochs | params |",
              "|---:|---|---:|---:|---|"]
    for r in rows:
        value = "" if r["value"] is None else f"{r['value']:.4f}"
        lines.append(f"| {r['number']} | {r['state']} | {value} | {r['epochs'] or ''} | "
                     f"`{json.dumps(r['params'], sort_keys=True)}` |")
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots if p.endswith(".png")]
    return "\n".join(lines) + "\n"
