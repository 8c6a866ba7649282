"""The exporter: validates, converts and writes batches of one product's rows as RDF terms."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from tasks.linked_data.export.grid import grid_cells
from tasks.linked_data.export.stats import ExportStats
from tasks.linked_data.export.templates import render_template
from tasks.linked_data.export.values import (
    PreparedProperty,
    column_values,
    convert_values,
    has_column,
)
from tasks.linked_data.export.wkt import wkt_literals
from tasks.linked_data.mapping import (
    GeometrySpec,
    Mapping,
    MappingError,
    PropertySpec,
    ResourceSpec,
    TriplesMapSpec,
    template_fields,
)
from tasks.linked_data.namespaces import EEO, GEO, RDF, WKT_LITERAL
from tasks.linked_data.readers import RowBatch
from tasks.linked_data.terms import TermArray, TripleSink

RDF_TYPE = RDF + "type"


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
        row_ids = self._row_ids(tmap, batch, where, reject, reasons)
        prepared = self._prepare_properties(tmap, table, where, reject, reasons, stats)
        geoms = batch.geometry if tmap.geometry is not None else None
        all_bounds = (
            _check_geometries(geoms, batch.source_crs, reject, reasons)
            if geoms is not None
            else None
        )
        _record_rejected(stats, file_label, batch, row_ids, reject, reasons)
        kept = int((~reject).sum())
        if kept == 0:
            return
        keep: pa.Array | None = pa.array(~reject) if kept < n_rows else None
        columns = {
            name: _kept_rows(table.column(name).combine_chunks(), keep)
            for name in table.column_names
        }
        columns["row"] = _kept_rows(row_ids, keep)
        subjects = TermArray.iris(
            render_template(
                tmap.subject, context, columns, kept, base=self.base, iri=True, where=where
            )
        )
        self._write_types_and_properties(
            sink, tmap, table, prepared, subjects, keep, context, columns, where
        )
        stats.features += kept
        if geoms is not None and tmap.geometry is not None and all_bounds is not None:
            native = batch.native_geometry
            native = None if native is None else _kept_rows(native, keep)
            self._write_geometries(
                sink,
                tmap.geometry,
                subjects,
                _KeptGeometries(geoms[~reject], all_bounds[~reject], native),
                context,
                columns,
                where,
                stats,
            )

    def _row_ids(
        self,
        tmap: TriplesMapSpec,
        batch: RowBatch,
        where: str,
        reject: np.ndarray,
        reasons: list[str | None],
    ) -> pa.Array:
        """Row ids (strings) of a batch; rows without an id are marked in ``reject``."""
        table = batch.table
        id_column = self.mapping.id_column
        if id_column and tmap.rows_from is None:
            if id_column not in table.column_names:
                raise MappingError(
                    f"{where}: id_column {id_column!r} is not an input column; "
                    f"columns: {table.column_names}"
                )
            row_ids = pc.cast(table.column(id_column).combine_chunks(), pa.string())
            missing_id = row_ids.is_null().to_numpy(zero_copy_only=False)
            reject |= missing_id
            for index in np.flatnonzero(missing_id):
                reasons[index] = f"{id_column} is empty"
            return row_ids
        if tmap.rows_from is not None and "key" in table.column_names:
            return pc.cast(table.column("key").combine_chunks(), pa.string())
        return pa.array(batch.source_rows).cast(pa.string())

    def _prepare_properties(
        self,
        tmap: TriplesMapSpec,
        table: pa.Table,
        where: str,
        reject: np.ndarray,
        reasons: list[str | None],
        stats: ExportStats,
    ) -> list[PreparedProperty]:
        """Convert the column properties of a batch (constant ones get no objects yet)."""
        prepared: list[PreparedProperty] = []
        for prop in tmap.properties:
            predicate = self.mapping.expanded(prop.predicate)
            if prop.column is None:
                prepared.append(PreparedProperty(predicate, []))
                continue
            values = column_values(prop, table, where)
            if values is None:
                continue
            prepared.append(
                PreparedProperty(
                    predicate,
                    convert_values(prop, values, self.mapping, self.base, reject, reasons, stats),
                )
            )
        return prepared

    def _write_types_and_properties(
        self,
        sink: TripleSink,
        tmap: TriplesMapSpec,
        table: pa.Table,
        prepared: list[PreparedProperty],
        subjects: TermArray,
        keep: pa.Array | None,
        context: dict[str, str],
        columns: dict[str, pa.Array],
        where: str,
    ) -> None:
        """Write ``rdf:type`` and every property of the kept rows."""
        kept = len(columns["row"])
        for type_curie in tmap.types:
            constant = TermArray.constant_iri(self.mapping.expanded(type_curie), kept)
            sink.write(subjects, RDF_TYPE, constant)
        for prop, prep in zip(
            [p for p in tmap.properties if p.column is None or has_column(p, table)],
            prepared,
            strict=True,
        ):
            if prop.column is None:
                objects = [self._constant_object(prop, context, columns, kept, where)]
            else:
                objects = [_kept_rows(o, keep) for o in prep.objects]
            for obj in objects:
                sink.write(subjects, prep.predicate, obj)

    def _write_geometries(
        self,
        sink: TripleSink,
        spec: GeometrySpec,
        subjects: TermArray,
        kept_geoms: _KeptGeometries,
        context: dict[str, str],
        columns: dict[str, pa.Array],
        where: str,
        stats: ExportStats,
    ) -> None:
        """Write the geo:Geometry nodes (WKT, grid cells) of the kept rows; grow the bbox."""
        kept = len(columns["row"])
        geometry_nodes = TermArray.iris(
            render_template(
                spec.subject, context, columns, kept, base=self.base, iri=True, where=where
            )
        )
        sink.write(subjects, GEO + "hasGeometry", geometry_nodes)
        sink.write(geometry_nodes, RDF_TYPE, TermArray.constant_iri(GEO + "Geometry", kept))
        sink.write(
            geometry_nodes,
            GEO + "asWKT",
            TermArray.literals(
                wkt_literals(kept_geoms.geoms, self.wkt_precision, kept_geoms.native),
                WKT_LITERAL,
                needs_escape=False,
            ),
        )
        if spec.grid_cells:
            rows, labels = grid_cells(kept_geoms.geoms, bounds=kept_geoms.bounds)
            sink.write(
                geometry_nodes.take(pa.array(rows)),
                EEO + "gridCell",
                TermArray.literals(labels, needs_escape=False),
            )
        stats.add_bounds(kept_geoms.bounds)

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


@dataclass(frozen=True)
class _KeptGeometries:
    """Geometries of the kept rows with their bounds and (optional) GeoArrow native array."""

    geoms: np.ndarray
    bounds: np.ndarray
    native: pa.Array | None


def _kept_rows(values: Any, keep: pa.Array | None) -> Any:
    return values if keep is None else values.filter(keep)


def _check_geometries(
    geoms: np.ndarray, source_crs: str | None, reject: np.ndarray, reasons: list[str | None]
) -> np.ndarray:
    """Mark missing, empty, out-of-range and invalid geometries; return bounds (NaN if rejected)."""
    n_rows = len(reject)
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
            f"(input CRS taken as {source_crs}); set source.crs in the mapping"
        )
    reject |= outside
    invalid = np.zeros(n_rows, bool)
    invalid[~reject] = ~shapely.is_valid(geoms[~reject])
    for index in np.flatnonzero(invalid):
        reasons[index] = f"invalid geometry: {shapely.is_valid_reason(geoms[index])}"
    reject |= invalid
    return all_bounds


def _record_rejected(
    stats: ExportStats,
    file_label: str,
    batch: RowBatch,
    row_ids: pa.Array,
    reject: np.ndarray,
    reasons: list[str | None],
) -> None:
    """Append the rejected rows of a batch (input, row, id, reason) to ``stats.rejected``."""
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
