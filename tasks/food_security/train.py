"""Train a crop-type model of one agronomic year with the weighted two-phase procedure.

Phase 1 minimises cross-entropy weighted by inverse class frequency of the train split (so rare
crops count); phase 2 starts from the best phase-1 weights and continues with the plain loss
(paper, Section on the food-security use case). Both phases use RMSprop (lr and weight decay from
``train``), early stopping and checkpointing on a validation metric, a CSV log and seeded,
deterministic training. With ``train.weighted: false`` phase 1 uses the plain loss too (the
unweighted baseline).

Output: ``{root}/food_security/models/{agronomic_year}/{model}/`` replaced atomically, holding
``model.ckpt`` (Lightning checkpoint of :class:`tasks.trainers.crops.CropClassifier`),
``phase1.ckpt``, ``model.json`` (classes, bands, normalisation, hyper-parameters, dataset
version, metrics, code version; the common :class:`~tasks.trainers.card.ModelCard` under
``card``), ``logs/{phase1,phase2}/metrics.csv``, ``learning_curve.png`` and
``manifest.json``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tasks.config.common import config_hash
from tasks.config.food_security import CROP_MODEL_NAMES, FoodSecurityConfig, TrainConfig
from tasks.plots import CurvePanel, CurveStyle, plot_learning_curve
from tasks.storage import (
    agronomic_year_key,
    atomic_write_json,
    code_version,
    stage_dir,
    write_manifest,
)
from tasks.trainers.card import SCHEMA_VERSION, ModelCard
from tasks.trainers.contract import TrainResult
from tasks.trainers.ranks import global_rank, rank_zero_dir, rank_zero_result

log = logging.getLogger(__name__)

USE_CASE = "food_security"
MODEL_FILE = "model.ckpt"
MODEL_JSON = "model.json"
#: ``learning_curve.png``: train / val loss and val accuracy / median F1 of both phases.
CURVE_STYLE = CurveStyle(
    panels=(CurvePanel((("train_loss", "C0"), ("val_loss", "C1")), ylabel="cross-entropy",
                       title="loss"),
            CurvePanel((("val_accuracy", "C2"), ("val_median_f1", "C3")), ylabel="fraction",
                       title="validation scores", ylim=(0, 1))),
    figsize=(10, 4), label="{metric} ({phase})", linestyles=("-", "--"), markersize=3,
    legend_fontsize=7, first_epoch=1, missing_epoch=0, skip_nan=True, plot_empty=True,
)
#: metric name -> mode of the validation metrics logged by CropClassifier.
MONITOR_MODES: dict[str, str] = {
    "val_median_f1": "max",
    "val_macro_f1": "max",
    "val_accuracy": "max",
    "val_loss": "min",
}


def samples_dir_for(cfg: FoodSecurityConfig, run_date: Any) -> Path:
    """Return ``{root}/food_security/samples/{agronomic_year}`` of ``run_date``."""
    return stage_dir(cfg.resolved_root(), USE_CASE, "samples", agronomic_year_key(run_date))


def training_samples_dir(cfg: FoodSecurityConfig, run_date: Any) -> Path:
    """Return the samples folder training reads: ``train.samples_dir`` or the year's samples.

    A relative ``train.samples_dir`` is taken under ``data_root``.
    """
    if cfg.train.samples_dir:
        path = Path(cfg.train.samples_dir)
        return path if path.is_absolute() else cfg.resolved_root() / path
    return samples_dir_for(cfg, run_date)


def model_dir_for(cfg: FoodSecurityConfig, run_date: Any, model: str) -> Path:
    """Return ``{root}/food_security/models/{agronomic_year}/{model}``."""
    return stage_dir(cfg.resolved_root(), USE_CASE, "models", agronomic_year_key(run_date)) / model


def train_crop_model(
    cfg: FoodSecurityConfig,
    run_date: Any,
    model: str | None = None,
    *,
    output_dir: str | os.PathLike[str] | None = None,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Train ``model`` (default ``cfg.train.model``) on the agronomic year containing ``run_date``.

    The samples are the year's samples stage, or ``train.samples_dir`` when set. Follows the
    training contract of :mod:`tasks.trainers.contract`. Under ``strategy: ddp`` every process
    trains and validates, global rank 0 alone writes the model folder (:mod:`tasks.trainers.ranks`)
    and the other ranks return rank 0's result once it is published.

    Args:
        cfg: the validated food-security config (``train`` section, ``seed``, ``data_root``).
        run_date: any day of the agronomic year (e.g. the DAG's ``data_interval_start``).
        model: ``lstm``, ``tempcnn`` or ``starrnn``; overrides ``cfg.train.model``.
        output_dir: the model folder to write (replaced atomically); default the year's
            ``{root}/food_security/models/{agronomic_year}/{model}``.
        callbacks: extra Lightning callbacks given to both phases (e.g. Optuna pruning; the
            epoch counter restarts at 0 in phase 2).

    Returns:
        The :class:`~tasks.trainers.contract.TrainResult`: ``monitor_value`` is the monitored
        metric of the final model, ``metrics`` its validation scores, ``epochs`` run per phase,
        ``extra`` the ``agronomic_year``.

    Raises:
        SampleStoreError: the sample stores of the year are missing or malformed.
        ValueError: an unknown model name.

    """
    import lightning as L

    from tasks.datasets.crop_samples import CropSamplesDataModule, inverse_frequency_weights
    from tasks.trainers.crops import CropClassifier

    train_cfg = cfg.train
    model_name = model or train_cfg.model
    if model_name not in CROP_MODEL_NAMES:
        raise ValueError(f"unknown crop model {model_name!r}; allowed: {list(CROP_MODEL_NAMES)}")
    year = agronomic_year_key(run_date)
    samples_dir = training_samples_dir(cfg, run_date)
    final_dir = Path(output_dir) if output_dir else model_dir_for(cfg, run_date, model_name)
    # deterministic=True makes Lightning set CUBLAS_WORKSPACE_CONFIG for reproducible cuBLAS;
    # nothing here changes the process environment.
    started = time.perf_counter()

    data = CropSamplesDataModule(
        samples_dir,
        batch_size=train_cfg.batch_size,
        seed=cfg.seed,
        num_workers=train_cfg.num_workers,
    )
    info = data.train_info
    class_weights = inverse_frequency_weights(info.class_counts)
    log.info(
        "training %s for %s on %d train / %d val samples (%d classes, %d bands); class counts %s",
        model_name, year, info.n_samples, data.val_info.n_samples, len(info.class_names),
        len(info.bands), info.class_counts,
    )
    run = _CropRun(cfg, model_name, year, samples_dir, data, class_weights,
                   _network_hyperparameters(train_cfg, model_name, info))
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = CropClassifier(band_mean=info.band_mean, band_std=info.band_std,
                            **run.hyperparameters)

    # under DDP every rank trains and validates (the collectives must match); rank 0 publishes
    with rank_zero_dir(final_dir) as out:
        phase_results, best_path = _run_phases(run, module, out, callbacks)
        module.set_class_weights(None)
        final_scores = _validate(module, data, train_cfg.accelerator, train_cfg.precision)
        card = _publish(run, out, best_path, phase_results, final_scores) \
            if global_rank() == 0 else None
    result: TrainResult | None = None
    if card is not None:  # rank 0 (another DDP rank returns rank 0's result)
        seconds = time.perf_counter() - started
        log.info("model %s of %s written to %s (%s = %.4f, %.1f s)", model_name, year,
                 final_dir, train_cfg.monitor, final_scores[train_cfg.monitor], seconds)
        result = TrainResult(
            use_case=USE_CASE, model=model_name, model_dir=str(final_dir),
            model_json=str(final_dir / MODEL_JSON), checkpoint=str(final_dir / MODEL_FILE),
            monitor=train_cfg.monitor, monitor_value=final_scores[train_cfg.monitor],
            metrics=final_scores, epochs=dict(card.epochs),
            n_samples={"train": info.n_samples, "val": data.val_info.n_samples},
            dataset=str(samples_dir), seconds=round(seconds, 2), extra={"agronomic_year": year},
        )
    return rank_zero_result(result)  # under DDP: waits until rank 0 has published


@dataclass(frozen=True)
class _CropRun:
    """What the sections of one :func:`train_crop_model` call share."""

    cfg: FoodSecurityConfig
    model_name: str
    year: str
    samples_dir: Path
    data: Any  # CropSamplesDataModule
    class_weights: list[float]
    hyperparameters: dict[str, Any]


def _network_hyperparameters(train_cfg: TrainConfig, model_name: str, info: Any) -> dict[str, Any]:
    """Return the :class:`~tasks.trainers.crops.CropClassifier` arguments besides normalisation."""
    return {
        "model_name": model_name,
        "n_bands": len(info.bands),
        "n_classes": len(info.class_names),
        "n_timesteps": info.n_timesteps,
        "layers": train_cfg.layers,
        "cells": train_cfg.cells,
        "dropout": train_cfg.dropout,
        "learning_rate": train_cfg.learning_rate,
        "weight_decay": train_cfg.weight_decay,
        "weight_decay_mode": train_cfg.weight_decay_mode,
    }


def _run_phases(
    run: _CropRun, module: Any, out: Path, callbacks: Sequence[Any],
) -> tuple[dict[str, dict[str, Any]], Path]:
    """Run phase 1 (weighted loss) and phase 2 (plain loss) into ``out``.

    Each phase starts from the best weights of the one before; returns the per-phase summary
    and the best checkpoint of the last phase.
    """
    import lightning as L
    import torch

    cfg, data = run.cfg, run.data
    train_cfg = cfg.train
    phases: list[tuple[str, int, bool]] = []
    if train_cfg.epochs_phase1 > 0:
        phases.append(("phase1", train_cfg.epochs_phase1, train_cfg.weighted))
    if train_cfg.epochs_phase2 > 0:
        phases.append(("phase2", train_cfg.epochs_phase2, False))
    monitor = train_cfg.monitor
    phase_results: dict[str, dict[str, Any]] = {}
    best_path: Path | None = None
    for index, (phase, max_epochs, weighted) in enumerate(phases):
        L.seed_everything(cfg.seed + index, workers=True, verbose=False)
        data.seed = cfg.seed + 1000 * index  # phase 2 sees new shuffles, not phase 1's
        module.set_class_weights(run.class_weights if weighted else None)
        trainer, checkpoint = _phase_trainer(train_cfg, phase, index, max_epochs, out, callbacks)
        log.info("%s: %s loss, up to %d epochs", phase, "weighted" if weighted else "plain",
                 max_epochs)
        trainer.fit(module, datamodule=data)
        if not checkpoint.best_model_path:
            raise RuntimeError(
                f"{phase} of {run.model_name} saved no checkpoint; the validation metric "
                f"{monitor!r} was never logged (is val.zarr empty?)"
            )
        best_path = Path(checkpoint.best_model_path)
        state = torch.load(best_path, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state)
        phase_results[phase] = {
            "weighted_loss": weighted,
            "epochs_run": int(trainer.current_epoch),
            "best_" + monitor: float(checkpoint.best_model_score),
        }
        log.info("%s done after %d epochs; best %s = %.4f", phase, trainer.current_epoch,
                 monitor, float(checkpoint.best_model_score))
    assert best_path is not None  # the config requires at least one epoch
    return phase_results, best_path


def _phase_trainer(train_cfg: TrainConfig, phase: str, index: int, max_epochs: int, out: Path,
                   callbacks: Sequence[Any]) -> tuple[Any, Any]:
    """Lightning trainer of one phase: best checkpoint and early stopping on the monitor."""
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    monitor = train_cfg.monitor
    mode = MONITOR_MODES[monitor]
    checkpoint = ModelCheckpoint(
        dirpath=out / "checkpoints" / phase,
        filename=phase,
        monitor=monitor,
        mode=mode,
        save_top_k=1,
        save_weights_only=True,
        enable_version_counter=False,
    )
    stopper = EarlyStopping(monitor=monitor, mode=mode,
                            patience=train_cfg.early_stopping_patience)
    trainer = L.Trainer(
        max_epochs=max_epochs,
        **train_cfg.trainer_kwargs(),  # accelerator, devices, precision, strategy
        deterministic=True,
        callbacks=[checkpoint, stopper, *callbacks],
        logger=CSVLogger(out, name="logs", version=phase),
        log_every_n_steps=1,
        enable_model_summary=index == 0,
        num_sanity_val_steps=0,
    )
    return trainer, checkpoint


def _publish(
    run: _CropRun, out: Path, best_path: Path, phase_results: dict[str, dict[str, Any]],
    final_scores: dict[str, float],
) -> ModelCard:
    """Write the model folder's files: checkpoints, learning curve, ``model.json``, manifest."""
    cfg, model_name, year, samples_dir = run.cfg, run.model_name, run.year, run.samples_dir
    train_cfg = cfg.train
    info = run.data.train_info
    shutil.copyfile(best_path, out / MODEL_FILE)
    if (out / "checkpoints" / "phase1" / "phase1.ckpt").exists():
        shutil.copyfile(out / "checkpoints" / "phase1" / "phase1.ckpt", out / "phase1.ckpt")
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    curve = plot_learning_curve(
        [(phase, out / "logs" / phase / "metrics.csv") for phase in ("phase1", "phase2")],
        out / "learning_curve.png", f"{model_name} {year}: weighted phase 1 | plain phase 2",
        CURVE_STYLE)
    assert curve is not None  # CURVE_STYLE plots even an empty log
    model_json = {
        "model": model_name,
        "agronomic_year": year,
        "checkpoint": MODEL_FILE,
        "classes": info.class_names,
        "bands": info.bands,
        "n_timesteps": info.n_timesteps,
        "normalisation": {"band_mean": info.band_mean, "band_std": info.band_std},
        "hyperparameters": {
            **run.hyperparameters,
            "optimizer": train_cfg.optimizer,
            "batch_size": train_cfg.batch_size,
            "weighted": train_cfg.weighted,
            "epochs_phase1": train_cfg.epochs_phase1,
            "epochs_phase2": train_cfg.epochs_phase2,
            "early_stopping_patience": train_cfg.early_stopping_patience,
            "seed": cfg.seed,
        },
        # what phase 1 really used: None when it ran with the plain loss (or did not run)
        "class_weights_phase1": (run.class_weights
                                 if train_cfg.weighted and train_cfg.epochs_phase1 > 0 else None),
        "train_class_counts": info.class_counts,
        "dataset_version": info.dataset_version,
        "samples_dir": str(samples_dir),
        "monitor": {"metric": train_cfg.monitor, "mode": MONITOR_MODES[train_cfg.monitor]},
        "metrics": {"validation": final_scores, "phases": phase_results},
        "code_version": code_version(),
        "config_hash": config_hash(cfg),
    }
    card = model_card(model_json)
    atomic_write_json(out / MODEL_JSON, card.document_with(model_json))
    write_manifest(
        out,
        stage="train",
        inputs={"samples": str(samples_dir)},
        config_hash=config_hash(cfg),
        counts={"train_samples": info.n_samples, "val_samples": run.data.val_info.n_samples},
        extra={"model": model_name, "agronomic_year": year, "learning_curve": curve.name},
    )
    return card


def model_card(model_json: dict[str, Any]) -> ModelCard:
    """Return the :class:`ModelCard` of a crop ``model.json``'s keys, created now."""
    card = ModelCard.from_document(model_json, source="crop model.json")
    return card.model_copy(update={"schema_version": SCHEMA_VERSION,
                                   "created": dt.datetime.now(dt.UTC).isoformat()})


def _validate(
    module: Any,
    data: Any,
    accelerator: str,
    precision: Literal["32-true", "16-mixed", "bf16-mixed", "64-true"],
) -> dict[str, float]:
    """Return the final model's validation scores (plain loss), on one device."""
    import lightning as L

    trainer = L.Trainer(
        accelerator=accelerator, devices=1, precision=precision, logger=False,
        enable_progress_bar=False,
        enable_model_summary=False, deterministic=True,
    )
    (scores,) = trainer.validate(module, datamodule=data, verbose=False)
    return {name: float(value) for name, value in scores.items()}
