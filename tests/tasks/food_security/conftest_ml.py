"""Tiny synthetic stores in the food-security on-disk contract (tasks/food_security/schema.py).

Used by the train / predict / evaluate / DAG tests so they do not depend on the generator. Each
class has its own phenology curve (peak month and amplitude) plus noise, so a model can learn it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from tasks.config.food_security import FoodSecurityConfig
from tasks.domain.crops import CROP_CLASSES, S2_BANDS
from tasks.storage import agronomic_year_key

N_MONTHS = 12
BAND_GAIN = np.linspace(-0.05, 0.35, len(S2_BANDS))
BAND_BASE = np.linspace(0.05, 0.20, len(S2_BANDS))


def tiny_config(
    root: Path,
    *,
    block_rows: int | None = None,
    predict_batch_size: int | None = None,
    **train: object,
) -> FoodSecurityConfig:
    """Config of a tiny CPU model (1 layer of 8 cells, 2 + 1 epochs) writing under ``root``.

    ``train`` overrides ``train`` settings (e.g. ``epochs_phase1=1``); ``block_rows`` and
    ``predict_batch_size`` set ``predict.block_rows`` / ``predict.batch_size`` when given.
    """
    cfg = FoodSecurityConfig(data_root=str(root))
    settings = {"layers": 1, "cells": 8, "epochs_phase1": 2, "epochs_phase2": 1,
                "batch_size": 64, "accelerator": "cpu", **train}
    for key, value in settings.items():
        setattr(cfg.train, key, value)
    if block_rows is not None:
        cfg.predict.block_rows = block_rows
    if predict_batch_size is not None:
        cfg.predict.batch_size = predict_batch_size
    return cfg


def class_series(
    class_index: np.ndarray, rng: np.random.Generator, noise: float = 0.02
) -> np.ndarray:
    """Reflectance series (n, month, band) of the given class indices."""
    months = np.arange(N_MONTHS)
    peak = (class_index[:, None] * 5) % N_MONTHS
    width = 1.5 + (class_index[:, None] % 3)
    distance = np.minimum(np.abs(months[None] - peak), N_MONTHS - np.abs(months[None] - peak))
    greenness = np.exp(-0.5 * (distance / width) ** 2)  # (n, month)
    series = BAND_BASE[None, None] + greenness[..., None] * BAND_GAIN[None, None]
    series = series + rng.normal(0, noise, series.shape)
    return series.astype(np.float32)


def write_sample_store(
    path: Path,
    x: np.ndarray,
    y: np.ndarray,
    tile: str,
    band_mean: list[float],
    band_std: list[float],
    class_names: list[str],
    chunk_rows: int = 64,
) -> Path:
    n = len(y)
    ds = xr.Dataset(
        {
            "x": (("sample", "month", "band"), x.astype(np.float32)),
            "y": (("sample",), y.astype(np.int16)),
            "tile": (("sample",), np.array([tile] * n, dtype=object)),
            "row": (("sample",), np.arange(n, dtype=np.int32)),
            "col": (("sample",), np.zeros(n, dtype=np.int32)),
            "parcel_id": (("sample",), np.arange(n, dtype=np.int64)),
        },
        attrs={
            "class_names": class_names,
            "class_counts": np.bincount(y, minlength=len(class_names)).tolist(),
            "bands": list(S2_BANDS),
            "band_mean": band_mean,
            "band_std": band_std,
            "tiles": [tile],
            "dataset_version": "test-v1",
        },
    )
    ds = ds.chunk({"sample": chunk_rows})
    ds.to_zarr(path, mode="w", consolidated=False)
    return path


def _manifest(folder: Path, stage: str) -> None:
    (folder / "manifest.json").write_text(json.dumps({"stage": stage}))


def write_sample_year(
    root: Path,
    run_date: str,
    n_classes: int = 4,
    n_train: int = 400,
    n_val: int = 120,
    n_test: int = 120,
    seed: int = 0,
) -> Path:
    """Write train/val/test stores of an imbalanced ``n_classes`` problem; return the folder."""
    rng = np.random.default_rng(seed)
    folder = root / "food_security" / "samples" / agronomic_year_key(run_date)
    folder.mkdir(parents=True, exist_ok=True)
    probs = np.array([2.0**-i for i in range(n_classes)])
    probs /= probs.sum()
    class_names = list(CROP_CLASSES)
    stores = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        y = rng.choice(n_classes, size=n, p=probs)
        y[:n_classes] = np.arange(n_classes)  # every class present
        stores[split] = (class_series(y, rng), y)
    x_train = stores["train"][0]
    mean = x_train.reshape(-1, x_train.shape[-1]).mean(0).tolist()
    std = x_train.reshape(-1, x_train.shape[-1]).std(0).tolist()
    for split, (x, y) in stores.items():
        write_sample_store(folder / f"{split}.zarr", x, y, "33UVP", mean, std, class_names)
    _manifest(folder, "samples")
    return folder


def field_layout(size: int, n_classes: int, block: int = 8) -> np.ndarray:
    """Class raster (y, x) of square fields of ``block`` pixels."""
    rows = np.arange(size) // block
    cols = np.arange(size) // block
    return ((rows[:, None] * 7 + cols[None, :] * 3) % n_classes).astype(np.int16)


def write_tile_year(
    root: Path,
    run_date: str,
    tile: str = "33UVP",
    size: int = 48,
    n_classes: int = 4,
    seed: int = 1,
    block: int = 8,
) -> tuple[Path, Path]:
    """Write the composites and labels zarr of one tile; return both paths."""
    rng = np.random.default_rng(seed)
    year = agronomic_year_key(run_date)
    classes = field_layout(size, n_classes, block)
    series = class_series(classes.reshape(-1), rng)  # (pixels, month, band)
    reflectance = series.reshape(size, size, N_MONTHS, -1).transpose(2, 3, 0, 1)
    start_year = int(year[:4])
    months = [f"{start_year + (m + 8) // 12}-{(m + 8) % 12 + 1:02d}" for m in range(N_MONTHS)]
    transform = [500000.0, 10.0, 0.0, 5300000.0, 0.0, -10.0]
    attrs = {"crs": "EPSG:32633", "transform": transform, "tile": tile,
             "agronomic_year": year, "bands": list(S2_BANDS), "months": months}
    composites = xr.Dataset(
        {
            "reflectance": (("month", "band", "y", "x"), reflectance.astype(np.float32)),
            "valid_count": (("month", "y", "x"), np.full((12, size, size), 3, np.uint16)),
            "gap_filled": (("month", "y", "x"), np.zeros((12, size, size), np.uint8)),
        },
        coords={"band": list(S2_BANDS), "month": months,
                "y": 5300000.0 - 5 - 10.0 * np.arange(size),
                "x": 500000.0 + 5 + 10.0 * np.arange(size)},
        attrs=attrs,
    ).chunk({"y": 16, "x": 16})
    harmonise = root / "food_security" / "harmonise" / year
    harmonise.mkdir(parents=True, exist_ok=True)
    composites_path = harmonise / f"{tile}.zarr"
    composites.to_zarr(composites_path, mode="w", consolidated=False)
    _manifest(harmonise, "harmonise")
    label = classes.copy()
    border = (np.arange(size) % block == 0)
    label[border, :] = -1
    label[:, border] = -1
    parcel = (np.arange(size)[:, None] // block) * 1000 + np.arange(size)[None] // block
    labels = xr.Dataset(
        {"label": (("y", "x"), label), "parcel_id": (("y", "x"), parcel.astype(np.int64))},
        attrs={**attrs, "class_names": list(CROP_CLASSES)},
    )
    labels_dir = root / "food_security" / "labels" / year
    labels_dir.mkdir(parents=True, exist_ok=True)
    labels_path = labels_dir / f"{tile}.zarr"
    labels.to_zarr(labels_path, mode="w", consolidated=False)
    _manifest(labels_dir, "labels")
    return composites_path, labels_path
