"""The swath model of the generator checked against independent computations (issue 19).

The sub-satellite track is recomputed here with 3-D vectors (the orbit plane rotated by the
inclination, then the Earth's rotation subtracted), the geodesics with pyproj's ``Geod.inv`` (the
inverse problem, where the module uses the forward one), and the orbital period against the
published Sentinel-1 value. Each test runs in well under a second.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyproj import Geod

from tasks.sentinel1 import swath_geometry as sg

GEOD = Geod(ellps="WGS84")
GM = 3.986004418e14
RADIUS = 6_371_008.8
OMEGA_EARTH = 7.2921159e-5


def _hand_sub_satellite(geo: sg.SwathGeometry, line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sub-satellite point from the satellite's unit position vector (not the module's trig)."""
    n = math.sqrt(GM / (RADIUS + 693_000.0) ** 3)
    t = (np.asarray(line, dtype=float) - geo.mid_line) * geo.line_time_s
    u = geo.u_mid + n * t
    inc = math.radians(98.18)
    # circular orbit in its plane, rotated about the x axis (the ascending node) by the inclination
    x, y, z = np.cos(u), np.sin(u) * math.cos(inc), np.sin(u) * math.sin(inc)
    lat = np.degrees(np.arcsin(z))
    lon = np.degrees(np.arctan2(y, x)) - np.degrees(OMEGA_EARTH * t) + geo.lon_shift_deg
    lon = np.where(lon >= 180.0, lon - 360.0, lon)
    lon = np.where(lon < -180.0, lon + 360.0, lon)
    return lon, lat


def _geometry(**changes: float) -> sg.SwathGeometry:
    values = dict(u_mid=2.0, lon_shift_deg=170.0, mid_line=10.0, line_time_s=2.0,
                  near_range_m=250_000.0, pixel_spacing_m=1_000.0)
    values.update(changes)
    return sg.SwathGeometry(**values)


def test_orbit_period_is_sentinel1s() -> None:
    """2 pi / mean motion is Sentinel-1's ~98.6 min period (693 km circular orbit)."""
    period_min = 2 * math.pi / sg._mean_motion() / 60
    assert period_min == pytest.approx(98.6, abs=0.2)
    assert sg._mean_motion() == pytest.approx(math.sqrt(GM / 7_064_008.8**3), rel=1e-12)


@pytest.mark.parametrize("u_mid", [0.0, 0.7, 2.0, 3.5, -1.2])
def test_sub_satellite_equals_the_rotated_orbit_vector(u_mid: float) -> None:
    """Longitude (wrapped to [-180, 180)) and latitude of the track at lines around mid_line."""
    geo = _geometry(u_mid=u_mid)
    lines = np.array([-40.0, 0.0, 9.0, 10.0, 10.5, 37.0, 300.0])
    lon, lat = geo.sub_satellite(lines)
    want_lon, want_lat = _hand_sub_satellite(geo, lines)
    np.testing.assert_allclose(lat, want_lat, atol=1e-9)
    np.testing.assert_allclose(lon, want_lon, atol=1e-9)
    assert np.all((lon >= -180.0) & (lon < 180.0))


def test_sub_satellite_at_time_zero_and_the_turning_latitude() -> None:
    """At mid_line the satellite is at u_mid: the node (lat 0, lon = shift) or the turning point."""
    lon, lat = _geometry(u_mid=0.0, lon_shift_deg=-20.0).sub_satellite(np.array([10.0]))
    assert lat[0] == pytest.approx(0.0, abs=1e-12)
    assert lon[0] == pytest.approx(-20.0, abs=1e-12)
    lon, lat = _geometry(u_mid=math.pi / 2, lon_shift_deg=0.0).sub_satellite(np.array([10.0]))
    assert lat[0] == pytest.approx(180.0 - 98.18, abs=1e-9)  # the highest latitude reached
    assert lon[0] == pytest.approx(-90.0, abs=1e-9)  # retrograde: a quarter orbit west
    # the Earth turns east under the track: one line (2 s) later the longitude moves west by
    # more than the orbit alone would move it
    lon_next, _ = _geometry(u_mid=0.0, lon_shift_deg=0.0).sub_satellite(np.array([11.0]))
    lon_no_rotation = math.degrees(math.atan2(
        math.cos(math.radians(98.18)) * math.sin(sg._mean_motion() * 2.0),
        math.cos(sg._mean_motion() * 2.0)))
    assert lon_next[0] == pytest.approx(lon_no_rotation - math.degrees(OMEGA_EARTH * 2.0),
                                        abs=1e-9)


def test_heading_is_the_geodesic_azimuth_between_neighbouring_half_lines() -> None:
    """heading(l) = azimuth of the track from line l - 0.5 to l + 0.5 (2 s lines: ~14 km)."""
    geo = _geometry()
    lines = np.array([0.0, 10.0, 23.0, 80.0])
    lon0, lat0 = _hand_sub_satellite(geo, lines - 0.5)
    lon1, lat1 = _hand_sub_satellite(geo, lines + 0.5)
    want, _, _ = GEOD.inv(lon0, lat0, lon1, lat1)
    np.testing.assert_allclose(geo.heading(lines), want, atol=1e-7)


def test_lonlat_lies_at_the_ground_range_to_the_right_of_the_track() -> None:
    """Every pixel: geodesic distance from its line's nadir = near + p * spacing, azimuth =
    heading + 90 (looking right); unsorted, repeated lines broadcast against pixels."""
    geo = _geometry()
    lines = np.array([[30.0], [2.0], [30.0], [-7.0]])
    pixels = np.array([0.0, 1.0, 17.5, 300.0])
    lon, lat = geo.lonlat(lines, pixels)
    assert lon.shape == lat.shape == (4, 4)
    line_grid, pixel_grid = np.broadcast_arrays(lines, pixels)
    nadir_lon, nadir_lat = _hand_sub_satellite(geo, line_grid)
    azimuth, _, distance = GEOD.inv(nadir_lon, nadir_lat, lon, lat)
    np.testing.assert_allclose(distance, 250_000.0 + pixel_grid * 1_000.0, atol=1e-3)
    lon0, lat0 = _hand_sub_satellite(geo, line_grid - 0.5)
    lon1, lat1 = _hand_sub_satellite(geo, line_grid + 0.5)
    track, _, _ = GEOD.inv(lon0, lat0, lon1, lat1)
    np.testing.assert_allclose((azimuth - track - 90.0 + 180.0) % 360.0 - 180.0, 0.0, atol=1e-6)
    # rows of the same line are the same points
    np.testing.assert_array_equal(lon[0], lon[2])
    assert not np.allclose(lon[0], lon[1])


@pytest.mark.parametrize(
    ("centre", "lines", "samples", "spacing", "ascending"),
    [((10.0, 75.0), 1000, 800, 40.0, False), ((-40.0, 70.0), 301, 500, 100.0, True),
     ((150.0, -72.0), 50, 12_000, 40.0, False)],
)
def test_place_swath_puts_the_centre_pixel_on_the_requested_point(
    centre: tuple[float, float], lines: int, samples: int, spacing: float, ascending: bool
) -> None:
    """The centre pixel lands on ``centre`` (1e-9 deg); timing, ranges and pass direction."""
    geo = sg.place_swath(centre, lines, samples, spacing, ascending=ascending)
    lon, lat = geo.lonlat(np.array([(lines - 1) / 2]), np.array([(samples - 1) / 2]))
    assert lon[0] == pytest.approx(centre[0], abs=1e-9)
    assert lat[0] == pytest.approx(centre[1], abs=1e-9)
    assert geo.mid_line == (lines - 1) / 2
    assert geo.pixel_spacing_m == spacing
    ground_speed = math.sqrt(GM / 7_064_008.8**3) * RADIUS  # ~6.75 km/s
    assert geo.line_time_s == pytest.approx(spacing / ground_speed, rel=1e-12)
    width = samples * spacing
    # the scene is centred across the 410 km EW swath; a wider one starts at its near edge
    want_near = 240_000.0 + max(0.0, (410_000.0 - width) / 2)
    assert geo.near_range_m == pytest.approx(want_near, abs=1e-9)
    heading = float(geo.heading(np.array([geo.mid_line]))[0])
    # descending passes fly south(-west), ascending ones north(-west)
    assert (abs(heading) < 90.0) is ascending


def test_place_swath_at_mid_line_time_is_the_first_descending_solution() -> None:
    """Descending: u_mid in (pi/2, 3pi/2) where the latitude falls; ascending: (-pi/2, pi/2)."""
    down = sg.place_swath((0.0, 60.0), 100, 100, 40.0)
    up = sg.place_swath((0.0, 60.0), 100, 100, 40.0, ascending=True)
    assert math.pi / 2 < down.u_mid < 3 * math.pi / 2
    assert -math.pi / 2 < up.u_mid < math.pi / 2
    assert down.lon_shift_deg != pytest.approx(up.lon_shift_deg, abs=1.0)


@pytest.mark.parametrize(("ascending", "word"), [(False, "descending"), (True, "ascending")])
def test_unreachable_latitude_is_refused_with_the_reachable_range(ascending: bool,
                                                                  word: str) -> None:
    """The message names the pass direction, the latitude and the reachable range."""
    with pytest.raises(ValueError) as info:
        sg.place_swath((0.0, 89.0), 10, 10, 40.0, ascending=ascending)
    message = str(info.value)
    assert message.startswith(f"a {word} Sentinel-1 EW swath cannot be centred at latitude 89.0;"
                              " reachable ")
    low, high = (float(v) for v in message.rsplit("reachable ", 1)[1].split(" .. "))
    # the centre pixel of a 10 x 10 scene sits ~445 km right of the track: it reaches beyond the
    # track's 81.82 deg turning latitude on one side, less far on the other, never the pole
    assert (low, high) == (-77.83, 85.80)


def test_narrow_input_dtypes_are_computed_in_float64() -> None:
    """float16 lines / pixels (exact small integers) give the float64 answer: no float16 maths
    (3000 - 0.5 is not a float16, 300 px * 1000 m overflows it)."""
    geo = _geometry(line_time_s=0.7)
    wide_lines = np.array([3000.0, 1234.0, -7.0])
    narrow_lines = wide_lines.astype(np.float16)
    np.testing.assert_array_equal(narrow_lines.astype(np.float64), wide_lines)
    for got, want in zip(geo.sub_satellite(narrow_lines), geo.sub_satellite(wide_lines),
                         strict=True):
        np.testing.assert_allclose(got, want, atol=1e-9)
    np.testing.assert_allclose(geo.heading(narrow_lines), geo.heading(wide_lines), atol=1e-9)
    pixels = np.array([0.0, 17.5, 300.0])
    for got, want in zip(geo.lonlat(wide_lines[:, None], pixels.astype(np.float16)),
                         geo.lonlat(wide_lines[:, None], pixels), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-9)


@pytest.mark.parametrize(("latitude", "ascending"),
                         [(85.80, True), (85.8035, False), (-77.834, False), (-77.834, True)])
def test_latitudes_next_to_the_turning_points_are_placed(latitude: float,
                                                         ascending: bool) -> None:
    """Centres within 0.001 deg of the reachable limits (crossings in the search grid's first or
    last interval) are still placed exactly on the requested point."""
    geo = sg.place_swath((33.0, latitude), 10, 10, 40.0, ascending=ascending)
    lon, lat = geo.lonlat(np.array([4.5]), np.array([4.5]))
    assert lat[0] == pytest.approx(latitude, abs=1e-9)
    assert lon[0] == pytest.approx(33.0, abs=1e-9)
