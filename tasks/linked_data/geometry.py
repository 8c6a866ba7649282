"""WKB geometry columns to CRS84 in one pass over their coordinates (GeoArrow C kernels).

The exporter needs every geometry three ways: as shapely objects (empty / bounds / validity
checks, grid cells), reprojected to CRS84, and as WKT text. The general path does this with GEOS
one geometry object at a time (``from_wkb`` -> ``shapely.transform`` -> ``to_wkt``). For the
common case - a batch whose WKB holds one 2D geometry type (all polygons, all points ...) - this
module instead parses the WKB once into a native GeoArrow array (flat coordinate buffers plus
offsets, ``geoarrow-c``), reprojects the coordinate buffers with one pyproj call, rebuilds the
shapely objects from the same buffers (``shapely.from_ragged_array``) and later formats WKT from
the native array with GeoArrow's C writer. Both paths give the same geometries; the WKT text is
equal up to number formatting (both round to ``precision`` decimals and trim trailing zeros).

Anything the fast path does not cover (mixed types, Z/M coordinates, unparsable WKB, sliced
arrays) returns ``None`` from :func:`wkb_to_crs84`, and the caller uses the GEOS path, which
reports unparsable rows one by one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa

log = logging.getLogger(__name__)

CRS84_NAME = "OGC:CRS84"

# GeoArrow geometry type codes (OGC simple features numbering) and their list nesting depth.
_SIMPLE_TYPES = {
    1: "POINT",
    2: "LINESTRING",
    3: "POLYGON",
    4: "MULTIPOINT",
    5: "MULTILINESTRING",
    6: "MULTIPOLYGON",
}
_NESTING = {1: 0, 2: 1, 3: 2, 4: 1, 5: 2, 6: 3}


@dataclass(frozen=True)
class NativeGeometry:
    """CRS84 geometries of one batch in both forms, row for row.

    Attributes:
        shapes: shapely geometries (object array; ``None`` where the WKB was null).
        native: the same geometries as a GeoArrow native extension array (nullable).

    """

    shapes: np.ndarray
    native: pa.Array


@cache
def crs84_transformer(source_crs: str) -> Any:
    """Return a pyproj transformer from ``source_crs`` to CRS84 (lon, lat); None for CRS84."""
    from pyproj import CRS, Transformer

    crs = CRS.from_user_input(source_crs)
    if crs.equals(CRS.from_user_input(CRS84_NAME), ignore_axis_order=True) and crs.is_geographic:
        return None
    return Transformer.from_crs(crs, CRS84_NAME, always_xy=True)


def _levels(storage: pa.Array, depth: int) -> tuple[list[np.ndarray], pa.StructArray]:
    """Offsets of each list level (outermost first) and the coordinate struct array."""
    offsets: list[np.ndarray] = []
    node = storage
    for _ in range(depth):
        if node.offset != 0:
            raise ValueError("sliced GeoArrow array")
        offsets.append(np.asarray(node.offsets))
        node = node.values
    if node.offset != 0:
        raise ValueError("sliced GeoArrow array")
    return offsets, node


def _rebuild(storage: pa.Array, depth: int, coords: pa.StructArray) -> pa.Array:
    """``storage`` with its coordinate struct replaced (same offsets and null rows)."""
    if depth == 0:
        return coords
    child = _rebuild(storage.values, depth - 1, coords)
    mask = storage.is_null() if storage.null_count else None
    return pa.ListArray.from_arrays(storage.offsets, child, type=storage.type, mask=mask)


def wkb_to_crs84(wkb: pa.Array, source_crs: str | None) -> NativeGeometry | None:
    """Parse a WKB column, reproject it to CRS84 and build both geometry forms.

    Args:
        wkb: binary WKB values (nulls allowed), e.g. a GeoParquet geometry column.
        source_crs: the input CRS (``EPSG:32633`` ...); ``None`` = already CRS84.

    Returns:
        The CRS84 geometries, or ``None`` when the batch needs the general GEOS path (more than
        one geometry type, Z/M coordinates, unparsable WKB).

    """
    import geoarrow.pyarrow as ga
    import shapely

    if isinstance(wkb, pa.ChunkedArray):
        wkb = wkb.combine_chunks()
    if len(wkb) == 0 or wkb.null_count == len(wkb):
        return None
    try:
        wrapped = ga.wkb().wrap_array(wkb.cast(pa.binary()))
        types = ga.unique_geometry_types(wrapped).to_pylist()
        codes = {t["geometry_type"] for t in types}
        dims = {t["dimensions"] for t in types}
        if len(codes) != 1 or dims != {1} or next(iter(codes)) not in _SIMPLE_TYPES:
            return None
        code = next(iter(codes))
        native = ga.as_geoarrow(wrapped)
        depth = _NESTING[code]
        offsets, coords = _levels(native.storage, depth)
    except Exception as err:  # any parse problem: the GEOS path reports rows
        log.debug("GeoArrow fast path not used (%s); falling back to GEOS", err)
        return None
    x = np.asarray(coords.field("x"))
    y = np.asarray(coords.field("y"))
    transformer = crs84_transformer(source_crs) if source_crs else None
    if transformer is not None:
        x, y = transformer.transform(x, y)
        x, y = np.asarray(x), np.asarray(y)
        new_coords = pa.StructArray.from_arrays(
            [pa.array(x, pa.float64()), pa.array(y, pa.float64())], fields=list(coords.type)
        )
        native = native.type.wrap_array(_rebuild(native.storage, depth, new_coords))
    xy = np.column_stack([x, y])
    kind = getattr(shapely.GeometryType, _SIMPLE_TYPES[code])  # shapely numbers them otherwise
    if depth == 0:
        shapes = shapely.points(xy)
    else:
        # shapely wants the innermost offsets first
        shapes = shapely.from_ragged_array(kind, xy, tuple(reversed(offsets)))
    if wkb.null_count:
        shapes[np.asarray(wkb.is_null())] = None
    return NativeGeometry(shapes, native)


def native_wkt(native: pa.Array, precision: int) -> pa.Array:
    """WKT of GeoArrow native geometries, ``precision`` decimals, trailing zeros trimmed."""
    import geoarrow.pyarrow as ga

    text = ga.format_wkt(native, precision=precision)
    return text.storage if hasattr(text, "storage") else text
