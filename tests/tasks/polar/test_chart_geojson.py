"""Published chart polygons: RFC 7946 GeoJSON (CRS84, no ``crs``) + projected GeoParquet, and the
RDF export of that GeoJSON still gives the right CRS84 WKT."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Transformer
from rasterio.transform import from_origin

from tasks.polar.predict import to_crs84, write_class_polygons

DAY = "2026-01-25"
SCENE = "S1A_EW_GRDM_1SDH_20260125T071500_20260125T071600_012345_00ABCD_1A2B"


def _chart(path: Path, x0: float, y0: float, pixel: float = 1000.0, size: int = 60) -> Path:
    """A binary chart (1 water / 2 ice, 0 no data) in EPSG:3413 with a 1 km grid."""
    chart = np.ones((size, size), np.uint8)
    chart[10:40, 20:50] = 2
    chart[:, :3] = 0
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1, dtype="uint8",
                       crs="EPSG:3413", transform=from_origin(x0, y0, pixel, pixel),
                       nodata=255) as dst:
        dst.write(chart, 1)
    return path


def test_geojson_is_rfc7946_crs84_and_parquet_keeps_epsg3413(tmp_path):
    chart = _chart(tmp_path / f"{SCENE}_chart.tif", 700_000.0, -1_000_000.0)  # Fram Strait
    geojson = tmp_path / f"{SCENE}_chart.geojson"
    n = write_class_polygons(chart, geojson, "binary")
    doc = json.loads(geojson.read_text())
    assert "crs" not in doc and doc["type"] == "FeatureCollection" and len(doc["features"]) == n
    lonlat = [shapely.geometry.shape(f["geometry"]) for f in doc["features"]]
    for geometry in lonlat:
        assert geometry.is_valid
        lon0, lat0, lon1, lat1 = geometry.bounds
        assert -30 < lon0 < lon1 < 30 and 70 < lat0 < lat1 < 90  # lon/lat, not metres
        assert shapely.orient_polygons(geometry, exterior_cw=False).equals_exact(geometry, 0)
    projected = gpd.read_parquet(geojson.with_suffix(".parquet"))
    assert projected.crs.to_epsg() == 3413 and len(projected) == n
    assert {"class_code", "ice_class", "area_km2"} <= set(projected.columns)
    assert projected.geometry.total_bounds[0] >= 700_000.0  # metres
    back = Transformer.from_crs("OGC:CRS84", "EPSG:3413", always_xy=True)
    for geometry, original in zip(lonlat, projected.geometry, strict=True):
        returned = shapely.transform(
            geometry, lambda xy: np.column_stack(back.transform(xy[:, 0], xy[:, 1]))
        )
        assert returned.symmetric_difference(original).area < 1e-6 * original.area + 1.0


def test_antimeridian_and_pole_polygons_stay_valid_in_lonlat():
    # a 100 km square straddling longitude 180 at 75 N
    to3413 = Transformer.from_crs("OGC:CRS84", "EPSG:3413", always_xy=True)
    cx, cy = to3413.transform(180.0, 75.0)
    across = shapely.box(cx - 50_000, cy - 50_000, cx + 50_000, cy + 50_000)
    result = to_crs84(across, "EPSG:3413", max_segment=5_000.0)
    assert result.is_valid and result.geom_type == "MultiPolygon" and len(result.geoms) == 2
    for part in result.geoms:
        lon0, _, lon1, _ = part.bounds
        assert lon1 - lon0 < 10  # each piece on one side, none wraps the globe
    pole = to_crs84(shapely.box(-200_000, -200_000, 200_000, 200_000), "EPSG:3413", 5_000.0)
    assert pole.is_valid
    lon0, lat0, lon1, lat1 = pole.bounds
    assert lon0 < -179.9 and lon1 > 179.9 and lat1 == pytest.approx(90.0, abs=1e-3)
    assert 87.0 < lat0 < 87.6  # the box corners, 283 km from the pole


def test_rdf_export_of_the_chart_geojson_is_crs84_wkt(tmp_path):
    from rdflib import Graph, URIRef

    from tasks.config.linked_data import LinkedDataConfig
    from tasks.linked_data.export import export_product

    root = tmp_path / "data"
    folder = root / "polar" / "predict" / DAY
    folder.mkdir(parents=True)
    chart = _chart(folder / f"{SCENE}_chart.tif", 700_000.0, -1_000_000.0)
    n = write_class_polygons(chart, folder / f"{SCENE}_chart.geojson", "binary")
    (folder / "manifest.json").write_text(json.dumps({"stage": "predict", "model": "m1"}))
    result = export_product(LinkedDataConfig(data_root=str(root)), "ice_chart", DAY)
    assert result["features"] == n and result["rejected"] == 0
    graph = Graph().parse(result["rdf"], format="nt")
    wkts = [str(o) for o in graph.objects(
        predicate=URIRef("http://www.opengis.net/ont/geosparql#asWKT"))]
    assert len(wkts) == n
    assert all(w.startswith("<http://www.opengis.net/def/crs/OGC/1.3/CRS84> ") for w in wkts)
    exported = sorted((shapely.from_wkt(w.split("> ", 1)[1]) for w in wkts), key=lambda g: g.area)
    doc = json.loads((folder / f"{SCENE}_chart.geojson").read_text())
    published = sorted((shapely.geometry.shape(f["geometry"]) for f in doc["features"]),
                       key=lambda g: g.area)
    for got, want in zip(exported, published, strict=True):
        assert got.symmetric_difference(want).area < 1e-9 * want.area  # the same lon/lat polygon
    projected = gpd.read_parquet(folder / f"{SCENE}_chart.parquet")  # and the EPSG:3413 one
    to3413 = Transformer.from_crs("OGC:CRS84", "EPSG:3413", always_xy=True)
    for got, want in zip(exported, sorted(projected.geometry, key=lambda g: g.area), strict=True):
        back = shapely.transform(got, lambda xy: np.column_stack(to3413.transform(*xy.T)))
        assert back.symmetric_difference(want).area < 1e-6 * want.area + 1.0
