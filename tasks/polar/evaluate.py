"""Evaluate a trained sea-ice model: accuracy, per-class precision / recall / F1, confusion matrix.

Two sources of truth: a patch training set (by default only the model's own validation split,
recomputed from the seed and fraction in ``model.json``) or harmonised scenes with their label
rasters (dense prediction compared pixel by pixel, land / invalid / unlabelled pixels excluded,
processed tile by tile). Results go to ``{model_dir}/evaluation/`` (replaced atomically):
``metrics.json``, ``confusion_matrix.json`` and ``confusion_matrix.png``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import xarray as xr

from tasks.config.polar import PolarConfig
from tasks.datasets.ice_patches import (
    open_patch_set,
    scheme_targets,
    spatial_blocks,
    split_indices,
)
from tasks.domain import ice
from tasks.plots import plot_confusion_matrix
from tasks.polar import schema
from tasks.polar.predict import ScenePredictor
from tasks.polar.train import LoadedIceModel, load_model
from tasks.storage import atomic_dir, code_version, zarr_array

log = logging.getLogger(__name__)


def metrics_from_confusion(confusion: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro F1 and per-class precision / recall / F1 / support.

    ``confusion[i, j]`` counts samples of true class i predicted as j.
    """
    confusion = np.asarray(confusion, dtype=np.int64)
    total = int(confusion.sum())
    true_pos = np.diag(confusion).astype(float)
    predicted = confusion.sum(axis=0).astype(float)
    actual = confusion.sum(axis=1).astype(float)
    precision = np.divide(true_pos, predicted, out=np.zeros_like(true_pos), where=predicted > 0)
    recall = np.divide(true_pos, actual, out=np.zeros_like(true_pos), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    per_class = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
               "support": int(actual[i])}
        for i, name in enumerate(class_names)
    }
    present = actual > 0
    return {
        "accuracy": float(true_pos.sum() / total) if total else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "n_samples": total,
        "per_class": per_class,
    }


def _confusion_patches(model: LoadedIceModel, dataset_path: Path, split: str,
                       batch_size: int) -> tuple[np.ndarray, dict[str, Any]]:
    group, attrs = open_patch_set(dataset_path)
    meta = model.meta
    if int(attrs["patch_size"]) != int(meta["patch_size"]):
        raise ValueError(f"{dataset_path} holds {attrs['patch_size']} px patches; model "
                         f"{model.model_dir} needs {meta['patch_size']} px")
    missing = [b for b in meta["bands"] if b not in attrs["bands"]]
    if missing:
        raise ValueError(f"{dataset_path}: bands {missing} needed by the model are missing")
    band_index = [attrs["bands"].index(b) for b in meta["bands"]]
    codes = np.asarray(zarr_array(group, "y")[:], dtype=np.int64)
    index = np.arange(len(codes))
    if split == "val":
        hp = meta["hyperparameters"]
        _, index = split_indices(codes, hp["val_fraction"], hp["seed"], spatial_blocks(group))
    targets = scheme_targets(codes[index], meta["class_scheme"])
    n = len(meta["classes"])
    confusion = np.zeros((n, n), dtype=np.int64)
    mean = model.band_mean[None, :, None, None]
    std = model.band_std[None, :, None, None]
    with torch.inference_mode():
        for start in range(0, len(index), batch_size):
            chunk = index[start:start + batch_size]
            x = (np.asarray(zarr_array(group, "x").get_orthogonal_selection(
                (chunk, np.asarray(band_index), slice(None), slice(None)))) - mean) / std
            predicted = model.net(torch.from_numpy(x.astype(np.float32))).argmax(1).numpy()
            np.add.at(confusion, (targets[start:start + batch_size], predicted), 1)
    return confusion, {"source": "patches", "dataset": str(dataset_path), "split": split,
                       "dataset_version": attrs.get("dataset_version")}


def _confusion_scenes(model: LoadedIceModel, scene_zarrs: Sequence[Path],
                      label_zarrs: Sequence[Path], tile: int) -> tuple[np.ndarray, dict[str, Any]]:
    if len(scene_zarrs) != len(label_zarrs) or not scene_zarrs:
        raise ValueError("need one label raster per scene and at least one scene")
    scheme = model.meta["class_scheme"]
    n = len(model.meta["classes"])
    lookup = np.full(len(ice.ice_classes()) + 1, -1, dtype=np.int64)
    for c in ice.ice_classes():
        lookup[c.code] = ice.to_model_target(c.code, scheme)
    confusion = np.zeros((n, n), dtype=np.int64)
    predictor = ScenePredictor(model, tile=tile)
    s = predictor.stride
    for scene_zarr, label_zarr in zip(scene_zarrs, label_zarrs, strict=True):
        scene = xr.open_zarr(scene_zarr)
        labels = xr.open_zarr(label_zarr)
        cells = predictor.class_map(scene, progress=False)
        height, width = scene.sizes["y"], scene.sizes["x"]
        for r0 in range(0, height, tile // s * s):
            r1 = min(height, r0 + tile // s * s)
            predicted = np.repeat(np.repeat(cells[r0 // s: -(-r1 // s)], s, 0), s, 1)
            predicted = predicted[: r1 - r0, :width].astype(np.int64)
            label = labels[schema.LABEL_VAR].isel(y=slice(r0, r1)).values.astype(np.int64)
            keep = ((label != schema.NO_LABEL)
                    & (scene[schema.LAND_MASK_VAR].isel(y=slice(r0, r1)).values == 0)
                    & (scene[schema.VALID_MASK_VAR].isel(y=slice(r0, r1)).values == 1))
            np.add.at(confusion, (lookup[label[keep]], predicted[keep]), 1)
    return confusion, {"source": "scenes", "scenes": [str(p) for p in scene_zarrs],
                       "labels": [str(p) for p in label_zarrs]}


def evaluate_model(
    model_dir: Path,
    dataset_path: Path | None = None,
    *,
    scene_zarrs: Sequence[Path] | None = None,
    label_zarrs: Sequence[Path] | None = None,
    split: Literal["val", "all"] = "val",
    batch_size: int = 512,
    tile: int | None = None,
    cfg: PolarConfig | None = None,
    out_dir: Path | None = None,
) -> dict[str, Any]:
    """Evaluate a model folder and write ``{model_dir}/evaluation/`` (or ``out_dir``) atomically.

    Args:
        model_dir: model folder of :func:`tasks.polar.train.train_model`.
        dataset_path: a ``patches_{size}.zarr`` training set (or give scenes instead).
        scene_zarrs: harmonised scenes for a dense, pixel-by-pixel evaluation.
        label_zarrs: their label rasters, same order.
        split: with a training set, ``val`` (the model's validation split) or ``all`` patches.
        batch_size: patches per forward pass.
        tile: tile edge in pixels for dense evaluation (default ``cfg.predict.tile`` or 1024).
        cfg: the polar config, for defaults (optional).
        out_dir: folder for the results instead of ``{model_dir}/evaluation`` (e.g. an
            evaluation on other days, :mod:`tasks.polar.generalisation`); replaced atomically.

    Returns:
        ``{"evaluation_dir", "metrics", "confusion_matrix", "png"}``; ``metrics`` holds
        ``accuracy``, ``macro_f1`` and ``per_class`` precision / recall / F1 / support.

    """
    model = load_model(model_dir)
    tile = tile or (cfg.predict.tile if cfg is not None else 1024)
    if (dataset_path is None) == (scene_zarrs is None):
        raise ValueError("give either dataset_path (a patch training set) or scene_zarrs + "
                         "label_zarrs, not both / neither")
    if dataset_path is not None:
        confusion, source = _confusion_patches(model, Path(dataset_path), split, batch_size)
    else:
        confusion, source = _confusion_scenes(model, [Path(p) for p in scene_zarrs or []],
                                              [Path(p) for p in label_zarrs or []], tile)
    names = list(model.meta["classes"])
    if confusion.sum() == 0:
        raise ValueError(f"no labelled samples to evaluate {model.model_dir} on ({source})")
    metrics = metrics_from_confusion(confusion, names)
    final = Path(out_dir) if out_dir is not None else model.model_dir / "evaluation"
    with atomic_dir(final) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(
            {**metrics, **source, "model": model.meta["name"], "code_version": code_version()},
            indent=2, sort_keys=True))
        (tmp / "confusion_matrix.json").write_text(json.dumps(
            {"classes": names, "matrix": confusion.tolist(), "rows": "true",
             "columns": "predicted"}, indent=2))
        plot_confusion_matrix(confusion, names, tmp / "confusion_matrix.png",
                              f"{model.meta['name']} {model.meta['patch_size']}px - accuracy "
                              f"{metrics['accuracy']:.2%} ({source['source']})",
                              cell_text="counts_and_share", show_zero_cells=True,
                              colour_label="share of true class")
    log.info("evaluated %s: accuracy %.4f macro F1 %.4f", model.model_dir, metrics["accuracy"],
             metrics["macro_f1"])
    return {"evaluation_dir": str(final), "metrics": metrics,
            "confusion_matrix": confusion.tolist(), "png": str(final / "confusion_matrix.png")}
