"""Harmonise checked value by value on hand-made inputs (issue 19).

Month keys, medians, gap filling and the per-tile summary are worked out by hand here for a few
pixels; ``run_harmonise`` runs on a two-tile archive of 16 x 16 px acquisitions whose composite is
recomputed from the GeoTIFFs with ``np.nanmedian``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import xarray as xr
import zarr
from rasterio.transform import Affine

import tasks.food_security.harmonise as harmonise
from tasks.domain.crops import S2_BANDS
from tasks.food_security.harmonise import (
    EmptyTileError,
    NoDataError,
    _gap_statistics,
    _month_keys,
    check_empty_months,
    fill_gaps,
    l2a_archive,
    median_kernel,
    median_network,
    month_index,
    monthly_median_composite,
    region_shape,
    run_harmonise,
    season_months,
    sorting_network,
    tile_region_jobs,
)
from tasks.sentinel2.l2a import L2AAcquisition, write_acquisition
from tasks.sentinel2.tiles import TileGrid
from tasks.storage import zarr_array
from tests.tasks.food_security.s2_pipeline_data import small_config

KEY = "2017-09_2018-08"
NAN = np.nan


def test_season_months_and_month_index() -> None:
    assert season_months(dt.date(2017, 9, 1)) == [
        "2017-09", "2017-10", "2017-11", "2017-12", "2018-01", "2018-02", "2018-03", "2018-04",
        "2018-05", "2018-06", "2018-07", "2018-08"]
    assert season_months(dt.date(2018, 1, 1)) == [f"2018-{m:02d}" for m in range(1, 13)]
    assert season_months(dt.date(999, 12, 1))[:2] == ["0999-12", "1000-01"]
    start = dt.date(2017, 9, 1)
    assert [month_index(dt.date(*d), start) for d in
            [(2017, 9, 1), (2017, 9, 30), (2017, 12, 31), (2018, 1, 1), (2018, 8, 31)]] == [
        0, 0, 3, 4, 11]


def test_monthly_median_by_hand() -> None:
    # 4 dates, 2 bands, 1 x 3 pixels: all valid / 3 valid / none valid
    refl = np.array([[[[4, 1, 9]], [[40, 10, 90]]],
                     [[[2, 5, 9]], [[20, 50, 90]]],
                     [[[8, 3, 9]], [[80, 30, 90]]],
                     [[[6, 7, 9]], [[60, 70, 90]]]], np.float32)
    valid = np.array([[[1, 1, 0]], [[1, 0, 0]], [[1, 1, 0]], [[1, 1, 0]]], bool)
    median, count = monthly_median_composite(refl, valid)
    assert count.dtype == np.uint16 and count.tolist() == [[4, 3, 0]]
    assert median.dtype == np.float32
    np.testing.assert_array_equal(median, [[[5, 3, NAN]], [[50, 30, NAN]]])
    empty, none = monthly_median_composite(np.zeros((0, 2, 1, 3), np.float32),
                                           np.zeros((0, 1, 3), bool))
    assert empty.shape == (2, 1, 3) and np.isnan(empty).all() and empty.dtype == np.float32
    assert none.tolist() == [[0, 0, 0]] and none.dtype == np.uint16


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 12, 13])
def test_median_network_orders_the_lower_half(n: int) -> None:
    rng = np.random.default_rng(n)
    network = median_network(n)
    assert set(network) <= set(sorting_network(n))
    if n >= 5:
        assert len(network) < len(sorting_network(n))  # pruned
    assert all(i < j for i, j in network)
    for _ in range(200):
        values = list(rng.integers(0, 5, n))
        for i, j in network:
            values[i], values[j] = min(values[i], values[j]), max(values[i], values[j])
        assert values[:n // 2 + 1] == sorted(values)[:n // 2 + 1]


def test_batcher_network_of_four_and_three() -> None:
    assert sorting_network(4) == ((0, 1), (2, 3), (0, 2), (1, 3), (1, 2))
    assert sorting_network(3) == ((0, 1), (0, 2), (1, 2))
    assert sorting_network(1) == ()
    assert median_network(4) == sorting_network(4)


@pytest.mark.parametrize("n_time", [1, 2, 3, 4, 25])
def test_median_kernel_dn_with_scale_and_offset(n_time: int) -> None:
    rng = np.random.default_rng(n_time)
    n_px = harmonise.KERNEL_BLOCK_PX + 3  # two blocks
    dn = rng.integers(1, 9, (n_time, 2, n_px)).astype(np.uint16)
    valid = rng.random((n_time, n_px)) < 0.7
    valid[:, 0] = False
    valid[:, 1] = True
    scale = np.array([0.5, 0.25], np.float32)
    offset = np.array([-0.125, 1.0], np.float32)
    median, count = median_kernel(dn, valid, 65535, scale, offset)
    refl = dn.astype(np.float32) * scale[None, :, None] + offset[None, :, None]
    expected = np.full((2, n_px), np.nan, np.float32)
    for p in range(n_px):
        obs = np.sort(refl[valid[:, p], :, p], axis=0)
        k = len(obs)
        if k:
            expected[:, p] = np.float32(0.5) * (obs[(k - 1) // 2] + obs[k // 2])
    assert count.tolist() == valid.sum(axis=0).tolist() and count.dtype == np.uint16
    np.testing.assert_array_equal(median, expected)
    # masked keys (sentinel already in place) sorted in place, into ``out``
    masked = np.where(valid[:, None], dn, np.uint16(65535))
    out = np.zeros((2, n_px), np.float32)
    got, _ = median_kernel(masked, valid, 65535, scale, offset, masked=True, out=out)
    assert got is out
    np.testing.assert_array_equal(out, expected)
    # float keys, no scale: the plain median of the valid values
    floats = refl.copy()
    got, _ = median_kernel(floats, valid, np.inf)
    np.testing.assert_array_equal(got, expected)


def test_median_kernel_without_dates() -> None:
    median, count = median_kernel(np.zeros((0, 3, 5), np.uint16), np.zeros((0, 5), bool), 65535)
    assert median.shape == (3, 5) and np.isnan(median).all() and median.dtype == np.float32
    assert count.tolist() == [0] * 5 and count.dtype == np.uint16


def _series(*months: tuple[int, float]) -> np.ndarray:
    """(12, 2, 1, 1) composite with band 1 = 10 x band 0, NaN outside ``months``."""
    out = np.full((12, 2, 1, 1), np.nan, np.float32)
    for month, value in months:
        out[month, 0, 0, 0] = value
        out[month, 1, 0, 0] = 10 * value
    return out


def test_fill_gaps_linear_by_hand() -> None:
    composite = np.concatenate([_series((2, 1.0), (6, 3.0), (9, 0.0)),
                                _series()], axis=3)  # second pixel: no data all year
    filled, flags = fill_gaps(composite, "linear")
    band0 = filled[:, 0, 0, 0].tolist()
    assert band0 == pytest.approx([1, 1, 1, 1.5, 2, 2.5, 3, 2, 1, 0, 0, 0])
    assert filled[:, 1, 0, 0].tolist() == pytest.approx([10 * v for v in band0])
    assert flags[:, 0, 0].tolist() == [1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1]
    assert flags[:, 0, 1].tolist() == [1] * 12 and np.isnan(filled[:, :, 0, 1]).all()
    assert flags.dtype == np.uint8 and filled.dtype == np.float32
    assert np.isnan(composite[0, 0, 0, 0])  # a copy was filled


def test_fill_gaps_nearest_ties_take_the_earlier_month() -> None:
    composite = _series((1, 1.0), (5, 5.0), (8, 8.0))
    filled, flags = fill_gaps(composite, "nearest")
    assert filled[:, 0, 0, 0].tolist() == [1, 1, 1, 1, 5, 5, 5, 8, 8, 8, 8, 8]
    assert flags[:, 0, 0].tolist() == [1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1]
    # month 3 is 2 from month 1 and 2 from month 5: the earlier wins
    assert filled[3, 1, 0, 0] == 10.0


def test_fill_gaps_none_overwrite_known_missing_and_bad_method() -> None:
    composite = _series((0, 2.0), (4, 6.0))
    same, flags = fill_gaps(composite, "none")
    assert same is composite and flags[:, 0, 0].tolist() == [0, 1, 1, 1, 0] + [1] * 7
    full = _series(*[(m, float(m)) for m in range(12)])
    unchanged, no_flags = fill_gaps(full, "linear")
    assert unchanged is full and not no_flags.any()
    # the caller says month 2 has no data although it holds a value: it is filled
    missing = np.isnan(composite).any(axis=1)
    missing[2] = True
    composite[2] = 99.0
    work = composite.copy()
    filled, flags = fill_gaps(work, "linear", overwrite=True, missing=missing)
    assert np.shares_memory(filled, work)
    assert work[:5, 0, 0, 0].tolist() == pytest.approx([2, 3, 4, 5, 6])
    assert flags[:, 0, 0].tolist() == missing[:, 0, 0].astype(int).tolist()
    with pytest.raises(ValueError) as err:
        fill_gaps(_series((3, 1.0)), "cubic")
    assert str(err.value) == "gap_fill 'cubic' is not one of linear, nearest, none"


def _acquisition(scale: float, offset: float, day: int = 1) -> L2AAcquisition:
    return L2AAcquisition(
        tile="33UWP", date=dt.date(2017, 9, day), item_id=f"i{day}", item_path=f"i{day}.json",
        assets={}, scale=dict.fromkeys(S2_BANDS, scale), offset=dict.fromkeys(S2_BANDS, offset),
        cloud_cover=None)


def test_month_keys_dn_when_uniform_else_reflectance() -> None:
    n_band = len(S2_BANDS)
    dn = np.full((2, n_band, 3), 7, np.uint16)
    dn[1, :, 2] = 65535
    valid = np.array([[True, True, True], [True, True, False]])
    keys, sentinel, scale, offset = _month_keys(dn, valid, (_acquisition(1e-4, -0.1, 1),
                                                            _acquisition(1e-4, -0.1, 2)))
    assert keys is dn and sentinel == 65535
    assert scale is not None and offset is not None
    assert scale.tolist() == [np.float32(1e-4)] * n_band
    assert offset.tolist() == [np.float32(-0.1)] * n_band
    # two offsets: reflectance keys, inf where not valid
    keys, sentinel, scale, offset = _month_keys(dn, valid, (_acquisition(1e-4, 0.0, 1),
                                                            _acquisition(1e-4, -0.1, 2)))
    assert sentinel == np.inf and scale is None and offset is None
    assert keys.dtype == np.float32
    assert keys[0, :, 0].tolist() == [np.float32(7) * np.float32(1e-4)] * n_band
    assert keys[1, :, 0].tolist() == [np.float32(7) * np.float32(1e-4) + np.float32(-0.1)] * n_band
    assert np.isinf(keys[1, :, 2]).all() and np.isfinite(keys[0]).all()
    # a zero scale is not monotone: reflectance keys
    _, sentinel, scale, _ = _month_keys(dn, valid, (_acquisition(0.0, 0.0),))
    assert sentinel == np.inf and scale is None


def test_empty_months_limit_and_message() -> None:
    months = season_months(dt.date(2017, 9, 1))
    check_empty_months("33UWP", [0, 1], months, 3)  # fewer than the limit: fine
    with pytest.raises(EmptyTileError) as err:
        check_empty_months("33UWP", [0, 1, 5], months, 3)
    assert str(err.value) == (
        "tile 33UWP: no valid (unmasked) observation in 3 of 12 months (2017-09, 2017-10, "
        "2018-02), at least harmonise.max_empty_months 3; a map from it would be empty. Check "
        "the tile's SCL masks / cloud cover, ingest more acquisitions, or remove the tile from "
        "ingest.generator.tiles")


def test_gap_statistics_from_region_results() -> None:
    results: list[Any] = [
        {"observations": 0, "pixels": 6, "gap_filled": 7, "max_count": [0, 2] + [0] * 10},
        {"observations": 0, "pixels": 6, "gap_filled": 5, "max_count": [0, 0, 1] + [0] * 9},
    ]
    assert _gap_statistics(results, (3, 4)) == {
        "gap_filled_fraction": round(12 / (12 * 12), 6),
        "no_data_months": [0, 3, 4, 5, 6, 7, 8, 9, 10, 11]}


def test_l2a_archive_of_each_source(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    assert l2a_archive(cfg, KEY) == tmp_path / "food_security" / "ingest" / KEY / "l2a"
    cfg = small_config(tmp_path, **{"ingest.source": "directory",
                                    "ingest.directory": "/data/{agronomic_year}/l2a",
                                    "ingest.parcel_map": "/data/parcels.gpkg"})
    assert l2a_archive(cfg, KEY) == Path(f"/data/{KEY}/l2a")


def test_region_jobs_cover_a_large_tile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    grid = TileGrid(tile="33UWP", epsg=32633, transform=Affine(10, 0, 0, 0, -10, 0),
                    width=300, height=200)
    assert region_shape(grid, _acquisition(1, 0), 64) == (200, 300)  # fits: one region
    monkeypatch.setattr(harmonise, "region_shape", lambda g, a, c: (128, 128))
    acquisitions = [_acquisition(1, 0, 3), _acquisition(1, 0, 20),
                    L2AAcquisition(tile="33UWP", date=dt.date(2018, 8, 31), item_id="x",
                                   item_path="x", assets={}, scale={}, offset={},
                                   cloud_cover=None)]
    jobs = tile_region_jobs(tmp_path / "s.zarr", grid, acquisitions, dt.date(2017, 9, 1), 64,
                            [3, 8], "nearest", threads=3)
    assert [j.window for j in jobs] == [(0, 0, 128, 128), (0, 128, 128, 128), (0, 256, 128, 44),
                                        (128, 0, 72, 128), (128, 128, 72, 128),
                                        (128, 256, 72, 44)]
    job = jobs[0]
    assert job.zarr_path == str(tmp_path / "s.zarr") and job.masked_scl == (3, 8)
    assert job.gap_fill == "nearest" and job.threads == 3
    assert [len(m) for m in job.acquisitions_by_month] == [2] + [0] * 10 + [1]
    assert job.acquisitions_by_month[11][0].item_id == "x"


@pytest.mark.parametrize(("chunk", "block_10m", "block_20m", "expected"), [
    # 20 m blocks of 512 x 1024 span 1024 x 2048 px: 2 M px, the columns halved
    (256, (256, 256), (512, 1024), (1024, 1024)),
    # 512 x 512 px regions fit four times: doubled once
    (256, (256, 256), (256, 256), (1024, 1024)),
    # 38,400 px (lcm of 300 and 512): halved rows / columns in turn down to 600 x 1,200
    (300, (256, 256), (256, 256), (600, 1200)),
    # 1,280 px blocks: no whole number of chunks halves them: one chunk per region
    (256, (1280, 1280), (640, 640), (256, 256)),
    # rows (2,048) halvable, columns (2,304 = 9 chunks) not: rows halved although fewer
    (256, (2048, 2304), (1024, 1152), (256, 2304)),
])
def test_region_shape_fits_whole_chunks_and_blocks_in_the_budget(
        monkeypatch: pytest.MonkeyPatch, chunk: int, block_10m: tuple[int, int],
        block_20m: tuple[int, int], expected: tuple[int, int]) -> None:
    twenty = {"B05", "B06", "B07", "B8A", "B11", "B12", "SCL"}

    class Src:
        def __init__(self, path: Any, *args: Any, **kwargs: Any) -> None:
            coarse = str(path) in twenty
            self.transform = Affine(20 if coarse else 10, 0, 0, 0, -10, 0)
            self.block_shapes = [block_20m if coarse else block_10m]

        def __enter__(self) -> Src:
            return self

        def __exit__(self, *args: Any) -> None:
            return None

    monkeypatch.setattr(harmonise.rasterio, "open", Src)
    acquisition = L2AAcquisition(**{**_acquisition(1, 0).__dict__,
                                    "assets": {b: b for b in (*S2_BANDS, "SCL")}})
    grid = TileGrid(tile="33UWP", epsg=32633, transform=Affine(10, 0, 0, 0, -10, 0),
                    width=10980, height=10980)
    assert region_shape(grid, acquisition, chunk) == expected


def _write_archive(archive: Path, tile: str, x0: float, dates: list[dt.date],
                   seed: int) -> TileGrid:
    grid = TileGrid(tile=tile, epsg=32633, transform=Affine(10, 0, x0, 0, -10, 5_600_000),
                    width=16, height=16)
    rng = np.random.default_rng(seed)
    for date in dates:
        refl = (rng.integers(1, 40, (len(S2_BANDS), 16, 16)) / 100).astype(np.float32)
        scl = np.full((8, 8), 4, np.uint8)
        scl[:2, :2] = 9  # cloud in the corner, every date
        scl[4, 4] = rng.choice([4, 8])
        write_acquisition(archive, grid, date, refl, scl, bands=S2_BANDS)
    return grid


def _reference(archive: Path, tile: str, dates: list[dt.date]) -> np.ndarray:
    """np.nanmedian over the dates of the clear observations, each file read whole."""
    values = []
    for date in dates:
        folder = next((archive / tile).glob(f"*{date:%Y%m%d}*"))
        item = json.loads(next(folder.glob("*.json")).read_text())
        bands = []
        for band in S2_BANDS:
            with rasterio.open(next(folder.glob(f"{band}*.tif"))) as src:
                dn = src.read(1)
            dn = np.repeat(np.repeat(dn, 2, 0), 2, 1) if dn.shape[0] == 8 else dn
            raster = item["assets"][band]["raster:bands"][0]
            refl = dn.astype(np.float32) * np.float32(raster["scale"]) + np.float32(
                raster["offset"])
            refl[dn == 0] = np.nan
            bands.append(refl)
        with rasterio.open(next(folder.glob("SCL*.tif"))) as src:
            scl = np.repeat(np.repeat(src.read(1), 2, 0), 2, 1)
        stack = np.stack(bands)
        stack[:, np.isin(scl, [0, 1, 3, 8, 9, 10, 11])] = np.nan
        values.append(stack)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        return np.nanmedian(np.stack(values), axis=0)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("l2a")
    _write_archive(root, "33UWP", 500_000, [dt.date(2017, 9, 3), dt.date(2017, 9, 13),
                                            dt.date(2017, 11, 2), dt.date(2018, 9, 4)], 1)
    _write_archive(root, "33UXP", 600_000, [dt.date(2017, 9, 8)], 2)
    return root


def _config(root: Path, archive: Path, tiles: list[str], **overrides: Any) -> Any:
    return small_config(root, **{
        "ingest.source": "directory", "ingest.directory": str(archive),
        "ingest.parcel_map": str(archive / "parcels.gpkg"),
        "ingest.generator.tiles": [{"id": t} for t in tiles],
        "samples.split": {"train_tiles": tiles[:1], "val_tiles": [], "test_tiles": []},
        "predict.tile": tiles[0], "evaluate.tile": tiles[0],
        **overrides})


def test_run_harmonise_composites_counts_and_manifest(archive: Path, tmp_path: Path) -> None:
    cfg = _config(tmp_path, archive, ["33UWP", "33UXP"], **{"harmonise.gap_fill": "nearest"})
    out = run_harmonise(cfg, "2018-03-01")
    final = tmp_path / "food_security" / "harmonise" / KEY
    assert out["output"] == str(final) and out["agronomic_year"] == KEY
    wp = out["tiles"]["33UWP"]
    group = zarr.open_group(str(final / "33UWP.zarr"), mode="r")
    refl = np.asarray(zarr_array(group, "reflectance")[:])
    flags = np.asarray(zarr_array(group, "gap_filled")[:])
    counts = np.asarray(zarr_array(group, "valid_count")[:])
    september = _reference(archive, "33UWP", [dt.date(2017, 9, 3), dt.date(2017, 9, 13)])
    november = _reference(archive, "33UWP", [dt.date(2017, 11, 2)])
    # a month without data at a pixel takes the nearest month with data there
    sep_filled = np.where(np.isnan(september), november, september)
    nov_filled = np.where(np.isnan(november), september, november)
    np.testing.assert_allclose(refl[0], sep_filled, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(refl[2], nov_filled, rtol=1e-6, equal_nan=True)
    # October is as near to September as to November: the earlier wins
    np.testing.assert_allclose(refl[1], sep_filled, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(refl[11], nov_filled, rtol=1e-6, equal_nan=True)
    assert np.isfinite(september[:, 6, 6]).all() and np.isfinite(november[:, 6, 6]).all()
    assert refl[1, 0, 6, 6] == september[0, 6, 6] != november[0, 6, 6]
    assert np.isnan(refl[:, :, :4, :4]).all()  # clouded on every date: never filled
    assert counts[0, 6, 6] == 2 and counts[2, 6, 6] == 1 and counts[1].max() == 0
    assert wp == {"path": str(final / "33UWP.zarr"), "acquisitions": 3,
                  "observations": 3 * 256, "gap_filled_fraction": round(flags.mean(), 6),
                  "no_data_months": [1, 3, 4, 5, 6, 7, 8, 9, 10, 11]}
    assert out["tiles"]["33UXP"]["acquisitions"] == 1
    assert out["tiles"]["33UXP"]["no_data_months"] == list(range(1, 12))
    manifest = json.loads((final / "manifest.json").read_text())
    assert manifest["inputs"] == {"archive": str(archive), "tiles": ["33UWP", "33UXP"]}
    assert manifest["counts"]["33UWP"] == {k: v for k, v in wp.items() if k != "path"}
    assert manifest["gap_fill"] == "nearest" and manifest["agronomic_year"] == KEY
    assert manifest["masked_scl_classes"] == cfg.harmonise.masked_scl_classes
    attrs = dict(group.attrs)
    assert attrs["tile"] == "33UWP" and attrs["agronomic_year"] == KEY
    assert attrs["bands"] == list(S2_BANDS)
    assert attrs["units"] == "surface reflectance (0..1, BOA offset removed)"
    assert attrs["compression"] == harmonise.STORE_COMPRESSION
    assert attrs["crs"] == "EPSG:32633"
    ds = xr.open_zarr(final / "33UWP.zarr", consolidated=False)
    assert ds.reflectance.dims == ("month", "band", "y", "x")
    assert ds.valid_count.dims == ds.gap_filled.dims == ("month", "y", "x")
    assert (ds.reflectance.dtype, ds.valid_count.dtype, ds.gap_filled.dtype) == (
        np.float32, np.uint16, np.uint8)
    assert ds.band.values.tolist() == list(S2_BANDS)
    assert ds.month.values.tolist() == season_months(dt.date(2017, 9, 1))
    assert ds.x.values[:2].tolist() == [500_005.0, 500_015.0]
    assert ds.y.values[:2].tolist() == [5_599_995.0, 5_599_985.0]
    assert attrs["months"] == season_months(dt.date(2017, 9, 1))


def test_run_harmonise_one_tile_in_process_and_empty_month_limit(archive: Path,
                                                                  tmp_path: Path) -> None:
    cfg = _config(tmp_path, archive, ["33UWP"], **{"harmonise.gap_fill": "none"})
    out = run_harmonise(cfg, "2017-09-01")
    group = zarr.open_group(out["tiles"]["33UWP"]["path"], mode="r")
    refl = np.asarray(zarr_array(group, "reflectance")[:])
    assert np.isnan(refl[1]).all() and np.isfinite(refl[0, :, 6, 6]).all()
    flags = np.asarray(zarr_array(group, "gap_filled")[:])
    assert flags[1].all() and not flags[0, 6, 6]
    assert out["tiles"]["33UWP"]["gap_filled_fraction"] == round(flags.mean(), 6)
    cfg = _config(tmp_path / "b", archive, ["33UWP"], **{"harmonise.max_empty_months": 10})
    with pytest.raises(EmptyTileError, match=r"^tile 33UWP: no valid \(unmasked\) observation "
                                             r"in 10 of 12 months \(2017-10, 2017-12, "):
        run_harmonise(cfg, "2017-09-01")
    assert not (tmp_path / "b" / "food_security" / "harmonise" / KEY).exists()


def test_run_harmonise_names_missing_years_and_tiles(archive: Path, tmp_path: Path) -> None:
    cfg = _config(tmp_path, archive, ["33UWP", "33UXP"])
    with pytest.raises(NoDataError) as err:
        run_harmonise(cfg, "2016-05-01")
    assert str(err.value) == (
        f"agronomic year 2015-09_2016-08 has no Sentinel-2 L2A acquisition for tiles "
        f"['33UWP', '33UXP'] in {archive}; run the ingest/generate stage for that year first "
        "(eeflow crops generate --run-date 2015-09-01)")
    with pytest.raises(NoDataError) as err:
        run_harmonise(cfg, "2018-10-01")  # only 33UWP has a date (2018-09-04) in 2018/19
    assert str(err.value) == (
        f"agronomic year 2018-09_2019-08: tiles ['33UXP'] have no acquisition in {archive} "
        "(other tiles do); ingest them or remove them from ingest.generator.tiles")


def test_one_region_runs_in_process_with_every_reader_thread_and_says_so(
        archive: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One region on the synchronous scheduler: in this process, n_workers x threads readers."""
    cfg = _config(tmp_path, archive, ["33UWP"], **{
        "dask": {"cluster": "synchronous", "n_workers": 2, "threads_per_worker": 3}})
    with caplog.at_level(logging.INFO, logger=harmonise.__name__):
        run_harmonise(cfg, "2017-09-01")
    assert (f"harmonise {KEY}: 1 region, composited in-process with 6 reader thread(s) "
            "(no cluster started for one task)") in caplog.messages
    assert not [m for m in caplog.messages if "region jobs" in m]
