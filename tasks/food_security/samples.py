"""Samples: labelled pixel time series split by tile into a versioned training dataset.

Each split (``train`` / ``val`` / ``test``) takes the reliable labels of its tiles
(``samples.split``) and the monthly composites of the same agronomic year. Per split and class at
most ``samples.max_per_class`` pixels are kept (random, seeded by ``seed``; the kept pixels are
in tile / row / column order); ``samples.fraction`` first keeps that share of every class, so a
small sample keeps the labels' own class imbalance (what the weighted first training phase is
for). The composites are read row block by row block, so memory holds
one block plus the selected samples. Output per :mod:`tasks.food_security.schema`:
``{root}/food_security/samples/{agronomic_year}/{split}.zarr`` (plus ``gap_filled`` uint8
(n, 12) per sample, an extension noted in the schema). ``band_mean`` / ``band_std`` are the
per-band statistics of the train split (over samples and months) and are stored in every split.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import numpy as np

from tasks.config.common import config_hash
from tasks.config.food_security import FoodSecurityConfig
from tasks.domain.crops import CROP_CLASSES, S2_BANDS
from tasks.food_security.schema import NO_LABEL
from tasks.storage import (
    agronomic_year_key,
    atomic_dir,
    read_manifest,
    stage_dir,
    write_manifest,
    zarr_array,
    zarr_attrs,
)

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


def select_pixels(labels: dict[str, np.ndarray], max_per_class: int | None,
                  rng: np.random.Generator, fraction: float | None = None) -> dict[str, np.ndarray]:
    """Choose labelled pixels per tile, capped per class over all tiles of a split.

    Args:
        labels: tile -> int16 label raster (y, x), -1 = no label.
        max_per_class: cap per class, None for all.
        rng: random generator (seeded).
        fraction: share of each class's pixels to keep (``max(1, round(fraction * n))``, then
            capped by ``max_per_class``); None keeps every pixel up to the cap.

    Returns:
        tile -> int64 flat pixel indices (sorted).

    """
    tiles = sorted(labels)
    flat = {t: np.flatnonzero(labels[t].ravel() != NO_LABEL) for t in tiles}
    if max_per_class is None and fraction is None:
        return flat
    owner = np.concatenate([np.full(len(flat[t]), i) for i, t in enumerate(tiles)]
                           or [np.empty(0, dtype=int)])
    pixel = np.concatenate([flat[t] for t in tiles] or [np.empty(0, dtype=np.int64)])
    cls = np.concatenate([labels[t].ravel()[flat[t]] for t in tiles]
                         or [np.empty(0, dtype=np.int16)])
    keep = np.zeros(len(pixel), dtype=bool)
    for c in np.unique(cls):
        idx = np.flatnonzero(cls == c)
        n_keep = len(idx) if fraction is None else max(1, round(fraction * len(idx)))
        if max_per_class is not None:
            n_keep = min(n_keep, max_per_class)
        if len(idx) > n_keep:
            idx = rng.choice(idx, size=n_keep, replace=False)
        keep[idx] = True
    return {t: np.sort(pixel[keep & (owner == i)]) for i, t in enumerate(tiles)}


def gather_tile_samples(composite: Path, label_store: Path, pixels: np.ndarray,
                        block_rows: int) -> dict[str, np.ndarray]:
    """Read the time series of ``pixels`` (flat indices) of one tile, row block by row block."""
    import zarr

    comp = zarr.open_group(str(composite), mode="r")
    lab = zarr.open_group(str(label_store), mode="r")
    refl = zarr_array(comp, "reflectance")
    gap = zarr_array(comp, "gap_filled")
    height, width = refl.shape[2:]
    rows, cols = np.divmod(pixels, width)
    n = len(pixels)
    x = np.empty((n, refl.shape[0], refl.shape[1]), dtype=np.float32)
    gap_out = np.empty((n, refl.shape[0]), dtype=np.uint8)
    label = np.asarray(zarr_array(lab, "label")[:])
    parcel = np.asarray(zarr_array(lab, "parcel_id")[:])
    for row0 in range(0, height, block_rows):
        sel = np.flatnonzero((rows >= row0) & (rows < row0 + block_rows))
        if len(sel) == 0:
            continue
        block = np.asarray(refl[:, :, row0:row0 + block_rows, :])  # (month, band, rows, x)
        gblock = np.asarray(gap[:, row0:row0 + block_rows, :])
        r, c = rows[sel] - row0, cols[sel]
        x[sel] = block[:, :, r, c].transpose(2, 0, 1)
        gap_out[sel] = gblock[:, r, c].T
    return {
        "x": x, "y": label[rows, cols].astype(np.int16), "row": rows.astype(np.int32),
        "col": cols.astype(np.int32), "parcel_id": parcel[rows, cols].astype(np.int64),
        "gap_filled": gap_out,
    }


def _write_split(path: Path, parts: dict[str, dict[str, np.ndarray]], attrs: dict[str, Any],
                 months: list[str]) -> dict[str, int]:
    import xarray as xr

    tiles = sorted(parts)
    def cat(name: str, empty_shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        arrays = [parts[t][name] for t in tiles]
        return np.concatenate(arrays) if arrays else np.empty(empty_shape, dtype=dtype)

    x = cat("x", (0, len(months), len(S2_BANDS)), np.float32)
    y = cat("y", (0,), np.int16)
    tile = np.concatenate([np.full(len(parts[t]["y"]), t, dtype="<U5") for t in tiles]
                          or [np.empty(0, dtype="<U5")])
    counts = {c: int((y == i).sum()) for i, c in enumerate(CROP_CLASSES)}
    ds = xr.Dataset(
        {
            "x": (("sample", "month", "band"), x),
            "y": ("sample", y),
            "tile": ("sample", tile),
            "row": ("sample", cat("row", (0,), np.int32)),
            "col": ("sample", cat("col", (0,), np.int32)),
            "parcel_id": ("sample", cat("parcel_id", (0,), np.int64)),
            "gap_filled": (("sample", "month"), cat("gap_filled", (0, len(months)), np.uint8)),
        },
        coords={"month": np.array(months, dtype=object), "band": np.array(S2_BANDS, dtype=object)},
        attrs={**attrs, "class_counts": counts, "n_samples": int(len(y))},
    )
    chunk = max(1, min(len(y), 65536))
    encoding = {"x": {"chunks": (chunk, len(months), len(S2_BANDS))}}
    ds.to_zarr(path, mode="w", zarr_format=3, consolidated=False, encoding=encoding)
    return counts


def run_samples(cfg: FoodSecurityConfig, run_date: dt.date | str) -> dict[str, Any]:
    """Build the train/val/test pixel samples of the agronomic year containing ``run_date``.

    Returns:
        ``{"output", "agronomic_year", "dataset_version", "splits": {split: {"path",
        "n_samples", "class_counts", "tiles"}}, "band_mean", "band_std"}``.

    Raises:
        ValueError: the train split has no labelled pixel (names its tiles).

    """
    key = agronomic_year_key(run_date)
    root = cfg.resolved_root()
    harmonised = stage_dir(root, cfg.use_case, "harmonise", key)
    labelled = stage_dir(root, cfg.use_case, "labels", key)
    read_manifest(harmonised)
    read_manifest(labelled)
    scfg = cfg.samples
    split_tiles = {"train": scfg.split.train_tiles, "val": scfg.split.val_tiles,
                   "test": scfg.split.test_tiles}
    rng = np.random.default_rng([cfg.seed, 7])
    import zarr

    months: list[str] = []
    gathered: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for split in SPLITS:
        labels = {}
        for tile in split_tiles[split]:
            store = labelled / f"{tile}.zarr"
            if not store.exists():
                raise FileNotFoundError(
                    f"{store} is missing: tile {tile} has no labels for {key}; re-run labels"
                )
            labels[tile] = np.asarray(zarr_array(zarr.open_group(str(store), mode="r"), "label")[:])
        chosen = select_pixels(labels, scfg.max_per_class, rng, scfg.fraction)
        gathered[split] = {}
        for tile, pixels in chosen.items():
            composite = harmonised / f"{tile}.zarr"
            months = list(zarr_attrs(zarr.open_group(str(composite), mode="r"))["months"])
            gathered[split][tile] = gather_tile_samples(composite, labelled / f"{tile}.zarr",
                                                        pixels, cfg.harmonise.chunk)
        log.info("samples %s %s: %d", key, split,
                 sum(len(p["y"]) for p in gathered[split].values()))
    train_x = [p["x"] for p in gathered["train"].values()]
    n_train = sum(len(x) for x in train_x)
    if n_train == 0:
        raise ValueError(
            f"agronomic year {key}: the train tiles {split_tiles['train']} have no reliable "
            "label; check labels/report.json (parcel map coverage, buffer, outlier filter)"
        )
    stacked = np.concatenate(train_x).reshape(-1, len(S2_BANDS))
    band_mean = np.nanmean(stacked, axis=0).astype(np.float64)
    band_std = np.nanstd(stacked, axis=0).astype(np.float64)
    final = stage_dir(root, cfg.use_case, "samples", key)
    result: dict[str, Any] = {}
    with atomic_dir(final) as tmp:
        for split in SPLITS:
            attrs = {
                "class_names": list(CROP_CLASSES), "bands": list(S2_BANDS),
                "band_mean": band_mean.round(6).tolist(), "band_std": band_std.round(6).tolist(),
                "tiles": list(split_tiles[split]), "dataset_version": scfg.dataset_version,
                "agronomic_year": key, "split": split, "months": months,
            }
            counts = _write_split(tmp / f"{split}.zarr", gathered[split], attrs, months)
            result[split] = {"path": str(final / f"{split}.zarr"),
                             "n_samples": int(sum(counts.values())),
                             "class_counts": {c: n for c, n in counts.items() if n},
                             "tiles": list(split_tiles[split])}
        write_manifest(
            tmp, stage="samples",
            inputs={"harmonise": str(harmonised), "labels": str(labelled)},
            config_hash=config_hash(cfg),
            counts={s: r["n_samples"] for s, r in result.items()},
            extra={"agronomic_year": key, "dataset_version": scfg.dataset_version,
                   "class_counts": {s: r["class_counts"] for s, r in result.items()}},
        )
    return {"output": str(final), "agronomic_year": key, "dataset_version": scfg.dataset_version,
            "splits": result, "band_mean": band_mean.tolist(), "band_std": band_std.tolist()}
