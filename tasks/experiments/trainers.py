"""Objective adapters: one way to call each use case's training function from a trial.

A :class:`TrainingAdapter` wraps ``train(cfg, callbacks, output_dir) -> result`` where ``cfg`` is
the trial's config (search values or ablation overrides applied), ``callbacks`` are extra
Lightning callbacks (Optuna pruning) and ``output_dir`` is the trial's model folder. The polar and
crop training functions follow one contract (:mod:`tasks.trainers.contract`: ``output_dir`` is the
model folder itself, the result a :class:`~tasks.trainers.contract.TrainResult` with validation
``metrics``, ``monitor``, ``monitor_value`` and ``model_dir``); other training functions (tests)
return at least ``metrics``. They are imported only when a trial runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.errors import EeflowError, ErrorFamily

if TYPE_CHECKING:
    from tasks.config.food_security import FoodSecurityConfig
    from tasks.config.polar import PolarConfig
    from tasks.config.use_cases import ExperimentConfig


class MetricNotLoggedError(EeflowError, KeyError):
    """The monitored metric is not among the metrics the model logs."""

    family = ErrorFamily.CONFIG

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0]) if self.args else ""


TrainFunction = Callable[[Any, Sequence[Any], Path], Mapping[str, Any]]
MaxEpochs = Callable[[Any], int]


@dataclass(frozen=True)
class TrainingAdapter:
    """How the experiments layer trains one model of a use case.

    Attributes:
        use_case: ``polar`` or ``food_security`` (or a test name).
        train: ``train(cfg, callbacks, output_dir) -> result`` (see module docstring).
        default_metric: metric optimised when ``search.metric`` is not set.
        max_epochs: ``max_epochs(cfg)`` -> epochs of one trial (Hyperband's maximum resource).
        family: ``family(cfg)`` -> model family recorded in the registry (e.g. ``adhoc_cnn``).
        dataset: the training-set path or version the trials read (recorded in reports).
        lightning: the training is Lightning and takes the per-epoch pruning callback; a
            non-Lightning trainer (False) gets no callback and is never pruned.

    """

    use_case: str
    train: TrainFunction
    default_metric: str
    max_epochs: MaxEpochs
    family: Callable[[Any], str] = field(default=lambda cfg: str(cfg.train.model))
    dataset: str = ""
    lightning: bool = True


def result_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """Return the validation ``metrics`` of a training result, the monitored value included."""
    metrics = {str(k): float(v) for k, v in dict(result.get("metrics") or {}).items()
               if isinstance(v, int | float)}
    if result.get("monitor") and isinstance(result.get("monitor_value"), int | float):
        metrics.setdefault(str(result["monitor"]), float(result["monitor_value"]))
    return metrics


def metric_from_result(result: Mapping[str, Any], metric: str) -> float:
    """Return ``metric`` from a training result, or raise a clear error naming what was logged.

    Raises:
        MetricNotLoggedError: the result has no such metric.

    """
    metrics = result_metrics(result)
    if metric not in metrics:
        raise MetricNotLoggedError(
            f"metric {metric!r} is not among the metrics the training returned "
            f"{sorted(metrics)}; set search.metric / ablation.metric to one of them"
        )
    return float(metrics[metric])


def polar_adapter(cfg: PolarConfig, dataset_path: str | Path | None = None) -> TrainingAdapter:
    """Adapter for ``tasks.polar.train.train_model(cfg, dataset_path, output_dir=, callbacks=)``.

    Args:
        cfg: the polar config.
        dataset_path: the patch training set (zarr); default: the configured dataset version
            and patch size (``tasks.polar.patches.dataset_path``).

    """
    from tasks.polar.patches import dataset_path as default_dataset_path

    dataset = Path(dataset_path) if dataset_path else default_dataset_path(cfg)

    def train(trial_cfg: PolarConfig, callbacks: Sequence[Any],
              output_dir: Path) -> Mapping[str, Any]:
        from tasks.polar.train import train_model

        path = dataset
        if not dataset_path:  # patch size / version may be search or ablation parameters
            path = default_dataset_path(trial_cfg)
        if not Path(path).exists():
            raise FileNotFoundError(
                f"polar training set {path} does not exist; build it first "
                "(eeflow polar patches --run-date ...)"
            )
        result = train_model(trial_cfg, path, output_dir=output_dir, callbacks=list(callbacks))
        # search / ablation reports have never listed polar sample counts (the patch set is
        # fixed); trials record n_samples only for the crop data variants
        return {k: v for k, v in result.items() if k != "n_samples"}

    return TrainingAdapter(
        use_case="polar",
        train=train,
        default_metric=str(getattr(cfg.train, "monitor", "val_loss")),
        max_epochs=lambda c: int(c.train.epochs),
        dataset=str(dataset),
    )


def crop_adapter(cfg: FoodSecurityConfig, run_date: Any) -> TrainingAdapter:
    """Adapter for ``tasks.food_security.train.train_crop_model(cfg, run_date, ...)``.

    Args:
        cfg: the food-security config.
        run_date: any day of the agronomic year whose samples train the model.

    """
    from tasks.food_security.train import samples_dir_for

    def train(trial_cfg: FoodSecurityConfig, callbacks: Sequence[Any],
              output_dir: Path) -> Mapping[str, Any]:
        from tasks.food_security.train import train_crop_model

        return train_crop_model(trial_cfg, run_date, output_dir=output_dir,
                                callbacks=list(callbacks))

    return TrainingAdapter(
        use_case="food_security",
        train=train,
        default_metric=str(cfg.train.monitor),
        max_epochs=lambda c: int(c.train.epochs_phase1 + c.train.epochs_phase2),
        dataset=str(samples_dir_for(cfg, run_date)),
    )


def adapter_for(cfg: ExperimentConfig, run_date: Any = None, dataset_path: str | Path | None = None
                ) -> TrainingAdapter:
    """Return the adapter of ``cfg.use_case`` (``polar`` or ``food_security``).

    Raises:
        ValueError: another use case, or a crop config without ``run_date``.

    """
    if cfg.use_case == "polar":
        return polar_adapter(cfg, dataset_path)
    if cfg.use_case == "food_security":
        if run_date is None:
            raise ValueError("the food_security experiments need --run-date (the agronomic year)")
        return crop_adapter(cfg, run_date)
    raise ValueError(
        f"use case {cfg.use_case!r} has no training adapter; allowed: ['food_security', 'polar']"
    )
