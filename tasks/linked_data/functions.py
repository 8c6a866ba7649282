"""GeoSPARQL functions oxigraph lacks, as pyoxigraph custom functions (implemented with shapely).

Oxigraph's built-in GeoSPARQL support evaluates the ``geof:sf*`` relations on CRS84 WKT but has no
``geof:buffer`` and computes ``geof:distance`` only between points. eeflow registers:

* ``geof:distance(a, b, unit)`` - distance between any two geometries, in ``uom:metre`` (computed
  in the UTM zone of ``a``'s centroid: sub-centimetre error at the 10 m scale of the LUCAS rule)
  or ``uom:degree``; replaces the built-in for the query it is passed to;
* ``geof:buffer(a, radius, unit)`` - ``a`` grown by ``radius`` metres (or degrees), as CRS84 WKT.

They run only inside the embedded store (``pyoxigraph.Store.query(custom_functions=...)``); queries
that need them carry ``# @embedded-only`` and are refused on an HTTP store (which would otherwise
leave the values unbound and answer wrongly). WKT literals must be CRS84 (with or without the
``<http://www.opengis.net/def/crs/OGC/1.3/CRS84>`` prefix), as eeflow exports them.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

import shapely

from tasks.errors import EeflowError
from tasks.linked_data.namespaces import CRS84, GEOF, UOM, WKT_LITERAL

_PREFIX = re.compile(r"^\s*<([^>]*)>\s*(.*)$", re.S)
METRE = UOM + "metre"
DEGREE = UOM + "degree"


class GeometryLiteralError(EeflowError, ValueError):
    """A WKT literal is not CRS84 or does not parse."""


@lru_cache(maxsize=200_000)
def parse_wkt_literal(lexical: str) -> shapely.Geometry:
    """Parse a (CRS84-prefixed) WKT lexical form into a shapely geometry in lon/lat."""
    match = _PREFIX.match(lexical)
    text = lexical
    if match:
        crs, text = match.groups()
        if crs != CRS84:
            raise GeometryLiteralError(f"WKT CRS <{crs}> is not supported; export CRS84 geometries")
    try:
        return shapely.from_wkt(text)
    except shapely.errors.GEOSException as err:
        raise GeometryLiteralError(f"not valid WKT: {text[:80]!r}: {err}") from None


@lru_cache(maxsize=120)
def _utm_transformer(zone: int, north: bool) -> Any:
    from pyproj import Transformer

    epsg = (32600 if north else 32700) + zone
    return Transformer.from_crs("OGC:CRS84", f"EPSG:{epsg}", always_xy=True)


def utm_zone(lon: float, lat: float) -> tuple[int, bool]:
    """UTM zone number and hemisphere of a position."""
    return min(int((lon + 180) // 6) + 1, 60), lat >= 0


@lru_cache(maxsize=200_000)
def _projected(lexical: str, zone: int, north: bool) -> shapely.Geometry:
    transformer = _utm_transformer(zone, north)
    return shapely.transform(
        parse_wkt_literal(lexical), lambda xy: _stack(transformer.transform(xy[:, 0], xy[:, 1]))
    )


def _stack(xy: tuple[Any, Any]) -> Any:
    import numpy as np

    return np.column_stack(xy)


def distance_metres(a: str, b: str) -> float:
    """Distance in metres between two CRS84 WKT lexical forms (UTM zone of ``a``'s centroid)."""
    centre = parse_wkt_literal(a).centroid
    zone, north = utm_zone(centre.x, centre.y)
    return float(shapely.distance(_projected(a, zone, north), _projected(b, zone, north)))


def buffer_wkt(a: str, radius: float, unit: str) -> str:
    """Grow ``a`` by ``radius`` (metres or degrees) as CRS84-prefixed WKT."""
    geom = parse_wkt_literal(a)
    if unit == DEGREE:
        grown = shapely.buffer(geom, radius)
    elif unit == METRE:
        centre = geom.centroid
        zone, north = utm_zone(centre.x, centre.y)
        transformer = _utm_transformer(zone, north)
        projected = shapely.buffer(_projected(a, zone, north), radius)
        grown = shapely.transform(
            projected,
            lambda xy: _stack(transformer.transform(xy[:, 0], xy[:, 1], direction="INVERSE")),
        )
    else:
        raise GeometryLiteralError(f"unit <{unit}> unsupported; use <{METRE}> or <{DEGREE}>")
    return f"<{CRS84}> {shapely.to_wkt(grown, rounding_precision=7, trim=True)}"


def _geof_distance(a: Any, b: Any, unit: Any = None) -> Any:
    import pyoxigraph as ox

    try:
        unit_iri = getattr(unit, "value", METRE)
        metres = distance_metres(a.value, b.value)
        if unit_iri == DEGREE:
            value = metres / 111_320.0
        elif unit_iri == METRE:
            value = metres
        else:
            return None
        return ox.Literal(
            repr(value), datatype=ox.NamedNode("http://www.w3.org/2001/XMLSchema#double")
        )
    except (GeometryLiteralError, AttributeError, shapely.errors.GEOSException):
        return None


def _geof_buffer(a: Any, radius: Any, unit: Any) -> Any:
    import pyoxigraph as ox

    try:
        value = float(radius.value)
        if not math.isfinite(value):
            return None
        return ox.Literal(
            buffer_wkt(a.value, value, unit.value), datatype=ox.NamedNode(WKT_LITERAL)
        )
    except (GeometryLiteralError, AttributeError, ValueError, shapely.errors.GEOSException):
        return None


def custom_functions() -> dict[Any, Any]:
    """Return the ``custom_functions`` mapping to pass to ``pyoxigraph.Store.query``."""
    import pyoxigraph as ox

    return {
        ox.NamedNode(GEOF + "distance"): _geof_distance,
        ox.NamedNode(GEOF + "buffer"): _geof_buffer,
    }
