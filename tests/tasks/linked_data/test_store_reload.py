"""Re-loads that change most of a graph: the embedded store is rebuilt and swapped in atomically.

Also checks what the HTTP path relies on: Oxigraph's Graph Store ``PUT`` is one transaction.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tasks.linked_data import store_swap
from tasks.linked_data.store import (
    REBUILD_COPY_COST,
    EmbeddedStore,
    StoreLockedError,
    rebuild_is_cheaper,
)
from tests.tasks.linked_data.store_readers import graph_sizes_seen

REPO = Path(__file__).resolve().parents[3]
GRAPH = "https://x.org/daily"
OTHER = "https://x.org/other"
EMPTY = "https://x.org/empty"


def _write(path: Path, prefix: str, count: int) -> Path:
    path.write_text("".join(
        f'<https://x.org/{prefix}{i}> <https://x.org/p{i % 5}> "{prefix}{i}" .\n'
        for i in range(count)
    ))
    return path


def _graph(store: EmbeddedStore, graph: str) -> list[str]:
    import pyoxigraph as ox

    node = ox.DefaultGraph() if graph == "" else ox.NamedNode(graph)
    return sorted(str(q) for q in store.store.quads_for_pattern(None, None, None, node))


def _store_with_neighbours(path: Path) -> EmbeddedStore:
    """A store holding another named graph, a default-graph triple and an empty named graph."""
    import pyoxigraph as ox

    store = EmbeddedStore(path)
    store.store.update(
        f'INSERT DATA {{ GRAPH <{OTHER}> {{ <https://x.org/a> <https://x.org/b> "keep" . '
        '<https://x.org/a> <https://x.org/b> _:blank } '
        '<https://x.org/d> <https://x.org/b> "default" }'
    )
    store.store.add_graph(ox.NamedNode(EMPTY))
    return store


# --- the cost model that picks diff or rebuild -----------------------------------------------


def test_small_changes_are_applied_in_place_whatever_the_store_holds():
    calls: list[int] = []
    assert not rebuild_is_cheaper(10_000, 10_000, 0.04, lambda limit: calls.append(limit) or 0)
    assert calls == []  # below the minimum changed share the store is not even counted


def test_every_triple_changed_rebuilds_unless_other_graphs_are_too_big():
    limits: list[int] = []

    def others(count: int):
        def counter(limit: int) -> int:
            limits.append(limit)
            return min(count, limit)
        return counter

    # diff cost = 1.3*1000 + 0.6*1000 + 4.0*(1000 + 1000) = 9,900; rebuild = 1000 + 1.9*others
    budget = (9900 - 1000) / REBUILD_COPY_COST
    assert rebuild_is_cheaper(1000, 1000, 1.0, others(0))
    assert limits == [int(budget) + 1]  # counting stops just past the break-even point
    assert rebuild_is_cheaper(1000, 1000, 1.0, others(int(budget)))
    assert not rebuild_is_cheaper(1000, 1000, 1.0, others(int(budget) + 1))
    assert not rebuild_is_cheaper(1000, 1000, 1.0, others(10**9))


# --- rebuild + swap on the embedded store ----------------------------------------------------


@pytest.mark.parametrize("reload", ["auto", "rebuild"])
def test_rebuild_replaces_graph_and_keeps_every_other_graph(tmp_path, reload):
    old, new = _write(tmp_path / "old.nt", "s", 3000), _write(tmp_path / "new.nt", "t", 2500)
    store = _store_with_neighbours(tmp_path / "store")
    store.reload = reload
    assert store.replace_graph(GRAPH, old, "nt") == 3000
    others_before = (_graph(store, OTHER), _graph(store, ""))
    assert store.replace_graph(GRAPH, new, "nt") == 2500
    assert _graph(store, GRAPH) == sorted(
        f'<https://x.org/t{i}> <https://x.org/p{i % 5}> "t{i}" <{GRAPH}>' for i in range(2500)
    )
    assert (_graph(store, OTHER), _graph(store, "")) == others_before  # blank node id kept
    assert {g.value for g in store.store.named_graphs()} == {GRAPH, OTHER, EMPTY}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.nt", "old.nt", "store"]
    assert store.replace_graph(GRAPH, new, "nt") == 2500  # again: no duplicates
    store.close()
    reopened = EmbeddedStore(tmp_path / "store")  # what was swapped in is on disk
    assert reopened.graph_size(GRAPH) == 2500 and reopened.graph_size(OTHER) == 2
    reopened.close()


def test_auto_picks_rebuild_for_all_changed_and_diff_for_small_changes(tmp_path, monkeypatch):
    old, new = _write(tmp_path / "old.nt", "s", 3000), _write(tmp_path / "new.nt", "t", 3000)
    small = tmp_path / "small.nt"
    small.write_text(old.read_text() + '<https://x.org/n> <https://x.org/p> "n" .\n')
    store = EmbeddedStore(tmp_path / "store")
    rebuilt: list[str] = []
    original = EmbeddedStore._rebuild

    def spy(self, graph, *rest):
        rebuilt.append(graph)
        return original(self, graph, *rest)

    monkeypatch.setattr(EmbeddedStore, "_rebuild", spy)
    store.replace_graph(GRAPH, old, "nt")
    assert store.replace_graph(GRAPH, small, "nt") == 3001
    assert rebuilt == []
    assert store.replace_graph(GRAPH, new, "nt") == 3000
    assert rebuilt == [GRAPH]
    store.close()


def test_in_memory_store_rebuilds_too(tmp_path):
    old, new = _write(tmp_path / "old.nt", "s", 500), _write(tmp_path / "new.nt", "t", 400)
    store = EmbeddedStore(None, reload="rebuild")
    store.replace_graph(GRAPH, old, "nt")
    assert store.replace_graph(GRAPH, new, "nt") == 400
    assert _graph(store, GRAPH)[0].startswith("<https://x.org/t")


def test_reader_thread_sees_old_or_new_graph_never_a_mix_or_empty(tmp_path):
    a, b = _write(tmp_path / "a.nt", "s", 6000), _write(tmp_path / "b.nt", "t", 4000)
    store = EmbeddedStore(tmp_path / "store", reload="rebuild")
    store.replace_graph(GRAPH, a, "nt")
    seen: list[int] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            seen.append(store.graph_size(GRAPH))

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for source, size in ((b, 4000), (a, 6000), (b, 4000)):
            assert store.replace_graph(GRAPH, source, "nt") == size
    finally:
        stop.set()
        reader.join()
    assert set(seen) <= {6000, 4000} and len(seen) > 3
    store.close()


def test_failure_while_copying_other_graphs_keeps_old_graph(tmp_path):
    old, new = _write(tmp_path / "old.nt", "s", 2000), _write(tmp_path / "new.nt", "t", 2000)
    store = _store_with_neighbours(tmp_path / "store")
    store.reload = "rebuild"
    store.replace_graph(GRAPH, old, "nt")
    before = _graph(store, GRAPH)
    live = {"store": store.store}

    class DiskFullDuringCopy:
        def __getattr__(self, name):
            return getattr(live["store"], name)

        def quads_for_pattern(self, *pattern):
            yield from list(live["store"].quads_for_pattern(*pattern))[:1]
            raise OSError("No space left on device")

    store.store = DiskFullDuringCopy()
    with pytest.raises(OSError, match="No space left"):
        store.replace_graph(GRAPH, new, "nt")
    store.store = live.pop("store")  # the swap waits until no one else holds the old store
    assert _graph(store, GRAPH) == before
    assert not store_swap.staging_path(tmp_path / "store").exists()
    assert store.replace_graph(GRAPH, new, "nt") == 2000  # usable afterwards
    store.close()


def test_failed_swap_keeps_old_graph(tmp_path, monkeypatch):
    old, new = _write(tmp_path / "old.nt", "s", 2000), _write(tmp_path / "new.nt", "t", 2000)
    store = EmbeddedStore(tmp_path / "store", reload="rebuild")
    store.replace_graph(GRAPH, old, "nt")
    before = _graph(store, GRAPH)

    def broken(path, staging):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(store_swap, "exchange", broken)
    with pytest.raises(OSError, match="Input/output error"):
        store.replace_graph(GRAPH, new, "nt")
    monkeypatch.undo()
    assert _graph(store, GRAPH) == before  # the store re-opens the untouched folder
    store.close()
    store = EmbeddedStore(tmp_path / "store")  # next open removes the staging folder
    assert not store_swap.staging_path(tmp_path / "store").exists()
    assert _graph(store, GRAPH) == before
    store.close()


def test_open_query_result_blocks_the_swap_with_a_clear_error(tmp_path, monkeypatch):
    import pyoxigraph as ox

    old, new = _write(tmp_path / "old.nt", "s", 1000), _write(tmp_path / "new.nt", "t", 1000)
    store = EmbeddedStore(tmp_path / "store", reload="rebuild")
    store.replace_graph(GRAPH, old, "nt")
    monkeypatch.setattr("tasks.linked_data.store.SWAP_WAIT_S", 0.3)
    pending = store.store.quads_for_pattern(None, None, None, ox.NamedNode(GRAPH))
    with pytest.raises(StoreLockedError, match="could not swap it in.*keeps the previous graph"):
        store.replace_graph(GRAPH, new, "nt")
    assert next(pending).subject.value.startswith("https://x.org/s")  # still the old store
    del pending
    assert store.graph_size(GRAPH) == 1000  # re-opened once the reader let go
    assert store.replace_graph(GRAPH, new, "nt") == 1000
    store.close()


def test_fallback_two_renames_and_recovery_of_a_crash_between_them(tmp_path, monkeypatch):
    old, new = _write(tmp_path / "old.nt", "s", 1000), _write(tmp_path / "new.nt", "t", 800)
    monkeypatch.setattr(store_swap, "_renameat2_exchange", lambda a, b: False)
    store = EmbeddedStore(tmp_path / "store", reload="rebuild")
    store.replace_graph(GRAPH, old, "nt")
    assert store.replace_graph(GRAPH, new, "nt") == 800
    store.close()
    assert not store_swap.replaced_path(tmp_path / "store").exists()
    # a crash after `store -> store.replaced` and before `staging -> store`:
    os.rename(tmp_path / "store", store_swap.replaced_path(tmp_path / "store"))
    store = EmbeddedStore(tmp_path / "store")
    assert store.graph_size(GRAPH) == 800  # the old store is back, nothing lost
    store.close()


KILLED = """
import sys, time
from pathlib import Path
from tasks.linked_data import store_swap
from tasks.linked_data.store import EmbeddedStore
real = store_swap.exchange
def exchange(path, staging):
    if sys.argv[3] == "before":
        print("staged", flush=True); time.sleep(60)
    old = real(path, staging)
    print("swapped", flush=True); time.sleep(60)
    return old
store_swap.exchange = exchange
store = EmbeddedStore(Path(sys.argv[1]), reload="rebuild")
store.replace_graph("https://x.org/daily", Path(sys.argv[2]), "nt")
"""


@pytest.mark.parametrize(("moment", "expected_prefix"), [("before", "s"), ("after", "t")])
def test_kill_9_just_before_or_after_the_swap_leaves_one_whole_graph(
    tmp_path, moment, expected_prefix
):
    old, new = _write(tmp_path / "old.nt", "s", 3000), _write(tmp_path / "new.nt", "t", 2000)
    store = EmbeddedStore(tmp_path / "store")
    store.replace_graph(GRAPH, old, "nt")
    store.close()
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(tmp_path / "store"), str(new), moment],
        stdout=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() in {"staged", "swapped"}
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    time.sleep(0.1)
    store = EmbeddedStore(tmp_path / "store")
    triples = _graph(store, GRAPH)
    assert len(triples) == (3000 if moment == "before" else 2000)
    assert all(t.startswith(f"<https://x.org/{expected_prefix}") for t in triples)
    assert not store_swap.staging_path(tmp_path / "store").exists()
    store.close()


# --- HTTP: Oxigraph's Graph Store PUT is one transaction --------------------------------------


@pytest.mark.integration
def test_oxigraph_put_with_a_bad_body_keeps_the_old_graph_and_readers_see_no_mix(tmp_path):

    from tasks.config.linked_data import StoreConfig
    from tasks.linked_data.server import OxigraphServer
    from tasks.linked_data.store import HttpStore

    old, new = _write(tmp_path / "old.nt", "s", 6000), _write(tmp_path / "new.nt", "t", 4000)
    bad = tmp_path / "bad.nt"
    bad.write_text(new.read_text() + "<https://x.org/cut> <https://x.org/p")
    with OxigraphServer(tmp_path / "server") as server:
        http = HttpStore(StoreConfig(mode="http", url=server.url, retries=0))
        http.put_graph(GRAPH, old, "nt")
        with pytest.raises(ValueError, match="answered 400"):
            http.put_graph(GRAPH, bad, "nt")  # 4,000 good lines, then a syntax error
        assert http.graph_size(GRAPH) == 6000
        with graph_sizes_seen(server.url, GRAPH) as seen:
            http.put_graph(GRAPH, new, "nt")
            http.put_graph(GRAPH, old, "nt")
        assert seen <= {6000, 4000} and seen
        assert http.graph_size(GRAPH) == 6000
        http.close()


# --- the diff parses the file a second time only when something is to be inserted -------------


def test_diff_skips_the_second_parse_when_nothing_is_to_be_inserted(tmp_path, monkeypatch):
    from tasks.linked_data.store import RdfFileContent, diff_graph, read_rdf_keys

    path = _write(tmp_path / "f.nt", "s", 100)
    content = read_rdf_keys(path, "nt", GRAPH)
    stored = [(text, GRAPH, False) for text, _, _ in content.statements_again()]
    parses: list[int] = []
    original = RdfFileContent.statements_again
    monkeypatch.setattr(RdfFileContent, "statements_again",
                        lambda self: parses.append(1) or original(self))
    same = diff_graph(iter(stored), content)
    assert (same.deleted, same.inserted, parses) == (0, 0, [])
    extra = [*stored, ('<https://x.org/gone> <https://x.org/p> "x"', GRAPH, False)]
    removed = diff_graph(iter(extra), content)  # only a removal: still no second parse
    assert (removed.deleted, removed.inserted, parses) == (1, 0, [])
    fewer = diff_graph(iter(stored[1:]), content)
    assert (fewer.deleted, fewer.inserted, parses) == (0, 1, [1])
    assert fewer.insert[GRAPH] == [stored[0][0]]


@pytest.mark.integration
def test_http_diff_above_the_servers_update_limit_goes_by_put(tmp_path, monkeypatch):
    from tasks.config.linked_data import StoreConfig
    from tasks.linked_data.server import OxigraphServer
    from tasks.linked_data.store import HttpStore

    old, new = _write(tmp_path / "old.nt", "s", 2000), _write(tmp_path / "new.nt", "t", 1500)
    small = tmp_path / "small.nt"
    small.write_text(new.read_text() + '<https://x.org/n> <https://x.org/p> "n" .\n')
    monkeypatch.setattr("tasks.linked_data.store.HTTP_UPDATE_MAX_BYTES", 20_000)
    with OxigraphServer(tmp_path / "server") as server:
        http = HttpStore(StoreConfig(mode="http", url=server.url, retries=0, atomic_max_triples=0,
                                     chunk_triples=1000))
        puts: list[str] = []
        original = http.put_graph
        http.put_graph = lambda graph, path, fmt: puts.append(path.name) or original(  # type: ignore[method-assign]
            graph, path, fmt)
        assert http.replace_graph(GRAPH, old, "nt") == 2000
        assert http.replace_graph(GRAPH, new, "nt") == 1500  # ~700 kB of update text
        assert puts == ["new.nt"]
        assert http.replace_graph(GRAPH, small, "nt") == 1501  # one triple: the update
        assert puts == ["new.nt"]
        assert sorted(t for t, _, _ in http._statements([GRAPH]))[0].startswith("<https://x.org/n>")
        http.close()
