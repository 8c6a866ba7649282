"""What an HTTP load put into a graph: a record in the store and a snapshot beside the data root.

A re-load over HTTP used to read the whole stored graph back (Graph Store ``GET``), parse it and
diff it with the file. Two pieces of state make the common re-loads cheap:

* **The load record**, stored in the server in the companion graph ``<{graph}/eeflow-load>``
  (:func:`record_graph`): one subject, the data graph's IRI, with

  - ``eeo:loadDigest``: the content digest of the file last loaded (:func:`content_digest`, an
    order-independent digest of its distinct statements, so a re-ordered but equal file has the
    same digest),
  - ``eeo:loadStatements``: its distinct statement count, ``eeo:loadedAt`` (``xsd:dateTime``,
    UTC) and ``eeo:loadedFrom`` (the file's path).

  It is written in the same SPARQL update as a re-load's difference (one transaction), or after a
  first load's verified POSTs; a Graph Store ``PUT`` cannot carry it, so the record is dropped
  before the ``PUT`` and written after it is verified. A query over the data graph
  (``GRAPH <graph> { ... }``) never sees it; a query over the union default graph sees these
  four triples per loaded graph (``FILTER(!STRENDS(STR(?g), "/eeflow-load"))`` leaves them out).
* **The snapshot** (:class:`LoadSnapshot`): the canonical N-Triples text of every statement
  loaded, in ``{data_root}/linked_data/http_loads/`` (one file per server and graph, named by a
  hash of both, plus a small JSON naming the current file, its digest and count; both written
  atomically: the JSON is replaced last). A re-load whose snapshot digest equals the store's
  record (and whose graph COUNT equals the record's count) diffs the new file against the
  snapshot on this machine and sends one update; anything else (no snapshot, another client
  loaded since, the graph edited) falls back to the ``GET``.

The digest is a multiset hash (the sum of the 128-bit statement keys modulo 2**128, hashed with
the count): cheap and order-independent, made for detecting changed content, not for adversaries.
An edit that bypasses the loader and keeps the graph's triple count is not seen by a same-file
re-load; such writers should drop ``<{graph}/eeflow-load>`` (``HttpStore.drop_graph`` does).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from tasks.linked_data.namespaces import EEO, XSD

log = logging.getLogger(__name__)

#: Suffix of the companion graph holding a data graph's load record.
RECORD_SUFFIX = "/eeflow-load"
DIGEST = EEO + "loadDigest"
STATEMENTS = EEO + "loadStatements"
LOADED_AT = EEO + "loadedAt"
LOADED_FROM = EEO + "loadedFrom"
#: Folder of the snapshots under the data root.
SNAPSHOT_FOLDER = "linked_data/http_loads"


def record_graph(graph: str) -> str:
    """IRI of the graph holding ``graph``'s load record."""
    return graph + RECORD_SUFFIX


def content_digest(keys: Collection[bytes]) -> str:
    """Order-independent digest of distinct 16-byte statement keys (hex, 32 characters).

    The keys are summed as 128-bit integers modulo 2**128 (a multiset hash: ~0.1 s for 2 M keys,
    against ~0.7 s to sort them), then hashed with their count.
    """
    import numpy as np

    words = np.frombuffer(b"".join(keys), dtype="<u4").reshape(-1, 4)
    sums = words.sum(axis=0, dtype=np.uint64)  # exact below 2**32 keys
    total = sum(int(value) << (32 * index) for index, value in enumerate(sums)) % (1 << 128)
    return hashlib.blake2b(f"{len(keys)}:{total:032x}".encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class LoadRecord:
    """A graph's load record: the digest and distinct statement count of the file last loaded."""

    digest: str
    statements: int


def record_query(graph: str) -> str:
    """SELECT of ``graph``'s record (one row when there is exactly one record)."""
    return (
        f"SELECT ?d ?n WHERE {{ GRAPH <{record_graph(graph)}> {{ <{graph}> <{DIGEST}> ?d ; "
        f"<{STATEMENTS}> ?n }} }}"
    )


def parse_record(rows: list[Any]) -> LoadRecord | None:
    """Read the record from :func:`record_query`'s rows; None unless there is exactly one."""
    if len(rows) != 1:
        if rows:
            log.warning("%d load records for one graph: ignored (a full diff follows)", len(rows))
        return None
    try:
        return LoadRecord(str(rows[0]["d"].value), int(rows[0]["n"].value))
    except (KeyError, ValueError):
        return None


def record_update(graph: str, record: LoadRecord | None, source: Path | str) -> str:
    """SPARQL update that removes ``graph``'s record and, with ``record``, writes the new one."""
    import pyoxigraph as ox

    target = record_graph(graph)
    integer = ox.NamedNode(XSD + "integer")
    drop = f"DELETE WHERE {{ GRAPH <{target}> {{ <{graph}> ?p ?o }} }}"
    if record is None:
        return drop
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (
        f"{drop} ;\nINSERT DATA {{ GRAPH <{target}> {{ <{graph}> "
        f"<{DIGEST}> {ox.Literal(record.digest)} ; "
        f"<{STATEMENTS}> {ox.Literal(str(record.statements), datatype=integer)} ; "
        f"<{LOADED_AT}> {ox.Literal(now, datatype=ox.NamedNode(XSD + 'dateTime'))} ; "
        f"<{LOADED_FROM}> {ox.Literal(str(source))} }} }}"
    )


def has_blank_node(statement: Any) -> bool:
    """Whether a pyoxigraph triple or quad has a blank node as subject or object."""
    import pyoxigraph as ox

    return isinstance(statement.subject, ox.BlankNode) or isinstance(statement.object, ox.BlankNode)


def has_blank_node_text(text: str) -> bool:
    """Whether an N-Triples statement may name a blank node (a literal holding " _:" counts too)."""
    return text.startswith("_:") or " _:" in text


class SnapshotWriter:
    """Collects the statements of a file being parsed into a temporary snapshot.

    Two files: the statements, one line each (graph IRI, a tab, canonical N-Triples text; the IRI
    left empty for the snapshot's own graph), and their 16-byte statement keys in the same order
    (``.keys``), so a later diff compares keys without hashing the text again.
    """

    def __init__(self, snapshot: LoadSnapshot) -> None:
        self.snapshot = snapshot
        snapshot.folder.mkdir(parents=True, exist_ok=True)
        self.path = snapshot.folder / f".{snapshot.name}.{uuid.uuid4().hex[:8]}.tmp"
        self._fh: BinaryIO | None = self.path.open("wb", buffering=1 << 20)
        #: the statement keys, in the order of the lines
        self.keys: list[bytes] = []
        self.committed = False
        self.failed = False

    def add(self, text: str, graph: str, key: bytes) -> None:
        """Append one distinct statement (canonical N-Triples text) of ``graph`` and its key."""
        if self._fh is None:  # failed before
            return
        try:
            named = "" if graph == self.snapshot.graph else graph
            self._fh.write(f"{named}\t{text}\n".encode())
            self.keys.append(key)
        except OSError as err:  # a full disk must not fail the load: no snapshot this time
            log.warning("cannot write the snapshot %s: %s", self.path, err)
            self.failed = True
            self.discard()

    def close(self) -> None:
        """Finish writing (the file stays temporary until :meth:`commit`)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def statements(self) -> Iterator[tuple[str, str, bool]]:
        """Read the written statements back (after :meth:`close`)."""
        return _read_lines(self.path, self.snapshot.graph)

    def commit(self, record: LoadRecord) -> None:
        """Make this the graph's snapshot: files renamed, then the JSON replaced (atomic)."""
        self.close()
        final = self.snapshot.folder / f"{self.snapshot.name}.{record.digest}.nt"
        keys = self.path.with_suffix(".keys")
        keys.write_bytes(b"".join(self.keys))
        os.replace(keys, final.with_suffix(".keys"))
        os.replace(self.path, final)
        previous = self.snapshot.current()
        meta = {"file": final.name, "digest": record.digest, "statements": record.statements,
                "graph": self.snapshot.graph, "store": self.snapshot.store_url}
        tmp = self.snapshot.meta.with_name(f".{self.snapshot.meta.name}.{uuid.uuid4().hex[:8]}")
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, self.snapshot.meta)
        if previous is not None and previous[0] != final:
            previous[0].unlink(missing_ok=True)
            previous[0].with_suffix(".keys").unlink(missing_ok=True)
        self.committed = True

    def discard(self) -> None:
        """Remove the temporary file (a failed load, or a snapshot that is already current)."""
        try:
            self.close()
        except OSError:  # the disk filled up while flushing
            self.failed = True
        self.path.unlink(missing_ok=True)
        self.path.with_suffix(".keys").unlink(missing_ok=True)


class LoadSnapshot:
    """The local snapshot of what the last load put into ``graph`` on the server ``store_url``."""

    def __init__(self, folder: Path, store_url: str, graph: str) -> None:
        self.folder = Path(folder)
        self.store_url = store_url
        self.graph = graph
        self.name = hashlib.blake2b(f"{store_url} {graph}".encode(), digest_size=12).hexdigest()
        self.meta = self.folder / f"{self.name}.json"

    def current(self) -> tuple[Path, LoadRecord] | None:
        """Return the statements file and the record it was written for; None if there is none."""
        try:
            meta = json.loads(self.meta.read_text())
            path = self.folder / str(meta["file"])
            record = LoadRecord(str(meta["digest"]), int(meta["statements"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if meta.get("graph") != self.graph or meta.get("store") != self.store_url:
            return None
        whole = path.is_file() and path.with_suffix(".keys").is_file()
        return (path, record) if whole else None

    def writer(self) -> SnapshotWriter:
        """Start the snapshot of the file about to be loaded."""
        return SnapshotWriter(self)

    def files_for(self, record: LoadRecord) -> Path | None:
        """Return the statements file if the snapshot is of ``record`` (its keys beside it)."""
        found = self.current()
        return None if found is None or found[1] != record else found[0]


def read_keys(path: Path) -> list[bytes]:
    """Read the 16-byte statement keys of a snapshot's ``.keys`` file, in line order."""
    blob = path.read_bytes()
    return [blob[start : start + 16] for start in range(0, len(blob), 16)]


def read_selected_lines(
    path: Path, wanted: Collection[int], graph: str
) -> Iterator[tuple[int, str, str]]:
    """Yield (line index, graph IRI, statement text) of the lines of ``path`` in ``wanted``.

    ``graph`` is the snapshot's own graph (the lines leave its IRI empty).
    """
    chosen = wanted if isinstance(wanted, set | frozenset) else set(wanted)
    with path.open("rb") as fh:
        for index, raw in enumerate(fh):
            if index in chosen:
                named, _, text = raw.decode().rstrip("\n").partition("\t")
                yield index, named or graph, text


def _read_lines(path: Path, graph: str) -> Iterator[tuple[str, str, bool]]:
    with path.open("rb") as fh:
        for raw in fh:
            named, _, text = raw.decode().rstrip("\n").partition("\t")
            yield text, named or graph, has_blank_node_text(text)

