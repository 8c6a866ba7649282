"""The harmonise reading path (regions, DN median kernel) against straightforward references."""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import warnings

import numpy as np
import pytest
import rasterio
import zarr
from rasterio.transform import Affine
from rasterio.windows import Window

import tasks.sentinel2.l2a as l2a
from tasks.domain.crops import S2_BANDS
from tasks.food_security.harmonise import (
    N_MONTHS,
    STORE_COMPRESSION,
    RegionJob,
    _fill_and_write,
    composite_region,
    create_tile_store,
    fill_gaps,
    median_kernel,
    month_index,
    monthly_median_composite,
    season_months,
    sorting_network,
    tile_region_jobs,
)
from tasks.sentinel2.l2a import (
    list_acquisitions,
    read_bands,
    read_scl,
    write_acquisition,
)
from tasks.sentinel2.tiles import TileGrid

MASKED = (0, 1, 3, 8, 9, 10, 11)
SEASON = dt.date(2017, 9, 1)
SIZE = 64
# month 0: 4 dates (even count); month 1: 3 dates under two processing baselines (offsets
# 0 and -0.1: reflectance keys, not DN); month 2: one date; the other months: none
DATES = [(dt.date(2017, 9, d), "04.00") for d in (3, 9, 15, 27)] + [
    (dt.date(2017, 10, 2), "03.01"), (dt.date(2017, 10, 12), "04.00"),
    (dt.date(2017, 10, 22), "04.00"), (dt.date(2017, 11, 5), "04.00")]


@pytest.fixture(scope="module")
def tiny_tile(tmp_path_factory):
    """A generated 64 x 64 px tile: coarse reflectance levels (many ties), clouds, no-data."""
    archive = tmp_path_factory.mktemp("l2a")
    grid = TileGrid(tile="33UWP", epsg=32633, transform=Affine(10, 0, 500000, 0, -10, 5600000),
                    width=SIZE, height=SIZE)
    rng = np.random.default_rng(7)
    for date, baseline in DATES:
        refl = (rng.integers(1, 12, (len(S2_BANDS), SIZE, SIZE)) / 40).astype(np.float32)
        scl = rng.choice(np.array([4, 4, 4, 5, 8, 3, 0, 11], np.uint8), (SIZE // 2, SIZE // 2))
        nodata = np.zeros((SIZE, SIZE), bool)
        nodata[:5, :7] = rng.random() < 0.5
        write_acquisition(archive, grid, date, refl, scl, bands=S2_BANDS,
                          processing_baseline=baseline, nodata_10m=nodata)
    acquisitions = list_acquisitions(archive, "33UWP", SEASON, dt.date(2018, 8, 31))
    assert len(acquisitions) == len(DATES)
    return grid, acquisitions


def read_10m(path):
    """A raster read whole with rasterio, 20 m pixels repeated 2 x 2 with np.repeat."""
    with rasterio.open(path) as src:
        data = src.read(1)
    if data.shape[0] < SIZE:
        data = np.repeat(np.repeat(data, 2, axis=0), 2, axis=1)
    return data


def reference_reflectance(acquisition):
    out = []
    for band in S2_BANDS:
        dn = read_10m(acquisition.band_path(band))
        refl = dn.astype(np.float32) * np.float32(acquisition.scale[band]) + np.float32(
            acquisition.offset[band])
        refl[dn == 0] = np.nan
        out.append(refl)
    return np.stack(out)


def reference_composite(acquisitions):
    """Per month np.nanmedian of the clear observations, each file read whole by rasterio."""
    median = np.full((N_MONTHS, len(S2_BANDS), SIZE, SIZE), np.nan, np.float32)
    count = np.zeros((N_MONTHS, SIZE, SIZE), np.uint16)
    for month in range(N_MONTHS):
        mine = [a for a in acquisitions if month_index(a.date, SEASON) == month]
        if not mine:
            continue
        refl = np.stack([reference_reflectance(a) for a in mine])
        valid = np.stack([~np.isin(read_10m(a.band_path("SCL")), MASKED) for a in mine])
        valid &= np.isfinite(refl).all(axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
            median[month] = np.nanmedian(np.where(valid[:, None], refl, np.nan), axis=0)
        count[month] = valid.sum(axis=0)
    return median, count


def run_region(tmp_path, grid, acquisitions, threads=2):
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = tmp_path / "t.zarr"
    create_tile_store(store, grid, season_months(SEASON), "2017-09_2018-08", 32)
    jobs = tile_region_jobs(store, grid, acquisitions, SEASON, 32, list(MASKED), "none", threads)
    assert [j.window for j in jobs] == [(0, 0, SIZE, SIZE)]  # a small tile is one region
    result = composite_region(jobs[0])
    group = zarr.open_group(str(store), mode="r")
    return result, np.asarray(group["reflectance"][:]), np.asarray(group["valid_count"][:])


def test_region_composite_equals_nanmedian_reference(tiny_tile, tmp_path):
    grid, acquisitions = tiny_tile
    result, median, count = run_region(tmp_path, grid, acquisitions)
    ref_median, ref_count = reference_composite(acquisitions)
    assert median.dtype == np.float32 and count.dtype == np.uint16
    assert np.array_equal(count, ref_count)
    assert np.array_equal(median, ref_median, equal_nan=True)  # bit for bit, NaN where empty
    assert (count[0] > 0).any() and (count[0] % 2 == 0).any()  # even counts were exercised
    assert result["observations"] == len(DATES) * SIZE * SIZE
    assert result["max_count"] == [int(m) for m in ref_count.max(axis=(1, 2))]


def test_each_file_is_opened_once(tiny_tile, tmp_path, monkeypatch):
    """Each band and SCL file is parsed once (direct deflate decoding) and never opened by GDAL."""
    grid, acquisitions = tiny_tile
    parsed: collections.Counter[str] = collections.Counter()
    opened: collections.Counter[str] = collections.Counter()
    real_layout, real_open = l2a.tiff_layout, l2a._open

    def counting_layout(path):
        parsed[str(path)] += 1
        return real_layout(path)

    def counting_open(path):
        opened[str(path)] += 1
        return real_open(path)

    monkeypatch.setattr(l2a, "tiff_layout", counting_layout)
    monkeypatch.setattr(l2a, "_open", counting_open)
    run_region(tmp_path, grid, acquisitions)
    expected = {str(a.band_path(b)) for a in acquisitions for b in (*S2_BANDS, "SCL")}
    assert set(parsed) == expected
    assert set(parsed.values()) == {1}
    assert not opened


def test_rasterio_fallback_opens_each_file_once_same_composite(tiny_tile, tmp_path, monkeypatch):
    """Files the direct decoder does not take are read through rasterio: same bits, one open."""
    grid, acquisitions = tiny_tile
    _, direct_median, direct_count = run_region(tmp_path / "direct", grid, acquisitions)
    opened: collections.Counter[str] = collections.Counter()
    real_open = l2a._open

    def counting_open(path):
        opened[str(path)] += 1
        return real_open(path)

    monkeypatch.setattr(l2a, "tiff_layout", lambda path: None)
    monkeypatch.setattr(l2a, "_open", counting_open)
    _, median, count = run_region(tmp_path / "gdal", grid, acquisitions)
    expected = {str(a.band_path(b)) for a in acquisitions for b in (*S2_BANDS, "SCL")}
    assert set(opened) == expected
    assert set(opened.values()) == {1}
    assert np.array_equal(count, direct_count)
    assert np.array_equal(median, direct_median, equal_nan=True)
    assert np.isfinite(median).any()


def test_sorting_network_sorts_every_zero_one_input():
    for n in range(1, 13):
        net = sorting_network(n)
        for bits in itertools.product((0, 1), repeat=n):
            v = list(bits)
            for i, j in net:
                v[i], v[j] = min(v[i], v[j]), max(v[i], v[j])
            assert v == sorted(v), n


@pytest.mark.parametrize("n_time", [0, 1, 2, 5, 6, 9, 16, 30])
def test_median_kernel_matches_float_sort(n_time):
    rng = np.random.default_rng(n_time)
    dn = (rng.integers(0, 30, (n_time, 3, 50, 40)) * 41 + 1000).astype(np.uint16)
    valid = rng.random((n_time, 50, 40)) < 0.6
    scale, offset = np.float32(1e-4), np.float32(-0.1)
    refl = dn.astype(np.float32) * scale + offset
    expected, expected_count = monthly_median_composite(refl, valid)
    keys = np.where(valid[:, None], dn, 65535).reshape(n_time, 3, 50 * 40)
    flat_valid = valid.reshape(n_time, 50 * 40)
    median, count = median_kernel(keys, flat_valid, 65535, np.full(3, scale),
                                  np.full(3, offset), masked=True)
    assert np.array_equal(count, expected_count.reshape(-1))
    assert np.array_equal(median, expected.reshape(3, -1), equal_nan=True)
    median, _ = median_kernel(refl.reshape(n_time, 3, 50 * 40), flat_valid, np.inf)
    assert np.array_equal(median, expected.reshape(3, -1), equal_nan=True)


def test_regions_of_a_large_tile_hold_whole_chunks(tiny_tile, tmp_path, monkeypatch):
    import tasks.food_security.harmonise as harmonise

    grid, acquisitions = tiny_tile
    monkeypatch.setattr(harmonise, "REGION_MAX_PX", 16 * 16)
    jobs = tile_region_jobs(tmp_path / "t.zarr", grid, acquisitions, SEASON, 32,
                            list(MASKED), "none")
    assert isinstance(jobs[0], RegionJob)
    covered = np.zeros((SIZE, SIZE), int)
    for job in jobs:
        row0, col0, height, width = job.window
        assert row0 % 32 == 0 and col0 % 32 == 0
        covered[row0:row0 + height, col0:col0 + width] += 1
    assert (covered == 1).all()


def test_read_bands_and_scl_match_plain_repeat(tiny_tile):
    _, acquisitions = tiny_tile
    acquisition = acquisitions[0]
    assert np.array_equal(read_bands(acquisition, S2_BANDS), reference_reflectance(acquisition),
                          equal_nan=True)
    assert np.array_equal(read_scl(acquisition), read_10m(acquisition.band_path("SCL")))
    window = Window(3, 5, 17, 22)  # odd offsets and sizes: the repeat-and-crop path
    expected = reference_reflectance(acquisition)[:, 5:27, 3:20]
    assert np.array_equal(read_bands(acquisition, S2_BANDS, window), expected, equal_nan=True)


def test_region_shape_fits_the_budget_with_large_blocks(monkeypatch):
    import tasks.food_security.harmonise as harmonise

    class FakeSrc:
        def __init__(self, path):
            twenty = str(path) in ("B05", "B06", "B07", "B8A", "B11", "B12", "SCL")
            self.transform = Affine(20 if twenty else 10, 0, 0, 0, -10, 0)
            self.block_shapes = [(1024, 1024)]

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    class FakeAcquisition:
        def band_path(self, band):
            return band

    monkeypatch.setattr(harmonise.rasterio, "open", FakeSrc)
    grid = TileGrid(tile="33UWP", epsg=32633, transform=Affine(10, 0, 0, 0, -10, 0),
                    width=10980, height=10980)
    rows, cols = harmonise.region_shape(grid, FakeAcquisition(), 256)
    assert rows * cols <= harmonise.REGION_MAX_PX
    assert rows % 256 == 0 and cols % 256 == 0 and 2048 % rows == 0 and 2048 % cols == 0


def test_store_codec_is_lossless_blosc_named_in_the_attributes(tiny_tile, tmp_path):
    grid, acquisitions = tiny_tile
    _, median, _ = run_region(tmp_path, grid, acquisitions)
    group = zarr.open_group(str(tmp_path / "t.zarr"), mode="r")
    assert group.attrs["compression"] == STORE_COMPRESSION
    for name in ("reflectance", "valid_count", "gap_filled"):
        (codec,) = group[name].compressors
        assert (codec.cname.value, codec.clevel, codec.shuffle.value) == ("lz4", 5, "shuffle")
    assert np.isfinite(median).any()


@pytest.mark.parametrize("method", ["linear", "nearest", "none"])
def test_fill_gaps_with_known_missing_equals_the_nan_scan(method):
    rng = np.random.default_rng(11)
    comp = rng.random((N_MONTHS, 3, 20, 30)).astype(np.float32)
    missing = rng.random((N_MONTHS, 20, 30)) < 0.5
    missing[5] = False  # every pixel has data in month 5 ...
    missing[:, :2] = True  # ... but those of rows 0-1 (no data in the year: they stay NaN)
    comp[np.broadcast_to(missing[:, None], comp.shape)] = np.nan
    expected, expected_flag = fill_gaps(comp.copy(), method)
    filled, flag = fill_gaps(comp.copy(), method, overwrite=True, missing=missing)
    assert np.array_equal(filled, expected, equal_nan=True)
    assert np.array_equal(flag, expected_flag) and flag.sum() == missing.sum()
    if method != "none":
        assert np.isfinite(filled[:, :, 2:]).all() and np.isnan(filled[:, :, :2]).all()


def test_chunks_are_filled_and_written_one_by_one_empty_ones_not_stored(tmp_path):
    grid = TileGrid(tile="33UWP", epsg=32633, transform=Affine(10, 0, 500000, 0, -10, 5600000),
                    width=64, height=48)
    store = tmp_path / "t.zarr"
    create_tile_store(store, grid, season_months(SEASON), "2017-09_2018-08", 32)
    rng = np.random.default_rng(2)
    counts = rng.integers(0, 3, (N_MONTHS, 48, 64)).astype(np.uint16)
    counts[:, :32, :32] = 0  # chunk (0, 0): no observation in the year
    refl = rng.random((N_MONTHS, len(S2_BANDS), 48, 64)).astype(np.float32)
    refl[np.broadcast_to(counts[:, None] == 0, refl.shape)] = np.nan
    expected, expected_flag = fill_gaps(refl.copy(), "linear")
    job = RegionJob(str(store), (0, 0, 48, 64), (), MASKED, "linear", threads=2)
    assert _fill_and_write(job, refl, counts) == int(expected_flag.sum())
    group = zarr.open_group(str(store), mode="r")
    assert np.array_equal(group["reflectance"][:], expected, equal_nan=True)
    assert np.array_equal(group["valid_count"][:], counts)
    assert np.array_equal(group["gap_filled"][:], expected_flag)
    # chunk (0, 0) is all NaN / all zero: not stored; the others are
    for name, folder in (("reflectance", "c/0/0"), ("valid_count", "c/0")):
        chunks = store / name / folder
        assert sorted(p.relative_to(chunks).as_posix() for p in chunks.glob("*/*")) == [
            "0/1", "1/0", "1/1"]


@pytest.mark.parametrize("threads", [1, 3])
def test_region_kernel_split_over_threads_is_bit_identical(tiny_tile, tmp_path, monkeypatch,
                                                           threads):
    """A month's median runs on ``threads`` pixel ranges of whole kernel blocks; same bits."""
    from tasks.food_security import harmonise

    grid, acquisitions = tiny_tile
    monkeypatch.setattr(harmonise, "KERNEL_BLOCK_PX", 1000)  # 4,096 px: 5 blocks
    calls: list[int] = []
    kernel = harmonise.median_kernel

    def spy(keys, valid, *args, **kwargs):
        calls.append(keys.shape[2])
        return kernel(keys, valid, *args, **kwargs)

    monkeypatch.setattr(harmonise, "median_kernel", spy)
    _, median, count = run_region(tmp_path, grid, acquisitions, threads=threads)
    ref_median, ref_count = reference_composite(acquisitions)
    assert np.array_equal(count, ref_count)
    assert np.array_equal(median, ref_median, equal_nan=True)
    # ceil(4096 / 3) = 1366 px rounded up to whole blocks: 2000 + 2000 + 96
    per_month = [SIZE * SIZE] if threads == 1 else [2000, 2000, 96]
    months = sum(1 for m in range(N_MONTHS)
                 if any(month_index(a.date, SEASON) == m for a in acquisitions))
    assert calls == per_month * months
