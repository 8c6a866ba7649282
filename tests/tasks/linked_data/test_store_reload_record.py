"""HTTP re-loads with the load record in the store and the local snapshot (issue 17, P6).

Against `oxigraph serve` on 127.0.0.1: an identical file sends nothing (no GET, no update), a
changed file is diffed against the snapshot (no GET) and applied with the new record in one
update, and a stale snapshot or an edited graph falls back to reading the graph back.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks.config.linked_data import LinkedDataConfig, StoreConfig
from tasks.linked_data.load_record import (
    LoadRecord,
    LoadSnapshot,
    content_digest,
    record_graph,
)
from tasks.linked_data.store import HttpStore, open_store, read_rdf_keys

pytestmark = pytest.mark.integration


def _lines(prefix: str, count: int) -> list[str]:
    return [
        f'<https://x.org/{prefix}{i}> <https://x.org/p{i % 5}> "{prefix}{i}" .\n'
        for i in range(count)
    ]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(lines))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tasks.linked_data.server import OxigraphServer

    with OxigraphServer(tmp_path_factory.mktemp("oxigraph")) as running:
        yield running


class Counting(HttpStore):
    """An HttpStore that counts its Graph Store GETs and keeps its SPARQL updates."""

    def __init__(self, cfg: StoreConfig, state_dir: Path | None) -> None:
        super().__init__(cfg, state_dir=state_dir)
        self.gets = 0
        self.updates: list[str] = []
        original_get = self.session.get

        def get(*args: Any, **kwargs: Any) -> Any:
            self.gets += 1
            return original_get(*args, **kwargs)

        self.session.get = get  # type: ignore[method-assign]

    def update(self, sparql: str | bytes) -> None:
        self.updates.append(sparql.decode() if isinstance(sparql, bytes) else sparql)
        super().update(sparql)

    def reset(self) -> None:
        self.gets, self.updates = 0, []


def _store(server: Any, state: Path | None, **settings: Any) -> Counting:
    cfg = StoreConfig(**{"mode": "http", "url": server.url, "retries": 0,
                         "atomic_max_triples": 0, "chunk_triples": 1000, **settings})
    return Counting(cfg, state)


def _stored(store: HttpStore, graph: str) -> list[str]:
    return sorted(text for text, _, _ in store._statements([graph]))


def _expected(path: Path, graph: str) -> list[str]:
    return sorted({text for text, _, _ in read_rdf_keys(path, "nt", graph).statements_again()})


def test_identical_or_reordered_file_sends_nothing(server, tmp_path):
    graph = "https://x.org/g/same"
    lines = _lines("s", 3000)
    first = _write(tmp_path / "first.nt", lines)
    reordered = _write(tmp_path / "reordered.nt", lines[::-1] + lines[:10])  # + duplicates
    store = _store(server, tmp_path / "state")
    assert store.replace_graph(graph, first, "nt") == 3000
    assert store.last_path == "first load"
    assert store.load_record(graph) == LoadRecord(
        content_digest(read_rdf_keys(first, "nt", graph).keys), 3000
    )
    store.reset()
    assert store.replace_graph(graph, reordered, "nt") == 3000
    assert (store.last_path, store.gets, store.updates) == ("same content", 0, [])
    assert _stored(store, graph) == _expected(first, graph)
    store.close()


def test_changed_file_is_diffed_against_the_snapshot_in_one_update(server, tmp_path):
    graph = "https://x.org/g/changed"
    old = _write(tmp_path / "old.nt", _lines("s", 3000))
    new = _write(tmp_path / "new.nt", _lines("s", 2700) + _lines("t", 500))
    store = _store(server, tmp_path / "state")
    store.replace_graph(graph, old, "nt")
    store.reset()
    assert store.replace_graph(graph, new, "nt") == 3200
    assert (store.last_path, store.gets) == ("snapshot diff", 0)
    assert len(store.updates) == 1  # the difference and the new record: one transaction
    update = store.updates[0]
    assert update.count("DELETE DATA") == 1 and update.count("INSERT DATA") == 2
    assert record_graph(graph) in update and "s2999" in update and "t499" in update
    assert '"s2699"' not in update  # unchanged triples are not sent
    assert _stored(store, graph) == _expected(new, graph)
    assert store.load_record(graph) == LoadRecord(
        content_digest(read_rdf_keys(new, "nt", graph).keys), 3200
    )
    store.close()


def test_rerun_is_idempotent_and_keeps_one_snapshot(server, tmp_path):
    graph = "https://x.org/g/rerun"
    old = _write(tmp_path / "old.nt", _lines("s", 2000))
    new = _write(tmp_path / "new.nt", _lines("s", 1000) + _lines("u", 300))
    state = tmp_path / "state"
    store = _store(server, state)
    store.replace_graph(graph, old, "nt")
    store.replace_graph(graph, new, "nt")
    expected = _expected(new, graph)
    for _ in range(2):
        store.reset()
        assert store.replace_graph(graph, new, "nt") == 1300
        assert (store.last_path, store.gets, store.updates) == ("same content", 0, [])
    assert _stored(store, graph) == expected
    files = sorted((p.name for p in state.iterdir()), key=lambda name: name.rsplit(".", 1)[1])
    assert [name.rsplit(".", 1)[1] for name in files] == ["json", "keys", "nt"]  # no temp, no old
    meta = json.loads((state / files[0]).read_text())
    assert meta["file"] == files[2] and meta["statements"] == 1300 and meta["graph"] == graph
    assert (state / files[2]).read_text().count("\n") == 1300
    first_line = '\t<https://x.org/s0> <https://x.org/p0> "s0"\n'  # own graph left out
    assert (state / files[2]).read_text().startswith(first_line)
    assert (state / files[1]).stat().st_size == 1300 * 16
    store.close()


def test_edited_graph_falls_back_to_reading_it_back(server, tmp_path):
    graph = "https://x.org/g/edited"
    old = _write(tmp_path / "old.nt", _lines("s", 2000))
    new = _write(tmp_path / "new.nt", _lines("s", 1900) + _lines("v", 50))
    store = _store(server, tmp_path / "state")
    store.replace_graph(graph, old, "nt")
    store.update(f'INSERT DATA {{ GRAPH <{graph}> {{ <https://x.org/x> <https://x.org/p> "x" }} }}')
    store.reset()
    assert store.replace_graph(graph, new, "nt") == 1950  # the count no longer matches: GET
    assert (store.last_path, store.gets) == ("GET diff", 1)
    assert _stored(store, graph) == _expected(new, graph)  # the edit is gone too
    store.reset()
    store.update(f'INSERT DATA {{ GRAPH <{graph}> {{ <https://x.org/x> <https://x.org/p> "x" }} }}')
    assert store.replace_graph(graph, new, "nt") == 1950  # same file, edited graph: not skipped
    assert store.last_path == "GET diff"
    assert _stored(store, graph) == _expected(new, graph)
    store.close()


def test_load_by_another_client_or_a_corrupt_snapshot_falls_back(server, tmp_path):
    graph = "https://x.org/g/other"
    a = _write(tmp_path / "a.nt", _lines("s", 2000))
    b = _write(tmp_path / "b.nt", _lines("s", 1500) + _lines("w", 400))
    c = _write(tmp_path / "c.nt", _lines("s", 1000) + _lines("y", 100))
    mine, theirs = _store(server, tmp_path / "mine"), _store(server, tmp_path / "theirs")
    mine.replace_graph(graph, a, "nt")
    theirs.replace_graph(graph, b, "nt")  # no snapshot there: reads the graph back
    assert theirs.last_path == "GET diff"
    mine.reset()
    assert mine.replace_graph(graph, c, "nt") == 1100  # my snapshot is of a, the record of b
    assert (mine.last_path, mine.gets) == ("GET diff", 1)
    assert _stored(mine, graph) == _expected(c, graph)
    # my snapshot is now c's: damage it (same line count, so only the digest can tell)
    snapshot = LoadSnapshot(tmp_path / "mine", mine.cfg.endpoint("store"), graph).current()
    assert snapshot is not None
    text = snapshot[0].read_text()
    snapshot[0].write_text(text.replace('"y7"', '"y7 changed"'))
    mine.reset()
    assert mine.replace_graph(graph, a, "nt") == 2000
    assert (mine.last_path, mine.gets) == ("GET diff", 1)
    assert _stored(mine, graph) == _expected(a, graph)
    # now damage the keys: one key swapped for another, the count unchanged
    snapshot = LoadSnapshot(tmp_path / "mine", mine.cfg.endpoint("store"), graph).current()
    assert snapshot is not None
    keys = snapshot[0].with_suffix(".keys")
    blob = keys.read_bytes()
    keys.write_bytes(blob[:16] + bytes(16) + blob[32:])
    mine.reset()
    assert mine.replace_graph(graph, c, "nt") == 1100
    assert (mine.last_path, mine.gets) == ("GET diff", 1)
    assert _stored(mine, graph) == _expected(c, graph)
    mine.reset()  # that load wrote a good snapshot again
    assert mine.replace_graph(graph, b, "nt") == 1900
    assert (mine.last_path, mine.gets) == ("snapshot diff", 0)
    assert _stored(mine, graph) == _expected(b, graph)
    mine.close()
    theirs.close()


def test_readers_see_the_record_change_with_the_data(server, tmp_path):
    """A reader's one query over both graphs always finds the record's count = the graph's."""
    import requests

    graph = "https://x.org/g/atomic"
    files = [_write(tmp_path / f"f{k}.nt", _lines("s", 3000 - 500 * k) + _lines(f"k{k}_", 300))
             for k in range(3)]
    store = _store(server, tmp_path / "state")
    store.replace_graph(graph, files[0], "nt")
    query = (
        "SELECT ?n ?recorded WHERE { "
        f"{{ SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }} }} "
        f"GRAPH <{record_graph(graph)}> {{ <{graph}> "
        "<https://w3id.org/eeflow/ontology#loadStatements> ?recorded } }"
    )
    seen: set[tuple[int, int]] = set()
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            rows = requests.post(f"{server.url}/query", data={"query": query},
                                 headers={"Accept": "application/sparql-results+json"},
                                 timeout=30).json()["results"]["bindings"]
            for row in rows:
                seen.add((int(row["n"]["value"]), int(row["recorded"]["value"])))

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for path in [*files[1:], files[0], files[2]]:
            store.replace_graph(graph, path, "nt")
            assert store.last_path == "snapshot diff"
    finally:
        stop.set()
        reader.join()
    assert seen and all(n == recorded for n, recorded in seen), seen
    store.close()


def test_rejected_update_keeps_old_data_and_old_record(server, tmp_path, monkeypatch):
    graph = "https://x.org/g/rejected"
    old = _write(tmp_path / "old.nt", _lines("s", 1000))
    new = _write(tmp_path / "new.nt", _lines("s", 900) + _lines("z", 10))
    store = _store(server, tmp_path / "state")
    store.replace_graph(graph, old, "nt")
    before = store.load_record(graph)
    original = HttpStore.update

    def reject(self: HttpStore, sparql: str | bytes) -> None:
        if b"DELETE DATA" in (sparql if isinstance(sparql, bytes) else sparql.encode()):
            raise ValueError("SPARQL update: the store answered 500: disk full")
        original(self, sparql)

    monkeypatch.setattr(HttpStore, "update", reject)
    with pytest.raises(ValueError, match="disk full"):
        store.replace_graph(graph, new, "nt")
    monkeypatch.setattr(HttpStore, "update", original)
    assert store.load_record(graph) == before
    assert _stored(store, graph) == _expected(old, graph)
    snapshots = LoadSnapshot(tmp_path / "state", store.cfg.endpoint("store"), graph).current()
    assert snapshots is not None and snapshots[1] == before  # the snapshot is still the old one
    assert [p for p in (tmp_path / "state").iterdir() if p.name.endswith(".tmp")] == []
    store.reset()
    assert store.replace_graph(graph, new, "nt") == 910
    assert store.last_path == "snapshot diff"
    store.close()


def test_large_difference_goes_by_put_and_the_record_follows(server, tmp_path, monkeypatch):
    graph = "https://x.org/g/put"
    old = _write(tmp_path / "old.nt", _lines("s", 1500))
    new = _write(tmp_path / "new.nt", _lines("t", 1200))
    monkeypatch.setattr("tasks.linked_data.store.HTTP_UPDATE_MAX_BYTES", 20_000)
    store = _store(server, tmp_path / "state")
    store.replace_graph(graph, old, "nt")
    store.reset()
    assert store.replace_graph(graph, new, "nt") == 1200
    assert (store.last_path, store.gets) == ("snapshot diff + put", 0)
    assert store.updates[0].startswith("DELETE WHERE")  # record dropped before the PUT
    assert store.load_record(graph) == LoadRecord(
        content_digest(read_rdf_keys(new, "nt", graph).keys), 1200
    )
    assert _stored(store, graph) == _expected(new, graph)
    store.reset()
    assert store.replace_graph(graph, new, "nt") == 1200
    assert (store.last_path, store.updates) == ("same content", [])
    store.close()


def test_without_a_state_folder_the_record_still_skips_identical_files(server, tmp_path):
    graph = "https://x.org/g/nostate"
    old = _write(tmp_path / "old.nt", _lines("s", 1000))
    new = _write(tmp_path / "new.nt", _lines("s", 800))
    store = _store(server, None)
    store.replace_graph(graph, old, "nt")
    store.reset()
    assert store.replace_graph(graph, old, "nt") == 1000
    assert (store.last_path, store.gets, store.updates) == ("same content", 0, [])
    assert store.replace_graph(graph, new, "nt") == 800
    assert (store.last_path, store.gets) == ("GET diff", 1)
    store.drop_graph(graph)
    assert store.load_record(graph) is None and store.graph_size(graph) == 0
    store.close()


def test_small_files_by_put_and_nquads_keep_the_record_right(server, tmp_path):
    graph = "https://x.org/g/small"
    old = _write(tmp_path / "old.nt", _lines("s", 50))
    new = _write(tmp_path / "new.nt", _lines("s", 40))
    store = _store(server, tmp_path / "state", atomic_max_triples=100)
    store.replace_graph(graph, old, "nt")
    assert store.last_path == "put" and store.load_record(graph) is not None
    store.reset()
    assert store.replace_graph(graph, old, "nt") == 50
    assert (store.last_path, store.updates) == ("same content", [])
    quads = tmp_path / "new.nq"
    quads.write_text(new.read_text().replace(" .\n", f" <{graph}> .\n"))
    assert store.replace_graph(graph, quads, "nq") == 40
    assert store.last_path == "untracked" and store.load_record(graph) is None
    assert store.replace_graph(graph, old, "nt") == 50  # no record: not skipped
    assert store.last_path == "put" and _stored(store, graph) == _expected(old, graph)
    store.close()


def test_open_store_keeps_snapshots_under_the_data_root(tmp_path):
    cfg = LinkedDataConfig(data_root=str(tmp_path / "data"), store={"mode": "http"})
    store = open_store(cfg)
    assert isinstance(store, HttpStore)
    assert store.state_dir == tmp_path / "data" / "linked_data" / "http_loads"
    store.close()


def test_content_digest_ignores_order_and_sees_any_change():
    keys = [bytes([i]) * 16 for i in range(200)]
    assert content_digest(keys) == content_digest(list(reversed(keys)))
    assert content_digest(keys) != content_digest(keys[1:])
    assert content_digest(keys) != content_digest([*keys[1:], bytes([250]) * 16])
    assert content_digest([]) != content_digest([bytes(16)])  # the count is part of it


def test_snapshot_that_cannot_be_written_does_not_fail_the_load(server, tmp_path, monkeypatch):
    from tasks.linked_data import load_record

    graph = "https://x.org/g/nodisk"
    old = _write(tmp_path / "old.nt", _lines("s", 1000))
    new = _write(tmp_path / "new.nt", _lines("s", 900))
    blocked = _write(tmp_path / "state", [])  # a file where the folder should be
    store = _store(server, blocked)
    assert store.replace_graph(graph, old, "nt") == 1000 and store.last_path == "first load"
    state = tmp_path / "state2"
    store.state_dir = state
    original = load_record.SnapshotWriter.__init__

    class FullDisk:
        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

        def close(self) -> None:
            pass

    def full_disk(self: Any, snapshot: Any) -> None:
        original(self, snapshot)
        self._fh.close()
        self._fh = FullDisk()

    monkeypatch.setattr(load_record.SnapshotWriter, "__init__", full_disk)
    store.reset()
    assert store.replace_graph(graph, new, "nt") == 900
    assert (store.last_path, store.gets) == ("GET diff", 1)  # no snapshot to diff against
    assert list(state.iterdir()) == []  # the partial snapshot was removed
    assert _stored(store, graph) == _expected(new, graph)
    store.close()
