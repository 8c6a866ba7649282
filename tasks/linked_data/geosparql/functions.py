"""The ``geof:`` functions of GeoSPARQL 1.0 (plus cheap 1.1 ones) as pyoxigraph custom functions.

Every function takes ``geo:wktLiteral`` and ``geo:gmlLiteral`` arguments in any mix and any CRS
pyproj knows (see :mod:`.literals`): the second geometry is brought into the first one's CRS, and
geometry results are written in the first argument's CRS and serialisation (WKT stays WKT with
the same CRS IRI, GML stays GML with the same ``srsName``).

* Topology (req. 21-24): ``geof:relate`` and the Simple Features, Egenhofer and RCC8 families,
  evaluated from the DE-9IM matrix with the patterns of the standard's tables 4-6.
* Non-topological (req. 19, 20): ``distance`` and ``buffer`` with ``uom:metre`` (geographic CRSs:
  computed in the UTM zone of the first geometry's centroid), ``uom:degree`` and ``uom:radian``
  (geographic CRSs: in the CRS's degrees; projected CRSs: 1 degree = 111 319.49 m),
  ``convexHull``, ``intersection``, ``union``, ``difference``, ``symDifference``, ``envelope``,
  ``boundary``, ``getSRID`` (``xsd:anyURI``).
* GeoSPARQL 1.1: ``dimension``, ``coordinateDimension``, ``spatialDimension``, ``isEmpty``,
  ``isSimple``, ``asWKT``, ``asGML``, ``transform``, ``numGeometries``, ``minX`` ... ``maxY``,
  ``centroid``, ``area`` / ``length`` (square metres / metres, UTM for geographic CRSs).

A function given something that is not a geometry literal (or a bad one) raises a SPARQL
expression error: the value is unbound, as the standard's type errors ask.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from functools import wraps
from typing import Any

import shapely

from tasks.linked_data.geosparql import literals as lit
from tasks.linked_data.namespaces import GEOF, XSD

log = logging.getLogger(__name__)

#: DE-9IM patterns of the Simple Features (table 4), Egenhofer (table 5) and RCC8 (table 6)
#: families; a relation holds when any of its patterns matches.
SF_PATTERNS: dict[str, tuple[str, ...]] = {
    "sfEquals": ("TFFFTFFFT",),
    "sfDisjoint": ("FF*FF****",),
    "sfIntersects": ("T********", "*T*******", "***T*****", "****T****"),
    "sfTouches": ("FT*******", "F**T*****", "F***T****"),
    "sfWithin": ("T*F**F***",),
    "sfContains": ("T*****FF*",),
}
EH_PATTERNS: dict[str, tuple[str, ...]] = {
    "ehEquals": ("TFFFTFFFT",),
    "ehDisjoint": ("FF*FF****",),
    "ehMeet": ("FT*******", "F**T*****", "F***T****"),
    "ehOverlap": ("T*T***T**",),
    "ehCovers": ("T*TFT*FF*",),
    "ehCoveredBy": ("TFF*TFT**",),
    "ehInside": ("TFF*FFT**",),
    "ehContains": ("T*TFF*FF*",),
}
RCC8_PATTERNS: dict[str, tuple[str, ...]] = {
    "rcc8eq": ("TFFFTFFFT",),
    "rcc8dc": ("FFTFFTTTT",),
    "rcc8ec": ("FFTFTTTTT",),
    "rcc8po": ("TTTTTTTTT",),
    "rcc8tppi": ("TTTFTTFFT",),
    "rcc8tpp": ("TFFTTFTTT",),
    "rcc8ntpp": ("TFFTFFTTT",),
    "rcc8ntppi": ("TTTFFTFFT",),
}
#: Names of every topological relation function (and of the matching ``geo:`` properties).
TOPOLOGY_RELATIONS: tuple[str, ...] = (
    *SF_PATTERNS, "sfCrosses", "sfOverlaps", *EH_PATTERNS, *RCC8_PATTERNS
)
ANY_URI = XSD + "anyURI"
#: Simple Features relations as GEOS predicates on (second, first) - same truth as the patterns.
_SF_NATIVE: dict[str, Callable[[Any, Any], Any]] = {
    "sfIntersects": shapely.intersects,
    "sfDisjoint": shapely.disjoint,
    "sfTouches": shapely.touches,
    "sfWithin": shapely.contains,
    "sfContains": shapely.within,
}


def _pair(a: Any, b: Any) -> tuple[lit.GeometryValue, shapely.Geometry, shapely.Geometry]:
    first = lit.term_geometry(a)
    second = lit.term_geometry(b)
    return first, first.geometry, lit.in_crs_of(first, second)


def relation_holds(name: str, ga: shapely.Geometry, gb: shapely.Geometry) -> bool:
    """Whether the topological relation ``name`` (e.g. ``sfWithin``, ``rcc8po``) holds."""
    if name == "sfCrosses":
        return bool(shapely.crosses(ga, gb))
    if name == "sfOverlaps":
        return bool(shapely.overlaps(ga, gb))
    if name == "sfEquals":
        return bool(shapely.equals(ga, gb)) or (ga.is_empty and gb.is_empty)
    if name in _SF_NATIVE:
        # GEOS's own predicates, called with the second geometry first where the relation allows:
        # in a scan the second argument is the constant region, prepared once (see literals)
        return bool(_SF_NATIVE[name](gb, ga))
    patterns = SF_PATTERNS.get(name) or EH_PATTERNS.get(name) or RCC8_PATTERNS[name]
    matrix = shapely.relate(ga, gb)
    return any(_matches(matrix, pattern) for pattern in patterns)


def _matches(matrix: str, pattern: str) -> bool:
    for value, want in zip(matrix, pattern, strict=True):
        if want == "*":
            continue
        if want == "T":
            if value == "F":
                return False
        elif want != value:
            return False
    return True


def _literal(value: Any, datatype: str | None = None) -> Any:
    import pyoxigraph as ox

    if datatype is not None:
        return ox.Literal(str(value), datatype=ox.NamedNode(datatype))
    return ox.Literal(value)


def _geometry_result(first: lit.GeometryValue, geometry: shapely.Geometry) -> Any:
    lexical, datatype = lit.serialise(first, geometry)
    return _literal(lexical, datatype)


def _unit(term: Any) -> str:
    unit = getattr(term, "value", None)
    if unit not in lit.UNITS:
        raise lit.GeometryLiteralError(f"unit {term} unsupported; use one of {list(lit.UNITS)}")
    return str(unit)


def distance(a: Any, b: Any, unit: Any = None) -> Any:
    """``geof:distance``: shortest distance between two geometries in ``unit`` (default metre)."""
    first, ga, gb = _pair(a, b)
    unit_iri = _unit(unit) if unit is not None else lit.METRE
    crs = first.crs
    if crs.is_geographic and unit_iri != lit.METRE:
        return _literal(lit.to_unit(None, float(shapely.distance(ga, gb)), unit_iri))
    if lit.is_metric(first):
        return _literal(lit.to_unit(float(shapely.distance(ga, gb)), None, unit_iri))
    lon_lat_a = lit.transform(ga, first.crs_iri, lit.CRS84)
    utm = lit.utm_iri(lon_lat_a)
    metres = shapely.distance(
        lit.transform(ga, first.crs_iri, utm), lit.transform(gb, first.crs_iri, utm)
    )
    return _literal(lit.to_unit(float(metres), None, unit_iri))


def buffer(a: Any, radius: Any, unit: Any) -> Any:
    """``geof:buffer``: ``a`` grown by ``radius`` ``unit``s, in ``a``'s CRS."""
    first = lit.term_geometry(a)
    value = float(radius.value)
    unit_iri = _unit(unit)
    crs = first.crs
    if crs.is_geographic and unit_iri != lit.METRE:
        degrees = value if unit_iri == lit.DEGREE else math.degrees(value)
        return _geometry_result(first, shapely.buffer(first.geometry, degrees))
    metres = value
    if unit_iri != lit.METRE:
        degrees = value if unit_iri == lit.DEGREE else math.degrees(value)
        metres = lit.to_unit(None, degrees, lit.METRE)
    if lit.is_metric(first):
        return _geometry_result(first, shapely.buffer(first.geometry, metres))
    utm = lit.utm_iri(lit.transform(first.geometry, first.crs_iri, lit.CRS84))
    grown = shapely.buffer(lit.transform(first.geometry, first.crs_iri, utm), metres)
    return _geometry_result(first, lit.transform(grown, utm, first.crs_iri))


def _binary(operation: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def function(a: Any, b: Any) -> Any:
        first, ga, gb = _pair(a, b)
        return _geometry_result(first, operation(ga, gb))

    return function


def _unary(operation: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def function(a: Any) -> Any:
        first = lit.term_geometry(a)
        return _geometry_result(first, operation(first.geometry))

    return function


def _envelope(geometry: shapely.Geometry) -> shapely.Geometry:
    if geometry.is_empty:
        return shapely.from_wkt("POLYGON EMPTY")
    return shapely.box(*geometry.bounds)


def get_srid(a: Any) -> Any:
    """``geof:getSRID``: the CRS IRI of a geometry literal as ``xsd:anyURI``."""
    return _literal(lit.term_geometry(a).crs_iri, ANY_URI)


def relate(a: Any, b: Any, pattern: Any) -> Any:
    """``geof:relate``: whether the DE-9IM matrix of ``a`` and ``b`` matches ``pattern``."""
    _first, ga, gb = _pair(a, b)
    text = str(pattern.value).upper()
    if len(text) != 9 or set(text) - set("TF*012"):
        raise lit.GeometryLiteralError(f"DE-9IM pattern {pattern.value!r} is not 9 of T F * 0 1 2")
    return _literal(_matches(shapely.relate(ga, gb), text))


def _relation(name: str) -> Callable[[Any, Any], Any]:
    def function(a: Any, b: Any) -> Any:
        _first, ga, gb = _pair(a, b)
        return _literal(relation_holds(name, ga, gb))

    return function


def _metric_measure(a: Any, measure: Callable[[Any], Any]) -> Any:
    first = lit.term_geometry(a)
    if lit.is_metric(first):
        return _literal(float(measure(first.geometry)))
    utm = lit.utm_iri(lit.transform(first.geometry, first.crs_iri, lit.CRS84))
    return _literal(float(measure(lit.transform(first.geometry, first.crs_iri, utm))))


def geometry_dimension(geometry: shapely.Geometry) -> int:
    """Topological dimension (0 point, 1 curve, 2 surface; collections: the largest part)."""
    if geometry.is_empty:
        return 0
    return int(shapely.get_dimensions(geometry))


def coordinate_dimension(geometry: shapely.Geometry) -> int:
    """Count the coordinate values per position (2, 3 with Z or M, 4 with both)."""
    if geometry.is_empty:
        return 2
    return int(shapely.get_coordinate_dimension(geometry))


def spatial_dimension(geometry: shapely.Geometry) -> int:
    """Count the spatial coordinates (2, or 3 with Z)."""
    return 3 if not geometry.is_empty and shapely.has_z(geometry) else 2


def _as(datatype: str) -> Callable[[Any], Any]:
    def function(a: Any) -> Any:
        first = lit.term_geometry(a)
        target = lit.GeometryValue(first.geometry, first.crs_iri, datatype, True)
        return _geometry_result(target, first.geometry)

    return function


def transform_to(a: Any, crs: Any) -> Any:
    """``geof:transform`` (1.1): the geometry reprojected to the CRS IRI ``crs``, same syntax."""
    first = lit.term_geometry(a)
    target = str(crs.value)
    lit.crs_of(target)
    moved = lit.transform(first.geometry, first.crs_iri, target)
    return _geometry_result(lit.GeometryValue(moved, target, first.datatype, True), moved)


def _bound(index: int) -> Callable[[Any], Any]:
    def function(a: Any) -> Any:
        geometry = lit.term_geometry(a).geometry
        if geometry.is_empty:
            raise lit.GeometryLiteralError("an empty geometry has no bounds")
        return _literal(float(geometry.bounds[index]))

    return function


def _safe(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """Turn errors into SPARQL expression errors (unbound), logged at debug level."""

    @wraps(function)
    def call(*args: Any) -> Any:
        try:
            return function(*args)
        except (
            lit.GeometryLiteralError,
            AttributeError,
            TypeError,
            ValueError,
            IndexError,
            shapely.errors.GEOSException,
        ) as err:
            log.debug("geof:%s%s: %s", name, args, err)
            return None

    return call


def implementations() -> dict[str, Callable[..., Any]]:
    """Local name (below ``geof:``) -> Python implementation."""
    table: dict[str, Callable[..., Any]] = {
        "distance": distance,
        "buffer": buffer,
        "convexHull": _unary(shapely.convex_hull),
        "envelope": _unary(_envelope),
        "boundary": _unary(shapely.boundary),
        "centroid": _unary(shapely.centroid),
        "intersection": _binary(shapely.intersection),
        "union": _binary(shapely.union),
        "difference": _binary(shapely.difference),
        "symDifference": _binary(shapely.symmetric_difference),
        "getSRID": get_srid,
        "relate": relate,
        "dimension": lambda a: _literal(geometry_dimension(lit.term_geometry(a).geometry)),
        "coordinateDimension": lambda a: _literal(
            coordinate_dimension(lit.term_geometry(a).geometry)
        ),
        "spatialDimension": lambda a: _literal(spatial_dimension(lit.term_geometry(a).geometry)),
        "isEmpty": lambda a: _literal(bool(lit.term_geometry(a).geometry.is_empty)),
        "isSimple": lambda a: _literal(bool(shapely.is_simple(lit.term_geometry(a).geometry))),
        "numGeometries": lambda a: _literal(
            int(shapely.get_num_geometries(lit.term_geometry(a).geometry))
        ),
        "asWKT": _as(lit.WKT_LITERAL),
        "asGML": _as(lit.GML_LITERAL),
        "transform": transform_to,
        "area": lambda a: _metric_measure(a, shapely.area),
        "length": lambda a: _metric_measure(a, shapely.length),
        "minX": _bound(0),
        "minY": _bound(1),
        "maxX": _bound(2),
        "maxY": _bound(3),
    }
    for name in TOPOLOGY_RELATIONS:
        table[name] = _relation(name)
    return table


def custom_functions() -> dict[Any, Any]:
    """Return the ``custom_functions`` mapping for ``pyoxigraph.Store.query`` / ``update``."""
    import pyoxigraph as ox

    return {
        ox.NamedNode(GEOF + name): _safe(name, function)
        for name, function in implementations().items()
    }
