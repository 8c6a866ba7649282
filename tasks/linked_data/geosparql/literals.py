"""Geometry literals (``geo:wktLiteral``, ``geo:gmlLiteral``) with their CRS.

A WKT literal is ``"<CRS IRI> WKT"`` or ``"WKT"`` (CRS84, GeoSPARQL req. 11); coordinates are in
the CRS's own axis order (req. 12: ``<http://www.opengis.net/def/crs/EPSG/0/4326> POINT(lat
lon)``); an empty lexical form is an empty geometry (req. 13, 16). Geometries keep the coordinates
as written; a function that combines two literals brings the second into the first's CRS with
pyproj (authority axis order on both sides) and answers in the first's CRS and serialisation.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import shapely

from tasks.linked_data.geosparql.gml import GmlError, parse_gml, to_gml
from tasks.linked_data.namespaces import CRS84, GEO, UOM

WKT_LITERAL = GEO + "wktLiteral"
GML_LITERAL = GEO + "gmlLiteral"
GEOMETRY_DATATYPES = (WKT_LITERAL, GML_LITERAL)
METRE = UOM + "metre"
DEGREE = UOM + "degree"
RADIAN = UOM + "radian"
UNITS = (METRE, DEGREE, RADIAN)
#: Metres per degree of arc on the WGS84 equator (unit conversions of geographic distances).
METRES_PER_DEGREE = 111_319.49079327357
_PREFIX = re.compile(r"^\s*<([^>]*)>\s*(.*)$", re.S)
_CRS84_NAMES = {CRS84, "OGC:CRS84", "urn:ogc:def:crs:OGC:1.3:CRS84", "CRS:84"}


class GeometryLiteralError(ValueError):
    """A geometry literal does not parse, has an unknown CRS or an unsupported datatype."""


@dataclass(frozen=True)
class GeometryValue:
    """A parsed geometry literal: shapely geometry in the CRS's axis order, CRS, serialisation."""

    geometry: shapely.Geometry
    crs_iri: str
    datatype: str
    explicit_crs: bool = True

    @property
    def crs(self) -> Any:
        """The pyproj CRS."""
        return crs_of(self.crs_iri)


@lru_cache(maxsize=256)
def crs_of(iri: str) -> Any:
    """Return the pyproj CRS of a CRS IRI / URN / ``EPSG:n`` (CRS84 for the OGC CRS84 names)."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        return CRS.from_user_input("OGC:CRS84" if iri in _CRS84_NAMES else iri)
    except CRSError as err:
        raise GeometryLiteralError(
            f"unknown CRS <{iri}>: {err}; use an OGC CRS IRI such as "
            "<http://www.opengis.net/def/crs/EPSG/0/4326>"
        ) from None


@lru_cache(maxsize=200_000)
def parse_literal(lexical: str, datatype: str) -> GeometryValue:
    """Parse the lexical form of a ``geo:wktLiteral`` or ``geo:gmlLiteral``.

    Raises:
        GeometryLiteralError: bad WKT / GML, unknown CRS or another datatype (message says which).

    """
    if datatype == WKT_LITERAL:
        match = _PREFIX.match(lexical)
        crs_iri, text, explicit = CRS84, lexical, False
        if match:
            crs_iri, text = match.groups()
            explicit = True
        crs_of(crs_iri)
        if not text.strip():
            return GeometryValue(
                shapely.from_wkt("GEOMETRYCOLLECTION EMPTY"), crs_iri, datatype, explicit
            )
        try:
            geometry = shapely.from_wkt(text)
            shapely.prepare(geometry)  # cached: a constant argument is tested many times
            return GeometryValue(geometry, crs_iri, datatype, explicit)
        except shapely.errors.GEOSException as err:
            raise GeometryLiteralError(f"not valid WKT: {text[:80]!r}: {err}") from None
    if datatype == GML_LITERAL:
        try:
            geometry, srs = parse_gml(lexical)
        except GmlError as err:
            raise GeometryLiteralError(f"GML literal {lexical[:80]!r}: {err}") from None
        crs_iri = srs or CRS84
        crs_of(crs_iri)
        return GeometryValue(geometry, crs_iri, datatype, srs is not None)
    raise GeometryLiteralError(
        f"datatype <{datatype}> is not a geometry literal; use <{WKT_LITERAL}> or <{GML_LITERAL}>"
    )


def term_geometry(term: Any) -> GeometryValue:
    """Parse a pyoxigraph term that should be a geometry literal."""
    datatype = getattr(getattr(term, "datatype", None), "value", None)
    if datatype is None:
        raise GeometryLiteralError(f"{term} is not a geometry literal")
    return parse_literal(term.value, datatype)


def serialise(value: GeometryValue, geometry: shapely.Geometry) -> tuple[str, str]:
    """Lexical form and datatype of ``geometry`` written like ``value`` (same CRS, same syntax)."""
    if value.datatype == GML_LITERAL:
        return to_gml(geometry, value.crs_iri), GML_LITERAL
    wkt = shapely.to_wkt(geometry, rounding_precision=-1, trim=True)
    if value.explicit_crs or value.crs_iri not in _CRS84_NAMES:
        wkt = f"<{value.crs_iri}> {wkt}"
    return wkt, WKT_LITERAL


@lru_cache(maxsize=512)
def transformer(source: str, target: str) -> Any:
    """Return a pyproj transformer between two CRS IRIs, both in their authority axis order."""
    from pyproj import Transformer

    return Transformer.from_crs(crs_of(source), crs_of(target), always_xy=False)


def transform(geometry: shapely.Geometry, source: str, target: str) -> shapely.Geometry:
    """Reproject ``geometry`` from CRS ``source`` to ``target`` (axis orders of the CRSs)."""
    if source == target or (source in _CRS84_NAMES and target in _CRS84_NAMES):
        return geometry
    if crs_of(source) == crs_of(target):
        return geometry
    forward = transformer(source, target)
    if shapely.has_z(geometry):
        return shapely.transform(
            geometry,
            lambda xyz: _stack(forward.transform(xyz[:, 0], xyz[:, 1], xyz[:, 2])),
            include_z=True,
        )
    return shapely.transform(geometry, lambda xy: _stack(forward.transform(xy[:, 0], xy[:, 1])))


def _stack(columns: tuple[Any, ...]) -> Any:
    import numpy as np

    return np.column_stack(columns)


def in_crs_of(first: GeometryValue, other: GeometryValue) -> shapely.Geometry:
    """``other``'s geometry in ``first``'s CRS."""
    return transform(other.geometry, other.crs_iri, first.crs_iri)


def lon_lat(value: GeometryValue) -> shapely.Geometry:
    """Return the geometry in CRS84 (longitude, latitude)."""
    return transform(value.geometry, value.crs_iri, CRS84)


def utm_zone(lon: float, lat: float) -> tuple[int, bool]:
    """UTM zone number and hemisphere of a position."""
    return min(max(int((lon + 180) // 6) + 1, 1), 60), lat >= 0


def utm_iri(geometry_lon_lat: shapely.Geometry) -> str:
    """EPSG IRI of the UTM zone of a CRS84 geometry's centroid (for metric computations)."""
    centre = geometry_lon_lat.centroid if not geometry_lon_lat.is_empty else shapely.Point(0, 0)
    zone, north = utm_zone(centre.x, centre.y)
    return f"http://www.opengis.net/def/crs/EPSG/0/{(32600 if north else 32700) + zone}"


def is_metric(value: GeometryValue) -> bool:
    """Tell whether the CRS is projected with metre axes."""
    crs = value.crs
    return not crs.is_geographic and crs.axis_info[0].unit_name in ("metre", "meter")


def to_unit(metres: float | None, degrees: float | None, unit: str) -> float:
    """Express a length known in metres (projected) or degrees (geographic) in ``unit``."""
    if degrees is None:
        assert metres is not None, "give metres or degrees"
        degrees = float(metres) / METRES_PER_DEGREE
    if metres is None:
        metres = degrees * METRES_PER_DEGREE
    if unit == METRE:
        return float(metres)
    if unit == DEGREE:
        return float(degrees)
    if unit == RADIAN:
        return math.radians(degrees)
    raise GeometryLiteralError(f"unit <{unit}> unsupported; use one of {list(UNITS)}")
