"""Geocoding of Sentinel-1 GRD images from the annotation's geolocation grid.

A GRD image is in radar geometry: a line is an azimuth time, a pixel a ground range. The product
annotation ties a sparse lattice of ``(line, pixel)`` to ``(latitude, longitude, height)``; the
map position of every other pixel has to be interpolated. One affine transform is not enough: the
swath curves in a polar stereographic grid (776 m RMS on a real 400 km EW GRDM scene).

:func:`fit_geocoding` fits a smooth map ``(line, pixel) -> (x, y)`` in a target CRS through the tie
points (a thin-plate spline, the method of GDAL's ``GCP_TPS``; or the old affine for comparison)
and its inverse ``(x, y) -> (line, pixel)``, refined by Newton steps on the forward map so both
agree. It also measures the fit: the leave-one-out error at the interior tie points (each point
predicted by the spline through all the others, in closed form), whose median / p95 / max go into
the harmonise manifest.

Tie points over terrain are imaged where their slant range puts them, ``height / tan(incidence)``
nearer to the sensor than the sea-level point of the same pixel. Sea-ice charts live at sea level,
so by default each tie point is first moved to the ellipsoid along the range direction
(:func:`sea_level_tie_points`); without this, 45 land points of the real EW scene bend the fit by
up to 640 m around them.

:func:`map_grid` chooses the output grid (the tie points' bounding box snapped outward to multiples
of the pixel spacing, so scenes of one CRS share pixel edges) and :func:`image_coordinates` gives,
for a window of that grid, the fractional image ``(line, pixel)`` of every pixel centre (exact on a
coarse lattice, bilinear in between), which a resampler then reads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np

from tasks.errors import EeflowError

log = logging.getLogger(__name__)

GeocodingMethod = Literal["tps", "affine"]

#: map pixels between exactly inverted lattice points in :func:`image_coordinates`
LATTICE_STEP = 32


class GeocodingError(EeflowError, ValueError):
    """The geolocation grid cannot be fitted, or its residuals exceed the configured threshold."""


# ---------------------------------------------------------------------------- 2-D interpolants
def _tps_kernel(r2: np.ndarray) -> np.ndarray:
    """Thin-plate kernel ``r^2 log r`` written with ``r^2`` (0 at r = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r2 > 0, 0.5 * r2 * np.log(np.where(r2 > 0, r2, 1.0)), 0.0)


@dataclass(frozen=True)
class PlaneMap:
    """A map R^2 -> R^2: thin-plate spline (``weights`` per centre) plus an affine part.

    Inputs are normalised as ``(a - offset) / scale`` before evaluation; ``weights`` is empty for a
    plain affine map.
    """

    offset: np.ndarray  # (2,)
    scale: np.ndarray  # (2,)
    centres: np.ndarray  # (n, 2) normalised
    weights: np.ndarray  # (n, 2)
    affine: np.ndarray  # (3, 2): rows 1, a, b

    def __call__(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Evaluate at points ``(a, b)`` (any equal shapes); returns two arrays of that shape."""
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        shape = np.broadcast_shapes(a.shape, b.shape)
        pa = ((np.broadcast_to(a, shape) - self.offset[0]) / self.scale[0]).ravel()
        pb = ((np.broadcast_to(b, shape) - self.offset[1]) / self.scale[1]).ravel()
        out = self.affine[0] + pa[:, None] * self.affine[1] + pb[:, None] * self.affine[2]
        if self.weights.size:
            for s in range(0, pa.size, 4096):  # bounded memory: 4096 x n kernel values at a time
                d2 = (pa[s : s + 4096, None] - self.centres[None, :, 0]) ** 2 + (
                    pb[s : s + 4096, None] - self.centres[None, :, 1]
                ) ** 2
                out[s : s + 4096] += _tps_kernel(d2) @ self.weights
        return out[:, 0].reshape(shape), out[:, 1].reshape(shape)


def _normalise(src: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    offset = src.mean(axis=0)
    scale = np.maximum(np.ptp(src, axis=0), 1e-12)
    return (src - offset) / scale, offset, scale


def fit_plane_map(
    src: np.ndarray, dst: np.ndarray, method: GeocodingMethod
) -> tuple[PlaneMap, np.ndarray]:
    """Fit ``src -> dst`` (both ``(n, 2)``) and return it with the leave-one-out residuals.

    ``tps`` interpolates the points exactly; its leave-one-out residual of point k (the error of
    the spline through the other points, at k) is ``c_k / (A^-1)_kk`` (Rippa 1999), with ``A`` the
    augmented system matrix and ``c`` the solved coefficients. ``affine`` is a least-squares fit;
    its leave-one-out residual is ``r_k / (1 - h_kk)`` with ``h`` the hat matrix.

    Returns:
        ``(map, loo)`` with ``loo`` of shape ``(n, 2)`` in ``dst`` units (predicted - true).

    """
    n = src.shape[0]
    norm, offset, scale = _normalise(src)
    design = np.column_stack([np.ones(n), norm])
    if method == "affine":
        coef, *_ = np.linalg.lstsq(design, dst, rcond=None)
        hat = np.einsum("ij,ji->i", design, np.linalg.pinv(design))
        resid = design @ coef - dst
        loo = resid / np.maximum(1.0 - hat, 1e-12)[:, None]
        return PlaneMap(offset, scale, np.empty((0, 2)), np.empty((0, 2)), coef), loo
    if method != "tps":
        raise GeocodingError(f"geocoding method {method!r} unknown; allowed: ['tps', 'affine']")
    d2 = ((norm[:, None, :] - norm[None, :, :]) ** 2).sum(axis=2)
    system = np.zeros((n + 3, n + 3))
    system[:n, :n] = _tps_kernel(d2)
    system[:n, n:] = design
    system[n:, :n] = design.T
    rhs = np.zeros((n + 3, 2))
    rhs[:n] = dst
    try:
        inverse = np.linalg.inv(system)
    except np.linalg.LinAlgError as err:
        raise GeocodingError(
            f"thin-plate spline through {n} tie points is singular (duplicate or collinear "
            f"points?): {err}"
        ) from err
    coef = inverse @ rhs
    loo = -coef[:n] / np.diag(inverse)[:n, None]
    return PlaneMap(offset, scale, norm, coef[:n], coef[n:]), loo


# ---------------------------------------------------------------------------- tie points
def tie_points_in_crs(
    grid: Any, crs: str, to_sea_level: bool = True
) -> tuple[np.ndarray, np.ndarray, int]:
    """Project the tie points of a geolocation grid to ``crs`` (metres).

    Args:
        grid: :class:`tasks.sentinel1.safe.GeolocationGrid`.
        crs: target CRS (e.g. ``EPSG:3413``); must be projected in metres.
        to_sea_level: move points with ``height`` > 0 to the ellipsoid (see
            :func:`sea_level_tie_points`).

    Returns:
        ``(x, y, n_moved)``: coordinates in ``crs`` and the number of points moved.

    """
    from pyproj import CRS, Transformer

    target = CRS.from_user_input(crs)
    if not target.is_projected:
        raise GeocodingError(
            f"target CRS {crs!r} is not projected; harmonise.target_crs needs a metric grid "
            "(e.g. EPSG:3413 for the Arctic, a UTM zone elsewhere)"
        )
    x, y = Transformer.from_crs("EPSG:4326", target, always_xy=True).transform(
        grid.longitude, grid.latitude
    )
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise GeocodingError(f"tie points cannot be projected to {crs!r} (outside its domain)")
    moved = 0
    if to_sea_level:
        x, y, moved = sea_level_tie_points(grid, x, y)
    return x, y, moved


def sea_level_tie_points(
    grid: Any, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """Move tie points over terrain to the sea-level point imaged at the same pixel.

    A point at height ``h`` has a slant range ``h cos(incidence)`` shorter than the ellipsoid
    point below it, so the ellipsoid point of the same pixel lies ``h / tan(incidence)`` metres
    nearer to the sensor, along the direction of decreasing pixel (taken per tie-point line from
    neighbouring points).

    Returns:
        ``(x, y, n_moved)``.

    """
    x = x.copy()
    y = y.copy()
    height = np.asarray(grid.height, dtype=np.float64)
    incidence = np.radians(np.asarray(grid.incidence_angle, dtype=np.float64))
    moved = 0
    for line in np.unique(grid.line):
        idx = np.flatnonzero(grid.line == line)
        if idx.size < 2 or not (np.abs(height[idx]) > 0.5).any():
            continue
        idx = idx[np.argsort(grid.pixel[idx], kind="stable")]
        dx = np.gradient(x[idx], grid.pixel[idx])
        dy = np.gradient(y[idx], grid.pixel[idx])
        norm = np.hypot(dx, dy)
        move = (np.abs(height[idx]) > 0.5) & np.isfinite(norm) & (norm > 0)
        move &= (incidence[idx] > 0) & np.isfinite(incidence[idx])
        shift = np.where(move, height[idx] / np.tan(np.where(move, incidence[idx], 1.0)), 0.0)
        safe_norm = np.where(move, norm, 1.0)
        x[idx] -= np.where(move, shift * dx / safe_norm, 0.0)
        y[idx] -= np.where(move, shift * dy / safe_norm, 0.0)
        moved += int(move.sum())
    return x, y, moved


# ---------------------------------------------------------------------------- geocoding
@dataclass(frozen=True)
class Geocoding:
    """Map between image ``(line, pixel)`` (0-based pixel centres) and ``crs`` ``(x, y)`` metres.

    Attributes:
        crs: target CRS.
        method: ``tps`` or ``affine``.
        forward: ``(line, pixel) -> (x, y)``.
        backward: first guess of ``(x, y) -> (line, pixel)`` (refined in :meth:`to_image`).
        tie_x, tie_y: tie points in ``crs`` (after the sea-level correction).
        residuals: fit statistics (see :func:`fit_geocoding`).

    """

    crs: str
    method: GeocodingMethod
    forward: PlaneMap
    backward: PlaneMap
    tie_line: np.ndarray
    tie_pixel: np.ndarray
    tie_x: np.ndarray
    tie_y: np.ndarray
    residuals: dict[str, float | int | str] = field(default_factory=dict)

    def to_crs(self, line: np.ndarray, pixel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map image coordinates to ``crs`` metres."""
        return self.forward(line, pixel)

    def to_image(
        self, x: np.ndarray, y: np.ndarray, iterations: int = 2
    ) -> tuple[np.ndarray, np.ndarray]:
        """Map ``crs`` metres to fractional image ``(line, pixel)`` (Newton on :meth:`to_crs`)."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        line, pixel = self.backward(x, y)
        if self.method == "affine":
            return line, pixel
        for _ in range(iterations):
            fx, fy = self.forward(line, pixel)
            fx_l, fy_l = self.forward(line + 1.0, pixel)
            fx_p, fy_p = self.forward(line, pixel + 1.0)
            j11, j21 = fx_l - fx, fy_l - fy  # d(x, y) / d line
            j12, j22 = fx_p - fx, fy_p - fy  # d(x, y) / d pixel
            det = j11 * j22 - j12 * j21
            ex, ey = x - fx, y - fy
            with np.errstate(divide="ignore", invalid="ignore"):
                line = line + np.where(det != 0, (j22 * ex - j12 * ey) / det, 0.0)
                pixel = pixel + np.where(det != 0, (j11 * ey - j21 * ex) / det, 0.0)
        return line, pixel


def _stats(errors: np.ndarray) -> tuple[float, float, float]:
    if errors.size == 0:
        return float("nan"), float("nan"), float("nan")
    return (
        float(np.median(errors)),
        float(np.percentile(errors, 95)),
        float(errors.max()),
    )


def fit_geocoding(
    grid: Any,
    crs: str,
    method: GeocodingMethod = "tps",
    to_sea_level: bool = True,
) -> Geocoding:
    """Fit the geocoding of an image from its geolocation grid.

    Args:
        grid: :class:`tasks.sentinel1.safe.GeolocationGrid` (line, pixel, lat, lon, height,
            incidence angle per tie point).
        crs: target CRS (projected, metres).
        method: ``tps`` (thin-plate spline, exact at the tie points) or ``affine``.
        to_sea_level: geocode at sea level (:func:`sea_level_tie_points`).

    Returns:
        :class:`Geocoding` whose ``residuals`` hold ``loo_median_m``, ``loo_p95_m``,
        ``loo_max_m`` (leave-one-out error at the interior tie points: not on the first / last
        tie-point line or column, where the fit would extrapolate), ``n_tie_points``,
        ``n_interior``, ``affine_rms_m`` (RMS residual of an affine fit, for comparison),
        ``sea_level_moved`` (tie points moved from terrain) and ``method``.

    Raises:
        GeocodingError: fewer than 6 distinct tie points, or a singular fit.

    """
    line = np.asarray(grid.line, dtype=np.float64)
    pixel = np.asarray(grid.pixel, dtype=np.float64)
    keep = np.unique(np.column_stack([line, pixel]), axis=0, return_index=True)[1]
    keep.sort()
    if keep.size < 6:
        raise GeocodingError(
            f"geolocation grid has {keep.size} distinct tie points; at least 6 are needed"
        )
    # duplicates are dropped before the sea-level move: a repeated pixel would make the range
    # direction (np.gradient over pixel) infinite and leave its neighbours unmoved
    distinct = SimpleNamespace(**{
        name: np.asarray(getattr(grid, name))[keep]
        for name in ("line", "pixel", "latitude", "longitude", "height", "incidence_angle")
    })
    x, y, moved = tie_points_in_crs(distinct, crs, to_sea_level)
    line, pixel = line[keep], pixel[keep]
    image = np.column_stack([line, pixel])
    ground = np.column_stack([x, y])
    forward, loo = fit_plane_map(image, ground, method)
    backward, _ = fit_plane_map(ground, image, method)
    interior = (
        (line > line.min()) & (line < line.max()) & (pixel > pixel.min()) & (pixel < pixel.max())
    )
    errors = np.hypot(loo[:, 0], loo[:, 1])[interior]
    median, p95, worst = _stats(errors)
    _, affine_loo = fit_plane_map(image, ground, "affine")
    design = np.column_stack([np.ones_like(line), line, pixel])
    coef, *_ = np.linalg.lstsq(design, ground, rcond=None)
    affine_rms = float(np.sqrt(np.mean(np.sum((design @ coef - ground) ** 2, axis=1))))
    residuals: dict[str, float | int | str] = {
        "method": method,
        "loo_median_m": median,
        "loo_p95_m": p95,
        "loo_max_m": worst,
        "n_tie_points": int(keep.size),
        "n_interior": int(interior.sum()),
        "affine_rms_m": affine_rms,
        "sea_level_moved": moved,
    }
    return Geocoding(crs, method, forward, backward, line, pixel, x, y, residuals)


# ---------------------------------------------------------------------------- output grid
def map_grid(x: np.ndarray, y: np.ndarray, spacing: float) -> tuple[Any, tuple[int, int]]:
    """Regular north-up grid covering points ``(x, y)``, edges on multiples of ``spacing``.

    Returns:
        ``(affine.Affine, (height, width))`` (GDAL convention: transform of pixel corners).

    """
    from affine import Affine

    x0 = np.floor(np.min(x) / spacing) * spacing
    x1 = np.ceil(np.max(x) / spacing) * spacing
    y0 = np.floor(np.min(y) / spacing) * spacing
    y1 = np.ceil(np.max(y) / spacing) * spacing
    shape = (max(1, int(round((y1 - y0) / spacing))), max(1, int(round((x1 - x0) / spacing))))
    return Affine(spacing, 0.0, float(x0), 0.0, -spacing, float(y1)), shape


def image_coordinates(
    geocoding: Geocoding,
    transform: Any,
    rows: tuple[int, int],
    cols: tuple[int, int],
    step: int = LATTICE_STEP,
) -> tuple[np.ndarray, np.ndarray]:
    """Fractional image ``(line, pixel)`` of the centres of map-grid pixels ``rows`` x ``cols``.

    Inverted exactly (:meth:`Geocoding.to_image`) on a lattice every ``step`` pixels (and at the
    last row / column), bilinear in between: the map is smooth over kilometres, so the
    interpolation error is far below a pixel (GDAL's approximate transformer does the same).

    Returns:
        Two float64 arrays of shape ``(rows[1] - rows[0], cols[1] - cols[0])``.

    """
    r = np.arange(rows[0], rows[1], dtype=np.float64)
    c = np.arange(cols[0], cols[1], dtype=np.float64)
    lr = np.unique(np.append(r[::step], r[-1]))
    lc = np.unique(np.append(c[::step], c[-1]))
    gx = transform.c + transform.a * (lc[None, :] + 0.5) + transform.b * (lr[:, None] + 0.5)
    gy = transform.f + transform.d * (lc[None, :] + 0.5) + transform.e * (lr[:, None] + 0.5)
    line, pixel = geocoding.to_image(gx, gy)
    return interpolate_lattice(line, lr, lc, r, c), interpolate_lattice(pixel, lr, lc, r, c)


def interpolate_lattice(
    values: np.ndarray, lr: np.ndarray, lc: np.ndarray, r: np.ndarray, c: np.ndarray
) -> np.ndarray:
    """Interpolate lattice ``values`` (at rows ``lr`` x cols ``lc``) bilinearly to ``r`` x ``c``.

    ``lr`` / ``lc`` are increasing 1-D positions; ``r`` / ``c`` 1-D positions inside them.
    """
    if lr.size == 1:
        along_rows = np.repeat(values, r.size, axis=0)
    else:
        i = np.clip(np.searchsorted(lr, r, side="right") - 1, 0, lr.size - 2)
        t = ((r - lr[i]) / (lr[i + 1] - lr[i]))[:, None]
        along_rows = values[i] * (1 - t) + values[i + 1] * t
    if lc.size == 1:
        return np.repeat(along_rows, c.size, axis=1)
    j = np.clip(np.searchsorted(lc, c, side="right") - 1, 0, lc.size - 2)
    s = ((c - lc[j]) / (lc[j + 1] - lc[j]))[None, :]
    return along_rows[:, j] * (1 - s) + along_rows[:, j + 1] * s


def check_residuals(geocoding: Geocoding, scene: str, threshold_m: float) -> None:
    """Refuse a scene whose geocoding leave-one-out p95 exceeds ``threshold_m`` metres.

    Raises:
        GeocodingError: naming the scene, the residual and ``harmonise.max_geocoding_residual_m``.

    """
    p95 = float(geocoding.residuals["loo_p95_m"])
    if not np.isfinite(p95):
        log.warning(
            "%s: geolocation grid has no interior tie point; the geocoding residual cannot be "
            "measured and harmonise.max_geocoding_residual_m is not checked",
            scene,
        )
        return
    if p95 > threshold_m:
        r = geocoding.residuals
        raise GeocodingError(
            f"{scene}: geocoding residual too large: leave-one-out p95 {p95:.1f} m (median "
            f"{float(r['loo_median_m']):.1f} m, max {float(r['loo_max_m']):.1f} m over "
            f"{r['n_interior']} interior tie points, method {r['method']}) exceeds "
            f"harmonise.max_geocoding_residual_m = {threshold_m:g} m. The annotation's "
            "geolocation grid is inconsistent (corrupt file, or strong terrain with "
            "harmonise.geocode_to_sea_level off); check the product, or raise "
            "harmonise.max_geocoding_residual_m to accept it"
        )
