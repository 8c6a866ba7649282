"""Lightning callback that reports the validation metric to an Optuna trial every epoch.

eeflow uses its own callback instead of ``optuna_integration.PyTorchLightningPruningCallback``
(which does run on lightning 2.6) for two reasons: the crop model trains in two phases (two
``Trainer.fit`` calls whose epoch counters both restart at 0, which the integration would report
at the same step, and Optuna ignores repeated steps), and a metric the model does not log must be
a clear error, not a warning followed by a trial that is never pruned.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import optuna

from tasks.experiments.trainers import MetricNotLoggedError

__all__ = ["MetricNotLoggedError", "OptunaPruningCallback"]


class OptunaPruningCallback(pl.Callback):
    """Report ``monitor`` to ``trial`` after each validation epoch; prune when the pruner says so.

    Steps count validation epochs across every ``fit`` the callback takes part in (so phase 2 of
    the crop model continues after phase 1's last step).

    Args:
        trial: the running Optuna trial.
        monitor: name of the logged validation metric, e.g. ``val_loss`` or ``val_median_f1``.

    """

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        super().__init__()
        self.trial = trial
        self.monitor = monitor
        self.step = 0
        self.reported: list[float] = []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Report the epoch's metric and raise :class:`optuna.TrialPruned` when pruned."""
        if trainer.sanity_checking:
            return
        value: Any = trainer.callback_metrics.get(self.monitor)
        if value is None:
            logged = sorted(k for k in trainer.callback_metrics if not k.startswith("_"))
            raise MetricNotLoggedError(
                f"metric {self.monitor!r} is not logged by {type(pl_module).__name__}; it logs "
                f"{logged}. Set search.metric / ablation.metric to one of them"
            )
        score = float(value)
        step = self.step
        self.step += 1
        if math.isnan(score):
            return
        self.reported.append(score)
        self.trial.report(score, step=step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(
                f"trial {self.trial.number} pruned after {self.step} validation epochs "
                f"({self.monitor} = {score:.4f})"
            )
