"""RDFS entailment and geometry properties, materialised into ``{graph}/entailed`` at load.

Choice (GeoSPARQL req. 25-27 and the geometry properties of req. 9): **materialisation**, not a
query rewrite. For the fixed schema in ``ontology/geosparql_schema.ttl`` (GeoSPARQL classes and
properties, the Simple Features and GML geometry class hierarchies) and ``ontology/eeflow.ttl``,
the RDFS rules rdfs2 (domain), rdfs3 (range), rdfs7 (sub-property) and rdfs9 (sub-class) apply
triple by triple, so the closure of a graph is the union of the closures of its triples. For every
``geo:asWKT`` / ``geo:asGML`` (any sub-property of ``geo:hasSerialization``) the geometry also
gets ``geo:dimension``, ``geo:coordinateDimension``, ``geo:spatialDimension``, ``geo:isEmpty`` and
``geo:isSimple`` computed from the literal (``geo:hasSerialization`` itself comes from rdfs7).

The entailed triples (minus those the graph already asserts) go to the companion named graph
``{graph}/entailed``: the product graph stays exactly what its file holds (the loader's checks
count it), a re-load rewrites the companion, and queries over the union default graph (the
embedded store, ``eeflow rdf serve``) see both. ``eeflow rdf load`` materialises after every load
(embedded and HTTP stores); ``eeflow rdf serve`` also entails what Graph Store ``PUT`` / ``POST``
requests bring (not SPARQL updates: re-run the load).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from tasks.linked_data.geosparql import literals as lit
from tasks.linked_data.geosparql.functions import (
    coordinate_dimension,
    geometry_dimension,
    spatial_dimension,
)
from tasks.linked_data.memory import gc_paused
from tasks.linked_data.namespaces import GEO, RDF, RDFS, XSD

log = logging.getLogger(__name__)

ONTOLOGY_DIR = Path(__file__).resolve().parent.parent / "ontology"
SCHEMA_FILES = (ONTOLOGY_DIR / "geosparql_schema.ttl", ONTOLOGY_DIR / "eeflow.ttl")
RDF_TYPE = RDF + "type"
HAS_SERIALIZATION = GEO + "hasSerialization"
#: Suffix of the companion graph holding a graph's entailed triples.
ENTAILED_SUFFIX = "/entailed"
#: Graphs ending like this are the loader's staging graphs (store.replace: staging_move), MOVEd
#: into the product graph afterwards: the server does not entail them.
STAGING_SUFFIX = "/staging"
INSERT_BATCH = 20_000
#: Version of :func:`entail`'s rules in code (geometry properties ...): part of the source digest
#: recorded with a materialised entailment, with the schema files' bytes; raise it when
#: :func:`entail` changes, so that stores entailed before are entailed again.
RULES_VERSION = 1


@dataclass(frozen=True)
class Schema:
    """Transitive super-classes / super-properties, domains and ranges (IRIs)."""

    superclasses: dict[str, frozenset[str]]
    superproperties: dict[str, frozenset[str]]
    domains: dict[str, frozenset[str]]
    ranges: dict[str, frozenset[str]]

    @property
    def predicates(self) -> frozenset[str]:
        """Predicates whose triples entail something (rdf:type included)."""
        return frozenset(
            {RDF_TYPE, *self.superproperties, *self.domains, *self.ranges, HAS_SERIALIZATION}
        )

    def serialisation_properties(self) -> frozenset[str]:
        """``geo:hasSerialization`` and its sub-properties (``geo:asWKT``, ``geo:asGML``)."""
        return frozenset(
            {HAS_SERIALIZATION}
            | {p for p, sups in self.superproperties.items() if HAS_SERIALIZATION in sups}
        )


def _closure(direct: dict[str, set[str]]) -> dict[str, frozenset[str]]:
    closed: dict[str, frozenset[str]] = {}
    for start in direct:
        seen: set[str] = set()
        stack = list(direct[start])
        while stack:
            item = stack.pop()
            if item not in seen and item != start:
                seen.add(item)
                stack.extend(direct.get(item, ()))
        closed[start] = frozenset(seen)
    return closed


@lru_cache(maxsize=1)
def schema() -> Schema:
    """Read the schema files (once)."""
    import pyoxigraph as ox

    sub_class: dict[str, set[str]] = defaultdict(set)
    sub_property: dict[str, set[str]] = defaultdict(set)
    domains: dict[str, set[str]] = defaultdict(set)
    ranges: dict[str, set[str]] = defaultdict(set)
    tables = {
        RDFS + "subClassOf": sub_class,
        RDFS + "subPropertyOf": sub_property,
        RDFS + "domain": domains,
        RDFS + "range": ranges,
    }
    for path in SCHEMA_FILES:
        for triple in ox.parse(path=str(path), format=ox.RdfFormat.TURTLE):
            table = tables.get(triple.predicate.value)
            if table is not None and isinstance(triple.object, ox.NamedNode):
                table[triple.subject.value].add(triple.object.value)
    superproperties = _closure(sub_property)
    # rdfs2/3 through sub-properties: a property inherits its super-properties' domains/ranges
    for table in (domains, ranges):
        for prop, sups in superproperties.items():
            for sup in sups:
                table[prop] |= table.get(sup, set())
    return Schema(
        _closure(sub_class),
        superproperties,
        {k: frozenset(v) for k, v in domains.items() if v},
        {k: frozenset(v) for k, v in ranges.items() if v},
    )


def _types(node: Any, classes: Iterable[str], rules: Schema) -> Iterator[tuple[Any, Any, Any]]:
    import pyoxigraph as ox

    for cls in classes:
        for name in (cls, *rules.superclasses.get(cls, ())):
            yield node, ox.NamedNode(RDF_TYPE), ox.NamedNode(name)


def geometry_properties(node: Any, literal: Any) -> Iterator[tuple[Any, Any, Any]]:
    """``geo:dimension`` ... ``geo:isSimple`` of the geometry ``node`` serialised as ``literal``."""
    import pyoxigraph as ox
    import shapely

    try:
        geometry = lit.term_geometry(literal).geometry
    except lit.GeometryLiteralError as err:
        log.warning("no geometry properties for %s: %s", node, err)
        return
    integer = ox.NamedNode(XSD + "integer")
    yield node, ox.NamedNode(GEO + "dimension"), ox.Literal(
        str(geometry_dimension(geometry)), datatype=integer
    )
    yield node, ox.NamedNode(GEO + "coordinateDimension"), ox.Literal(
        str(coordinate_dimension(geometry)), datatype=integer
    )
    yield node, ox.NamedNode(GEO + "spatialDimension"), ox.Literal(
        str(spatial_dimension(geometry)), datatype=integer
    )
    yield node, ox.NamedNode(GEO + "isEmpty"), ox.Literal(bool(geometry.is_empty))
    yield node, ox.NamedNode(GEO + "isSimple"), ox.Literal(bool(shapely.is_simple(geometry)))


def _candidates(triples: Iterable[Any], asserted: set[Any] | None) -> set[tuple[Any, Any, Any]]:
    """Everything ``triples`` entail, as (s, p, o); each triple also goes into ``asserted``."""
    import pyoxigraph as ox

    rules = schema()
    serialisations = rules.serialisation_properties()
    found: set[tuple[Any, Any, Any]] = set()
    for triple in triples:
        if asserted is not None:
            asserted.add(triple)
        s, p, o = triple.subject, triple.predicate.value, triple.object
        if p == RDF_TYPE:
            if isinstance(o, ox.NamedNode) and o.value in rules.superclasses:
                found.update(_types(s, rules.superclasses[o.value], rules))
            continue
        for sup in rules.superproperties.get(p, ()):
            found.add((s, ox.NamedNode(sup), o))
        found.update(_types(s, rules.domains.get(p, ()), rules))
        if not isinstance(o, ox.Literal):
            found.update(_types(o, rules.ranges.get(p, ()), rules))
        if p in serialisations and isinstance(o, ox.Literal):
            found.update(geometry_properties(s, o))
    return found


def entail(triples: Iterable[Any]) -> set[Any]:
    """Entailed triples of ``triples`` (pyoxigraph Triples) that ``triples`` does not hold."""
    import pyoxigraph as ox

    with gc_paused():  # millions of short-lived tuples: the collector would re-scan the sets
        asserted: set[Any] = set()
        found = _candidates(triples, asserted)
        return {ox.Triple(*t) for t in found} - asserted


def entail_rereading(read: Callable[[], Iterable[Any]]) -> set[Any]:
    """``entail(read())`` without holding the triples: ``read`` is called twice (a re-parse).

    For big inputs (a server's Graph Store PUT): only the entailed triples stay in memory.
    """
    import pyoxigraph as ox

    with gc_paused():
        entailed = {ox.Triple(*t) for t in _candidates(read(), None)}
        for triple in read():
            entailed.discard(triple)
        return entailed


def entailed_graph(graph: str) -> str:
    """IRI of the companion graph that holds ``graph``'s entailed triples."""
    return graph + ENTAILED_SUFFIX


def insert_data(graph: str, triples: Iterable[Any]) -> Iterator[str]:
    """``INSERT DATA`` updates of at most :data:`INSERT_BATCH` triples into ``graph``."""
    batch: list[str] = []
    for triple in triples:
        batch.append(str(triple) + " .")
        if len(batch) >= INSERT_BATCH:
            yield f"INSERT DATA {{ GRAPH <{graph}> {{\n" + "\n".join(batch) + "\n} }"
            batch = []
    if batch:
        yield f"INSERT DATA {{ GRAPH <{graph}> {{\n" + "\n".join(batch) + "\n} }"


def _local_store(store: Any) -> Any:
    """Return the pyoxigraph store of an embedded store (its ``.store``), None for a client.

    An :class:`~tasks.linked_data.store.EmbeddedStore` holds its ``pyoxigraph.Store`` as
    ``.store``; an :class:`~tasks.linked_data.store.HttpStore` has none (duck-typed: this package
    sits below the store module and does not import it).
    """
    import pyoxigraph as ox

    local = getattr(store, "store", None)
    return local if isinstance(local, ox.Store) else None


def _run_update(store: Any) -> Any:
    """``update`` of the embedded pyoxigraph store, else the SPARQL client's own ``update``."""
    local = _local_store(store)
    return local.update if local is not None else store.update


def _graph_triples(store: Any, graph: str,
                   predicates: frozenset[str] | None = None) -> Iterator[Any]:
    """Yield the triples of ``graph`` (with one of ``predicates``; None: all) (embedded or HTTP)."""
    import pyoxigraph as ox

    local = _local_store(store)
    if local is not None:
        for predicate in [None] if predicates is None else sorted(predicates):
            for quad in local.quads_for_pattern(
                None, None if predicate is None else ox.NamedNode(predicate), None,
                ox.NamedNode(graph)
            ):
                yield quad.triple
        return
    values = "" if predicates is None else (
        "VALUES ?p { " + " ".join(f"<{p}>" for p in sorted(predicates)) + " } ")
    rows = store.query(f"SELECT ?s ?p ?o WHERE {{ GRAPH <{graph}> {{ {values}?s ?p ?o }} }}")
    for row in rows:
        yield ox.Triple(row["s"], row["p"], row["o"])


def drop_entailment(store: Any, graph: str) -> None:
    """Drop ``{graph}/entailed`` and its record.

    A re-load without entailment must not leave a stale one.
    """
    from tasks.linked_data.load_record import record_graph

    target = entailed_graph(graph)
    _run_update(store)(f"DROP SILENT GRAPH <{record_graph(target)}> ;\n"
                       f"DROP SILENT GRAPH <{target}>")


def delete_data(graph: str, triples: Iterable[Any]) -> Iterator[str]:
    """``DELETE DATA`` updates of at most :data:`INSERT_BATCH` triples from ``graph``."""
    for update in insert_data(graph, triples):
        yield "DELETE" + update.removeprefix("INSERT")


@lru_cache(maxsize=1)
def _rules_key() -> bytes:
    """Return a statement-like key of the rules (code version, schema files) for the digest."""
    rules = hashlib.blake2b(f"eeflow entailment rules {RULES_VERSION}".encode(), digest_size=16)
    for path in SCHEMA_FILES:
        rules.update(path.read_bytes())
    return rules.digest()


def source_digest(triples: Iterable[Any]) -> str:
    """Order-independent digest of the distinct ``triples`` entailment reads, and of the rules."""
    from tasks.linked_data.load_record import content_digest

    keys = {hashlib.blake2b(str(t).encode(), digest_size=16).digest() for t in triples}
    keys.add(_rules_key())
    return content_digest(keys)


def _recorded(store: Any, target: str) -> Any:
    """Return the source record of the entailment in ``target`` (a LoadRecord), or None."""
    from tasks.linked_data.load_record import parse_record, record_query

    return parse_record(list(store.query(record_query(target))))


def materialise(store: Any, graph: str) -> int:
    """Make ``{graph}/entailed`` the entailment of ``graph``; return its triple count.

    A record in ``<{graph}/entailed/eeflow-load>`` (:mod:`tasks.linked_data.load_record`'s
    format) holds the digest of the triples the entailment was computed from, with the rules
    (:func:`source_digest`), and its triple count: when both match (the same content re-loaded)
    nothing is computed or written. Otherwise only the difference to what the companion graph
    holds is written (deletions first, then insertions, in batches of :data:`INSERT_BATCH`), the
    record dropped before and written after. With blank nodes (whose labels differ between the
    store and this process) the graph is dropped and inserted again.
    ``store`` is an open :class:`~tasks.linked_data.store.EmbeddedStore` or
    :class:`~tasks.linked_data.store.HttpStore` (any SPARQL 1.1 server).
    """
    from tasks.linked_data.load_record import LoadRecord, has_blank_node, record_update

    target = entailed_graph(graph)
    source = list(_graph_triples(store, graph, schema().predicates))
    digest = source_digest(source)
    record = _recorded(store, target)
    if record is not None and record.digest == digest and store.graph_size(target) == \
            record.statements:
        log.info("entailment of <%s>: unchanged (%d triples in <%s>)", graph, record.statements,
                 target)
        return int(record.statements)
    entailed = entail(source)
    stored = set(_graph_triples(store, target))
    run_update = _run_update(store)
    run_update(record_update(target, None, graph))  # no record while the graph changes
    if any(has_blank_node(t) for t in itertools.chain(entailed, stored)):
        run_update(f"DROP SILENT GRAPH <{target}>")
        stale, new = set(), entailed
    else:
        stale, new = stored - entailed, entailed - stored
    for update in delete_data(target, sorted(stale, key=str)):
        run_update(update)
    for update in insert_data(target, sorted(new, key=str)):
        run_update(update)
    run_update(record_update(target, LoadRecord(digest, len(entailed)), graph))
    log.info("entailment of <%s>: %d triples in <%s> (%d removed, %d added)", graph,
             len(entailed), target, len(stale), len(new))
    return len(entailed)
