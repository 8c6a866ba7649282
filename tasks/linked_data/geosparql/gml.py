"""GML 3 geometries (``geo:gmlLiteral``) to shapely and back, with lxml.

Supported profile (GeoSPARQL req. 17 asks implementations to document theirs): the GML 3.1.1
(``http://www.opengis.net/gml``) and 3.2 (``http://www.opengis.net/gml/3.2``) Simple Features
geometries ``Point``, ``LineString``, ``LinearRing``, ``Curve`` (``LineStringSegment`` segments),
``Polygon`` / ``Surface`` (``PolygonPatch``) with ``exterior`` / ``interior`` (and GML 3.1
``outerBoundaryIs`` / ``innerBoundaryIs``), ``Envelope``, ``MultiPoint``, ``MultiCurve``,
``MultiLineString``, ``MultiSurface``, ``MultiPolygon`` and ``MultiGeometry``; coordinates in
``pos`` / ``posList`` (``srsDimension`` 2 or 3), ``coordinates`` or ``coord``. ``srsName`` (on the
root, any URL / URN / ``EPSG:n`` form pyproj reads) names the CRS; coordinates are in that CRS's
axis order. An element without coordinates (or an empty literal) is an empty geometry. Output is
GML 3.2.
"""

from __future__ import annotations

from typing import Any

import shapely

GML32 = "http://www.opengis.net/gml/3.2"
GML31 = "http://www.opengis.net/gml"


class GmlError(ValueError):
    """A GML literal does not parse or uses an element outside the supported profile."""


def _local(tag: Any) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _children(element: Any, name: str) -> list[Any]:
    return [child for child in element if _local(child.tag) == name]


def _descendants(element: Any, name: str) -> list[Any]:
    return [child for child in element.iter() if _local(child.tag) == name]


def _dimension(element: Any, default: int) -> int:
    for node in (element, *element.iterancestors()):
        value = node.get("srsDimension")
        if value:
            return int(value)
    return default


def _coordinates(element: Any) -> list[tuple[float, ...]]:
    """Coordinates of a Point / LineString / LinearRing element (first coordinate form found)."""
    pos_list = _children(element, "posList")
    if pos_list:
        values = [float(v) for v in (pos_list[0].text or "").split()]
        dim = _dimension(pos_list[0], 2)
        if len(values) % dim:
            raise GmlError(f"posList of {len(values)} numbers is not a multiple of {dim}")
        return [tuple(values[i : i + dim]) for i in range(0, len(values), dim)]
    positions = _children(element, "pos") + _children(element, "pointProperty")
    if positions:
        coords = []
        for pos in positions:
            if _local(pos.tag) == "pointProperty":
                coords.extend(_coordinates(_descendants(pos, "Point")[0]))
            else:
                coords.append(tuple(float(v) for v in (pos.text or "").split()))
        return coords
    coordinates = _children(element, "coordinates")
    if coordinates:
        decimal = coordinates[0].get("decimal", ".")
        cs = coordinates[0].get("cs", ",")
        ts = coordinates[0].get("ts", " ")
        tuples = (coordinates[0].text or "").strip().split(ts)
        return [
            tuple(float(v.replace(decimal, ".")) for v in item.split(cs))
            for item in tuples
            if item.strip()
        ]
    coords = []
    for coord in _children(element, "coord"):
        coords.append(
            tuple(
                float(child.text)
                for child in coord
                if _local(child.tag) in ("X", "Y", "Z") and child.text
            )
        )
    return coords


def _ring(element: Any) -> list[tuple[float, ...]]:
    rings = _descendants(element, "LinearRing")
    if not rings:
        raise GmlError(f"<{_local(element.tag)}> holds no LinearRing")
    return _coordinates(rings[0])


def _polygon(element: Any) -> shapely.Geometry:
    exterior = _children(element, "exterior") + _children(element, "outerBoundaryIs")
    if not exterior:
        return shapely.from_wkt("POLYGON EMPTY")
    holes = [
        _ring(ring)
        for ring in _children(element, "interior") + _children(element, "innerBoundaryIs")
    ]
    return shapely.Polygon(_ring(exterior[0]), holes)


def _line(element: Any) -> shapely.Geometry:
    coords = _coordinates(element)
    if not coords:
        for segment in _descendants(element, "LineStringSegment"):
            part = _coordinates(segment)
            coords.extend(part if not coords else part[1:])
    return shapely.LineString(coords) if coords else shapely.from_wkt("LINESTRING EMPTY")


def _members(element: Any) -> list[Any]:
    """Geometry elements inside ``*Member`` / ``*Members`` properties of an aggregate."""
    found: list[Any] = []
    for prop in element:
        if _local(prop.tag).endswith(("Member", "Members")):
            found.extend(child for child in prop if isinstance(child.tag, str))
    return found


def element_to_geometry(element: Any) -> shapely.Geometry:
    """Convert one GML geometry element (lxml) into a shapely geometry (coordinates as written)."""
    name = _local(element.tag)
    if name == "Point":
        coords = _coordinates(element)
        return shapely.Point(coords[0]) if coords else shapely.from_wkt("POINT EMPTY")
    if name in ("LineString", "Curve", "LineStringSegment"):
        return _line(element)
    if name == "LinearRing":
        coords = _coordinates(element)
        return shapely.LinearRing(coords) if coords else shapely.from_wkt("LINEARRING EMPTY")
    if name in ("Polygon", "PolygonPatch"):
        return _polygon(element)
    if name == "Surface":
        return _surface(element)
    if name == "Envelope":
        return _envelope(element)
    return _collection(element, name)


def _surface(element: Any) -> shapely.Geometry:
    patches = _descendants(element, "PolygonPatch")
    if len(patches) == 1:
        return _polygon(patches[0])
    return shapely.MultiPolygon([_polygon(p) for p in patches])


def _envelope(element: Any) -> shapely.Geometry:
    lower = _children(element, "lowerCorner")
    upper = _children(element, "upperCorner")
    if not lower or not upper:
        return shapely.from_wkt("POLYGON EMPTY")
    x0, y0 = (float(v) for v in (lower[0].text or "").split()[:2])
    x1, y1 = (float(v) for v in (upper[0].text or "").split()[:2])
    return shapely.box(x0, y0, x1, y1)


def _collection(element: Any, name: str) -> shapely.Geometry:
    """Multi-geometries and collections of the profile (their members converted first)."""
    parts = [element_to_geometry(member) for member in _members(element)]
    if name == "MultiPoint":
        return shapely.MultiPoint(parts) if parts else shapely.from_wkt("MULTIPOINT EMPTY")
    if name in ("MultiCurve", "MultiLineString"):
        return (
            shapely.MultiLineString(parts) if parts else shapely.from_wkt("MULTILINESTRING EMPTY")
        )
    if name in ("MultiSurface", "MultiPolygon"):
        polygons = [p for part in parts for p in getattr(part, "geoms", [part])]
        empty = shapely.from_wkt("MULTIPOLYGON EMPTY")
        return shapely.MultiPolygon(polygons) if polygons else empty
    if name in ("MultiGeometry", "GeometryCollection"):
        return shapely.GeometryCollection(parts)
    raise GmlError(
        f"GML element <{name}> is outside the supported profile (Point, LineString, LinearRing, "
        "Curve, Polygon, Surface, Envelope, MultiPoint, MultiCurve, MultiLineString, "
        "MultiSurface, MultiPolygon, MultiGeometry)"
    )


def parse_gml(text: str) -> tuple[shapely.Geometry, str | None]:
    """Parse a GML literal; return (geometry, ``srsName`` or None). Empty text: empty geometry."""
    from lxml import etree

    if not text.strip():
        return shapely.from_wkt("GEOMETRYCOLLECTION EMPTY"), None
    try:
        root = etree.fromstring(text.strip().encode())
    except etree.XMLSyntaxError as err:
        raise GmlError(f"not well-formed XML: {err}") from None
    srs = next((n.get("srsName") for n in root.iter() if n.get("srsName")), None)
    try:
        return element_to_geometry(root), srs
    except (IndexError, ValueError, TypeError, shapely.errors.GEOSException) as err:
        if isinstance(err, GmlError):
            raise
        raise GmlError(f"<{_local(root.tag)}> has malformed coordinates: {err}") from None


def _pos_list(coords: Any, dim: int) -> str:
    return " ".join(repr(float(v)) for row in coords for v in row[:dim])


def _geometry_xml(geom: shapely.Geometry, dim: int) -> str:
    kind = geom.geom_type
    if geom.is_empty:
        return f"<gml:{ 'MultiGeometry' if kind == 'GeometryCollection' else kind}/>"
    if kind == "Point":
        return f"<gml:Point><gml:pos>{_pos_list(geom.coords, dim)}</gml:pos></gml:Point>"
    if kind in ("LineString", "LinearRing"):
        return (
            f"<gml:{kind}><gml:posList>{_pos_list(geom.coords, dim)}</gml:posList></gml:{kind}>"
        )
    if kind == "Polygon":
        rings = [("exterior", geom.exterior)] + [("interior", r) for r in geom.interiors]
        body = "".join(
            f"<gml:{role}><gml:LinearRing><gml:posList>{_pos_list(ring.coords, dim)}"
            f"</gml:posList></gml:LinearRing></gml:{role}>"
            for role, ring in rings
        )
        return f"<gml:Polygon>{body}</gml:Polygon>"
    wrapper, member = {
        "MultiPoint": ("MultiPoint", "pointMember"),
        "MultiLineString": ("MultiCurve", "curveMember"),
        "MultiPolygon": ("MultiSurface", "surfaceMember"),
    }.get(kind, ("MultiGeometry", "geometryMember"))
    members = "".join(
        f"<gml:{member}>{_geometry_xml(part, dim)}</gml:{member}>" for part in geom.geoms
    )
    return f"<gml:{wrapper}>{members}</gml:{wrapper}>"


def to_gml(geom: shapely.Geometry, srs_name: str) -> str:
    """Write ``geom`` as GML 3.2 with ``srsName`` on the root element."""
    dim = 3 if shapely.has_z(geom) else 2
    xml = _geometry_xml(geom, dim)
    attrs = f' xmlns:gml="{GML32}" srsName="{srs_name}"' + (' srsDimension="3"' if dim == 3 else "")
    close = xml.index(">")
    cut = close - 1 if xml[close - 1] == "/" else close
    return xml[:cut] + attrs + xml[cut:]
