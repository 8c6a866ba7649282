"""Checks of a GeoParquet file's ``geo`` metadata against its columns, before reading it.

A file whose metadata names a geometry (or bounding-box covering) column that the file does not
hold makes pyarrow fail with ``ArrowInvalid: No match for FieldRef.Name(...)`` and a schema dump,
and geopandas with "No geometry columns are included"; :func:`check_geo_columns` names the file,
the missing column and the columns present instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tasks.errors import EeflowError


class GeoParquetError(EeflowError, ValueError):
    """A GeoParquet file's metadata does not match its columns (the message names both)."""


def check_geo_columns(path: str | Path, required: bool = True) -> dict[str, Any]:
    """Return the ``geo`` metadata of ``path`` after checking every column it names exists.

    Args:
        path: a (Geo)Parquet file.
        required: raise when the file has no ``geo`` metadata (else return ``{}``).

    Raises:
        GeoParquetError: no ``geo`` metadata (when ``required``), metadata that is not JSON, or a
            primary / geometry / covering column named by the metadata that the file lacks.

    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise GeoParquetError(f"{path}: not a readable Parquet file: {err}") from None
    raw = (schema.metadata or {}).get(b"geo")
    if raw is None:
        if required:
            raise GeoParquetError(
                f"{path}: not a GeoParquet file (no 'geo' metadata); write it with "
                "geopandas.GeoDataFrame.to_parquet"
            )
        return {}
    try:
        geo = json.loads(raw)
    except json.JSONDecodeError as err:
        raise GeoParquetError(f"{path}: the 'geo' metadata is not JSON: {err}") from None
    names = set(schema.names)
    columns = geo.get("columns") or {}
    primary = geo.get("primary_column")
    named = {f"primary_column {primary!r}": primary} if primary else {}
    for column, meta in columns.items():
        named[f"geometry column {column!r}"] = column
        bbox = ((meta or {}).get("covering") or {}).get("bbox") or {}
        for part in ("xmin", "ymin", "xmax", "ymax"):
            ref = bbox.get(part)
            if isinstance(ref, list) and ref:
                named[f"covering.bbox.{part} of {column!r}"] = ref[0]
    for what, column in named.items():
        if column not in names:
            raise GeoParquetError(
                f"{path}: the GeoParquet metadata names the {what}, but the file has no column "
                f"{column!r}; columns: {schema.names}. Rewrite the file with "
                "geopandas.GeoDataFrame.to_parquet (or fix its 'geo' metadata)"
            )
    return geo
