"""Pruning effectiveness: trials-to-best and total epochs with and without pruning.

The same search space (learning rate, log scale, and hidden units), the same random sampler seed
and the same number of trials run with no pruner (baseline), the median pruner and ASHA on the toy
MLP (tests/tasks/experiments/experiments_toy.py). Reports best value, the trial that first
reached it, total epochs trained, wall and user + system CPU time and peak RSS. Headline ratio:
total epochs without pruning / with the median pruner (the search's default); goal: fewer epochs
at a best val_acc within 0.01 of the unpruned search.
Run: .venv/bin/python bench/pruning.py [--trials 20] [--epochs 8] [--quick]
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests/tasks/experiments"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
logging.disable(logging.WARNING)

from common import Timer, add_quick_flag, report  # noqa: E402
from experiments_toy import toy_adapter, toy_config  # noqa: E402

from tasks.experiments.search import load_study, run_search_worker  # noqa: E402


def one(pruner: str, n_trials: int, epochs: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"bench-pruning-{pruner}-"))
    cfg = toy_config(root, n_trials=n_trials, sampler="random", pruner=pruner,
                     n_startup_trials=3, n_warmup_steps=1, min_resource=1, reduction_factor=3,
                     space={"train.learning_rate": {"type": "float", "low": 1e-4, "high": 1.0,
                                                    "log": True},
                            "train.hidden": {"type": "categorical", "choices": [4, 16, 64]}})
    cfg.train.epochs = epochs
    with Timer() as timer:
        run_search_worker(cfg, toy_adapter(cfg))
    study = load_study(cfg, "toy-search")
    best = study.best_value
    first = min(t.number for t in study.trials if t.value is not None and t.value >= best - 1e-9)
    return {"pruner": pruner, "best": best, "trials_to_best": first + 1,
            "epochs": sum(t.user_attrs.get("epochs") or 0 for t in study.trials),
            "pruned": sum(t.state.name == "PRUNED" for t in study.trials),
            "wall_s": timer.wall_s, "cpu_s": timer.cpu_s}


def main() -> None:
    import optuna

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=8)
    add_quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.trials, args.epochs = 6, 3
    n_trials, epochs = args.trials, args.epochs
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = [one(p, n_trials, epochs) for p in ("none", "median", "asha")]
    print(f"{n_trials} trials x up to {epochs} epochs, random sampler seed 42, toy MLP")
    print("| pruner | best val_acc | trials to best | pruned | total epochs | wall s |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['pruner']} | {r['best']:.4f} | {r['trials_to_best']} | {r['pruned']} | "
              f"{r['epochs']} | {r['wall_s']:.1f} |")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    by = {r["pruner"]: r for r in rows}
    ratio = by["none"]["epochs"] / max(by["median"]["epochs"], 1)
    report("pruning", ratio, "median pruner: fewer epochs, best val_acc within 0.01 of no pruning",
           ratio > 1 and by["median"]["best"] >= by["none"]["best"] - 0.01,
           {"trials": n_trials, "epochs": epochs, "rows": rows},
           baseline="the same search without a pruner", quick=args.quick)


if __name__ == "__main__":
    main()
