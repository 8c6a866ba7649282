"""CRS84-prefixed WKT literals of geometries."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from tasks.linked_data.geometry import native_wkt
from tasks.linked_data.namespaces import CRS84


def wkt_literals(geoms: np.ndarray, precision: int, native: pa.Array | None = None) -> pa.Array:
    """CRS84-prefixed WKT lexical forms (``<.../CRS84> POLYGON ((...))``).

    ``native``: the same geometries as a GeoArrow native array; WKT is then written by
    GeoArrow's C formatter instead of GEOS (same rounding, about 3x faster).
    """
    if native is not None:
        wkt = native_wkt(native, precision)
    else:
        wkt = pa.array(shapely.to_wkt(geoms, rounding_precision=precision, trim=True), pa.string())
    return pc.binary_join_element_wise(f"<{CRS84}> ", wkt, "")
