"""Where each pixel of a Sentinel-1 GRD image lies on the ground: a satellite track model.

Used by the generator (:mod:`tasks.sentinel1.generator`) so that generated scenes are curved
swaths like real ones, not an affine image of a map grid. The model:

* a circular orbit of 693 km altitude and 98.18 deg inclination (Sentinel-1), on a spherical
  Earth for the track, with the Earth's rotation under it (so the ground track is not a great
  circle); one image line every ``line_time_s`` seconds of azimuth time, zero-Doppler;
* a GRD pixel is a ground range: the pixel ``p`` of line ``l`` lies ``near_range_m + p *
  pixel_spacing_m`` metres from the sub-satellite point of ``l``, on the WGS84 geodesic
  perpendicular to the ground track, to the right of it (Sentinel-1 looks right);
* heights are 0 (sea level).

In EPSG:3413 such a swath bends (the track curves towards the turning latitude, the map scale
changes with latitude): over a full 400 km EW scene an affine fit is off by about a kilometre, as
on real products. Small scenes are close to affine; long ones (thousands of lines) are not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EARTH_RADIUS_M = 6_371_008.8
GM_EARTH = 3.986004418e14
EARTH_ROTATION_RAD_S = 7.2921159e-5
ALTITUDE_M = 693_000.0
INCLINATION_DEG = 98.18
#: ground range (m) from nadir to the near edge of the EW swath, and the swath width
EW_NEAR_RANGE_M = 240_000.0
EW_SWATH_WIDTH_M = 410_000.0


def _mean_motion() -> float:
    return math.sqrt(GM_EARTH / (EARTH_RADIUS_M + ALTITUDE_M) ** 3)


@dataclass(frozen=True)
class SwathGeometry:
    """Ground position of every image ``(line, pixel)`` of one scene (see module docstring).

    Attributes:
        u_mid: argument of latitude (radians) of the satellite at line ``mid_line``.
        lon_shift_deg: longitude added to the track (places the scene).
        mid_line: image line at time 0.
        line_time_s: azimuth time between lines.
        near_range_m: ground range of pixel 0.
        pixel_spacing_m: ground range between pixels.

    """

    u_mid: float
    lon_shift_deg: float
    mid_line: float
    line_time_s: float
    near_range_m: float
    pixel_spacing_m: float

    def sub_satellite(self, line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Longitude, latitude (degrees) of the sub-satellite point at image line ``line``."""
        t = (np.asarray(line, dtype=np.float64) - self.mid_line) * self.line_time_s
        u = self.u_mid + _mean_motion() * t
        inc = math.radians(INCLINATION_DEG)
        lat = np.degrees(np.arcsin(math.sin(inc) * np.sin(u)))
        lon = np.degrees(np.arctan2(math.cos(inc) * np.sin(u), np.cos(u)))
        lon = lon - np.degrees(EARTH_ROTATION_RAD_S * t) + self.lon_shift_deg
        return (lon + 180.0) % 360.0 - 180.0, lat

    def heading(self, line: np.ndarray) -> np.ndarray:
        """Ground-track heading (degrees from north) at image line ``line``."""
        from pyproj import Geod

        line = np.asarray(line, dtype=np.float64)
        lon0, lat0 = self.sub_satellite(line - 0.5)
        lon1, lat1 = self.sub_satellite(line + 0.5)
        azimuth, _, _ = Geod(ellps="WGS84").inv(lon0, lat0, lon1, lat1)
        return np.asarray(azimuth)

    def lonlat(self, line: np.ndarray, pixel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Longitude, latitude (degrees, WGS84) of image ``(line, pixel)`` (broadcast shapes)."""
        from pyproj import Geod

        line, pixel = np.broadcast_arrays(
            np.asarray(line, dtype=np.float64), np.asarray(pixel, dtype=np.float64)
        )
        unique_lines, inverse = np.unique(line, return_inverse=True)
        lon0, lat0 = self.sub_satellite(unique_lines)
        look = self.heading(unique_lines) + 90.0
        distance = self.near_range_m + pixel.ravel() * self.pixel_spacing_m
        lon, lat, _ = Geod(ellps="WGS84").fwd(
            lon0[inverse.ravel()], lat0[inverse.ravel()], look[inverse.ravel()], distance
        )
        return np.asarray(lon).reshape(line.shape), np.asarray(lat).reshape(line.shape)


def place_swath(
    centre_lonlat: tuple[float, float],
    lines: int,
    samples: int,
    pixel_spacing_m: float,
    ascending: bool = False,
) -> SwathGeometry:
    """Geometry of a ``lines`` x ``samples`` scene whose centre pixel lies at ``centre_lonlat``.

    The scene sits in the middle of the EW swath across range; the orbit position is solved so
    that the centre's latitude matches, then the track is rotated in longitude.

    Raises:
        ValueError: the latitude cannot be seen from the chosen pass direction.

    """
    ground_speed = _mean_motion() * EARTH_RADIUS_M
    width = samples * pixel_spacing_m
    near = EW_NEAR_RANGE_M + max(0.0, (EW_SWATH_WIDTH_M - width) / 2)
    base = dict(
        lon_shift_deg=0.0,
        mid_line=(lines - 1) / 2,
        line_time_s=pixel_spacing_m / ground_speed,
        near_range_m=near,
        pixel_spacing_m=pixel_spacing_m,
    )
    mid = ((lines - 1) / 2, (samples - 1) / 2)
    lon_c, lat_c = centre_lonlat

    def centre_lat(u: np.ndarray) -> np.ndarray:
        out = []
        for value in np.atleast_1d(u):
            geo = SwathGeometry(u_mid=float(value), **base)
            out.append(float(geo.lonlat(np.array(mid[0]), np.array(mid[1]))[1]))
        return np.array(out)

    lo, hi = (-math.pi / 2, math.pi / 2) if ascending else (math.pi / 2, 3 * math.pi / 2)
    candidates = np.linspace(lo + 1e-3, hi - 1e-3, 721)
    diff = centre_lat(candidates) - lat_c
    crossings = np.flatnonzero(np.sign(diff[:-1]) != np.sign(diff[1:]))
    if crossings.size == 0:
        raise ValueError(
            f"a {'ascending' if ascending else 'descending'} Sentinel-1 EW swath cannot be "
            f"centred at latitude {lat_c}; reachable {diff.min() + lat_c:.2f} .. "
            f"{diff.max() + lat_c:.2f}"
        )
    a, b = candidates[crossings[0]], candidates[crossings[0] + 1]
    fa = diff[crossings[0]]
    for _ in range(60):  # bisection to ~1e-18 rad
        m = 0.5 * (a + b)
        fm = centre_lat(np.array([m]))[0] - lat_c
        if np.sign(fm) == np.sign(fa):
            a, fa = m, fm
        else:
            b = m
    u_mid = 0.5 * (a + b)
    lon_at_zero = float(
        SwathGeometry(u_mid=u_mid, **base).lonlat(np.array(mid[0]), np.array(mid[1]))[0]
    )
    base["lon_shift_deg"] = lon_c - lon_at_zero
    return SwathGeometry(u_mid=u_mid, **base)
