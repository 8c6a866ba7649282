"""Load RDF into a triple store, one named graph per product and run; re-loads replace the graph.

Two stores behind one interface:

* :class:`EmbeddedStore` - a persistent ``pyoxigraph.Store`` folder (default ``{root}/linked_data/
  store``). RocksDB allows one writer process: Airflow serialises loads through the
  ``triple_store`` pool.
* :class:`HttpStore` - any SPARQL 1.1 server (Oxigraph: ``eeflow rdf serve`` or ``oxigraph serve``)
  through the SPARQL 1.1 Update and Graph Store HTTP Protocol (``POST {store}?graph=IRI``).

Every load is checked and atomic (nothing lost, nothing half-replaced):

1. The file is parsed in full before the store is touched (:func:`read_rdf_keys`): a syntax error
   or a file shorter than its export manifest says (a truncated ``.nt`` cut at a line end parses
   fine) raises :class:`RdfFileError` and the store keeps the previous graph.
2. A first load (the graph is absent or empty) goes the fast way: ``bulk_load`` (embedded) or
   parallel chunks of ``chunk_triples`` lines (HTTP, Oxigraph's ``no_transaction`` when
   ``oxigraph_bulk``, never ``lenient``: a rejected chunk fails the load, which then drops the
   half-loaded graph so no partial graph stays behind).
3. A re-load of a graph that holds data goes one of two atomic ways, picked by a cost model
   (:func:`rebuild_is_cheaper`) from a sample of the file checked against the store:

   * small changes: the difference between the stored graph and the file in one SPARQL update
     (``DELETE DATA ... ; INSERT DATA ...``), which Oxigraph runs as one transaction: readers, a
     failure or a ``kill -9`` see the old or the new graph, never a mix, and unchanged triples are
     neither deleted nor re-inserted. Oxigraph applies it quad by quad (~5x the cost of a bulk
     load per changed quad; ``CLEAR`` / ``DROP`` / ``MOVE`` in a transaction are slower still).
   * most of the graph changed (embedded store only): the store is rebuilt in a sibling folder
     with bulk loads (the file, then every other graph copied) and swapped in whole
     (:mod:`tasks.linked_data.store_swap`: one ``renameat2`` exchange on Linux); until the swap
     the live store is only read, and after a ``kill -9`` the next open finds one complete store
     and removes the leftover folder. Readers in this process wait for the swap (milliseconds).
     It needs free disk space for a second copy of the store.

   Over HTTP on plain ``oxigraph serve`` only the update is available: its Graph Store ``PUT``
   is one transaction too (since Oxigraph 0.5.10; a body with a syntax error leaves the graph as
   it was), but it clears the graph inside the transaction, which is slower than deleting the
   listed triples; it is used for files of at most ``atomic_max_triples`` triples, for Turtle (no
   diff to compute), for blank nodes and for differences above ``HTTP_UPDATE_MAX_BYTES``.
   eeflow's own server (``eeflow rdf serve``, what docker-compose.yaml deploys) answers with
   ``Eeflow-Graph-Store: rebuild``: it re-loads a big PUT over a graph with data by the cost
   model above (rebuild + swap when most triples changed), so a re-load that changes most of the
   graph (``PUT_RELOAD_COST``) is sent to it as one PUT instead of the difference.
   ``store.replace: staging_move`` keeps chunks into ``{graph}/staging`` + ``MOVE``.

   HTTP loads of N-Triples / Turtle keep a **load record** in the store, in the companion graph
   ``<{graph}/eeflow-load>`` (the file's order-independent content digest and statement count,
   written in the same update as the difference), and a **snapshot** of the loaded statements in
   ``{data_root}/linked_data/http_loads/`` (:mod:`tasks.linked_data.load_record`). A re-load
   whose file digest and the graph's COUNT match the record sends nothing (verified, logged); a
   changed file is diffed against the snapshot when the snapshot's digest matches the record and
   the COUNT its count, with no GET; otherwise the stored graph is read back as before.
4. The final graph size is compared with the file's distinct triples; a mismatch is an error.

Connection errors and 5xx answers are retried with exponential backoff, then reported with
:class:`StoreUnavailableError`.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import shutil
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

from tasks.config.linked_data import LinkedDataConfig, StoreConfig
from tasks.errors import EeflowError, ErrorFamily
from tasks.linked_data import store_swap
from tasks.linked_data.load_record import (
    SNAPSHOT_FOLDER,
    LoadRecord,
    LoadSnapshot,
    SnapshotWriter,
    content_digest,
    has_blank_node,
    has_blank_node_text,
    parse_record,
    read_keys,
    read_selected_lines,
    record_graph,
    record_query,
    record_update,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

FORMAT_BY_SUFFIX = {".nt": "nt", ".nq": "nq", ".ttl": "ttl"}
CONTENT_TYPES = {"nt": "application/n-triples", "nq": "application/n-quads", "ttl": "text/turtle"}


class StoreUnavailableError(EeflowError, ConnectionError):
    """The SPARQL server did not answer after all retries."""

    family = ErrorFamily.UNAVAILABLE


class StoreLockedError(EeflowError, OSError):
    """The embedded store folder is held by another process (RocksDB allows one writer)."""

    family = ErrorFamily.IO


class RdfFileError(EeflowError, ValueError):
    """An RDF file is not loadable (syntax error, truncated); the store was not changed."""


class LoadVerificationError(EeflowError, RuntimeError):
    """The graph does not hold what the file holds after a load."""


class TripleStore(Protocol):
    """What the loader and the query runner need from a store."""

    def replace_graph(
        self, graph: str, rdf_file: Path, fmt: str, expected_triples: int | None = None
    ) -> int:
        """Replace ``graph`` with the content of ``rdf_file``; return the graph's triple count."""
        ...

    def query(self, sparql: str, **kwargs: Any) -> Any:
        """Run a SPARQL query; SELECT gives an iterable of solutions."""
        ...

    def graph_size(self, graph: str) -> int:
        """Count the triples in ``graph``."""
        ...

    def close(self) -> None:
        """Release the store."""
        ...


#: Quads removed per SPARQL update when a graph is cleared (bounds the update's memory).
CLEAR_BATCH_QUADS = 200_000


def clear_graph_in_batches(
    graph: str,
    query: Callable[[str], Any],
    update: Callable[[str], Any],
    batch: int = CLEAR_BATCH_QUADS,
) -> None:
    """Empty ``graph`` with one ``DELETE ... LIMIT batch`` per predicate, repeated while needed.

    ``query`` / ``update`` run SPARQL on the store (embedded or HTTP); ``graph`` is an IRI the
    caller has checked. Oxigraph's ``remove_graph`` / ``DROP GRAPH`` delete quad by quad (~11-16k
    quads/s here); these batches run at ~32-50k/s with bounded memory.
    """
    rows = query(f"SELECT DISTINCT ?p WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}")
    for predicate in [str(row["p"]) for row in rows]:
        pattern = f"GRAPH <{graph}> {{ ?s {predicate} ?o }}"
        delete = (
            f"DELETE {{ {pattern} }} WHERE {{ SELECT ?s ?o WHERE {{ {pattern} }} LIMIT {batch} }}"
        )
        update(delete)
        while bool(query(f"ASK {{ {pattern} }}")):
            update(delete)


def _rdf_format(fmt: str) -> Any:
    import pyoxigraph as ox

    return {"nt": ox.RdfFormat.N_TRIPLES, "nq": ox.RdfFormat.N_QUADS, "ttl": ox.RdfFormat.TURTLE}[
        fmt
    ]


#: Readable names of the formats, for messages.
FORMAT_NAMES = {"nt": "N-Triples", "nq": "N-Quads", "ttl": "Turtle"}


def _statement_key(triple_text: str, graph: str) -> bytes:
    """16-byte digest of one statement in one graph (sets of 2 M keys stay ~250 MB)."""
    return hashlib.blake2b(f"{triple_text} {graph}".encode(), digest_size=16).digest()


def iter_rdf_statements(rdf_file: Path, fmt: str, graph: str) -> Iterator[tuple[str, str, bool]]:
    """Parse ``rdf_file`` strictly: yield (N-Triples text of the triple, graph IRI, blank node?).

    Triples of ``nt`` / ``ttl`` files belong to ``graph``; N-Quads keep their own graph ("" is the
    default graph). pyoxigraph's canonical serialisation makes the text comparable with what a
    store returns.
    """
    import pyoxigraph as ox

    for item in ox.parse(path=str(rdf_file), format=_rdf_format(fmt)):
        if fmt == "nq":
            name = item.graph_name
            target = name.value if isinstance(name, ox.NamedNode) else ""
            yield str(item.triple), target, has_blank_node(item)
        else:
            yield str(item), graph, has_blank_node(item)


#: Most statements :func:`read_rdf_keys` keeps as an evenly spaced sample of the file.
SAMPLE_MAX = 4096


@dataclass
class RdfFileContent:
    """What a fully parsed RDF file holds (see :func:`read_rdf_keys`)."""

    path: Path
    fmt: str
    graph: str
    statements: int = 0
    keys: set[bytes] = field(default_factory=set)
    per_graph: dict[str, int] = field(default_factory=dict)
    has_blank_nodes: bool = False
    #: every ``sample_stride``-th statement (text, graph), at most ``SAMPLE_MAX``: a re-load
    #: estimates from it how much of the file the store already holds
    sample: list[tuple[str, str]] = field(default_factory=list)
    sample_stride: int = 1
    #: reads the file's distinct statements again without parsing it (a snapshot of them)
    replay: Callable[[], Iterator[tuple[str, str, bool]]] | None = None

    def add_to_sample(self, index: int, text: str, graph: str) -> None:
        """Keep statement ``index`` if it falls on the stride; halve the sample when it is full."""
        if index % self.sample_stride:
            return
        self.sample.append((text, graph))
        if len(self.sample) >= SAMPLE_MAX:
            self.sample = self.sample[::2]
            self.sample_stride *= 2

    def statements_again(self) -> Iterator[tuple[str, str, bool]]:
        """Parse the file again (it was valid the first time), or read its snapshot back."""
        if self.replay is not None:
            return self.replay()
        return iter_rdf_statements(self.path, self.fmt, self.graph)


def read_rdf_keys(
    rdf_file: Path,
    fmt: str,
    graph: str,
    expected_statements: int | None = None,
    sink: Callable[[str, str, bytes], None] | None = None,
) -> RdfFileContent:
    """Parse the whole file before any store is touched; count its statements.

    Args:
        rdf_file: the N-Triples / N-Quads / Turtle file to load.
        fmt: ``nt``, ``nq`` or ``ttl``.
        graph: the graph its triples go to.
        expected_statements: the triple count the export manifest records; a file cut at a line
            end parses fine, so only this count reveals it.
        sink: called with (canonical N-Triples text, graph IRI, statement key) of each distinct
            statement, in file order (an HTTP load's snapshot writer).

    Raises:
        RdfFileError: a syntax error (with file, line and column) or a count that differs from the
            manifest's; the message says the store was not changed and how to fix the file.

    """
    content = RdfFileContent(Path(rdf_file), fmt, graph)
    per_graph: dict[str, int] = defaultdict(int)
    try:
        for text, target, blank in iter_rdf_statements(content.path, fmt, graph):
            content.add_to_sample(content.statements, text, target)
            content.statements += 1
            key = _statement_key(text, target)
            if key not in content.keys:
                content.keys.add(key)
                per_graph[target] += 1
                if sink is not None:
                    sink(text, target, key)
            content.has_blank_nodes |= blank
    except SyntaxError as err:
        raise RdfFileError(
            f"{rdf_file} is not valid {FORMAT_NAMES[fmt]} ({err}); it may be truncated or "
            "corrupt: re-run `eeflow rdf export` for this product and run. The store was not "
            "changed"
        ) from None
    if expected_statements is not None and content.statements != expected_statements:
        raise RdfFileError(
            f"{rdf_file} holds {content.statements} triples but its export manifest records "
            f"{expected_statements}: the file is truncated or was changed after the export; "
            "re-run `eeflow rdf export` for this product and run. The store was not changed"
        )
    content.per_graph = dict(per_graph)
    return content


@dataclass
class GraphDiff:
    """Statements to delete from and to insert into the stored graph(s), by graph IRI."""

    delete: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    insert: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    blank_nodes: bool = False

    @property
    def deleted(self) -> int:
        """Statements removed."""
        return sum(len(v) for v in self.delete.values())

    @property
    def inserted(self) -> int:
        """Statements added."""
        return sum(len(v) for v in self.insert.values())

    def sparql_update(self) -> str:
        """One SPARQL update (``DELETE DATA ; INSERT DATA``): one transaction on Oxigraph."""
        parts = []
        for verb, groups in (("DELETE DATA", self.delete), ("INSERT DATA", self.insert)):
            blocks = []
            for graph, texts in groups.items():
                if not texts:
                    continue
                body = " .\n".join(texts) + " ."
                blocks.append(f"GRAPH <{graph}> {{\n{body}\n}}" if graph else body)
            if blocks:
                parts.append(f"{verb} {{\n" + "\n".join(blocks) + "\n}")
        return " ;\n".join(parts)


def diff_graph(old: Iterable[tuple[str, str, bool]], new: RdfFileContent) -> GraphDiff:
    """Compare the stored statements ``old`` with the parsed file ``new``.

    The file is parsed once more for the text of the statements to insert, unless the store
    already holds every one of its statements (an identical re-load or one that only removes).
    """
    diff = GraphDiff(blank_nodes=new.has_blank_nodes)
    old_keys: set[bytes] = set()
    kept = 0
    for text, graph, blank in old:
        key = _statement_key(text, graph)
        if key in old_keys:
            continue
        old_keys.add(key)
        diff.blank_nodes |= blank
        if key in new.keys:
            kept += 1
        else:
            diff.delete[graph].append(text)
    if kept == len(new.keys):
        return diff
    added: set[bytes] = set()
    for text, graph, _ in new.statements_again():
        key = _statement_key(text, graph)
        if key not in old_keys and key not in added:
            added.add(key)
            diff.insert[graph].append(text)
    return diff


def diff_against_snapshot(
    content: RdfFileContent, new_keys: list[bytes], new_lines: Path, old_lines: Path,
    record: LoadRecord,
) -> GraphDiff | None:
    """Diff the parsed file with the snapshot of the previous load by statement keys (no parse).

    Args:
        content: the parsed file.
        new_keys: its distinct statement keys in the order of ``new_lines`` (its snapshot).
        new_lines: the file's snapshot lines (graph IRI or empty for ``content.graph``, a tab,
            the text).
        old_lines: the previous load's snapshot lines, its ``.keys`` file beside it.
        record: the store's load record the previous snapshot must match.

    Returns:
        The difference, or None when the old snapshot does not hold what ``record`` says (its
        keys' digest or count differ, or a line to delete does not hash to its key).

    """
    old_keys = read_keys(old_lines.with_suffix(".keys"))
    old_set = set(old_keys)
    if len(old_set) != len(old_keys) or len(old_keys) != record.statements or (
        content_digest(old_set) != record.digest
    ):
        return None
    diff = GraphDiff(blank_nodes=content.has_blank_nodes)
    gone = {index for index, key in enumerate(old_keys) if key not in content.keys}
    for index, graph, text in read_selected_lines(old_lines, gone, content.graph):
        if _statement_key(text, graph) != old_keys[index]:
            return None
        gone.discard(index)
        diff.delete[graph].append(text)
        diff.blank_nodes |= has_blank_node_text(text)
    if gone:  # lines missing from the file
        return None
    added = {index for index, key in enumerate(new_keys) if key not in old_set}
    for _, graph, text in read_selected_lines(new_lines, added, content.graph):
        diff.insert[graph].append(text)
    return diff


def _verify(store: Any, graph: str, content: RdfFileContent, what: str) -> int:
    size = int(store.graph_size(graph))
    expected = content.per_graph.get(graph, 0)
    if size != expected:
        raise LoadVerificationError(
            f"{what}: graph <{graph}> holds {size} triples after the load but {content.path} has "
            f"{expected} distinct triples for it; the store may have rejected data: check its "
            "log and re-run the load"
        )
    return size


#: Relative costs of a re-load's steps, in units of one quad bulk-loaded into the store (CPU
#: seconds measured with bench/p6_atomic_reload.py at 0.19 M and 1.9 M triples, 2026-11-30):
#: reading + hashing a stored quad and re-parsing a file statement for the diff ~1.9 together,
#: one quad deleted or inserted by the one-transaction SPARQL update 3-5.5 (Oxigraph applies it
#: quad by quad; 3 at 1.9 M, 5.5 at 0.19 M), copying a quad of another graph into a rebuilt store
#: ~1.9 (read + ``bulk_extend``).
DIFF_READ_COST = 1.3
DIFF_REPARSE_COST = 0.6
UPDATE_QUAD_COST = 4.0
REBUILD_COPY_COST = 1.9
#: A re-load rebuilds the store only if at least this share of the file's statements is new to
#: the store (estimated from the file's sample): an identical or nearly identical re-load is
#: applied in place and writes (almost) nothing.
REBUILD_MIN_CHANGED_SHARE = 0.05
#: Seconds a rebuilt store waits for readers of the old one in this process to finish.
SWAP_WAIT_S = 30.0


def rebuild_is_cheaper(
    stored: int, new: int, new_share: float, count_others: Callable[[int], int]
) -> bool:
    """Whether rebuilding the store beats applying the difference in place (cost model above).

    Args:
        stored: triples the replaced graph(s) hold now.
        new: distinct statements of the file.
        new_share: estimated share of the file's statements the store does not hold yet.
        count_others: counts the store's quads outside the replaced graphs, stopping at the
            limit it is given (the rebuild copies them).

    """
    if new_share < REBUILD_MIN_CHANGED_SHARE:
        return False
    inserted = new_share * new
    deleted = max(stored - (new - inserted), 0.0)
    diff_cost = (
        DIFF_READ_COST * stored + DIFF_REPARSE_COST * new + UPDATE_QUAD_COST * (inserted + deleted)
    )
    copy_budget = (diff_cost - new) / REBUILD_COPY_COST  # other quads a rebuild may copy and win
    if copy_budget < 0:
        return False
    return count_others(int(copy_budget) + 1) <= copy_budget


def _count_graph(store: Any, graph: str) -> int:
    import pyoxigraph as ox

    result = store.query(f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}")
    assert isinstance(result, ox.QuerySolutions)  # a SELECT query
    return int(next(iter(result))["n"].value)


class EmbeddedStore:
    """A persistent pyoxigraph store in a folder (in memory when ``path`` is None).

    ``reload`` picks how a re-load replaces a graph that holds data: ``auto`` (by the cost model
    of :func:`rebuild_is_cheaper`), ``diff`` (the difference in one SPARQL update) or ``rebuild``
    (a new store built with bulk loads, swapped in whole; see :mod:`.store_swap`).
    """

    def __init__(
        self, path: str | Path | None, read_only: bool = False, reload: str = "auto"
    ) -> None:
        import pyoxigraph as ox

        if reload not in ("auto", "diff", "rebuild"):
            raise ValueError(f"reload={reload!r}: allowed values are 'auto', 'diff', 'rebuild'")
        self.path = path
        self.reload = reload
        self._lock = threading.RLock()
        self._closed = False
        self._store: Any = None
        if path is None:
            self._store = ox.Store()
        elif read_only:
            self._store = ox.Store.read_only(str(path))
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            store_swap.recover(Path(path))
            self._store = self._open_writable()
            store_swap.remove_leftovers(Path(path))

    def _open_writable(self) -> Any:
        import pyoxigraph as ox

        Path(str(self.path)).mkdir(parents=True, exist_ok=True)
        try:
            return ox.Store(str(self.path))
        except OSError as err:
            raise StoreLockedError(
                f"cannot open the embedded triple store {self.path}: {err}. Another process "
                "(a load, `eeflow rdf serve`) may hold it; stop it or use store.mode: http"
            ) from err

    @property
    def store(self) -> Any:
        """The open ``pyoxigraph.Store`` (re-opened after a swap that readers delayed)."""
        with self._lock:
            if self._store is None and not self._closed and self.path is not None:
                self._store = self._open_writable()
            return self._store

    @store.setter
    def store(self, value: Any) -> None:
        with self._lock:
            self._store = value

    def replace_graph(
        self,
        graph: str,
        rdf_file: Path,
        fmt: str,
        expected_triples: int | None = None,
        also_replace: Iterable[str] = (),
    ) -> int:
        """Replace ``graph`` by the file, atomically (see the module doc); return its size.

        ``also_replace``: further named graphs replaced in the same step by the file's quads for
        them (emptied when it has none; N-Quads), e.g. a graph's entailment companion.

        Raises:
            RdfFileError: the file does not parse or is shorter than ``expected_triples``.
            LoadVerificationError: the graph does not hold the file's triples afterwards.
            StoreLockedError: a rebuilt store could not be swapped in because a reader of this
                process kept the old one open (the store keeps the previous graph).

        """
        import pyoxigraph as ox

        node = ox.NamedNode(graph)
        content = read_rdf_keys(Path(rdf_file), fmt, graph, expected_triples)
        graphs = sorted({graph, *also_replace, *(g for g in content.per_graph if g)})
        if not any(self._holds_quads(g) for g in graphs):
            try:
                self.store.bulk_load(
                    path=str(rdf_file),
                    format=_rdf_format(fmt),
                    to_graph=None if fmt == "nq" else node,
                )
                self.store.flush()
                return _verify(self, graph, content, f"load {rdf_file}")
            except BaseException:
                for name in graphs:  # they were empty: leave no half-loaded graph behind
                    self.clear_graph(name)
                raise
        if self._rebuild_pays(graphs, content):
            self._rebuild(graph, Path(rdf_file), fmt, content, graphs)
            log.info("re-load <%s>: store rebuilt with the new graph and swapped in", graph)
        else:
            diff = diff_graph(self._statements(graphs), content)
            if diff.blank_nodes:
                self._replace_through_staging(graph, rdf_file, fmt, content)
            elif diff.deleted or diff.inserted:
                self.store.update(diff.sparql_update())
            log.info(
                "re-load <%s>: %d triples removed, %d added, the rest unchanged",
                graph,
                diff.deleted,
                diff.inserted,
            )
        self.store.flush()
        return _verify(self, graph, content, f"load {rdf_file}")

    def _holds_quads(self, graph: str) -> bool:
        import pyoxigraph as ox

        quads = self.store.quads_for_pattern(None, None, None, ox.NamedNode(graph))
        return next(iter(quads), None) is not None

    def _new_share(self, content: RdfFileContent) -> float:
        """Share of the file's sampled statements that the store does not hold."""
        import pyoxigraph as ox

        if not content.sample:
            return 0.0
        by_graph: dict[str, list[str]] = defaultdict(list)
        for text, name in content.sample:
            by_graph[name].append(text)
        present = 0
        for name, texts in by_graph.items():
            target = ox.NamedNode(name) if name else ox.DefaultGraph()
            lines = " .\n".join(texts) + " ."
            for triple in ox.parse(input=lines.encode(), format=ox.RdfFormat.N_TRIPLES):
                present += ox.Quad(triple.subject, triple.predicate, triple.object, target) in (
                    self.store
                )
        return 1.0 - present / len(content.sample)

    def _count_other_quads(self, graphs: list[str], limit: int) -> int:
        """Count the quads outside ``graphs`` (default graph included), at most ``limit``."""
        import pyoxigraph as ox

        excluded = ", ".join(f"<{name}>" for name in graphs)
        result = self.store.query(
            "SELECT (COUNT(*) AS ?n) WHERE { SELECT ?s WHERE { "
            f"{{ GRAPH ?g {{ ?s ?p ?o }} FILTER(?g NOT IN ({excluded})) }} UNION {{ ?s ?p ?o }}"
            f" }} LIMIT {int(limit)} }}"
        )
        assert isinstance(result, ox.QuerySolutions)  # a SELECT query
        return int(next(iter(result))["n"].value)

    def _rebuild_pays(self, graphs: list[str], content: RdfFileContent) -> bool:
        if self.reload != "auto":
            return self.reload == "rebuild"
        stored = sum(_count_graph(self.store, name) for name in graphs)
        return rebuild_is_cheaper(
            stored,
            len(content.keys),
            self._new_share(content),
            lambda limit: self._count_other_quads(graphs, limit),
        )

    def _rebuild(
        self, graph: str, rdf_file: Path, fmt: str, content: RdfFileContent, graphs: list[str]
    ) -> None:
        """Bulk-load the file and copy every other graph into a new store, then swap it in.

        The live store is only read until the swap: a failure or a ``kill -9`` before it leaves
        the previous graph (the staging folder is removed on the next open).
        """
        import pyoxigraph as ox

        staging = None if self.path is None else store_swap.staging_path(Path(self.path))
        if staging is not None and staging.exists():
            shutil.rmtree(staging)
        fresh = ox.Store() if staging is None else ox.Store(str(staging))
        try:
            fresh.bulk_load(
                path=str(rdf_file),
                format=_rdf_format(fmt),
                to_graph=None if fmt == "nq" else ox.NamedNode(graph),
            )
            live = self.store
            replaced = set(graphs)
            others = [name for name in live.named_graphs() if name.value not in replaced]
            for name in others:  # empty named graphs are kept too
                fresh.add_graph(name)
            fresh.bulk_extend(
                itertools.chain(
                    live.quads_for_pattern(None, None, None, ox.DefaultGraph()),
                    *(live.quads_for_pattern(None, None, None, name) for name in others),
                )
            )
            fresh.flush()
            for name in graphs:
                staged = _count_graph(fresh, name)
                if staged != content.per_graph.get(name, 0):
                    raise LoadVerificationError(
                        f"rebuilding the store for {rdf_file}: graph <{name}> holds {staged} "
                        f"triples but the file has {content.per_graph.get(name, 0)}; the store "
                        "was not changed: check the file and re-run the load"
                    )
        except BaseException:
            del fresh
            if staging is not None:
                store_swap.wait_until_closed(staging, SWAP_WAIT_S)
                shutil.rmtree(staging, ignore_errors=True)
            raise
        if staging is None:
            self.store = fresh  # in memory: readers holding the old object keep the old graph
            return
        del fresh, live  # closes the new store: RocksDB must not write into a renamed folder
        self._swap_in(staging)

    def _swap_in(self, staging: Path) -> None:
        """Close both stores, exchange the folders, open the new one (readers wait meanwhile)."""
        path = Path(str(self.path))
        with self._lock:
            self._store = None  # the old store closes once no reader holds it
            if not (
                store_swap.wait_until_closed(path, SWAP_WAIT_S)
                and store_swap.wait_until_closed(staging, SWAP_WAIT_S)
            ):
                shutil.rmtree(staging, ignore_errors=True)
                raise StoreLockedError(
                    f"the re-load rebuilt the store but could not swap it in: a reader in this "
                    f"process kept {path} open for {SWAP_WAIT_S:.0f}s; the store keeps the "
                    "previous graph. Finish or close the open query results and re-run the load"
                )
            previous = store_swap.exchange(path, staging)
            self._store = self._open_writable()
        shutil.rmtree(previous, ignore_errors=True)

    def _statements(self, graphs: list[str]) -> Iterator[tuple[str, str, bool]]:
        import pyoxigraph as ox

        for name in graphs:
            for quad in self.store.quads_for_pattern(None, None, None, ox.NamedNode(name)):
                yield str(quad.triple), name, has_blank_node(quad)

    def _replace_through_staging(
        self, graph: str, rdf_file: Path, fmt: str, content: RdfFileContent
    ) -> None:
        """Blank nodes cannot be named in ``DELETE DATA``: bulk-load a staging graph, MOVE it."""
        import pyoxigraph as ox

        if fmt == "nq":
            raise RdfFileError(
                f"{rdf_file}: N-Quads with blank nodes cannot be re-loaded atomically; export the "
                "product as N-Triples (export.format: nt). The store was not changed"
            )
        staging = f"{graph}/staging"
        self.store.update(f"DROP SILENT GRAPH <{staging}>")
        self.store.bulk_load(
            path=str(rdf_file), format=_rdf_format(fmt), to_graph=ox.NamedNode(staging)
        )
        _verify(self, staging, RdfFileContent(
            content.path, fmt, staging, per_graph={staging: content.per_graph.get(graph, 0)}
        ), f"stage {rdf_file}")
        self.store.update(f"MOVE SILENT GRAPH <{staging}> TO GRAPH <{graph}>")

    def clear_graph(self, graph: str, batch: int = CLEAR_BATCH_QUADS) -> None:
        """Remove every quad of ``graph`` and the graph itself (batched, see the module doc)."""
        import pyoxigraph as ox

        node = ox.NamedNode(graph)
        started = time.perf_counter()
        clear_graph_in_batches(graph, self.store.query, self.store.update, batch)
        self.store.remove_graph(node)  # now empty: drops the graph name only
        log.info("cleared <%s> in %.1fs", graph, time.perf_counter() - started)

    def graph_size(self, graph: str) -> int:
        """Count the triples in ``graph``."""
        return _count_graph(self.store, graph)

    def query(self, sparql: str, **kwargs: Any) -> Any:
        """Run a query on the store (union of all graphs as default graph)."""
        kwargs.setdefault("use_default_graph_as_union", True)
        return self.store.query(sparql, **kwargs)

    def close(self) -> None:
        """Flush and release the store's lock."""
        with self._lock:
            if self.path is not None and self._store is not None:
                try:
                    self._store.flush()
                except OSError:
                    pass
            self._closed = True
            self._store = None  # closed: no use after close()


def with_retries(
    action: Callable[[], T], *, what: str, url: str, retries: int, backoff_s: float
) -> T:
    """Run ``action``; on connection errors / 5xx retry ``retries`` times with doubling backoff."""
    import requests

    for attempt in itertools.count():
        try:
            return action()
        except (requests.ConnectionError, requests.Timeout, _ServerError) as err:
            if attempt >= retries:
                raise StoreUnavailableError(
                    f"{what}: SPARQL store {url} unreachable after {attempt + 1} attempts ({err}); "
                    "start it (`eeflow rdf serve`) or fix linked_data store.url"
                ) from err
            delay = backoff_s * 2**attempt
            log.warning("%s: %s; retry %d/%d in %.1fs", what, err, attempt + 1, retries, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


class _ServerError(EeflowError, RuntimeError):
    """A 5xx answer (worth retrying)."""


def _check(response: Any, what: str) -> Any:
    if response.status_code >= 500:
        raise _ServerError(f"{response.status_code} {response.text[:300]}")
    if response.status_code >= 400:
        raise ValueError(
            f"{what}: the store answered {response.status_code}: {response.text[:500]}"
        )
    return response


def count_lines_up_to(path: Path, limit: int) -> int:
    """Count the lines of ``path``, stopping once ``limit`` is reached (returns at most limit)."""
    count = 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            count += block.count(b"\n")
            if count >= limit:
                return limit
    return count


def iter_line_chunks(stream: BinaryIO, lines_per_chunk: int) -> Iterator[bytes]:
    """Cut an N-Triples/N-Quads stream into chunks of whole lines."""
    while True:
        chunk = list(itertools.islice(stream, lines_per_chunk))
        if not chunk:
            return
        yield b"".join(chunk)


#: Oxigraph's server refuses SPARQL update bodies above 128 MiB (400 "SPARQL body payloads are
#: limited to 134217728 bytes"; the every-triple-changed re-load of 1.9 M triples is ~740 MB):
#: a bigger N-Triples difference replaces the graph with one Graph Store PUT instead (atomic too,
#: its body is streamed, but ~2x slower per changed triple).
HTTP_UPDATE_MAX_BYTES = 128 * 1024 * 1024
#: Cost of a re-load by one Graph Store PUT on a server that rebuilds (``eeflow rdf serve``:
#: parse, entailment, bulk load into a rebuilt store, swap), per statement of the file, in the
#: units of the constants above. A re-load changes the graph by PUT rather than by the
#: difference in one update when ``UPDATE_QUAD_COST`` x (deleted + inserted) exceeds it.
PUT_RELOAD_COST = 3.0
#: The server answers a write only once it is applied: a request of ``n`` body bytes waits at
#: least ``n`` / this for the answer (a 1.9 M-triple PUT, 370 MB: 370 s) before it counts as
#: timed out, however low ``store.timeout_s`` is (a retry would send the same write again).
WRITE_MIN_BYTES_PER_S = 1_000_000
#: Response header of eeflow's server (``tasks.linked_data.server``) saying that a big PUT over a
#: graph with data is re-loaded by the store's cost model (rebuild + swap when most changed).
REBUILD_HEADER = "Eeflow-Graph-Store"


class HttpStore:
    """A SPARQL 1.1 server (Graph Store Protocol + Update + Query over HTTP).

    ``state_dir``: where the snapshots of loaded graphs are kept (see
    :mod:`tasks.linked_data.load_record`); None keeps none (a changed re-load then reads the
    stored graph back). :func:`open_store` passes ``{data_root}/linked_data/http_loads``.
    """

    def __init__(self, cfg: StoreConfig, state_dir: str | Path | None = None) -> None:
        import requests

        self.cfg = cfg
        self.state_dir = None if state_dir is None else Path(state_dir)
        #: how the last :meth:`replace_graph` went: ``same content``, ``first load``, ``put``,
        #: ``snapshot diff``, ``GET diff`` or ``untracked`` (N-Quads, staging_move); `` + put``
        #: when a difference was sent as one PUT instead
        self.last_path = ""
        #: the server said (``Eeflow-Graph-Store: rebuild``, eeflow's server) that a big PUT
        #: over a graph with data rebuilds its store: cheaper than an update when most changed
        self.put_rebuilds = False
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=max(cfg.parallel_requests, 4))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def _timeout(self, body_bytes: int) -> float:
        """Seconds to wait for the answer to a write of ``body_bytes`` (see the constant)."""
        return max(self.cfg.timeout_s, body_bytes / WRITE_MIN_BYTES_PER_S)

    def _post(self, url: str, what: str, **kwargs: Any) -> Any:
        data = kwargs.get("data")
        timeout = self._timeout(len(data) if isinstance(data, bytes | str) else 0)

        def action() -> Any:
            return _check(self.session.post(url, timeout=timeout, **kwargs), what)

        return with_retries(
            action, what=what, url=url, retries=self.cfg.retries, backoff_s=self.cfg.backoff_s
        )

    def update(self, sparql: str | bytes) -> None:
        """Run a SPARQL 1.1 Update (one request: one transaction on Oxigraph)."""
        self._post(
            self.cfg.endpoint("update"),
            "SPARQL update",
            data=sparql if isinstance(sparql, bytes) else sparql.encode(),
            headers={"Content-Type": "application/sparql-update"},
        )

    def replace_graph(
        self, graph: str, rdf_file: Path, fmt: str, expected_triples: int | None = None
    ) -> int:
        """Replace ``graph`` by the file, checked and atomic (see the module doc); return its size.

        N-Triples and Turtle loads keep a load record in the store and a local snapshot
        (:mod:`tasks.linked_data.load_record`): a file whose content the record already
        describes is only verified, and a changed file is diffed against the snapshot
        instead of the graph read back from the server.

        Raises:
            RdfFileError: the file does not parse or is shorter than ``expected_triples``.
            LoadVerificationError: the graph does not hold the file's triples afterwards.
            ValueError: the server rejected a chunk or an update (its answer is in the message).

        """
        import pyoxigraph as ox

        ox.NamedNode(graph)  # validates the IRI before it goes into the update text
        rdf_file = Path(rdf_file)
        if fmt == "nq" or self.cfg.replace == "staging_move":
            self.last_path = "untracked"
            return self._replace_untracked(graph, rdf_file, fmt, expected_triples)
        writer = None
        if self.state_dir is not None:
            try:
                writer = self._snapshot(graph).writer()
            except OSError as err:  # the load does not need it; the next re-load does a GET
                log.warning("no snapshot of <%s> in %s: %s", graph, self.state_dir, err)
        try:
            return self._replace_tracked(graph, rdf_file, fmt, expected_triples, writer)
        finally:
            if writer is not None and not writer.committed:
                writer.discard()

    def _snapshot(self, graph: str) -> LoadSnapshot:
        assert self.state_dir is not None
        return LoadSnapshot(self.state_dir, self.cfg.endpoint("store"), graph)

    def load_record(self, graph: str) -> LoadRecord | None:
        """Read the store's record of the last load into ``graph`` (None: none, or not one)."""
        return parse_record(list(self.query(record_query(graph))))

    def _replace_tracked(
        self,
        graph: str,
        rdf_file: Path,
        fmt: str,
        expected_triples: int | None,
        writer: SnapshotWriter | None,
    ) -> int:
        """N-Triples / Turtle into one graph, with the load record and the snapshot."""
        with ThreadPoolExecutor(1) as pool:  # the server reads and counts while the file parses
            state = pool.submit(lambda: (self.load_record(graph), self.graph_size(graph)))
            content = read_rdf_keys(
                rdf_file, fmt, graph, expected_triples, None if writer is None else writer.add
            )
            writer = self._finish_snapshot(writer, content, graph)
            record = LoadRecord(content_digest(content.keys), len(content.keys))
            stored, size = state.result()
        count: int | None = None  # the graph's size once a step has verified it
        if stored == record and size == record.statements:
            self.last_path = "same content"
            count = size
            log.info(
                "re-load <%s>: %s has the content the store's load record describes (%d "
                "triples, digest %s) and the graph holds that many: nothing sent",
                graph, rdf_file, size, record.digest,
            )
        elif fmt == "ttl" or 0 < content.statements <= self.cfg.atomic_max_triples:
            self.last_path = "put"
            count = self._put_with_record(graph, rdf_file, fmt, content, record)
        elif size == 0:
            self.last_path = "first load"
            count = self._first_load(graph, rdf_file, fmt, content, [graph])
            self.update(record_update(graph, record, rdf_file))
        else:
            count = self._apply_diff(graph, rdf_file, fmt, content, record, stored, size, writer)
        if count is None:
            count = _verify(self, graph, content, f"load {rdf_file}")
        if writer is not None:
            current = self._snapshot(graph).current()
            if current is None or current[1] != record:
                try:
                    writer.commit(record)
                except OSError as err:  # the graph is loaded; the next re-load does a GET
                    log.warning("could not keep the snapshot of <%s>: %s", graph, err)
        return count

    @staticmethod
    def _finish_snapshot(
        writer: SnapshotWriter | None, content: RdfFileContent, graph: str
    ) -> SnapshotWriter | None:
        """Close the new snapshot; None if it could not be written (the load goes on)."""
        if writer is None:
            return None
        try:
            writer.close()
        except OSError as err:
            log.warning("cannot write the snapshot of <%s>: %s", graph, err)
            writer.failed = True
        if writer.failed:
            writer.discard()
            return None
        content.replay = writer.statements  # canonical lines: no second parse
        return writer

    def _first_load(
        self, graph: str, rdf_file: Path, fmt: str, content: RdfFileContent, graphs: list[str]
    ) -> int:
        """POST the file into the empty ``graphs``, verified; on any failure drop what was posted.

        Returns ``graph``'s size.
        """
        try:
            self.post_file(graph, rdf_file, fmt)
            return _verify(self, graph, content, f"load {rdf_file}")
        except BaseException as err:
            for name in graphs:  # they were empty: leave no half-loaded graph behind
                try:
                    self.update(f"DROP SILENT GRAPH <{name}>")
                except (StoreUnavailableError, ValueError) as cleanup:
                    log.error("could not drop the half-loaded <%s>: %s", name, cleanup)
            raise err

    def _put_with_record(
        self, graph: str, rdf_file: Path, fmt: str, content: RdfFileContent, record: LoadRecord
    ) -> int:
        """One Graph Store PUT (one transaction); the record is dropped first, rewritten after.

        Returns the graph's verified size.
        """
        self.update(record_update(graph, None, rdf_file))
        self.put_graph(graph, rdf_file, fmt)
        count = _verify(self, graph, content, f"load {rdf_file}")
        self.update(record_update(graph, record, rdf_file))
        return count

    def _apply_diff(
        self,
        graph: str,
        rdf_file: Path,
        fmt: str,
        content: RdfFileContent,
        record: LoadRecord,
        stored: LoadRecord | None,
        size: int,
        writer: SnapshotWriter | None,
    ) -> int | None:
        """Send the difference and the new record in one update (a PUT when it is too big).

        Returns the graph's size when a PUT verified it, else None (not verified yet).
        """
        count = None
        diff = self._diff(graph, content, stored, size, writer)
        if diff.blank_nodes:
            self.last_path += " + put"
            count = self._put_with_record(graph, rdf_file, fmt, content, record)
        elif self.put_rebuilds and (
            UPDATE_QUAD_COST * (diff.deleted + diff.inserted) > PUT_RELOAD_COST * len(content.keys)
        ):
            self.last_path += " + put"
            count = self._put_with_record(graph, rdf_file, fmt, content, record)
        else:
            update = (
                (diff.sparql_update() + " ;\n" if diff.deleted or diff.inserted else "")
                + record_update(graph, record, rdf_file)
            ).encode()
            if len(update) > HTTP_UPDATE_MAX_BYTES:
                self.last_path += " + put"
                del update
                count = self._put_with_record(graph, rdf_file, fmt, content, record)  # streamed
            else:
                self.update(update)
        log.info(
            "re-load <%s> (%s): %d triples removed, %d added, the rest unchanged",
            graph,
            self.last_path,
            diff.deleted,
            diff.inserted,
        )
        return count

    def _diff(
        self,
        graph: str,
        content: RdfFileContent,
        stored: LoadRecord | None,
        size: int,
        writer: SnapshotWriter | None,
    ) -> GraphDiff:
        """Diff the file with the snapshot when it matches the store's record, else with a GET."""
        if writer is not None and stored is not None and stored.statements == size:
            old = self._snapshot(graph).files_for(stored)
            if old is not None:
                found = diff_against_snapshot(content, writer.keys, writer.path, old, stored)
                if found is not None:
                    self.last_path = "snapshot diff"
                    return found
                log.warning(
                    "re-load <%s>: the local snapshot does not hold what its record says; "
                    "reading the stored graph back instead", graph,
                )
        if writer is not None:
            log.info(
                "re-load <%s>: no local snapshot matches the store's load record (%s, graph "
                "holds %d); reading the stored graph back", graph, stored, size,
            )
        self.last_path = "GET diff"
        return diff_graph(self._statements([graph]), content)

    def _replace_untracked(
        self, graph: str, rdf_file: Path, fmt: str, expected_triples: int | None
    ) -> int:
        """N-Quads and ``staging_move``: no record kept (an old one is dropped), no snapshot."""
        content = read_rdf_keys(rdf_file, fmt, graph, expected_triples)
        what = f"load {rdf_file}"
        drop_record = record_update(graph, None, rdf_file)  # these paths keep no load record
        if fmt != "nq":  # staging_move
            staging = f"{graph}/staging"
            self.update(f"DROP SILENT GRAPH <{staging}>")
            self.post_file(staging, rdf_file, fmt)
            staged = RdfFileContent(
                content.path, fmt, staging, per_graph={staging: content.per_graph.get(graph, 0)}
            )
            _verify(self, staging, staged, f"stage {rdf_file}")
            self.update(f"{drop_record} ;\nMOVE SILENT GRAPH <{staging}> TO GRAPH <{graph}>")
            return _verify(self, graph, content, what)
        graphs = sorted({graph, *(g for g in content.per_graph if g)})
        if not any(self.graph_size(g) for g in graphs):
            self.update(drop_record)
            return self._first_load(graph, rdf_file, fmt, content, graphs)
        diff = diff_graph(self._statements(graphs), content)
        if diff.blank_nodes:
            raise RdfFileError(
                f"{rdf_file}: N-Quads with blank nodes cannot be re-loaded atomically; "
                "export the product as N-Triples (export.format: nt). The store was not changed"
            )
        update = (
            (diff.sparql_update() + " ;\n" if diff.deleted or diff.inserted else "") + drop_record
        ).encode()
        if len(update) > HTTP_UPDATE_MAX_BYTES:
            raise RdfFileError(
                f"{rdf_file}: the difference with the stored graphs is {len(update)} bytes of "
                f"SPARQL update, above the server's limit ({HTTP_UPDATE_MAX_BYTES}), and N-Quads "
                "cannot be replaced by one Graph Store PUT; export the product as N-Triples "
                "(export.format: nt). The store was not changed"
            )
        self.update(update)
        log.info(
            "re-load <%s>: %d triples removed, %d added, the rest unchanged",
            graph,
            diff.deleted,
            diff.inserted,
        )
        return _verify(self, graph, content, what)

    def _statements(self, graphs: list[str]) -> Iterator[tuple[str, str, bool]]:
        """Stream the stored triples of ``graphs`` (Graph Store GET, N-Triples)."""
        import pyoxigraph as ox

        url = self.cfg.endpoint("store")
        for name in graphs:

            def action(name: str = name) -> Any:
                response = self.session.get(
                    url,
                    params={"graph": name},
                    headers={"Accept": "application/n-triples"},
                    timeout=self.cfg.timeout_s,
                    stream=True,
                )
                if response.status_code == 404:
                    return None
                return _check(response, f"read <{name}>")

            response = with_retries(
                action,
                what=f"read <{name}>",
                url=url,
                retries=self.cfg.retries,
                backoff_s=self.cfg.backoff_s,
            )
            if response is None:
                continue
            with response:
                response.raw.decode_content = True
                for triple in ox.parse(input=response.raw, format=ox.RdfFormat.N_TRIPLES):
                    yield str(triple), name, has_blank_node(triple)

    def put_graph(self, graph: str, rdf_file: Path, fmt: str) -> None:
        """Replace ``graph`` by the file in one Graph Store PUT (one transaction on Oxigraph)."""
        url = self.cfg.endpoint("store")
        timeout = self._timeout(rdf_file.stat().st_size)

        def action() -> Any:
            with rdf_file.open("rb") as body:
                return _check(
                    self.session.put(
                        url,
                        params={"graph": graph},
                        data=body,
                        headers={"Content-Type": CONTENT_TYPES[fmt]},
                        timeout=timeout,
                    ),
                    f"replace <{graph}> with {rdf_file}",
                )

        with_retries(
            action,
            what=f"PUT {rdf_file}",
            url=url,
            retries=self.cfg.retries,
            backoff_s=self.cfg.backoff_s,
        )

    def drop_graph(self, graph: str) -> None:
        """Empty and drop ``graph`` and its load record (batched deletes with ``oxigraph_bulk``)."""
        if self.cfg.oxigraph_bulk:
            clear_graph_in_batches(graph, self.query, self.update)
        self.update(f"DROP SILENT GRAPH <{record_graph(graph)}> ;\nDROP SILENT GRAPH <{graph}>")

    def post_file(self, graph: str, rdf_file: Path, fmt: str) -> None:
        """POST the file into ``graph`` (N-Quads: their own graphs) in parallel line chunks."""
        url = self.cfg.endpoint("store")
        params = {} if fmt == "nq" else {"graph": graph}
        headers = {"Content-Type": CONTENT_TYPES[fmt]}
        if fmt == "ttl":
            self._post(
                url, f"load {rdf_file}", params=params, headers=headers, data=rdf_file.read_bytes()
            )
            return
        if self.cfg.oxigraph_bulk:
            # no `lenient`: a chunk with a bad line must fail the load, not be skipped in part
            params = {**params, "no_transaction": ""}
        from tqdm import tqdm

        pending: set[Future[Any]] = set()
        with (
            ThreadPoolExecutor(self.cfg.parallel_requests) as pool,
            rdf_file.open("rb") as fh,
            tqdm(
                total=rdf_file.stat().st_size,
                desc=f"load {rdf_file.name}",
                unit="B",
                unit_scale=True,
                mininterval=2.0,
                leave=False,
            ) as progress,
        ):
            for index, chunk in enumerate(iter_line_chunks(fh, self.cfg.chunk_triples)):
                if len(pending) >= 2 * self.cfg.parallel_requests:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        future.result()
                progress.update(len(chunk))
                pending.add(
                    pool.submit(
                        self._post,
                        url,
                        f"load {rdf_file} chunk {index}",
                        params=params,
                        headers=headers,
                        data=chunk,
                    )
                )
            for future in pending:
                future.result()

    def query(self, sparql: str, **kwargs: Any) -> Any:
        """Run a query; SELECT/ASK answers are parsed into pyoxigraph solutions."""
        import pyoxigraph as ox

        if kwargs.get("custom_functions"):
            raise ValueError(
                "this query needs eeflow's custom GeoSPARQL functions, which run only on the "
                "embedded store; query the embedded store, or fetch candidates from the server"
            )
        response = self._post(
            self.cfg.endpoint("query"),
            "SPARQL query",
            data={"query": sparql},
            headers={"Accept": "application/sparql-results+json"},
        )
        self.put_rebuilds = response.headers.get(REBUILD_HEADER, "") == "rebuild"
        return ox.parse_query_results(response.content, ox.QueryResultsFormat.JSON)

    def graph_size(self, graph: str) -> int:
        """Count the triples in ``graph``."""
        rows = list(
            self.query(f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}")
        )
        return int(rows[0]["n"].value)

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()


def open_store(cfg: LinkedDataConfig, read_only: bool = False) -> TripleStore:
    """Open the configured store (``cfg`` is a LinkedDataConfig)."""
    if cfg.store.mode == "http":
        # snapshots of loaded graphs live beside the data root's other linked-data state
        state = None if cfg.is_remote_root() else cfg.resolved_root() / SNAPSHOT_FOLDER
        return HttpStore(cfg.store, state_dir=state)
    path = Path(cfg.store.path)
    if not path.is_absolute():
        path = cfg.resolved_root() / path
    return EmbeddedStore(path, read_only=read_only)


def load_product(
    cfg: LinkedDataConfig,
    product: str,
    run_key: str,
    rdf_path: str | Path | None = None,
    graph: str | None = None,
    store: TripleStore | None = None,
    entail: bool = False,
) -> dict[str, Any]:
    """Load an exported product run into its named graph, replacing what that graph held.

    With ``entail`` (``eeflow rdf load`` sets it) the graph's RDFS / GeoSPARQL entailment is then
    materialised into ``{graph}/entailed`` (see ``tasks/linked_data/geosparql/entailment.py``).

    Args:
        cfg: a validated LinkedDataConfig (store mode, paths, HTTP settings).
        product: the product type.
        run_key: which export (``{root}/linked_data/rdf/{run_key}/{product}/``).
        rdf_path: the RDF file; default: the one named in that folder's manifest.
        graph: the named graph; default: the graph IRI in the export's manifest.
        store: an open store to use (default: open the configured one and close it after).
        entail: materialise the entailment companion graph after the load.

    Returns:
        ``{"graph": IRI, "triples": graph size after the load, "seconds": s, "store": ...,
        "entailed": triples in {graph}/entailed}``.

    """
    from tasks.naming import safe_name
    from tasks.storage import read_manifest, stage_dir

    export_dir = stage_dir(
        cfg.resolved_root(), "linked_data", "rdf", safe_name("run_key", run_key)
    ) / safe_name("product", product)
    expected: int | None = None
    if rdf_path is None or graph is None:
        manifest = read_manifest(export_dir)
        if rdf_path is None:
            rdf_path = export_dir / safe_name("rdf_file", manifest["rdf_file"])
            counted = (manifest.get("counts") or {}).get("triples")
            expected = int(counted) if counted is not None else None
        graph = graph or manifest["graph"]
    rdf_file = Path(rdf_path)
    if not rdf_file.is_file():
        raise FileNotFoundError(
            f"RDF file {rdf_file} does not exist; run `eeflow rdf export` first"
        )
    fmt = FORMAT_BY_SUFFIX.get(rdf_file.suffix)
    if fmt is None:
        raise ValueError(f"{rdf_file}: unknown RDF suffix; allowed: {sorted(FORMAT_BY_SUFFIX)}")
    own = store is None
    target = store or open_store(cfg)
    started = time.perf_counter()
    try:
        triples = target.replace_graph(graph, rdf_file, fmt, expected)
        from tasks.linked_data.geosparql.entailment import drop_entailment, materialise

        if entail:
            entailed = materialise(target, graph)
        else:  # an entailment of the previous load would no longer match the graph
            drop_entailment(target, graph)
    finally:
        if own:
            target.close()
    seconds = time.perf_counter() - started
    log.info("loaded %s triples into <%s> in %.2fs (%s)", triples, graph, seconds, cfg.store.mode)
    return {
        "graph": graph,
        "triples": triples,
        "seconds": round(seconds, 3),
        "store": cfg.store.mode,
        "rdf": str(rdf_file),
        "entailed": entailed if entail else 0,
    }
