"""The GeoArrow WKB fast path gives the same CRS84 geometries as the GEOS path, or declines."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import shapely

from tasks.linked_data.export import wkt_literals
from tasks.linked_data.geometry import native_wkt, wkb_to_crs84
from tasks.linked_data.readers import reproject_to_crs84


def _wkb(geoms: list) -> pa.Array:
    return pa.array(shapely.to_wkb(np.array(geoms, dtype=object)), pa.binary())


def _geos_path(geoms: list, crs: str | None) -> np.ndarray:
    return reproject_to_crs84(shapely.from_wkb(shapely.to_wkb(np.array(geoms, dtype=object))), crs)


@pytest.mark.parametrize(
    "geoms",
    [
        [shapely.box(500_000, 5_200_000, 500_120, 5_200_250), None,
         shapely.Polygon([(510_000, 5_210_000), (510_300, 5_210_000), (510_300, 5_210_300),
                          (510_000, 5_210_300)],
                         holes=[[(510_100, 5_210_100), (510_200, 5_210_100),
                                 (510_200, 5_210_200)]])],
        [shapely.Point(500_000, 5_200_000), shapely.Point(610_123.4, 5_300_456.7)],
        [shapely.MultiPolygon([shapely.box(500_000, 5_200_000, 500_100, 5_200_100),
                               shapely.box(500_200, 5_200_200, 500_300, 5_200_300)])],
        [shapely.LineString([(500_000, 5_200_000), (501_000, 5_201_000), (502_000, 5_200_500)])],
    ],
    ids=["polygons-with-hole-and-null", "points", "multipolygon", "linestring"],
)
def test_fast_path_matches_geos_path(geoms: list) -> None:
    fast = wkb_to_crs84(_wkb(geoms), "EPSG:32633")
    assert fast is not None
    slow = _geos_path(geoms, "EPSG:32633")
    assert len(fast.shapes) == len(fast.native) == len(geoms)
    for got, want in zip(fast.shapes, slow, strict=True):
        if want is None:
            assert got is None
            continue
        assert got.geom_type == want.geom_type
        np.testing.assert_allclose(
            shapely.get_coordinates(got), shapely.get_coordinates(want), rtol=0, atol=1e-12
        )
    present = np.array([g is not None for g in geoms])
    fast_wkt = native_wkt(fast.native, 7).to_pylist()
    slow_wkt = shapely.to_wkt(slow[present], rounding_precision=7, trim=True)
    assert [w for w in fast_wkt if w is not None] == list(slow_wkt)
    assert fast.native.is_null().to_pylist() == [not p for p in present]


def test_fast_path_without_reprojection_keeps_coordinates() -> None:
    geoms = [shapely.box(15.1, 46.2, 15.2, 46.3)]
    fast = wkb_to_crs84(_wkb(geoms), None)
    assert fast is not None
    assert fast.shapes[0].equals(geoms[0])
    assert native_wkt(fast.native, 7).to_pylist() == [
        "POLYGON ((15.2 46.2, 15.2 46.3, 15.1 46.3, 15.1 46.2, 15.2 46.2))"
    ]


@pytest.mark.parametrize(
    "geoms",
    [
        # mixed single and multi: GeoArrow would promote every row to MULTIPOLYGON
        [shapely.box(0, 0, 1, 1), shapely.MultiPolygon([shapely.box(2, 2, 3, 3)])],
        [shapely.Point(1, 2), shapely.box(0, 0, 1, 1)],  # mixed types
        [shapely.Point(1, 2, 3)],  # Z coordinates
        [None, None],  # nothing to parse
    ],
    ids=["single-and-multi", "mixed-types", "xyz", "all-null"],
)
def test_fast_path_declines_what_it_does_not_cover(geoms: list) -> None:
    assert wkb_to_crs84(_wkb(geoms), None) is None


def test_unparsable_wkb_goes_to_the_geos_path() -> None:
    wkb = pa.array([b"not wkb at all", shapely.to_wkb(shapely.Point(1, 2))], pa.binary())
    assert wkb_to_crs84(wkb, None) is None
    # the GEOS path reports such rows one by one (None = not parsable)
    parsed = shapely.from_wkb(wkb.to_numpy(zero_copy_only=False), on_invalid="ignore")
    assert parsed[0] is None and parsed[1].equals(shapely.Point(1, 2))


def test_wkt_literals_agree_between_paths() -> None:
    geoms = [shapely.box(500_000, 5_200_000, 500_120, 5_200_250)]
    fast = wkb_to_crs84(_wkb(geoms), "EPSG:32633")
    assert fast is not None
    assert wkt_literals(fast.shapes, 7, fast.native).to_pylist() == wkt_literals(
        _geos_path(geoms, "EPSG:32633"), 7
    ).to_pylist()


def _export_wkts(ld_cfg, frame, tmp_path) -> tuple[dict, list[str]]:
    from tasks.linked_data.export import export_product

    path = tmp_path / "T1_instances.parquet"
    frame.to_parquet(path)
    result = export_product(ld_cfg, "crop_field_instances", "2017-09_2018-08", [path])
    wkts = [
        line.split('"', 2)[1]
        for line in open(result["rdf"], encoding="utf-8")
        if "geosparql#asWKT" in line
    ]
    return result, wkts


def test_export_rejects_invalid_polygons_on_the_fast_path(ld_cfg, tmp_path) -> None:
    from tests.tasks.linked_data.linked_data_samples import crop_fields

    frame = crop_fields(n_per_side=2)
    bowtie = shapely.Polygon([(540_000, 5_330_000), (540_100, 5_330_100),
                              (540_100, 5_330_000), (540_000, 5_330_100)])
    frame.loc[1, "geometry"] = bowtie
    result, wkts = _export_wkts(ld_cfg, frame, tmp_path)
    assert result["features"] == 3 and result["rejected"] == 1
    assert ",1,1,invalid geometry: Self-intersection" in open(result["rejected_csv"]).read()
    assert len(wkts) == 3 and all(w.split("> ", 1)[1].startswith("POLYGON ((") for w in wkts)
    lon, lat = shapely.from_wkt(wkts[0].split("> ", 1)[1]).centroid.coords[0]
    assert 15.4 < lon < 15.6 and 48.0 < lat < 48.2  # UTM 33N reprojected to CRS84


def test_export_keeps_single_and_multi_polygons_apart(ld_cfg, tmp_path) -> None:
    from tests.tasks.linked_data.linked_data_samples import crop_fields

    frame = crop_fields(n_per_side=2)
    frame.loc[0, "geometry"] = shapely.MultiPolygon(
        [shapely.box(540_000, 5_330_000, 540_050, 5_330_050),
         shapely.box(540_100, 5_330_100, 540_150, 5_330_150)]
    )
    _, wkts = _export_wkts(ld_cfg, frame, tmp_path)
    kinds = sorted(w.split("> ", 1)[1].split(" (")[0] for w in wkts)
    assert kinds == ["MULTIPOLYGON", "POLYGON", "POLYGON", "POLYGON"]
