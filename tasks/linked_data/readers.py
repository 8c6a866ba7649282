"""Read product files in bounded batches: attribute table + shapely geometries in CRS84.

Every reader yields :class:`RowBatch` objects of at most ``batch_rows`` rows, so memory stays flat
in the input size. Geometries are reprojected to CRS84 (longitude, latitude) - GeoSPARQL's default
CRS, the only one oxigraph's built-in GeoSPARQL functions accept; missing or unparsable geometries
come back as ``None`` and are reported by the exporter with their row id.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import shapely

from tasks.linked_data.geometry import CRS84_NAME, crs84_transformer, wkb_to_crs84
from tasks.linked_data.mapping import Mapping, MappingError, SourceSpec


@dataclass
class RowBatch:
    """A slice of an input file.

    Attributes:
        table: attribute columns (geometry columns removed).
        geometry: shapely geometries in CRS84 (object array, ``None`` = missing/unparsable), or
            ``None`` for inputs without geometry (JSON).
        source_rows: 0-based row numbers in the file (for error reports and default row ids).
        source_crs: the input's CRS as text (``EPSG:3413`` ...).
        native_geometry: the same CRS84 geometries as a GeoArrow native array when the batch
            took the fast WKB path (:mod:`tasks.linked_data.geometry`); the exporter then
            writes WKT from it. ``None``: WKT comes from the shapely geometries.

    """

    table: pa.Table
    geometry: np.ndarray | None
    source_rows: np.ndarray
    source_crs: str | None
    native_geometry: pa.Array | None = None


def reproject_to_crs84(geoms: np.ndarray, source_crs: str | None) -> np.ndarray:
    """Reproject shapely geometries to CRS84 (lon, lat); ``None`` CRS means already CRS84."""
    if source_crs is None:
        return geoms
    transformer = crs84_transformer(source_crs)
    if transformer is None:
        return geoms

    def _apply(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, _apply)


def _crs_text(value: Any) -> str | None:
    if value in (None, ""):
        return None
    from pyproj import CRS

    crs = CRS.from_user_input(value)
    authority = crs.to_authority()
    return f"{authority[0]}:{authority[1]}" if authority else crs.to_wkt()


def _split_geometry(
    batch: pa.RecordBatch, geometry_column: str, first_row: int, crs: str | None
) -> RowBatch:
    table = pa.Table.from_batches([batch]).drop_columns([geometry_column])
    rows = np.arange(first_row, first_row + batch.num_rows, dtype=np.int64)
    column = batch.column(geometry_column)
    fast = wkb_to_crs84(column, crs)
    if fast is not None:
        return RowBatch(table, fast.shapes, rows, crs, fast.native)
    geoms = shapely.from_wkb(column.to_numpy(zero_copy_only=False), on_invalid="ignore")
    return RowBatch(table, reproject_to_crs84(geoms, crs), rows, crs)


def read_vector_ogr(path: Path, spec: SourceSpec, batch_rows: int) -> Iterator[RowBatch]:
    """GeoJSON / Shapefile through GDAL (pyogrio) in Arrow batches."""
    from pyogrio.raw import open_arrow

    with open_arrow(path, batch_size=batch_rows, use_pyarrow=True) as (meta, reader):
        crs = spec.crs or _crs_text(meta.get("crs")) or CRS84_NAME
        geometry_column = "wkb_geometry" if not meta.get("geometry_name") else meta["geometry_name"]
        first = 0
        for batch in reader:
            if geometry_column not in batch.schema.names:
                geometry_column = next(
                    n
                    for n in batch.schema.names
                    if "geoarrow" in str(batch.schema.field(n).metadata)
                )
            yield _split_geometry(batch, geometry_column, first, crs)
            first += batch.num_rows


def read_geoparquet(path: Path, spec: SourceSpec, batch_rows: int) -> Iterator[RowBatch]:
    """GeoParquet (WKB geometry column, CRS from the ``geo`` metadata; absent = CRS84)."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    metadata = parquet.schema_arrow.metadata or {}
    geo = json.loads(metadata.get(b"geo", b"{}"))
    column = (
        spec.geometry_column
        if spec.geometry_column in parquet.schema_arrow.names
        else (geo.get("primary_column", spec.geometry_column))
    )
    if column not in parquet.schema_arrow.names:
        raise MappingError(
            f"{path}: geometry column {column!r} not found; columns: {parquet.schema_arrow.names}"
        )
    crs_meta = geo.get("columns", {}).get(column, {}).get("crs", CRS84_NAME)
    crs = spec.crs or (_crs_text(crs_meta) if crs_meta is not None else CRS84_NAME)
    first = 0
    for batch in parquet.iter_batches(batch_size=batch_rows):
        yield _split_geometry(batch, column, first, crs)
        first += batch.num_rows


def _first_present(frame: Any, columns: list[str]) -> np.ndarray:
    import pandas as pd

    present = [c for c in columns if c in frame.columns]
    out = pd.Series(np.nan, index=frame.index, dtype="float64")
    for column in present:
        out = out.fillna(pd.to_numeric(frame[column], errors="coerce"))
    return out.to_numpy()


def read_csv(path: Path, spec: SourceSpec, batch_rows: int) -> Iterator[RowBatch]:
    """CSV with a WKT column or longitude/latitude columns (first non-null of each list)."""
    import pandas as pd

    crs = spec.crs or CRS84_NAME
    first = 0
    with pd.read_csv(
        path,
        dtype=str,
        chunksize=batch_rows,
        keep_default_na=False,
        na_values=["", *spec.null_values],
    ) as chunks:
        for frame in chunks:
            if spec.wkt_column:
                if spec.wkt_column not in frame.columns:
                    raise MappingError(
                        f"{path}: WKT column {spec.wkt_column!r} not found; columns: "
                        f"{list(frame.columns)}"
                    )
                wkt = frame[spec.wkt_column].to_numpy(dtype=object)
                geoms = shapely.from_wkt(wkt, on_invalid="ignore")
                frame = frame.drop(columns=[spec.wkt_column])
            else:
                for names in (spec.lon_columns, spec.lat_columns):
                    if not any(c in frame.columns for c in names):
                        raise MappingError(
                            f"{path}: none of the coordinate columns {names} is present; "
                            f"columns: {list(frame.columns)}"
                        )
                lon = _first_present(frame, spec.lon_columns)
                lat = _first_present(frame, spec.lat_columns)
                geoms = shapely.points(lon, lat)
                geoms[~(np.isfinite(lon) & np.isfinite(lat))] = None
            table = pa.table(
                {
                    str(name): pa.array(
                        [None if pd.isna(v) else str(v) for v in frame[name]], pa.string()
                    )
                    for name in frame.columns
                }
            )
            rows = np.arange(first, first + len(frame), dtype=np.int64)
            yield RowBatch(table, reproject_to_crs84(geoms, crs), rows, crs)
            first += len(frame)


def _flatten(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(f"{prefix}.{key}" if prefix else str(key), item)
    else:
        yield prefix, value


def dotted_get(document: Any, dotted: str) -> Any:
    """Value at ``a.b.c`` in nested dicts, or ``None`` when any step is missing."""
    current = document
    for part in dotted.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


def json_rows(document: Any, rows_from: str, path: Path) -> pa.Table:
    """Rows of a JSON document: a dict becomes (key, value) rows (nested keys dotted)."""
    value = dotted_get(document, rows_from)
    if value is None:
        return pa.table({"key": pa.array([], pa.string()), "value": pa.array([], pa.string())})
    if isinstance(value, dict):
        items = list(_flatten("", value))
        return pa.table(
            {
                "key": pa.array([k for k, _ in items], pa.string()),
                "value": pa.array([json.dumps(v) for _, v in items], pa.string()),
            }
        )
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return pa.Table.from_pylist(value)
    raise MappingError(f"{path}: {rows_from!r} must be an object or a list of objects")


def read_rows(path: Path, mapping: Mapping, batch_rows: int) -> Iterator[RowBatch]:
    """Dispatch on the mapping's source format (vector formats only; JSON is read whole)."""
    readers = {
        "geojson": read_vector_ogr,
        "shapefile": read_vector_ogr,
        "geoparquet": read_geoparquet,
        "csv": read_csv,
    }
    if mapping.source.format not in readers:
        raise MappingError(f"{path}: format {mapping.source.format!r} has no batch reader")
    yield from readers[mapping.source.format](path, mapping.source, batch_rows)
