"""Tiny product files in the shapes the polar, crop and LUCAS stages write (test helpers)."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import shapely

DAY = "2026-01-25"
YEAR = "2017-09_2018-08"
SCENE = "S1A_EW_GRDM_1SDH_20260125T071500_20260125T071600_012345_00ABCD_1A2B"
TILE = "T33UVP"


def write_ice_chart(root: Path, day: str = DAY, scene: str = SCENE, bad: bool = False) -> Path:
    """Ice-chart polygons in EPSG:3413 (Fram Strait) + manifest, as predict writes them."""
    folder = root / "polar" / "predict" / day
    folder.mkdir(parents=True, exist_ok=True)
    x0, y0 = 700_000.0, -1_000_000.0
    geoms = [
        shapely.box(x0, y0, x0 + 20_000, y0 + 20_000),
        shapely.box(x0 + 20_000, y0, x0 + 40_000, y0 + 20_000),
        shapely.box(x0, y0 + 20_000, x0 + 40_000, y0 + 40_000),
    ]
    classes = ["water", "young", "deformed"]
    if bad:
        geoms.append(shapely.Polygon([(x0, y0), (x0 + 10, y0 + 10), (x0 + 10, y0), (x0, y0 + 10)]))
        classes.append("young")
        geoms.append(shapely.box(x0, y0, x0 + 5, y0 + 5))
        classes.append("multiyear_glacier")
    frame = gpd.GeoDataFrame(
        {"ice_class": classes, "confidence": [0.9] * len(classes)}, geometry=geoms, crs="EPSG:3413"
    )
    path = folder / f"{scene}_chart.geojson"
    frame.to_file(path, driver="GeoJSON")
    (folder / "manifest.json").write_text(
        json.dumps(
            {
                "stage": "predict",
                "inputs": [f"polar/harmonise/{day}/{scene}.zarr"],
                "model": {"name": "adhoc_cnn-v3", "path": "polar/registry/adhoc_cnn/v3"},
                "counts": {"polygons": len(classes)},
            }
        )
    )
    return path


def crop_fields(
    n_per_side: int = 4, size_m: float = 200.0, x0: float = 540_000.0, y0: float = 5_330_000.0
) -> gpd.GeoDataFrame:
    """A grid of square fields in UTM 33N separated by 10 m roads, cycling through classes."""
    from tasks.domain.crops import CROP_CLASSES

    geoms, classes = [], []
    for i in range(n_per_side):
        for j in range(n_per_side):
            x, y = x0 + i * (size_m + 10), y0 + j * (size_m + 10)
            geoms.append(shapely.box(x, y, x + size_m, y + size_m))
            classes.append(CROP_CLASSES[(i * n_per_side + j) % 4])
    return gpd.GeoDataFrame(
        {"crop_class": classes, "confidence": [0.8] * len(classes)},
        geometry=geoms,
        crs="EPSG:32633",
    )


def write_crop_instances(root: Path, year: str = YEAR, tile: str = TILE) -> Path:
    folder = root / "food_security" / "predict" / year / tile  # layout of food_security/predict.py
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{tile}_instances.parquet"
    crop_fields().to_parquet(path)
    (folder / "manifest.json").write_text(
        json.dumps({"stage": "predict", "model": "lstm-2x100", "inputs": [tile]})
    )
    return path


LUCAS_HEADER = "POINT_ID,GPS_LAT,GPS_LONG,TH_LAT,TH_LONG,LC1,SURVEY_DATE,OBS_TYPE,NUTS0\n"


def lucas_rows() -> list[str]:
    """Points near the crop fields: inside a same-class field, 5 m outside one, far away ..."""
    from pyproj import Transformer

    to_wgs = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    fields = crop_fields()
    rows = []
    specs = [  # (id, x, y, LC1) in UTM; field (0,0) is grassland [540000..540200]
        ("47001", 540_100, 5_330_100, "E20"),  # inside grassland field: matched
        ("47002", 540_205, 5_330_100, "E20"),  # on the road, 5 m from grassland: matched
        ("47003", 540_205, 5_330_100, "B16"),  # 5 m from grassland, 5 m from field (1,0)
        ("47004", 541_500, 5_331_500, "E20"),  # far from every field: unmatched
        ("47005", 540_100, 5_330_330, "B16"),  # inside field (0,1) = maize: matched
        ("47006", 540_100, 5_330_100, "B33"),  # soy inside grassland: unmatched
    ]
    del fields
    for point_id, x, y, lc1 in specs:
        lon, lat = to_wgs.transform(x, y)
        rows.append(f"{point_id},{lat:.8f},{lon:.8f},{lat:.6f},{lon:.6f},{lc1},18/06/18,1,AT\n")
    return rows


def write_lucas(root: Path, year: str = "2018", extra: str = "") -> Path:
    folder = root / "lucas" / "points" / year
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lucas_2018_at.csv"
    path.write_text(LUCAS_HEADER + "".join(lucas_rows()) + extra)
    return path


def write_model_and_evaluation(root: Path) -> tuple[Path, Path]:
    model_dir = root / "food_security" / "registry" / "lstm" / "v1"
    model_dir.mkdir(parents=True, exist_ok=True)
    model = model_dir / "model.json"
    model.write_text(
        json.dumps(
            {
                "name": "lstm-2x100",
                "dataset_version": "v1",
                "hyperparameters": {
                    "layers": 2,
                    "cells": 100,
                    "learning_rate": 0.001,
                    "optimizer": "rmsprop",
                },
                "metrics": {"val_overall_accuracy": 0.8539, "val_f1": 0.8408},
            }
        )
    )
    eval_dir = root / "food_security" / "evaluate" / YEAR
    eval_dir.mkdir(parents=True, exist_ok=True)
    evaluation = eval_dir / "lucas.json"
    evaluation.write_text(
        json.dumps(
            {
                "model": "lstm-2x100",
                "dataset": "LUCAS 2018",
                "metrics": {
                    "overall_accuracy": 0.8972,
                    "f1": 0.842,
                    "per_class_f1": {"maize": 0.91, "grassland": 0.88},
                },
            }
        )
    )
    return model, evaluation
