"""Overhead of the search machinery (RDB storage, heartbeats, pruning callback) per trial.

Baseline: the same Lightning training called directly N times (no Optuna). Search: N trials of a
random search with the **median pruner** on a SQLite study; ``n_warmup_steps`` is set to the
epoch count so the pruner's callback reports and asks ``should_prune`` every epoch but never
prunes, and every trial runs the same work as a baseline trial. The trial is the toy MLP
(tests/tasks/experiments/experiments_toy.py) padded with ``--sleep-per-epoch`` seconds per epoch
to a realistic length (>= 30 s in the full run: 10 epochs x 3 s + training), the padding standing
in for a real model's compute; the search's heartbeat thread and storage writes run alongside as
in a real study. Reports wall and user + system CPU per trial of both, the overhead as a share
of the baseline trial (goal < 2 %), and peak RSS.

Run: .venv/bin/python bench/experiments_overhead.py [--trials 6] [--epochs 10]
     [--sleep-per-epoch 3.0] [--quick]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests/tasks/experiments"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
logging.disable(logging.WARNING)

from common import Timer, add_quick_flag, report  # noqa: E402
from experiments_toy import toy_adapter, toy_config, toy_train  # noqa: E402

from tasks.experiments.search import run_search_worker  # noqa: E402

GOAL = 0.02


def main() -> None:
    import optuna

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--sleep-per-epoch", type=float, default=3.0,
                        help="padding per epoch (s) so a trial lasts >= 30 s")
    add_quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.trials, args.epochs, args.sleep_per_epoch = 3, 2, 0.5
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    root = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    cfg = toy_config(root, n_trials=args.trials, sampler="random", pruner="median",
                     n_startup_trials=0, n_warmup_steps=args.epochs,
                     space={"train.learning_rate": {"type": "categorical", "choices": [0.3]}})
    cfg.train.epochs = args.epochs
    cfg.train.sleep_per_epoch_s = args.sleep_per_epoch
    toy_train(cfg, [], root / "warmup")  # imports and first-fit costs out of both timings
    with Timer() as base:
        for i in range(args.trials):
            toy_train(cfg, [], root / "baseline" / str(i))
    with Timer() as search:
        result = run_search_worker(cfg, toy_adapter(cfg))
    assert result["counts"]["complete"] == args.trials, result["counts"]
    per_trial = base.wall_s / args.trials
    overhead = (search.wall_s - base.wall_s) / args.trials
    ratio = overhead / per_trial
    print(f"trials: {args.trials} x {args.epochs} epochs (toy MLP, 256 samples, CPU, "
          f"{args.sleep_per_epoch} s padding per epoch)")
    print(f"baseline (direct training): {per_trial:.2f} s per trial "
          f"({base.cpu_s / args.trials:.2f} CPU-s)")
    print(f"search (SQLite study, heartbeat, median pruner callback): "
          f"{search.wall_s / args.trials:.2f} s per trial ({search.cpu_s / args.trials:.2f} CPU-s)")
    overhead_cpu = (search.cpu_s - base.cpu_s) / args.trials
    print(f"overhead: {overhead * 1000:.0f} ms per trial = {ratio:.2%} of a baseline trial; "
          f"CPU: {overhead_cpu * 1000:.0f} ms = {overhead_cpu / per_trial:.2%} (on a loaded box "
          "the wall overhead includes waiting for a core)")
    report("experiments_overhead", ratio,
           f"< {GOAL:.0%} per trial on trials >= 30 s (ratio: overhead / baseline trial)",
           ratio < GOAL and per_trial >= 30,
           {"trials": args.trials, "epochs": args.epochs,
            "sleep_per_epoch_s": args.sleep_per_epoch, "baseline_trial_s": per_trial,
            "overhead_per_trial_s": overhead,
            "overhead_cpu_per_trial_s": overhead_cpu,
            "overhead_cpu_share_of_trial": overhead_cpu / per_trial,
            "baseline": base.as_dict(), "search": search.as_dict()},
           baseline="the same training called directly, no Optuna", quick=args.quick)


if __name__ == "__main__":
    main()
