"""GeoSPARQL 1.0 conformance: the standard's 30 requirements as executable checks.

Each requirement (OGC 11-052r4, ``/req/...``) has checks: ``ASK`` queries that must answer true on
:data:`DATASET` (optionally after an update), in WKT and GML variants where the requirement
concerns literals or features (``mixed``: WKT first argument, GML second, in EPSG:4326 lat/lon).
Expected values are written by hand from the geometry (never computed by the code under test);
a "false" expectation is written as ``FILTER(f(...) = false)``, so an unbound (unsupported)
function fails the check instead of passing it.

A requirement passes when all its checks pass; a conformance class passes when all its
requirements pass. :func:`run_suite` runs everything on one :class:`Target` (eeflow embedded,
eeflow's HTTP server, plain pyoxigraph, plain ``oxigraph serve``); ``bench/geosparql_
conformance.py`` and ``tests/tasks/linked_data/geosparql`` use it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

GRAPH = "http://example.org/graph/conformance"
EPSG4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"
CRS84_IRI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
UTM31N = "http://www.opengis.net/def/crs/EPSG/0/32631"
GML_NS = "http://www.opengis.net/gml/3.2"
PREFIXES = """PREFIX geo: <http://www.opengis.net/ont/geosparql#>
PREFIX geof: <http://www.opengis.net/def/function/geosparql/>
PREFIX uom: <http://www.opengis.net/def/uom/OGC/1.0/>
PREFIX sf: <http://www.opengis.net/ont/sf#>
PREFIX gml: <http://www.opengis.net/ont/gml#>
PREFIX ex: <http://example.org/ApplicationSchema#>
PREFIX xsd: <http://www.w3.org/2001/XMLSchema#>
PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>
"""
CLASSES = (
    "Core",
    "Topology Vocabulary",
    "Geometry Extension",
    "Geometry Topology",
    "RDFS Entailment",
    "Query Rewrite",
)

#: Test shapes in CRS84 (lon lat): A a 4x4 square; B inside A; C touching A; D overlapping A;
#: E far away; F inside A sharing two edges; G a line crossing A; H a point inside B.
SHAPES: dict[str, list[tuple[float, float]] | tuple[float, float]] = {
    "A": [(0, 0), (4, 0), (4, 4), (0, 4), (0, 0)],
    "B": [(1, 1), (2, 1), (2, 2), (1, 2), (1, 1)],
    "C": [(4, 0), (6, 0), (6, 2), (4, 2), (4, 0)],
    "D": [(3, 3), (5, 3), (5, 5), (3, 5), (3, 3)],
    "E": [(10, 10), (11, 10), (11, 11), (10, 11), (10, 10)],
    "F": [(0, 0), (2, 0), (2, 2), (0, 2), (0, 0)],
    "G": [(-1, 2), (5, 2)],
    "H": (1.5, 1.5),
}
VARIANTS = ("wkt", "gml")


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def wkt(name: str) -> str:
    """CRS84 WKT of a shape (no CRS IRI)."""
    shape = SHAPES[name]
    if isinstance(shape, tuple):
        return f"POINT({shape[0]} {shape[1]})"
    coords = ", ".join(f"{x} {y}" for x, y in shape)
    return f"POLYGON(({coords}))" if shape[0] == shape[-1] else f"LINESTRING({coords})"


def gml(name: str) -> str:
    """GML 3.2 of a shape in EPSG:4326 (latitude first), written by hand-rolled templates."""
    shape = SHAPES[name]
    head = f'xmlns:gml="{GML_NS}" srsName="{EPSG4326}"'
    if isinstance(shape, tuple):
        return f"<gml:Point {head}><gml:pos>{shape[1]} {shape[0]}</gml:pos></gml:Point>"
    pos = " ".join(f"{y} {x}" for x, y in shape)
    if shape[0] != shape[-1]:
        return f"<gml:LineString {head}><gml:posList>{pos}</gml:posList></gml:LineString>"
    return (
        f"<gml:Polygon {head}><gml:exterior><gml:LinearRing><gml:posList>{pos}</gml:posList>"
        "</gml:LinearRing></gml:exterior></gml:Polygon>"
    )


def literal(name: str, variant: str) -> str:
    """SPARQL/Turtle literal of a shape: CRS84 WKT or EPSG:4326 GML."""
    if variant == "gml":
        return f'"{_escape(gml(name))}"^^geo:gmlLiteral'
    return f'"{wkt(name)}"^^geo:wktLiteral'


def _dataset() -> str:
    lines = [
        "@prefix geo: <http://www.opengis.net/ont/geosparql#> .",
        "@prefix sf: <http://www.opengis.net/ont/sf#> .",
        "@prefix gml: <http://www.opengis.net/ont/gml#> .",
        "@prefix ex: <http://example.org/ApplicationSchema#> .",
        "ex:so1 a geo:SpatialObject .",
    ]
    for variant in VARIANTS:
        prop = "geo:asGML" if variant == "gml" else "geo:asWKT"
        for name in SHAPES:
            f, g = f"ex:f{name}_{variant}", f"ex:g{name}_{variant}"
            lines.append(
                f"{f} a geo:Feature ; geo:hasGeometry {g} ; geo:hasDefaultGeometry {g} .\n"
                f"{g} a geo:Geometry ; {prop} {literal(name, variant)} ."
            )
    lines += [
        'ex:gEmpty_wkt a geo:Geometry ; geo:asWKT ""^^geo:wktLiteral .',
        'ex:gEmpty_gml a geo:Geometry ; geo:asGML ""^^geo:gmlLiteral .',
        'ex:gPointZ_wkt a geo:Geometry ; geo:asWKT "POINT Z (1 2 3)"^^geo:wktLiteral .',
        'ex:gPointZ_gml a geo:Geometry ; geo:asGML "<gml:Point xmlns:gml=\\"'
        + GML_NS
        + '\\" srsName=\\"'
        + EPSG4326
        + '\\" srsDimension=\\"3\\"><gml:pos>2 1 3</gml:pos></gml:Point>"^^geo:gmlLiteral .',
        "ex:eF geo:hasDefaultGeometry ex:eG .",
        'ex:eG geo:asWKT "POINT(7 7)"^^geo:wktLiteral .',
        "ex:sfPoly a sf:Polygon .",
        "ex:sfMLS a sf:MultiLineString .",
        "ex:sfTIN a sf:TIN .",
        "ex:gmlPoly a gml:Polygon .",
        "ex:gmlMC a gml:MultiCurve .",
        "ex:gmlTin a gml:Tin .",
    ]
    for family in ("sf", "eh", "rcc8"):
        for prop in _family(family):
            lines.append(f"ex:topoX geo:{prop} ex:topoY_{family} .")
    return "\n".join(lines) + "\n"


def _family(family: str) -> tuple[str, ...]:
    from tasks.linked_data.geosparql.functions import EH_PATTERNS, RCC8_PATTERNS, SF_PATTERNS

    if family == "sf":
        return (*SF_PATTERNS, "sfCrosses", "sfOverlaps")
    return tuple(EH_PATTERNS if family == "eh" else RCC8_PATTERNS)


DATASET = _dataset()


@dataclass(frozen=True)
class Check:
    """One ASK query that must answer true (after ``update``, when given)."""

    name: str
    ask: str
    update: str | None = None


@dataclass
class Requirement:
    """A requirement of the standard with its checks."""

    number: int
    path: str
    klass: str
    title: str
    checks: list[Check] = field(default_factory=list)


def _ask(body: str) -> str:
    return f"{PREFIXES}ASK {{ {body} }}"


def _true(expression: str) -> str:
    return _ask(f"FILTER({expression})")


def _false(expression: str) -> str:
    return _ask(f"FILTER(({expression}) = false)")


def _args(a: str, b: str, variant: str) -> tuple[str, str]:
    if variant == "mixed":
        return literal(a, "wkt"), literal(b, "gml")
    return literal(a, variant), literal(b, variant)


#: (function, first, second, holds) for the topology function families (req. 22-24).
TOPOLOGY_CASES: dict[str, list[tuple[str, str, str, bool]]] = {
    "sf": [
        ("sfEquals", "A", "A", True), ("sfEquals", "A", "B", False),
        ("sfDisjoint", "A", "E", True), ("sfDisjoint", "A", "C", False),
        ("sfIntersects", "A", "D", True), ("sfIntersects", "A", "E", False),
        ("sfTouches", "A", "C", True), ("sfTouches", "A", "B", False),
        ("sfCrosses", "G", "A", True), ("sfCrosses", "B", "A", False),
        ("sfWithin", "B", "A", True), ("sfWithin", "A", "B", False),
        ("sfContains", "A", "H", True), ("sfContains", "B", "A", False),
        ("sfOverlaps", "A", "D", True), ("sfOverlaps", "A", "C", False),
    ],
    "eh": [
        ("ehEquals", "A", "A", True), ("ehEquals", "A", "F", False),
        ("ehDisjoint", "A", "E", True), ("ehDisjoint", "A", "C", False),
        ("ehMeet", "A", "C", True), ("ehMeet", "A", "D", False),
        ("ehOverlap", "A", "D", True), ("ehOverlap", "A", "B", False),
        ("ehCovers", "A", "F", True), ("ehCovers", "A", "B", False),
        ("ehCoveredBy", "F", "A", True), ("ehCoveredBy", "B", "A", False),
        ("ehInside", "B", "A", True), ("ehInside", "F", "A", False),
        ("ehContains", "A", "B", True), ("ehContains", "A", "F", False),
    ],
    "rcc8": [
        ("rcc8eq", "A", "A", True), ("rcc8eq", "A", "F", False),
        ("rcc8dc", "A", "E", True), ("rcc8dc", "A", "C", False),
        ("rcc8ec", "A", "C", True), ("rcc8ec", "A", "D", False),
        ("rcc8po", "A", "D", True), ("rcc8po", "A", "B", False),
        ("rcc8tppi", "A", "F", True), ("rcc8tppi", "A", "B", False),
        ("rcc8tpp", "F", "A", True), ("rcc8tpp", "B", "A", False),
        ("rcc8ntpp", "B", "A", True), ("rcc8ntpp", "F", "A", False),
        ("rcc8ntppi", "A", "B", True), ("rcc8ntppi", "A", "F", False),
    ],
}
#: (relation, subject shape, object shape) for the query-rewrite requirements (28-30).
REWRITE_CASES: dict[str, list[tuple[str, str, str]]] = {
    "sf": [("sfWithin", "B", "A"), ("sfContains", "A", "B"), ("sfTouches", "A", "C"),
           ("sfOverlaps", "A", "D"), ("sfDisjoint", "A", "E"), ("sfCrosses", "G", "A")],
    "eh": [("ehInside", "B", "A"), ("ehMeet", "A", "C"), ("ehCoveredBy", "F", "A"),
           ("ehOverlap", "A", "D")],
    "rcc8": [("rcc8ntpp", "B", "A"), ("rcc8ec", "A", "C"), ("rcc8po", "A", "D"),
             ("rcc8tpp", "F", "A")],
}
GML_PROFILE = {
    "Point": '<gml:Point xmlns:gml="{ns}" srsName="{crs}"><gml:pos>1 1</gml:pos></gml:Point>',
    "LineString": '<gml:LineString xmlns:gml="{ns}" srsName="{crs}"><gml:posList>0 0 1 1 2 0'
    "</gml:posList></gml:LineString>",
    "Polygon with hole": '<gml:Polygon xmlns:gml="{ns}" srsName="{crs}"><gml:exterior>'
    "<gml:LinearRing><gml:posList>0 0 0 3 3 3 3 0 0 0</gml:posList></gml:LinearRing>"
    "</gml:exterior><gml:interior><gml:LinearRing><gml:posList>1 1 2 1 2 2 1 2 1 1"
    "</gml:posList></gml:LinearRing></gml:interior></gml:Polygon>",
    "MultiPoint": '<gml:MultiPoint xmlns:gml="{ns}" srsName="{crs}"><gml:pointMember>'
    "<gml:Point><gml:pos>0 0</gml:pos></gml:Point></gml:pointMember><gml:pointMember>"
    "<gml:Point><gml:pos>1 1</gml:pos></gml:Point></gml:pointMember></gml:MultiPoint>",
    "MultiCurve": '<gml:MultiCurve xmlns:gml="{ns}" srsName="{crs}"><gml:curveMember>'
    "<gml:LineString><gml:posList>0 0 1 1</gml:posList></gml:LineString></gml:curveMember>"
    "</gml:MultiCurve>",
    "MultiSurface": '<gml:MultiSurface xmlns:gml="{ns}" srsName="{crs}"><gml:surfaceMember>'
    "<gml:Polygon><gml:exterior><gml:LinearRing><gml:posList>0 0 0 1 1 1 1 0 0 0"
    "</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon></gml:surfaceMember>"
    "</gml:MultiSurface>",
    "Envelope": '<gml:Envelope xmlns:gml="{ns}" srsName="{crs}"><gml:lowerCorner>0 0'
    "</gml:lowerCorner><gml:upperCorner>2 2</gml:upperCorner></gml:Envelope>",
    "GML 3.1.1 Polygon": '<gml:Polygon xmlns:gml="http://www.opengis.net/gml" srsName="{crs}">'
    "<gml:exterior><gml:LinearRing><gml:posList>0 0 0 1 1 1 1 0 0 0</gml:posList>"
    "</gml:LinearRing></gml:exterior></gml:Polygon>",
}


def _gml_literal(xml: str) -> str:
    return f'"{_escape(xml.format(ns=GML_NS, crs=EPSG4326))}"^^geo:gmlLiteral'


def _wkt_in(crs: str, text: str) -> str:
    return f'"<{crs}> {text}"^^geo:wktLiteral'


def _result_equals(call: str, expected_wkt: str, variant: str) -> str:
    """Ask that the result equal ``expected_wkt`` topologically, in the input's syntax."""
    datatype = "geo:gmlLiteral" if variant == "gml" else "geo:wktLiteral"
    return _ask(
        f"BIND({call} AS ?r) FILTER(DATATYPE(?r) = {datatype}) "
        f'FILTER(geof:sfEquals(?r, "{expected_wkt}"^^geo:wktLiteral))'
    )


def _core() -> list[Requirement]:
    return [
        Requirement(1, "/req/core/sparql-protocol", "Core", "SPARQL 1.1 query and update", [
            Check("query", _ask("ex:fA_wkt a geo:Feature")),
            Check("update then query", _ask("ex:new a geo:Feature"),
                  f"{PREFIXES}INSERT DATA {{ GRAPH <{GRAPH}/update> {{ ex:new a geo:Feature }} }}"),
        ]),
        Requirement(2, "/req/core/spatial-object-class", "Core", "geo:SpatialObject", [
            Check("instances", _ask("ex:so1 a geo:SpatialObject")),
        ]),
        Requirement(3, "/req/core/feature-class", "Core", "geo:Feature", [
            Check(f"instances {v}", _ask(f"ex:fA_{v} a geo:Feature")) for v in VARIANTS
        ]),
    ]


def _topology_vocabulary() -> list[Requirement]:
    titles = {"sf": "Simple Features", "eh": "Egenhofer", "rcc8": "RCC8"}
    return [
        Requirement(4 + i, f"/req/topology-vocab-extension/{family}-spatial-relations",
                    "Topology Vocabulary", f"{titles[family]} relation properties", [
                        Check(prop, _ask(f"ex:topoX geo:{prop} ex:topoY_{family}"))
                        for prop in _family(family)
                    ])
        for i, family in enumerate(("sf", "eh", "rcc8"))
    ]


def _geometry_classes() -> list[Requirement]:
    """Return requirements 7-9: geo:Geometry, feature and geometry properties."""
    reqs: list[Requirement] = [
        Requirement(7, "/req/geometry-extension/geometry-class", "Geometry Extension",
                    "geo:Geometry", [
                        Check(f"instances {v}", _ask(f"ex:gA_{v} a geo:Geometry"))
                        for v in VARIANTS
                    ]),
        Requirement(8, "/req/geometry-extension/feature-properties", "Geometry Extension",
                    "geo:hasGeometry, geo:hasDefaultGeometry", [
                        Check(f"{p} {v}", _ask(f"ex:fA_{v} geo:{p} ex:gA_{v}"))
                        for p in ("hasGeometry", "hasDefaultGeometry") for v in VARIANTS
                    ]),
    ]
    props = []
    for v in VARIANTS:
        props += [
            Check(f"dimension polygon {v}", _ask(f"ex:gA_{v} geo:dimension 2")),
            Check(f"dimension line {v}", _ask(f"ex:gG_{v} geo:dimension 1")),
            Check(f"dimension point {v}", _ask(f"ex:gH_{v} geo:dimension 0")),
            Check(f"coordinateDimension {v}", _ask(f"ex:gA_{v} geo:coordinateDimension 2")),
            Check(f"coordinateDimension Z {v}", _ask(f"ex:gPointZ_{v} geo:coordinateDimension 3")),
            Check(f"spatialDimension {v}", _ask(f"ex:gPointZ_{v} geo:spatialDimension 3")),
            Check(f"isEmpty false {v}", _ask(f"ex:gA_{v} geo:isEmpty false")),
            Check(f"isEmpty true {v}", _ask(f"ex:gEmpty_{v} geo:isEmpty true")),
            Check(f"isSimple {v}", _ask(f"ex:gA_{v} geo:isSimple true")),
            Check(f"hasSerialization {v}",
                  _ask(f"ex:gA_{v} geo:hasSerialization ?s FILTER(isLiteral(?s))")),
        ]
    reqs.append(Requirement(9, "/req/geometry-extension/geometry-properties",
                            "Geometry Extension", "geometry properties", props))
    return reqs


def _wkt_literal_requirements() -> list[Requirement]:
    """Return requirements 10-14: geo:wktLiteral (CRS, default CRS, axis order, empty, asWKT)."""
    reqs: list[Requirement] = []
    reqs.append(Requirement(10, "/req/geometry-extension/wkt-literal", "Geometry Extension",
                            "geo:wktLiteral with an optional CRS IRI", [
        Check("CRS IRI + WKT", _true(
            f"geof:sfEquals({_wkt_in(CRS84_IRI, 'POINT(1 2)')}, \"POINT(1 2)\"^^geo:wktLiteral)")),
        Check("projected CRS", _true(
            f"geof:distance({_wkt_in(UTM31N, 'POINT(500000 0)')}, "
            "\"POINT(3 0)\"^^geo:wktLiteral, uom:metre) < 0.01")),
        Check("function on wkt", _true(f"geof:sfIntersects({literal('A', 'wkt')}, "
                                       f"{literal('D', 'wkt')})")),
    ]))
    reqs.append(Requirement(11, "/req/geometry-extension/wkt-literal-default-srs",
                            "Geometry Extension", "CRS84 when no CRS IRI is given", [
        Check("getSRID default", _true(
            f'geof:getSRID("POINT(1 2)"^^geo:wktLiteral) = "{CRS84_IRI}"^^xsd:anyURI')),
        Check("default = CRS84 = EPSG:4326 swapped", _true(
            f"geof:sfEquals(\"POINT(1 2)\"^^geo:wktLiteral, {_wkt_in(EPSG4326, 'POINT(2 1)')})")),
    ]))
    strip = _wkt_in(CRS84_IRI, "POLYGON((0 0, 4 0, 4 1, 0 1, 0 0))")
    reqs.append(Requirement(12, "/req/geometry-extension/wkt-axis-order", "Geometry Extension",
                            "coordinates in the CRS's axis order (EPSG:4326 lat lon)", [
        Check("lat lon inside", _true(
            f"geof:sfWithin({_wkt_in(EPSG4326, 'POINT(0.5 3)')}, {strip})")),
        Check("lon lat read as lat lon is outside", _false(
            f"geof:sfWithin({_wkt_in(EPSG4326, 'POINT(3 0.5)')}, {strip})")),
        Check("distance across CRSs", _true(
            f"geof:distance({_wkt_in(EPSG4326, 'POINT(1 0)')}, \"POINT(0 1)\"^^geo:wktLiteral, "
            "uom:metre) < 0.001")),
    ]))
    reqs.append(Requirement(13, "/req/geometry-extension/wkt-literal-empty", "Geometry Extension",
                            "empty wktLiteral = empty geometry", [
        Check("empty literal disjoint", _true(
            f'geof:sfDisjoint(""^^geo:wktLiteral, {literal("A", "wkt")})')),
        Check("empty literal intersects nothing", _false(
            f'geof:sfIntersects(""^^geo:wktLiteral, {literal("A", "wkt")})')),
        Check("POINT EMPTY", _true(
            f'geof:sfDisjoint("POINT EMPTY"^^geo:wktLiteral, {literal("A", "wkt")})')),
    ]))
    reqs.append(Requirement(14, "/req/geometry-extension/geometry-as-wkt-literal",
                            "Geometry Extension", "geo:asWKT", [
        Check("asWKT", _ask("ex:gA_wkt geo:asWKT ?w FILTER(DATATYPE(?w) = geo:wktLiteral)")),
    ]))
    return reqs


def _gml_literal_requirements() -> list[Requirement]:
    """Return requirements 15-18: geo:gmlLiteral (functions, empty, profile, asGML)."""
    reqs: list[Requirement] = []
    reqs.append(Requirement(15, "/req/geometry-extension/gml-literal", "Geometry Extension",
                            "geo:gmlLiteral in functions", [
        Check("gml within gml", _true(
            f"geof:sfWithin({literal('H', 'gml')}, {literal('A', 'gml')})")),
        Check("gml srsName", _true(
            f'geof:getSRID({literal("A", "gml")}) = "{EPSG4326}"^^xsd:anyURI')),
        Check("gml equals wkt", _true(
            f"geof:sfEquals({literal('A', 'gml')}, {literal('A', 'wkt')})")),
    ]))
    empty_point = _gml_literal('<gml:Point xmlns:gml="{ns}" srsName="{crs}"/>')
    reqs.append(Requirement(16, "/req/geometry-extension/gml-literal-empty", "Geometry Extension",
                            "empty gmlLiteral = empty geometry", [
        Check("empty literal", _true(
            f'geof:sfDisjoint(""^^geo:gmlLiteral, {literal("A", "gml")})')),
        Check("empty element", _true(f"geof:sfDisjoint({empty_point}, {literal('A', 'gml')})")),
        Check("empty element intersects nothing", _false(
            f"geof:sfIntersects({empty_point}, {literal('A', 'gml')})")),
    ]))
    reqs.append(Requirement(17, "/req/geometry-extension/gml-profile", "Geometry Extension",
                            "the documented GML profile", [
        Check(name, _true(f"geof:sfIntersects({_gml_literal(xml)}, {_gml_literal(xml)})"))
        for name, xml in GML_PROFILE.items()
    ]))
    reqs.append(Requirement(18, "/req/geometry-extension/geometry-as-gml-literal",
                            "Geometry Extension", "geo:asGML", [
        Check("asGML", _ask("ex:gA_gml geo:asGML ?g FILTER(DATATYPE(?g) = geo:gmlLiteral)")),
    ]))
    return reqs


def _query_function_checks(v: str) -> list[Check]:
    """Check non-topological query functions on literals of one variant (wkt, gml, mixed)."""
    a, b, c, d, f, h = (literal(n, v) for n in "ABCDFH")
    return [
        Check(f"distance metre {v}", _true(
            f"ABS(geof:distance({h}, {b}, uom:metre) - 0) < 0.001")),
        Check(f"distance degree {v}", _true(
            f"ABS(geof:distance({a}, {literal('E', v)}, uom:degree) - 8.48528137) < 1e-6")),
        Check(f"intersection {v}", _result_equals(
            f"geof:intersection({a}, {d})", "POLYGON((3 3, 4 3, 4 4, 3 4, 3 3))", v)),
        Check(f"union {v}", _result_equals(
            f"geof:union({a}, {c})", "POLYGON((0 0, 4 0, 6 0, 6 2, 4 2, 4 4, 0 4, 0 0))", v)),
        Check(f"difference {v}", _result_equals(
            f"geof:difference({a}, {f})",
            "POLYGON((2 0, 4 0, 4 4, 0 4, 0 2, 2 2, 2 0))", v)),
        Check(f"symDifference {v}", _result_equals(
            f"geof:symDifference({f}, {b})",
            "POLYGON((0 0, 2 0, 2 1, 1 1, 1 2, 0 2, 0 0))", v)),
        Check(f"boundary {v}", _result_equals(
            f"geof:boundary({b})", "LINESTRING(1 1, 2 1, 2 2, 1 2, 1 1)", v)),
        Check(f"envelope {v}", _result_equals(
            f"geof:envelope(geof:union({b}, {h}))", "POLYGON((1 1, 2 1, 2 2, 1 2, 1 1))", v)),
        Check(f"convexHull {v}", _result_equals(
            f"geof:convexHull(geof:union({b}, {literal('E', v)}))",
            "POLYGON((1 1, 2 1, 11 10, 11 11, 10 11, 1 2, 1 1))", v)),
        Check(f"buffer degree {v}", _true(
            f"geof:sfContains(geof:buffer({h}, 0.5, uom:degree), "
            '"POINT(1.8 1.8)"^^geo:wktLiteral) && geof:sfDisjoint(geof:buffer('
            f'{h}, 0.5, uom:degree), "POINT(1.9 1.9)"^^geo:wktLiteral)')),
        Check(f"buffer metre {v}", _true(
            f"geof:sfContains(geof:buffer({h}, 1000, uom:metre), "
            '"POINT(1.5 1.508)"^^geo:wktLiteral) && geof:sfDisjoint(geof:buffer('
            f'{h}, 1000, uom:metre), "POINT(1.5 1.51)"^^geo:wktLiteral)')),
        Check(f"buffer radian {v}", _true(
            f"geof:sfContains(geof:buffer({h}, 0.00872, uom:radian), "
            '"POINT(1.8 1.8)"^^geo:wktLiteral)')),
        Check(f"getSRID {v}", _true(f"isLiteral(geof:getSRID({a}))")),
    ]


def _query_function_requirements() -> list[Requirement]:
    """Return requirement 19: non-topological query functions."""
    reqs: list[Requirement] = []
    functions: list[Check] = []
    for v in VARIANTS:
        functions += _query_function_checks(v)
    functions += [
        Check("distance metre, one degree on the equator", _true(
            'ABS(geof:distance("POINT(0 0)"^^geo:wktLiteral, "POINT(1 0)"^^geo:wktLiteral, '
            "uom:metre) - 111319.5) < 600")),
        Check("distance radian", _true(
            'ABS(geof:distance("POINT(0 0)"^^geo:wktLiteral, "POINT(1 0)"^^geo:wktLiteral, '
            "uom:radian) - 0.0174533) < 1e-6")),
        Check("result in the input CRS", _true(
            f"geof:getSRID(geof:buffer({_wkt_in(UTM31N, 'POINT(500000 0)')}, 10, uom:metre))"
            f' = "{UTM31N}"^^xsd:anyURI')),
        Check("projected buffer in metres", _true(
            f"geof:sfContains(geof:buffer({_wkt_in(UTM31N, 'POINT(500000 0)')}, 10, uom:metre),"
            f" {_wkt_in(UTM31N, 'POINT(500009 0)')})")),
    ]
    reqs.append(Requirement(19, "/req/geometry-extension/query-functions", "Geometry Extension",
                            "non-topological query functions", functions))
    return reqs


def _srid_requirements() -> list[Requirement]:
    """Return requirement 20: geof:getSRID."""
    reqs: list[Requirement] = []
    reqs.append(Requirement(20, "/req/geometry-extension/srid-function", "Geometry Extension",
                            "geof:getSRID", [
        Check("wkt default", _true(
            f'geof:getSRID({literal("A", "wkt")}) = "{CRS84_IRI}"^^xsd:anyURI')),
        Check("wkt explicit", _true(
            f'geof:getSRID({_wkt_in(UTM31N, "POINT(1 1)")}) = "{UTM31N}"^^xsd:anyURI')),
        Check("gml", _true(f'geof:getSRID({literal("A", "gml")}) = "{EPSG4326}"^^xsd:anyURI')),
    ]))
    return reqs


def _geometry_extension() -> list[Requirement]:
    return [
        *_geometry_classes(),
        *_wkt_literal_requirements(),
        *_gml_literal_requirements(),
        *_query_function_requirements(),
        *_srid_requirements(),
    ]


def _geometry_topology() -> list[Requirement]:
    relate = []
    for v in ("wkt", "gml", "mixed"):
        b, a = _args("B", "A", v)
        relate += [
            Check(f"relate within {v}", _true(f'geof:relate({b}, {a}, "T*F**F***")')),
            Check(f"relate not contains {v}", _false(f'geof:relate({b}, {a}, "T*****FF*")')),
            Check(f"relate exact matrix {v}", _true(f'geof:relate({b}, {a}, "2FF1FF212")')),
        ]
    reqs = [Requirement(21, "/req/geometry-topology-extension/relate-query-function",
                        "Geometry Topology", "geof:relate", relate)]
    titles = {"sf": "Simple Features", "eh": "Egenhofer", "rcc8": "RCC8"}
    for i, family in enumerate(("sf", "eh", "rcc8")):
        checks = []
        for v in ("wkt", "gml", "mixed"):
            for name, first, second, holds in TOPOLOGY_CASES[family]:
                x, y = _args(first, second, v)
                expression = f"geof:{name}({x}, {y})"
                checks.append(Check(f"{name}({first},{second})={holds} {v}",
                                    _true(expression) if holds else _false(expression)))
        path = f"/req/geometry-topology-extension/{family}-query-functions"
        reqs.append(Requirement(22 + i, path, "Geometry Topology", f"{titles[family]} functions",
                                checks))
    return reqs


def _entailment() -> list[Requirement]:
    return [
        Requirement(25, "/req/rdfs-entailment-extension/bgp-rdfs-ent", "RDFS Entailment",
                    "RDFS entailment of the GeoSPARQL vocabulary", [
            Check("domain: Feature", _ask("ex:eF a geo:Feature")),
            Check("range: Geometry", _ask("ex:eG a geo:Geometry")),
            Check("subclass: SpatialObject", _ask("ex:eF a geo:SpatialObject . "
                                                  "ex:fA_wkt a geo:SpatialObject")),
            Check("subproperty: hasGeometry", _ask("ex:eF geo:hasGeometry ex:eG")),
            Check("subproperty: hasSerialization", _ask("ex:eG geo:hasSerialization ?s")),
        ]),
        Requirement(26, "/req/rdfs-entailment-extension/wkt-geometry-types", "RDFS Entailment",
                    "Simple Features geometry class hierarchy", [
            Check("Polygon", _ask("ex:sfPoly a sf:Surface, sf:Geometry, geo:Geometry")),
            Check("MultiLineString", _ask("ex:sfMLS a sf:MultiCurve, sf:GeometryCollection")),
            Check("TIN", _ask("ex:sfTIN a sf:PolyhedralSurface, sf:Surface")),
        ]),
        Requirement(27, "/req/rdfs-entailment-extension/gml-geometry-types", "RDFS Entailment",
                    "GML geometry class hierarchy", [
            Check("Polygon", _ask("ex:gmlPoly a gml:AbstractSurface, "
                                  "gml:AbstractGeometricPrimitive, gml:AbstractGeometry, "
                                  "geo:Geometry")),
            Check("MultiCurve", _ask("ex:gmlMC a gml:AbstractGeometricAggregate")),
            Check("Tin", _ask("ex:gmlTin a gml:TriangulatedSurface, gml:Surface")),
        ]),
    ]


def _rewrite() -> list[Requirement]:
    reqs = []
    titles = {"sf": "Simple Features", "eh": "Egenhofer", "rcc8": "RCC8"}
    for i, family in enumerate(("sf", "eh", "rcc8")):
        checks = []
        for v in VARIANTS:
            for relation, first, second in REWRITE_CASES[family]:
                checks.append(Check(f"feature-feature {relation} {v}", _ask(
                    f"ex:f{first}_{v} geo:{relation} ex:f{second}_{v}")))
            relation, first, second = REWRITE_CASES[family][0]
            checks += [
                Check(f"feature-geometry {relation} {v}",
                      _ask(f"ex:f{first}_{v} geo:{relation} ex:g{second}_{v}")),
                Check(f"geometry-feature {relation} {v}",
                      _ask(f"ex:g{first}_{v} geo:{relation} ex:f{second}_{v}")),
                Check(f"variable subject {relation} {v}",
                      _ask(f"?f geo:{relation} ex:f{second}_{v} . "
                           f"FILTER(?f = ex:f{first}_{v})")),
                Check(f"no false positive {relation} {v}", _ask(
                    f"FILTER NOT EXISTS {{ ex:f{second}_{v} geo:{relation} ex:fE_{v} }}"
                    f" ex:f{second}_{v} a geo:Feature")),
            ]
        checks.append(Check("mixed wkt-gml features", _ask(
            f"ex:f{REWRITE_CASES[family][0][1]}_wkt geo:{REWRITE_CASES[family][0][0]} "
            f"ex:f{REWRITE_CASES[family][0][2]}_gml")))
        reqs.append(Requirement(28 + i, f"/req/query-rewrite-extension/{family}-query-rewrite",
                                "Query Rewrite", f"{titles[family]} query rewrite", checks))
    return reqs


def requirements() -> list[Requirement]:
    """All 30 requirements of GeoSPARQL 1.0 with their checks."""
    return [
        *_core(), *_topology_vocabulary(), *_geometry_extension(), *_geometry_topology(),
        *_entailment(), *_rewrite(),
    ]


class Target(Protocol):
    """A store under test: load the dataset, run updates and ASK queries."""

    name: str

    def load(self, turtle: str) -> None:
        """Load the dataset (Turtle) into :data:`GRAPH`."""
        ...

    def update(self, sparql: str) -> None:
        """Run a SPARQL update."""
        ...

    def ask(self, sparql: str) -> bool:
        """Run an ASK query."""
        ...


class EmbeddedTarget:
    """An in-memory pyoxigraph store; ``geosparql`` adds eeflow's functions, rewrite, entailment."""

    def __init__(self, geosparql: bool, workdir: Path) -> None:
        from tasks.linked_data.store import EmbeddedStore

        self.name = "eeflow embedded" if geosparql else "plain pyoxigraph (embedded)"
        self.geosparql = geosparql
        self.workdir = workdir
        self.store = EmbeddedStore(None)

    def load(self, turtle: str) -> None:
        """Load through eeflow's loader (+ materialised entailment with ``geosparql``)."""
        path = self.workdir / "conformance.ttl"
        path.write_text(turtle)
        self.store.replace_graph(GRAPH, path, "ttl")
        if self.geosparql:
            from tasks.linked_data.geosparql.entailment import materialise

            materialise(self.store, GRAPH)

    def update(self, sparql: str) -> None:
        """Run an update."""
        if self.geosparql:
            from tasks.linked_data.geosparql import engine

            engine.update(self.store.store, sparql)
        else:
            self.store.store.update(sparql)

    def ask(self, sparql: str) -> bool:
        """Run an ASK query."""
        if self.geosparql:
            from tasks.linked_data.geosparql import engine

            return bool(engine.query(self.store.store, sparql))
        return bool(self.store.query(sparql))

    def close(self) -> None:
        """Release the store."""
        self.store.close()


class HttpTarget:
    """A SPARQL server reached over HTTP (SPARQL 1.1 Protocol + Graph Store Protocol)."""

    def __init__(self, name: str, url: str) -> None:
        import requests

        self.name = name
        self.url = url
        self.session = requests.Session()

    def load(self, turtle: str) -> None:
        """Graph Store ``PUT`` of the dataset."""
        answer = self.session.put(
            f"{self.url}/store", params={"graph": GRAPH}, data=turtle.encode(),
            headers={"Content-Type": "text/turtle"}, timeout=60,
        )
        answer.raise_for_status()

    def update(self, sparql: str) -> None:
        """POST an update."""
        answer = self.session.post(
            f"{self.url}/update", data=sparql.encode(),
            headers={"Content-Type": "application/sparql-update"}, timeout=60,
        )
        answer.raise_for_status()

    def ask(self, sparql: str) -> bool:
        """GET the query (URL-encoded), as the protocol's simplest form."""
        answer = self.session.get(
            f"{self.url}/query", params={"query": sparql},
            headers={"Accept": "application/sparql-results+json"}, timeout=60,
        )
        answer.raise_for_status()
        return bool(answer.json()["boolean"])

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()


@dataclass
class CheckResult:
    """Outcome of one check."""

    requirement: int
    check: str
    passed: bool
    error: str = ""


def run_checks(target: Target, requirement: Requirement) -> Iterator[CheckResult]:
    """Run one requirement's checks on a loaded target."""
    for check in requirement.checks:
        try:
            if check.update:
                target.update(check.update)
            passed = target.ask(check.ask)
            yield CheckResult(requirement.number, check.name, passed)
        except Exception as err:  # a failing engine is a failed check, reported
            yield CheckResult(requirement.number, check.name, False, f"{type(err).__name__}: "
                              f"{str(err)[:200]}")


def run_suite(target: Target, load: bool = True) -> dict[int, list[CheckResult]]:
    """Load :data:`DATASET` into ``target`` and run every requirement; results by number."""
    if load:
        target.load(DATASET)
    return {req.number: list(run_checks(target, req)) for req in requirements()}


def class_table(results: dict[int, list[CheckResult]]) -> dict[str, tuple[int, int]]:
    """Per conformance class: (requirements passed, requirements)."""
    table: dict[str, tuple[int, int]] = {}
    for req in requirements():
        passed = all(r.passed for r in results[req.number])
        done, total = table.get(req.klass, (0, 0))
        table[req.klass] = (done + int(passed), total + 1)
    return table


def make_targets(workdir: Path) -> Iterator[tuple[Target, Callable[[], None]]]:
    """Yield (target, stop) for eeflow embedded, eeflow server, plain pyoxigraph, plain server."""
    from tasks.linked_data.server import OxigraphServer, SparqlServer

    yield EmbeddedTarget(True, workdir), lambda: None
    server = SparqlServer(None).start()
    yield HttpTarget("eeflow rdf serve (HTTP)", server.url), server.stop
    yield EmbeddedTarget(False, workdir), lambda: None
    plain: Any = OxigraphServer(None).start()
    yield HttpTarget("plain oxigraph serve (HTTP)", plain.url), plain.stop
