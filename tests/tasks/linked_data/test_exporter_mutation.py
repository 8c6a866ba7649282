"""The exporter checked triple by triple on hand-made batches (issue 19).

A recording sink keeps every ``write`` call; each test states the exact subjects, predicates,
objects, rejected rows (input, row, id, reason), feature count and bounding box the exporter must
produce for a few rows, computed here by hand (grid cells and WKT from the documented rules).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import shapely

from tasks.linked_data.export.exporter import RDF_TYPE, RdfExporter
from tasks.linked_data.export.stats import ExportStats
from tasks.linked_data.geometry import wkb_to_crs84
from tasks.linked_data.mapping import (
    GeometrySpec,
    Mapping,
    MappingError,
    PropertySpec,
    ResourceSpec,
    SourceSpec,
    TriplesMapSpec,
)
from tasks.linked_data.namespaces import CRS84, EEO, GEO, RDFS, XSD
from tasks.linked_data.readers import RowBatch
from tasks.linked_data.terms import TermArray

BASE = "https://example.org/d/"
WKT = GEO + "wktLiteral"


class RecordingSink:
    """Keeps (subject, predicate, object) rows of every write; null rows are skipped."""

    def __init__(self) -> None:
        self.triples: int = 0
        self.rows: list[tuple[str, str, tuple[Any, ...]]] = []
        self.calls: list[str] = []

    def write(self, subjects: TermArray, predicate: str, objects: TermArray) -> int:
        assert len(subjects) == len(objects), (predicate, len(subjects), len(objects))
        assert subjects.kind == "iri"
        self.calls.append(predicate)
        written = 0
        for s, o in zip(subjects.values.to_pylist(), objects.values.to_pylist(), strict=True):
            if s is None or o is None:
                continue
            self.rows.append((s, predicate, (objects.kind, o, objects.datatype, objects.lang)))
            written += 1
        self.triples += written
        return written

    def close(self) -> None:
        pass

    def of(self, predicate: str) -> list[tuple[str, tuple[Any, ...]]]:
        return [(s, o) for s, p, o in self.rows if p == predicate]


def _iri(value: str) -> tuple[Any, ...]:
    return ("iri", value, None, None)


def _lit(value: str, datatype: str | None = None, lang: str | None = None) -> tuple[Any, ...]:
    return ("literal", value, datatype, lang)


def _mapping(features: list[TriplesMapSpec], *, id_column: str | None = "pid",
             per_file: list[ResourceSpec] | None = None) -> Mapping:
    return Mapping(
        product="parcels", use_case="food_security", title="t",
        source=SourceSpec(format="geojson", file_pattern=r"^(?P<tile>.+)\.geojson$"),
        id_column=id_column, features=features, per_file=per_file or [], path="m.yaml",
    )


PARCELS = TriplesMapSpec(
    subject="feature/{tile}/{row}",
    types=["eeo:Parcel", "geo:Feature"],
    properties=[
        PropertySpec(predicate="eeo:score", column="score", datatype="xsd:double"),
        PropertySpec(predicate="eeo:absent", column="nope", optional=True),
        PropertySpec(predicate="eeo:inDataset", iri="dataset/{tile}"),
        PropertySpec(predicate="eeo:seeAlso", iri="http://other.org/{name}"),
        PropertySpec(predicate="rdfs:label", value="parcel {row}", lang="en"),
        PropertySpec(predicate="eeo:version", value="{version}", datatype="xsd:integer"),
        PropertySpec(predicate="eeo:name", column="name"),
    ],
    geometry=GeometrySpec(subject="geometry/{tile}/{row}", grid_cells=True),
)
CONTEXT = {"tile": "T1", "version": "3"}


def _cells(geom: shapely.Geometry) -> list[str]:
    """Grid cells by hand: a point's own 0.01 degree cell; else the box grown by 25 m."""
    x0, y0, x1, y1 = geom.bounds
    if geom.geom_type == "Point":
        dlon = dlat = 0.0
    else:
        dlat = 25.0 / 111_320.0
        dlon = 25.0 / (111_320.0 * max(math.cos(math.radians((y0 + y1) / 2)), 0.01))
    cols = range(math.floor((x0 - dlon) / 0.01), math.floor((x1 + dlon) / 0.01) + 1)
    rows = range(math.floor((y0 - dlat) / 0.01), math.floor((y1 + dlat) / 0.01) + 1)
    return [f"{i}_{j}" for j in rows for i in cols]


def _batch() -> tuple[RowBatch, list[shapely.Geometry | None]]:
    bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    geoms: list[shapely.Geometry | None] = [
        shapely.Point(10.001, 50.002),                 # 0 a: kept
        shapely.Point(3, 4),                           # 1 (no id): rejected, id
        None,                                          # 2 c: missing geometry
        shapely.Point(),                               # 3 d: empty
        shapely.Point(200, 10),                        # 4 e: outside lon/lat
        bowtie,                                        # 5 f: invalid
        shapely.box(10.0, 50.0, 10.02, 50.01),         # 6 g: kept
        shapely.Point(1, 1),                           # 7 i: score not a number
        shapely.Point(),                               # 8 j: score not a number and empty
        shapely.Point(-5.5, 40.25),                    # 9 h: kept
    ]
    table = pa.table({
        "pid": ["a", None, "c", "d", "e", "f", "g", "i", "j", "h"],
        "score": ["1.5", "2", "3", "4", "5", "6", "7.25", "x", "y", "-1"],
        "name": ["n a", "n1", "n c", "n d", "n e", "n f", "n/g", "n i", "n j", "nh"],
    })
    rows = np.arange(100, 110)
    return RowBatch(table, np.array(geoms, dtype=object), rows, "EPSG:4326"), geoms


def test_write_batch_triples_rejections_and_stats() -> None:
    mapping = _mapping([PARCELS])
    exporter = RdfExporter(mapping, BASE, wkt_precision=2)
    batch, geoms = _batch()
    sink, stats = RecordingSink(), ExportStats()
    exporter.write_batch(sink, PARCELS, batch, CONTEXT, stats, "T1.geojson")

    crs = "input CRS taken as EPSG:4326"
    assert stats.rejected == [
        {"input": "T1.geojson", "row": "101", "id": "None", "reason": "pid is empty"},
        {"input": "T1.geojson", "row": "102", "id": "c",
         "reason": "geometry is missing or not parsable (WKT/WKB/coordinates)"},
        {"input": "T1.geojson", "row": "103", "id": "d", "reason": "geometry is empty"},
        {"input": "T1.geojson", "row": "104", "id": "e",
         "reason": "coordinates outside lon/lat range after reprojection: missing or wrong CRS "
                   f"({crs}); set source.crs in the mapping"},
        {"input": "T1.geojson", "row": "105", "id": "f",
         "reason": f"invalid geometry: {shapely.is_valid_reason(geoms[5])}"},
        {"input": "T1.geojson", "row": "107", "id": "i",
         "reason": "score 'x' is not a finite number"},
        {"input": "T1.geojson", "row": "108", "id": "j",
         "reason": "score 'y' is not a finite number"},
    ]
    assert stats.rejected[4]["reason"].startswith("invalid geometry: Self-intersection")
    assert stats.features == 3
    assert stats.bounds == [-5.5, 40.25, 10.02, 50.01]

    ids = ["a", "g", "h"]
    subjects = [f"{BASE}feature/T1/{i}" for i in ids]
    nodes = [f"{BASE}geometry/T1/{i}" for i in ids]
    assert sink.of(RDF_TYPE)[:6] == [(s, _iri(EEO + "Parcel")) for s in subjects] + [
        (s, _iri(GEO + "Feature")) for s in subjects]
    assert sink.of(EEO + "score") == [
        (s, _lit(v, XSD + "double")) for s, v in zip(subjects, ["1.5", "7.25", "-1"], strict=True)]
    assert sink.of(EEO + "absent") == []
    assert sink.of(EEO + "inDataset") == [(s, _iri(BASE + "dataset/T1")) for s in subjects]
    assert sink.of(EEO + "seeAlso") == [
        (s, _iri(f"http://other.org/{n}"))
        for s, n in zip(subjects, ["n%20a", "n%2Fg", "nh"], strict=True)]
    assert sink.of(RDFS + "label") == [
        (s, _lit(f"parcel {i}", None, "en")) for s, i in zip(subjects, ids, strict=True)]
    assert sink.of(EEO + "version") == [(s, _lit("3", XSD + "integer")) for s in subjects]
    assert sink.of(EEO + "name") == [
        (s, _lit(n)) for s, n in zip(subjects, ["n a", "n/g", "nh"], strict=True)]
    assert sink.of(GEO + "hasGeometry") == [(s, _iri(g)) for s, g in zip(subjects, nodes,
                                                                         strict=True)]
    assert [(s, o) for s, o in sink.of(RDF_TYPE)[6:]] == [(g, _iri(GEO + "Geometry"))
                                                          for g in nodes]
    assert sink.of(GEO + "asWKT") == [
        (nodes[0], _lit(f"<{CRS84}> POINT (10 50)", WKT)),
        (nodes[1], _lit(f"<{CRS84}> POLYGON ((10.02 50, 10.02 50.01, 10 50.01, 10 50, 10.02 50))",
                        WKT)),
        (nodes[2], _lit(f"<{CRS84}> POINT (-5.5 40.25)", WKT)),
    ]
    expected_cells = [(nodes[k], _lit(c)) for k, index in enumerate((0, 6, 9))
                      for c in _cells(geoms[index])]
    assert len(expected_cells) == 1 + 12 + 1
    assert sink.of(EEO + "gridCell") == expected_cells
    assert sink.triples == len(sink.rows) == 3 * 11 + 14
    # types and properties first (mapping order), then the geometry nodes
    assert sink.calls == [RDF_TYPE, RDF_TYPE, EEO + "score", EEO + "inDataset", EEO + "seeAlso",
                          RDFS + "label", EEO + "version", EEO + "name", GEO + "hasGeometry",
                          RDF_TYPE, GEO + "asWKT", EEO + "gridCell"]


def test_native_geometries_are_filtered_with_the_kept_rows() -> None:
    spec = TriplesMapSpec(subject="f/{row}", geometry=GeometrySpec(subject="g/{row}"))
    exporter = RdfExporter(_mapping([spec]), BASE, wkt_precision=3)
    points = [shapely.Point(1.23456, 2.5), shapely.Point(300, 1), shapely.Point(-7.1, 8.0004)]
    native = wkb_to_crs84(pa.array(shapely.to_wkb(points)), None)
    assert native is not None
    table = pa.table({"pid": ["p", "q", "r"]})
    batch = RowBatch(table, native.shapes, np.array([0, 1, 2]), None, native.native)
    sink, stats = RecordingSink(), ExportStats()
    exporter.write_batch(sink, spec, batch, {}, stats, "in")
    assert sink.of(GEO + "asWKT") == [
        (BASE + "g/p", _lit(f"<{CRS84}> POINT (1.235 2.5)", WKT)),
        (BASE + "g/r", _lit(f"<{CRS84}> POINT (-7.1 8)", WKT)),
    ]
    assert sink.of(EEO + "gridCell") == []  # grid_cells not asked for
    assert [r["id"] for r in stats.rejected] == ["q"] and stats.features == 2
    assert stats.bounds == [-7.1, 2.5, 1.23456, 8.0004]


def test_all_rows_kept_and_default_row_ids() -> None:
    spec = TriplesMapSpec(subject="f/{row}", types=["eeo:Thing"],
                          properties=[PropertySpec(predicate="eeo:v", column="v")])
    exporter = RdfExporter(_mapping([spec], id_column=None), BASE)
    table = pa.table({"v": [5, 6]})
    batch = RowBatch(table, None, np.array([7, 9]), None)
    sink, stats = RecordingSink(), ExportStats()
    exporter.write_batch(sink, spec, batch, {}, stats, "in")
    assert sink.rows == [
        (BASE + "f/7", RDF_TYPE, _iri(EEO + "Thing")),
        (BASE + "f/9", RDF_TYPE, _iri(EEO + "Thing")),
        (BASE + "f/7", EEO + "v", _lit("5")), (BASE + "f/9", EEO + "v", _lit("6")),
    ]
    assert stats.features == 2 and stats.rejected == []
    assert stats.bounds == [math.inf, math.inf, -math.inf, -math.inf]  # no geometry


def test_rows_from_key_column_and_source_rows() -> None:
    spec = TriplesMapSpec(rows_from="items", subject="f/{row}",
                          properties=[PropertySpec(predicate="eeo:v", column="v")])
    exporter = RdfExporter(_mapping([spec], id_column="pid"), BASE)
    keyed = RowBatch(pa.table({"key": [3, 4], "v": ["x", "y"]}), None, np.array([0, 1]), None)
    sink, stats = RecordingSink(), ExportStats()
    exporter.write_batch(sink, spec, keyed, {}, stats, "in")
    assert sink.rows == [(BASE + "f/3", EEO + "v", _lit("x")), (BASE + "f/4", EEO + "v", _lit("y"))]
    plain = RowBatch(pa.table({"v": ["x", "y"]}), None, np.array([5, 6]), None)
    sink = RecordingSink()
    exporter.write_batch(sink, spec, plain, {}, stats, "in")
    assert [s for s, _, _ in sink.rows] == [BASE + "f/5", BASE + "f/6"]


def test_missing_id_column_and_all_rows_rejected() -> None:
    spec = TriplesMapSpec(subject="f/{row}", types=["eeo:Thing"])
    exporter = RdfExporter(_mapping([spec], id_column="pid"), BASE)
    batch = RowBatch(pa.table({"v": [1]}), None, np.array([0]), None)
    with pytest.raises(MappingError) as err:
        exporter.write_batch(RecordingSink(), spec, batch, {}, ExportStats(), "x.csv")
    assert str(err.value) == (
        "mapping m.yaml (input x.csv): id_column 'pid' is not an input column; columns: ['v']"
    )
    empty = RowBatch(pa.table({"pid": pa.array([None, None], pa.string())}), None,
                     np.array([4, 8]), None)
    sink, stats = RecordingSink(), ExportStats()
    exporter.write_batch(sink, spec, empty, {}, stats, "x.csv")
    assert sink.rows == [] and sink.calls == [] and stats.features == 0
    assert [(r["row"], r["id"], r["reason"]) for r in stats.rejected] == [
        ("4", "None", "pid is empty"), ("8", "None", "pid is empty")]


def test_template_errors_name_the_mapping_and_input() -> None:
    spec = TriplesMapSpec(subject="f/{row}",
                          properties=[PropertySpec(predicate="eeo:v", value="{unknown}")])
    exporter = RdfExporter(_mapping([spec], id_column=None), BASE)
    batch = RowBatch(pa.table({"v": [1]}), None, np.array([0]), None)
    with pytest.raises(MappingError, match=r"^mapping m.yaml \(input f.csv\): template "
                                           r"'\{unknown\}' uses \{unknown\}"):
        exporter.write_batch(RecordingSink(), spec, batch, {}, ExportStats(), "f.csv")


def test_write_resources_only_when_their_key_is_set() -> None:
    resources = [
        ResourceSpec(subject="obs/{tile}", types=["eeo:Observation", "sosa:Observation"],
                     properties=[PropertySpec(predicate="eeo:image", iri="image/{tile}_{year}"),
                                 PropertySpec(predicate="eeo:n", value="{year}",
                                              datatype="xsd:gYear")]),
        ResourceSpec(subject="model/{model}", types=["eeo:Model"], when="model"),
    ]
    exporter = RdfExporter(_mapping([PARCELS], per_file=resources), BASE)
    sink = RecordingSink()
    exporter.write_resources(sink, resources, {"tile": "T 1", "year": "2018", "model": ""}, "w")
    obs = BASE + "obs/T%201"
    assert sink.rows == [
        (obs, RDF_TYPE, _iri(EEO + "Observation")),
        (obs, RDF_TYPE, _iri("http://www.w3.org/ns/sosa/Observation")),
        (obs, EEO + "image", _iri(BASE + "image/T%201_2018")),
        (obs, EEO + "n", _lit("2018", XSD + "gYear")),
    ]
    sink = RecordingSink()
    exporter.write_resources(sink, resources[1:], {"model": "lstm"}, "w")
    assert sink.rows == [(BASE + "model/lstm", RDF_TYPE, _iri(EEO + "Model"))]
    sink = RecordingSink()
    exporter.write_resources(sink, resources[1:], {}, "w")
    assert sink.rows == []


def test_lon_lat_range_limits_are_inclusive() -> None:
    spec = TriplesMapSpec(subject="f/{row}", geometry=GeometrySpec(subject="g/{row}"))
    exporter = RdfExporter(_mapping([spec]), BASE)
    geoms = [shapely.Point(-180, -90), shapely.Point(180, 90),           # kept: on the limits
             shapely.Point(-180.5, 0), shapely.Point(180.5, 0),          # outside longitude
             shapely.Point(0, -90.5), shapely.Point(0, 90.5),            # outside latitude
             shapely.LineString([(-100, 95), (-95, 96)]),                # only the top above 90
             shapely.LineString([(170, -91), (175, -80)])]               # only the bottom below
    ids = list("abcdefgh")
    batch = RowBatch(pa.table({"pid": ids}), np.array(geoms, dtype=object), np.arange(8), None)
    sink, stats = RecordingSink(), ExportStats()
    exporter.write_batch(sink, spec, batch, {}, stats, "in")
    assert [r["id"] for r in stats.rejected] == list("cdefgh")
    assert {r["reason"].split(":")[0] for r in stats.rejected} == {
        "coordinates outside lon/lat range after reprojection"}
    assert [s for s, _ in sink.of(GEO + "hasGeometry")] == [BASE + "f/a", BASE + "f/b"]
    assert stats.bounds == [-180.0, -90.0, 180.0, 90.0]


def test_features_accumulate_and_rows_without_source_numbers() -> None:
    spec = TriplesMapSpec(subject="f/{row}", types=["eeo:Thing"])
    exporter = RdfExporter(_mapping([spec]), BASE)
    stats = ExportStats()
    table = pa.table({"pid": ["a", None, "c"]})
    no_rows = RowBatch(table, None, None, None)  # type: ignore[arg-type]
    for _ in range(2):
        exporter.write_batch(RecordingSink(), spec, no_rows, {}, stats, "in")
    assert stats.features == 4
    assert stats.rejected == [
        {"input": "in", "row": "1", "id": "None", "reason": "pid is empty"}] * 2


def test_geometries_of_a_batch_are_ignored_without_a_geometry_spec() -> None:
    spec = TriplesMapSpec(subject="f/{row}", types=["eeo:Thing"])
    exporter = RdfExporter(_mapping([spec]), BASE)
    batch = RowBatch(pa.table({"pid": ["a", "b"]}), np.array([None, shapely.Point()], dtype=object),
                     np.arange(2), None)
    sink, stats = RecordingSink(), ExportStats()
    exporter.write_batch(sink, spec, batch, {}, stats, "in")
    assert stats.rejected == [] and stats.features == 2
    assert sink.calls == [RDF_TYPE]


def test_templates_with_columns_and_context_codes_and_dates() -> None:
    spec = TriplesMapSpec(
        subject="feature/{tile}",  # no column: the same subject on every row
        properties=[
            PropertySpec(predicate="eeo:item", iri="item/{tile}/{name}"),
            PropertySpec(predicate="eeo:empty", value=""),
            PropertySpec(predicate="eeo:crop", column="crop", concept="crop_type"),
            PropertySpec(predicate="eeo:day", column="day", date_format="%d.%m.%Y"),
        ],
        geometry=GeometrySpec(subject="geometry/{tile}"),
    )
    exporter = RdfExporter(_mapping([spec], id_column=None), BASE)
    table = pa.table({"name": ["x", "y"], "crop": ["maize", "soy"],
                      "day": ["02.03.2018", "31.12.2017"]})
    geoms = np.array([shapely.Point(1, 2), shapely.Point(3, 4)], dtype=object)
    sink, stats = RecordingSink(), ExportStats()
    exporter.write_batch(sink, spec, RowBatch(table, geoms, np.arange(2), None), {"tile": "T9"},
                         stats, "in")
    subject = BASE + "feature/T9"
    assert sink.of(EEO + "item") == [(subject, _iri(BASE + "item/T9/x")),
                                     (subject, _iri(BASE + "item/T9/y"))]
    assert sink.of(EEO + "empty") == [(subject, _lit(""))] * 2
    assert sink.of(EEO + "crop") == [(subject, _iri(BASE + "concept/crop_type/maize")),
                                     (subject, _iri(BASE + "concept/crop_type/soy"))]
    assert sink.of(EEO + "day") == [(subject, _lit("2018-03-02", XSD + "date")),
                                    (subject, _lit("2017-12-31", XSD + "date"))]
    assert stats.dates == [dt.date(2017, 12, 31), dt.date(2018, 3, 2)]
    assert sink.of(GEO + "hasGeometry") == [(subject, _iri(BASE + "geometry/T9"))] * 2


@pytest.mark.parametrize("where_bad", ["subject", "geometry", "iri", "iri_column", "column"])
def test_errors_name_the_mapping_and_the_input(where_bad: str) -> None:
    subject = "f/{nope}" if where_bad == "subject" else "f/{row}"
    geometry = GeometrySpec(subject="g/{nope}" if where_bad == "geometry" else "g/{row}")
    props = {
        "iri": PropertySpec(predicate="eeo:p", iri="x/{nope}"),
        "iri_column": PropertySpec(predicate="eeo:p", iri="x/{v}/{nope}"),
        "column": PropertySpec(predicate="eeo:p", column="missing"),
    }
    spec = TriplesMapSpec(subject=subject, geometry=geometry,
                          properties=[props[where_bad]] if where_bad in props else [])
    exporter = RdfExporter(_mapping([spec], id_column=None), BASE)
    batch = RowBatch(pa.table({"v": ["a"]}), np.array([shapely.Point(1, 1)], dtype=object),
                     np.arange(1), None)
    with pytest.raises(MappingError) as err:
        exporter.write_batch(RecordingSink(), spec, batch, {}, ExportStats(), "f.csv")
    assert str(err.value).startswith("mapping m.yaml (input f.csv): ")


def test_resource_errors_name_the_caller_and_a_skipped_resource_does_not_stop_the_rest() -> None:
    resources = [ResourceSpec(subject="model/{model}", when="model"),
                 ResourceSpec(subject="obs/{tile}", types=["eeo:Observation"])]
    exporter = RdfExporter(_mapping([PARCELS], per_file=resources), BASE)
    sink = RecordingSink()
    exporter.write_resources(sink, resources, {"tile": "T1"}, "w")
    assert sink.rows == [(BASE + "obs/T1", RDF_TYPE, _iri(EEO + "Observation"))]
    for bad in (ResourceSpec(subject="obs/{nope}"),
                ResourceSpec(subject="obs/{tile}",
                             properties=[PropertySpec(predicate="eeo:p", iri="i/{nope}")])):
        with pytest.raises(MappingError) as err:
            exporter.write_resources(RecordingSink(), [bad], {"tile": "T1"}, "where-it-is")
        assert str(err.value).startswith("where-it-is: template ")
