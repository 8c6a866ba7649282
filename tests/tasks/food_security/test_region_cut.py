"""Crop maps and field instances cut to a requested region (``ingest.catalogue.area``)."""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Transformer

from tasks.food_security.predict import NODATA_CLASS, run_predict
from tasks.food_security.train import train_crop_model
from tasks.region import RegionError
from tests.tasks.food_security.conftest_ml import tiny_config as shared_tiny_config
from tests.tasks.food_security.conftest_ml import write_sample_year, write_tile_year

RUN_DATE = "2017-10-15"
YEAR = "2017-09_2018-08"
TILE = "33UVP"
X0, Y0, PIXEL = 500000.0, 5300000.0, 10.0  # the fixture tile's grid (EPSG:32633)
#: Region vertices as (column, row) of the 40 x 40 tile's pixels (at pixel centres).
REGION_CELLS = [(5, 8), (30, 4), (36, 20), (22, 35), (8, 28)]
#: Its bbox snapped to the grid: column / row offset and size.
EXPECTED_WINDOW = (5, 4, 32, 32)
DISJOINT = "POLYGON ((10 10, 11 10, 11 11, 10 11, 10 10))"

tiny_config = partial(shared_tiny_config, block_rows=5, predict_batch_size=100)


@pytest.fixture(scope="module")
def trained_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fs_region")
    write_sample_year(root, RUN_DATE, n_train=200, n_val=60, n_test=20)
    write_tile_year(root, RUN_DATE, size=40)
    train_crop_model(tiny_config(root, epochs_phase1=1, epochs_phase2=1), RUN_DATE)
    return root


@pytest.fixture()
def root(trained_root: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "root"
    shutil.copytree(trained_root, copy)
    return copy


def _region() -> tuple[str, shapely.Polygon]:
    """WKT (lon/lat) of the test region and the same polygon in the tile's CRS."""
    projected = shapely.Polygon([(X0 + (c + 0.5) * PIXEL, Y0 - (r + 0.5) * PIXEL)
                                 for c, r in REGION_CELLS])
    dense = shapely.segmentize(projected, PIXEL / 2)
    to_lonlat = Transformer.from_crs("EPSG:32633", "OGC:CRS84", always_xy=True)
    lonlat = shapely.transform(dense, lambda xy: np.column_stack(to_lonlat.transform(*xy.T)))
    return shapely.to_wkt(lonlat, rounding_precision=-1), projected


def _config(root: Path, area: str | None):
    cfg = tiny_config(root)
    cfg.ingest.catalogue.area = area
    return cfg


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_crop_map_and_instances_cut_to_region(root: Path, tmp_path: Path) -> None:
    folder = root / f"food_security/predict/{YEAR}/{TILE}"
    run_predict(_config(root, None), RUN_DATE)
    uncut_dir = shutil.copytree(folder, tmp_path / "uncut")
    wkt, projected = _region()
    result = run_predict(_config(root, wkt), RUN_DATE)
    col, row, cols, rows = EXPECTED_WINDOW
    with rasterio.open(folder / "crop_map.tif") as ds:
        assert (ds.width, ds.height) == (cols, rows)
        assert ds.transform.to_gdal() == (X0 + col * PIXEL, PIXEL, 0.0, Y0 - row * PIXEL, 0.0,
                                          -PIXEL)
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.colormap(1)[0][:3] == (0x7F, 0xC9, 0x7F)
        cut = ds.read(1)
    with rasterio.open(uncut_dir / "crop_map.tif") as ds:
        uncut = ds.read(1)[row:row + rows, col:col + cols]
    with rasterio.open(folder / "confidence.tif") as ds:
        confidence = ds.read(1)
    with rasterio.open(uncut_dir / "confidence.tif") as ds:
        uncut_confidence = ds.read(1)[row:row + rows, col:col + cols]
    xx, yy = np.meshgrid(X0 + (col + np.arange(cols) + 0.5) * PIXEL,
                         Y0 - (row + np.arange(rows) + 0.5) * PIXEL)
    inside = shapely.contains_xy(projected, xx, yy)
    clear = shapely.distance(projected.boundary, shapely.points(xx, yy)) > 0.01
    assert (inside & clear).sum() > 0.4 * cols * rows
    np.testing.assert_array_equal(cut[inside & clear], uncut[inside & clear])
    np.testing.assert_array_equal(confidence[inside & clear], uncut_confidence[inside & clear])
    assert (cut[~inside & clear] == NODATA_CLASS).all()
    assert np.isnan(confidence[~inside & clear]).all()
    fields = gpd.read_parquet(folder / f"{TILE}_instances.parquet")
    assert len(fields) == result["counts"]["instances"] > 0
    assert fields.geometry.within(projected.buffer(0.01)).all()
    np.testing.assert_allclose(fields["area_m2"], fields.geometry.area)
    assert result["counts"]["pixels"] == cols * rows
    assert result["counts"]["nodata_pixels"] == int((cut == NODATA_CLASS).sum())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["region"]["crs"] == "OGC:CRS84"
    assert manifest["region"]["cut"]["window"] == [col, row, cols, rows]
    assert (folder / "crop_map.png").stat().st_size > 1000
    item = next((root / "catalogue").rglob(f"{TILE}_{YEAR}_crop_map.json"))
    footprint = shapely.geometry.shape(json.loads(item.read_text())["geometry"])
    to_tile = Transformer.from_crs("OGC:CRS84", "EPSG:32633", always_xy=True)
    tile_footprint = shapely.transform(
        footprint, lambda xy: np.column_stack(to_tile.transform(*xy.T)))
    np.testing.assert_allclose(tile_footprint.bounds,
                               (X0 + col * PIXEL, Y0 - (row + rows) * PIXEL,
                                X0 + (col + cols) * PIXEL, Y0 - row * PIXEL), atol=0.5)


def test_disjoint_region_fails_and_keeps_the_map(root: Path) -> None:
    folder = root / f"food_security/predict/{YEAR}/{TILE}"
    run_predict(_config(root, None), RUN_DATE)
    before = _files(folder)
    with pytest.raises(RegionError, match=rf"(?s)does not intersect tile {TILE}.*EPSG:32633"):
        run_predict(_config(root, DISJOINT), RUN_DATE)
    assert _files(folder) == before


def test_no_region_maps_the_whole_tile_unchanged(root: Path) -> None:
    folder = root / f"food_security/predict/{YEAR}/{TILE}"
    first = run_predict(_config(root, None), RUN_DATE)
    before = {k: v for k, v in _files(folder).items() if k != "manifest.json"}
    with rasterio.open(folder / "crop_map.tif") as ds:
        assert (ds.width, ds.height) == (40, 40)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert "region" not in manifest and "instances_outside_region" not in first["counts"]
    run_predict(_config(root, None), RUN_DATE)
    assert {k: v for k, v in _files(folder).items() if k != "manifest.json"} == before


def test_clipped_instances_count_only_their_pixels_inside_the_region(
        root: Path, tmp_path: Path) -> None:
    """pixels / confidence of a clipped connected region are those of its pixels in the region.

    Each cut-map pixel with data whose centre lies in an instance's clipped polygon (boundary
    included, as the cut keeps a centre on the region's edge) belongs to it; the instance's
    pixels are their number and its confidence their mean on the cut confidence map. Instances
    wholly inside the region keep the uncut values.
    """
    folder = root / f"food_security/predict/{YEAR}/{TILE}"
    run_predict(_config(root, None), RUN_DATE)
    whole = gpd.read_parquet(folder / f"{TILE}_instances.parquet")
    wkt, projected = _region()
    run_predict(_config(root, wkt), RUN_DATE)
    fields = gpd.read_parquet(folder / f"{TILE}_instances.parquet")
    with rasterio.open(folder / "confidence.tif") as ds:
        confidence = ds.read(1).astype(np.float64)
        transform = ds.transform
    rows, cols = confidence.shape
    xx, yy = np.meshgrid(transform.c + (np.arange(cols) + 0.5) * transform.a,
                         transform.f + (np.arange(rows) + 0.5) * transform.e)
    clipped = 0
    for field in fields.itertuples():
        mine = shapely.intersects_xy(field.geometry, xx, yy) & np.isfinite(confidence)
        assert field.pixels == int(mine.sum()) > 0
        assert field.confidence == pytest.approx(confidence[mine].mean(), rel=1e-6)
        source = whole[whole.geometry.contains(field.geometry.representative_point())
                       & (whole.class_index == field.class_index)]
        assert len(source) == 1
        if field.pixels < int(source.pixels.iloc[0]):
            clipped += 1
        else:
            assert field.confidence == pytest.approx(float(source.confidence.iloc[0]), rel=1e-5)
    assert clipped > 0  # the region does cut some instances
