from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from tasks.domain.crops import S2_BANDS
from tasks.food_security.harmonise import (
    NoDataError,
    fill_gaps,
    monthly_median_composite,
    run_harmonise,
)
from tasks.sentinel2.l2a import list_acquisitions, read_bands, read_scl
from tests.tasks.food_security.s2_pipeline_data import RUN_DATE, YEAR_KEY, pipeline_run


def test_median_of_valid_observations_only():
    refl = np.array([1, 2, 100, 4, 3], dtype=np.float32).reshape(5, 1, 1, 1)
    valid = np.array([1, 1, 0, 1, 1], dtype=bool).reshape(5, 1, 1)
    median, count = monthly_median_composite(refl, valid)
    assert median[0, 0, 0] == 2.5 and count[0, 0] == 4  # even count: mean of middle two
    valid[3] = False
    median, count = monthly_median_composite(refl, valid)
    assert median[0, 0, 0] == 2.0 and count[0, 0] == 3
    median, count = monthly_median_composite(refl, np.zeros_like(valid))
    assert np.isnan(median).all() and count[0, 0] == 0


def test_gap_fill_linear_nearest_and_edges():
    series = np.array([np.nan, 1.0, np.nan, np.nan, 4.0, np.nan], dtype=np.float32)
    comp = series.reshape(6, 1, 1, 1)
    filled, flag = fill_gaps(comp, "linear")
    np.testing.assert_allclose(filled.ravel(), [1, 1, 2, 3, 4, 4])
    assert flag.ravel().tolist() == [1, 0, 1, 1, 0, 1]
    filled, _ = fill_gaps(comp, "nearest")
    np.testing.assert_allclose(filled.ravel(), [1, 1, 1, 4, 4, 4])
    filled, _ = fill_gaps(comp, "none")
    assert np.isnan(filled.ravel()[0])
    empty, flag = fill_gaps(np.full((6, 1, 1, 1), np.nan, np.float32), "linear")
    assert np.isnan(empty).all() and flag.all()


@pytest.fixture(scope="module")
def harmonised(tmp_path_factory):
    return pipeline_run(tmp_path_factory, upto="harmonise")


def test_composite_store_follows_the_schema(harmonised):
    cfg, results = harmonised
    path = results["harmonise"]["tiles"]["33UWP"]["path"]
    ds = xr.open_zarr(path, consolidated=False)
    assert ds.reflectance.dims == ("month", "band", "y", "x")
    assert ds.reflectance.shape == (12, 10, 64, 64) and ds.reflectance.dtype == np.float32
    assert ds.valid_count.dtype == np.uint16 and ds.gap_filled.dtype == np.uint8
    assert ds.attrs["months"][0] == "2017-09" and ds.attrs["months"][-1] == "2018-08"
    assert ds.attrs["bands"] == list(S2_BANDS) and ds.attrs["crs"] == "EPSG:32633"
    assert ds.attrs["agronomic_year"] == YEAR_KEY and len(ds.attrs["transform"]) == 6
    refl = ds.reflectance.values
    assert np.nanmax(refl) < 1.0 and np.nanmin(refl) > 0  # cloud / snow masked


def test_composite_equals_median_of_clear_observations(harmonised):
    cfg, results = harmonised
    archive = Path(results["generate"]["archive"])
    ds = xr.open_zarr(results["harmonise"]["tiles"]["33UWP"]["path"], consolidated=False)
    acqs = list_acquisitions(archive, "33UWP", dt.date(2018, 6, 1), dt.date(2018, 6, 30))
    stack = np.stack([read_bands(a, S2_BANDS) for a in acqs])
    scl = np.stack([read_scl(a) for a in acqs])
    valid = ~np.isin(scl, cfg.harmonise.masked_scl_classes) & np.isfinite(stack).all(axis=1)
    counts = valid.sum(axis=0)
    np.testing.assert_array_equal(ds.valid_count.sel(month="2018-06").values, counts)
    y, x = np.argwhere(counts > 0)[0]
    expected = np.median(stack[valid[:, y, x], :, y, x], axis=0)
    np.testing.assert_allclose(ds.reflectance.sel(month="2018-06").values[:, y, x], expected,
                               rtol=1e-6)


def test_fully_clouded_month_is_gap_filled_and_flagged(harmonised):
    cfg, results = harmonised
    tile = results["harmonise"]["tiles"]["33UXP"]
    assert 3 in tile["no_data_months"]  # December (month index 3) is fully clouded
    ds = xr.open_zarr(tile["path"], consolidated=False)
    dec = ds.sel(month="2017-12")
    assert int(dec.valid_count.max()) == 0 and bool((dec.gap_filled == 1).all())
    assert np.isfinite(dec.reflectance.values).mean() > 0.99


def test_year_without_data_is_a_clear_error(harmonised):
    cfg, _ = harmonised
    with pytest.raises(NoDataError, match=r"2019-09_2020-08.*\['33UWP', '33UXP', '33UVP'\]"):
        run_harmonise(cfg, "2020-01-15")


@pytest.mark.slow
def test_rerun_is_identical(harmonised):
    cfg, results = harmonised
    before = xr.open_zarr(results["harmonise"]["tiles"]["33UVP"]["path"],
                          consolidated=False).load()
    again = run_harmonise(cfg, RUN_DATE)
    after = xr.open_zarr(again["tiles"]["33UVP"]["path"], consolidated=False).load()
    xr.testing.assert_identical(before, after)
    assert sorted(p.name for p in Path(again["output"]).iterdir()) == [
        "33UVP.zarr", "33UWP.zarr", "33UXP.zarr", "manifest.json"]
