"""Export one product run: find inputs, stream them through the exporter, write the run directory.

Output: ``{root}/linked_data/rdf/{run_key}/{product}/{product}.{nt|nq|ttl}`` + ``rejected.csv`` +
``manifest.json`` (graph IRI, counts, inputs), written atomically.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from tqdm import tqdm

from tasks.linked_data.export.catalogue import write_catalogue_entry
from tasks.linked_data.export.discovery import file_context, find_inputs
from tasks.linked_data.export.exporter import RdfExporter
from tasks.linked_data.export.stats import ExportStats
from tasks.linked_data.mapping import Mapping, MappingError, load_mapping
from tasks.linked_data.memory import gc_paused
from tasks.linked_data.namespaces import graph_iri, vocabulary_graph_iri
from tasks.linked_data.readers import RowBatch, json_rows, read_rows
from tasks.linked_data.terms import RdfFormatName, TripleSink, open_sink
from tasks.linked_data.vocabulary import write_vocabulary

if TYPE_CHECKING:
    from tasks.config.linked_data import LinkedDataConfig

log = logging.getLogger(__name__)

EXTENSIONS: dict[str, str] = {"nt": "nt", "nq": "nq", "ttl": "ttl"}


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
    except Exception:  # the reader reports a broken file with its own message
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


@dataclass
class _WrittenRdf:
    """What one product run wrote into its (temporary) run directory."""

    rdf_path: Path
    graph: str
    fmt: RdfFormatName
    counts: dict[str, int]
    source_labels: list[str]


def _write_vocabulary_rdf(tmp: Path, base: str) -> _WrittenRdf:
    """Ontology + code lists, always N-Triples."""
    nt_path = tmp / "vocabulary.nt"
    triples = write_vocabulary(nt_path, base)
    return _WrittenRdf(
        nt_path,
        vocabulary_graph_iri(base),
        "nt",
        {"triples": triples, "features": 0, "rejected": 0},
        [],
    )


def _write_product_rdf(
    cfg: LinkedDataConfig,
    product: str,
    run_key: str,
    inputs: list[str | Path] | None,
    rdf_path: Path,
    fmt: RdfFormatName,
    engine: Literal["fast", "pyoxigraph", "rdflib"],
) -> _WrittenRdf:
    """Map a product run's inputs into ``rdf_path`` and ``rejected.csv`` beside it."""
    root = cfg.resolved_root()
    base = cfg.base_iri
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
    _write_rejected(rdf_path.parent / "rejected.csv", stats)
    counts = {
        "triples": stats.triples,
        "features": stats.features,
        "rejected": len(stats.rejected),
    }
    return _WrittenRdf(rdf_path, graph, fmt, counts, [str(p) for p in paths])


def _write_rejected(path: Path, stats: ExportStats) -> None:
    """``rejected.csv`` (input, row, id, reason); the first five are logged as warnings."""
    with path.open("w", newline="") as fh:
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


def export_product(
    cfg: LinkedDataConfig,
    product: str,
    run_key: str,
    inputs: list[str | Path] | None = None,
    *,
    fmt: RdfFormatName | None = None,
    engine: Literal["fast", "pyoxigraph", "rdflib"] | None = None,
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
    out_dir = stage_dir(cfg.resolved_root(), "linked_data", "rdf", run_key) / product
    with atomic_dir(out_dir) as tmp:
        if product == "vocabulary":
            written = _write_vocabulary_rdf(tmp, cfg.base_iri)
        else:
            rdf_path = tmp / f"{product}.{EXTENSIONS[fmt]}"
            written = _write_product_rdf(cfg, product, run_key, inputs, rdf_path, fmt, engine)
        write_manifest(
            tmp,
            stage="rdf",
            inputs=written.source_labels,
            config_hash=config_hash(cfg),
            counts=written.counts,
            extra={
                "product": product,
                "run_key": run_key,
                "graph": written.graph,
                "format": written.fmt,
                "engine": engine,
                "rdf_file": written.rdf_path.name,
            },
        )
    final = out_dir / written.rdf_path.name
    log.info(
        "rdf export %s %s: %s triples -> %s", product, run_key, written.counts["triples"], final
    )
    return {
        "rdf": str(final),
        "graph": written.graph,
        "format": written.fmt,
        "product": product,
        "run_key": run_key,
        **written.counts,
        "rejected_csv": str(out_dir / "rejected.csv") if product != "vocabulary" else None,
    }
