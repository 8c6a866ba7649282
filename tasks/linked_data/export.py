"""Streaming export of a product run to RDF (N-Triples, N-Quads or Turtle) through its mapping.

Rows are read in bounded batches (:mod:`tasks.linked_data.readers`), turned into columns of RDF
terms and written straight to the output file; no graph is held in memory. Rows whose geometry is
missing, empty or invalid, whose code is not in the code list, or whose number/date does not parse
are not exported: they are listed with file, row id and reason in ``rejected.csv`` and counted in
the manifest. A mapping that names a column the input lacks stops the export with an error naming
the mapping, the column and the columns that exist.

Output: ``{root}/linked_data/rdf/{run_key}/{product}/{product}.{nt|nq|ttl}`` + ``rejected.csv`` +
``manifest.json`` (graph IRI, counts, inputs), written atomically.
"""

from __future__ import annotations

import csv
import datetime as dt
import gc
import json
import logging
import math
import re
import string
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from tqdm import tqdm

from tasks.linked_data.geometry import native_wkt
from tasks.linked_data.mapping import (
    Mapping,
    MappingError,
    PropertySpec,
    ResourceSpec,
    TriplesMapSpec,
    load_mapping,
    template_fields,
)
from tasks.linked_data.namespaces import (
    CRS84,
    DCAT,
    DCT,
    EEO,
    GEO,
    GRID_CELL_DEG,
    GRID_MARGIN_M,
    PROV,
    RDF,
    WKT_LITERAL,
    XSD,
    concept_iri,
    graph_iri,
    iri_segment,
    vocabulary_graph_iri,
)
from tasks.linked_data.readers import RowBatch, dotted_get, json_rows, read_rows
from tasks.linked_data.terms import RdfFormatName, TermArray, TripleSink, open_sink
from tasks.linked_data.vocabulary import code_list, write_vocabulary

log = logging.getLogger(__name__)

RDF_TYPE = RDF + "type"
EXTENSIONS: dict[str, str] = {"nt": "nt", "nq": "nq", "ttl": "ttl"}
MEDIA_TYPES: dict[str, str] = {
    "nt": "application/n-triples",
    "nq": "application/n-quads",
    "ttl": "text/turtle",
}
_SAFE = r"^[A-Za-z0-9._~-]*$"
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_S1_ID = re.compile(r"^(?P<platform>S1[ABCD])_[A-Z0-9]{2}_[A-Z0-9_]{4,}?_(?P<start>\d{8}T\d{6})_")
METRES_PER_DEG_LAT = 111_320.0


@dataclass
class ExportStats:
    """What one export wrote and rejected."""

    triples: int = 0
    features: int = 0
    rejected: list[dict[str, str]] = field(default_factory=list)
    bounds: list[float] = field(default_factory=lambda: [math.inf, math.inf, -math.inf, -math.inf])
    dates: list[dt.date] = field(default_factory=list)
    source_crs: set[str] = field(default_factory=set)

    def add_bounds(self, bounds: np.ndarray) -> None:
        """Grow the bounding box by per-geometry ``bounds`` (CRS84, ``shapely.bounds`` rows)."""
        if len(bounds) == 0:
            return
        box = np.array(
            [
                np.nanmin(bounds[:, 0]),
                np.nanmin(bounds[:, 1]),
                np.nanmax(bounds[:, 2]),
                np.nanmax(bounds[:, 3]),
            ]
        )
        if np.all(np.isfinite(box)):
            self.bounds = [
                min(self.bounds[0], box[0]),
                min(self.bounds[1], box[1]),
                max(self.bounds[2], box[2]),
                max(self.bounds[3], box[3]),
            ]


# --- templates -------------------------------------------------------------------------------


def _encode_column(values: pa.Array) -> pa.Array:
    values = pc.cast(values, pa.string())
    safe = pc.match_substring_regex(values, _SAFE)
    if pc.all(pc.fill_null(safe, True)).as_py():
        return values
    encoded = pa.array(
        [None if v is None else iri_segment(v) for v in values.to_pylist()], pa.string()
    )
    return pc.if_else(safe, values, encoded)


def render_template(
    template: str,
    context: dict[str, str],
    columns: dict[str, pa.Array],
    n_rows: int,
    *,
    base: str,
    iri: bool,
    where: str,
) -> pa.Array:
    """Fill ``{name}`` placeholders from ``columns`` (per row) or ``context`` (constants).

    For IRIs every placeholder value is percent-encoded as one path segment and relative results
    are resolved against ``base``. Raises :class:`MappingError` for an unknown placeholder.
    """
    parts: list[Any] = []
    if iri and not _ABSOLUTE.match(template):
        parts.append(base)
    for literal_text, name, _, _ in string.Formatter().parse(template):
        if literal_text:
            parts.append(literal_text)
        if not name:
            continue
        if name in columns:
            parts.append(
                _encode_column(columns[name]) if iri else pc.cast(columns[name], pa.string())
            )
        elif name in context and context[name] is not None:
            parts.append(iri_segment(context[name]) if iri else str(context[name]))
        else:
            raise MappingError(
                f"{where}: template {template!r} uses {{{name}}}, which is neither an input column "
                f"nor a context value; available: {sorted([*columns, *context])}"
            )
    arrays = [p for p in parts if isinstance(p, pa.Array)]
    if not arrays:
        return pa.array(["".join(parts)] * n_rows, pa.string())
    return pc.binary_join_element_wise(*parts, "")


# --- value conversion ------------------------------------------------------------------------


def _column_values(prop: PropertySpec, table: pa.Table, where: str) -> pa.Array | None:
    present = [c for c in prop.columns() if c in table.column_names]
    if not present:
        if prop.optional:
            return None
        raise MappingError(
            f"{where}: property {prop.predicate} reads column {prop.column!r}"
            + (f" (or {prop.fallback_columns})" if prop.fallback_columns else "")
            + f", which the input does not have; columns: {table.column_names}"
        )
    arrays = [table.column(c).combine_chunks() for c in present]
    if len(arrays) == 1:
        return arrays[0]
    return pc.coalesce(*[pc.cast(a, pa.string()) for a in arrays])


def _auto_literals(values: pa.Array) -> list[TermArray]:
    """Split JSON-encoded values into one literal column per XSD datatype."""
    decoded = [None if v is None else json.loads(v) for v in values.to_pylist()]
    groups: dict[str, list[str | None]] = {}
    for index, value in enumerate(decoded):
        if value is None:
            continue
        if isinstance(value, bool):
            datatype, lexical = XSD + "boolean", "true" if value else "false"
        elif isinstance(value, int):
            datatype, lexical = XSD + "integer", str(value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                continue
            datatype, lexical = XSD + "double", repr(value)
        elif isinstance(value, str):
            datatype, lexical = XSD + "string", value
        else:
            datatype, lexical = XSD + "string", json.dumps(value, sort_keys=True)
        groups.setdefault(datatype, [None] * len(decoded))[index] = lexical
    return [TermArray.literals(column, datatype) for datatype, column in groups.items()]


@dataclass
class _PreparedProperty:
    predicate: str
    objects: list[TermArray]


def _convert(
    prop: PropertySpec,
    values: pa.Array,
    mapping: Mapping,
    base: str,
    reject: np.ndarray,
    reasons: list[str | None],
    stats: ExportStats,
) -> list[TermArray]:
    """Turn a column into terms; mark rows whose value does not convert in ``reject``."""
    name = prop.column or ""

    def _fail(mask: np.ndarray, why: Any) -> None:
        for index in np.flatnonzero(mask & ~reject):
            reasons[index] = why(index) if callable(why) else why
        reject[:] |= mask

    if prop.concept is not None:
        strings = pc.cast(values, pa.string())
        allowed = code_list(prop.concept)
        missing = strings.is_null().to_numpy(zero_copy_only=False)
        unknown = ~pc.fill_null(pc.is_in(strings, pa.array(allowed)), True).to_numpy(
            zero_copy_only=False
        )
        _fail(missing, f"{name} is empty")
        if unknown.any():
            py = strings.to_pylist()
            _fail(
                unknown,
                lambda i: f"{name} {py[i]!r} is not in code list {prop.concept} {list(allowed)}",
            )
        prefix = concept_iri(base, prop.concept, "")
        return [TermArray.iris(pc.binary_join_element_wise(prefix, strings, ""))]
    if prop.date_format is not None:
        text = pd.Series(pc.cast(values, pa.string()).to_pylist(), dtype="object")
        parsed = pd.to_datetime(text, format=prop.date_format, errors="coerce")
        bad = (parsed.isna() & text.notna()).to_numpy()
        missing = text.isna().to_numpy()
        py = text.tolist()
        _fail(bad, lambda i: f"{name} {py[i]!r} does not match date format {prop.date_format!r}")
        _fail(missing, f"{name} is empty")
        ok = parsed.dropna()
        if len(ok):
            stats.dates.extend([ok.min().date(), ok.max().date()])
        lexical = [None if pd.isna(v) else v.strftime("%Y-%m-%d") for v in parsed]
        return [
            TermArray.literals(pa.array(lexical, pa.string()), XSD + "date", needs_escape=False)
        ]
    datatype = (
        mapping.expanded(prop.datatype) if prop.datatype not in (None, "auto") else prop.datatype
    )
    if datatype == "auto":
        return _auto_literals(pc.cast(values, pa.string()))
    if datatype in (XSD + "double", XSD + "float", XSD + "decimal", XSD + "integer") and (
        pa.types.is_floating(values.type) or pa.types.is_integer(values.type)
    ):
        return [_numeric_literals(prop, values, datatype, _fail)]
    if datatype in (XSD + "double", XSD + "float", XSD + "decimal", XSD + "integer"):
        numbers = pd.to_numeric(pd.Series(values.to_pylist(), dtype="object"), errors="coerce")
        numbers = numbers.astype("float64")
        raw = values.to_pylist()
        bad = (~np.isfinite(numbers.to_numpy())) & np.array([v is not None for v in raw], bool)
        _fail(bad, lambda i: f"{name} {raw[i]!r} is not a finite number")
        if datatype == XSD + "integer":
            frac = np.isfinite(numbers.to_numpy()) & (numbers.to_numpy() % 1 != 0)
            _fail(frac, lambda i: f"{name} {raw[i]!r} is not an integer")
            arr = pa.array(numbers.to_numpy(), pa.float64(), mask=~np.isfinite(numbers.to_numpy()))
            lexical = pc.cast(pc.cast(arr, pa.int64(), safe=False), pa.string())
        else:
            arr = pa.array(numbers.to_numpy(), pa.float64(), mask=~np.isfinite(numbers.to_numpy()))
            lexical = pc.cast(arr, pa.string())
        return [TermArray.literals(lexical, datatype, needs_escape=False)]
    return [TermArray.literals(pc.cast(values, pa.string()), datatype, prop.lang)]


def _numeric_literals(prop: PropertySpec, values: pa.Array, datatype: str, fail: Any) -> TermArray:
    """Literals of a numeric Arrow column without going through Python objects."""
    name = prop.column or ""
    numbers = values.to_numpy(zero_copy_only=False).astype("float64")
    present = ~values.is_null().to_numpy(zero_copy_only=False)
    finite = np.isfinite(numbers)
    bad = present & ~finite
    if bad.any():
        fail(bad, lambda i: f"{name} {numbers[i]!r} is not a finite number")
    if datatype == XSD + "integer" and not pa.types.is_integer(values.type):
        frac = finite & (np.mod(numbers, 1, where=finite, out=np.zeros_like(numbers)) != 0)
        if frac.any():
            fail(frac, lambda i: f"{name} {numbers[i]!r} is not an integer")
        ints = pa.array(numbers, pa.float64(), mask=~finite)
        lexical = pc.cast(pc.cast(ints, pa.int64(), safe=False), pa.string())
    elif datatype == XSD + "integer":
        lexical = pc.cast(values, pa.string())
    else:
        lexical = pc.cast(pa.array(numbers, pa.float64(), mask=~finite), pa.string())
    return TermArray.literals(lexical, datatype, needs_escape=False)


# --- grid cells ------------------------------------------------------------------------------


def grid_cells(
    geoms: np.ndarray, margin_m: float = GRID_MARGIN_M, bounds: np.ndarray | None = None
) -> tuple[np.ndarray, pa.Array]:
    """Grid-index cells of CRS84 geometries: (row index per cell, cell label ``i_j``).

    Points get the cell they lie in; other geometries every cell touched by their bounding box
    grown by ``margin_m`` metres: a point within ``margin_m`` of a geometry shares a cell with it.
    ``bounds`` (``shapely.bounds(geoms)``) may be passed when the caller has them already.
    """
    if bounds is None:
        bounds = shapely.bounds(geoms)
    is_point = shapely.get_type_id(geoms) == 0
    mid_lat = np.radians((bounds[:, 1] + bounds[:, 3]) / 2)
    dlat = np.where(is_point, 0.0, margin_m / METRES_PER_DEG_LAT)
    dlon = np.where(
        is_point, 0.0, margin_m / (METRES_PER_DEG_LAT * np.maximum(np.cos(mid_lat), 0.01))
    )
    i0 = np.floor((bounds[:, 0] - dlon) / GRID_CELL_DEG).astype(np.int64)
    i1 = np.floor((bounds[:, 2] + dlon) / GRID_CELL_DEG).astype(np.int64)
    j0 = np.floor((bounds[:, 1] - dlat) / GRID_CELL_DEG).astype(np.int64)
    j1 = np.floor((bounds[:, 3] + dlat) / GRID_CELL_DEG).astype(np.int64)
    ni, nj = i1 - i0 + 1, j1 - j0 + 1
    counts = ni * nj
    rows = np.repeat(np.arange(len(geoms)), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    k = np.arange(counts.sum()) - starts
    ci = i0[rows] + k % ni[rows]
    cj = j0[rows] + k // ni[rows]
    labels = pc.binary_join_element_wise(
        pa.array(ci).cast(pa.string()), pa.array(cj).cast(pa.string()), "_"
    )
    return rows, labels


def cell_label(lon: float, lat: float) -> str:
    """Grid cell label of one CRS84 position (as written by :func:`grid_cells`)."""
    return f"{math.floor(lon / GRID_CELL_DEG)}_{math.floor(lat / GRID_CELL_DEG)}"


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


# --- the exporter ----------------------------------------------------------------------------


@dataclass
class RdfExporter:
    """Maps batches of one product to RDF terms and writes them to a sink.

    Fixed settings (mapping, base IRI, precision) in the constructor; the data at call time.
    """

    mapping: Mapping
    base: str
    wkt_precision: int = 7

    def write_batch(
        self,
        sink: TripleSink,
        tmap: TriplesMapSpec,
        batch: RowBatch,
        context: dict[str, str],
        stats: ExportStats,
        file_label: str,
    ) -> None:
        """Validate, convert and write one batch of rows for one triples map."""
        table = batch.table
        n_rows = table.num_rows
        where = f"mapping {self.mapping.path} (input {file_label})"
        reject = np.zeros(n_rows, dtype=bool)
        reasons: list[str | None] = [None] * n_rows
        if self.mapping.id_column and tmap.rows_from is None:
            if self.mapping.id_column not in table.column_names:
                raise MappingError(
                    f"{where}: id_column {self.mapping.id_column!r} is not an input column; "
                    f"columns: {table.column_names}"
                )
            row_ids = pc.cast(table.column(self.mapping.id_column).combine_chunks(), pa.string())
            missing_id = row_ids.is_null().to_numpy(zero_copy_only=False)
            reject |= missing_id
            for index in np.flatnonzero(missing_id):
                reasons[index] = f"{self.mapping.id_column} is empty"
        elif tmap.rows_from is not None and "key" in table.column_names:
            row_ids = pc.cast(table.column("key").combine_chunks(), pa.string())
        else:
            row_ids = pa.array(batch.source_rows).cast(pa.string())

        prepared: list[_PreparedProperty] = []
        for prop in tmap.properties:
            predicate = self.mapping.expanded(prop.predicate)
            if prop.column is None:
                prepared.append(_PreparedProperty(predicate, []))
                continue
            values = _column_values(prop, table, where)
            if values is None:
                continue
            prepared.append(
                _PreparedProperty(
                    predicate,
                    _convert(prop, values, self.mapping, self.base, reject, reasons, stats),
                )
            )

        geoms = batch.geometry if tmap.geometry is not None else None
        if geoms is not None:
            missing = pd.isna(geoms)
            for index in np.flatnonzero(missing & ~reject):
                reasons[index] = "geometry is missing or not parsable (WKT/WKB/coordinates)"
            reject |= missing
            present = ~reject
            empty = np.zeros(n_rows, bool)
            empty[present] = shapely.is_empty(geoms[present])
            for index in np.flatnonzero(empty & ~reject):
                reasons[index] = "geometry is empty"
            reject |= empty
            outside = np.zeros(n_rows, bool)
            all_bounds = np.full((n_rows, 4), np.nan)
            if (~reject).any():
                bounds = shapely.bounds(geoms[~reject])
                all_bounds[~reject] = bounds
                outside[~reject] = (
                    (bounds[:, 0] < -180)
                    | (bounds[:, 2] > 180)
                    | (bounds[:, 1] < -90)
                    | (bounds[:, 3] > 90)
                )
            for index in np.flatnonzero(outside):
                reasons[index] = (
                    "coordinates outside lon/lat range after reprojection: missing or wrong CRS "
                    f"(input CRS taken as {batch.source_crs}); set source.crs in the mapping"
                )
            reject |= outside
            invalid = np.zeros(n_rows, bool)
            invalid[~reject] = ~shapely.is_valid(geoms[~reject])
            for index in np.flatnonzero(invalid):
                reasons[index] = f"invalid geometry: {shapely.is_valid_reason(geoms[index])}"
            reject |= invalid

        display_ids = row_ids.to_pylist() if reject.any() else []
        for index in np.flatnonzero(reject):
            stats.rejected.append(
                {
                    "input": file_label,
                    "row": str(index if batch.source_rows is None else batch.source_rows[index]),
                    "id": str(display_ids[index]),
                    "reason": str(reasons[index]),
                }
            )
        kept = int((~reject).sum())
        if kept == 0:
            return
        keep: pa.Array | None = pa.array(~reject) if kept < n_rows else None

        def kept_rows(values: Any) -> Any:
            return values if keep is None else values.filter(keep)

        columns = {
            name: kept_rows(table.column(name).combine_chunks()) for name in table.column_names
        }
        columns["row"] = kept_rows(row_ids)
        subjects = TermArray.iris(
            render_template(
                tmap.subject, context, columns, kept, base=self.base, iri=True, where=where
            )
        )
        for type_curie in tmap.types:
            constant = TermArray.constant_iri(self.mapping.expanded(type_curie), kept)
            sink.write(subjects, RDF_TYPE, constant)
        for prop, prep in zip(
            [p for p in tmap.properties if p.column is None or _has_column(p, table)],
            prepared,
            strict=True,
        ):
            if prop.column is None:
                objects = [self._constant_object(prop, context, columns, kept, where)]
            else:
                objects = [kept_rows(o) for o in prep.objects]
            for obj in objects:
                sink.write(subjects, prep.predicate, obj)
        stats.features += kept
        if geoms is not None and tmap.geometry is not None:
            kept_geoms = geoms[~reject]
            native = batch.native_geometry
            geometry_nodes = TermArray.iris(
                render_template(
                    tmap.geometry.subject,
                    context,
                    columns,
                    kept,
                    base=self.base,
                    iri=True,
                    where=where,
                )
            )
            sink.write(subjects, GEO + "hasGeometry", geometry_nodes)
            sink.write(geometry_nodes, RDF_TYPE, TermArray.constant_iri(GEO + "Geometry", kept))
            sink.write(
                geometry_nodes,
                GEO + "asWKT",
                TermArray.literals(
                    wkt_literals(
                        kept_geoms,
                        self.wkt_precision,
                        None if native is None else kept_rows(native),
                    ),
                    WKT_LITERAL,
                    needs_escape=False,
                ),
            )
            kept_bounds = all_bounds[~reject]
            if tmap.geometry.grid_cells:
                rows, labels = grid_cells(kept_geoms, bounds=kept_bounds)
                sink.write(
                    geometry_nodes.take(pa.array(rows)),
                    EEO + "gridCell",
                    TermArray.literals(labels, needs_escape=False),
                )
            stats.add_bounds(kept_bounds)

    def _constant_object(
        self,
        prop: PropertySpec,
        context: dict[str, str],
        columns: dict[str, pa.Array],
        n_rows: int,
        where: str,
    ) -> TermArray:
        if prop.iri is not None and not any(name in columns for name in template_fields(prop.iri)):
            value = render_template(prop.iri, context, {}, 1, base=self.base, iri=True, where=where)
            return TermArray.constant_iri(value[0].as_py(), n_rows)
        if prop.iri is not None:
            return TermArray.iris(
                render_template(
                    prop.iri, context, columns, n_rows, base=self.base, iri=True, where=where
                )
            )
        datatype = self.mapping.expanded(prop.datatype) if prop.datatype else None
        return TermArray.literals(
            render_template(
                prop.value or "", context, columns, n_rows, base=self.base, iri=False, where=where
            ),
            datatype,
            prop.lang,
        )

    def write_resources(
        self,
        sink: TripleSink,
        resources: Iterable[ResourceSpec],
        context: dict[str, str],
        where: str,
    ) -> None:
        """Write the per-file resources whose ``when`` key is set in ``context``."""
        for resource in resources:
            if resource.when is not None and not context.get(resource.when):
                continue
            subject = TermArray.iris(
                render_template(
                    resource.subject, context, {}, 1, base=self.base, iri=True, where=where
                )
            )
            for type_curie in resource.types:
                sink.write(subject, RDF_TYPE, TermArray.iris([self.mapping.expanded(type_curie)]))
            for prop in resource.properties:
                sink.write(
                    subject,
                    self.mapping.expanded(prop.predicate),
                    self._constant_object(prop, context, {}, 1, where),
                )


def _has_column(prop: PropertySpec, table: pa.Table) -> bool:
    return any(c in table.column_names for c in prop.columns())


# --- context, inputs, catalogue ---------------------------------------------------------------


def _context_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        for key in ("name", "id", "model"):
            if isinstance(value.get(key), str):
                return value[key]
        return None
    if isinstance(value, str) and "/" in value:
        return Path(value).name or None
    return str(value)


def file_context(
    mapping: Mapping, path: Path, run_key: str, document: Any = None
) -> dict[str, str]:
    """Context values of one input file: run key, file-name groups, manifest / JSON fields."""
    match = mapping.source.pattern.search(path.name)
    if match is None:
        raise MappingError(
            f"input {path} does not match file_pattern {mapping.source.file_pattern!r} of "
            f"mapping {mapping.path}"
        )
    context: dict[str, str] = {
        "run_key": run_key,
        "product": mapping.product,
        "file_stem": path.stem,
    }
    context.update({k: v for k, v in match.groupdict().items() if v is not None})
    manifest: Any = None
    if mapping.source.manifest and (path.parent / "manifest.json").is_file():
        manifest = json.loads((path.parent / "manifest.json").read_text())
    for name, dotted in mapping.context.items():
        root, _, rest = dotted.partition(".")
        source = manifest if root == "manifest" else document if root == "file" else None
        value = _context_value(dotted_get(source, rest)) if source is not None else None
        if value is not None:
            context[name] = value
    scene = context.get("scene_id", "")
    s1 = _S1_ID.match(scene)
    if s1:
        start = dt.datetime.strptime(s1.group("start"), "%Y%m%dT%H%M%S")
        context.setdefault("platform", s1.group("platform"))
        context.setdefault("sensing_time", start.isoformat() + "Z")
    return context


def find_inputs(data_root: Path, pattern: str, run_key: str, mapping: Mapping) -> list[Path]:
    """List files under ``data_root`` matching ``pattern`` ({run_key} filled) and the mapping."""
    glob = pattern.format(run_key=run_key)
    candidates = (
        sorted(Path(glob).parent.glob(Path(glob).name))
        if Path(glob).is_absolute()
        else sorted(data_root.glob(glob))
    )
    files = [p for p in candidates if p.is_file() and mapping.source.pattern.search(p.name)]
    if not files:
        raise FileNotFoundError(
            f"no input for product {mapping.product!r} run {run_key!r}: nothing matches {glob!r} "
            f"under {data_root} with file_pattern {mapping.source.file_pattern!r}; run the stage "
            "that produces it, or set linked_data inputs.<product> in the config"
        )
    return files


def _temporal(mapping: Mapping, run_key: str, stats: ExportStats) -> tuple[str, str] | None:
    kind = mapping.temporal
    if kind == "run_key_day":
        day = dt.date.fromisoformat(run_key)
        return day.isoformat(), day.isoformat()
    if kind == "agronomic_year":
        found = re.match(r"^(\d{4})-(\d{2})_(\d{4})-(\d{2})$", run_key)
        if not found:
            raise ValueError(f"run key {run_key!r} is not an agronomic year like 2017-09_2018-08")
        y0, m0, y1, m1 = (int(g) for g in found.groups())
        end = dt.date(y1 + (m1 == 12), m1 % 12 + 1, 1) - dt.timedelta(days=1)
        return dt.date(y0, m0, 1).isoformat(), end.isoformat()
    if kind.startswith("column:") and stats.dates:
        return min(stats.dates).isoformat(), max(stats.dates).isoformat()
    return None


def write_catalogue_entry(
    sink: TripleSink,
    mapping: Mapping,
    base: str,
    run_key: str,
    stats: ExportStats,
    inputs: list[str],
    fmt: RdfFormatName,
) -> str:
    """DCAT entry of this product run (in the same graph, so a re-load replaces it too)."""
    dataset = (
        f"{base}dataset/{iri_segment(mapping.use_case)}/{iri_segment(mapping.product)}/"
        f"{iri_segment(run_key)}"
    )
    subject = TermArray.iris([dataset])

    def iri(predicate: str, value: str, node: TermArray = subject) -> None:
        sink.write(node, predicate, TermArray.iris([value]))

    def lit(
        predicate: str, value: str, datatype: str | None = None, node: TermArray = subject
    ) -> None:
        sink.write(node, predicate, TermArray.literals([value], datatype))

    iri(RDF_TYPE, EEO + "Product")
    iri(RDF_TYPE, DCAT + "Dataset")
    iri(RDF_TYPE, PROV + "Entity")
    iri(EEO + "productType", concept_iri(base, "product_type", mapping.product))
    lit(DCT + "title", f"{mapping.product.replace('_', ' ')} {run_key}")
    lit(EEO + "runKey", run_key)
    lit(EEO + "featureCount", str(stats.features), XSD + "integer")
    for crs in sorted(stats.source_crs):
        authority = re.match(r"^EPSG:(\d+)$", crs)
        if authority:
            iri(EEO + "sourceCrs", f"http://www.opengis.net/def/crs/EPSG/0/{authority.group(1)}")
    if all(math.isfinite(v) for v in stats.bounds):
        x0, y0, x1, y1 = stats.bounds
        box = shapely.box(x0, y0, x1, y1) if (x1 > x0 and y1 > y0) else shapely.Point(x0, y0)
        lit(
            DCAT + "bbox",
            f"<{CRS84}> {shapely.to_wkt(box, rounding_precision=7, trim=True)}",
            WKT_LITERAL,
        )
    period = _temporal(mapping, run_key, stats)
    if period is not None:
        node = TermArray.iris([dataset + "/temporal"])
        iri(DCT + "temporal", dataset + "/temporal")
        iri(RDF_TYPE, DCT + "PeriodOfTime", node)
        lit(DCAT + "startDate", period[0], XSD + "date", node)
        lit(DCAT + "endDate", period[1], XSD + "date", node)
    distribution = TermArray.iris([dataset + "/distribution/rdf"])
    iri(DCAT + "distribution", dataset + "/distribution/rdf")
    iri(RDF_TYPE, DCAT + "Distribution", distribution)
    lit(DCAT + "mediaType", MEDIA_TYPES[fmt], node=distribution)
    for source in inputs:
        lit(DCT + "source", source)
    catalog = TermArray.iris([base + "catalog"])
    iri(RDF_TYPE, DCAT + "Catalog", catalog)
    iri(DCAT + "dataset", dataset, catalog)
    return dataset


def export_rows(
    mapping: Mapping,
    inputs: list[Path],
    run_key: str,
    sink: TripleSink,
    *,
    base: str,
    batch_rows: int = 50_000,
    wkt_precision: int = 7,
    relative_to: Path | None = None,
    fmt: RdfFormatName = "nt",
) -> ExportStats:
    """Map every input file of a product run into ``sink``; return counts and rejected rows."""
    exporter = RdfExporter(mapping, base, wkt_precision)
    stats = ExportStats()
    labels: list[str] = []
    with gc_paused():
        _export_inputs(
            exporter, mapping, inputs, run_key, sink, stats, labels, batch_rows, relative_to
        )
    write_catalogue_entry(sink, mapping, base, run_key, stats, labels, fmt)
    stats.triples = sink.triples
    return stats


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a batch loop runs.

    Each batch creates a few hundred thousand shapely objects; the collector would otherwise
    re-scan them over and over (about 8% of export CPU). The objects hold no reference cycles and
    are freed by reference counting; collection resumes (and catches up) on exit.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _export_inputs(
    exporter: RdfExporter,
    mapping: Mapping,
    inputs: list[Path],
    run_key: str,
    sink: TripleSink,
    stats: ExportStats,
    labels: list[str],
    batch_rows: int,
    relative_to: Path | None,
) -> None:
    for path in inputs:
        label = (
            str(path.relative_to(relative_to))
            if relative_to and path.is_relative_to(relative_to)
            else str(path)
        )
        labels.append(label)
        log.info("rdf export %s: %s", mapping.product, label)
        document = json.loads(path.read_text()) if mapping.source.format == "json" else None
        context = file_context(mapping, path, run_key, document)
        where = f"mapping {mapping.path} (input {label})"
        exporter.write_resources(sink, mapping.per_file, context, where)
        if mapping.source.format == "json":
            for tmap in mapping.features:
                table = json_rows(document, tmap.rows_from or "", path)
                batch = RowBatch(table, None, np.arange(table.num_rows), None)
                exporter.write_batch(sink, tmap, batch, context, stats, label)
            continue
        with tqdm(
            total=_row_count(path, mapping),
            desc=f"rdf export {mapping.product} {path.name}",
            unit="rows",
            unit_scale=True,
            mininterval=2.0,
            leave=False,
        ) as progress:
            for batch in _batches(path, mapping, batch_rows):
                if batch.source_crs:
                    stats.source_crs.add(batch.source_crs)
                for tmap in mapping.features:
                    exporter.write_batch(sink, tmap, batch, context, stats, label)
                progress.update(batch.table.num_rows)


def _row_count(path: Path, mapping: Mapping) -> int | None:
    """Rows of a GeoParquet input from its footer (progress total); None for other formats."""
    if mapping.source.format != "geoparquet":
        return None
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception:  # noqa: BLE001 - the reader reports a broken file with its own message
        return None


def _batches(path: Path, mapping: Mapping, batch_rows: int) -> Iterator[RowBatch]:
    try:
        yield from read_rows(path, mapping, batch_rows)
    except MappingError:
        raise
    except Exception as err:  # a reader failure names the file and the format it expected
        raise ValueError(
            f"cannot read {path} as {mapping.source.format} for mapping {mapping.path}: {err}"
        ) from err


def export_product(
    cfg: Any,
    product: str,
    run_key: str,
    inputs: list[str | Path] | None = None,
    *,
    fmt: RdfFormatName | None = None,
    engine: str | None = None,
) -> dict[str, Any]:
    """Export one product run to RDF under ``{root}/linked_data/rdf/{run_key}/{product}/``.

    Args:
        cfg: a validated :class:`tasks.config.linked_data.LinkedDataConfig`.
        product: a product type with a mapping (``ice_chart``, ``crop_field_instances``,
            ``lucas_points``, ``model``, ``evaluation``) or ``vocabulary`` (ontology + code lists).
        run_key: the run (a day, an agronomic year, a survey year ...).
        inputs: input files; default: found with the config's ``inputs.<product>`` glob.
        fmt: ``nt``, ``nq`` or ``ttl`` (default: the config's ``export.format``).
        engine: ``fast`` or ``pyoxigraph`` (default: the config's ``export.engine``).

    Returns:
        ``{"rdf": path, "graph": IRI, "triples": n, "features": n, "rejected": n, ...}``.

    """
    from tasks.config.common import config_hash
    from tasks.naming import safe_name
    from tasks.storage import atomic_dir, stage_dir, write_manifest

    product = safe_name("product", product)  # before any path is built from it
    run_key = safe_name("run_key", run_key)
    fmt = fmt or cfg.export.format
    engine = engine or cfg.export.engine
    root = cfg.resolved_root()
    base = cfg.base_iri
    out_dir = stage_dir(root, "linked_data", "rdf", run_key) / product
    with atomic_dir(out_dir) as tmp:
        rdf_path = tmp / f"{product}.{EXTENSIONS[fmt]}"
        if product == "vocabulary":
            graph = vocabulary_graph_iri(base)
            nt_path = tmp / "vocabulary.nt"
            triples = write_vocabulary(nt_path, base)
            rdf_path = nt_path
            summary_counts = {"triples": triples, "features": 0, "rejected": 0}
            source_labels: list[str] = []
            fmt = "nt"
        else:
            mapping = load_mapping(cfg.mappings.get(product, product))
            graph = graph_iri(base, mapping.use_case, product, run_key)
            paths = (
                [Path(p) for p in inputs]
                if inputs
                else find_inputs(root, cfg.inputs.for_product(product), run_key, mapping)
            )
            with rdf_path.open("wb", buffering=1 << 20) as out:
                sink = open_sink(out, fmt, engine, graph)
                stats = export_rows(
                    mapping,
                    paths,
                    run_key,
                    sink,
                    base=base,
                    batch_rows=cfg.export.batch_rows,
                    wkt_precision=cfg.export.wkt_precision,
                    relative_to=root,
                    fmt=fmt,
                )
                sink.close()
            with (tmp / "rejected.csv").open("w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=["input", "row", "id", "reason"])
                writer.writeheader()
                writer.writerows(stats.rejected)
            for item in stats.rejected[:5]:
                log.warning(
                    "rejected row %s (id %s) of %s: %s",
                    item["row"],
                    item["id"],
                    item["input"],
                    item["reason"],
                )
            summary_counts = {
                "triples": stats.triples,
                "features": stats.features,
                "rejected": len(stats.rejected),
            }
            source_labels = [str(p) for p in paths]
        write_manifest(
            tmp,
            stage="rdf",
            inputs=source_labels,
            config_hash=config_hash(cfg),
            counts=summary_counts,
            extra={
                "product": product,
                "run_key": run_key,
                "graph": graph,
                "format": fmt,
                "engine": engine,
                "rdf_file": rdf_path.name,
            },
        )
    final = out_dir / rdf_path.name
    log.info(
        "rdf export %s %s: %s triples -> %s", product, run_key, summary_counts["triples"], final
    )
    return {
        "rdf": str(final),
        "graph": graph,
        "format": fmt,
        "product": product,
        "run_key": run_key,
        **summary_counts,
        "rejected_csv": str(out_dir / "rejected.csv") if product != "vocabulary" else None,
    }


def run_key_for(product: str, run_date: str | dt.date) -> str:
    """Return the run key of ``product`` for a logical date.

    Day (ice charts), agronomic year (crops, evaluations), year (LUCAS), ``current`` (vocabulary,
    models).
    """
    from tasks.storage import agronomic_year_key, day_run_key, to_date

    if product == "ice_chart":
        return day_run_key(run_date)
    if product in ("crop_field_instances", "evaluation"):
        return agronomic_year_key(run_date)
    if product == "lucas_points":
        return str(to_date(run_date).year)
    if product in ("vocabulary", "model"):
        return "current"
    raise ValueError(
        f"product {product!r} unknown; allowed: ice_chart, crop_field_instances, "
        "evaluation, lucas_points, vocabulary, model"
    )
