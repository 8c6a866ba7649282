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
version, metrics, code version), ``logs/{phase1,phase2}/metrics.csv``, ``learning_curve.png`` and
``manifest.json``.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tasks.config.common import config_hash
from tasks.config.food_security import CROP_MODEL_NAMES, FoodSecurityConfig
from tasks.storage import (
    agronomic_year_key,
    atomic_dir,
    atomic_write_json,
    code_version,
    stage_dir,
    write_manifest,
)

log = logging.getLogger(__name__)

USE_CASE = "food_security"
MODEL_FILE = "model.ckpt"
MODEL_JSON = "model.json"
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
    callbacks: Sequence[Any] = (),
    output_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Train ``model`` (default ``cfg.train.model``) on the agronomic year containing ``run_date``.

    The samples are the year's samples stage, or ``train.samples_dir`` when set.

    Args:
        cfg: the validated food-security config (``train`` section, ``seed``, ``data_root``).
        run_date: any day of the agronomic year (e.g. the DAG's ``data_interval_start``).
        model: ``lstm``, ``tempcnn`` or ``starrnn``; overrides ``cfg.train.model``.
        callbacks: extra Lightning callbacks given to both phases (e.g. Optuna pruning; the
            epoch counter restarts at 0 in phase 2).
        output_dir: write here instead of the year's model folder (search trials).

    Returns:
        ``model_dir``, ``checkpoint``, ``model_json``, ``monitor`` (metric name), ``val_metric``
        (its value for the final model), ``metrics`` (final validation scores), ``epochs`` run per
        phase, ``n_samples`` (``train`` / ``val`` sample counts), ``samples_dir`` and ``seconds``.

    Raises:
        SampleStoreError: the sample stores of the year are missing or malformed.
        ValueError: an unknown model name.

    """
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from tasks.datasets.crop_samples import CropSamplesDataModule, inverse_frequency_weights
    from tasks.trainers.crops import CropClassifier

    train_cfg = cfg.train
    model_name = model or train_cfg.model
    if model_name not in CROP_MODEL_NAMES:
        raise ValueError(f"unknown crop model {model_name!r}; allowed: {list(CROP_MODEL_NAMES)}")
    year = agronomic_year_key(run_date)
    samples_dir = training_samples_dir(cfg, run_date)
    final_dir = Path(output_dir) if output_dir else model_dir_for(cfg, run_date, model_name)
    monitor = train_cfg.monitor
    mode = MONITOR_MODES[monitor]
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
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
    hyperparameters = {
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

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = CropClassifier(band_mean=info.band_mean, band_std=info.band_std, **hyperparameters)

    phases: list[tuple[str, int, bool]] = []
    if train_cfg.epochs_phase1 > 0:
        phases.append(("phase1", train_cfg.epochs_phase1, train_cfg.weighted))
    if train_cfg.epochs_phase2 > 0:
        phases.append(("phase2", train_cfg.epochs_phase2, False))

    with atomic_dir(final_dir) as out:
        phase_results: dict[str, dict[str, Any]] = {}
        best_path: Path | None = None
        for index, (phase, max_epochs, weighted) in enumerate(phases):
            L.seed_everything(cfg.seed + index, workers=True, verbose=False)
            data.seed = cfg.seed + 1000 * index  # phase 2 sees new shuffles, not phase 1's
            module.set_class_weights(class_weights if weighted else None)
            checkpoint = ModelCheckpoint(
                dirpath=out / "checkpoints" / phase,
                filename=phase,
                monitor=monitor,
                mode=mode,
                save_top_k=1,
                save_weights_only=True,
                enable_version_counter=False,
            )
            stopper = EarlyStopping(
                monitor=monitor, mode=mode, patience=train_cfg.early_stopping_patience
            )
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
            log.info("%s: %s loss, up to %d epochs", phase, "weighted" if weighted else "plain",
                     max_epochs)
            trainer.fit(module, datamodule=data)
            if not checkpoint.best_model_path:
                raise RuntimeError(
                    f"{phase} of {model_name} saved no checkpoint; the validation metric "
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
        module.set_class_weights(None)
        final_scores = _validate(module, data, train_cfg.accelerator, train_cfg.precision)
        shutil.copyfile(best_path, out / MODEL_FILE)
        if (out / "checkpoints" / "phase1" / "phase1.ckpt").exists():
            shutil.copyfile(out / "checkpoints" / "phase1" / "phase1.ckpt", out / "phase1.ckpt")
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        curve = plot_learning_curve(out / "logs", out / "learning_curve.png", model_name, year)
        model_json = {
            "model": model_name,
            "agronomic_year": year,
            "checkpoint": MODEL_FILE,
            "classes": info.class_names,
            "bands": info.bands,
            "n_timesteps": info.n_timesteps,
            "normalisation": {"band_mean": info.band_mean, "band_std": info.band_std},
            "hyperparameters": {
                **hyperparameters,
                "optimizer": train_cfg.optimizer,
                "batch_size": train_cfg.batch_size,
                "weighted": train_cfg.weighted,
                "epochs_phase1": train_cfg.epochs_phase1,
                "epochs_phase2": train_cfg.epochs_phase2,
                "early_stopping_patience": train_cfg.early_stopping_patience,
                "seed": cfg.seed,
            },
            "class_weights_phase1": class_weights,
            "train_class_counts": info.class_counts,
            "dataset_version": info.dataset_version,
            "samples_dir": str(samples_dir),
            "monitor": {"metric": monitor, "mode": mode},
            "metrics": {"validation": final_scores, "phases": phase_results},
            "code_version": code_version(),
            "config_hash": config_hash(cfg),
        }
        atomic_write_json(out / MODEL_JSON, model_json)
        write_manifest(
            out,
            stage="train",
            inputs={"samples": str(samples_dir)},
            config_hash=config_hash(cfg),
            counts={"train_samples": info.n_samples, "val_samples": data.val_info.n_samples},
            extra={"model": model_name, "agronomic_year": year, "learning_curve": curve.name},
        )
    seconds = time.perf_counter() - started
    log.info("model %s of %s written to %s (%s = %.4f, %.1f s)", model_name, year, final_dir,
             monitor, final_scores[monitor], seconds)
    return {
        "model": model_name,
        "agronomic_year": year,
        "model_dir": str(final_dir),
        "checkpoint": str(final_dir / MODEL_FILE),
        "model_json": str(final_dir / MODEL_JSON),
        "monitor": monitor,
        "val_metric": final_scores[monitor],
        "metrics": final_scores,
        "epochs": {phase: r["epochs_run"] for phase, r in phase_results.items()},
        "n_samples": {"train": info.n_samples, "val": data.val_info.n_samples},
        "samples_dir": str(samples_dir),
        "seconds": round(seconds, 2),
    }


def _validate(module: Any, data: Any, accelerator: str, precision: str) -> dict[str, float]:
    """Return the final model's validation scores (plain loss), on one device."""
    import lightning as L

    trainer = L.Trainer(
        accelerator=accelerator, devices=1, precision=precision, logger=False,
        enable_progress_bar=False,
        enable_model_summary=False, deterministic=True,
    )
    (scores,) = trainer.validate(module, datamodule=data, verbose=False)
    return {name: float(value) for name, value in scores.items()}


def _read_metrics_csv(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    rows = []
    with path.open() as handle:
        for row in csv.DictReader(handle):
            rows.append({k: float(v) for k, v in row.items() if v not in ("", None)})
    return rows


def plot_learning_curve(logs_dir: Path, png: Path, model_name: str, year: str) -> Path:
    """Plot train / val loss and val accuracy / median F1 per epoch of both phases into ``png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(10, 4))
    offset = 0
    for phase, style in (("phase1", "-"), ("phase2", "--")):
        rows = _read_metrics_csv(logs_dir / phase / "metrics.csv")
        if not rows:
            continue
        series: dict[str, dict[int, float]] = {}
        for row in rows:
            epoch = int(row.get("epoch", 0)) + offset + 1
            for key in ("train_loss", "val_loss", "val_accuracy", "val_median_f1"):
                if key in row and not math.isnan(row[key]):
                    series.setdefault(key, {})[epoch] = row[key]
        for key, ax, colour in (("train_loss", ax_loss, "C0"), ("val_loss", ax_loss, "C1"),
                                ("val_accuracy", ax_score, "C2"),
                                ("val_median_f1", ax_score, "C3")):
            points = sorted(series.get(key, {}).items())
            if points:
                ax.plot(*zip(*points, strict=True), style, color=colour, marker="o", ms=3,
                        label=f"{key} ({phase})")
        last_epoch = max((e for s in series.values() for e in s), default=offset)
        if phase == "phase1":
            for ax in (ax_loss, ax_score):
                ax.axvline(last_epoch + 0.5, color="grey", lw=0.8)
        offset = last_epoch
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_score.set(xlabel="epoch", ylabel="fraction", title="validation scores", ylim=(0, 1))
    for ax in (ax_loss, ax_score):
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{model_name} {year}: weighted phase 1 | plain phase 2")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png
