"""Harmonise geocodes onto the map grid: placement vs known truth, refusal of bad grids."""

import datetime as dt
import shutil
from pathlib import Path

import dask
import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from lxml import etree

from tasks.config.polar import HarmoniseConfig
from tasks.polar.harmonise import harmonise_scene, output_grid
from tasks.polar.schema import BACKSCATTER_VAR, VALID_MASK_VAR
from tasks.sentinel1.generator import generate_ew_grd_scene
from tasks.sentinel1.geocode import GeocodingError, image_coordinates
from tasks.sentinel1.safe import open_safe

START = dt.datetime(2026, 1, 15, 7, 30, tzinfo=dt.UTC)
EW_GRDM = (
    Path(__file__).resolve().parents[2]
    / "data"
    / "s1_ew_grd"
    / "S1A_EW_GRDM_1SDH_20221130T014342_20221130T014446_046117_058549_BB15.SAFE"
)


@pytest.fixture(scope="module")
def long_scene(tmp_path_factory):
    return generate_ew_grd_scene(
        tmp_path_factory.mktemp("long"), seed=4, start_time=START, lines=2400, samples=200,
        land_fraction=0.0, difficulty=0.0, enl=8.0,
    )


@pytest.fixture(scope="module")
def long_harmonised(long_scene, tmp_path_factory):
    out = tmp_path_factory.mktemp("h") / "long.zarr"
    with dask.config.set(scheduler="synchronous"):
        summary = harmonise_scene(long_scene.safe_path, out, HarmoniseConfig(chunk=256))
    return summary, xr.open_zarr(out, decode_coords="all")


@pytest.mark.parametrize(("method", "within"), [("tps", True), ("affine", False)])
def test_warp_places_pixels_within_half_a_pixel(long_scene, long_harmonised, method, within):
    """Where harmonise reads each output pixel from vs. where that image pixel truly lies."""
    _, ds = long_harmonised
    cfg = HarmoniseConfig(geocoding=method)
    grid = output_grid(open_safe(long_scene.safe_path), cfg)
    assert grid["transform"] == Affine.from_gdal(*ds.attrs["transform"])
    h, w = grid["shape"]
    line, pixel = image_coordinates(grid["geocoding"], grid["transform"], (0, h), (0, w))
    valid = ds[VALID_MASK_VAR].values == 1
    assert valid.sum() > 0.8 * 2400 * 200
    tx, ty = long_scene.true_map_position(line[valid], pixel[valid])
    rows, cols = np.nonzero(valid)
    cx = grid["transform"].c + 40.0 * (cols + 0.5)
    cy = grid["transform"].f - 40.0 * (rows + 0.5)
    error_px = np.hypot(tx - cx, ty - cy) / 40.0
    assert bool(error_px.max() <= 0.5) == within, error_px.max()


def test_class_means_recovered_on_the_curved_swath(long_scene, long_harmonised):
    summary, ds = long_harmonised
    assert summary["geocoding"]["loo_median_m"] < 1.0
    with rasterio.open(long_scene.truth_raster_path) as src:
        truth = src.read(1)
    b = ds[BACKSCATTER_VAR].values
    valid = ds[VALID_MASK_VAR].values == 1
    water, ice = (truth == 1) & valid, (truth >= 3) & valid
    assert water.sum() > 1000 and ice.sum() > 1000
    assert np.median(b[1][ice]) - np.median(b[1][water]) > 2.0  # HV: ice brighter than water


def test_real_grid_with_terrain_is_refused_above_the_threshold():
    product = open_safe(EW_GRDM)
    cfg = HarmoniseConfig(geocode_to_sea_level=False, max_geocoding_residual_m=100.0)
    with pytest.raises(GeocodingError) as err:
        output_grid(product, cfg)
    message = str(err.value)
    assert product.name in message and "harmonise.max_geocoding_residual_m = 100 m" in message
    assert "p95 215" in message
    grid = output_grid(product, HarmoniseConfig())  # at sea level it passes
    assert grid["geocoding"].residuals["loo_p95_m"] < 40.0
    assert grid["shape"] == (12969, 13222)


def test_corrupt_geolocation_grid_is_refused(tmp_path):
    scene = generate_ew_grd_scene(tmp_path / "s", seed=2, start_time=START, lines=96, samples=128)
    for ann in (scene.safe_path / "annotation").glob("*.xml"):
        tree = etree.parse(str(ann))
        points = tree.getroot().findall("geolocationGrid/geolocationGridPointList/"
                                        "geolocationGridPoint")
        for point in points[30:200:7]:  # interior points 2-5 km off
            lat = point.find("latitude")
            lat.text = f"{float(lat.text) + 0.03:.15e}"
        tree.write(str(ann))
    out = tmp_path / "bad.zarr"
    with pytest.raises(GeocodingError, match=rf"{scene.scene_id}: geocoding residual too large"):
        harmonise_scene(scene.safe_path, out, HarmoniseConfig())
    assert not out.exists()
    shutil.rmtree(scene.safe_path)


def test_manifest_records_the_geocoding_residuals(eeflow_home):
    from tasks.config.polar import PolarConfig
    from tasks.polar.harmonise import run_harmonise
    from tasks.polar.ingest import ingest_day
    from tasks.storage import read_manifest

    cfg = PolarConfig.model_validate(
        {
            "ingest": {"generator": {"lines": 96, "samples": 128, "scenes_per_day": 1}},
            "harmonise": {"chunk": 64, "target_crs": "EPSG:3413"},
            "dask": {"cluster": "synchronous"},
        }
    )
    ingest_day(cfg, "2026-01-15")
    result = run_harmonise(cfg, "2026-01-15")
    scene = read_manifest(result["output_dir"])["scenes"][0]
    assert set(scene["geocoding"]) >= {"method", "loo_median_m", "loo_p95_m", "loo_max_m"}
    assert scene["geocoding"]["method"] == "tps" and scene["geocoding"]["loo_max_m"] < 1.0
    assert 0.0 < scene["warp_share"] < 1.0
