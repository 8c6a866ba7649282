"""Columns of RDF terms and the sinks that serialise them (fast path and pyoxigraph).

A :class:`TermArray` holds one RDF term per row: IRIs, or literals with one datatype (or language)
for the whole column; null entries mean "no triple for this row". Sinks turn
``(subjects, predicate, objects)`` columns into N-Triples / N-Quads / Turtle without building a
graph in memory:

* :class:`FastNTriplesSink` builds the lines with vectorised Arrow string kernels and writes the
  Arrow data buffer as is (N-Triples / N-Quads only; escaping per the N-Triples grammar; tested to
  be isomorphic to the pyoxigraph output);
* :class:`OxigraphSink` builds ``pyoxigraph`` terms and uses its serialisers (any format);
* :class:`RdflibSink` (benchmark baseline) builds an rdflib graph per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.linked_data.namespaces import PREFIXES, XSD

RdfFormatName = Literal["nt", "nq", "ttl"]
XSD_STRING = XSD + "string"
_NEEDS_ESCAPE = r'[\\"\n\r]'


@dataclass(frozen=True)
class TermArray:
    """One RDF term per row: ``kind`` iri or literal; literal datatype/lang apply to all rows."""

    values: pa.Array
    kind: Literal["iri", "literal"]
    datatype: str | None = None
    lang: str | None = None
    constant: str | None = None
    needs_escape: bool = True

    @staticmethod
    def constant_iri(value: str, n_rows: int) -> TermArray:
        """Repeat one IRI on ``n_rows`` rows (writers may use the single value directly)."""
        return TermArray(repeat_string(value, n_rows), "iri", constant=value)

    def __len__(self) -> int:
        return len(self.values)

    @staticmethod
    def iris(values: pa.Array | list[str | None]) -> TermArray:
        """Make a column of IRIs."""
        return TermArray(_as_string_array(values), "iri")

    @staticmethod
    def literals(
        values: pa.Array | list[str | None],
        datatype: str | None = None,
        lang: str | None = None,
        needs_escape: bool = True,
    ) -> TermArray:
        r"""Make a column of literals (lexical forms as strings).

        ``needs_escape=False`` is for lexical forms eeflow generates that cannot hold ``\\``,
        ``"`` or line breaks (WKT, numbers, dates, grid labels): the escape scan is skipped.
        """
        dt = None if datatype in (None, XSD_STRING) else datatype
        return TermArray(_as_string_array(values), "literal", dt, lang, needs_escape=needs_escape)

    def take(self, indices: pa.Array | np.ndarray) -> TermArray:
        """Rows at ``indices`` (same kind and datatype)."""
        return TermArray(
            self.values.take(indices),
            self.kind,
            self.datatype,
            self.lang,
            needs_escape=self.needs_escape,
        )

    def filter(self, mask: pa.Array | np.ndarray) -> TermArray:
        """Rows where ``mask`` is true."""
        return TermArray(
            self.values.filter(mask),
            self.kind,
            self.datatype,
            self.lang,
            needs_escape=self.needs_escape,
        )


def repeat_string(value: str, n_rows: int) -> pa.Array:
    """Return ``value`` repeated ``n_rows`` times, built from buffers (no Python list)."""
    data = value.encode()
    offsets = np.arange(n_rows + 1, dtype=np.int64) * len(data)
    if offsets[-1] < 2**31:
        return pa.StringArray.from_buffers(
            n_rows, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data * n_rows)
        )
    return pa.LargeStringArray.from_buffers(
        n_rows, pa.py_buffer(offsets), pa.py_buffer(data * n_rows)
    ).cast(pa.string())


def _as_string_array(values: pa.Array | list[str | None]) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        values = pa.array(values, type=pa.string())
    if values.type == pa.large_string() or values.type == pa.string_view():
        values = values.cast(pa.string())
    if values.type != pa.string():
        values = pc.cast(values, pa.string())
    return values


def escape_literal(values: pa.Array) -> pa.Array:
    r"""Escape ``\``, ``"``, line feed and carriage return for N-Triples string literals."""
    if len(values) == 0 or not pc.any(pc.match_substring_regex(values, _NEEDS_ESCAPE)).as_py():
        return values
    values = pc.replace_substring(values, "\\", "\\\\")
    values = pc.replace_substring(values, '"', '\\"')
    values = pc.replace_substring(values, "\n", "\\n")
    return pc.replace_substring(values, "\r", "\\r")


def term_affixes(terms: TermArray) -> tuple[str, pa.Array, str]:
    """Split the N-Triples form of every term into (constant opening, per-row text, closing).

    ``<`` + IRI + ``>`` or ``"`` + escaped lexical form + ``"^^<datatype>`` / ``"@lang``: writers
    put the constant parts into the text around the column, so a line is built in one pass.
    """
    if terms.kind == "iri":
        return "<", terms.values, ">"
    suffix = f"^^<{terms.datatype}>" if terms.datatype else (f"@{terms.lang}" if terms.lang else "")
    lexical = escape_literal(terms.values) if terms.needs_escape else terms.values
    return '"', lexical, '"' + suffix


def serialise_terms(terms: TermArray) -> pa.Array:
    """Return the N-Triples form of every term (``<iri>``, ``"lex"^^<dt>``); nulls stay null."""
    opening, values, closing = term_affixes(terms)
    return pc.binary_join_element_wise(opening, values, closing, "")


class TripleSink(Protocol):
    """Receives triple columns; counts what it wrote."""

    triples: int

    def write(self, subjects: TermArray, predicate: str, objects: TermArray) -> int:
        """Write one triple per row where subject and object are both non-null."""
        ...

    def close(self) -> None:
        """Flush what is buffered."""
        ...


def _write_string_buffer(out: BinaryIO, lines: pa.Array) -> None:
    """Write the concatenated bytes of a string array (null rows have no bytes) without copying."""
    if len(lines) == 0:
        return
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    start, end = offsets[lines.offset], offsets[lines.offset + len(lines)]
    if end > start:
        out.write(memoryview(lines.buffers()[2])[start:end])


class FastNTriplesSink:
    """Vectorised N-Triples (``graph=None``) / N-Quads writer over Arrow string kernels.

    The serialised subject column is reused while the same subjects are written again (one
    feature column gives several triples), and a column holding one repeated IRI (rdf:type
    objects) is written as a constant string instead of a per-row array.
    """

    def __init__(self, out: BinaryIO, graph: str | None = None) -> None:
        self.out = out
        self.end = f" <{graph}> .\n" if graph else " .\n"
        self.triples = 0
        self._last_subjects: tuple[pa.Array, pa.Array] | None = None

    def _subjects(self, subjects: TermArray) -> pa.Array:
        if self._last_subjects is not None and self._last_subjects[0] is subjects.values:
            return self._last_subjects[1]
        serialised = serialise_terms(subjects)
        self._last_subjects = (subjects.values, serialised)
        return serialised

    def write(self, subjects: TermArray, predicate: str, objects: TermArray) -> int:
        """Write the rows' triples; return how many were written."""
        constant = getattr(objects, "constant", None)
        if constant is not None:
            lines = pc.binary_join_element_wise(
                self._subjects(subjects), f" <{predicate}> <{constant}>{self.end}", ""
            )
        else:
            opening, values, closing = term_affixes(objects)
            lines = pc.binary_join_element_wise(
                self._subjects(subjects),
                f" <{predicate}> {opening}",
                values,
                closing + self.end,
                "",
            )
        _write_string_buffer(self.out, lines)
        written = len(lines) - lines.null_count
        self.triples += written
        return written

    def close(self) -> None:
        """Flush the output."""
        self.out.flush()


class OxigraphSink:
    """Writes through ``pyoxigraph`` terms and serialisers (N-Triples, N-Quads or Turtle)."""

    def __init__(self, out: BinaryIO, fmt: RdfFormatName = "nt", graph: str | None = None) -> None:
        import pyoxigraph as ox

        self.ox = ox
        self.out = out
        self.format = {
            "nt": ox.RdfFormat.N_TRIPLES,
            "nq": ox.RdfFormat.N_QUADS,
            "ttl": ox.RdfFormat.TURTLE,
        }[fmt]
        self.graph = ox.NamedNode(graph) if graph and fmt == "nq" else None
        self.prefixes = PREFIXES if fmt == "ttl" else None
        self.triples = 0

    def _objects(self, terms: TermArray) -> list[object | None]:
        ox = self.ox
        values = terms.values.to_pylist()
        if terms.kind == "iri":
            return [None if v is None else ox.NamedNode(v) for v in values]
        if terms.datatype:
            dt = ox.NamedNode(terms.datatype)
            return [None if v is None else ox.Literal(v, datatype=dt) for v in values]
        if terms.lang:
            return [None if v is None else ox.Literal(v, language=terms.lang) for v in values]
        return [None if v is None else ox.Literal(v) for v in values]

    def write(self, subjects: TermArray, predicate: str, objects: TermArray) -> int:
        """Write the rows' triples; return how many were written."""
        ox = self.ox
        pred = ox.NamedNode(predicate)
        subs = self._objects(subjects)
        objs = self._objects(objects)
        if self.graph is not None:
            items = [
                ox.Quad(s, pred, o, self.graph)
                for s, o in zip(subs, objs, strict=True)
                if s is not None and o is not None
            ]
        else:
            items = [
                ox.Triple(s, pred, o)
                for s, o in zip(subs, objs, strict=True)
                if s is not None and o is not None
            ]
        if items:
            ox.serialize(items, self.out, self.format, prefixes=self.prefixes)
        self.triples += len(items)
        return len(items)

    def close(self) -> None:
        """Flush the output."""
        self.out.flush()


class RdflibSink:
    """Baseline: one rdflib graph per write call, serialised as N-Triples (benchmarks only)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.triples = 0

    def write(self, subjects: TermArray, predicate: str, objects: TermArray) -> int:
        """Write the rows' triples; return how many were written."""
        from rdflib import Graph, Literal, URIRef

        graph = Graph()
        pred = URIRef(predicate)
        dt = URIRef(objects.datatype) if objects.datatype else None
        for s, o in zip(subjects.values.to_pylist(), objects.values.to_pylist(), strict=True):
            if s is None or o is None:
                continue
            obj = URIRef(o) if objects.kind == "iri" else Literal(o, datatype=dt, lang=objects.lang)
            graph.add((URIRef(s), pred, obj))
        self.out.write(graph.serialize(format="nt", encoding="utf-8"))
        self.triples += len(graph)
        return len(graph)

    def close(self) -> None:
        """Flush the output."""
        self.out.flush()


def open_sink(
    out: BinaryIO,
    fmt: RdfFormatName,
    engine: Literal["fast", "pyoxigraph", "rdflib"],
    graph: str | None = None,
) -> TripleSink:
    """Pick a sink: the fast path serves N-Triples / N-Quads, Turtle always goes via pyoxigraph."""
    if engine == "rdflib":
        if fmt != "nt":
            raise ValueError("the rdflib baseline sink writes N-Triples only")
        return RdflibSink(out)
    if engine == "fast" and fmt in ("nt", "nq"):
        return FastNTriplesSink(out, graph if fmt == "nq" else None)
    return OxigraphSink(out, fmt, graph)
