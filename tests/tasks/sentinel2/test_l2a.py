from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from rasterio.windows import Window

from tasks.sentinel2.l2a import (
    boa_add_offset,
    list_acquisitions,
    read_bands,
    read_grid,
    read_scl,
    write_acquisition,
)
from tasks.sentinel2.tiles import synthetic_tile_grid

BANDS = ("B02", "B04", "B08", "B11")


def _write(archive, date, baseline="04.00", nodata=None):
    grid = synthetic_tile_grid("33UWP", 32)
    rng = np.random.default_rng(0)
    refl = rng.uniform(0.01, 0.5, (len(BANDS), 32, 32)).astype(np.float32)
    scl = (np.arange(16 * 16).reshape(16, 16) % 12).astype(np.uint8)
    write_acquisition(archive, grid, date, refl, scl, bands=BANDS, processing_baseline=baseline,
                      nodata_10m=nodata)
    return grid, refl, scl


@pytest.mark.parametrize("baseline", ["04.00", "03.01"])
def test_round_trip_removes_the_boa_offset(tmp_path, baseline):
    grid, refl, scl = _write(tmp_path, dt.date(2018, 4, 15), baseline)
    (acq,) = list_acquisitions(tmp_path, "33UWP", dt.date(2018, 1, 1), dt.date(2018, 12, 31))
    assert acq.date == dt.date(2018, 4, 15) and acq.tile == "33UWP"
    import rasterio

    with rasterio.open(acq.band_path("B02")) as src:
        dn = src.read(1)
        assert src.crs.to_epsg() == 32633 and src.res == (10.0, 10.0)
    assert (dn.min() >= 1000) == (baseline == "04.00")
    out = read_bands(acq, BANDS)
    assert out.shape == (4, 32, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], refl[0], atol=6e-5)  # 10 m band: exact to a DN
    coarse = refl[3].reshape(16, 2, 16, 2).mean(axis=(1, 3))  # 20 m band: block mean, repeated
    np.testing.assert_allclose(out[3], np.repeat(np.repeat(coarse, 2, 0), 2, 1), atol=6e-5)
    assert read_grid(acq).transform == grid.transform
    np.testing.assert_array_equal(read_scl(acq), np.repeat(np.repeat(scl, 2, 0), 2, 1))
    assert boa_add_offset(baseline) == (-1000 if baseline == "04.00" else 0)


def test_windowed_read_with_odd_offsets_matches_full_read(tmp_path):
    _write(tmp_path, dt.date(2018, 4, 15))
    (acq,) = list_acquisitions(tmp_path, "33UWP", dt.date(2018, 1, 1), dt.date(2018, 12, 31))
    full, full_scl = read_bands(acq, BANDS), read_scl(acq)
    win = Window(3, 5, 11, 7)  # col, row, width, height
    np.testing.assert_array_equal(read_bands(acq, BANDS, win), full[:, 5:12, 3:14])
    np.testing.assert_array_equal(read_scl(acq, win), full_scl[5:12, 3:14])


def test_nodata_is_nan_and_date_range_filters(tmp_path):
    nodata = np.zeros((32, 32), dtype=bool)
    nodata[:4] = True
    _write(tmp_path, dt.date(2018, 4, 15), nodata=nodata)
    _write(tmp_path, dt.date(2018, 9, 2))
    (acq,) = list_acquisitions(tmp_path, "33UWP", dt.date(2017, 9, 1), dt.date(2018, 8, 31))
    out = read_bands(acq, BANDS)
    assert np.isnan(out[:, :4]).all() and np.isfinite(out[:, 4:]).all()
    assert len(list_acquisitions(tmp_path, "33UWP", dt.date(2017, 1, 1), dt.date(2019, 1, 1))) == 2
    assert list_acquisitions(tmp_path, "33UXP", dt.date(2017, 1, 1), dt.date(2019, 1, 1)) == []


def test_acquisition_folder_without_item_is_an_error(tmp_path):
    (tmp_path / "33UWP" / "S2A_33UWP_20180415_0_L2A").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="without its STAC item"):
        list_acquisitions(tmp_path, "33UWP", dt.date(2018, 1, 1), dt.date(2018, 12, 31))
