"""Geocoding from the geolocation grid: real EW GRDM tie points and generated curved swaths."""

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from tasks.sentinel1.generator import generate_ew_grd_scene
from tasks.sentinel1.geocode import fit_geocoding, fit_plane_map, image_coordinates, map_grid
from tasks.sentinel1.safe import open_safe

START = dt.datetime(2026, 1, 15, 7, 30, tzinfo=dt.UTC)
EW_GRDM = (
    Path(__file__).resolve().parents[2]
    / "data"
    / "s1_ew_grd"
    / "S1A_EW_GRDM_1SDH_20221130T014342_20221130T014446_046117_058549_BB15.SAFE"
)
PIXEL_M = 40.0


@pytest.fixture(scope="module")
def real_grid():
    return open_safe(EW_GRDM).geolocation_grid("HH")


def test_real_ew_grdm_leave_one_out_error(real_grid):
    geo = fit_geocoding(real_grid, "EPSG:3413")
    r = geo.residuals
    assert r["n_tie_points"] == 483 and r["n_interior"] == 21 * 19
    assert r["loo_median_m"] <= PIXEL_M  # the goal: one output pixel
    assert r["loo_p95_m"] <= PIXEL_M and r["loo_max_m"] <= 1.5 * PIXEL_M
    assert r["affine_rms_m"] > 700  # what one affine does on this scene
    affine = fit_geocoding(real_grid, "EPSG:3413", method="affine").residuals
    assert affine["loo_median_m"] > 10 * r["loo_median_m"]
    # terrain: tie points at up to 670 m height bend the fit unless moved to sea level
    raw = fit_geocoding(real_grid, "EPSG:3413", to_sea_level=False).residuals
    assert r["sea_level_moved"] > 40 and raw["loo_p95_m"] > 4 * r["loo_p95_m"]


def test_closed_form_leave_one_out_equals_refitting(real_grid):
    rng = np.random.default_rng(0)
    src = np.column_stack([real_grid.line, real_grid.pixel])[::4]
    dst = np.column_stack([real_grid.latitude, real_grid.longitude])[::4] * 1e5
    _, loo = fit_plane_map(src, dst, "tps")
    for k in rng.choice(len(src), 5, replace=False):
        keep = np.arange(len(src)) != k
        refit, _ = fit_plane_map(src[keep], dst[keep], "tps")
        predicted = np.array(refit(src[k, 0], src[k, 1]))
        np.testing.assert_allclose(predicted - dst[k], loo[k], rtol=1e-5, atol=1e-4)


def test_forward_and_inverse_agree(real_grid):
    geo = fit_geocoding(real_grid, "EPSG:3413")
    x, y = geo.to_crs(geo.tie_line, geo.tie_pixel)
    np.testing.assert_allclose(x, geo.tie_x, atol=1e-3)  # exact at the tie points
    transform, shape = map_grid(geo.tie_x, geo.tie_y, PIXEL_M)
    line, pixel = image_coordinates(geo, transform, (6000, 6100), (6000, 6090))
    gx, gy = geo.to_crs(line, pixel)
    cx = transform.c + PIXEL_M * (np.arange(6000, 6090) + 0.5)
    cy = transform.f - PIXEL_M * (np.arange(6000, 6100) + 0.5)
    assert np.abs(gx - cx[None, :]).max() < 0.5 and np.abs(gy - cy[:, None]).max() < 0.5


@pytest.fixture(scope="module")
def curved_scene(tmp_path_factory):
    """A long generated swath (160 km along track): clearly not affine in EPSG:3413."""
    return generate_ew_grd_scene(
        tmp_path_factory.mktemp("curved"),
        seed=3,
        start_time=START,
        lines=4000,
        samples=256,
        land_fraction=0.0,
    )


def _placement_error_px(scene, method):
    """Max distance (output pixels) between the fitted and the true position of image pixels."""
    geo = fit_geocoding(open_safe(scene.safe_path).geolocation_grid(), scene.crs, method)
    line, pixel = np.meshgrid(np.arange(0, 4000, 7.3), np.arange(0, 256, 5.1), indexing="ij")
    fx, fy = geo.to_crs(line, pixel)
    tx, ty = scene.true_map_position(line, pixel)
    return float(np.hypot(fx - tx, fy - ty).max() / PIXEL_M)


def test_generated_swath_is_placed_within_half_a_pixel(curved_scene):
    assert _placement_error_px(curved_scene, "tps") <= 0.5


def test_affine_fit_fails_the_same_check(curved_scene):
    assert _placement_error_px(curved_scene, "affine") > 1.0


def test_generated_annotation_matches_the_true_geometry(curved_scene):
    grid = open_safe(curved_scene.safe_path).geolocation_grid()
    tx, ty = curved_scene.true_map_position(grid.line, grid.pixel)
    geo = fit_geocoding(grid, curved_scene.crs)
    np.testing.assert_allclose(geo.tie_x, tx, atol=1e-3)
    np.testing.assert_allclose(geo.tie_y, ty, atol=1e-3)
