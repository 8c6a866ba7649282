"""Harmonise's steps checked against hand computations on small arrays (issue 19).

Each transform is recomputed here with explicit loops (noise removal + calibration, weighted
block means, a boxcar with edge replication, dB with a floor); a tile is processed from a small
in-memory product (arrays whose every value is known) on a hand-built affine geocoding, so the
value written for each map pixel can be predicted exactly: sigma0 = (DN^2 - N) / A^2, block mean,
``multilook`` boxcar, dB, NaN and valid 0 outside the image or where too few pixels were valid.
The end-to-end checks on a generated product are in test_harmonise_mutation_scene.py.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from affine import Affine
from shapely.geometry import box

from tasks.config.polar import HarmoniseConfig
from tasks.polar import harmonise as hm
from tasks.sentinel1.geocode import Geocoding, GeocodingError, PlaneMap
from tasks.sentinel1.safe import GeolocationGrid, open_safe
from tasks.storage import zarr_array

EW_GRDM = (Path(__file__).resolve().parents[2] / "data" / "s1_ew_grd"
           / "S1A_EW_GRDM_1SDH_20221130T014342_20221130T014446_046117_058549_BB15.SAFE")


# ------------------------------------------------------------------------- hand references
def _hand_sigma0(dn: np.ndarray, noise: np.ndarray, lut: np.ndarray, remove: bool) -> np.ndarray:
    out = np.empty(dn.shape)
    for i, j in np.ndindex(dn.shape):
        power = float(dn[i, j]) ** 2 - (float(noise[i, j]) if remove else 0.0)
        out[i, j] = power / float(lut[i, j]) ** 2
    return out


def _hand_block_average(values: np.ndarray, weights: np.ndarray,
                        f: int) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = values.shape[0] // f, values.shape[1] // f
    mean, share = np.zeros((rows, cols)), np.zeros((rows, cols))
    for i, j in np.ndindex(rows, cols):
        v = values[i * f:(i + 1) * f, j * f:(j + 1) * f]
        w = weights[i * f:(i + 1) * f, j * f:(j + 1) * f].astype(float)
        share[i, j] = w.sum() / f**2
        mean[i, j] = (v * w).sum() / w.sum() if w.sum() > 0 else 0.0
    return mean, share


def _hand_boxcar(values: np.ndarray, weights: np.ndarray,
                 size: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the valid values in the size x size window, the image edge repeated outwards."""
    half = size // 2
    v = np.pad(np.where(weights > 0, values, 0.0), half, mode="edge")
    w = np.pad(weights.astype(float), half, mode="edge")
    mean, share = np.zeros(values.shape), np.zeros(values.shape)
    for i, j in np.ndindex(values.shape):
        wv = w[i:i + size, j:j + size]
        share[i, j] = wv.mean()
        mean[i, j] = (v[i:i + size, j:j + size] * wv).sum() / wv.sum() if wv.sum() > 0 else 0.0
    return mean, share


def _hand_db(sigma0: float, floor_db: float) -> float:
    return 10.0 * math.log10(max(sigma0, 10.0 ** (floor_db / 10.0)))


# ------------------------------------------------------------------------- pure transforms
def test_noise_removal_and_calibration_by_hand() -> None:
    rng = np.random.default_rng(0)
    dn = rng.integers(0, 65536, (4, 5)).astype(np.uint16)
    dn[0, 0], dn[0, 1] = 65535, 3  # no uint16 overflow; 9 - noise < 0 stays negative
    noise = rng.uniform(10.0, 5000.0, (4, 5))
    lut = rng.uniform(300.0, 900.0, (4, 5))
    for remove in (True, False):
        got = hm.remove_noise_and_calibrate(dn, noise, lut, remove)
        assert got.dtype == np.float32 and got.shape == (4, 5)
        np.testing.assert_allclose(got, _hand_sigma0(dn, noise, lut, remove), rtol=2e-6)
    assert hm.remove_noise_and_calibrate(dn, noise, lut)[0, 1] < 0
    default = hm.remove_noise_and_calibrate(dn, noise, lut)
    np.testing.assert_array_equal(default, hm.remove_noise_and_calibrate(dn, noise, lut, True))


@pytest.mark.parametrize("factor", [2, 3])
def test_block_average_is_the_weighted_block_mean(factor: int) -> None:
    rng = np.random.default_rng(factor)
    values = rng.uniform(0.0, 2.0, (7, 8)).astype(np.float32)
    weights = rng.uniform(size=(7, 8)) > 0.3
    weights[:factor, :factor] = False  # a block without a valid pixel
    values[0, 0] = np.nan  # an invalid pixel's value never reaches the mean
    mean, share = hm.block_average(values, weights, factor)
    want_mean, want_share = _hand_block_average(values, weights, factor)
    assert mean.shape == share.shape == (7 // factor, 8 // factor)  # the remainder is dropped
    assert mean.dtype == share.dtype == np.float32
    np.testing.assert_allclose(mean, want_mean, rtol=1e-6)
    np.testing.assert_allclose(share, want_share, rtol=1e-6)
    assert mean[0, 0] == 0.0 and share[0, 0] == 0.0


def test_block_average_factor_one_passes_values_through() -> None:
    values = np.array([[1.5, -2.0]], dtype=np.float32)
    mean, share = hm.block_average(values, np.array([[True, False]]), 1)
    np.testing.assert_array_equal(mean, values)
    assert share.dtype == np.float32
    np.testing.assert_array_equal(share, [[1.0, 0.0]])


@pytest.mark.parametrize("size", [3, 5])
def test_boxcar_is_the_mean_of_valid_neighbours_with_edges_repeated(size: int) -> None:
    rng = np.random.default_rng(size)
    values = rng.uniform(0.0, 1.0, (7, 9)).astype(np.float32)
    weights = (rng.uniform(size=(7, 9)) > 0.25).astype(np.float32)
    values[weights == 0] = np.nan  # invalid pixels never leak into the mean
    weights[4:, 6:] = 0.0  # a corner with no valid pixel at all for size 3
    mean, share = hm.boxcar(values, weights, size)
    want_mean, want_share = _hand_boxcar(values, weights, size)
    assert mean.dtype == np.float32 and np.isfinite(mean).all()
    np.testing.assert_allclose(mean, want_mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(share, want_share, rtol=1e-5, atol=1e-7)
    if size == 3:
        assert mean[6, 8] == 0.0 and share[6, 8] == 0.0


def test_boxcar_of_size_one_is_the_input() -> None:
    values = np.array([[1.0, 2.0]])
    mean, share = hm.boxcar(values, np.array([[1, 0]]), 1)
    assert mean.dtype == share.dtype == np.float32
    np.testing.assert_array_equal(mean, [[1.0, 2.0]])
    np.testing.assert_array_equal(share, [[1.0, 0.0]])


def test_boxcar_weights_are_shares_not_just_masks() -> None:
    """Weights from block averaging are fractions: a pixel counts with its share."""
    values = np.array([[1.0, 4.0, 7.0]], dtype=np.float32)
    weights = np.array([[0.25, 1.0, 0.5]], dtype=np.float32)
    mean, share = hm.boxcar(values, weights, 3)
    # window of the middle pixel, rows repeated: weights 0.25, 1, 0.5 three times
    assert mean[0, 1] == pytest.approx((0.25 * 1 + 4.0 + 0.5 * 7.0) / 1.75, rel=1e-6)
    assert share[0, 1] == pytest.approx(1.75 / 3, rel=1e-6)
    # first pixel: columns 0, 0, 1 (edge repeated)
    assert mean[0, 0] == pytest.approx((0.25 + 0.25 + 4.0) / 1.5, rel=1e-6)


def test_to_db_with_floor() -> None:
    sigma0 = np.array([1.0, 0.1, 2e-3, 1e-5, 0.0, -3.0, 10.0])
    got = hm.to_db(sigma0, -30.0)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, [_hand_db(v, -30.0) for v in sigma0], atol=1e-5)
    np.testing.assert_allclose(got[[3, 4, 5]], -30.0)
    assert hm.to_db(np.array([1e-5]), -45.5)[0] == pytest.approx(-45.5, abs=1e-4)
    assert hm.to_db(np.array([1e-5]), -40.0)[0] == pytest.approx(-40.0, abs=1e-4)
    assert hm.to_db(np.array([1e-3]), -40.0)[0] == pytest.approx(-30.0, abs=1e-4)


# ------------------------------------------------------------------------- noise warnings
@dataclass
class _NoiseFormat:
    format: str


@dataclass
class _ZeroNoiseProduct:
    name: str = "S1A_EW_GRDM_X"
    zero: dict[str, str] = field(default_factory=dict)
    formats: dict[str, str] = field(default_factory=dict)
    asked: list[tuple[str, ...]] = field(default_factory=list)

    def zero_noise_luts(self, polarisations: tuple[str, ...]) -> dict[str, str]:
        self.asked.append(tuple(polarisations))
        return dict(self.zero)

    def noise(self, pol: str) -> _NoiseFormat:
        return _NoiseFormat(self.formats[pol])


def test_noise_lut_warning_names_polarisations_files_and_formats(
        caplog: pytest.LogCaptureFixture) -> None:
    product = _ZeroNoiseProduct(
        zero={"HV": "annotation/calibration/noise-hv.xml",
              "HH": "annotation/calibration/noise-hh.xml"},
        formats={"HH": "IPF < 2.9", "HV": "IPF >= 2.9"})
    with caplog.at_level(logging.WARNING, logger="tasks.polar.harmonise"):
        messages = hm.noise_lut_warnings(product, True)  # type: ignore[arg-type]
    want = (
        "S1A_EW_GRDM_X: thermal-noise LUT of HH, HV is all zeros "
        "(annotation/calibration/noise-hh.xml, annotation/calibration/noise-hv.xml; "
        "IPF < 2.9 / IPF >= 2.9 format), so noise removal subtracts nothing and sigma0 keeps "
        "the noise floor (biased high over dark water / level ice, above all in HV). Use a "
        "reprocessed product with a noise LUT, or read its weak-signal areas with care")
    assert messages == [want] and caplog.messages == [want]
    assert product.asked == [("HH", "HV")]
    one = _ZeroNoiseProduct(zero={"HV": "n-hv.xml"}, formats={"HV": "IPF < 2.9"})
    assert hm.noise_lut_warnings(one, True) == [  # type: ignore[arg-type]
        "S1A_EW_GRDM_X: thermal-noise LUT of HV is all zeros (n-hv.xml; IPF < 2.9 format), so "
        "noise removal subtracts nothing and sigma0 keeps the noise floor (biased high over "
        "dark water / level ice, above all in HV). Use a reprocessed product with a noise LUT, "
        "or read its weak-signal areas with care"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tasks.polar.harmonise"):
        assert hm.noise_lut_warnings(one, False) == []  # type: ignore[arg-type]
        assert hm.noise_lut_warnings(_ZeroNoiseProduct(), True) == []  # type: ignore[arg-type]
    assert caplog.messages == []


# ------------------------------------------------------------------------------ output grid
@dataclass
class _GridProduct:
    """What output_grid reads of a product: spacing, shape, path, name, tie points."""

    grid: GeolocationGrid
    shape: tuple[int, int] = (10_000, 10_500)
    pixel_spacing: tuple[float, float] = (40.0, 40.0)
    path: Path = Path("/data/S1A_TEST.SAFE")
    name: str = "S1A_TEST"

    def geolocation_grid(self) -> GeolocationGrid:
        return self.grid


@pytest.fixture(scope="module")
def small_real_grid() -> GeolocationGrid:
    """Every third tie-point line and every other column of the real EW GRDM grid."""
    g = open_safe(EW_GRDM).geolocation_grid("HH")
    keep = np.isin(g.line, np.unique(g.line)[::3]) & np.isin(g.pixel, np.unique(g.pixel)[::2])
    return GeolocationGrid(*(np.asarray(getattr(g, f))[keep] for f in (
        "line", "pixel", "latitude", "longitude", "height", "incidence_angle")))


@pytest.mark.parametrize(("spacing_m", "factor"), [(40.0, 1), (20.0, 1), (80.0, 2), (100.0, 2),
                                                   (140.0, 4)])
def test_output_grid_factor_shape_and_transform(small_real_grid: GeolocationGrid,
                                                spacing_m: float, factor: int) -> None:
    from tasks.sentinel1.geocode import fit_geocoding, map_grid

    product = _GridProduct(small_real_grid, shape=(10_001, 10_503), pixel_spacing=(40.0, 25.0))
    cfg = HarmoniseConfig(pixel_spacing_m=spacing_m, max_geocoding_residual_m=1000.0)
    grid = hm.output_grid(product, cfg)  # type: ignore[arg-type]
    assert grid["factor"] == factor
    assert grid["block_shape"] == (10_001 // factor, 10_503 // factor)
    assert grid["pixel_spacing_m"] == 40.0 * factor  # the coarser of the two spacings
    geo = fit_geocoding(small_real_grid, cfg.target_crs, cfg.geocoding, cfg.geocode_to_sea_level)
    transform, shape = map_grid(geo.tie_x, geo.tie_y, 40.0 * factor)
    assert grid["transform"] == transform and grid["shape"] == shape
    assert grid["geocoding"].residuals == geo.residuals
    assert grid["affine_rms_m"] == geo.residuals["affine_rms_m"]


def test_output_grid_uses_the_configured_geocoding(small_real_grid: GeolocationGrid) -> None:
    cfg = HarmoniseConfig(geocoding="affine", geocode_to_sea_level=False,
                          target_crs="EPSG:3413", max_geocoding_residual_m=5000.0)
    grid = hm.output_grid(_GridProduct(small_real_grid), cfg)  # type: ignore[arg-type]
    assert grid["geocoding"].method == "affine"
    assert grid["geocoding"].residuals["sea_level_moved"] == 0
    assert grid["geocoding"].crs == "EPSG:3413"
    utm = HarmoniseConfig(target_crs="EPSG:32633", max_geocoding_residual_m=5000.0)
    assert hm.output_grid(_GridProduct(small_real_grid), utm)[  # type: ignore[arg-type]
        "geocoding"].crs == "EPSG:32633"


def test_output_grid_refusals(small_real_grid: GeolocationGrid) -> None:
    tiny = _GridProduct(small_real_grid, shape=(20, 40))
    cfg = HarmoniseConfig(pixel_spacing_m=400.0, multilook=3)  # 2 x 4 blocks < 3
    with pytest.raises(ValueError) as info:
        hm.output_grid(tiny, cfg)  # type: ignore[arg-type]
    assert str(info.value) == ("/data/S1A_TEST.SAFE: scene of 20x40 pixels is too small for "
                               "pixel_spacing_m=400.0 and multilook=3")
    ok = _GridProduct(small_real_grid, shape=(120, 120))
    assert hm.output_grid(ok, HarmoniseConfig(pixel_spacing_m=400.0, multilook=3,  # type: ignore[arg-type]
                                              max_geocoding_residual_m=1e4))["block_shape"] == (
        12, 12)
    edge = _GridProduct(small_real_grid, shape=(30, 300))
    assert hm.output_grid(edge, HarmoniseConfig(pixel_spacing_m=400.0, multilook=3,  # type: ignore[arg-type]
                                                max_geocoding_residual_m=1e4))[
        "block_shape"] == (3, 30)  # exactly multilook blocks: accepted
    five = GeolocationGrid(*(np.asarray(getattr(small_real_grid, f))[:5] for f in (
        "line", "pixel", "latitude", "longitude", "height", "incidence_angle")))
    with pytest.raises(GeocodingError) as geo_info:
        hm.output_grid(_GridProduct(five), HarmoniseConfig())  # type: ignore[arg-type]
    assert str(geo_info.value) == (
        "S1A_TEST: geolocation grid has 5 distinct tie points; at least 6 are needed")
    with pytest.raises(GeocodingError, match=r"^S1A_TEST: geocoding residual too large: "):
        hm.output_grid(_GridProduct(small_real_grid),  # type: ignore[arg-type]
                       HarmoniseConfig(max_geocoding_residual_m=0.001))


# ------------------------------------------------------------------------------ land mask
def test_rasterise_land_burns_pixel_centres_inside(tmp_path: Path) -> None:
    transform = Affine(10.0, 0.0, 1000.0, 0.0, -10.0, 2000.0)
    land = [box(1020.0, 1950.0, 1050.0, 1980.0)]  # cols 2..4, rows 2..4 of the grid
    got = hm.rasterise_land(land, transform, slice(1, 6), slice(2, 8))
    want = np.zeros((5, 6), np.uint8)
    want[1:4, 0:3] = 1
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(hm.rasterise_land([], transform, slice(1, 6), slice(2, 8)),
                                  np.zeros((5, 6), np.uint8))
    assert hm.rasterise_land([], transform, slice(3, 4), slice(0, 2)).dtype == np.uint8


def test_land_polygons_are_read_and_reprojected(tmp_path: Path) -> None:
    import geopandas as gpd

    path = tmp_path / "land.geojson"
    gpd.GeoDataFrame(geometry=[box(10.0, 60.0, 11.0, 61.0), box(0.0, 0.0, 0.0, 0.0).buffer(0)],
                     crs="EPSG:4326").to_file(path)
    geoms = hm._read_land_geometries(path, "EPSG:32633")
    assert len(geoms) == 1  # the empty geometry is dropped
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32633", always_xy=True).transform(
        [10.0, 11.0, 11.0, 10.0], [60.0, 60.0, 61.0, 61.0])
    np.testing.assert_allclose(geoms[0].bounds, [min(x), min(y), max(x), max(y)], atol=1e-3)
    no_crs = tmp_path / "no_crs.shp"  # a shapefile without its .prj has no CRS
    gpd.GeoDataFrame(geometry=[box(0.0, 0.0, 1.0, 1.0)]).to_file(no_crs)
    assert gpd.read_file(no_crs).crs is None
    with pytest.raises(ValueError) as info:
        hm._read_land_geometries(no_crs, "EPSG:3413")
    assert str(info.value) == (
        f"land mask {no_crs}: has no CRS; write it with a CRS (e.g. a GeoJSON 'crs' member or "
        "EPSG:4326 coordinates)")
    bad = tmp_path / "bad.gpkg"
    bad.write_text("not a vector file")
    with pytest.raises(ValueError, match=rf"^land mask {bad}: cannot be read as a vector file: "):
        hm._read_land_geometries(bad, "EPSG:3413")


# ------------------------------------------------------------------------------ one tile
@dataclass
class _ArrayProduct:
    """A product held in memory: DN, noise and LUT arrays per polarisation, linear incidence."""

    dn: dict[str, np.ndarray]
    noise: dict[str, np.ndarray]
    lut: dict[str, np.ndarray]
    windows: list[tuple[str, str, tuple[slice, slice]]] = field(default_factory=list)

    def _window(self, what: str, pol: str, window: tuple[slice, slice],
                arrays: dict[str, np.ndarray]) -> np.ndarray:
        self.windows.append((what, pol, window))
        return arrays[pol][window]

    def read_dn(self, pol: str, window: tuple[slice, slice]) -> np.ndarray:
        return self._window("dn", pol, window, self.dn)

    def noise_lut(self, pol: str, window: tuple[slice, slice]) -> np.ndarray:
        return self._window("noise", pol, window, self.noise)

    def calibration_lut(self, pol: str, window: tuple[slice, slice]) -> np.ndarray:
        return self._window("lut", pol, window, self.lut)

    def geolocation_grid(self) -> GeolocationGrid:
        """Incidence 20 deg at image pixel (0, 0), +0.05 deg per pixel, +0.01 deg per line."""
        line = np.repeat([0.0, 500.0], 2)
        pixel = np.tile([0.0, 400.0], 2)
        zeros = np.zeros(4)
        return GeolocationGrid(line, pixel, zeros, zeros, zeros, 20.0 + 0.05 * pixel + 0.01 * line)


def _array_product(lines: int, samples: int, seed: int = 0) -> _ArrayProduct:
    rng = np.random.default_rng(seed)
    dn, noise, lut = {}, {}, {}
    for k, pol in enumerate(hm.POLARISATIONS):
        d = rng.integers(20, 400, (lines, samples)).astype(np.uint16)
        d[rng.uniform(size=d.shape) < 0.05] = 1  # DN 1 is data (only 0 is missing)
        d[rng.uniform(size=d.shape) < 0.15] = 0  # missing pixels (DN 0)
        d[: 3 + k, : 4 + 2 * k] = 0  # a corner without data, larger in HV
        dn[pol] = d
        noise[pol] = rng.uniform(100.0, 900.0, (lines, samples)).astype(np.float32)
        lut[pol] = rng.uniform(200.0, 260.0 + 300.0 * k, (lines, samples)).astype(np.float32)
    return _ArrayProduct(dn, noise, lut)


def _hand_radar(product: _ArrayProduct, pol: str, factor: int, multilook: int,
                remove: bool) -> tuple[np.ndarray, np.ndarray]:
    dn = product.dn[pol]
    sigma0 = _hand_sigma0(dn, product.noise[pol], product.lut[pol], remove)
    mean, share = _hand_block_average(sigma0, dn > 0, factor)
    return _hand_boxcar(mean, share, multilook)


@pytest.mark.parametrize(("factor", "multilook", "remove"), [(1, 3, True), (2, 5, False)])
def test_radar_window_is_the_hand_chain_on_the_window(factor: int, multilook: int,
                                                      remove: bool) -> None:
    product = _array_product(36, 44, seed=factor)
    cfg = HarmoniseConfig(multilook=multilook, noise_removal=remove)
    blocks = (0, 36 // factor, 0, 44 // factor)
    bands, share = hm._radar_window(product, cfg, factor, blocks)  # type: ignore[arg-type]
    assert len(bands) == 2
    shares = []
    for band, pol in zip(bands, hm.POLARISATIONS, strict=True):
        want, want_share = _hand_radar(product, pol, factor, multilook, remove)
        np.testing.assert_allclose(band, want, rtol=2e-5, atol=1e-6)
        shares.append(want_share)
    np.testing.assert_allclose(share, np.minimum(*shares), rtol=1e-5, atol=1e-7)
    # an inner window reads exactly its blocks' pixels
    product.windows.clear()
    hm._radar_window(product, cfg, factor, (3, 9, 4, 12))  # type: ignore[arg-type]
    rows, cols = slice(3 * factor, 9 * factor), slice(4 * factor, 12 * factor)
    assert product.windows == [(what, pol, (rows, cols)) for pol in hm.POLARISATIONS
                               for what in ("dn", "noise", "lut")]


def _affine_geocoding(x0: float, y0: float, spacing: float) -> Geocoding:
    """image (line, pixel) <-> x = x0 + spacing * pixel, y = y0 - spacing * line (exact)."""
    forward = PlaneMap(np.zeros(2), np.ones(2), np.empty((0, 2)), np.empty((0, 2)),
                       np.array([[x0, y0], [0.0, -spacing], [spacing, 0.0]]))
    backward = PlaneMap(np.zeros(2), np.ones(2), np.empty((0, 2)), np.empty((0, 2)),
                        np.array([[y0 / spacing, -x0 / spacing], [0.0, 1.0 / spacing],
                                  [-1.0 / spacing, 0.0]]))
    empty = np.empty(0)
    return Geocoding("EPSG:3413", "affine", forward, backward, empty, empty, empty, empty,
                     {"method": "affine"})


def _tile_setup(tmp_path: Path, factor: int, lines: int, samples: int,
                margin: int) -> tuple[dict[str, Any], str, tuple[int, int]]:
    """A map grid whose pixel (r, c) is block (r - margin, c - margin) of the image."""
    import zarr

    spacing = 40.0 * factor
    x0, y0 = 100_000.0, 900_000.0
    # block b's centre is image pixel b * factor + (factor - 1) / 2
    transform = Affine(spacing, 0.0, x0 + 40.0 * (factor - 1) / 2 - spacing * (margin + 0.5),
                       0.0, -spacing, y0 - 40.0 * (factor - 1) / 2 + spacing * (margin + 0.5))
    block_shape = (lines // factor, samples // factor)
    shape = (block_shape[0] + 2 * margin, block_shape[1] + 2 * margin)
    grid = {"factor": factor, "block_shape": block_shape, "shape": shape,
            "transform": transform, "geocoding": _affine_geocoding(x0, y0, 40.0),
            "affine_rms_m": 0.0, "pixel_spacing_m": spacing}
    store = str(tmp_path / "tile.zarr")
    group = zarr.open_group(store, mode="w", zarr_format=3)
    group.create_array(hm.BACKSCATTER_VAR, shape=(3, *shape), dtype="float32", fill_value=-99.0)
    group.create_array(hm.LAND_MASK_VAR, shape=shape, dtype="uint8", fill_value=7)
    group.create_array(hm.VALID_MASK_VAR, shape=shape, dtype="uint8", fill_value=7)
    return grid, store, shape


@pytest.mark.parametrize(("factor", "multilook", "tile"), [
    (1, 3, (4, 22, 6, 30)),  # an inner tile: the halo must cover the boxcar
    (1, 3, (0, 9, 0, 12)),  # a corner tile with map pixels outside the image
    (2, 3, (0, 24, 0, 28)),  # the whole grid, 2 x 2 blocks
    (1, 3, (20, 42, 24, 52)),  # a tile whose radar window starts inside the image
    (2, 3, (12, 24, 14, 28)),  # the same with 2 x 2 blocks
    (1, 15, (22, 42, 26, 52)),  # the widest boxcar allowed: 7 pixels each side
])
def test_process_tile_writes_the_hand_computed_pixels(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, factor: int, multilook: int,
        tile: tuple[int, int, int, int]) -> None:
    import zarr

    lines, samples, margin = 40, 48, 2
    product = _array_product(lines, samples, seed=10 + factor)
    monkeypatch.setattr(hm, "_open_for_run", lambda path, token: product)
    grid, store, shape = _tile_setup(tmp_path, factor, lines, samples, margin)
    cfg = HarmoniseConfig(multilook=multilook, chunk=64, db_floor=-25.0)
    land = [box(grid["transform"].c + grid["pixel_spacing_m"] * 5,
                grid["transform"].f - grid["pixel_spacing_m"] * 9,
                grid["transform"].c + grid["pixel_spacing_m"] * 8,
                grid["transform"].f - grid["pixel_spacing_m"] * 6)]  # cols 5..7, rows 6..8
    stats = hm._process_tile("unused.SAFE", "token", store, cfg.model_dump(mode="json"),
                             grid, tile, land)  # type: ignore[arg-type]
    r0, r1, c0, c1 = tile
    group = zarr.open_group(store, mode="r")
    got = np.asarray(zarr_array(group, hm.BACKSCATTER_VAR)[:])
    got_valid = np.asarray(zarr_array(group, hm.VALID_MASK_VAR)[:])
    got_land = np.asarray(zarr_array(group, hm.LAND_MASK_VAR)[:])
    # outside the tile nothing was written
    outside = np.ones(shape, bool)
    outside[r0:r1, c0:c1] = False
    assert (got[:, outside] == -99.0).all() and (got_valid[outside] == 7).all()
    hand = {pol: _hand_radar(product, pol, factor, multilook, True) for pol in hm.POLARISATIONS}
    share = np.minimum(hand["HH"][1], hand["HV"][1])
    n_lines, n_samples = grid["block_shape"]
    want_valid = np.zeros((r1 - r0, c1 - c0), np.uint8)
    want_land = np.zeros((r1 - r0, c1 - c0), np.uint8)
    sums = {"HH": 0.0, "HV": 0.0}
    for i, j in np.ndindex(r1 - r0, c1 - c0):
        r, c = r0 + i, c0 + j
        want_land[i, j] = int(6 <= r <= 8 and 5 <= c <= 7)
        b_line, b_pixel = r - margin, c - margin
        if not (0 <= b_line < n_lines and 0 <= b_pixel < n_samples):
            assert np.isnan(got[:, r, c]).all(), (r, c)
            continue
        valid = share[b_line, b_pixel] >= 0.5
        want_valid[i, j] = valid
        for k, pol in enumerate(hm.POLARISATIONS):
            if valid:
                want = _hand_db(hand[pol][0][b_line, b_pixel], -25.0)
                assert got[k, r, c] == pytest.approx(want, abs=2e-4), (pol, r, c)
                if not want_land[i, j]:
                    sums[pol] += want
            else:
                assert np.isnan(got[k, r, c]), (pol, r, c)
        image_pixel = b_pixel * factor + (factor - 1) / 2
        image_line = b_line * factor + (factor - 1) / 2
        assert got[2, r, c] == pytest.approx(20.0 + 0.05 * image_pixel + 0.01 * image_line,
                                             abs=1e-4)
    np.testing.assert_array_equal(got_valid[r0:r1, c0:c1], want_valid)
    np.testing.assert_array_equal(got_land[r0:r1, c0:c1], want_land)
    assert 0 < want_valid.sum() < want_valid.size
    assert stats["valid_pixels"] == want_valid.sum()
    assert stats["land_pixels"] == want_land.sum()
    sea = (want_valid == 1) & (want_land == 0)
    assert stats["sea_pixels"] == sea.sum()
    assert stats["hh_db_sum"] == pytest.approx(sums["HH"], abs=1e-2)
    assert stats["hv_db_sum"] == pytest.approx(sums["HV"], abs=1e-2)
    assert 0 <= stats["warp_s"] <= stats["tile_s"]


def test_a_tile_outside_the_image_reads_nothing(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import zarr

    def no_product(path: str, token: str) -> None:
        raise AssertionError("a tile outside the image must not open the product")

    monkeypatch.setattr(hm, "_open_for_run", no_product)
    grid, store, shape = _tile_setup(tmp_path, 1, 40, 48, 6)
    stats = hm._process_tile("x", "t", store, HarmoniseConfig(chunk=64).model_dump(mode="json"),
                             grid, (0, 5, 0, 60), [])  # type: ignore[arg-type]
    group = zarr.open_group(store, mode="r")
    assert np.isnan(np.asarray(zarr_array(group, hm.BACKSCATTER_VAR)[:, 0:5, 0:60])).all()
    assert not np.asarray(zarr_array(group, hm.VALID_MASK_VAR)[0:5, 0:60]).any()
    assert not np.asarray(zarr_array(group, hm.LAND_MASK_VAR)[0:5, 0:60]).any()
    assert stats["valid_pixels"] == stats["sea_pixels"] == stats["land_pixels"] == 0
    assert stats["hh_db_sum"] == stats["hv_db_sum"] == 0.0


def test_open_for_run_caches_per_token() -> None:
    hm._open_for_run.cache_clear()
    a = hm._open_for_run(str(EW_GRDM), "run-1")
    assert hm._open_for_run(str(EW_GRDM), "run-1") is a
    assert hm._open_for_run(str(EW_GRDM), "run-2") is not a
    assert a.name == EW_GRDM.name.removesuffix(".SAFE")


def _bilinear_clamped(a: np.ndarray, line: float, pixel: float) -> float:
    """Bilinear value of ``a`` at (line, pixel), positions beyond the edge taking the edge."""
    line = min(max(line, 0.0), a.shape[0] - 1.0)
    pixel = min(max(pixel, 0.0), a.shape[1] - 1.0)
    l0, p0 = min(int(line), a.shape[0] - 2), min(int(pixel), a.shape[1] - 2)
    tl, tp = line - l0, pixel - p0
    return float((1 - tl) * (1 - tp) * a[l0, p0] + (1 - tl) * tp * a[l0, p0 + 1]
                 + tl * (1 - tp) * a[l0 + 1, p0] + tl * tp * a[l0 + 1, p0 + 1])


def test_process_tile_between_pixels_interpolates_bilinearly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Map pixels half-way between image pixels (a 32 m grid: every position is exact).

    Map pixel (r, c) sits at image (r - 1.5, c - 1.5): sigma0 and the valid share are the mean
    of four pixels, and the tile's outermost map pixels sit exactly half a pixel outside the
    image, which still counts as inside (the edge value). Positions come from the geocoding
    (exact at its lattice points, a rounding off in between); the lattice points on the tile's
    edges are exactly -0.5 and n - 0.5.
    """
    import zarr

    from tasks.sentinel1.geocode import image_coordinates

    lines, samples, margin, spacing = 24, 28, 2, 32.0
    product = _array_product(lines, samples, seed=7)
    monkeypatch.setattr(hm, "_open_for_run", lambda path, token: product)
    x0, y0 = 3200 * spacing, 28160 * spacing
    transform = Affine(spacing, 0.0, x0 - spacing * margin, 0.0, -spacing, y0 + spacing * margin)
    shape = (lines + 2 * margin, samples + 2 * margin)
    geocoding = _affine_geocoding(x0, y0, spacing)
    grid = {"factor": 1, "block_shape": (lines, samples), "shape": shape, "transform": transform,
            "geocoding": geocoding, "affine_rms_m": 0.0,
            "pixel_spacing_m": spacing}
    store = str(tmp_path / "half.zarr")
    group = zarr.open_group(store, mode="w", zarr_format=3)
    group.create_array(hm.BACKSCATTER_VAR, shape=(3, *shape), dtype="float32", fill_value=-99.0)
    group.create_array(hm.LAND_MASK_VAR, shape=shape, dtype="uint8", fill_value=7)
    group.create_array(hm.VALID_MASK_VAR, shape=shape, dtype="uint8", fill_value=7)
    cfg = HarmoniseConfig(multilook=3, chunk=64, db_floor=-25.0)
    tile = (margin - 1, lines + margin, margin - 1, samples + margin)
    hm._process_tile("unused.SAFE", "token", store, cfg.model_dump(mode="json"),
                     grid, tile, [])  # type: ignore[arg-type]
    got = np.asarray(zarr_array(group, hm.BACKSCATTER_VAR)[:])
    got_valid = np.asarray(zarr_array(group, hm.VALID_MASK_VAR)[:])
    hand = {pol: _hand_radar(product, pol, 1, 3, True) for pol in hm.POLARISATIONS}
    both_shares = np.minimum(hand["HH"][1], hand["HV"][1])
    assert (got[:, [0, -2, -1], :] == -99.0).all() and (got[:, :, [0, -2, -1]] == -99.0).all()
    lines_at, pixels_at = image_coordinates(geocoding, transform, tile[:2], tile[2:])
    np.testing.assert_allclose(lines_at[:, 0], np.arange(lines + 1) - 0.5, atol=1e-9)
    np.testing.assert_allclose(pixels_at[0], np.arange(samples + 1) - 0.5, atol=1e-9)
    edges = {float(lines_at[0, 0]), float(lines_at[-1, 0]), float(pixels_at[0, 0]),
             float(pixels_at[0, -1])}
    assert edges == {-0.5, lines - 0.5, samples - 0.5}
    for i, j in np.ndindex(lines_at.shape):
        line, pixel = float(lines_at[i, j]), float(pixels_at[i, j])
        r, c = i + tile[0], j + tile[2]
        if not (-0.5 <= line <= lines - 0.5 and -0.5 <= pixel <= samples - 0.5):
            assert np.isnan(got[:, r, c]).all() and got_valid[r, c] == 0, (r, c)
            continue
        share = _bilinear_clamped(both_shares, line, pixel)  # the smaller share, interpolated
        valid = got_valid[r, c] == 1
        if abs(share - 0.5) > 1e-6:  # a share of 0.5 may round either way in float32
            assert valid == (share >= 0.5), (r, c, share)
        for k, pol in enumerate(hm.POLARISATIONS):
            if valid:
                want = _hand_db(_bilinear_clamped(hand[pol][0], line, pixel), -25.0)
                assert got[k, r, c] == pytest.approx(want, abs=2e-4), (pol, r, c)
            else:
                assert np.isnan(got[k, r, c]), (pol, r, c)
        clamped_line = min(max(line, 0.0), lines - 1.0)
        clamped_pixel = min(max(pixel, 0.0), samples - 1.0)
        assert got[2, r, c] == pytest.approx(20.0 + 0.05 * clamped_pixel + 0.01 * clamped_line,
                                             abs=1e-4)
    inner = got_valid[tile[0]:tile[1], tile[2]:tile[3]]
    assert 0 < inner.sum() < inner.size


def test_land_per_tile_takes_the_polygons_within_one_pixel_of_each_tile() -> None:
    """Tile rows / cols 10..19 of a 10 m grid: polygons up to one pixel outside are kept."""
    transform = Affine(10.0, 0.0, 0.0, 0.0, -10.0, 0.0)

    def at(col0: float, col1: float, row0: float, row1: float) -> Any:
        return box(col0 * 10.0, -row1 * 10.0, col1 * 10.0, -row0 * 10.0)

    centre = (14.0, 15.0)
    polygons = [
        at(9.2, 9.5, *centre), at(8.5, 8.8, *centre),  # left: within one pixel / beyond
        at(20.5, 20.8, *centre), at(21.2, 21.5, *centre),  # right
        at(*centre, 9.2, 9.5), at(*centre, 8.5, 8.8),  # top
        at(*centre, 20.5, 20.8), at(*centre, 21.2, 21.5),  # bottom
        at(12.0, 13.0, 12.0, 13.0),  # inside
    ]
    tiles = [(10, 20, 10, 20), (0, 5, 0, 5), (10, 20, 22, 30)]
    subsets = hm.land_per_tile(polygons, transform, tiles)
    assert subsets[0] == [polygons[i] for i in (0, 2, 4, 6, 8)]  # input order
    assert subsets[1] == []
    assert subsets[2] == [polygons[3]]  # 21.2..21.5 is within one pixel of col 22
    for tile, subset in zip(tiles, subsets, strict=True):
        rows, cols = slice(tile[0], tile[1]), slice(tile[2], tile[3])
        np.testing.assert_array_equal(hm.rasterise_land(subset, transform, rows, cols),
                                      hm.rasterise_land(polygons, transform, rows, cols))
    assert hm.land_per_tile([], transform, tiles) == [[], [], []]
