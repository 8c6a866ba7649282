"""Geocoding checked value by value against independent computations (issue 19).

The thin-plate spline is evaluated here with its textbook formula, leave-one-out errors by
refitting without each point, tie points projected with pyproj directly, the sea-level shift
computed by hand on a straight tie-point line, grids and lattices on small hand-made inputs. The
real EW GRDM annotation (tests/data/s1_ew_grd) supplies realistic tie points.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from pyproj import Transformer

from tasks.sentinel1 import geocode as gc
from tasks.sentinel1.safe import GeolocationGrid, open_safe

EW_GRDM = (
    Path(__file__).resolve().parents[2] / "data" / "s1_ew_grd"
    / "S1A_EW_GRDM_1SDH_20221130T014342_20221130T014446_046117_058549_BB15.SAFE"
)


@pytest.fixture(scope="module")
def real_grid() -> GeolocationGrid:
    return open_safe(EW_GRDM).geolocation_grid("HH")


@pytest.fixture(scope="module")
def small_grid(real_grid: GeolocationGrid) -> GeolocationGrid:
    """Every third tie-point line and every other column of the real grid (~70 points)."""
    lines = np.unique(real_grid.line)[::3]
    pixels = np.unique(real_grid.pixel)[::2]
    keep = np.isin(real_grid.line, lines) & np.isin(real_grid.pixel, pixels)
    return GeolocationGrid(*(np.asarray(getattr(real_grid, f))[keep] for f in (
        "line", "pixel", "latitude", "longitude", "height", "incidence_angle")))


def _hand_tps(centres: np.ndarray, weights: np.ndarray, affine: np.ndarray,
              p: np.ndarray) -> np.ndarray:
    """sum_k w_k |p - c_k|^2 log |p - c_k| + a0 + a1 p0 + a2 p1, one point at a time."""
    out = []
    for point in p:
        value = affine[0] + point[0] * affine[1] + point[1] * affine[2]
        for centre, weight in zip(centres, weights, strict=True):
            r = math.dist(point, centre)
            value = value + (weight * r * r * math.log(r) if r > 0 else 0.0)
        out.append(value)
    return np.array(out)


def test_tps_kernel_is_r_squared_log_r() -> None:
    r2 = np.array([0.0, 1.0, 4.0, math.e**2, 0.25])
    want = [0.0, 0.0, 4.0 * math.log(2.0), math.e**2, 0.25 * math.log(0.5)]
    np.testing.assert_allclose(gc._tps_kernel(r2), want, rtol=1e-14, atol=1e-300)


def test_plane_map_evaluates_the_spline_formula_in_blocks() -> None:
    """> 4096 points (two kernel blocks), broadcast (n, 1) x (1, m) inputs, normalised first."""
    rng = np.random.default_rng(1)
    centres = rng.uniform(-0.5, 0.5, (7, 2))
    weights = rng.normal(size=(7, 2))
    affine = rng.normal(size=(3, 2))
    offset, scale = np.array([100.0, -20.0]), np.array([50.0, 8.0])
    plane = gc.PlaneMap(offset, scale, centres, weights, affine)
    a = np.linspace(60.0, 140.0, 71)[:, None]
    b = np.linspace(-24.0, -16.0, 61)[None, :]
    x, y = plane(a, b)
    assert x.shape == y.shape == (71, 61)
    aa, bb = np.broadcast_arrays(a, b)
    norm = np.column_stack([(aa.ravel() - 100.0) / 50.0, (bb.ravel() + 20.0) / 8.0])
    pick = np.r_[0:5, 4094:4099, norm.shape[0] - 5:norm.shape[0]]  # around the block edge
    want = _hand_tps(centres, weights, affine, norm[pick])
    np.testing.assert_allclose(x.ravel()[pick], want[:, 0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y.ravel()[pick], want[:, 1], rtol=1e-12, atol=1e-12)
    # a plain affine map (no weights) is just the affine part; scalars give 0-d arrays
    flat = gc.PlaneMap(offset, scale, np.empty((0, 2)), np.empty((0, 2)), affine)
    fx, fy = flat(np.array(150.0), np.array(-12.0))
    assert fx.shape == ()
    np.testing.assert_allclose([fx, fy], affine[0] + 1.0 * affine[1] + 1.0 * affine[2])


def test_normalise_centres_and_scales_each_axis() -> None:
    src = np.array([[0.0, 5.0], [10.0, 5.0], [4.0, 5.0]])
    norm, offset, scale = gc._normalise(src)
    np.testing.assert_allclose(offset, [14.0 / 3.0, 5.0])
    np.testing.assert_allclose(scale, [10.0, 1e-12])  # a constant axis is not divided by 0
    np.testing.assert_allclose(norm[:, 0], (src[:, 0] - 14.0 / 3.0) / 10.0)
    np.testing.assert_array_equal(norm[:, 1], 0.0)


def _scattered(n: int = 14, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    src = rng.uniform(0.0, 1000.0, (n, 2)) * [1.0, 3.0]
    dst = np.column_stack([np.sin(src[:, 0] / 300.0) * 500.0 + src[:, 1],
                           np.cos(src[:, 1] / 900.0) * 800.0 - 0.5 * src[:, 0]])
    return src, dst


def test_tps_fit_interpolates_and_its_loo_equals_refitting() -> None:
    src, dst = _scattered()
    plane, loo = gc.fit_plane_map(src, dst, "tps")
    np.testing.assert_allclose(np.column_stack(plane(src[:, 0], src[:, 1])), dst, atol=1e-6)
    # the spline is normalised per axis by the points' extent: leaving out a point on the
    # bounding box would change the normalisation, so those are not refitted
    extreme = np.zeros(len(src), bool)
    for axis in (0, 1):
        extreme[[src[:, axis].argmin(), src[:, axis].argmax()]] = True
    assert (~extreme).sum() >= 10
    for k in np.flatnonzero(~extreme):
        keep = np.arange(len(src)) != k
        refit, _ = gc.fit_plane_map(src[keep], dst[keep], "tps")
        predicted = np.array(refit(src[k, 0], src[k, 1]))
        np.testing.assert_allclose(loo[k], predicted - dst[k], rtol=1e-6, atol=1e-6)
    # the spline's weights are orthogonal to the affine part (side conditions)
    assert np.abs(plane.weights.sum(axis=0)).max() < 1e-6 * np.abs(plane.weights).max()
    np.testing.assert_allclose(plane.centres, (src - src.mean(axis=0)) / np.ptp(src, axis=0))


def test_tps_of_an_affine_map_is_that_map() -> None:
    src, _ = _scattered()
    dst = np.column_stack([3.0 + 2.0 * src[:, 0] - src[:, 1], -7.0 + 0.5 * src[:, 1]])
    plane, loo = gc.fit_plane_map(src, dst, "tps")
    np.testing.assert_allclose(plane.weights, 0.0, atol=1e-6)
    np.testing.assert_allclose(loo, 0.0, atol=1e-6)
    x, y = plane(np.array([2500.0]), np.array([-400.0]))  # extrapolates exactly too
    np.testing.assert_allclose([x[0], y[0]], [3.0 + 5000.0 + 400.0, -7.0 - 200.0], atol=1e-6)


def test_affine_fit_is_least_squares_with_refit_loo() -> None:
    src, dst = _scattered(9)
    plane, loo = gc.fit_plane_map(src, dst, "affine")
    design = np.column_stack([np.ones(9), src])
    coef, *_ = np.linalg.lstsq(design, dst, rcond=None)
    np.testing.assert_allclose(np.column_stack(plane(src[:, 0], src[:, 1])), design @ coef,
                               rtol=1e-9, atol=1e-7)
    assert plane.weights.size == 0 and plane.centres.shape == (0, 2)
    for k in range(9):
        keep = np.arange(9) != k
        c_k, *_ = np.linalg.lstsq(design[keep], dst[keep], rcond=None)
        np.testing.assert_allclose(loo[k], design[k] @ c_k - dst[k], rtol=1e-7, atol=1e-7)


def test_unknown_method_and_duplicate_points_are_refused() -> None:
    src, dst = _scattered(8)
    with pytest.raises(gc.GeocodingError) as info:
        gc.fit_plane_map(src, dst, "cubic")  # type: ignore[arg-type]
    assert str(info.value) == "geocoding method 'cubic' unknown; allowed: ['tps', 'affine']"
    twice = np.vstack([src, src[:1]])
    with pytest.raises(gc.GeocodingError,
                       match=r"^thin-plate spline through 9 tie points is singular \(duplicate "
                             r"or collinear points\?\): "):
        gc.fit_plane_map(twice, np.vstack([dst, dst[:1]]), "tps")


def test_tie_points_are_projected_with_pyproj(small_grid: GeolocationGrid) -> None:
    x, y, moved = gc.tie_points_in_crs(small_grid, "EPSG:3413", to_sea_level=False)
    wx, wy = Transformer.from_crs("EPSG:4326", "EPSG:3413", always_xy=True).transform(
        small_grid.longitude, small_grid.latitude)
    np.testing.assert_allclose(x, wx, atol=1e-6)
    np.testing.assert_allclose(y, wy, atol=1e-6)
    assert moved == 0 and x.dtype == np.float64
    sx, sy, moved = gc.tie_points_in_crs(small_grid, "EPSG:3413")
    hx, hy, hand_moved = gc.sea_level_tie_points(small_grid, np.asarray(wx), np.asarray(wy))
    assert moved == hand_moved == int((np.abs(small_grid.height) > 0.5).sum()) > 0
    np.testing.assert_allclose(sx, hx, atol=1e-6)
    np.testing.assert_allclose(sy, hy, atol=1e-6)


def test_unusable_crs_is_refused_with_the_reason(small_grid: GeolocationGrid) -> None:
    with pytest.raises(gc.GeocodingError) as info:
        gc.tie_points_in_crs(small_grid, "EPSG:4326")
    assert str(info.value) == (
        "target CRS 'EPSG:4326' is not projected; harmonise.target_crs needs a metric grid "
        "(e.g. EPSG:3413 for the Arctic, a UTM zone elsewhere)")
    south = GeolocationGrid(*(np.asarray(v) for v in (
        [0.0, 0.0], [0.0, 1.0], [-70.0, 70.0], [0.0, 0.0], [0.0, 0.0], [30.0, 30.0])))
    far_side = "+proj=ortho +lat_0=90 +lon_0=0 +units=m"
    for flag in (True, False):
        with pytest.raises(gc.GeocodingError) as info:
            gc.tie_points_in_crs(south, far_side, to_sea_level=flag)
        assert str(info.value) == (
            f"tie points cannot be projected to {far_side!r} (outside its domain)")


def test_sea_level_shift_is_height_over_tan_incidence_towards_near_range() -> None:
    """Tie-point line 20 runs along (3, 4)/5 per pixel step; points with |h| > 0.5 m and a valid
    incidence move h / tan(incidence) back along it. Lines 0 (one point) and 10 (flat) stay."""
    pixel = np.array([0.0, 300.0, 200.0, 100.0, 0.0, 400.0, 500.0, 0.0, 100.0])
    line = np.array([20.0, 20.0, 20.0, 20.0, 0.0, 20.0, 20.0, 10.0, 10.0])
    height = np.array([0.0, 100.0, 0.4, -50.0, 300.0, 80.0, 60.0, 0.2, 0.0])
    incidence = np.array([30.0, 40.0, 35.0, 20.0, 30.0, 0.0, np.nan, 30.0, 30.0])
    x = 1000.0 + 3.0 * pixel
    y = -500.0 + 4.0 * pixel
    grid = GeolocationGrid(line, pixel, np.zeros(9), np.zeros(9), height, incidence)
    mx, my, moved = gc.sea_level_tie_points(grid, x, y)
    shift = np.zeros(9)
    shift[1] = 100.0 / math.tan(math.radians(40.0))
    shift[3] = -50.0 / math.tan(math.radians(20.0))
    np.testing.assert_allclose(mx, x - shift * 0.6, atol=1e-9)
    np.testing.assert_allclose(my, y - shift * 0.8, atol=1e-9)
    assert moved == 2
    np.testing.assert_array_equal(x, 1000.0 + 3.0 * pixel)  # inputs not modified


def test_sea_level_direction_follows_the_local_gradient() -> None:
    """A bent tie-point line: each point moves along np.gradient of x and y over pixel."""
    pixel = np.array([0.0, 100.0, 300.0])
    x = np.array([0.0, 100.0, 100.0])
    y = np.array([0.0, 0.0, 200.0])
    grid = GeolocationGrid(np.zeros(3), pixel, np.zeros(3), np.zeros(3),
                           np.array([10.0, 10.0, 10.0]), np.full(3, 45.0))
    mx, my, moved = gc.sea_level_tie_points(grid, x, y)
    # np.gradient with uneven spacing (h- = 100, h+ = 200): one-sided differences at the ends,
    # (h-^2 f(+) + (h+^2 - h-^2) f(0) - h+^2 f(-)) / (h- h+ (h- + h+)) in the middle
    middle = 100.0 * 200.0 * 300.0
    dx = np.array([1.0, (100.0**2 * 100.0 + (200.0**2 - 100.0**2) * 100.0) / middle, 0.0])
    dy = np.array([0.0, 100.0**2 * 200.0 / middle, 1.0])
    norm = np.hypot(dx, dy)
    np.testing.assert_allclose(mx, x - 10.0 * dx / norm, atol=1e-9)
    np.testing.assert_allclose(my, y - 10.0 * dy / norm, atol=1e-9)
    assert moved == 3


def test_to_image_inverts_to_crs(small_grid: GeolocationGrid) -> None:
    geo = gc.fit_geocoding(small_grid, "EPSG:3413")
    line, pixel = np.meshgrid(np.linspace(100, 9000, 7), np.linspace(50, 10000, 6),
                              indexing="ij")
    x, y = geo.to_crs(line, pixel)
    back_line, back_pixel = geo.to_image(x, y)
    np.testing.assert_allclose(back_line, line, atol=1e-4)
    np.testing.assert_allclose(back_pixel, pixel, atol=1e-4)
    # without Newton steps it is the backward spline's first guess (off by up to ~a pixel)
    guess = geo.to_image(x, y, iterations=0)
    np.testing.assert_array_equal(guess[0], geo.backward(x, y)[0])
    assert np.abs(guess[0] - line).max() > 1e-3
    # each Newton step shrinks the error (quadratic convergence)
    one = geo.to_image(x, y, iterations=1)
    err0 = np.abs(guess[0] - line).max() + np.abs(guess[1] - pixel).max()
    err1 = np.abs(one[0] - line).max() + np.abs(one[1] - pixel).max()
    assert err1 < err0 / 10


def test_affine_to_image_is_the_exact_inverse_affine(small_grid: GeolocationGrid) -> None:
    geo = gc.fit_geocoding(small_grid, "EPSG:3413", method="affine")
    x, y = geo.to_crs(np.array([500.0, 7000.0]), np.array([300.0, 9000.0]))
    line, pixel = geo.to_image(x, y, iterations=5)
    np.testing.assert_array_equal(line, geo.backward(x, y)[0])
    np.testing.assert_allclose(line, [500.0, 7000.0], atol=1.0)  # least squares both ways
    np.testing.assert_allclose(pixel, [300.0, 9000.0], atol=1.0)


def test_stats_are_median_p95_and_max() -> None:
    errors = np.arange(1.0, 21.0)
    assert gc._stats(errors) == (10.5, 19.05, 20.0)
    assert all(math.isnan(v) for v in gc._stats(np.array([])))


def test_fit_geocoding_residuals_are_derived_from_the_fit(small_grid: GeolocationGrid) -> None:
    """Every residual field recomputed by hand; duplicate tie points counted once."""
    dup = GeolocationGrid(*(np.concatenate([np.asarray(getattr(small_grid, f)),
                                            np.asarray(getattr(small_grid, f))[:3]])
                            for f in ("line", "pixel", "latitude", "longitude", "height",
                                      "incidence_angle")))
    geo = gc.fit_geocoding(dup, "EPSG:3413")
    r = geo.residuals
    n = small_grid.line.size
    assert r["n_tie_points"] == n and geo.tie_line.size == n
    np.testing.assert_array_equal(geo.tie_line, small_grid.line)
    np.testing.assert_array_equal(geo.tie_pixel, small_grid.pixel)
    x, y, moved = gc.tie_points_in_crs(small_grid, "EPSG:3413")
    np.testing.assert_allclose(geo.tie_x, x, atol=1e-6)
    np.testing.assert_allclose(geo.tie_y, y, atol=1e-6)
    assert r["sea_level_moved"] == moved > 0
    image = np.column_stack([small_grid.line, small_grid.pixel])
    ground = np.column_stack([x, y])
    _, loo = gc.fit_plane_map(image, ground, "tps")
    line, pixel = small_grid.line, small_grid.pixel
    interior = ((line > line.min()) & (line < line.max())
                & (pixel > pixel.min()) & (pixel < pixel.max()))
    assert r["n_interior"] == int(interior.sum()) == (len(np.unique(line)) - 2) * (
        len(np.unique(pixel)) - 2)
    errors = np.hypot(loo[interior, 0], loo[interior, 1])
    assert r["loo_median_m"] == pytest.approx(np.median(errors), rel=1e-6)
    assert r["loo_p95_m"] == pytest.approx(np.percentile(errors, 95), rel=1e-6)
    assert r["loo_max_m"] == pytest.approx(errors.max(), rel=1e-6)
    design = np.column_stack([np.ones(n), line, pixel])
    coef, *_ = np.linalg.lstsq(design, ground, rcond=None)
    rms = math.sqrt(np.mean(np.sum((design @ coef - ground) ** 2, axis=1)))
    assert r["affine_rms_m"] == pytest.approx(rms, rel=1e-6)
    assert r["method"] == "tps" and geo.method == "tps" and geo.crs == "EPSG:3413"
    # the forward map interpolates the tie points, the backward map inverts them
    fx, fy = geo.to_crs(line, pixel)
    np.testing.assert_allclose(fx, x, atol=1e-3)
    bl, bp = geo.backward(x, y)
    np.testing.assert_allclose(bl, line, atol=1e-3)
    np.testing.assert_allclose(bp, pixel, atol=1e-3)
    raw = gc.fit_geocoding(small_grid, "EPSG:3413", to_sea_level=False)
    assert raw.residuals["sea_level_moved"] == 0


def test_fit_geocoding_affine_reports_the_affine_loo(small_grid: GeolocationGrid) -> None:
    geo = gc.fit_geocoding(small_grid, "EPSG:3413", method="affine")
    x, y, _ = gc.tie_points_in_crs(small_grid, "EPSG:3413")
    image = np.column_stack([small_grid.line, small_grid.pixel])
    _, loo = gc.fit_plane_map(image, np.column_stack([x, y]), "affine")
    line, pixel = small_grid.line, small_grid.pixel
    interior = ((line > line.min()) & (line < line.max())
                & (pixel > pixel.min()) & (pixel < pixel.max()))
    errors = np.hypot(loo[interior, 0], loo[interior, 1])
    assert geo.residuals["method"] == "affine"
    assert geo.residuals["loo_median_m"] == pytest.approx(np.median(errors), rel=1e-6)


def test_fewer_than_six_distinct_tie_points_are_refused(small_grid: GeolocationGrid) -> None:
    five = GeolocationGrid(*(np.concatenate([np.asarray(getattr(small_grid, f))[:5]] * 2)
                             for f in ("line", "pixel", "latitude", "longitude", "height",
                                       "incidence_angle")))
    with pytest.raises(gc.GeocodingError) as info:
        gc.fit_geocoding(five, "EPSG:3413")
    assert str(info.value) == (
        "geolocation grid has 5 distinct tie points; at least 6 are needed")
    six = GeolocationGrid(*(np.asarray(getattr(small_grid, f))[[0, 1, 2, 30, 31, 32]]
                            for f in ("line", "pixel", "latitude", "longitude", "height",
                                      "incidence_angle")))
    assert gc.fit_geocoding(six, "EPSG:3413", method="affine").residuals["n_tie_points"] == 6


def test_map_grid_snaps_the_bounding_box_outward() -> None:
    transform, shape = gc.map_grid(np.array([105.0, 230.0, 161.0]),
                                   np.array([-41.0, 79.0, 0.0]), 40.0)
    assert transform == Affine(40.0, 0.0, 80.0, 0.0, -40.0, 80.0)
    assert shape == (4, 4)  # y -80 .. 80, x 80 .. 240
    transform, shape = gc.map_grid(np.array([120.0, 120.0]), np.array([40.0, 40.0]), 40.0)
    assert transform == Affine(40.0, 0.0, 120.0, 0.0, -40.0, 40.0)
    assert shape == (1, 1)  # a point on a grid line still gets one pixel
    assert gc.map_grid(np.array([0.0, 39.9999999]), np.array([0.0, 79.9999999]), 40.0)[1] == (
        2, 1)


def test_interpolate_lattice_is_bilinear_and_exact_on_bilinear_values() -> None:
    lr = np.array([0.0, 4.0, 9.0])
    lc = np.array([2.0, 5.0, 6.0, 11.0])
    r = np.arange(0.0, 10.0)
    c = np.arange(2.0, 12.0)

    def f(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        r_, c_ = rows[:, None], cols[None, :]
        return 3.0 + 2.0 * r_ - 0.5 * c_ + 0.25 * r_ * c_

    np.testing.assert_allclose(gc.interpolate_lattice(f(lr, lc), lr, lc, r, c), f(r, c),
                               atol=1e-12)
    # a non-bilinear lattice: the value between lattice nodes is the bilinear mix, by hand
    values = np.array([[0.0, 10.0], [100.0, 1000.0]])
    got = gc.interpolate_lattice(values, np.array([0.0, 4.0]), np.array([0.0, 2.0]),
                                 np.array([1.0]), np.array([0.5]))
    want = 0.75 * (0.75 * 0.0 + 0.25 * 10.0) + 0.25 * (0.75 * 100.0 + 0.25 * 1000.0)
    assert got.shape == (1, 1) and got[0, 0] == pytest.approx(want, rel=1e-14)
    # one lattice row / column: repeated
    one = gc.interpolate_lattice(np.array([[1.0, 3.0]]), np.array([5.0]), np.array([0.0, 2.0]),
                                 np.array([5.0, 5.0, 5.0]), np.array([0.0, 1.0, 2.0]))
    np.testing.assert_allclose(one, [[1.0, 2.0, 3.0]] * 3)
    col = gc.interpolate_lattice(np.array([[1.0], [5.0]]), np.array([0.0, 4.0]),
                                 np.array([7.0]), np.array([0.0, 1.0, 4.0]), np.array([7.0, 7.0]))
    np.testing.assert_allclose(col, [[1.0, 1.0], [2.0, 2.0], [5.0, 5.0]])


def test_image_coordinates_match_exact_inversion(small_grid: GeolocationGrid) -> None:
    """Every map pixel centre of a window, lattice-interpolated, within 0.01 px of its exact
    inverse; on the lattice nodes (rows/cols every `step` from the window start, and the last
    one) exactly the inverse."""
    geo = gc.fit_geocoding(small_grid, "EPSG:3413")
    transform, _ = gc.map_grid(geo.tie_x, geo.tie_y, 40.0)
    rows, cols = (3000, 3011), (2500, 2509)
    line, pixel = gc.image_coordinates(geo, transform, rows, cols, step=4)
    assert line.shape == pixel.shape == (11, 9)
    rr, cc = np.meshgrid(np.arange(*rows) + 0.5, np.arange(*cols) + 0.5, indexing="ij")
    x = transform.c + 40.0 * cc
    y = transform.f - 40.0 * rr
    exact_line, exact_pixel = geo.to_image(x, y)
    np.testing.assert_allclose(line, exact_line, atol=1e-2)
    np.testing.assert_allclose(pixel, exact_pixel, atol=1e-2)
    nodes = np.ix_([0, 4, 8, 10], [0, 4, 8])
    np.testing.assert_allclose(line[nodes], exact_line[nodes], atol=1e-9)
    np.testing.assert_allclose(pixel[nodes], exact_pixel[nodes], atol=1e-9)


def test_image_coordinates_use_the_full_affine_transform(small_grid: GeolocationGrid) -> None:
    """A rotated grid (b, d != 0): centres at c + a(col + .5) + b(row + .5), f + d(..) + e(..)."""
    geo = gc.fit_geocoding(small_grid, "EPSG:3413")
    base, _ = gc.map_grid(geo.tie_x, geo.tie_y, 40.0)
    rotated = base @ Affine.translation(2600, 3100) @ Affine.rotation(20.0)
    line, pixel = gc.image_coordinates(geo, rotated, (0, 2), (0, 3), step=1)
    rr, cc = np.meshgrid([0.5, 1.5], [0.5, 1.5, 2.5], indexing="ij")
    x = rotated.c + rotated.a * cc + rotated.b * rr
    y = rotated.f + rotated.d * cc + rotated.e * rr
    exact_line, exact_pixel = geo.to_image(x, y)
    np.testing.assert_allclose(line, exact_line, atol=1e-9)
    np.testing.assert_allclose(pixel, exact_pixel, atol=1e-9)


def _geocoding_with(residuals: dict[str, float | int | str]) -> gc.Geocoding:
    empty = np.empty(0)
    plane = gc.PlaneMap(np.zeros(2), np.ones(2), np.empty((0, 2)), np.empty((0, 2)),
                        np.zeros((3, 2)))
    return gc.Geocoding("EPSG:3413", "tps", plane, plane, empty, empty, empty, empty, residuals)


def test_check_residuals_message_and_limits(caplog: pytest.LogCaptureFixture) -> None:
    residuals: dict[str, float | int | str] = {
        "loo_p95_m": 52.25, "loo_median_m": 12.04, "loo_max_m": 80.0, "n_interior": 17,
        "method": "tps"}
    with pytest.raises(gc.GeocodingError) as info:
        gc.check_residuals(_geocoding_with(residuals), "S1A_X", 50.0)
    assert str(info.value) == (
        "S1A_X: geocoding residual too large: leave-one-out p95 52.2 m (median 12.0 m, max "
        "80.0 m over 17 interior tie points, method tps) exceeds "
        "harmonise.max_geocoding_residual_m = 50 m. The annotation's geolocation grid is "
        "inconsistent (corrupt file, or strong terrain with harmonise.geocode_to_sea_level "
        "off); check the product, or raise harmonise.max_geocoding_residual_m to accept it")
    gc.check_residuals(_geocoding_with(residuals), "S1A_X", 52.25)  # at the limit: accepted
    nan = {**residuals, "loo_p95_m": float("nan")}
    with caplog.at_level(logging.WARNING, logger="tasks.sentinel1.geocode"):
        gc.check_residuals(_geocoding_with(nan), "S1A_Y", 1.0)
    assert caplog.messages == [
        "S1A_Y: geolocation grid has no interior tie point; the geocoding residual cannot be "
        "measured and harmonise.max_geocoding_residual_m is not checked"]


def test_a_repeated_terrain_tie_point_does_not_disable_the_sea_level_move(
    real_grid: GeolocationGrid,
) -> None:
    """Duplicates are dropped before the sea-level move (a zero pixel step made the range
    direction infinite and left the neighbours ~90 m off on the real scene)."""
    fields = ("line", "pixel", "latitude", "longitude", "height", "incidence_angle")
    k = int(np.flatnonzero(np.abs(real_grid.height) > 0.5)[5])
    dup = GeolocationGrid(*(np.concatenate([getattr(real_grid, f), getattr(real_grid, f)[[k]]])
                            for f in fields))
    once = gc.fit_geocoding(real_grid, "EPSG:3413", method="affine")
    twice = gc.fit_geocoding(dup, "EPSG:3413", method="affine")
    assert twice.residuals["sea_level_moved"] == once.residuals["sea_level_moved"] == 58
    np.testing.assert_allclose(twice.tie_x, once.tie_x, atol=1e-6)
    np.testing.assert_allclose(twice.tie_y, once.tie_y, atol=1e-6)


def test_to_image_default_is_two_newton_steps(small_grid: GeolocationGrid) -> None:
    geo = gc.fit_geocoding(small_grid, "EPSG:3413")
    x, y = geo.to_crs(np.array([1234.5, 8000.0]), np.array([777.0, 9000.25]))
    default = geo.to_image(x, y)
    two = geo.to_image(x, y, iterations=2)
    np.testing.assert_array_equal(default[0], two[0])
    np.testing.assert_array_equal(default[1], two[1])


def _plane(affine: list[list[float]]) -> gc.PlaneMap:
    return gc.PlaneMap(np.zeros(2), np.ones(2), np.empty((0, 2)), np.empty((0, 2)),
                       np.array(affine, dtype=float))


def test_newton_steps_with_unit_and_zero_jacobians() -> None:
    """Forward x = pixel, y = -line: Jacobian determinant exactly 1, one step lands exactly on
    the answer from any first guess. A degenerate forward map (det 0) leaves the guess alone."""
    empty = np.empty(0)
    forward = _plane([[0.0, 0.0], [0.0, -1.0], [1.0, 0.0]])  # (line, pixel) -> (pixel, -line)
    rough = _plane([[0.3, -0.2], [0.0, 1.0], [-1.0, 0.0]])  # (x, y) -> (-y + 0.3, x - 0.2)
    geo = gc.Geocoding("c", "tps", forward, rough, empty, empty, empty, empty)
    line, pixel = geo.to_image(np.array([5.0, 17.0]), np.array([-3.0, -11.0]), iterations=1)
    np.testing.assert_allclose(line, [3.0, 11.0], atol=1e-12)
    np.testing.assert_allclose(pixel, [5.0, 17.0], atol=1e-12)
    flat = _plane([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])  # x = y = line + pixel: det 0
    stuck = gc.Geocoding("c", "tps", flat, rough, empty, empty, empty, empty)
    line, pixel = stuck.to_image(np.array([5.0]), np.array([-3.0]))
    np.testing.assert_array_equal(line, [3.3])
    np.testing.assert_array_equal(pixel, [4.8])


def test_interpolate_lattice_uses_the_segment_around_each_position() -> None:
    """Values that are not bilinear (squares): each position mixes its two neighbouring nodes."""
    lr = np.array([0.0, 2.0, 5.0, 9.0])
    lc = np.array([1.0, 4.0, 6.0])
    r = np.arange(0.0, 10.0)
    c = np.arange(1.0, 7.0)
    values = lr[:, None] ** 2 + 10.0 * lc[None, :] ** 2
    got = gc.interpolate_lattice(values, lr, lc, r, c)

    def hand_1d(nodes: np.ndarray, node_values: np.ndarray, at: float) -> float:
        k = max(i for i in range(len(nodes) - 1) if nodes[i] <= at)
        t = (at - nodes[k]) / (nodes[k + 1] - nodes[k])
        return float((1 - t) * node_values[k] + t * node_values[k + 1])

    for i, j in np.ndindex(r.size, c.size):
        want = hand_1d(lr, lr**2, float(r[i])) + 10.0 * hand_1d(lc, lc**2, float(c[j]))
        assert got[i, j] == pytest.approx(want, rel=1e-12), (r[i], c[j])


def test_image_coordinates_of_a_curved_map_are_exact_on_the_lattice() -> None:
    """A strongly curved map (x, y quadratic in line and pixel): the lattice rows / columns,
    the window's last ones included, are inverted exactly; in between the bilinear error of the
    curvature shows (so those positions are interpolated, not inverted)."""
    lines, pixels = np.meshgrid(np.arange(0.0, 201.0, 10.0), np.arange(0.0, 201.0, 10.0),
                                indexing="ij")
    image = np.column_stack([lines.ravel(), pixels.ravel()])
    ground = np.column_stack([40.0 * image[:, 1] + 0.5 * image[:, 0] ** 2,
                              -40.0 * image[:, 0] + 0.8 * image[:, 1] ** 2])
    forward, _ = gc.fit_plane_map(image, ground, "tps")
    backward, _ = gc.fit_plane_map(ground, image, "tps")
    empty = np.empty(0)
    geo = gc.Geocoding("c", "tps", forward, backward, empty, empty, empty, empty)
    transform = Affine(40.0, 0.0, 1000.0, 0.0, -40.0, -1000.0)
    rows, cols = (10, 21), (30, 41)
    line, pixel = gc.image_coordinates(geo, transform, rows, cols, step=4)
    rr, cc = np.meshgrid(np.arange(*rows) + 0.5, np.arange(*cols) + 0.5, indexing="ij")
    exact_line, exact_pixel = geo.to_image(1000.0 + 40.0 * cc, -1000.0 - 40.0 * rr)
    nodes = np.ix_([0, 4, 8, 10], [0, 4, 8, 10])
    np.testing.assert_allclose(line[nodes], exact_line[nodes], atol=1e-9)
    np.testing.assert_allclose(pixel[nodes], exact_pixel[nodes], atol=1e-9)
    between = np.ix_([1, 2, 3, 5, 6, 7, 9], [1, 2, 3, 5, 6, 7, 9])
    assert np.abs(line[between] - exact_line[between]).max() > 1e-6
    np.testing.assert_allclose(line, exact_line, atol=0.05)


def test_sea_level_thresholds_short_lines_and_flat_directions() -> None:
    """Heights of exactly 0.5 m stay, 1 m moves; a line of two tie points is used; a line
    whose points all sit at one map position has no range direction: nothing moves there."""
    line = np.array([0.0, 0.0, 0.0, 5.0, 5.0, 9.0, 9.0, 9.0])
    pixel = np.array([0.0, 10.0, 20.0, 0.0, 10.0, 0.0, 10.0, 20.0])
    height = np.array([0.5, 1.0, 0.0, 0.0, 40.0, 20.0, 20.0, 20.0])
    incidence = np.full(8, 45.0)
    x = np.where(line == 9.0, 7.0, 100.0 * pixel)  # line 9: one map position for all points
    y = np.where(line == 9.0, 3.0, 0.0)
    grid = GeolocationGrid(line, pixel, np.zeros(8), np.zeros(8), height, incidence)
    mx, my, moved = gc.sea_level_tie_points(grid, x, y)
    # tan(45 deg) = 1: the shift is the height, along -x (pixels run along +x)
    np.testing.assert_allclose(mx, x - np.array([0.0, 1.0, 0, 0, 40.0, 0, 0, 0]), atol=1e-9)
    np.testing.assert_array_equal(my, y)
    assert moved == 2
    # narrow dtypes are computed in float64 (float16 radians would be off by ~1e-3)
    narrow = GeolocationGrid(line, pixel, np.zeros(8), np.zeros(8), height.astype(np.float16),
                             np.full(8, 30.0, dtype=np.float16))
    nx, _, _ = gc.sea_level_tie_points(narrow, x, y)
    assert nx[4] == pytest.approx(1000.0 - 40.0 / math.tan(math.radians(30.0)), abs=1e-9)
