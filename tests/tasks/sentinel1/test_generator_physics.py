"""The generated sea-ice physics (issue 18): wind-driven water, melt, thin ice, mixed pixels.

Statistics are measured on calibrated, noise-removed, 3x3-averaged sigma0 of small generated
scenes, read back through the SAFE reader like any product.
"""

import datetime as dt

import numpy as np
import pytest
from scipy.ndimage import binary_dilation, binary_erosion, uniform_filter

from tasks.sentinel1.generator import (
    _point_spread,
    generate_ew_grd_scene,
    is_melt_season,
    surface_backscatter,
    water_sigma0_db,
)
from tasks.sentinel1.safe import open_safe

WINTER = dt.datetime(2026, 1, 15, 7, 30, tzinfo=dt.UTC)
SUMMER = dt.datetime(2026, 7, 15, 7, 30, tzinfo=dt.UTC)
SHAPE = {"lines": 320, "samples": 420, "land_fraction": 0.0}
SEED = 3  # a windy scene (about 10.6 m/s)
DIRECTIONS = np.arange(0.0, 360.0, 10.0)


def _sigma0_db(scene, boxcar=3):
    """Noise-removed sigma0 (dB) per polarisation, 3x3 boxcar as harmonise does, and truth."""
    product = open_safe(scene.safe_path)
    out = {}
    for pol in ("HH", "HV"):
        dn = product.read_dn(pol).astype(np.float64)
        a2 = product.calibration_lut(pol).astype(np.float64) ** 2
        linear = uniform_filter((dn**2 - product.noise_lut(pol)) / a2, boxcar)
        out[pol] = 10 * np.log10(np.maximum(linear, 1e-4))
    valid = binary_erosion(product.read_dn("HH") > 0, iterations=2)
    return out, scene.truth_in_image(), valid


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("physics")
    made = {
        "winter": generate_ew_grd_scene(root / "w", seed=SEED, start_time=WINTER, **SHAPE),
        "melt": generate_ew_grd_scene(root / "m", seed=SEED, start_time=SUMMER, **SHAPE),
        "easy": generate_ew_grd_scene(
            root / "e", seed=SEED, start_time=WINTER, difficulty=0.0, **SHAPE
        ),
    }
    return {k: (s, *_sigma0_db(s)) for k, s in made.items()}


def _direction_mean_db(speed, incidence):
    linear = 10 ** (water_sigma0_db("HH", np.float32(speed), DIRECTIONS, incidence) / 10)
    return 10 * np.log10(linear.mean())


def test_water_model_reproduces_the_reference_rows():
    table = surface_backscatter()
    for row, speed in (("calm_water", 3.0), ("windy_water", 10.0)):
        assert _direction_mean_db(speed, 35.0) == pytest.approx(table[row].hh_db_35, abs=0.1)
        assert float(water_sigma0_db("HV", np.float32(speed), 0.0, 35.0)) == pytest.approx(
            table[row].hv_db_35, abs=0.1
        )
    speeds = np.array([2.0, 4.0, 7.0, 10.0, 15.0, 20.0], dtype=np.float32)
    for incidence in (22.0, 35.0, 45.0):  # monotone in wind speed at every incidence
        hh = [_direction_mean_db(u, incidence) for u in speeds]
        assert np.all(np.diff(hh) > 0), (incidence, hh)
    # strongly angle dependent: -0.5 .. -1 dB/deg between 25 and 45 deg at 10 m/s
    slope = (_direction_mean_db(10.0, 45.0) - _direction_mean_db(10.0, 25.0)) / 20.0
    assert -1.0 < slope < -0.5
    with pytest.raises(ValueError, match="'VV' not modelled"):
        water_sigma0_db("VV", np.float32(5.0), 0.0, 35.0)


def test_windy_water_overlaps_ice_in_hh_and_stays_dark_in_hv():
    young = surface_backscatter()["young"]
    incidence = 30.0
    young_hh = young.hh_db_35 + young.hh_slope_db_per_deg * (incidence - 35.0)
    young_hv = young.hv_db_35 + young.hv_slope_db_per_deg * (incidence - 35.0)
    assert _direction_mean_db(10.0, incidence) > young_hh  # 10 m/s water brighter than young ice
    assert _direction_mean_db(4.0, incidence) < young_hh - 3  # light wind: dark
    assert float(water_sigma0_db("HV", np.float32(15.0), 0.0, incidence)) < young_hv - 2


def test_class_statistics_at_mid_range(scenes):
    scene, db, truth, valid = scenes["winter"]
    table = surface_backscatter()
    incidence = np.broadcast_to(
        19.0 + 28.0 * np.linspace(0, 1, truth.shape[1])[None, :], truth.shape
    )  # close enough to select a mid-range band
    mid = valid & (incidence > 30) & (incidence < 40)
    for name in ("young", "level_first_year", "deformed"):
        s = table[name]
        sel = mid & (truth == s.ice_class_code)
        assert sel.sum() > 500, name
        for pol in ("HH", "HV"):
            model = s.db_35(pol, melt=False) + s.slope(pol) * (np.median(incidence[sel]) - 35)
            assert np.median(db[pol][sel]) == pytest.approx(model, abs=2.0), (name, pol)
        spread = np.std(db["HH"][sel])
        assert 1.0 < spread < 4.5, (name, spread)
    # scene-wide HH / HV near the AI4Arctic dataset statistics (-14.5 +- 5.7, -24.7 +- 4.8 dB)
    sea = valid & (truth > 0)
    assert -19.0 < db["HH"][sea].mean() < -12.0 and 3.5 < db["HH"][sea].std() < 8.0
    assert -29.0 < db["HV"][sea].mean() < -22.0
    assert not scene.conditions["melt"]


def test_windy_water_overlaps_young_ice_and_hv_separates_them(scenes):
    _, db, truth, valid = scenes["winter"]
    water, young = valid & (truth == 1), valid & (truth == 3)
    overlap = np.mean(db["HH"][water] > np.percentile(db["HH"][young], 25))
    assert overlap > 0.15, overlap  # a real share of water looks like young ice in HH
    assert np.median(db["HV"][water]) < np.median(db["HV"][young]) - 2.5  # but not in HV


def test_melt_lowers_ice_backscatter_and_contrast(scenes):
    winter, db_w, truth, valid = scenes["winter"]
    melt, db_m, truth_m, _ = scenes["melt"]
    assert melt.conditions["melt"] and np.array_equal(truth, truth_m)
    ice = valid & (truth >= 2)
    assert np.median(db_m["HV"][ice]) < np.median(db_w["HV"][ice]) - 1.5
    assert np.median(db_m["HH"][ice]) < np.median(db_w["HH"][ice]) - 0.5

    def contrast(db):
        deformed = np.median(db["HH"][valid & (truth == 5)])
        level = np.median(db["HH"][valid & (truth == 4)])
        return deformed - level

    assert contrast(db_m) < 0.6 * contrast(db_w)
    assert np.std(db_m["HH"][ice]) < np.std(db_w["HH"][ice])


def test_thin_new_ice_darkens_part_of_the_young_class(scenes):
    young = surface_backscatter()["young"]
    shares = {}
    for key in ("winter", "easy"):
        _, db, truth, valid = scenes[key]
        sel = valid & (truth == young.ice_class_code)
        incidence = 19.0 + 28.0 * np.linspace(0, 1, truth.shape[1])[None, :]
        model = young.hh_db_35 + young.hh_slope_db_per_deg * (
            np.broadcast_to(incidence, truth.shape)[sel] - 35.0
        )
        shares[key] = np.mean(db["HH"][sel] < model - 4.0)
    assert shares["winter"] > 0.08 and shares["easy"] < 0.03, shares


def test_mixed_pixels_at_class_boundaries(scenes):
    step = np.full((8, 16), -25.0, dtype=np.float32)
    step[:, 8:] = -10.0
    blurred = 10 * np.log10(_point_spread(step))
    assert np.allclose(blurred[:, :5], -25.0, atol=0.01)  # flat stays flat
    assert -24.0 < blurred[0, 7] < blurred[0, 8] < -10.5  # the edge pixels mix both
    assert _point_spread(step).sum() == pytest.approx((10 ** (step / 10)).sum(), rel=1e-4)
    gaps = {}
    for key in ("winter", "easy"):  # HV of water next to ice vs open water far from it
        scene, _, truth, valid = scenes[key]
        db, _, _ = _sigma0_db(scene, boxcar=1)  # single pixels: only the sensor mixes
        ice = truth >= 2
        edge = valid & (truth == 1) & binary_dilation(ice, iterations=1)
        far = valid & (truth == 1) & ~binary_dilation(ice, iterations=6)
        lin = lambda x: 10 * np.log10(np.mean(10 ** (x / 10)))  # noqa: E731
        gaps[key] = lin(db["HV"][edge]) - lin(db["HV"][far])
    assert gaps["winter"] > gaps["easy"] + 0.5, gaps


def test_melt_follows_the_date_unless_given(tmp_path):
    assert is_melt_season(SUMMER, 78.0) and not is_melt_season(WINTER, 78.0)
    assert is_melt_season(WINTER, -70.0)
    small = {"lines": 64, "samples": 96}
    by_date = generate_ew_grd_scene(tmp_path / "a", seed=5, start_time=SUMMER, **small)
    forced = generate_ew_grd_scene(tmp_path / "b", seed=5, start_time=WINTER, melt=True, **small)
    off = generate_ew_grd_scene(tmp_path / "c", seed=5, start_time=SUMMER, melt=False, **small)
    read = lambda s: open_safe(s.safe_path).read_dn("HH")  # noqa: E731
    assert by_date.conditions["melt"] and forced.conditions["melt"]
    assert not off.conditions["melt"]
    assert np.array_equal(read(by_date), read(forced))
    assert not np.array_equal(read(by_date), read(off))


def test_difficulty_out_of_range_is_refused(tmp_path):
    with pytest.raises(ValueError, match="difficulty 4.0 must be in"):
        generate_ew_grd_scene(tmp_path, seed=1, start_time=WINTER, difficulty=4.0)


def test_broken_floes_add_cracks_and_small_fragments(tmp_path, monkeypatch):
    import rasterio

    import tasks.sentinel1.generator as generator

    def boundaries(share, name):
        monkeypatch.setattr(generator, "BROKEN_FLOE_SHARE", share)
        scene = generate_ew_grd_scene(tmp_path / name, seed=9, start_time=WINTER, **SHAPE)
        with rasterio.open(scene.truth_raster_path) as src:
            truth = src.read(1)
        return int((truth[1:] != truth[:-1]).sum() + (truth[:, 1:] != truth[:, :-1]).sum())

    assert boundaries(0.6, "broken") > 1.1 * boundaries(0.0, "whole")
