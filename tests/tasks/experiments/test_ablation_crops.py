"""The crop LOCO ablation can leave the reliable-label selection out (a data component).

A tiny agronomic year is written directly (three 32 x 32 px tiles of 8 x 8 px square parcels, one
crop each, plus the parcel map), the ordinary labels and samples stages run on it, and a one-epoch
LSTM is trained for ``full`` and ``reliable_labels``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tasks.config.common import load_config
from tasks.config.food_security import FoodSecurityConfig
from tasks.experiments.ablation import run_ablation_worker, write_ablation_report
from tasks.experiments.ablation_crops import (
    RELIABLE_LABELS_COMPONENT,
    UNFILTERED_LABEL_OVERRIDES,
    build_dataset_variant,
    dataset_variant_adapter,
    needs_variant,
)
from tasks.experiments.search import load_study
from tasks.experiments.spaces import apply_overrides
from tasks.experiments.trainers import crop_adapter
from tasks.storage import read_manifest
from tests.tasks.food_security.conftest_ml import field_layout, write_tile_year

RUN_DATE = "2017-09-01"
YEAR = "2017-09_2018-08"
SIZE, BLOCK, N_CLASSES = 32, 8, 3
#: an INVEKOS code per class index used by field_layout (grassland, maize, class 2)
CODES = {0: 635, 1: 172, 2: 207}
REPO = Path(__file__).resolve().parents[3]


def write_parcel_map(root: Path) -> Path:
    """Square 80 m parcels matching ``field_layout`` (EPSG:32633, the tiles' grid)."""
    import geopandas as gpd
    from shapely.geometry import box

    classes = field_layout(SIZE, N_CLASSES, BLOCK)
    left, top, pixel = 500000.0, 5300000.0, 10.0
    geoms, codes, ids = [], [], []
    for row in range(0, SIZE, BLOCK):
        for col in range(0, SIZE, BLOCK):
            geoms.append(box(left + col * pixel, top - (row + BLOCK) * pixel,
                             left + (col + BLOCK) * pixel, top - row * pixel))
            codes.append(CODES[int(classes[row, col])])
            ids.append(len(ids) + 1)
    frame = gpd.GeoDataFrame({"FS_KENNUNG": np.array(ids, dtype=np.int64),
                              "SNAR_CODE": np.array(codes, dtype=np.int64)},
                             geometry=geoms, crs="EPSG:32633")
    path = root / "food_security" / "ingest" / YEAR / "parcels.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path)
    (path.parent / "manifest.json").write_text(json.dumps({"stage": "ingest"}))
    return path


def crop_config(root: Path) -> FoodSecurityConfig:
    cfg = FoodSecurityConfig.model_validate({
        "data_root": str(root), "seed": 3, "dask": {"cluster": "synchronous"},
        "labels": {"min_parcel_pixels": 10},
        "train": {"layers": 1, "cells": 8, "epochs_phase1": 1, "epochs_phase2": 0,
                  "batch_size": 256, "accelerator": "cpu"},
        "ablation": {"seeds": [1], "components": {
            RELIABLE_LABELS_COMPONENT: {"description": "reliable-label selection",
                                        "overrides": UNFILTERED_LABEL_OVERRIDES}}},
    })
    return cfg


@pytest.fixture(scope="module")
def crop_year(tmp_path_factory):
    """The tiny year with reliable labels and samples (shared: the tests only add to it)."""
    from tasks.food_security.labels import run_labels
    from tasks.food_security.samples import run_samples

    tmp_path = tmp_path_factory.mktemp("crop-year")
    for seed, tile in enumerate(("33UWP", "33UXP", "33UVP")):
        write_tile_year(tmp_path, RUN_DATE, tile=tile, size=SIZE, n_classes=N_CLASSES,
                        seed=seed, block=BLOCK)
    write_parcel_map(tmp_path)
    cfg = crop_config(tmp_path)
    run_labels(cfg, RUN_DATE)
    samples = run_samples(cfg, RUN_DATE)
    return cfg, samples


def test_unfiltered_labels_variant_has_more_train_samples_and_the_same_validation(crop_year):
    cfg, samples = crop_year
    trial_cfg = apply_overrides(cfg, UNFILTERED_LABEL_OVERRIDES)
    assert needs_variant(cfg, trial_cfg) and not needs_variant(cfg, cfg.model_copy(deep=True))
    variant = build_dataset_variant(cfg, trial_cfg, YEAR)
    reliable = samples["splits"]["train"]["n_samples"]
    # 16 parcels of 64 px: the 10 m inward buffer keeps the inner 6 x 6 px of each
    assert reliable <= 16 * 36 < variant["train_samples"] == 16 * 64
    assert variant["val_samples"] == samples["splits"]["val"]["n_samples"]
    folder = Path(variant["samples_dir"])
    assert (folder / "val.zarr").resolve() == (Path(samples["output"]) / "val.zarr").resolve()
    report = json.loads(Path(variant["labels_report"]).read_text())
    assert report["settings"]["buffer_m"] == 0.0
    assert all(not removed for removed in report["tiles"]["33UWP"]["removed"].values())
    again = build_dataset_variant(cfg, trial_cfg, YEAR)  # built once, then reused
    assert not again["built"] and again["samples_dir"] == variant["samples_dir"]
    other_seed = apply_overrides(cfg, {**UNFILTERED_LABEL_OVERRIDES, "seed": 99})
    assert build_dataset_variant(cfg, other_seed, YEAR)["samples_dir"] == variant["samples_dir"]
    assert read_manifest(samples["output"])["counts"]["train"] == reliable  # base untouched


def test_reliable_labels_is_a_loco_component_with_its_own_training_set(crop_year):
    cfg, samples = crop_year
    result = run_ablation_worker(cfg, crop_adapter(cfg, RUN_DATE))
    assert result["counts"]["complete"] == 2
    study = load_study(cfg, "food_security-ablation")
    by_component = {t.params["component"]: t for t in study.trials}
    full, left_out = by_component["full"], by_component[RELIABLE_LABELS_COMPONENT]
    assert full.user_attrs["n_samples"]["train"] == samples["splits"]["train"]["n_samples"]
    assert left_out.user_attrs["n_samples"]["train"] > full.user_attrs["n_samples"]["train"]
    assert left_out.user_attrs["n_samples"]["val"] == full.user_attrs["n_samples"]["val"]
    assert "dataset_variant" in left_out.user_attrs and "dataset_variant" not in full.user_attrs
    model_json = json.loads((Path(left_out.user_attrs["model_dir"]) / "model.json").read_text())
    assert "experiments/datasets" in model_json["samples_dir"]
    report = write_ablation_report(cfg)
    rows = {r["component"]: r for r in csv.DictReader(Path(report["table"]).open())}
    assert list(rows) == ["full", RELIABLE_LABELS_COMPONENT]
    left_out_samples = int(rows[RELIABLE_LABELS_COMPONENT]["train_samples"])
    assert left_out_samples > int(rows["full"]["train_samples"])
    assert "| reliable_labels | reliable-label selection | 1 |" in Path(
        report["markdown"]).read_text()


def test_adapter_with_a_fixed_samples_dir_is_left_alone(tmp_path):
    cfg = crop_config(tmp_path)
    adapter = crop_adapter(cfg, RUN_DATE)
    assert dataset_variant_adapter(cfg, adapter) is not adapter
    pinned = cfg.model_copy(deep=True)
    pinned.train.samples_dir = str(tmp_path)
    assert dataset_variant_adapter(pinned, adapter) is adapter


def test_the_shipped_crop_config_declares_the_reliable_labels_component():
    cfg = load_config(REPO / "configs" / "food_security.yaml")
    component = cfg.ablation.components[RELIABLE_LABELS_COMPONENT]
    assert component.overrides == UNFILTERED_LABEL_OVERRIDES
    assert apply_overrides(cfg, component.overrides).labels.outlier_filter.enabled is False
