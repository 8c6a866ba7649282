"""Overhead of the search machinery (RDB storage, heartbeats, pruning callback) per trial.

Baseline: the same tiny Lightning training called directly N times (no Optuna). Search: N trials
of a random search with the median pruner's callback on a SQLite study. Reports the wall time per
trial of both, the overhead as a fraction of trial time, and peak RSS.
Run: .venv/bin/python bench/experiments_overhead.py [n_trials] [epochs]
"""

from __future__ import annotations

import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests/tasks/experiments"))
logging.disable(logging.WARNING)

from experiments_toy import toy_adapter, toy_config, toy_train  # noqa: E402

from tasks.experiments.search import run_search_worker  # noqa: E402


def main(n_trials: int = 12, epochs: int = 8) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    root = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    cfg = toy_config(root, n_trials=n_trials, sampler="random", pruner="none",
                     space={"train.learning_rate": {"type": "categorical", "choices": [0.3]}})
    cfg.train.epochs = epochs
    toy_train(cfg, [], root / "warmup")  # imports and first-fit costs out of both timings
    started = time.perf_counter()
    for i in range(n_trials):
        toy_train(cfg, [], root / "baseline" / str(i))
    baseline = (time.perf_counter() - started) / n_trials
    started = time.perf_counter()
    result = run_search_worker(cfg, toy_adapter(cfg))
    search = (time.perf_counter() - started) / n_trials
    assert result["counts"]["complete"] == n_trials
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"trials: {n_trials} x {epochs} epochs (toy MLP, 256 samples, CPU)")
    print(f"baseline (direct training): {baseline * 1000:.0f} ms per trial")
    print(f"search (SQLite study, heartbeat, pruning callback): {search * 1000:.0f} ms per trial")
    print(f"overhead: {(search - baseline) * 1000:.0f} ms per trial = "
          f"{(search - baseline) / search:.1%} of trial time")
    print(f"peak RSS: {rss_mib:.0f} MiB")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
