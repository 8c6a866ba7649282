"""Ice charts cut to a requested region (``ingest.catalogue.area``, the DAGs' ``region`` param)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
import torch
import xarray as xr
from pyproj import Transformer

from tasks.config.polar import PredictConfig
from tasks.polar.predict import (
    ScenePredictor,
    predict_scene,
    run_predict,
    write_chart_cog,
    write_class_polygons,
)
from tasks.polar.quicklook import CHART_NODATA
from tasks.polar.train import load_model, train_model
from tasks.region import Region, RegionError
from tests.tasks.polar.polar_synthetic_scene import PIXEL_M, tiny_polar_config

torch.set_num_threads(1)

#: Region vertices as (column, row) of the 256 x 256 fixture scene's cells (at cell centres).
REGION_CELLS = [(40, 60), (150, 50), (200, 120), (130, 210), (60, 170)]
#: Its bbox snapped to the grid: column / row offset and size (cells 40..200, rows 50..210).
EXPECTED_WINDOW = (40, 50, 161, 161)
DISJOINT = "POLYGON ((10 10, 11 10, 11 11, 10 11, 10 10))"
DAY = "2026-11-25"


@pytest.fixture(scope="module")
def model_dir(polar_patch_dataset: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = tiny_polar_config(tmp_path_factory.mktemp("region_model"),
                            train={"model": "adhoc_cnn", "epochs": 1, "augment": False,
                                   "width_multiplier": 0.25})
    return Path(train_model(cfg, Path(polar_patch_dataset["datasets"][32]))["model_dir"])


def _scene_grid(scene_zarr: Path) -> tuple[float, float]:
    x0, _, _, y0, _, _ = xr.open_zarr(scene_zarr).attrs["transform"]
    return float(x0), float(y0)


def _region(scene_zarr: Path) -> tuple[str, shapely.Polygon]:
    """WKT (lon/lat) of the test region and the same polygon in the chart CRS (EPSG:3413)."""
    x0, y0 = _scene_grid(scene_zarr)
    projected = shapely.Polygon([(x0 + (c + 0.5) * PIXEL_M, y0 - (r + 0.5) * PIXEL_M)
                                 for c, r in REGION_CELLS])
    dense = shapely.segmentize(projected, PIXEL_M / 2)  # short lon/lat edges: no curvature
    to_lonlat = Transformer.from_crs("EPSG:3413", "OGC:CRS84", always_xy=True)
    lonlat = shapely.transform(dense, lambda xy: np.column_stack(to_lonlat.transform(*xy.T)))
    return shapely.to_wkt(lonlat, rounding_precision=-1), projected


def test_chart_cut_to_region(model_dir: Path, polar_scene_pair, tmp_path: Path) -> None:
    scene_zarr = polar_scene_pair[0]
    wkt, projected = _region(scene_zarr)
    cfg = PredictConfig(tile=96)
    full = predict_scene(model_dir, scene_zarr, tmp_path / "full", cfg)
    cut = predict_scene(model_dir, scene_zarr, tmp_path / "cut", cfg,
                        region=Region.from_area(wkt))
    x0, y0 = _scene_grid(scene_zarr)
    col, row, cols, rows = EXPECTED_WINDOW
    with rasterio.open(cut["chart"]) as src:
        assert (src.width, src.height) == (cols, rows)
        assert src.transform.to_gdal() == (x0 + col * PIXEL_M, PIXEL_M, 0.0,
                                           y0 - row * PIXEL_M, 0.0, -PIXEL_M)
        assert src.nodata == CHART_NODATA and src.tags()["class_scheme"] == "binary"
        chart = src.read(1)
    with rasterio.open(full["chart"]) as src:
        uncut = src.read(1)[row:row + rows, col:col + cols]
    # cell centres, independently of tasks.region; cells within 1 m of the edge are not judged
    cx = x0 + (col + np.arange(cols) + 0.5) * PIXEL_M
    cy = y0 - (row + np.arange(rows) + 0.5) * PIXEL_M
    xx, yy = np.meshgrid(cx, cy)
    inside = shapely.contains_xy(projected, xx, yy)
    clear = shapely.distance(projected.boundary, shapely.points(xx, yy)) > 1.0
    assert (inside & clear).sum() > 0.4 * cols * rows
    np.testing.assert_array_equal(chart[inside & clear], uncut[inside & clear])
    assert (chart[~inside & clear] == CHART_NODATA).all()
    assert sum(cut["pixel_counts"].values()) == cols * rows
    assert cut["region"]["crs"] == "OGC:CRS84" and cut["region"]["cut"]["window"] == [
        col, row, cols, rows]
    assert Path(cut["quicklook"]).stat().st_size > 1000
    polygons = gpd.read_parquet(Path(cut["polygons"]).with_suffix(".parquet"))
    assert len(polygons) and polygons.geometry.within(projected.buffer(1.0)).all()
    lonlat_region = Region.from_area(wkt).lonlat.buffer(1e-5)
    features = json.loads(Path(cut["polygons"]).read_text())["features"]
    assert features and all(shapely.geometry.shape(f["geometry"]).within(lonlat_region)
                            for f in features)


def test_no_region_is_the_uncut_chart(model_dir: Path, polar_scene_pair, tmp_path: Path) -> None:
    """Without a region the products are those of the unchanged chart writers, byte for byte."""
    scene_zarr = polar_scene_pair[0]
    result = predict_scene(model_dir, scene_zarr, tmp_path / "a", PredictConfig(tile=96))
    loaded = load_model(model_dir)
    scene = xr.open_zarr(scene_zarr)
    predictor = ScenePredictor(loaded, tile=96)
    reference = tmp_path / "b" / Path(result["chart"]).name
    reference.parent.mkdir()
    write_chart_cog(scene, predictor.class_map(scene, progress=False), predictor.stride,
                    reference, scene.attrs["crs"], tuple(scene.attrs["transform"]),
                    loaded.meta["class_scheme"])
    assert Path(result["chart"]).read_bytes() == reference.read_bytes()
    geojson = reference.with_suffix(".geojson")
    write_class_polygons(reference, geojson, loaded.meta["class_scheme"],
                         PredictConfig().polygon_max_pixels)
    assert Path(result["polygons"]).read_bytes() == geojson.read_bytes()
    assert "region" not in result


def test_run_predict_and_publish_record_region_disjoint_fails(
        model_dir: Path, polar_scene_pair, tmp_path: Path) -> None:
    from tasks.polar.stages import publish_stage

    scene_zarr = polar_scene_pair[0]
    wkt, _ = _region(scene_zarr)
    harmonised = tmp_path / "polar" / "harmonise" / DAY
    harmonised.mkdir(parents=True)
    shutil.copytree(scene_zarr, harmonised / scene_zarr.name)
    predict = {"model": str(model_dir), "tile": 128}
    cfg = tiny_polar_config(tmp_path, predict=predict, ingest={"catalogue": {"area": wkt}})
    result = run_predict(cfg, DAY)
    manifest = json.loads((Path(result["out_dir"]) / "manifest.json").read_text())
    assert manifest["region"]["crs"] == "OGC:CRS84"
    assert Region.from_area(manifest["region"]["wkt"]).lonlat.equals_exact(
        Region.from_area(wkt).lonlat, 1e-6)
    published = publish_stage(cfg, DAY)
    folder = Path(published["published_dir"])
    assert json.loads((folder / "manifest.json").read_text())["region"] == manifest["region"]
    item = next((tmp_path / "catalogue").rglob(f"{scene_zarr.stem}_chart.json"))
    footprint = shapely.geometry.shape(json.loads(item.read_text())["geometry"])
    to_chart = Transformer.from_crs("OGC:CRS84", "EPSG:3413", always_xy=True)
    projected_footprint = shapely.transform(
        footprint, lambda xy: np.column_stack(to_chart.transform(*xy.T)))
    x0, y0 = _scene_grid(scene_zarr)
    col, row, cols, rows = EXPECTED_WINDOW  # the item covers the cut chart: the region's bbox
    np.testing.assert_allclose(projected_footprint.bounds,
                               (x0 + col * PIXEL_M, y0 - (row + rows) * PIXEL_M,
                                x0 + (col + cols) * PIXEL_M, y0 - row * PIXEL_M), atol=1.0)

    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    predicted = {p.name: p.read_bytes() for p in Path(result["out_dir"]).iterdir()}
    disjoint = tiny_polar_config(tmp_path, predict=predict,
                                 ingest={"catalogue": {"area": DISJOINT}})
    with pytest.raises(RegionError, match=rf"(?s)does not intersect scene {scene_zarr.stem}.*"
                                          r"EPSG:3413"):
        run_predict(disjoint, DAY)
    assert {p.name: p.read_bytes() for p in Path(result["out_dir"]).iterdir()} == predicted
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
