"""predict's lon/lat output in other projections and georeference corner cases (issue 19).

``to_crs84`` must honour a CRS whose axis order is northing first (UPS North (N,E): shapely x is
still the easting), open a polygon around the south pole (cut from -90 degrees) and split one
that crosses longitude 180 north of the equator in a Mercator centred on 150 E (cut down to
latitude 0, chosen by the hemisphere of the polygon's centre). The cut is flat-ended: it stops
at the pole. ``scene_georeference`` locates a scene by x / y coordinates alone or a
spatial_ref CRS with a transform attribute, and refuses a spatial_ref CRS without a grid.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from pyproj import CRS, Transformer
from shapely.geometry import MultiPolygon, Point, box

from tasks.polar import predict as pr
from tasks.polar.schema import BACKSCATTER_VAR


def test_northing_first_crs_gives_the_same_lonlat_polygon() -> None:
    pole = box(2_000_000.0 - 300_000.0, 2_000_000.0 - 200_000.0,
               2_000_000.0 + 300_000.0, 2_000_000.0 + 400_000.0)  # UPS North, around the pole
    en = pr.to_crs84(pole, "EPSG:5041", 50_000.0)  # (E,N)
    ne = pr.to_crs84(pole, "EPSG:32661", 50_000.0)  # (N,E): same projection, other axis order
    assert ne.equals_exact(en, 1e-9)
    west, south, east, north = ne.bounds
    assert (west, east, north) == pytest.approx((-180.0, 180.0, 90.0), abs=1e-3)
    assert ne.is_valid and ne.exterior.is_ccw
    off_pole = box(2_500_000.0, 1_900_000.0, 2_600_000.0, 2_000_000.0)
    got = pr.to_crs84(off_pole, "EPSG:32661", 25_000.0)
    forward = Transformer.from_crs("EPSG:5041", "OGC:CRS84", always_xy=True)
    lon, lat = forward.transform(2_500_000.0, 1_900_000.0)
    assert np.hypot(*(np.asarray(got.exterior.coords) - [lon, lat]).T).min() < 1e-9


def test_a_polygon_around_the_south_pole_is_opened() -> None:
    pole = box(-300_000.0, -250_000.0, 250_000.0, 300_000.0)
    got = pr.to_crs84(pole, "EPSG:3031", 50_000.0)
    assert got.is_valid and got.geom_type == "Polygon" and got.exterior.is_ccw
    west, south, east, north = got.bounds
    assert (west, south, east) == pytest.approx((-180.0, -90.0, 180.0), abs=1e-3)
    assert north == pytest.approx(-86.1, abs=0.1)  # the corner farthest from the pole
    cut = pr._antimeridian_cut(CRS("EPSG:3031"), pole.bounds)
    lon180 = Transformer.from_crs("OGC:CRS84", "EPSG:3031", always_xy=True)
    for lat in (-89.5, -88.0):
        assert cut.distance(Point(*lon180.transform(180.0, lat))) < 1e-6


def test_the_cut_ends_flat_at_the_pole() -> None:
    cut = pr._antimeridian_cut(CRS("EPSG:3413"), (-1e5, -1e5, 1e5, 1e5))
    x, y = Transformer.from_crs("OGC:CRS84", "EPSG:3413", always_xy=True).transform(180.0, 89.0)
    direction = np.array([x, y]) / np.hypot(x, y)
    assert cut.contains(Point(*(direction * 0.5)))  # on the meridian
    assert not cut.contains(Point(*(-direction * 0.005)))  # 5 mm beyond the pole


def test_a_polygon_crossing_longitude_180_north_of_the_equator_is_split() -> None:
    lon180 = Transformer.from_crs("OGC:CRS84", "EPSG:3832", always_xy=True).transform(180.0, 0.0)
    square = box(lon180[0] - 150_000.0, 60_000.0, lon180[0] + 150_000.0, 500_000.0)
    got = pr.to_crs84(square, "EPSG:3832", 50_000.0)
    assert isinstance(got, MultiPolygon) and len(got.geoms) == 2 and got.is_valid
    spans = sorted(g.bounds for g in got.geoms)
    assert spans[0][0] == pytest.approx(-180.0, abs=1e-6) or spans[0][2] < -178.0
    for west, south, east, north in spans:
        assert east - west < 2.0  # each part on one side of the antimeridian
        assert south == pytest.approx(0.54, abs=0.01) and north == pytest.approx(4.5, abs=0.05)
    assert {round(b[0]) for b in spans} | {round(b[2]) for b in spans} >= {-180, 180}


def test_geojson_keeps_every_vertex_pointwise() -> None:
    from shapely.geometry import Polygon

    polygon = Polygon([(0, 0), (1, 0), (1, 1), (1 + 1e-9, 1 + 1e-9), (0, 1)])
    assert json.loads(pr.shapely_to_geojson(polygon))["coordinates"] == [
        [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]]


def test_two_model_crs_are_listed_with_or() -> None:
    contract = {"crs": ["EPSG:3413", "EPSG:3996"]}
    assert pr.scene_model_mismatches({"crs": "EPSG:3031"}, [], contract) == [
        "CRS: model expects EPSG:3413 or EPSG:3996, scene is EPSG:3031"]


def _grid(coords: dict[str, np.ndarray], attrs: dict[str, object]) -> xr.Dataset:
    values = np.zeros((1, 4, 4), np.float32)
    return xr.Dataset({BACKSCATTER_VAR: (("band", "y", "x"), values)}, coords=coords,
                      attrs=attrs)


def test_scene_georeference_edge_cases(tmp_path: Path) -> None:
    import rioxarray  # noqa: F401

    gdal = (1000.0, 40.0, 0.0, 5000.0, 0.0, -40.0)
    xy = {"x": 1000.0 + 40.0 * (np.arange(4) + 0.5), "y": 5000.0 - 40.0 * (np.arange(4) + 0.5)}
    # x / y are the only coordinates (no band coordinate, no spatial_ref)
    crs, transform = pr.scene_georeference(_grid(xy, {"crs": "EPSG:3413"}), tmp_path / "a")
    assert crs == "EPSG:3413"
    np.testing.assert_allclose(transform, gdal)
    # the CRS of the spatial_ref, the transform of the attributes
    scene = _grid({}, {}).rio.write_crs("EPSG:3996").assign_attrs(transform=list(gdal))
    assert pr.scene_georeference(scene, tmp_path / "b") == ("EPSG:3996", gdal)
    # a spatial_ref CRS and nothing that places the grid: refused
    with pytest.raises(ValueError, match="no CRS / geotransform"):
        pr.scene_georeference(_grid({}, {}).rio.write_crs("EPSG:3413"), tmp_path / "c")
