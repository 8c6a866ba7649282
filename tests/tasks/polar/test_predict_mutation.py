"""predict's scene checks, georeference, input transform and helpers on hand-made inputs (issue 19).

Each function is fed small inputs whose result is worked out here: the mismatch lines of a scene
against a model's input contract (every field, the 1 % spacing tolerance, the fallbacks for
unknown values), the refusal message, the geotransform from attributes or rioxarray metadata,
``(value - mean) / std`` with non-finite values set to 0, row strips against the scene's own
values, batches of equal tiles, GeoJSON precision and the CRS84 polygon of a projected one.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from shapely.geometry import Point, Polygon, box, shape

from tasks.polar import predict as pr
from tasks.polar.schema import BACKSCATTER_VAR

CONTRACT = {"modes": ["ew"], "pixel_spacings_m": [40, 100.0], "crs": ["epsg:3413"],
            "bands": ["HH", "HV", "incidence"]}
FITS = {"mode": "EW", "pixel_spacing_m": 40.0, "crs": "EPSG:3413"}
BANDS = ["HH", "HV", "incidence"]


def test_a_scene_that_fits_has_no_mismatch() -> None:
    assert pr.scene_model_mismatches(FITS, BANDS, CONTRACT) == []
    assert pr.scene_model_mismatches({}, [], {}) == []  # an empty contract accepts anything
    # the mode from the scene name, the spacing from the geotransform, 1 % off is accepted
    named = {"scene_id": "S1B_EW_GRDM_1SDH_X", "transform": [0.0, -101.0, 0.0, 0.0, 0.0, 101.0],
             "crs": "EPSG:3413"}
    assert pr.scene_model_mismatches(named, BANDS, CONTRACT) == []
    assert pr.scene_model_mismatches({**FITS, "pixel_spacing_m": 40.4}, BANDS, CONTRACT) == []


def test_every_mismatching_field_is_one_line_naming_both_sides() -> None:
    scene = {"mode": "iw", "pixel_spacing_m": 40.5, "crs": "EPSG:3996"}
    assert pr.scene_model_mismatches(scene, ["HH", "incidence"], CONTRACT) == [
        "acquisition mode: model expects EW, scene is IW",
        "pixel spacing: model expects 40 m or 100 m, scene has 40.5 m",
        "CRS: model expects EPSG:3413, scene is EPSG:3996",
        "bands: model needs ['HH', 'HV', 'incidence'], scene has ['HH', 'incidence'] "
        "(['HV'] missing)",
    ]
    two_modes = {**CONTRACT, "modes": ["EW", "iw"]}
    assert pr.scene_model_mismatches({**FITS, "mode": "SM"}, BANDS, two_modes) == [
        "acquisition mode: model expects EW or IW, scene is SM"]
    assert pr.scene_model_mismatches({**FITS, "pixel_spacing_m": 102.0}, BANDS, CONTRACT) == [
        "pixel spacing: model expects 40 m or 100 m, scene has 102 m"]
    assert pr.scene_model_mismatches({**FITS, "pixel_spacing_m": 98.9}, BANDS, CONTRACT) == [
        "pixel spacing: model expects 40 m or 100 m, scene has 98.9 m"]


def test_unknown_scene_values_are_named_unknown() -> None:
    unknown = {"scene_id": "not-a-sentinel-name"}
    assert pr.scene_model_mismatches(unknown, BANDS, CONTRACT) == [
        "acquisition mode: model expects EW, scene is unknown (no 'mode' attribute, scene_id "
        "names none)",
        "pixel spacing: model expects 40 m or 100 m, scene has unknown",
        "CRS: model expects EPSG:3413, scene is unknown",
    ]


def _scene(attrs: dict[str, Any], bands: list[str], size: int = 4) -> xr.Dataset:
    values = np.zeros((len(bands), size, size), np.float32)
    return xr.Dataset({BACKSCATTER_VAR: (("band", "y", "x"), values)},
                      coords={"band": bands}, attrs=attrs)


def test_check_scene_fits_model_names_scene_model_and_every_problem(tmp_path: Path) -> None:
    model = SimpleNamespace(meta={"input_contract": {k: v for k, v in CONTRACT.items()
                                                     if k != "bands"},
                                  "bands": BANDS},
                            model_dir=tmp_path / "model")
    pr.check_scene_fits_model(_scene(FITS, BANDS), tmp_path / "s.zarr", model)  # type: ignore[arg-type]
    with pytest.raises(pr.SceneModelMismatch) as info:
        pr.check_scene_fits_model(_scene({**FITS, "mode": "IW"}, ["HH", "HV"]),
                                  tmp_path / "s.zarr", model)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"scene {tmp_path / 's.zarr'} does not fit model {tmp_path / 'model'}:\n"
        "  - acquisition mode: model expects EW, scene is IW\n"
        "  - bands: model needs ['HH', 'HV', 'incidence'], scene has ['HH', 'HV'] "
        "(['incidence'] missing)\n"
        "harmonise the product with the settings the model was trained on (e.g. "
        "harmonise.required_mode / pixel_spacing_m / target_crs), or chart it with a model "
        "trained on such scenes (predict.model)")


def test_scene_georeference_from_attributes_or_rioxarray(tmp_path: Path) -> None:
    import rioxarray  # noqa: F401
    from affine import Affine

    gdal = [1000.0, 40.0, 0.0, 5000.0, 0.0, -40.0]
    crs, transform = pr.scene_georeference(_scene({"crs": "EPSG:3413", "transform": gdal},
                                                  BANDS), tmp_path / "a.zarr")
    assert crs == "EPSG:3413" and transform == tuple(gdal)
    assert all(isinstance(v, float) for v in transform)
    # no attributes: the rioxarray spatial_ref and the x / y coordinates
    t = Affine.from_gdal(*gdal)
    scene = _scene({}, BANDS).assign_coords(x=t.c + t.a * (np.arange(4) + 0.5),
                                            y=t.f + t.e * (np.arange(4) + 0.5))
    scene = scene.rio.write_crs("EPSG:3996")
    crs, transform = pr.scene_georeference(scene, tmp_path / "b.zarr")
    assert crs == "EPSG:3996"
    np.testing.assert_allclose(transform, gdal)
    # the CRS from the attributes, the transform from rioxarray
    crs, transform = pr.scene_georeference(scene.assign_attrs(crs="EPSG:3413"), tmp_path / "c")
    assert crs == "EPSG:3413"
    np.testing.assert_allclose(transform, gdal)
    # the spatial_ref's GeoTransform alone (no x / y coordinates)
    stored = _scene({}, BANDS).rio.write_crs("EPSG:3413").rio.write_transform(t)
    assert pr.scene_georeference(stored, tmp_path / "e") == ("EPSG:3413", tuple(gdal))
    # a CRS but nothing to place the grid: refused (rioxarray alone would give the identity
    # transform, a chart at 0, 0 with 1 m pixels)
    for attrs in ({}, {"crs": "EPSG:3413"}, {"transform": gdal}, {"crs": "EPSG:3413",
                                                                  "transform": gdal[:5]}):
        with pytest.raises(ValueError) as info:
            pr.scene_georeference(_scene(attrs, BANDS), tmp_path / "d.zarr")
        assert str(info.value) == (
            f"{tmp_path / 'd.zarr'}: no CRS / geotransform (attributes 'crs' and 'transform', "
            "or rioxarray spatial_ref); re-run harmonise")


def test_normalise_bands_by_hand() -> None:
    values = np.array([[[1.0, np.nan]], [[-3.0, np.inf]], [[30.0, -np.inf]]])  # (band, 1, 2)
    before = values.copy()
    got = pr.normalise_bands(values, np.array([2.0, -1.0, 35.0]), np.array([0.5, 4.0, 10.0]))
    assert got.dtype == np.float32 and got.shape == (3, 1, 2)
    np.testing.assert_allclose(got[:, 0, 0], [(1 - 2) / 0.5, (-3 + 1) / 4, (30 - 35) / 10])
    np.testing.assert_array_equal(got[:, 0, 1], [0.0, 0.0, 0.0])  # NaN, +inf, -inf -> 0
    np.testing.assert_array_equal(values, before)  # a new array
    batch = np.stack([values, values + 1.0])  # (batch, band, y, x)
    np.testing.assert_allclose(
        pr.normalise_bands(batch, np.zeros(3), np.ones(3))[1, :, 0, 0], [2.0, -2.0, 31.0])


def test_row_strips_follow_the_chunk_rows_and_drop_rows_above() -> None:
    values = np.arange(2 * 8 * 3, dtype=np.float64).reshape(2, 8, 3)
    scene = xr.DataArray(da.from_array(values, chunks=(2, 3, 3)), dims=("band", "y", "x"))
    strips = pr.RowStrips(scene)
    assert list(strips.starts) == [0, 3, 6, 8]
    window = strips.rows(1, 3)  # inside strip 0
    assert window.dtype == np.float32
    np.testing.assert_array_equal(window, values[:, 1:3])
    np.testing.assert_array_equal(strips.rows(2, 7, slice(1, 3)), values[:, 2:7, 1:3])
    assert sorted(strips.decoded) == [0, 1, 2]
    np.testing.assert_array_equal(strips.rows(6, 8), values[:, 6:8])
    assert sorted(strips.decoded) == [2]  # strips above row 6 are dropped
    np.testing.assert_array_equal(strips.rows(7, 8), values[:, 7:8])
    # not chunked: fixed strips of rows_per_strip rows
    plain = pr.RowStrips(xr.DataArray(values, dims=("band", "y", "x")), rows_per_strip=3)
    assert list(plain.starts) == [0, 3, 6, 9]
    np.testing.assert_array_equal(plain.rows(0, 8), values)
    np.testing.assert_array_equal(plain.rows(5, 8), values[:, 5:8])


def test_row_strips_of_very_tall_chunks_are_fixed_strips() -> None:
    tall = pr.MAX_STRIP_ROWS + 4
    scene = xr.DataArray(da.zeros((1, tall, 1), chunks=(1, tall, 1)), dims=("band", "y", "x"))
    assert list(pr.RowStrips(scene, rows_per_strip=2048).starts) == [0, 2048, 4096, 6144]
    exact = xr.DataArray(da.zeros((1, pr.MAX_STRIP_ROWS, 1), chunks=(1, pr.MAX_STRIP_ROWS, 1)),
                         dims=("band", "y", "x"))
    assert list(pr.RowStrips(exact, rows_per_strip=100).starts) == [0, pr.MAX_STRIP_ROWS]


def test_group_equal_tiles_by_hand() -> None:
    tiles = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (2, 0)]
    extent = {(0, 3): "edge", (2, 0): "edge"}.get
    assert pr.group_equal_tiles(tiles, lambda t: extent(t, "full"), 2) == [
        [(0, 0), (0, 1)], [(0, 2)], [(0, 3)], [(1, 0), (1, 1)], [(2, 0)]]
    assert pr.group_equal_tiles(tiles, lambda t: "full", 3) == [
        tiles[0:3], tiles[3:6], tiles[6:7]]
    assert pr.group_equal_tiles([], lambda t: "full", 3) == []


def test_geojson_coordinates_are_rounded_to_1e7_degree() -> None:
    text = pr.shapely_to_geojson(box(10.123456789, 60.0000000449, 11.0, 61.00000006))
    ring = json.loads(text)["coordinates"][0]
    assert json.loads(text)["type"] == "Polygon"
    assert {round(x, 7) for x, _ in ring} == {10.1234568, 11.0}
    assert {round(y, 7) for _, y in ring} == {60.0, 61.0000001}
    for x, y in ring:
        assert x == pytest.approx(round(x, 7), abs=1e-12)
        assert y == pytest.approx(round(y, 7), abs=1e-12)


def test_to_crs84_densifies_orients_and_opens_polar_polygons() -> None:
    from pyproj import CRS, Transformer

    forward = Transformer.from_crs("EPSG:3413", "OGC:CRS84", always_xy=True)
    square = box(0.0, -2_000_000.0, 100_000.0, -1_900_000.0)  # away from the antimeridian
    got = pr.to_crs84(square, "EPSG:3413", 25_000.0)
    ring = np.asarray(got.exterior.coords)
    assert len(ring) == 4 * 4 + 1  # every 100 km edge in four 25 km pieces
    corners = forward.transform([0.0, 100_000.0], [-2_000_000.0, -1_900_000.0])
    for lon, lat in zip(*corners, strict=True):
        assert np.hypot(ring[:, 0] - lon, ring[:, 1] - lat).min() < 1e-9
    assert got.exterior.is_ccw and got.is_valid
    # a square around the north pole: cut along longitude 180, spans -180..180 afterwards
    pole = box(-300_000.0, -300_000.0, 300_000.0, 300_000.0)
    opened = pr.to_crs84(pole, "EPSG:3413", 50_000.0)
    assert opened.is_valid and opened.geom_type == "Polygon" and opened.exterior.is_ccw
    west, south, east, north = opened.bounds
    assert west == pytest.approx(-180.0, abs=1e-3) and east == pytest.approx(180.0, abs=1e-3)
    assert north == pytest.approx(90.0, abs=1e-3) and 86.0 < south < 87.5
    assert shape(json.loads(pr.shapely_to_geojson(opened))).is_valid
    polar = CRS("EPSG:3413")
    assert pr._antimeridian_cut(polar, square.bounds) is None  # far from longitude 180
    cut = pr._antimeridian_cut(polar, pole.bounds)
    assert isinstance(cut, Polygon) and cut.intersects(pole)
    # the cut runs along longitude 180
    lon180 = Transformer.from_crs("OGC:CRS84", "EPSG:3413", always_xy=True).transform(180.0, 88.0)
    assert cut.distance(Point(*lon180)) < 1e-6
    assert cut.area == pytest.approx(0.02 * cut.length / 2, rel=0.01)  # 1 cm wide
