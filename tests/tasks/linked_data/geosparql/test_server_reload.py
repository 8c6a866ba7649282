"""Re-loads on eeflow's SPARQL server: a big PUT over a graph with data goes through the embedded
store's re-load (diff, or rebuild + swap when most triples changed), ``?no_transaction`` POSTs are
bulk writes, and :class:`HttpStore` sends a mostly changed re-load as one PUT (issue 17, P6).

Every server runs on 127.0.0.1 and is stopped by its ``with`` block.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyoxigraph as ox
import pytest
import requests

from tasks.config.linked_data import StoreConfig
from tasks.linked_data import server as server_module
from tasks.linked_data import store_swap
from tasks.linked_data.geosparql.entailment import entailed_graph
from tasks.linked_data.server import SparqlServer
from tasks.linked_data.store import EmbeddedStore, HttpStore
from tests.tasks.linked_data.store_readers import graph_sizes_seen

pytestmark = pytest.mark.integration

GEO = "http://www.opengis.net/ont/geosparql#"
GRAPH = "https://x.org/graph/fields"
OTHER = "https://x.org/graph/other"
NT = {"Content-Type": "application/n-triples"}


def _features(prefix: str, count: int) -> bytes:
    """N-Triples of ``count`` features with a WKT point each (entailment adds types, etc.)."""
    lines = []
    for i in range(count):
        feature, geometry = f"<https://x.org/{prefix}/f{i}>", f"<https://x.org/{prefix}/g{i}>"
        lines.append(f"{feature} <{GEO}hasGeometry> {geometry} .\n")
        lines.append(f'{geometry} <{GEO}asWKT> "POINT({i} 1)"^^<{GEO}wktLiteral> .\n')
    return "".join(lines).encode()


def _graph(url: str, name: str) -> set[str]:
    got = requests.get(f"{url}/store", params={"graph": name},
                       headers={"Accept": "application/n-triples"}, timeout=60)
    if got.status_code == 404:
        return set()
    assert got.status_code == 200, got.text
    return {line for line in got.text.splitlines() if line}


def _put(url: str, name: str, body: bytes) -> requests.Response:
    return requests.put(f"{url}/store", params={"graph": name}, data=body, headers=NT, timeout=120)


@pytest.fixture
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "REBUILD_PUT_MIN_STATEMENTS", 100)


@pytest.fixture
def rebuilds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every store rebuild (the graph it was for)."""
    calls: list[str] = []
    original = EmbeddedStore._rebuild

    def spy(self: EmbeddedStore, graph: str, *args: Any) -> None:
        calls.append(graph)
        original(self, graph, *args)

    monkeypatch.setattr(EmbeddedStore, "_rebuild", spy)
    return calls


def test_big_put_rebuilds_the_store_with_the_same_result_as_one_transaction(
    tmp_path: Path, small_threshold: None, rebuilds: list[str]
) -> None:
    old, new = _features("a", 300), _features("b", 400)
    location = tmp_path / "server"
    with SparqlServer(location) as server, SparqlServer(None) as reference:
        for target in (server, reference):
            assert _put(target.url, GRAPH, old).status_code == 201
            requests.post(f"{target.url}/update", timeout=30,
                          data={"update": f"INSERT DATA {{ GRAPH <{OTHER}> {{ <https://x.org/o> "
                                          "<https://x.org/p> 1 } }"}).raise_for_status()
        reference.service.holder = None  # the reference: one transaction, as before
        reference.service._raw = reference.holder.store
        assert not rebuilds
        assert _put(server.url, GRAPH, new).status_code == 204
        assert rebuilds == [GRAPH]  # every triple changed: rebuilt in a sibling folder, swapped
        assert _put(reference.url, GRAPH, new).status_code == 204
        assert rebuilds == [GRAPH]
        for name in (GRAPH, entailed_graph(GRAPH), OTHER):
            assert _graph(server.url, name) == _graph(reference.url, name), name
        assert len(_graph(server.url, GRAPH)) == 800
        assert len(_graph(server.url, entailed_graph(GRAPH))) > 800  # types, geometry properties
        assert not any(Path(tmp_path).glob("eeflow-*"))  # spooled files removed
        assert not store_swap.staging_path(location).exists()
    with SparqlServer(location) as reopened:  # the swapped-in store is the one on disk
        assert len(_graph(reopened.url, GRAPH)) == 800
        assert _graph(reopened.url, OTHER)


def test_small_change_by_put_is_applied_in_place(
    tmp_path: Path, small_threshold: None, rebuilds: list[str]
) -> None:
    old = _features("a", 300)
    changed = old.replace(b"POINT(0 1)", b"POINT(0 2)")
    with SparqlServer(tmp_path / "server") as server:
        _put(server.url, GRAPH, old)
        assert _put(server.url, GRAPH, changed).status_code == 204
        assert not rebuilds  # one changed triple: the difference in one transaction
        graph = _graph(server.url, GRAPH)
        assert any("POINT(0 2)" in line for line in graph)
        assert not any("POINT(0 1)" in line for line in graph)
        assert len(graph) == 600


def test_readers_see_the_old_or_the_new_graph_during_a_rebuild(
    tmp_path: Path, small_threshold: None, rebuilds: list[str]
) -> None:
    old, new = _features("a", 2000), _features("b", 3000)
    with SparqlServer(tmp_path / "server") as server:
        _put(server.url, GRAPH, old)
        with graph_sizes_seen(server.url, GRAPH) as seen:
            assert _put(server.url, GRAPH, new).status_code == 204
        assert rebuilds == [GRAPH]
        assert seen <= {4000, 6000}, seen


def test_failed_swap_keeps_the_old_graph_and_cleans_up(
    tmp_path: Path, small_threshold: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = _features("a", 300), _features("b", 300)
    location = tmp_path / "server"

    def broken(store_path: Path, staging: Path) -> Path:
        raise OSError(28, "No space left on device")

    with SparqlServer(location) as server:
        _put(server.url, GRAPH, old)
        before = {name: _graph(server.url, name) for name in (GRAPH, entailed_graph(GRAPH))}
        monkeypatch.setattr(store_swap, "exchange", broken)
        answer = _put(server.url, GRAPH, new)
        assert answer.status_code == 500 and "No space left on device" in answer.text
        assert {name: _graph(server.url, name) for name in before} == before
        assert not any(Path(tmp_path).glob("eeflow-*"))
        monkeypatch.undo()
        monkeypatch.setattr(server_module, "REBUILD_PUT_MIN_STATEMENTS", 100)
        assert _put(server.url, GRAPH, new).status_code == 204  # the server still works
        assert len(_graph(server.url, GRAPH)) == 600


def test_no_transaction_post_is_a_bulk_write_with_the_same_entailment(tmp_path: Path) -> None:
    first, second = _features("a", 50), _features("b", 50)
    with SparqlServer(tmp_path / "bulk") as bulk, SparqlServer(None) as reference:
        for body in (first, second):
            answer = requests.post(f"{bulk.url}/store", params={"graph": GRAPH,
                                   "no_transaction": ""}, data=body, headers=NT, timeout=60)
            assert answer.status_code in (201, 204), answer.text
            requests.post(f"{reference.url}/store", params={"graph": GRAPH}, data=body,
                          headers=NT, timeout=60).raise_for_status()
        for name in (GRAPH, entailed_graph(GRAPH)):
            assert _graph(bulk.url, name) == _graph(reference.url, name), name
        assert len(_graph(bulk.url, GRAPH)) == 200


def test_spooled_put_body(tmp_path: Path, small_threshold: None,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "SPOOL_BODY_BYTES", 1000)
    body = _features("a", 300)
    assert len(body) > 1000
    with SparqlServer(tmp_path / "server") as server:
        assert _put(server.url, GRAPH, body).status_code == 201
        assert _put(server.url, GRAPH, _features("b", 300)).status_code == 204
        assert len(_graph(server.url, GRAPH)) == 600
        bad = _put(server.url, GRAPH, body + b"<broken")
        assert bad.status_code == 400 and "does not parse" in bad.text
        assert len(_graph(server.url, GRAPH)) == 600
        assert not any(Path(tmp_path).glob("eeflow-*"))


def test_http_store_sends_a_mostly_changed_reload_as_one_put(
    tmp_path: Path, small_threshold: None, rebuilds: list[str]
) -> None:
    old = tmp_path / "old.nt"
    old.write_bytes(_features("a", 500))
    few = tmp_path / "few.nt"
    few.write_bytes(_features("a", 500).replace(b"POINT(7 1)", b"POINT(7 3)"))
    new = tmp_path / "new.nt"
    new.write_bytes(_features("b", 500))
    with SparqlServer(tmp_path / "server") as server:
        cfg = StoreConfig(mode="http", url=server.url, atomic_max_triples=0, chunk_triples=1000)
        http = HttpStore(cfg, state_dir=tmp_path / "loads")
        assert http.replace_graph(GRAPH, old, "nt") == 1000
        assert http.last_path == "first load" and http.put_rebuilds
        assert http.replace_graph(GRAPH, few, "nt") == 1000
        assert http.last_path == "snapshot diff" and not rebuilds  # 2 of 1000 changed
        assert http.replace_graph(GRAPH, new, "nt") == 1000
        assert http.last_path == "snapshot diff + put" and rebuilds == [GRAPH]
        expected = {str(t) + " ." for t in ox.parse(path=str(new), format=ox.RdfFormat.N_TRIPLES)}
        assert _graph(server.url, GRAPH) == expected
        record = http.load_record(GRAPH)
        assert record is not None and record.statements == 1000
        assert http.replace_graph(GRAPH, new, "nt") == 1000
        assert http.last_path == "same content"
        http.close()


def test_plain_oxigraph_does_not_announce_rebuilds(tmp_path: Path) -> None:
    from tasks.linked_data.server import OxigraphServer

    with OxigraphServer(tmp_path / "oxigraph") as server:
        http = HttpStore(StoreConfig(mode="http", url=server.url))
        assert http.graph_size(GRAPH) == 0
        assert http.put_rebuilds is False
        http.close()


def test_reload_without_entailment_empties_the_companion(
    tmp_path: Path, small_threshold: None, rebuilds: list[str]
) -> None:
    plain = "".join(f'<https://x.org/s{i}> <https://x.org/p> "{i}" .\n' for i in range(300))
    with SparqlServer(tmp_path / "server") as server:
        _put(server.url, GRAPH, _features("a", 300))
        assert _graph(server.url, entailed_graph(GRAPH))
        assert _put(server.url, GRAPH, plain.encode()).status_code == 204
        assert rebuilds == [GRAPH]
        assert len(_graph(server.url, GRAPH)) == 300
        assert _graph(server.url, entailed_graph(GRAPH)) == set()  # nothing entailed any more


def test_big_writes_wait_for_the_answer_longer_than_timeout_s(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from tasks.linked_data import store as store_module

    http = HttpStore(StoreConfig(mode="http", url="http://127.0.0.1:9", timeout_s=5))
    timeouts: list[float] = []

    def answer(*args: Any, timeout: float, **kwargs: Any) -> Any:
        timeouts.append(timeout)
        return SimpleNamespace(status_code=204, text="")

    http.session.put = answer  # type: ignore[method-assign]
    http.session.post = answer  # type: ignore[method-assign]
    big = tmp_path / "big.nt"
    big.write_bytes(b"x" * (3 * store_module.WRITE_MIN_BYTES_PER_S))
    http.put_graph(GRAPH, big, "nt")
    http.update(b"y" * (8 * store_module.WRITE_MIN_BYTES_PER_S))
    http.update("INSERT DATA { <https://x.org/s> <https://x.org/p> 1 }")
    assert timeouts == [5, 8, 5]  # 3 MB waits timeout_s (5 s), 8 MB 8 s, a short update 5 s
    http.close()


def test_entail_rereading_equals_entail() -> None:
    from tasks.linked_data import geosparql_conformance as conformance
    from tasks.linked_data.geosparql.entailment import entail, entail_rereading

    for body, fmt in ((_features("a", 200), ox.RdfFormat.N_TRIPLES),
                      (conformance.DATASET.encode(), ox.RdfFormat.TURTLE)):
        triples = list(ox.parse(body, format=fmt))
        calls: list[int] = []

        def read(triples: list[Any] = triples) -> Any:
            calls.append(1)
            return iter(triples)

        expected = entail(triples)
        assert expected  # the dataset entails something
        assert entail_rereading(read) == expected
        assert len(calls) == 2
        also_asserted = next(iter(expected))  # an entailed triple the body asserts too
        again = entail_rereading(lambda t=triples: iter([*t, also_asserted]))
        assert again == expected - {also_asserted}


def test_eeflow_server_as_a_child_process(tmp_path: Path) -> None:
    from tasks.linked_data.server import EeflowServerProcess

    with EeflowServerProcess(tmp_path / "child") as child:
        assert child.process is not None and child.process.poll() is None
        assert _put(child.url, GRAPH, _features("a", 3)).status_code == 201
        answer = requests.get(f"{child.url}/query", params={"query": "ASK { ?s ?p ?o }"},
                              timeout=30)
        assert answer.json()["boolean"] is True and answer.headers["Eeflow-Graph-Store"]
    assert child.process is None  # stopped
    assert (tmp_path / "child").is_dir()  # its store folder
