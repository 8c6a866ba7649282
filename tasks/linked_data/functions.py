"""GeoSPARQL functions for pyoxigraph, and CRS84 distance / buffer helpers (shapely).

Oxigraph's built-in GeoSPARQL support evaluates the ``geof:sf*`` / ``eh*`` / ``rcc8*`` relations
on CRS84 WKT only, has no ``geof:buffer`` and computes ``geof:distance`` only between points.
:func:`custom_functions` returns eeflow's full set (``tasks/linked_data/geosparql/functions.py``):
every ``geof:`` function of GeoSPARQL 1.0 (and cheap 1.1 ones) on WKT and GML literals in any
CRS; they replace the built-ins for the query they are passed to. ``geof:distance(a, b,
uom:metre)`` is computed in the UTM zone of ``a``'s centroid (sub-centimetre error at the 10 m
scale of the LUCAS rule).

They run inside the embedded store (``pyoxigraph.Store.query(custom_functions=...)``) and behind
``eeflow rdf serve``; queries that need them carry ``# @embedded-only`` and are refused on other
HTTP stores (which would leave the values unbound and answer wrongly). The helpers below
(:func:`distance_metres`, :func:`buffer_wkt`) take CRS84 WKT, as eeflow exports it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import shapely

from tasks.errors import EeflowError
from tasks.linked_data.namespaces import CRS84, UOM

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


def custom_functions() -> dict[Any, Any]:
    """Return the ``custom_functions`` mapping to pass to ``pyoxigraph.Store.query``.

    Every ``geof:`` function of :mod:`tasks.linked_data.geosparql.functions` (built once).
    """
    from tasks.linked_data.geosparql.engine import custom_functions as geosparql_functions

    return geosparql_functions()
