"""Streaming export of a product run to RDF (N-Triples, N-Quads or Turtle) through its mapping.

Rows are read in bounded batches (:mod:`tasks.linked_data.readers`), turned into columns of RDF
terms and written straight to the output file; no graph is held in memory. Rows whose geometry is
missing, empty or invalid, whose code is not in the code list, or whose number/date does not parse
are not exported: they are listed with file, row id and reason in ``rejected.csv`` and counted in
the manifest. A mapping that names a column the input lacks stops the export with an error naming
the mapping, the column and the columns that exist.

Output: ``{root}/linked_data/rdf/{run_key}/{product}/{product}.{nt|nq|ttl}`` + ``rejected.csv`` +
``manifest.json`` (graph IRI, counts, inputs), written atomically.

Modules: :mod:`.templates` (IRI / literal templates), :mod:`.values` (column -> terms),
:mod:`.grid` (grid-index cells), :mod:`.wkt` (WKT literals), :mod:`.exporter` (batches -> sink),
:mod:`.discovery` (inputs, per-file context), :mod:`.catalogue` (DCAT entry),
:mod:`.orchestration` (one product run), :mod:`.run_keys` (run key of a logical date).
"""

from tasks.linked_data.export.catalogue import MEDIA_TYPES, write_catalogue_entry
from tasks.linked_data.export.discovery import file_context, find_inputs
from tasks.linked_data.export.exporter import RDF_TYPE, RdfExporter
from tasks.linked_data.export.grid import METRES_PER_DEG_LAT, cell_label, grid_cells
from tasks.linked_data.export.orchestration import (
    EXTENSIONS,
    export_product,
    export_rows,
    gc_paused,
)
from tasks.linked_data.export.run_keys import run_key_for
from tasks.linked_data.export.stats import ExportStats
from tasks.linked_data.export.templates import render_template
from tasks.linked_data.export.wkt import wkt_literals

__all__ = [
    "EXTENSIONS",
    "MEDIA_TYPES",
    "METRES_PER_DEG_LAT",
    "RDF_TYPE",
    "ExportStats",
    "RdfExporter",
    "cell_label",
    "export_product",
    "export_rows",
    "file_context",
    "find_inputs",
    "gc_paused",
    "grid_cells",
    "render_template",
    "run_key_for",
    "wkt_literals",
    "write_catalogue_entry",
]
