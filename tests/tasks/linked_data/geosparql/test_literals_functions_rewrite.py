"""GML / WKT literal parsing, CRS handling, functions' error paths and the query rewrite."""

from __future__ import annotations

import pyoxigraph as ox
import pytest
import shapely

from tasks.linked_data.geosparql import engine
from tasks.linked_data.geosparql.gml import parse_gml, to_gml
from tasks.linked_data.geosparql.literals import (
    GML_LITERAL,
    WKT_LITERAL,
    GeometryLiteralError,
    parse_literal,
    serialise,
)
from tasks.linked_data.geosparql.rewrite import rewrite_query

EPSG4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"
GML = "http://www.opengis.net/gml/3.2"


def test_gml_round_trip_keeps_srs_and_axis_order() -> None:
    polygon = shapely.from_wkt("POLYGON((0 0, 0 3, 3 3, 3 0, 0 0), (1 1, 2 1, 2 2, 1 2, 1 1))")
    text = to_gml(polygon, EPSG4326)
    geometry, srs = parse_gml(text)
    assert srs == EPSG4326
    assert geometry.equals(polygon)
    multi = shapely.from_wkt("MULTILINESTRING((0 0, 1 1), (2 2, 3 3))")
    assert parse_gml(to_gml(multi, EPSG4326))[0].equals(multi)


def test_gml_errors_name_the_problem() -> None:
    with pytest.raises(GeometryLiteralError, match="not well-formed XML"):
        parse_literal("<gml:Point", GML_LITERAL)
    with pytest.raises(GeometryLiteralError, match="outside the supported profile"):
        parse_literal(f'<gml:Solid xmlns:gml="{GML}"/>', GML_LITERAL)
    with pytest.raises(GeometryLiteralError, match="not a multiple of 2"):
        parse_literal(
            f'<gml:LineString xmlns:gml="{GML}"><gml:posList>1 2 3</gml:posList>'
            "</gml:LineString>",
            GML_LITERAL,
        )


def test_wkt_crs_errors_and_output_in_input_crs() -> None:
    with pytest.raises(GeometryLiteralError, match="unknown CRS <http://example.org/crs/1>"):
        parse_literal("<http://example.org/crs/1> POINT(1 2)", WKT_LITERAL)
    with pytest.raises(GeometryLiteralError, match="not valid WKT"):
        parse_literal("POINT(1", WKT_LITERAL)
    value = parse_literal(f"<{EPSG4326}> POINT(2 1)", WKT_LITERAL)
    assert serialise(value, value.geometry) == (f"<{EPSG4326}> POINT (2 1)", WKT_LITERAL)
    plain = parse_literal("POINT(1 2)", WKT_LITERAL)
    assert serialise(plain, plain.geometry)[0] == "POINT (1 2)"


def _value(expression: str) -> object:
    store = ox.Store()
    rows = list(
        engine.query(
            store,
            "PREFIX geo: <http://www.opengis.net/ont/geosparql#> "
            "PREFIX geof: <http://www.opengis.net/def/function/geosparql/> "
            "PREFIX uom: <http://www.opengis.net/def/uom/OGC/1.0/> "
            f"SELECT ?v WHERE {{ BIND({expression} AS ?v) }}",
        )
    )
    return rows[0]["v"]


def test_type_errors_leave_the_value_unbound() -> None:
    assert _value('geof:sfWithin("POINT(1 1)", "POINT(1 1)"^^geo:wktLiteral)') is None
    assert _value('geof:buffer("POINT(1 1)"^^geo:wktLiteral, 1, uom:furlong)') is None
    point = '"POINT(1 1)"^^geo:wktLiteral'
    assert _value(f'geof:relate({point}, {point}, "X")') is None


def test_gml_input_gives_gml_output_and_11_functions() -> None:
    gml = (
        f'"<gml:Point xmlns:gml=\\"{GML}\\" srsName=\\"{EPSG4326}\\"><gml:pos>10 20</gml:pos>'
        '</gml:Point>"^^geo:gmlLiteral'
    )
    hull = _value(f"geof:convexHull({gml})")
    assert hull.datatype.value == GML_LITERAL and EPSG4326 in hull.value
    assert float(_value(f"geof:minX({gml})").value) == 10.0  # latitude first in EPSG:4326
    moved = _value(f"geof:transform({gml}, <http://www.opengis.net/def/crs/OGC/1.3/CRS84>)")
    assert "<gml:pos>20.0 10.0</gml:pos>" in moved.value
    assert _value(f"geof:asWKT({gml})").value == f"<{EPSG4326}> POINT (10 20)"


def test_rewrite_leaves_other_queries_untouched() -> None:
    query = "SELECT * WHERE { ?s ?p ?o FILTER(?o < 3) }"
    assert rewrite_query(query) is query
    construct = (
        "PREFIX geo: <http://www.opengis.net/ont/geosparql#> "
        "CONSTRUCT { ?a geo:sfWithin ?b } WHERE { ?a geo:sfWithin ?b }"
    )
    rewritten = rewrite_query(construct)
    assert rewritten.startswith(
        "PREFIX geo: <http://www.opengis.net/ont/geosparql#> CONSTRUCT { ?a geo:sfWithin ?b }"
    )
    assert "UNION" in rewritten
    update = (
        "INSERT DATA { <http://a> <http://www.opengis.net/ont/geosparql#sfWithin> <http://b> }"
    )
    assert rewrite_query(update) == update


def test_rewrite_of_predicate_object_lists_parses_and_answers() -> None:
    store = ox.Store()
    store.update(
        "PREFIX geo: <http://www.opengis.net/ont/geosparql#> PREFIX ex: <http://ex/> INSERT DATA {"
        ' ex:a geo:hasDefaultGeometry ex:ga . ex:ga geo:asWKT "POINT(1 1)"^^geo:wktLiteral .'
        ' ex:b geo:hasDefaultGeometry ex:gb . ex:gb geo:asWKT "POLYGON((0 0,2 0,2 2,0 2,0 0))"'
        "^^geo:wktLiteral . ex:a ex:name 'a' . ex:b ex:name 'b' }"
    )
    rows = engine.query(
        store,
        "PREFIX geo: <http://www.opengis.net/ont/geosparql#> PREFIX ex: <http://ex/> "
        "SELECT ?x ?n WHERE { ?x ex:name ?n ; geo:sfWithin ?y ; geo:sfIntersects ex:b . "
        "?y ex:name 'b' }",
    )
    # a is within b; b is within itself (equal geometries), and both intersect b
    assert sorted((r["x"].value, r["n"].value) for r in rows) == [
        ("http://ex/a", "a"),
        ("http://ex/b", "b"),
    ]
