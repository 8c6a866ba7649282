import datetime as dt
import json
import shutil
from pathlib import Path

import dask
import numpy as np
import pytest
import rasterio
import xarray as xr

from tasks.config.polar import HarmoniseConfig, PolarConfig
from tasks.polar.harmonise import (
    block_average,
    boxcar,
    harmonise_scene,
    remove_noise_and_calibrate,
    run_harmonise,
    to_db,
)
from tasks.polar.ingest import ingest_day
from tasks.polar.schema import BACKSCATTER_VAR, BANDS, LAND_MASK_VAR, VALID_MASK_VAR
from tasks.sentinel1.generator import (
    generate_ew_grd_scene,
    surface_backscatter,
    water_sigma0_db,
)
from tasks.sentinel1.safe import MissingPolarisationError, WrongModeError

START = dt.datetime(2026, 1, 15, 7, 30, tzinfo=dt.UTC)
IW_GRD = (
    Path(__file__).resolve().parents[2]
    / "data"
    / "s1_safe"
    / "sarsen"
    / "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE"
)


def test_pure_transforms():
    dn = np.array([[10, 20]], dtype=np.uint16)
    s0 = remove_noise_and_calibrate(dn, np.array([[50.0, 50.0]]), np.array([[10.0, 10.0]]))
    np.testing.assert_allclose(s0, [[0.5, 3.5]])
    np.testing.assert_allclose(
        remove_noise_and_calibrate(dn, np.array([[50.0, 50.0]]), np.array([[10.0, 10.0]]), False),
        [[1.0, 4.0]],
    )
    values = np.arange(16, dtype=np.float32).reshape(4, 4)
    weights = np.ones((4, 4), bool)
    weights[0, 0] = False
    mean, frac = block_average(values, weights, 2)
    assert mean[0, 0] == pytest.approx((1 + 4 + 5) / 3) and frac[0, 0] == pytest.approx(0.75)
    box, den = boxcar(np.ones((5, 5), np.float32) * 2, np.ones((5, 5)), 3)
    np.testing.assert_allclose(box, 2.0)
    masked, _ = boxcar(np.where(weights, values, 1e6).astype(np.float32), weights, 3)
    assert masked[1, 1] == pytest.approx(np.mean([1, 2, 4, 5, 6, 8, 9, 10]))
    np.testing.assert_allclose(to_db(np.array([0.1, -1.0, 0.0]), -30.0), [-10, -30, -30])


@pytest.fixture(scope="module")
def clean_scene(tmp_path_factory):
    """Difficulty 0 (class means + speckle + noise only), no land."""
    return generate_ew_grd_scene(
        tmp_path_factory.mktemp("clean"),
        seed=21,
        start_time=START,
        lines=200,
        samples=240,
        land_fraction=0.0,
        difficulty=0.0,
        enl=6.0,
    )


@pytest.fixture(scope="module")
def harmonised(clean_scene, tmp_path_factory):
    out = tmp_path_factory.mktemp("h") / "scene.zarr"
    with dask.config.set(scheduler="synchronous"):
        summary = harmonise_scene(clean_scene.safe_path, out, HarmoniseConfig(chunk=64))
    return summary, xr.open_zarr(out, decode_coords="all")


def test_output_follows_the_schema(harmonised, clean_scene):
    summary, ds = harmonised
    assert list(ds[BACKSCATTER_VAR].coords["band"].values) == list(BANDS)
    assert ds[BACKSCATTER_VAR].dtype == np.float32
    assert ds[BACKSCATTER_VAR].shape == (3, *clean_scene.grid_shape)  # map grid around the swath
    assert ds[LAND_MASK_VAR].dtype == np.uint8 and ds[VALID_MASK_VAR].dtype == np.uint8
    assert ds.attrs["crs"] == "EPSG:3413" and ds.attrs["scene_id"] == clean_scene.scene_id
    assert ds.attrs["transform"] == pytest.approx(list(clean_scene.transform), abs=1e-4)
    assert ds.rio.crs.to_epsg() == 3413
    assert tuple(ds.rio.transform())[:6] == pytest.approx(
        tuple(rasterio.Affine.from_gdal(*clean_scene.transform))[:6], abs=1e-4
    )
    assert ds.attrs["pixel_spacing_m"] == 40.0 and ds.attrs["land_mask_source"] == "none"
    assert summary["geocoding"]["loo_p95_m"] < 1.0 and ds.attrs["geocoding"]["method"] == "tps"
    valid = ds[VALID_MASK_VAR].values
    # the 200 x 240 swath less its near-range no-data margin, geocoded onto the grid
    assert 0.9 * 200 * 240 < valid.sum() < 200 * 240
    assert np.isnan(ds[BACKSCATTER_VAR].values[0][valid == 0]).all()


def test_incidence_and_class_means_are_recovered(harmonised, clean_scene):
    _, ds = harmonised
    b = ds[BACKSCATTER_VAR].values
    inc = b[2]
    assert np.nanmin(inc) >= 19.0 - 1e-3 and np.nanmax(inc) <= 47.0 + 1e-3
    with rasterio.open(clean_scene.truth_raster_path) as src:
        truth = src.read(1)
    table = surface_backscatter()
    checked = 0
    for name in ("brash_pancake", "young", "level_first_year"):
        s = table[name]
        sel = (truth == s.ice_class_code) & (ds[VALID_MASK_VAR].values == 1)
        if sel.sum() < 200:
            continue
        for k, pol in enumerate(("hh", "hv")):
            model = getattr(s, f"{pol}_db_35") + getattr(s, f"{pol}_slope_db_per_deg") * (
                inc[sel] - 35.0
            )
            residual = np.median(b[k][sel] - model)
            assert abs(residual) < 1.0, (name, pol, residual)
        checked += 1
    assert checked >= 2


def test_noise_removal_lowers_hv_over_water(clean_scene, harmonised, tmp_path):
    _, ds = harmonised
    with dask.config.set(scheduler="synchronous"):
        harmonise_scene(
            clean_scene.safe_path,
            tmp_path / "raw.zarr",
            HarmoniseConfig(chunk=64, noise_removal=False),
        )
    raw = xr.open_zarr(tmp_path / "raw.zarr").backscatter.values[1]
    with rasterio.open(clean_scene.truth_raster_path) as src:
        water = (src.read(1) == 1) & (ds[VALID_MASK_VAR].values == 1)
    assert water.sum() > 100
    denoised = ds[BACKSCATTER_VAR].values[1][water]
    lin = lambda db: 10 * np.log10(np.mean(10 ** (db / 10)))  # noqa: E731
    assert lin(denoised) < lin(raw[water]) - 1.0
    # the denoised mean is closer to the model (the scene's wind, cross-pol relation) than raw
    model = float(water_sigma0_db("HV", np.float32(clean_scene.conditions["wind_speed_ms"]), 0, 35))
    assert abs(lin(denoised) - model) < abs(lin(raw[water]) - model)


def test_bad_products_raise_clear_errors(tmp_path):
    with pytest.raises(WrongModeError, match="IW"):
        harmonise_scene(IW_GRD, tmp_path / "x.zarr", HarmoniseConfig())
    single = generate_ew_grd_scene(
        tmp_path / "hh", seed=1, start_time=START, lines=64, samples=96, polarisations=("HH",)
    )
    with pytest.raises(MissingPolarisationError, match="HV is missing"):
        harmonise_scene(single.safe_path, tmp_path / "y.zarr", HarmoniseConfig())
    assert not (tmp_path / "y.zarr").exists()


def test_run_harmonise_day_with_land(eeflow_home):
    cfg = PolarConfig.model_validate(
        {
            "ingest": {
                "generator": {
                    "lines": 96,
                    "samples": 128,
                    "scenes_per_day": 1,
                    "land_fraction": 0.2,
                }
            },
            "harmonise": {"chunk": 64},
            "dask": {"cluster": "synchronous"},
        }
    )
    ingest = ingest_day(cfg, "2026-01-15")
    result = run_harmonise(cfg, "2026-01-15")
    scene = result["scenes"][0]
    ds = xr.open_zarr(scene["zarr"])
    with rasterio.open(Path(ingest["output_dir"]) / ingest["scenes"][0]["truth"]) as src:
        truth = src.read(1)
    np.testing.assert_array_equal(ds[LAND_MASK_VAR].values, (truth == 0).astype(np.uint8))
    assert scene["land_pixels"] == int((truth == 0).sum()) > 0
    again = run_harmonise(cfg, "2026-01-15")
    assert len(list(Path(again["output_dir"]).glob("*.zarr"))) == 1
    shutil.rmtree(ingest["output_dir"])
    with pytest.raises(FileNotFoundError, match="run the ingest stage first"):
        run_harmonise(cfg, "2026-01-15")


def test_all_zero_noise_lut_warns_in_log_attrs_and_summary(clean_scene, tmp_path, caplog):
    """A zero noise LUT (older IPF layout) is harmonised, but said in the log and the outputs."""
    from tests.tasks.sentinel1.noise_edits import zero_noise_luts

    safe = tmp_path / clean_scene.safe_path.name
    shutil.copytree(clean_scene.safe_path, safe)
    (edited,) = zero_noise_luts(safe, ["HV"], legacy_format=True)
    with dask.config.set(scheduler="synchronous"), caplog.at_level("WARNING"):
        summary = harmonise_scene(safe, tmp_path / "zero.zarr", HarmoniseConfig(chunk=64))
    assert summary["noise_lut_all_zero"] == ["HV"]
    (message,) = summary["warnings"]
    assert f"{safe.stem}: thermal-noise LUT of HV is all zeros" in message
    assert edited.name in message and "IPF < 2.9" in message
    assert "noise removal subtracts nothing" in message and "reprocessed product" in message
    assert message in caplog.text
    attrs = xr.open_zarr(tmp_path / "zero.zarr").attrs
    assert attrs["noise_lut_all_zero"] == ["HV"] and attrs["warnings"] == [message]
    caplog.clear()
    with dask.config.set(scheduler="synchronous"), caplog.at_level("WARNING"):
        off = harmonise_scene(safe, tmp_path / "off.zarr",
                              HarmoniseConfig(chunk=64, noise_removal=False))
    assert off["warnings"] == [] and off["noise_lut_all_zero"] == ["HV"]
    assert "all zeros" not in caplog.text


def test_run_harmonise_manifest_lists_zero_noise_warning(eeflow_home):
    from tests.tasks.sentinel1.noise_edits import zero_noise_luts

    cfg = PolarConfig.model_validate({
        "ingest": {"generator": {"lines": 96, "samples": 128, "scenes_per_day": 1}},
        "harmonise": {"chunk": 64},
        "dask": {"cluster": "synchronous"},
    })
    ingest = ingest_day(cfg, "2026-01-16")
    product = Path(ingest["output_dir"]) / ingest["scenes"][0]["product"]
    zero_noise_luts(product, ["HH", "HV"])
    result = run_harmonise(cfg, "2026-01-16")
    manifest = json.loads((Path(result["output_dir"]) / "manifest.json").read_text())
    (warning,) = manifest["warnings"]
    assert "thermal-noise LUT of HH, HV is all zeros" in warning
    assert manifest["scenes"][0]["noise_lut_all_zero"] == ["HH", "HV"]
