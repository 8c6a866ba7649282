"""run_labels, write_label_store and the parcel-map readers on hand-made inputs (issue 19).

The harmonise output (three 20 x 20 tiles of 10 m with a red and a NIR band) and the parcel map
(two parcels on pixel edges) are written here directly, so the stage runs in a second instead
of after the generate -> harmonise pipeline. Kept pixels, report, manifest and stores are
checked against counts worked out by hand from the geometry.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import xarray as xr
import zarr
from shapely.geometry import box

from tasks.config.common import config_hash
from tasks.domain.crops import CROP_CLASSES
from tasks.food_security import labels as lb
from tasks.food_security.schema import NO_LABEL
from tasks.storage import agronomic_year_key, stage_dir, write_manifest, zarr_array
from tests.tasks.food_security.s2_pipeline_data import small_config

X0, Y0, PIXEL, SIZE = 500_000.0, 5_300_000.0, 10.0, 20
RUN_DATE = dt.date(2025, 10, 1)
KEY = agronomic_year_key(RUN_DATE)  # 2025-09_2026-08
TILES = {"33UWP": X0, "33UXP": X0 + 50_000.0, "33UVP": X0}  # 33UXP: no parcel


def _parcel(col0: int, row0: int, col1: int, row1: int) -> Any:
    return box(X0 + col0 * PIXEL, Y0 - row1 * PIXEL, X0 + col1 * PIXEL, Y0 - row0 * PIXEL)


def _cfg(root: Path, **overrides: Any) -> Any:
    return small_config(root, **{"harmonise.chunk": 16, "labels.min_parcel_pixels": 10,
                                 "labels.buffer_m": 10.0, "labels.outlier_filter.enabled": False,
                                 "labels.outside_parcel_map": "empty", **overrides})


def _write_inputs(root: Path, parcel_map: Path | None = None) -> Path:
    """The year's harmonise output (manifest + three tiles) and the parcel map; return the map."""
    harmonised = stage_dir(root, "food_security", "harmonise", KEY)
    harmonised.mkdir(parents=True)
    write_manifest(harmonised, stage="harmonise", inputs=[], config_hash="-")
    for tile, x0 in TILES.items():
        red = np.full((2, SIZE, SIZE), 0.1, dtype=np.float32)
        nir = np.full((2, SIZE, SIZE), 0.3, dtype=np.float32)
        red[:, 5, 5] = nir[:, 5, 5] = np.nan  # never observed, inside the grassland parcel
        gap = np.zeros((2, SIZE, SIZE), dtype=bool)
        xr.Dataset(
            {"reflectance": (("month", "band", "y", "x"), np.stack([red, nir], axis=1)),
             "gap_filled": (("month", "y", "x"), gap),
             "valid_count": (("month", "y", "x"), np.ones((2, SIZE, SIZE), np.int16))},
            attrs={"crs": "EPSG:32633", "bands": ["B04", "B08"],
                   "transform": [x0, PIXEL, 0.0, Y0, 0.0, -PIXEL]},
        ).to_zarr(harmonised / f"{tile}.zarr", zarr_format=3, consolidated=False)
    path = parcel_map or stage_dir(root, "food_security", "ingest", KEY) / "parcels.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = gpd.GeoDataFrame({"SNAR_CODE": [635, 172], "FS_KENNUNG": [501, 502]},
                             geometry=[_parcel(0, 0, 10, 10), _parcel(12, 12, 20, 20)],
                             crs="EPSG:32633")
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_file(path)
    return path


def _hand_labels() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(label, declared, parcel id) of a tile with both parcels, by hand."""
    grass, maize = CROP_CLASSES.index("grassland"), CROP_CLASSES.index("maize")
    declared = np.full((SIZE, SIZE), NO_LABEL, np.int16)
    parcel_id = np.full((SIZE, SIZE), -1, np.int64)
    declared[0:10, 0:10], parcel_id[0:10, 0:10] = grass, 501
    declared[12:20, 12:20], parcel_id[12:20, 12:20] = maize, 502
    keep = np.zeros((SIZE, SIZE), bool)
    keep[1:9, 1:9] = True  # 10 m inward buffer: one pixel off each side
    keep[13:19, 13:19] = True
    keep[5, 5] = False  # never observed
    return np.where(keep, declared, NO_LABEL).astype(np.int16), declared, parcel_id


def test_run_labels_writes_stores_report_and_manifest_of_what_it_kept(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "root"
    map_path = _write_inputs(root)
    cfg = _cfg(root)
    with caplog.at_level(logging.INFO, logger="tasks.food_security.labels"):
        result = lb.run_labels(cfg, RUN_DATE)
    final = stage_dir(root, "food_security", "labels", KEY)
    harmonised = stage_dir(root, "food_security", "harmonise", KEY)
    label, declared, parcel_id = _hand_labels()
    kept = {"grassland": 63, "maize": 36}
    tiles = {
        "33UWP": {"path": str(final / "33UWP.zarr"), "labelled_pixels": 99,
                  "unknown_code_parcels": 0, "outside_parcel_map": False},
        "33UXP": {"path": str(final / "33UXP.zarr"), "labelled_pixels": 0,
                  "unknown_code_parcels": 0, "outside_parcel_map": True},
    }
    tiles["33UVP"] = {**tiles["33UWP"], "path": str(final / "33UVP.zarr")}
    assert result == {"output": str(final), "report": str(final / "report.json"),
                      "agronomic_year": KEY, "tiles": tiles}
    for tile, summary in tiles.items():
        assert f"labels {KEY} {tile}: {summary}" in caplog.messages
    (warning,) = [m for m in caplog.messages if m.startswith("tile 33UXP (bounds ")]
    assert f" lies entirely outside the parcel map {map_path} (bounds " in warning
    assert warning.endswith(": writing it without labels")
    # the stores: hand-made labels, the grid of the tile, chunks of harmonise.chunk
    for tile, x0 in TILES.items():
        group = zarr.open_group(str(final / f"{tile}.zarr"), mode="r")
        outside = tile == "33UXP"
        want = {"label": np.full_like(label, NO_LABEL) if outside else label,
                "declared_label": np.full_like(declared, NO_LABEL) if outside else declared,
                "parcel_id": np.full_like(parcel_id, -1) if outside else parcel_id}
        for name, values in want.items():
            array = zarr_array(group, name)
            np.testing.assert_array_equal(np.asarray(array[:]), values)
            assert array.dtype == values.dtype and array.chunks == (16, 16)
            assert array.metadata.dimension_names == ("y", "x")  # type: ignore[union-attr]
        np.testing.assert_allclose(np.asarray(zarr_array(group, "x")[:]),
                                   x0 + PIXEL * (np.arange(SIZE) + 0.5))
        np.testing.assert_allclose(np.asarray(zarr_array(group, "y")[:]),
                                   Y0 - PIXEL * (np.arange(SIZE) + 0.5))
        attrs = dict(group.attrs)
        assert attrs == {"crs": "EPSG:32633", "transform": [x0, PIXEL, 0.0, Y0, 0.0, -PIXEL],
                         "tile": tile, "agronomic_year": KEY, "class_names": list(CROP_CLASSES),
                         "no_label": NO_LABEL}
    # report.json: what each rule removed, per tile
    report = json.loads((final / "report.json").read_text())
    assert set(report) == {"agronomic_year", "parcel_map", "rules", "settings", "tiles"}
    assert report["agronomic_year"] == KEY and report["parcel_map"] == str(map_path)
    assert report["rules"] == list(lb.RULES)
    assert report["settings"] == cfg.labels.model_dump(mode="json")
    assert report["tiles"]["33UWP"]["kept"] == kept == report["tiles"]["33UVP"]["kept"]
    assert report["tiles"]["33UWP"]["removed"] == {
        "border_buffer": {"grassland": 100 - 64, "maize": 64 - 36}, "tiny_parcel": {},
        "no_observation": {"grassland": 1}, "outlier": {}}
    assert report["tiles"]["33UXP"]["outside_parcel_map"] is True
    assert report["tiles"]["33UXP"]["kept"] == {}
    # the manifest
    manifest = json.loads((final / "manifest.json").read_text())
    assert manifest["stage"] == "labels"
    assert manifest["inputs"] == {"harmonise": str(harmonised), "parcel_map": str(map_path)}
    assert manifest["config_hash"] == config_hash(cfg)
    assert manifest["counts"] == {"33UWP": 99, "33UXP": 0, "33UVP": 99}
    assert manifest["agronomic_year"] == KEY
    assert sorted(p.name for p in final.iterdir()) == [
        "33UVP.zarr", "33UWP.zarr", "33UXP.zarr", "manifest.json", "report.json"]


def test_run_labels_reads_a_directory_parcel_map_of_the_year(tmp_path: Path) -> None:
    root = tmp_path / "root"
    map_path = _write_inputs(root, tmp_path / "maps" / f"invekos_{KEY}.gpkg")
    pattern = str(tmp_path / "maps" / "invekos_{agronomic_year}.gpkg")
    cfg = _cfg(root, **{"ingest.source": "directory", "ingest.directory": str(tmp_path),
                        "ingest.parcel_map": pattern})
    assert lb.parcel_map_path(cfg, KEY) == map_path
    result = lb.run_labels(cfg, RUN_DATE)
    assert result["tiles"]["33UWP"]["labelled_pixels"] == 99
    report = json.loads(Path(result["report"]).read_text())
    assert report["parcel_map"] == str(map_path)


def test_run_labels_refuses_missing_inputs_with_what_to_run(tmp_path: Path) -> None:
    root = tmp_path / "root"
    cfg = _cfg(root)
    harmonised = stage_dir(root, "food_security", "harmonise", KEY)
    with pytest.raises(FileNotFoundError, match=f"{harmonised}"):
        lb.run_labels(cfg, RUN_DATE)
    map_path = _write_inputs(root)
    assert lb.parcel_map_path(cfg, KEY) == map_path
    missing_tile = harmonised / "33UXP.zarr"
    shutil.rmtree(missing_tile)
    with pytest.raises(FileNotFoundError) as tile_info:
        lb.run_labels(cfg, RUN_DATE)
    assert str(tile_info.value) == (
        f"{missing_tile} is missing: tile 33UXP was not harmonised for {KEY}; re-run the "
        "harmonise stage with the same config")
    assert not stage_dir(root, "food_security", "labels", KEY).exists()
    map_path.unlink()
    with pytest.raises(FileNotFoundError) as map_info:
        lb.run_labels(cfg, RUN_DATE)
    assert str(map_info.value) == (
        f"parcel map {map_path} does not exist; run the ingest/generate stage for that year or "
        "set ingest.parcel_map")


def test_read_parcel_map_checks_crs_and_code_column(tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame({"SNAR_CODE": [635], "FS_KENNUNG": [1]},
                             geometry=[_parcel(0, 0, 2, 2)], crs="EPSG:32633")
    parquet = tmp_path / "parcels.parquet"
    frame.to_parquet(parquet)
    got = lb.read_parcel_map(parquet, "SNAR_CODE")
    assert got.crs == frame.crs and list(got["SNAR_CODE"]) == [635]
    assert got.geometry.iloc[0].equals(frame.geometry.iloc[0])
    with pytest.raises(ValueError) as column:
        lb.read_parcel_map(parquet, "CODE")
    assert str(column.value) == (
        f"parcel map {parquet} has no column 'CODE' (ingest.crop_code_column); "
        "columns: ['SNAR_CODE', 'FS_KENNUNG', 'geometry']")
    shapefile = tmp_path / "no_crs.shp"  # without its .prj a shapefile has no CRS
    gpd.GeoDataFrame({"SNAR_CODE": [635]}, geometry=[_parcel(0, 0, 2, 2)]).to_file(shapefile)
    with pytest.raises(ValueError) as crs:
        lb.read_parcel_map(shapefile, "SNAR_CODE")
    assert str(crs.value) == f"parcel map {shapefile} has no CRS; set one (INVEKOS: EPSG:31287)"
    plain = tmp_path / "plain.parquet"  # a parquet file without GeoParquet metadata
    frame.drop(columns="geometry").to_parquet(plain)
    with pytest.raises(ValueError, match=str(plain)):
        lb.read_parcel_map(plain, "SNAR_CODE")


def _label(tmp_path: Path, parcels: gpd.GeoDataFrame, **overrides: Any) -> tuple[Any, Any]:
    """label_tile of tile 33UWP of the hand-made harmonise output with these parcels."""
    root = tmp_path / "root"
    if not root.exists():
        _write_inputs(root)
    composite = stage_dir(root, "food_security", "harmonise", KEY) / "33UWP.zarr"
    arrays, report, _ = lb.label_tile(_cfg(root, **overrides), "33UWP", composite, parcels,
                                      tmp_path / "map.parquet")
    return arrays, report


def test_sub_metre_buffers_drop_centres_that_close_to_the_border(tmp_path: Path) -> None:
    # right edge 0.3 m beyond the centres of column 4: only a buffer over 0.3 m drops them
    parcels = gpd.GeoDataFrame({"SNAR_CODE": [635], "FS_KENNUNG": [1]},
                               geometry=[box(X0, Y0 - 100.0, X0 + 45.3, Y0)], crs="EPSG:32633")
    settings = {"labels.min_parcel_pixels": 1}
    _, half = _label(tmp_path, parcels, **{"labels.buffer_m": 0.5, **settings})
    _, fifth = _label(tmp_path, parcels, **{"labels.buffer_m": 0.2, **settings})
    assert half["removed"]["border_buffer"] == {"grassland": 10}  # column 4, rows 0..9
    assert half["kept"] == {"grassland": 40}  # columns 0..3 (the unobserved pixel is column 5)
    assert fifth["removed"]["border_buffer"] == {}
    assert fifth["kept"] == {"grassland": 50}


def test_a_last_parcel_left_without_pixels_is_tiny(tmp_path: Path) -> None:
    parcels = gpd.GeoDataFrame(
        {"SNAR_CODE": [635, 172], "FS_KENNUNG": [1, 2]},
        geometry=[_parcel(0, 0, 10, 10), _parcel(14, 14, 16, 16)],  # 2 x 2: nothing inside 10 m
        crs="EPSG:32633")
    arrays, report = _label(tmp_path, parcels)
    assert report["removed"]["border_buffer"] == {"grassland": 36, "maize": 4}
    assert report["removed"]["tiny_parcel"] == {}
    assert report["kept"] == {"grassland": 63}
    assert (arrays["label"][14:16, 14:16] == NO_LABEL).all()


def test_parcels_whose_box_but_not_shape_meets_the_tile_are_not_counted(tmp_path: Path) -> None:
    from shapely.geometry import Polygon

    # a triangle west of the tile whose bounding box reaches into it
    triangle = Polygon([(X0 - 500.0, Y0 - 500.0), (X0 + 100.0, Y0 + 500.0),
                        (X0 - 500.0, Y0 + 500.0)])
    parcels = gpd.GeoDataFrame({"SNAR_CODE": [635, 172], "FS_KENNUNG": [1, 2]},
                               geometry=[_parcel(0, 0, 10, 10), triangle], crs="EPSG:32633")
    assert triangle.envelope.intersects(_parcel(0, 0, SIZE, SIZE))
    assert not triangle.intersects(_parcel(0, 0, SIZE, SIZE))
    _, report = _label(tmp_path, parcels)
    assert report["parcels"] == 1


def test_unknown_codes_are_logged_listed_and_bounded(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    parcels = gpd.GeoDataFrame({"SNAR_CODE": [635, 99999], "FS_KENNUNG": [1, 2]},
                               geometry=[_parcel(0, 0, 10, 10), _parcel(12, 12, 20, 20)],
                               crs="EPSG:32633")
    with caplog.at_level(logging.WARNING, logger="tasks.food_security.labels"):
        _, report = _label(tmp_path, parcels)
    assert report["unknown_code_parcels"] == 1 and report["unknown_codes"] == {"99999": 1}
    assert ("tile 33UWP: 1 parcels with unknown crop codes {'99999': 1} mapped to 'other'"
            in caplog.messages)
    lb.check_unknown_share("t", "SNAR_CODE", 0, 0, {}, 0.1)  # no parcel: nothing to check
    with pytest.raises(lb.UnknownCropCodesError) as one:
        lb.check_unknown_share("t", "SNAR_CODE", 1, 1, {"7": 1}, 0.5)
    assert "1 of 1 parcels (100%)" in str(one.value)
    codes = {str(c): 20 - c for c in range(12)}  # 12 unknown codes, '11' the rarest
    with pytest.raises(lb.UnknownCropCodesError) as many:
        lb.check_unknown_share("t", "SNAR_CODE", 300, 200, codes, 0.5)
    listed = ", ".join(f"'{c}' x{20 - c}" for c in range(10))
    assert f"most frequent: {listed}. Check" in str(many.value)


def test_rasterise_parcels_without_geometries_is_int32_minus_one() -> None:
    transform = (X0, PIXEL, 0.0, Y0, 0.0, -PIXEL)
    from affine import Affine

    for geometries in ([], [None]):
        got = lb.rasterise_parcels(geometries, Affine.from_gdal(*transform), (2, 3))
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, np.full((2, 3), -1))
