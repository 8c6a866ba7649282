"""Read a crop map for LUCAS evaluation: field instances (GeoParquet) or a class raster (COG).

Instances: GeoParquet polygons (the crop pipeline's predict output or a user file) with a class
column (``crop_class``: a name of :data:`CROP_CLASSES` or its integer index) and optionally
``confidence``. They are read with pyarrow without decoding every geometry: class codes and the
per-instance bounding boxes (the GeoParquet 1.1 ``bbox`` covering column when present, else computed
once from the geometries) are kept as arrays and only the WKB of instances near survey points is
decoded later (:meth:`VectorCropMap.geometries`). With a bbox covering column the geometry column is
not even read up front: the matcher walks the file's row groups (:meth:`VectorCropMap.chunks`) and
reads the WKB of a row group only when one of its boxes lies near a survey point, so memory holds
the boxes and class codes (about 34 bytes per instance), never every geometry.

Class raster: a single-band GeoTIFF/COG of class indices into :data:`CROP_CLASSES`, nodata = no
instance. It is *sampled*, not polygonised: an instance (a connected region of one class) lies
within r of a point exactly when one of its pixels (a square footprint) does, so testing the pixel
squares around each point gives the same answer as polygonising, without vectorising the whole map.
:func:`polygonise_class_raster` is there when instances are wanted as polygons (e.g. for RDF).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely
from pyproj import CRS

from tasks.domain.crops import CROP_CLASSES
from tasks.errors import EeflowError
from tasks.geoparquet import check_geo_columns

log = logging.getLogger(__name__)

RASTER_SUFFIXES = (".tif", ".tiff", ".cog")
#: Instances per chunk of an in-memory map in the matcher (file-backed maps: one row group).
CHUNK_ROWS = 1_000_000
VECTOR_SUFFIXES = (".parquet", ".geoparquet")


class CropMapError(EeflowError, ValueError):
    """A crop map is unusable as given; the message names the file and what to fix."""


@dataclass
class VectorCropMap:
    """Field instances of a crop map, with lazily decoded geometries.

    Attributes:
        name: label of the map in reports (model name).
        source: file path.
        crs: CRS of the coordinates.
        class_index: int16 (n,) index into CROP_CLASSES per instance.
        bbox: float64 (n, 4) xmin, ymin, xmax, ymax per instance, map CRS; None for a file-backed
            map (the boxes are read per row group: :meth:`chunk_boxes`, :meth:`boxes`).
        wkb: WKB of every instance (pyarrow binary array), or None when ``geoms`` is set or the
            geometries stay in the file.
        parquet_path: GeoParquet file the WKB is read from, row group by row group, when neither
            ``wkb`` nor ``geoms`` is held (file with a bbox covering column).
        geometry_column: name of the WKB column in ``parquet_path``.
        chunk_starts: int64 (k + 1,) first instance of each row group of ``parquet_path`` and the
            total; None for in-memory maps (chunks of ``CHUNK_ROWS``).
        chunk_extents: float64 (k, 4) extent of each row group (from its bbox statistics).
        bbox_column: name of the bbox covering column in ``parquet_path``.

    """

    name: str
    source: str
    crs: CRS
    class_index: np.ndarray
    bbox: np.ndarray | None
    wkb: pa.Array | None = None
    geoms: np.ndarray | None = None
    parquet_path: str | None = None
    geometry_column: str = "geometry"
    chunk_starts: np.ndarray | None = None
    chunk_extents: np.ndarray | None = None
    bbox_column: str = "bbox"
    _parquet: Any = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.class_index.shape[0])

    def chunks(self) -> list[tuple[int, int]]:
        """Instance ranges ``(start, stop)`` the matcher processes one at a time.

        File-backed maps: one range per row group (its WKB is read at once); in-memory maps:
        ranges of ``CHUNK_ROWS`` instances.
        """
        if self.chunk_starts is not None:
            s = self.chunk_starts
            return [(int(a), int(b)) for a, b in zip(s[:-1], s[1:], strict=True) if b > a]
        n = len(self)
        return [(a, min(a + CHUNK_ROWS, n)) for a in range(0, n, CHUNK_ROWS)]

    def _row_group_column(self, group: int, column: str) -> pa.ChunkedArray:
        """Read one column of one row group (thread-safe: one reader per thread).

        Two threads reading through one ``ParquetFile`` deadlocked (a 50 M-parcel run hung in
        ``read_row_group``), so each thread opens its own reader and reads without Arrow's
        thread pool (the matcher's own threads give the parallelism). No memory map: mapped
        pages of a multi-GB file would count in the resident set.
        """
        import threading

        if self._parquet is None:
            self._parquet = threading.local()
        reader = getattr(self._parquet, "reader", None)
        if reader is None:
            assert self.parquet_path is not None
            reader = pq.ParquetFile(self.parquet_path, memory_map=False)
            self._parquet.reader = reader
        return reader.read_row_group(group, columns=[column], use_threads=False).column(0)

    def _row_group_wkb(self, group: int) -> pa.ChunkedArray:
        return self._row_group_column(group, self.geometry_column)

    def chunk_boxes(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        """Return xmin, ymin, xmax, ymax (float arrays) of instances ``start:stop`` (one chunk)."""
        if self.bbox is not None:
            b = self.bbox[start:stop]
            return b[:, 0], b[:, 1], b[:, 2], b[:, 3]
        assert self.chunk_starts is not None
        group = int(np.searchsorted(self.chunk_starts, start, side="right")) - 1
        boxes = self._row_group_column(group, self.bbox_column).combine_chunks()
        parts = []
        for part in ("xmin", "ymin", "xmax", "ymax"):
            values = boxes.field(part)
            if values.null_count:
                raise CropMapError(
                    f"{self.source}: the bbox covering column {self.bbox_column!r} has null "
                    f"{part} values in row group {group}; rewrite the file with geopandas."
                    "GeoDataFrame.to_parquet(write_covering_bbox=True)"
                )
            parts.append(values.to_numpy(zero_copy_only=False))
        return tuple(parts)

    def boxes(self) -> np.ndarray:
        """Return float64 (n, 4) xmin, ymin, xmax, ymax of every instance (read if file-backed)."""
        if self.bbox is not None:
            return self.bbox
        return np.concatenate([np.column_stack(self.chunk_boxes(a, b)).astype("float64")
                               for a, b in self.chunks()])

    def chunk_geometries(self, start: int, local: np.ndarray) -> np.ndarray:
        """Shapely geometries of instances ``start + local`` of the chunk that begins at ``start``.

        File-backed maps read only that row group's WKB column and decode only ``local``.
        """
        if self.geoms is not None or self.wkb is not None or self.chunk_starts is None:
            return self.geometries(start + np.asarray(local, dtype="int64"))
        group = int(np.searchsorted(self.chunk_starts, start, side="right")) - 1
        wkb = self._row_group_wkb(group).take(pa.array(local, type=pa.int64()))
        return shapely.from_wkb(wkb.to_numpy(zero_copy_only=False))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Extent of the map (xmin, ymin, xmax, ymax), map CRS."""
        b = self.bbox if self.bbox is not None else self.chunk_extents
        assert b is not None
        return (float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()),
                float(b[:, 3].max()))

    def geometries(self, index: np.ndarray) -> np.ndarray:
        """Return shapely geometries of the instances ``index`` (decoded from WKB on demand)."""
        if self.geoms is not None:
            return self.geoms[index]
        if self.wkb is not None:
            return shapely.from_wkb(self.wkb.take(pa.array(index, type=pa.int64())).to_numpy(
                zero_copy_only=False))
        assert self.chunk_starts is not None
        index = np.asarray(index, dtype="int64")
        out = np.empty(index.size, dtype=object)
        group = np.searchsorted(self.chunk_starts, index, side="right") - 1
        for g in np.unique(group):
            mine = np.flatnonzero(group == g)
            local = index[mine] - self.chunk_starts[g]
            wkb = self._row_group_wkb(int(g)).take(pa.array(local, type=pa.int64()))
            out[mine] = shapely.from_wkb(wkb.to_numpy(zero_copy_only=False))
        return out

    def all_geometries(self) -> np.ndarray:
        """Decode every instance geometry (slow for large maps; kept once decoded)."""
        if self.geoms is None:
            self.geoms = self.geometries(np.arange(len(self)))
        return self.geoms

    def to_geodataframe(self) -> gpd.GeoDataFrame:
        """Instances as a GeoDataFrame with ``crop_class`` names (decodes every geometry)."""
        names = np.asarray(CROP_CLASSES, dtype=object)[self.class_index]
        return gpd.GeoDataFrame({"crop_class": names}, geometry=self.all_geometries(), crs=self.crs)


@dataclass
class RasterCropMap:
    """A class-index raster (north-up), sampled around survey points.

    Attributes:
        transform: affine pixel -> map coordinates.
        nodata: pixel value meaning "no instance" (None: every pixel is a class).

    """

    name: str
    source: str
    crs: CRS
    transform: Any
    width: int
    height: int
    nodata: float | None

    def __len__(self) -> int:
        return self.width * self.height

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Extent of the raster (xmin, ymin, xmax, ymax), map CRS."""
        t = self.transform
        x0, y0 = t.c, t.f
        x1, y1 = x0 + t.a * self.width, y0 + t.e * self.height
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


CropMap = VectorCropMap | RasterCropMap


def class_names_to_index(values: pa.Array | np.ndarray, source: str) -> np.ndarray:
    """Map class names (or integer indices) of a map to int16 indices into CROP_CLASSES.

    Raises:
        CropMapError: a name is not a crop class, an index is out of range, or values are null.

    """
    array = pa.array(values) if not isinstance(values, pa.Array | pa.ChunkedArray) else values
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.null_count:
        raise CropMapError(f"{source}: {array.null_count} instance(s) have no class")
    if pa.types.is_integer(array.type):
        index = array.to_numpy().astype("int64")
        bad = (index < 0) | (index >= len(CROP_CLASSES))
        if bad.any():
            raise CropMapError(
                f"{source}: class indices {sorted(set(index[bad].tolist()))[:10]} are outside "
                f"0..{len(CROP_CLASSES) - 1} (CROP_CLASSES)"
            )
        return index.astype("int16")
    if pa.types.is_dictionary(array.type) and pa.types.is_string(array.type.value_type):
        encoded = array
    else:
        encoded = pc.dictionary_encode(array.cast(pa.string()))
    names = [str(v) for v in encoded.dictionary.to_pylist()]
    unknown = sorted(set(names) - set(CROP_CLASSES))
    if unknown:
        raise CropMapError(
            f"{source}: unknown class name(s) {unknown[:10]}; allowed: {list(CROP_CLASSES)}"
        )
    lookup = np.array([CROP_CLASSES.index(n) for n in names], dtype="int16")
    return lookup[encoded.indices.to_numpy(zero_copy_only=False)]


def _geo_metadata(schema: pa.Schema, source: str) -> dict[str, Any]:
    raw = (schema.metadata or {}).get(b"geo")
    if raw is None:
        raise CropMapError(
            f"{source}: not a GeoParquet file (no 'geo' metadata); write the instances with "
            "geopandas.GeoDataFrame.to_parquet"
        )
    return json.loads(raw)


def _crs_of(geo_column: dict[str, Any], source: str, fallback: str | None) -> CRS:
    if "crs" not in geo_column:
        # GeoParquet: an absent crs key means OGC:CRS84.
        return CRS.from_user_input("OGC:CRS84")
    if geo_column["crs"] is None:
        if fallback is None:
            raise CropMapError(
                f"{source}: the map has no CRS; write it with its CRS (e.g. its UTM zone, "
                "EPSG:32633) or set lucas.map_crs to the CRS it is in"
            )
        return CRS.from_user_input(fallback)
    return CRS.from_json_dict(geo_column["crs"]) if isinstance(geo_column["crs"], dict) \
        else CRS.from_user_input(geo_column["crs"])


def read_instances(
    path: str | Path,
    name: str | None = None,
    class_column: str = "crop_class",
    map_crs: str | None = None,
) -> VectorCropMap:
    """Read crop-map instances from GeoParquet.

    Args:
        path: GeoParquet file of polygons with ``class_column``.
        name: name of the map in reports (default: file stem).
        class_column: column holding class names (or indices into CROP_CLASSES).
        map_crs: CRS to assume when the file records none (else that is an error).

    Returns:
        The map with bounding boxes and class codes as arrays, geometries decoded lazily.

    Raises:
        CropMapError: no CRS, no instances, missing class column, unknown class names.

    """
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise FileNotFoundError(f"crop map {path} does not exist")
    schema = pq.read_schema(path)
    geo = _geo_metadata(schema, source)
    check_geo_columns(path)
    geom_col = geo.get("primary_column", "geometry")
    column_meta = geo.get("columns", {}).get(geom_col, {})
    crs = _crs_of(column_meta, source, map_crs)
    if class_column not in schema.names:
        raise CropMapError(
            f"{source}: class column {class_column!r} is missing; columns: {schema.names} "
            "(set lucas.class_column)"
        )
    bbox_col = (column_meta.get("covering") or {}).get("bbox", {}).get("xmin", [None])[0]
    wkb_encoded = column_meta.get("encoding", "WKB").upper() == "WKB"
    if bbox_col and wkb_encoded and _no_null_geometry(path, geom_col):
        return _file_backed_instances(path, name, crs, geom_col, class_column, bbox_col)
    columns = [geom_col, class_column] + ([bbox_col] if bbox_col else [])
    table = pq.read_table(path, columns=columns, read_dictionary=[class_column],
                          memory_map=True).unify_dictionaries()
    if table.num_rows == 0:
        raise CropMapError(f"{source}: the map is empty (0 instances); nothing to evaluate")
    if column_meta.get("encoding", "WKB").upper() != "WKB":
        frame = gpd.read_parquet(path, columns=[geom_col, class_column])
        table = pa.table({geom_col: shapely.to_wkb(frame.geometry.values),
                          class_column: pa.array(frame[class_column])})
        bbox_col = None
    wkb = table.column(geom_col).combine_chunks()
    valid = pc.is_valid(wkb).to_numpy(zero_copy_only=False)
    if not valid.all():
        log.warning("%s: %d instance(s) without geometry are ignored", source, int((~valid).sum()))
        table = table.filter(pa.array(valid))
        wkb = table.column(geom_col).combine_chunks()
        if table.num_rows == 0:
            raise CropMapError(f"{source}: no instance has a geometry; nothing to evaluate")
    class_index = class_names_to_index(table.column(class_column), source)
    geoms = None
    if bbox_col:
        b = table.column(bbox_col).combine_chunks()
        bbox = np.column_stack([b.field(k).to_numpy(zero_copy_only=False).astype("float64")
                                for k in ("xmin", "ymin", "xmax", "ymax")])
    else:
        geoms = shapely.from_wkb(wkb.to_numpy(zero_copy_only=False))
        bbox = shapely.bounds(geoms)
    if not np.isfinite(bbox).all():
        raise CropMapError(f"{source}: some instances have empty geometries; drop them first")
    log.info("read %d instances from %s (%s)", len(class_index), path, crs.name)
    return VectorCropMap(
        name=name or path.stem, source=source, crs=crs, class_index=class_index, bbox=bbox,
        wkb=None if geoms is not None else wkb, geoms=geoms,
    )


def _no_null_geometry(path: Path, geom_col: str) -> bool:
    """Return True when the row-group statistics of ``geom_col`` show no null (else False)."""
    meta = pq.ParquetFile(path).metadata
    if meta.num_row_groups == 0:
        return False
    names = [meta.schema.column(j).path for j in range(meta.num_columns)]
    if geom_col not in names:
        return False
    j = names.index(geom_col)
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(j).statistics
        if stats is None or not stats.has_null_count or stats.null_count:
            return False
    return True


def _file_backed_instances(
    path: Path, name: str | None, crs: CRS, geom_col: str, class_column: str, bbox_col: str
) -> VectorCropMap:
    """Read the class codes and the row groups' extents; boxes and WKB stay in the file."""
    source = str(path)
    parquet = pq.ParquetFile(path, memory_map=False, read_dictionary=[class_column])
    meta = parquet.metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype("int64")
    if int(starts[-1]) == 0:
        raise CropMapError(f"{source}: the map is empty (0 instances); nothing to evaluate")
    column = parquet.read(columns=[class_column], use_threads=True).column(class_column)
    class_index = np.empty(int(starts[-1]), dtype="int16")
    row = 0
    for chunk in column.chunks:  # chunk by chunk: no unified copy of 50 M dictionary indices
        class_index[row:row + len(chunk)] = class_names_to_index(chunk, source)
        row += len(chunk)
    del column
    crop_map = VectorCropMap(
        name=name or path.stem, source=source, crs=crs, class_index=class_index, bbox=None,
        parquet_path=source, geometry_column=geom_col, chunk_starts=starts, bbox_column=bbox_col,
    )
    crop_map.chunk_extents = _row_group_extents(crop_map, meta, bbox_col)
    log.info("%s: %d instances in %d row groups (%s); boxes and geometries stay in the file",
             path, len(crop_map), meta.num_row_groups, crs.name)
    return crop_map


def _row_group_extents(crop_map: VectorCropMap, meta: Any, bbox_col: str) -> np.ndarray:
    """Extent (xmin, ymin, xmax, ymax) of each row group: its bbox statistics, else its boxes."""
    names = [meta.schema.column(j).path for j in range(meta.num_columns)]
    parts = [f"{bbox_col}.{p}" for p in ("xmin", "ymin", "xmax", "ymax")]
    out = np.empty((meta.num_row_groups, 4))
    for i, (start, stop) in enumerate(crop_map.chunks()):
        stats = [meta.row_group(i).column(names.index(p)).statistics if p in names else None
                 for p in parts]
        if all(st is not None and st.has_min_max for st in stats):
            x0, y0, x1, y1 = (st for st in stats if st is not None)
            out[i] = [x0.min, y0.min, x1.max, y1.max]
        else:
            x0, y0, x1, y1 = crop_map.chunk_boxes(start, stop)
            out[i] = [np.min(x0), np.min(y0), np.max(x1), np.max(y1)]
    if not np.isfinite(out).all():
        raise CropMapError(f"{crop_map.source}: some instances have empty geometries (NaN "
                           "bounding boxes); drop them first")
    return out


def instances_from_geodataframe(
    frame: gpd.GeoDataFrame, name: str = "map", class_column: str = "crop_class",
    map_crs: str | None = None,
) -> VectorCropMap:
    """Wrap an in-memory GeoDataFrame of instances as a :class:`VectorCropMap`.

    Raises:
        CropMapError: no CRS (and no ``map_crs``), empty frame, unknown classes.

    """
    if len(frame) == 0:
        raise CropMapError(f"{name}: the map is empty (0 instances); nothing to evaluate")
    if frame.crs is None and map_crs is None:
        raise CropMapError(
            f"{name}: the map has no CRS; set it (GeoDataFrame.set_crs) or pass lucas.map_crs"
        )
    if class_column not in frame.columns:
        raise CropMapError(f"{name}: class column {class_column!r} is missing")
    frame = frame[~(frame.geometry.isna() | frame.geometry.is_empty)]
    if len(frame) == 0:
        raise CropMapError(f"{name}: no instance has a geometry; nothing to evaluate")
    geoms = np.asarray(frame.geometry.values, dtype=object)
    return VectorCropMap(
        name=name, source=name, crs=CRS.from_user_input(frame.crs or map_crs),
        class_index=class_names_to_index(pa.array(frame[class_column].to_numpy()), name),
        bbox=shapely.bounds(geoms), geoms=geoms,
    )


def read_class_raster(
    path: str | Path, name: str | None = None, map_crs: str | None = None
) -> RasterCropMap:
    """Open a class-index raster (GeoTIFF/COG); the pixels are read later around each point.

    Raises:
        CropMapError: no CRS (and no ``map_crs``), rotated grid, not a single band.

    """
    import rasterio

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"crop map {path} does not exist")
    source = str(path)
    with rasterio.open(path) as src:
        if src.count != 1:
            raise CropMapError(f"{source}: expected 1 band of class indices, found {src.count}")
        if src.crs is None and map_crs is None:
            raise CropMapError(
                f"{source}: the raster has no CRS; write it with its CRS (e.g. EPSG:32633) or set "
                "lucas.map_crs"
            )
        t = src.transform
        if t.b != 0 or t.d != 0:
            raise CropMapError(f"{source}: rotated rasters are not supported; warp it north-up")
        if src.width == 0 or src.height == 0:
            raise CropMapError(f"{source}: the raster is empty")
        crs = CRS.from_user_input(src.crs.to_wkt() if src.crs is not None else map_crs)
        return RasterCropMap(
            name=name or path.stem, source=source, crs=crs, transform=t, width=src.width,
            height=src.height, nodata=src.nodata,
        )


def read_crop_map(
    path: str | Path, name: str | None = None, class_column: str = "crop_class",
    map_crs: str | None = None,
) -> CropMap:
    """Read a crop map by file type: GeoParquet instances or a class raster (GeoTIFF/COG)."""
    suffix = Path(path).suffix.lower()
    if suffix in VECTOR_SUFFIXES:
        return read_instances(path, name, class_column, map_crs)
    if suffix in RASTER_SUFFIXES:
        return read_class_raster(path, name, map_crs)
    raise CropMapError(
        f"{path}: unsupported crop map type {suffix!r}; use GeoParquet instances "
        f"{VECTOR_SUFFIXES} or a class raster {RASTER_SUFFIXES}"
    )


def polygonise_class_raster(path: str | Path) -> gpd.GeoDataFrame:
    """Turn a class raster into instances: one polygon per 4-connected region of one class.

    Returns:
        GeoDataFrame with ``crop_class`` names, the raster's CRS; nodata becomes no instance.

    """
    import rasterio
    from rasterio.features import shapes

    with rasterio.open(path) as src:
        data = src.read(1)
        valid = np.ones(data.shape, bool) if src.nodata is None else data != src.nodata
        valid &= (data >= 0) & (data < len(CROP_CLASSES))
        records = [
            (shapely.geometry.shape(geom), CROP_CLASSES[int(value)])
            for geom, value in shapes(data.astype("int32"), mask=valid, transform=src.transform)
        ]
        crs = src.crs
    if not records:
        raise CropMapError(f"{path}: the raster has no class pixels; nothing to polygonise")
    geoms, names = zip(*records, strict=True)
    return gpd.GeoDataFrame({"crop_class": list(names)}, geometry=list(geoms), crs=crs)
