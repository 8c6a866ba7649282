"""Synthetic Sentinel-1 EW GRDM (HH/HV) scenes over sea ice, written as real SAFE products.

Real scenes cannot be downloaded here, so demos, tests and model benchmarks use scenes made by
:func:`generate_ew_grd_scene`. The product is a complete ``S1A_EW_GRDM_1SDH_..._XXXX.SAFE`` folder
(``manifest.safe``, uint16 measurement GeoTIFFs with GCPs, product / calibration / noise
annotation in the ESA schema) plus ground truth: a class raster (codes of
``tasks/domain/codelists/ice_classes.csv``, 0 = land), the chart polygons (GeoJSON) and land
polygons.

Physics (C-band; per-surface values, melt-season values and their sources in
``sea_ice_backscatter.csv``; typical ranges in GENERATORS.md):

* ice and land: sigma0 per surface at 35 deg incidence for HH and HV with a linear dB-per-degree
  incidence slope (about -0.25 dB/deg HH and -0.16 dB/deg HV over first-year ice: Makynen &
  Karvonen 2017, Sentinel-1 EW, Kara Sea), per-floe offsets and sub-floe texture whose strength
  varies from region to region (all scaled by ``difficulty``) so that young and level first-year
  ice overlap;
* open water from a wind field: a scene-mean 10 m wind drawn from a Weibull distribution (scale
  8 m/s, shape 2: mean about 7 m/s, a typical open-ocean range, not a fitted climatology), varied
  smoothly in speed (about +-20 %, within 0.5-25 m/s) and direction across the scene and
  sheltered in open leads;
  HH = CMOD5.n VV (Hersbach 2010) / the co-polarisation ratio of Thompson et al. (1998), so
  water is strongly angle dependent and, at moderate and high wind, as bright as young or
  first-year ice in HH (more so at near range); HV from the incidence- and direction-independent
  cross-pol relation of Vachon & Wolfe (2011), i.e. below or at the noise floor, which is what
  lets a good model still separate wind-roughened water from ice;
* thin new ice (dark nilas / grease, charted in the young / new-ice class): refrozen leads and
  about 30 % of young-ice floes at ``difficulty`` 1, dark and water-like in HH, very low in HV;
* melt season (``melt=True``, or by date: June-August in the Arctic): wet snow cuts penetration
  and volume scattering, ice HH / HV drop and the contrast between ice types shrinks (Zhang et
  al. 2021; Karlsen et al. 2024), values in the CSV's ``*_melt`` columns (typical ranges);
* marginal ice zone: brash / pancake ice mixed below the resolution with water (local ice share
  40-100 %); the sensor's impulse response (EW GRDM resolution about 93 x 87 m at 40 m
  spacing, a Gaussian of sigma 1 pixel) mixes backscatter across floe edges, leads and the ice
  edge over a few pixels, so patches at boundaries straddle classes in the image as they do in
  real data (not at ``difficulty`` 0, which keeps class means, speckle and noise only);
* incidence angle 19-47 deg across range (near range at sample 0), 5 sub-swaths EW1..EW5;
* multiplicative gamma speckle in intensity with ``enl`` looks;
* thermal noise: noise-equivalent sigma0 about -22 to -28 dB, scalloped within each sub-swath,
  described exactly by the noise range/azimuth vectors of the annotation; the noise power (itself
  gamma distributed) is added to DN^2 before quantisation, so noise removal really removes it;
* DN = round(sqrt(A_sigma^2 * sigma0 * speckle + noise)), with A_sigma the sigmaNought LUT
  (A_beta / sqrt(sin(incidence)), A_beta = 474 as in real products), so calibration inverts it;
* shapes: a fractal coastline, an ice edge with a marginal (brash / pancake) zone, Voronoi floes
  with domain-warped irregular outlines (about 1.2-2.8 km; a third of them broken into fragments
  a third that size, so floe sizes span about 0.4-3 km), open and refrozen leads along floe and
  fragment borders, brighter rubble along floe edges.

Measured on generated winter scenes (noise removed, 3x3 boxcar), sea pixels give HH about
-16 +- 6 dB and HV about -26 +- 5 dB, near the AI4Arctic dataset-wide -14.5 +- 5.7 / -24.7 +- 4.8
dB quoted in GENERATORS.md.

Geometry: the image is a curved swath (:mod:`tasks.sentinel1.swath_geometry`: orbit track,
zero-Doppler ground range, Earth rotation), not an affine image of a map grid. The surface (land,
floes, leads, texture) is a field on a 40 m EPSG:3413 grid, the grid harmonise will produce (the
tie points' bounding box, :func:`tasks.sentinel1.geocode.map_grid`); each image pixel samples it
at its true position, and the truth raster holds it on that grid, so a test can measure where
harmonise places each pixel (:meth:`GeneratedScene.true_map_position`). Work is done in blocks of
lines (memory stays bounded for 10,000 x 10,000 scenes). Everything is deterministic for a given
seed.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from tasks.sentinel1.geocode import interpolate_lattice, map_grid
from tasks.sentinel1.lut import (
    AzimuthBlock,
    RangeVectors,
    interpolate_azimuth_blocks,
    interpolate_range_vectors,
)
from tasks.sentinel1.safe_writer import (
    ProductHeader,
    write_calibration,
    write_noise,
    write_product_annotation,
    write_safe_manifest,
)
from tasks.sentinel1.swath_geometry import SwathGeometry, place_swath

log = logging.getLogger(__name__)

CRS = "EPSG:3413"
PIXEL_SPACING_M = 40.0
INCIDENCE_NEAR_DEG = 19.0
INCIDENCE_FAR_DEG = 47.0
BETA_NOUGHT_LUT = 474.0
#: width fractions of the EW sub-swaths across range (EW1 is the widest)
SUBSWATH_FRACTIONS = (0.235, 0.2, 0.195, 0.19, 0.18)
#: noise-equivalent sigma0 (dB) at the centre of each sub-swath, HV; HH is 0.5 dB lower
NESZ_CENTRE_DB = (-25.0, -25.8, -26.3, -26.8, -27.3)
NESZ_SCALLOP_DB = 3.0
AZIMUTH_TIME_INTERVAL_S = PIXEL_SPACING_M / 6800.0  # ground speed ~6.8 km/s
SATELLITE_HEIGHT_M = 693_000.0
POLARISATIONS = ("HH", "HV")


#: CMOD5.n coefficients c1..c28 (Hersbach 2010, ECMWF Tech. Memo. 615, equivalent neutral wind)
CMOD5N_COEFFICIENTS = (
    -0.6878, -0.7957, 0.3380, -0.1728, 0.0000, 0.0040, 0.1103, 0.0159, 6.7329, 2.7713,
    -2.2885, 0.4971, -0.7250, 0.0450, 0.0066, 0.3222, 0.0120, 22.7000, 2.0813, 3.0000,
    8.3659, -3.3428, 1.3236, 6.2437, 2.3893, 0.3249, 4.1590, 1.6930,
)
#: co-polarisation ratio VV/HH = (1 + 2 tan^2)^2 / (1 + alpha tan^2)^2 (Thompson et al. 1998)
COPOL_RATIO_ALPHA = 0.6
#: cross-pol ocean backscatter (dB) = slope * U10 + offset (Vachon & Wolfe 2011, RADARSAT-2;
#: independent of incidence and wind direction)
CROSSPOL_DB_PER_MS = 0.580
CROSSPOL_OFFSET_DB = -35.652
#: Weibull scale (m/s) and shape of the scene-mean 10 m wind over open Arctic water (mean about
#: 7 m/s; a typical range, not fitted to a climatology)
WIND_WEIBULL_SCALE_MS = 8.0
WIND_WEIBULL_SHAPE = 2.0
#: Arctic melt season (months) used when ``melt`` is not given: wet snow on the ice
MELT_MONTHS_NORTH = (6, 7, 8)
MELT_MONTHS_SOUTH = (12, 1, 2)
#: half-power width of the EW GRDM impulse response in pixels: about 93 x 87 m resolution at
#: 40 m spacing (Sentinel-1 product specification), a Gaussian of sigma ~1 pixel
PSF_SIGMA_PX = 1.0
PSF_HALO = 3
#: share of floes broken into fragments of a third of their size (floe-size distribution)
BROKEN_FLOE_SHARE = 0.35


def cmod5n_vv(
    wind_speed: np.ndarray, wind_direction_deg: np.ndarray, incidence_deg: np.ndarray
) -> np.ndarray:
    """C-band VV sigma0 (linear) of the sea surface by CMOD5.n.

    Args:
        wind_speed: 10 m wind speed (m/s, >= 0).
        wind_direction_deg: wind direction relative to the radar look direction (0 = upwind).
        incidence_deg: incidence angle (degrees, valid about 18-58).

    Returns:
        sigma0 VV (linear, float32) of the broadcast shape.

    """
    c = (0.0, *CMOD5N_COEFFICIENTS)  # c[1]..c[28] as in the publication
    v = np.maximum(np.asarray(wind_speed, dtype=np.float32), 0.05)
    x = (np.asarray(incidence_deg, dtype=np.float32) - 40.0) / 25.0
    xx = x * x
    a0 = c[1] + c[2] * x + c[3] * xx + c[4] * x * xx
    a1 = c[5] + c[6] * x
    a2 = c[7] + c[8] * x
    gamma = c[9] + c[10] * x + c[11] * xx
    s0 = c[12] + c[13] * x
    s = a2 * v
    a3 = 1.0 / (1.0 + np.exp(-np.maximum(s, s0)))
    a3 = np.where(s < s0, a3 * (s / s0) ** (s0 * (1.0 - a3)), a3)
    b0 = a3**gamma * 10.0 ** (a0 + a1 * v)
    b1 = c[15] * v * (0.5 + x - np.tanh(4.0 * (x + c[16] + c[17] * v)))
    b1 = (c[14] * (1.0 + x) - b1) / (np.exp(0.34 * (v - c[18])) + 1.0)
    v0 = c[21] + c[22] * x + c[23] * xx
    d1 = c[24] + c[25] * x + c[26] * xx
    d2 = c[27] + c[28] * x
    y0, pn = c[19], c[20]
    a = y0 - (y0 - 1.0) / pn
    b = 1.0 / (pn * (y0 - 1.0) ** (pn - 1.0))
    v2 = v / v0 + 1.0
    v2 = np.where(v2 < y0, a + b * np.maximum(v2 - 1.0, 0.0) ** pn, v2)
    b2 = (-d1 + d2 * v2) * np.exp(-v2)
    cos_phi = np.cos(np.radians(np.asarray(wind_direction_deg, dtype=np.float32)))
    harmonics = np.maximum(1.0 + b1 * cos_phi + b2 * (2.0 * cos_phi * cos_phi - 1.0), 1e-6)
    return np.asarray(b0 * harmonics**1.6, dtype=np.float32)


def water_sigma0_db(
    pol: str, wind_speed: np.ndarray, wind_direction_deg: np.ndarray, incidence_deg: np.ndarray
) -> np.ndarray:
    """Open-water sigma0 (dB) for ``HH`` or ``HV`` from the wind (no speckle, no noise).

    HH is CMOD5.n VV divided by the co-polarisation ratio of Thompson et al. (1998, alpha 0.6);
    HV is the incidence- and direction-independent cross-pol relation of Vachon & Wolfe (2011).
    Wind speed in m/s, angles in degrees; see :func:`cmod5n_vv`.
    """
    if pol == "HV":
        speed = np.asarray(wind_speed, dtype=np.float32)
        return (CROSSPOL_DB_PER_MS * speed + CROSSPOL_OFFSET_DB).astype(np.float32)
    if pol != "HH":
        raise ValueError(f"water_sigma0_db: polarisation {pol!r} not modelled; use 'HH' or 'HV'")
    tan2 = np.tan(np.radians(np.asarray(incidence_deg, dtype=np.float32))) ** 2
    ratio = (1.0 + 2.0 * tan2) ** 2 / (1.0 + COPOL_RATIO_ALPHA * tan2) ** 2
    vv = cmod5n_vv(wind_speed, wind_direction_deg, incidence_deg)
    return (10.0 * np.log10(vv / ratio)).astype(np.float32)


def is_melt_season(start_time: dt.datetime, latitude: float) -> bool:
    """Return whether ``start_time`` is in the melt season (June-August north, Dec-Feb south)."""
    months = MELT_MONTHS_NORTH if latitude >= 0 else MELT_MONTHS_SOUTH
    return start_time.month in months


@dataclass(frozen=True)
class SurfaceBackscatter:
    """Backscatter model of one surface type (row of ``sea_ice_backscatter.csv``)."""

    surface: str
    ice_class_code: int
    hh_db_35: float
    hv_db_35: float
    hh_slope_db_per_deg: float
    hv_slope_db_per_deg: float
    floe_std_db: float
    texture_std_db: float
    hh_db_35_melt: float
    hv_db_35_melt: float

    def db_35(self, pol: str, melt: bool) -> float:
        """sigma0 (dB) at 35 deg of ``pol`` (``HH`` / ``HV``), melt-season value if ``melt``."""
        p = pol.lower()
        return float(getattr(self, f"{p}_db_35_melt" if melt else f"{p}_db_35"))

    def slope(self, pol: str) -> float:
        """Incidence slope (dB per degree) of ``pol``."""
        return float(getattr(self, f"{pol.lower()}_slope_db_per_deg"))


@cache
def surface_backscatter() -> dict[str, SurfaceBackscatter]:
    """Return the surface backscatter table keyed by surface name."""
    path = Path(__file__).with_name("sea_ice_backscatter.csv")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {
        r["surface"]: SurfaceBackscatter(
            surface=r["surface"],
            ice_class_code=int(r["ice_class_code"]),
            hh_db_35=float(r["hh_db_35"]),
            hv_db_35=float(r["hv_db_35"]),
            hh_slope_db_per_deg=float(r["hh_slope_db_per_deg"]),
            hv_slope_db_per_deg=float(r["hv_slope_db_per_deg"]),
            floe_std_db=float(r["floe_std_db"]),
            texture_std_db=float(r["texture_std_db"]),
            hh_db_35_melt=float(r["hh_db_35_melt"]),
            hv_db_35_melt=float(r["hv_db_35_melt"]),
        )
        for r in rows
    }


@dataclass(frozen=True)
class GeneratedScene:
    """Paths and facts of one generated scene.

    Attributes:
        safe_path: the ``.SAFE`` product folder.
        truth_raster_path: uint8 GeoTIFF on the map grid (EPSG:3413, ``grid_shape``, ``transform``),
            ice class codes, 0 = land.
        chart_path: GeoJSON FeatureCollection (EPSG:3413, ``crs`` member) of class polygons with
            properties ``ice_class`` (code) and ``ice_class_name``.
        land_mask_path: GeoJSON polygons of land (EPSG:3413).
        shape: image ``(lines, samples)``.
        transform: GDAL geotransform of the map grid in ``crs``.
        class_fractions: share of image pixels per class name (``land`` included).
        grid_shape: ``(height, width)`` of the map grid.
        geometry: the swath geometry (true position of every image pixel).
        conditions: ``melt``, scene-mean ``wind_speed_ms``, ``wind_direction_deg`` (relative to
            the look direction) and ``difficulty``.

    """

    scene_id: str
    safe_path: Path
    truth_raster_path: Path
    chart_path: Path
    land_mask_path: Path
    start_time: dt.datetime
    stop_time: dt.datetime
    shape: tuple[int, int]
    crs: str
    transform: tuple[float, float, float, float, float, float]
    class_fractions: dict[str, float] = field(default_factory=dict)
    grid_shape: tuple[int, int] = (0, 0)
    geometry: SwathGeometry | None = None
    conditions: dict[str, Any] = field(default_factory=dict)

    def true_map_position(
        self, line: np.ndarray, pixel: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the true ``crs`` metres of image ``(line, pixel)`` (the generator's swath)."""
        from pyproj import Transformer

        if self.geometry is None:
            raise ValueError(f"{self.scene_id}: no swath geometry recorded")
        lon, lat = self.geometry.lonlat(line, pixel)
        x, y = Transformer.from_crs("EPSG:4326", self.crs, always_xy=True).transform(lon, lat)
        return np.asarray(x), np.asarray(y)

    def truth_in_image(self) -> np.ndarray:
        """Return the truth class codes (uint8, ``shape``) in image geometry.

        The map-grid truth raster read at each image pixel's true position (nearest grid pixel);
        reads the whole image: for tests and small scenes.
        """
        import rasterio

        line, pixel = np.meshgrid(
            np.arange(self.shape[0]), np.arange(self.shape[1]), indexing="ij"
        )
        x, y = self.true_map_position(line, pixel)
        with rasterio.open(self.truth_raster_path) as src:
            truth = src.read(1)
            col, row = ~src.transform * (x, y)
        row = np.clip(np.floor(row).astype(int), 0, truth.shape[0] - 1)
        col = np.clip(np.floor(col).astype(int), 0, truth.shape[1] - 1)
        return truth[row, col]


class _ValueNoise:
    """Fractal value noise: a weighted sum of smoothly interpolated random lattices.

    ``scales`` are lattice spacings in pixels; the field has about zero mean and unit variance.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        shape: tuple[int, int],
        scales: Sequence[float],
        persistence: float = 0.65,
    ) -> None:
        weights = np.array([persistence**k for k in range(len(scales))], dtype=np.float64)
        weights /= np.sqrt(np.sum(weights**2))
        self.octaves = []
        for scale, weight in zip(scales, weights, strict=True):
            scale = max(float(scale), 1.0)
            lattice = rng.standard_normal(
                (int(shape[0] / scale) + 4, int(shape[1] / scale) + 4)
            ).astype(np.float32)
            # (value, right neighbour) pairs: one gather per lattice row in the 2-D path
            pairs = (lattice[:, :-1] + 1j * lattice[:, 1:]).astype(np.complex64).ravel()
            self.octaves.append((scale, lattice, np.float32(weight * 1.9), pairs))

    def __call__(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Evaluate at pixel coordinates (broadcastable float arrays).

        ``rows`` of shape (R, 1) and ``cols`` of shape (1, C) take a fast separable path.
        """
        separable = rows.ndim == 2 and cols.ndim == 2 and rows.shape[1] == 1 and cols.shape[0] == 1
        out = None
        for scale, lattice, weight, pairs in self.octaves:
            r = np.clip(rows / scale + 1.0, 0, lattice.shape[0] - 2.001).astype(np.float32)
            c = np.clip(cols / scale + 1.0, 0, lattice.shape[1] - 2.001).astype(np.float32)
            i = r.astype(np.int32)
            j = c.astype(np.int32)
            fr = r - i
            fc = c - j
            fr = fr * fr * (3 - 2 * fr)
            fc = fc * fc * (3 - 2 * fc)
            if separable:
                i0 = int(i.min())
                i1 = int(i.max()) + 2
                sub = lattice[i0:i1]
                jj = j[0]
                along = sub[:, jj] * (1 - fc[0]) + sub[:, jj + 1] * fc[0]
                ii = i[:, 0] - i0
                value = along[ii] * (1 - fr) + along[ii + 1] * fr
            else:
                n = lattice.shape[1] - 1
                k = i * n + j
                gc = 1 - fc
                upper = pairs.take(k)
                top = upper.real * gc + upper.imag * fc
                del upper
                lower = pairs.take(k + n)
                bottom = lower.real * gc + lower.imag * fc
                del lower
                value = top * (1 - fr) + bottom * fr
            value *= weight
            out = value if out is None else out + value
        assert out is not None  # at least one octave
        return out.astype(np.float32, copy=False)


class _Floes:
    """Voronoi floes on domain-warped coordinates (jittered-grid Worley noise)."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int], cell_px: float) -> None:
        self.cell = float(cell_px)
        n = (int(shape[0] / cell_px) + 6, int(shape[1] / cell_px) + 6)
        ii, jj = np.meshgrid(np.arange(n[0]), np.arange(n[1]), indexing="ij")
        self.seed_r = ((ii - 3 + rng.uniform(0.1, 0.9, n)) * cell_px).astype(np.float32).ravel()
        self.seed_c = ((jj - 3 + rng.uniform(0.1, 0.9, n)) * cell_px).astype(np.float32).ravel()
        self.warp_r = _ValueNoise(rng, shape, [cell_px * 1.5, cell_px * 0.6, cell_px * 0.25])
        self.warp_c = _ValueNoise(rng, shape, [cell_px * 1.5, cell_px * 0.6, cell_px * 0.25])
        self.n_cells = n

    def __call__(
        self, rows: np.ndarray, cols: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (cell row index, cell col index, border distance in px) per pixel."""
        amp = 0.3 * self.cell
        wr = rows + amp * self.warp_r(rows, cols)
        wc = cols + amp * self.warp_c(rows, cols)
        gi = np.floor(wr / self.cell).astype(np.int32) + 3
        gj = np.floor(wc / self.cell).astype(np.int32) + 3
        d1 = np.full(wr.shape, np.inf, dtype=np.float32)
        d2 = np.full(wr.shape, np.inf, dtype=np.float32)
        best_i = np.zeros(wr.shape, dtype=np.int32)
        best_j = np.zeros(wr.shape, dtype=np.int32)
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                ii = np.clip(gi + di, 0, self.n_cells[0] - 1)
                jj = np.clip(gj + dj, 0, self.n_cells[1] - 1)
                k = ii * self.n_cells[1] + jj
                d = np.hypot(wr - self.seed_r.take(k), wc - self.seed_c.take(k))
                closer = d < d1
                d2 = np.where(closer, d1, np.minimum(d2, d))
                d1 = np.where(closer, d, d1)
                best_i = np.where(closer, ii, best_i)
                best_j = np.where(closer, jj, best_j)
        return best_i, best_j, (d2 - d1) * 0.5


def _incidence_profile(u: np.ndarray) -> np.ndarray:
    """Incidence angle (deg) at relative range position ``u`` in [0, 1] (19 -> 47 deg)."""
    return INCIDENCE_NEAR_DEG + (INCIDENCE_FAR_DEG - INCIDENCE_NEAR_DEG) * (1.12 * u - 0.12 * u**2)


def _subswath_bounds(samples: int) -> list[tuple[str, int, int]]:
    edges = np.round(np.cumsum((0.0, *SUBSWATH_FRACTIONS)) * samples).astype(int)
    edges[-1] = samples
    return [(f"EW{k + 1}", int(edges[k]), int(edges[k + 1] - 1)) for k in range(5)]


def _noise_vectors(
    rng: np.random.Generator, lines: int, samples: int, sigma_lut: RangeVectors, pol: str
) -> tuple[RangeVectors, list[AzimuthBlock]]:
    """Noise range vectors (DN^2) and azimuth blocks of one polarisation."""
    bounds = _subswath_bounds(samples)
    offset_db = -0.5 if pol == "HH" else 0.0
    vec_lines = sigma_lut.lines
    pixels = []
    nesz_db = []
    for k, (_, first, last) in enumerate(bounds):
        n = int(np.clip((last - first) // 20 + 2, 6, 200))
        p = np.unique(np.round(np.linspace(first, last, n)).astype(int))
        u = (p - first) / max(last - first, 1)
        pixels.append(p)
        nesz_db.append(NESZ_CENTRE_DB[k] + offset_db + NESZ_SCALLOP_DB * (2 * u - 1) ** 2)
    pix = np.concatenate(pixels).astype(np.float64)
    nesz = 10 ** (np.concatenate(nesz_db) / 10)
    phase = rng.uniform(0, 2 * np.pi)
    values = []
    for line in vec_lines:
        a_sigma = interpolate_range_vectors(sigma_lut, np.array([line]), pix)[0].astype(np.float64)
        drift = 1.0 + 0.03 * math.sin(2 * math.pi * line / max(lines, 1) * 1.3 + phase)
        values.append(nesz * a_sigma**2 * drift)
    range_vectors = RangeVectors(vec_lines, tuple(pix for _ in vec_lines), tuple(values))
    blocks = []
    az_lines = np.unique(np.round(np.linspace(0, lines - 1, int(np.clip(lines // 10, 2, 1000)))))
    for swath, first, last in bounds:
        ph = rng.uniform(0, 2 * np.pi)
        lut = 1.0 + 0.04 * np.sin(2 * np.pi * az_lines / (0.7 * max(lines, 2)) + ph)
        blocks.append(AzimuthBlock(swath, 0, lines - 1, first, last, az_lines, lut))
    return range_vectors, blocks


def _calibration_luts(lines: int, samples: int) -> dict[str, RangeVectors]:
    n_lines = int(np.clip(lines // 150 + 2, 3, 80))
    vec_lines = np.unique(np.round(np.linspace(0, lines - 1, n_lines)).astype(int))
    pix = np.unique(np.round(np.linspace(0, samples - 1, int(np.clip(samples // 40 + 2, 10, 300)))))
    theta = np.radians(_incidence_profile(pix / max(samples - 1, 1)))
    per_line = {
        "sigmaNought": BETA_NOUGHT_LUT / np.sqrt(np.sin(theta)),
        "betaNought": np.full(pix.size, BETA_NOUGHT_LUT),
        "gamma": BETA_NOUGHT_LUT / np.sqrt(np.tan(theta)),
        "dn": np.full(pix.size, BETA_NOUGHT_LUT * 0.8473),
    }
    return {
        name: RangeVectors(
            vec_lines,
            tuple(pix.astype(np.float64) for _ in vec_lines),
            tuple(values.astype(np.float64) for _ in vec_lines),
        )
        for name, values in per_line.items()
    }


def _product_name(
    mission: str, start: dt.datetime, stop: dt.datetime, orbit: int, datatake: int, seed: int
) -> str:
    crc = int(hashlib.sha256(f"{seed}-{start.isoformat()}".encode()).hexdigest()[:4], 16)
    return (
        f"{mission}_EW_GRDM_1SDH_{start:%Y%m%dT%H%M%S}_{stop:%Y%m%dT%H%M%S}_"
        f"{orbit:06d}_{datatake:06X}_{crc:04X}"
    )


def _absolute_orbit(mission: str, start: dt.datetime) -> int:
    """Absolute orbit from the time since launch (175 orbits per 12-day cycle)."""
    launch = (
        dt.datetime(2014, 4, 3, tzinfo=dt.UTC)
        if mission == "S1A"
        else dt.datetime(2016, 4, 25, tzinfo=dt.UTC)
    )
    return max(1, int((start - launch).total_seconds() / (12 * 86400 / 175)) + 1)


def _vectorise(
    raster: np.ndarray, transform: object, skip: int | None
) -> list[tuple[int, dict[str, Any]]]:
    from rasterio import features

    mask = raster != skip if skip is not None else None
    return [
        (int(value), geom)
        for geom, value in features.shapes(raster, mask=mask, transform=transform, connectivity=4)
    ]


def _write_geojson(path: Path, name: str, features: list[dict]) -> Path:
    payload = {
        "type": "FeatureCollection",
        "name": name,
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3413"}},
        "features": features,
    }
    path.write_text(json.dumps(payload, separators=(",", ":")))
    return path


@dataclass(frozen=True)
class _SceneGrid:
    """Where the image pixels of one scene lie: swath, annotation tie-point grid and map grid."""

    lines: int
    samples: int
    swath: SwathGeometry
    to_polar: Any  # pyproj Transformer, WGS84 -> EPSG:3413
    grid_lines: np.ndarray
    grid_pixels: np.ndarray
    geolocation: dict[str, np.ndarray]
    transform: Any  # affine.Affine of the map grid
    grid_shape: tuple[int, int]

    def map_position(self, rows_1d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fractional map-grid (row, col) of image pixels on ``rows_1d`` x all samples.

        Exact every 8 lines / pixels, bilinear in between (the swath bends by far less than a
        millimetre over 8 pixels).
        """
        transform = self.transform
        rows_f = rows_1d.astype(np.float64)
        cols_f = np.arange(self.samples, dtype=np.float64)
        lattice_r = np.unique(np.append(rows_f[::8], rows_f[-1]))
        lattice_c = np.unique(np.append(cols_f[::8], cols_f[-1]))
        lon, lat = self.swath.lonlat(lattice_r[:, None], lattice_c[None, :])
        x, y = self.to_polar.transform(lon, lat)
        col = (np.asarray(x) - transform.c) / transform.a - 0.5
        row = (np.asarray(y) - transform.f) / transform.e - 0.5
        return (
            interpolate_lattice(row, lattice_r, lattice_c, rows_f, cols_f).astype(np.float32),
            interpolate_lattice(col, lattice_r, lattice_c, rows_f, cols_f).astype(np.float32),
        )

    def incidence_vectors(self) -> RangeVectors:
        """Incidence angle (degrees) at the tie-point grid, as range vectors per grid line."""
        return RangeVectors(
            self.grid_lines.astype(np.float64),
            tuple(self.grid_pixels.astype(np.float64) for _ in self.grid_lines),
            tuple(
                _incidence_profile(self.grid_pixels / max(self.samples - 1, 1))
                for _ in self.grid_lines
            ),
        )


def _scene_grid(swath: SwathGeometry, lines: int, samples: int) -> _SceneGrid:
    """Tie-point grid (as annotated, 15 decimals) and the EPSG:3413 map grid derived from it."""
    from pyproj import Transformer

    to_polar = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    grid_lines = np.unique(np.round(np.linspace(0, lines - 1, min(10, lines))).astype(int))
    grid_pixels = np.unique(np.round(np.linspace(0, samples - 1, 21)).astype(int))
    gl, gp = np.meshgrid(grid_lines, grid_pixels, indexing="ij")
    glon, glat = swath.lonlat(gl.ravel(), gp.ravel())
    # what the annotation holds (15 decimals): the map grid is derived from these exact numbers,
    # as harmonise derives it from the annotation it reads
    glon = np.array([float(f"{v:.15e}") for v in glon])
    glat = np.array([float(f"{v:.15e}") for v in glat])
    incidence_grid = _incidence_profile(gp.ravel() / max(samples - 1, 1))
    elevation = np.degrees(
        np.arcsin(np.sin(np.radians(incidence_grid)) * 6371.0 / (6371.0 + 693.0))
    )
    geolocation = {
        "line": gl.ravel().astype(np.float64),
        "pixel": gp.ravel().astype(np.float64),
        "latitude": glat,
        "longitude": glon,
        "height": np.zeros(gl.size),
        "incidence_angle": incidence_grid,
        "elevation_angle": elevation,
        "slant_range_time": 2 * SATELLITE_HEIGHT_M / np.cos(np.radians(elevation)) / 299_792_458.0,
    }
    tie_x, tie_y = to_polar.transform(glon, glat)
    transform, grid_shape = map_grid(np.asarray(tie_x), np.asarray(tie_y), PIXEL_SPACING_M)
    return _SceneGrid(
        lines, samples, swath, to_polar, grid_lines, grid_pixels, geolocation, transform, grid_shape
    )


@dataclass(frozen=True)
class _Conditions:
    """Weather and season of one scene: wind over open water, wet snow, thin ice, texture.

    ``wind_speed_ms`` is the scene-mean 10 m wind (Weibull drawn), varied in space by
    ``wind_field`` (about +-20 % at difficulty 1, within 0.5-25 m/s); ``wind_direction_deg`` is
    relative to the radar look direction and turns by up to ~40 deg across the scene
    (``direction_field``). ``nilas_floe`` flags young-ice floes that are thin new ice (dark
    nilas), ``texture_gain`` is a smooth field that makes the sub-floe texture stronger in some
    regions than in others and ``miz_ice`` the sub-resolution ice concentration of the marginal
    (brash / pancake) zone.
    """

    melt: bool
    wind_speed_ms: float
    wind_direction_deg: float
    wind_variability: float
    direction_field: _ValueNoise
    texture_gain: _ValueNoise
    miz_ice: _ValueNoise
    nilas_floe: np.ndarray
    nilas_in_leads: bool

    def wind_speed(self, wind_field: np.ndarray, lead_open: np.ndarray) -> np.ndarray:
        """10 m wind speed (m/s) from the unit-variance wind field; sheltered in open leads."""
        speed = np.clip(self.wind_speed_ms * np.exp(self.wind_variability * wind_field), 0.5, 25.0)
        return np.where(lead_open, 0.3 * speed, speed).astype(np.float32)


def _draw_conditions(
    rng: np.random.Generator,
    surface: _Surface,
    difficulty: float,
    melt: bool,
) -> _Conditions:
    """Draw the scene's wind, thin-ice share and texture fields (after every older draw)."""
    world = surface.grid_shape
    size = surface.size
    # the scene-mean wind: the older N(0, 0.8) draw of _draw_surface mapped to Weibull(2, 8)
    z = (surface.wind_bias - 0.3 * difficulty) / 0.8
    u = 0.5 * math.erfc(-z / math.sqrt(2.0))
    wind = WIND_WEIBULL_SCALE_MS * (-math.log(max(1.0 - u, 1e-12))) ** (1.0 / WIND_WEIBULL_SHAPE)
    wind *= 1.0 + 0.15 * max(difficulty - 1.0, 0.0)
    direction = float(rng.uniform(0.0, 360.0))
    direction_field = _ValueNoise(rng, world, [size / 2, size / 5])
    texture_gain = _ValueNoise(rng, world, [size / 4, size / 10, 40.0])
    miz_ice = _ValueNoise(rng, world, [12.0, 5.0, 2.0], persistence=0.8)
    nilas_share = 0.3 * min(difficulty, 1.0)
    nilas_floe = rng.random(surface.floes.n_cells) < nilas_share
    return _Conditions(
        melt=melt,
        wind_speed_ms=float(np.clip(wind, 0.5, 25.0)),
        wind_direction_deg=direction,
        wind_variability=0.2 * min(difficulty, 1.0),
        direction_field=direction_field,
        texture_gain=texture_gain,
        miz_ice=miz_ice,
        nilas_floe=nilas_floe,
        nilas_in_leads=difficulty > 0,
    )


@dataclass
class _Surface:
    """The surface (land, ice classes, water, wind) as fields on the map grid, in its pixel units.

    The image samples it where its curved geometry puts each pixel, the truth raster on the grid.
    Thresholds are set by :func:`_set_class_shares` from the imaged area.
    """

    grid_shape: tuple[int, int]
    size: float
    land_field: _ValueNoise
    conc_field: _ValueNoise
    wind_field: _ValueNoise
    lead_field: _ValueNoise
    texture: dict[str, _ValueNoise]
    floes: _Floes
    type_score: np.ndarray
    floe_offset: dict[str, np.ndarray]
    land_angle: float
    ice_angle: float
    wind_bias: float
    floe_code: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.uint8))
    land_threshold: float = np.inf
    water_threshold: float = -np.inf
    miz_threshold: float = -np.inf
    conditions: _Conditions | None = None
    fragments: _Floes | None = None
    broken: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))

    def ramp(self, rows: np.ndarray, cols: np.ndarray, angle: float) -> np.ndarray:
        """Large-scale gradient across the grid in direction ``angle`` (radians)."""
        grid_h, grid_w = self.grid_shape
        return (
            ((rows - grid_h / 2) * math.sin(angle) + (cols - grid_w / 2) * math.cos(angle))
            / self.size
            * 3.0
        ).astype(np.float32)

    def _fragment_borders(
        self, rows: np.ndarray, cols: np.ndarray, fi: np.ndarray, fj: np.ndarray,
        border: np.ndarray,
    ) -> np.ndarray:
        """Border distance including the cracks of broken floes (a third of the floe size).

        Broken floes are split into fragments by a finer Voronoi tessellation, so floe sizes
        span about 0.4-3 km and rubble, cracks and refrozen leads also run inside big floes.
        """
        if self.fragments is None:
            return border
        broken = self.broken[fi, fj]
        if not broken.any():
            return border
        r = np.broadcast_to(rows, broken.shape)[broken]
        c = np.broadcast_to(cols, broken.shape)[broken]
        _, _, inner = self.fragments(r, c)
        border = border.copy()
        border[broken] = np.minimum(border[broken], inner)
        return border

    def __call__(self, rows: np.ndarray, cols: np.ndarray) -> dict[str, np.ndarray]:
        """Class code and surface fields at map-grid positions ``(rows, cols)`` (broadcast)."""
        land = (
            self.land_field(rows, cols) + self.ramp(rows, cols, self.land_angle)
        ) > self.land_threshold
        conc = self.conc_field(rows, cols) + self.ramp(rows, cols, self.ice_angle)
        open_water = conc < self.water_threshold
        miz = ~open_water & (conc < self.miz_threshold)
        fi, fj, border = self.floes(rows, cols)
        border = self._fragment_borders(rows, cols, fi, fj, border)
        code = self.floe_code[fi, fj].copy()
        leads = self.lead_field(rows, cols)
        pack = ~open_water & ~miz
        lead_open = pack & (border < 1.6) & (leads > 0.9)
        lead_refrozen = pack & (border < 2.2) & (leads > 0.45) & ~lead_open
        code[miz] = 2
        code[lead_refrozen] = 3
        code[open_water | lead_open] = 1
        code[land] = 0
        return {"code": code, "fi": fi, "fj": fj, "border": border, "lead_open": lead_open,
                "lead_refrozen": lead_refrozen & ~land}


def _draw_surface(
    rng: np.random.Generator, grid_shape: tuple[int, int], size: float, difficulty: float
) -> _Surface:
    """Draw the random fields of the surface (thresholds not set yet)."""
    world = grid_shape
    big = [size / 1.5, size / 3, size / 6, size / 12, size / 24, 12.0, 5.0]
    land_field = _ValueNoise(rng, world, big)
    conc_field = _ValueNoise(rng, world, big[:6])
    wind_field = _ValueNoise(rng, world, [size / 2, size / 5, size / 12, 20.0])
    lead_field = _ValueNoise(rng, world, [size / 3, size / 8, 30.0])
    texture_hh = _ValueNoise(rng, world, [24.0, 10.0, 4.0, 2.0], persistence=0.8)
    texture_hv = _ValueNoise(rng, world, [24.0, 10.0, 4.0, 2.0], persistence=0.8)
    floe_px = float(rng.uniform(30, 70)) if size >= 400 else float(np.clip(size / 6, 16, 70))
    floes = _Floes(rng, world, floe_px)
    regime = _ValueNoise(rng, floes.n_cells, [floes.n_cells[0] / 3 + 1, 4.0, 2.0])
    ci, cj = np.meshgrid(np.arange(floes.n_cells[0]), np.arange(floes.n_cells[1]), indexing="ij")
    type_score = 0.8 * regime(
        ci.astype(np.float32), cj.astype(np.float32)
    ) + 0.6 * rng.standard_normal(floes.n_cells).astype(np.float32)
    floe_offset_hh = rng.standard_normal(floes.n_cells).astype(np.float32)
    floe_offset_hv = (0.7 * floe_offset_hh + 0.71 * rng.standard_normal(floes.n_cells)).astype(
        np.float32
    )
    land_angle, ice_angle = rng.uniform(0, 2 * np.pi, 2)
    wind_bias = float(rng.normal(0.0, 0.8)) + 0.3 * difficulty
    return _Surface(
        grid_shape=grid_shape,
        size=size,
        land_field=land_field,
        conc_field=conc_field,
        wind_field=wind_field,
        lead_field=lead_field,
        texture={"HH": texture_hh, "HV": texture_hv},
        floes=floes,
        type_score=type_score,
        floe_offset={"HH": floe_offset_hh, "HV": floe_offset_hv},
        land_angle=land_angle,
        ice_angle=ice_angle,
        wind_bias=wind_bias,
    )


def _set_class_shares(
    surface: _Surface, rng: np.random.Generator, grid: _SceneGrid, land_fraction: float
) -> None:
    """Set the floe classes and the land / water / MIZ thresholds from shares of the imaged area."""
    lines, samples = grid.lines, grid.samples
    step = max(1, int(max(lines, samples) // 300))
    qr, qc = grid.map_position(np.arange(0, lines, step))  # thresholds: shares of the imaged area
    qr, qc = qr[:, ::step], qc[:, ::step]
    # pack ice of the imaged area: about 30 % young, 42 % level first-year, 28 % deformed
    q_fi, q_fj, _ = surface.floes(qr, qc)
    type_score = surface.type_score
    young_max, level_max = np.quantile(type_score[q_fi, q_fj], [0.30, 0.72])
    surface.floe_code = np.where(
        type_score < young_max, 3, np.where(type_score < level_max, 4, 5)
    ).astype(np.uint8)
    land_q = surface.land_field(qr, qc) + surface.ramp(qr, qc, surface.land_angle)
    land_threshold = np.quantile(land_q, 1 - land_fraction) if land_fraction > 0 else np.inf
    conc_q = surface.conc_field(qr, qc) + surface.ramp(qr, qc, surface.ice_angle)
    sea_q = conc_q[land_q <= land_threshold] if land_fraction > 0 else conc_q.ravel()
    water_share = float(rng.uniform(0.15, 0.35))
    water_threshold = np.quantile(sea_q, water_share) if sea_q.size else -np.inf
    miz_threshold = (
        np.quantile(sea_q, min(water_share + float(rng.uniform(0.07, 0.12)), 0.95))
        if sea_q.size
        else -np.inf
    )
    surface.land_threshold = land_threshold
    surface.water_threshold = water_threshold
    surface.miz_threshold = miz_threshold


@dataclass(frozen=True)
class _Radiometry:
    """What turns surface classes into calibrated, speckled, noisy digital numbers."""

    table: dict[str, SurfaceBackscatter]
    difficulty: float
    enl: float
    incidence_vectors: RangeVectors
    luts: dict[str, RangeVectors]
    noise: dict[str, tuple[RangeVectors, list[AzimuthBlock]]]
    margin_noise: _ValueNoise
    nodata_cols: int


def _water_sigma_db(
    classes: dict[str, np.ndarray],
    rows: np.ndarray,
    cols: np.ndarray,
    incidence: np.ndarray,
    surface: _Surface,
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Open-water sigma0 (dB) per polarisation where water shows (water and the MIZ).

    Returns ``(mask, {pol: dB at mask}, wind speed at mask)``.
    """
    conditions = surface.conditions
    assert conditions is not None  # set by generate_ew_grd_scene
    code = classes["code"]
    sel = (code == 1) | (code == 2)
    r, c = rows[sel], cols[sel]
    speed = conditions.wind_speed(surface.wind_field(r, c), classes["lead_open"][sel])
    direction = conditions.wind_direction_deg + 40.0 * conditions.direction_field(r, c)
    theta = incidence[sel]
    water = {pol: water_sigma0_db(pol, speed, direction, theta) for pol in ("HH", "HV")}
    return sel, water, speed


def _sigma_db(
    pol: str,
    classes: dict[str, np.ndarray],
    rows: np.ndarray,
    cols: np.ndarray,
    incidence: np.ndarray,
    water: tuple[np.ndarray, dict[str, np.ndarray], np.ndarray],
    surface: _Surface,
    radiometry: _Radiometry,
) -> np.ndarray:
    """Noise-free sigma0 (dB) of one polarisation at the image pixels of a block.

    Ice and land: per-class value at 35 deg (melt-season value in melt) + incidence slope +
    per-floe offset + spatially varying texture; thin new ice (nilas) in the young class;
    water from the wind (:func:`water_sigma0_db`); the marginal ice zone is a sub-resolution
    mix of brash / pancake ice and water.
    """
    table = radiometry.table
    conditions = surface.conditions
    assert conditions is not None
    melt = conditions.melt
    code, fi, fj, border = classes["code"], classes["fi"], classes["fj"], classes["border"]
    tex, floe_offset = surface.texture[pol], surface.floe_offset[pol]
    base = np.zeros(code.shape, dtype=np.float32)
    slope = np.zeros(code.shape, dtype=np.float32)
    floe_std = np.zeros(code.shape, dtype=np.float32)
    tex_std = np.zeros(code.shape, dtype=np.float32)

    def assign(sel: np.ndarray, s: SurfaceBackscatter) -> None:
        base[sel] = s.db_35(pol, melt)
        slope[sel] = s.slope(pol)
        floe_std[sel] = s.floe_std_db
        tex_std[sel] = s.texture_std_db

    for surface_name in ("brash_pancake", "young", "level_first_year", "deformed", "land"):
        assign(code == table[surface_name].ice_class_code, table[surface_name])
    young = code == table["young"].ice_class_code
    nilas = young & np.where(
        classes["lead_refrozen"], conditions.nilas_in_leads, conditions.nilas_floe[fi, fj]
    )
    assign(nilas, table["nilas"])
    is_water = code == 1
    water_sel, water_db, speed = water
    calm, windy = table["calm_water"], table["windy_water"]
    calmness = np.clip((speed - 3.0) / 7.0, 0.0, 1.0)[is_water[water_sel]]
    base[is_water] = water_db[pol][is_water[water_sel]]
    tex_std[is_water] = calm.texture_std_db * (1 - calmness) + windy.texture_std_db * calmness
    floe_std[is_water] = 0.0
    rubble = (border < 1.2) & ((code == 4) | (code == 5))
    # regional texture strength: 0.5x .. 1.5x the class's texture (mean 1x)
    gain = 0.5 + 1.0 / (1.0 + np.exp(-1.5 * conditions.texture_gain(rows, cols)))
    sigma_db = (
        base
        + slope * (incidence - 35.0)
        + radiometry.difficulty
        * (floe_std * floe_offset[fi, fj] + gain * tex_std * tex(rows, cols))
        + np.where(rubble, (1.5 if melt else 3.0) if pol == "HH" else 2.5, 0.0)
    )
    if radiometry.difficulty > 0:  # marginal zone: pancakes and brash in water, below a pixel
        miz = code == 2
        miz_in_water = miz[water_sel]
        ice_share = np.clip(
            0.7 + 0.3 * conditions.miz_ice(rows[miz], cols[miz]), 0.25, 1.0
        ) ** min(radiometry.difficulty, 1.0)
        mixed = ice_share * 10 ** (sigma_db[miz] / 10) + (1 - ice_share) * 10 ** (
            water_db[pol][miz_in_water] / 10
        )
        sigma_db[miz] = 10 * np.log10(mixed)
    return sigma_db.astype(np.float32)


def _point_spread(sigma_db: np.ndarray) -> np.ndarray:
    """Blur sigma0 (dB in, linear out) with the sensor's impulse response (Gaussian, separable).

    Pixels at class boundaries (floe edges, ice edge, leads) become mixtures of both classes'
    backscatter over a few pixels, as in a real GRDM image whose resolution is coarser than its
    pixel spacing. Edges are padded with their own values.
    """
    k = np.arange(-PSF_HALO, PSF_HALO + 1, dtype=np.float32)
    weights = np.exp(-0.5 * (k / PSF_SIGMA_PX) ** 2)
    weights /= weights.sum()
    linear = np.power(10.0, sigma_db / 10.0, dtype=np.float32)
    padded = np.pad(linear, ((PSF_HALO, PSF_HALO), (0, 0)), mode="edge")
    along = sum(w * padded[i:i + linear.shape[0]] for i, w in enumerate(weights))
    padded = np.pad(along, ((0, 0), (PSF_HALO, PSF_HALO)), mode="edge")
    out = sum(w * padded[:, i:i + linear.shape[1]] for i, w in enumerate(weights))
    return np.asarray(out, dtype=np.float32)


def _digital_numbers(
    pol: str,
    sigma0: np.ndarray,
    rows_1d: np.ndarray,
    brng: np.random.Generator,
    radiometry: _Radiometry,
) -> np.ndarray:
    """Speckled, noisy DN (uint16) of one polarisation; the no-data margin at near range is 0."""
    samples = sigma0.shape[1]
    enl = radiometry.enl
    a_sigma = interpolate_range_vectors(
        radiometry.luts["sigmaNought"], rows_1d, np.arange(samples)
    )
    rv, blocks = radiometry.noise[pol]
    noise_power = interpolate_range_vectors(rv, rows_1d, np.arange(samples))
    noise_power *= interpolate_azimuth_blocks(blocks, rows_1d, np.arange(samples))
    speckle = brng.gamma(enl, 1.0 / enl, size=sigma0.shape).astype(np.float32)
    thermal = brng.gamma(enl, 1.0 / enl, size=sigma0.shape).astype(np.float32)
    dn2 = a_sigma**2 * sigma0 * speckle + noise_power * thermal
    dn = np.clip(np.rint(np.sqrt(dn2)), 1, 65535).astype(np.uint16)
    image_rows = rows_1d.astype(np.float32)[:, None]
    wobble = radiometry.margin_noise(image_rows, np.zeros_like(image_rows))
    margin = np.maximum(1, radiometry.nodata_cols + np.rint(1.5 * wobble))
    dn[np.arange(samples)[None, :] < margin] = 0
    return dn


#: threads computing blocks of the image and the truth raster (each block has its own random
#: stream, so the files are the same for any number of threads)
GENERATOR_THREADS = 2


def _in_order(compute: Any, blocks: Sequence[Any]) -> Any:
    """Yield ``compute(block)`` for each block in order, computed by a small thread pool.

    NumPy, pyproj and the random generators release the GIL on whole-block arrays, so two
    threads make blocks about twice as fast on two cores; at most two blocks wait to be written.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    if GENERATOR_THREADS <= 1 or len(blocks) <= 1:
        yield from map(compute, blocks)
        return
    with ThreadPoolExecutor(GENERATOR_THREADS, thread_name_prefix="s1gen") as pool:
        pending: list[Future[Any] | None] = [
            pool.submit(compute, b) for b in blocks[:GENERATOR_THREADS + 1]
        ]
        for k in range(len(blocks)):
            future = pending[k]
            assert future is not None
            result = future.result()
            pending[k] = None  # drop the finished block
            ahead = k + GENERATOR_THREADS + 1
            if ahead < len(blocks):
                pending.append(pool.submit(compute, blocks[ahead]))
            yield result


def _image_block(
    seed: int, grid: _SceneGrid, surface: _Surface, radiometry: _Radiometry,
    polarisations: Sequence[str], block: tuple[int, int, int],
) -> tuple[dict[str, np.ndarray], dict[int, int]]:
    """DN per polarisation and pixels per class code of image lines ``block[1]:block[2]``.

    The surface is evaluated on ``PSF_HALO`` extra lines either side so that the impulse
    response blurs across block borders exactly as inside a block.
    """
    number, r0, r1 = block
    samples = grid.samples
    e0, e1 = max(0, r0 - PSF_HALO), min(grid.lines, r1 + PSF_HALO)
    rows_ext = np.arange(e0, e1)
    brng = np.random.default_rng([seed, 2, number])
    rows, cols = grid.map_position(rows_ext)  # where the image pixels are on the map grid
    classes = surface(rows, cols)
    incidence = interpolate_range_vectors(
        radiometry.incidence_vectors, rows_ext, np.arange(samples)
    )
    water = _water_sigma_db(classes, rows, cols, incidence, surface)
    inner = slice(r0 - e0, r0 - e0 + (r1 - r0))
    dn = {}
    for pol in polarisations:
        sigma_db = _sigma_db(pol, classes, rows, cols, incidence, water, surface, radiometry)
        sigma0 = (
            _point_spread(sigma_db)[inner]
            if radiometry.difficulty > 0  # 0: class means and speckle only, no mixed pixels
            else np.power(10.0, sigma_db[inner] / 10.0, dtype=np.float32)
        )
        dn[pol] = _digital_numbers(pol, sigma0, rows_ext[inner], brng, radiometry)
    block_code = classes["code"][inner]
    codes = {int(c): int(n)
             for c, n in zip(*np.unique(block_code, return_counts=True), strict=True)}
    return dn, codes


def _write_image(
    seed: int,
    grid: _SceneGrid,
    surface: _Surface,
    radiometry: _Radiometry,
    measurement_files: dict[str, Any],
) -> dict[int, int]:
    """Write the measurement rasters block by block; return pixel counts per class code."""
    from rasterio.windows import Window

    lines, samples = grid.lines, grid.samples
    codes = {c: 0 for c in range(6)}
    block_lines = int(np.clip(2_000_000 // samples, 16, 512))
    blocks = [(number, r0, min(lines, r0 + block_lines))
              for number, r0 in enumerate(range(0, lines, block_lines))]

    def compute(block: tuple[int, int, int]) -> tuple[dict[str, np.ndarray], dict[int, int]]:
        return _image_block(seed, grid, surface, radiometry, list(measurement_files), block)

    for (_, r0, r1), (dn, block_codes) in zip(blocks, _in_order(compute, blocks), strict=True):
        for pol, dst in measurement_files.items():
            dst.write(dn[pol], 1, window=Window(0, r0, samples, r1 - r0))
        for c, n in block_codes.items():
            codes[c] += n
    return codes


def _write_truth_raster(truth: Any, surface: _Surface) -> None:
    """Write the truth: the same surface on the map grid (what a perfect geocoding would show)."""
    from rasterio.windows import Window

    grid_h, grid_w = surface.grid_shape
    truth_block = int(np.clip(2_000_000 // grid_w, 16, 512))
    truth_cols = np.arange(grid_w, dtype=np.float32)[None, :]
    blocks = [(t0, min(grid_h, t0 + truth_block)) for t0 in range(0, grid_h, truth_block)]

    def compute(block: tuple[int, int]) -> np.ndarray:
        truth_rows = np.arange(block[0], block[1], dtype=np.float32)[:, None]
        return surface(truth_rows, truth_cols)["code"]

    for (t0, t1), code in zip(blocks, _in_order(compute, blocks), strict=True):
        truth.write(code, 1, window=Window(0, t0, grid_w, t1 - t0))


def _open_measurements(
    safe_dir: Path, header: ProductHeader, polarisations: Sequence[str], grid: _SceneGrid
) -> tuple[dict[str, str], dict[str, Any]]:
    """Open one GCP-georeferenced uint16 GeoTIFF per polarisation: (SAFE-relative paths, files)."""
    import rasterio
    from rasterio.control import GroundControlPoint

    geolocation = grid.geolocation
    measurement_paths = {}
    measurement_files = {}
    gcps = [
        GroundControlPoint(
            row=float(geolocation["line"][k]),
            col=float(geolocation["pixel"][k]),
            x=float(geolocation["longitude"][k]),
            y=float(geolocation["latitude"][k]),
            z=0.0,
            id=str(k + 1),
        )
        for k in range(geolocation["line"].size)
    ]
    for number, pol in enumerate(polarisations, start=1):
        rel = f"measurement/{header.file_stem(pol, number)}.tiff"
        measurement_paths[pol] = rel
        with warnings.catch_warnings():  # georeferencing comes as GCPs, set just below
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            dst = rasterio.open(
                safe_dir / rel,
                "w",
                driver="GTiff",
                width=grid.samples,
                height=grid.lines,
                count=1,
                dtype="uint16",
                tiled=False,
                blockysize=1,
            )
        dst.gcps = (gcps, rasterio.crs.CRS.from_epsg(4326))
        measurement_files[pol] = dst
    return measurement_paths, measurement_files


def _open_truth(truth_path: Path, grid: _SceneGrid, seed: int) -> Any:
    """Open the class-code truth raster (uint8 on the map grid; 0 = land)."""
    import rasterio

    grid_h, grid_w = grid.grid_shape
    truth = rasterio.open(
        truth_path,
        "w",
        driver="GTiff",
        width=grid_w,
        height=grid_h,
        count=1,
        dtype="uint8",
        crs=CRS,
        transform=grid.transform,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
    )
    truth.update_tags(classes="ice_classes.csv codes; 0 = land", generator_seed=str(seed))
    return truth


def _write_safe_metadata(
    safe_dir: Path,
    header: ProductHeader,
    polarisations: Sequence[str],
    grid: _SceneGrid,
    radiometry: _Radiometry,
    measurement_paths: dict[str, str],
) -> None:
    """Write the annotation, calibration and noise XML per polarisation and the SAFE manifest."""
    lines, samples, swath = grid.lines, grid.samples, grid.swath
    files: list[tuple[str, str, str]] = []
    footprint_idx = [(0, 0), (0, samples - 1), (lines - 1, samples - 1), (lines - 1, 0)]
    flon, flat = swath.lonlat(
        np.array([r for r, _ in footprint_idx]), np.array([c for _, c in footprint_idx])
    )
    heading = float(swath.heading(np.array([(lines - 1) / 2]))[0])
    for number, pol in enumerate(polarisations, start=1):
        stem = header.file_stem(pol, number)
        object_stem = stem.replace("-", "")
        ann = f"annotation/{stem}.xml"
        cal = f"annotation/calibration/calibration-{stem}.xml"
        noi = f"annotation/calibration/noise-{stem}.xml"
        write_product_annotation(
            safe_dir / ann,
            header,
            pol,
            number,
            lines=lines,
            samples=samples,
            pixel_spacing_m=PIXEL_SPACING_M,
            geolocation=grid.geolocation,
            swath_bounds=_subswath_bounds(samples),
            platform_heading_deg=heading,
        )
        write_calibration(safe_dir / cal, header, pol, number, radiometry.luts, lines)
        noise_vectors, noise_blocks = radiometry.noise[pol]
        write_noise(safe_dir / noi, header, pol, number, noise_vectors, noise_blocks, lines)
        files += [
            (f"product{object_stem}", "s1Level1ProductSchema", ann),
            (f"noise{object_stem}", "s1Level1NoiseSchema", noi),
            (f"calibration{object_stem}", "s1Level1CalibrationSchema", cal),
            (object_stem, "s1Level1MeasurementSchema", measurement_paths[pol]),
        ]
    write_safe_manifest(
        safe_dir,
        header,
        polarisations,
        [(float(a), float(o)) for a, o in zip(flat, flon, strict=True)],
        files,
    )


def _write_rasters(
    safe_dir: Path,
    truth_path: Path,
    header: ProductHeader,
    polarisations: Sequence[str],
    grid: _SceneGrid,
    surface: _Surface,
    radiometry: _Radiometry,
    seed: int,
) -> tuple[dict[str, str], dict[int, int]]:
    """Write the measurement GeoTIFFs and the truth raster: (SAFE paths, pixels per class code)."""
    measurement_paths, measurement_files = _open_measurements(
        safe_dir, header, polarisations, grid
    )
    truth = _open_truth(truth_path, grid, seed)
    try:
        codes = _write_image(seed, grid, surface, radiometry, measurement_files)
        _write_truth_raster(truth, surface)
    finally:
        for dst in measurement_files.values():
            dst.close()
        truth.close()
    return measurement_paths, codes


def _class_fractions(codes: dict[int, int], n_pixels: int) -> dict[str, float]:
    """Share of the image pixels per class name (``land`` for code 0), 6 decimals."""
    total = float(n_pixels)
    names = {0: "land", **{c.code: c.name for c in _ice_classes()}}
    return {names[c]: round(n / total, 6) for c, n in codes.items() if c in names}


def _product_identity(rng: np.random.Generator, mission: str, start_time: dt.datetime,
                      lines: int, seed: int) -> tuple[str, ProductHeader]:
    """Product name and header: stop time from the lines, orbit from the date, drawn datatake."""
    stop_time = start_time + dt.timedelta(seconds=AZIMUTH_TIME_INTERVAL_S * (lines - 1))
    orbit = _absolute_orbit(mission, start_time)
    datatake = int(rng.integers(0x10000, 0xFFFFF))
    name = _product_name(mission, start_time, stop_time, orbit, datatake, seed)
    return name, ProductHeader(mission, "EW", "GRD", start_time, stop_time, orbit, datatake)


def _check_scene_args(
    lines: int, samples: int, land_fraction: float, enl: float, difficulty: float
) -> None:
    if lines < 32 or samples < 64:
        raise ValueError(f"scene {lines}x{samples} too small: need >= 32 lines and >= 64 samples")
    if not 0.0 <= land_fraction < 0.95:
        raise ValueError(f"land_fraction {land_fraction} must be in [0, 0.95)")
    if enl <= 0:
        raise ValueError(f"enl {enl} must be > 0")
    if not 0.0 <= difficulty <= 3.0:
        raise ValueError(f"difficulty {difficulty} must be in [0, 3] (0 easy, 1 realistic)")


def generate_ew_grd_scene(
    out_dir: str | Path,
    *,
    seed: int,
    start_time: dt.datetime,
    lines: int = 1200,
    samples: int = 1200,
    land_fraction: float = 0.12,
    enl: float = 4.0,
    difficulty: float = 1.0,
    center_lonlat: tuple[float, float] | None = None,
    mission: str = "S1A",
    polarisations: Sequence[str] = POLARISATIONS,
    melt: bool | None = None,
) -> GeneratedScene:
    """Generate one Sentinel-1 EW GRDM dual-pol scene with ground truth under ``out_dir``.

    Args:
        out_dir: folder that receives ``<name>.SAFE/``, ``<name>.truth.tif``,
            ``<name>.chart.geojson`` and ``<name>.land.geojson``.
        seed: random seed; the same seed and arguments give identical files.
        start_time: sensing start (UTC); the stop time follows from ``lines``.
        lines: azimuth lines of the image (40 m pixels).
        samples: range samples of the image.
        land_fraction: approximate share of land pixels (0 for none).
        enl: equivalent number of looks of the speckle (EW GRDM about 10-13; fewer = noisier).
        difficulty: 0 = class means and speckle only; 1 = realistic within-class variability
            (young vs level first-year and windy water vs ice overlap); up to 3 = harder.
        center_lonlat: scene centre (WGS84); default: drawn from the seed in the Fram Strait /
            Barents Sea region (76-81 N, -10..30 E).
        mission: ``S1A`` or ``S1B``.
        polarisations: measurement polarisations to write; ``("HH",)`` makes a single-pol
            product (used to test missing-HV handling).
        melt: wet snow on the ice (melt season: lower ice HH / HV, smaller contrast between
            ice types); ``None``: from ``start_time`` (June-August in the Arctic).

    Returns:
        :class:`GeneratedScene` with the paths and class fractions.

    """
    _check_scene_args(lines, samples, land_fraction, enl, float(difficulty))
    start_time = start_time if start_time.tzinfo else start_time.replace(tzinfo=dt.UTC)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # every draw from rng happens in this order: centre, datatake, noise vectors, surface fields,
    # class shares, margin noise, conditions (the same seed gives the same files)
    rng = np.random.default_rng([seed, 1])
    table = surface_backscatter()
    difficulty = float(difficulty)

    if center_lonlat is None:
        center_lonlat = (float(rng.uniform(-10, 30)), float(rng.uniform(76, 81)))
    swath = place_swath(center_lonlat, lines, samples, PIXEL_SPACING_M)
    name, header = _product_identity(rng, mission, start_time, lines, seed)
    stop_time = header.stop_time
    grid = _scene_grid(swath, lines, samples)
    luts = _calibration_luts(lines, samples)
    noise = {
        pol: _noise_vectors(rng, lines, samples, luts["sigmaNought"], pol) for pol in polarisations
    }
    surface = _draw_surface(rng, grid.grid_shape, float(min(lines, samples)), difficulty)
    fragment_rng = np.random.default_rng([seed, 3])  # own stream: the other draws stay as they were
    surface.fragments = _Floes(fragment_rng, grid.grid_shape, surface.floes.cell / 3)
    surface.broken = fragment_rng.random(surface.floes.n_cells) < BROKEN_FLOE_SHARE
    _set_class_shares(surface, rng, grid, land_fraction)

    radiometry = _Radiometry(
        table=table,
        difficulty=difficulty,
        enl=enl,
        incidence_vectors=grid.incidence_vectors(),
        luts=luts,
        noise=noise,
        margin_noise=_ValueNoise(rng, (lines, 1), [20.0, 6.0]),
        nodata_cols=max(2, samples // 200),
    )
    if melt is None:
        melt = is_melt_season(start_time, center_lonlat[1])
    surface.conditions = _draw_conditions(rng, surface, difficulty, bool(melt))
    safe_dir = out_dir / f"{name}.SAFE"
    (safe_dir / "measurement").mkdir(parents=True, exist_ok=True)
    truth_path = out_dir / f"{name}.truth.tif"
    measurement_paths, codes = _write_rasters(
        safe_dir, truth_path, header, polarisations, grid, surface, radiometry, seed
    )
    _write_safe_metadata(safe_dir, header, polarisations, grid, radiometry, measurement_paths)

    chart_path, land_path = _write_truth_vectors(truth_path, out_dir, name)
    fractions = _class_fractions(codes, lines * samples)
    conditions = {
        "melt": bool(melt),
        "wind_speed_ms": round(surface.conditions.wind_speed_ms, 3),
        "wind_direction_deg": round(surface.conditions.wind_direction_deg, 1),
        "difficulty": difficulty,
    }
    log.info("generated %s (%dx%d): %s %s", name, lines, samples, fractions, conditions)
    return GeneratedScene(
        scene_id=name,
        safe_path=safe_dir,
        truth_raster_path=truth_path,
        chart_path=chart_path,
        land_mask_path=land_path,
        start_time=start_time,
        stop_time=stop_time,
        shape=(lines, samples),
        crs=CRS,
        transform=tuple(grid.transform.to_gdal()),
        class_fractions=fractions,
        grid_shape=grid.grid_shape,
        conditions=conditions,
        geometry=swath,
    )


def _ice_classes() -> tuple:
    from tasks.domain.ice import ice_classes

    return ice_classes()


def _write_truth_vectors(truth_path: Path, out_dir: Path, name: str) -> tuple[Path, Path]:
    """Vectorise the truth raster into chart and land GeoJSON (coarsened for large scenes)."""
    import rasterio
    from rasterio.enums import Resampling

    class_names = {c.code: c.name for c in _ice_classes()}
    with rasterio.open(truth_path) as src:
        factor = max(1, int(math.ceil(max(src.height, src.width) / 2500)))
        out_shape = (math.ceil(src.height / factor), math.ceil(src.width / factor))
        raster = src.read(
            1, out_shape=out_shape, resampling=Resampling.mode if factor > 1 else Resampling.nearest
        )
        transform = src.transform @ src.transform.scale(
            src.width / out_shape[1], src.height / out_shape[0]
        )
    chart = [
        {
            "type": "Feature",
            "properties": {"ice_class": value, "ice_class_name": class_names[value]},
            "geometry": geom,
        }
        for value, geom in _vectorise(raster, transform, skip=0)
    ]
    land = [
        {"type": "Feature", "properties": {"land": 1}, "geometry": geom}
        for value, geom in _vectorise((raster == 0).astype(np.uint8), transform, skip=0)
        if value == 1
    ]
    chart_path = _write_geojson(out_dir / f"{name}.chart.geojson", f"{name} ice chart", chart)
    land_path = _write_geojson(out_dir / f"{name}.land.geojson", f"{name} land", land)
    return chart_path, land_path
