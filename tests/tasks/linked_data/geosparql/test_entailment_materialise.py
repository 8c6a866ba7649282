"""materialise: the same source is not entailed again; otherwise only the difference is written."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyoxigraph as ox
import pytest

from tasks.linked_data.geosparql import entailment
from tasks.linked_data.geosparql.entailment import entail, entailed_graph, materialise
from tasks.linked_data.store import EmbeddedStore

GEO = "http://www.opengis.net/ont/geosparql#"
GRAPH = "http://ex/graph"


def _feature(i: int, wkt: str = "POINT(1 2)") -> str:
    return (f"<http://ex/f{i}> <{GEO}hasDefaultGeometry> <http://ex/g{i}> .\n"
            f'<http://ex/g{i}> <{GEO}asWKT> "{wkt}"^^<{GEO}wktLiteral> .\n')


@pytest.fixture
def store() -> Iterator[EmbeddedStore]:
    opened = EmbeddedStore(None)
    yield opened
    opened.close()


def _load(store: EmbeddedStore, body: str) -> None:
    store.store.update(f"DROP SILENT GRAPH <{GRAPH}>")
    store.store.update(f"INSERT DATA {{ GRAPH <{GRAPH}> {{ {body} }} }}")


def _entailed(store: EmbeddedStore) -> set[Any]:
    return {q.triple for q in store.store.quads_for_pattern(
        None, None, None, ox.NamedNode(entailed_graph(GRAPH)))}


def _expected(store: EmbeddedStore) -> set[Any]:
    return entail(q.triple for q in store.store.quads_for_pattern(
        None, None, None, ox.NamedNode(GRAPH)))


def _data(updates: list[str]) -> list[str]:
    """The updates of the entailed graph itself (not of its record), by their first word."""
    return [u.split()[0] for u in updates if "/eeflow-load" not in u]


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    updates: list[str] = []
    real = entailment._run_update

    def run_update(target: Any) -> Any:
        run = real(target)

        def spied(update: str) -> None:
            updates.append(update)
            run(update)

        return spied

    monkeypatch.setattr(entailment, "_run_update", run_update)
    return updates


def test_same_content_writes_nothing_changed_content_only_the_difference(
        store: EmbeddedStore, monkeypatch: pytest.MonkeyPatch) -> None:
    _load(store, _feature(1) + _feature(2))
    updates = _spy(monkeypatch)
    first = materialise(store, GRAPH)
    assert first == len(_expected(store)) > 0 and _entailed(store) == _expected(store)
    assert _data(updates) == ["INSERT"]  # an empty companion: inserts only
    assert [u for u in updates if "/eeflow-load" in u][-1].count("INSERT DATA") == 1  # record

    updates.clear()
    monkeypatch.setattr(entailment, "entail", None)  # the same source: not even computed
    assert materialise(store, GRAPH) == first
    assert updates == []  # nothing written
    monkeypatch.undo()
    updates = _spy(monkeypatch)
    assert _entailed(store) == _expected(store)

    # an edit of the companion graph outside the loader that changes its size: entailed again
    store.store.update(f"INSERT DATA {{ GRAPH <{entailed_graph(GRAPH)}> {{ "
                       "<http://ex/x> <http://ex/y> <http://ex/z> } }")
    assert materialise(store, GRAPH) == first and _data(updates) == ["DELETE"]
    assert _entailed(store) == _expected(store)

    # new rules (RULES_VERSION raised): entailed again, nothing to change
    updates.clear()
    monkeypatch.setattr(entailment, "RULES_VERSION", entailment.RULES_VERSION + 1)
    entailment._rules_key.cache_clear()
    assert materialise(store, GRAPH) == first and _data(updates) == []
    assert any("/eeflow-load" in u for u in updates)  # the record names the new digest
    entailment._rules_key.cache_clear()

    # feature 2 replaced by feature 3 with another geometry: only its entailed triples change
    _load(store, _feature(1) + _feature(3, "LINESTRING(0 0, 1 1)"))
    updates.clear()
    assert materialise(store, GRAPH) == len(_expected(store))
    assert _entailed(store) == _expected(store)
    assert _data(updates) == ["DELETE", "INSERT"]
    deleted, inserted = [u for u in updates if "/eeflow-load" not in u]
    assert "http://ex/g2" in deleted and "http://ex/g1" not in deleted
    assert "http://ex/g3" in inserted and "http://ex/g1" not in inserted
    assert f"<{GEO}dimension>" in inserted  # a line: dimension 1, entailed anew


def test_blank_nodes_replace_the_whole_companion_graph(
        store: EmbeddedStore, monkeypatch: pytest.MonkeyPatch) -> None:
    _load(store, f'_:g <{GEO}asWKT> "POINT(1 2)"^^<{GEO}wktLiteral> .\n'
                 f"<http://ex/f> <{GEO}hasDefaultGeometry> _:g .")
    materialise(store, GRAPH)
    store.store.update(f"INSERT DATA {{ GRAPH <{GRAPH}> {{ <http://ex/h> a <{GEO}Feature> }} }}")
    updates = _spy(monkeypatch)
    count = materialise(store, GRAPH)
    assert [u for u in updates if "/eeflow-load" not in u][0] == \
        f"DROP SILENT GRAPH <{entailed_graph(GRAPH)}>"
    assert len(_entailed(store)) == count > 0  # not doubled: the old blank-node triples went


def test_removed_graph_content_removes_its_entailment(store: EmbeddedStore) -> None:
    _load(store, _feature(1) + _feature(2))
    materialise(store, GRAPH)
    _load(store, "<http://ex/a> <http://ex/p> <http://ex/b> .")  # nothing to entail any more
    assert materialise(store, GRAPH) == 0
    assert _entailed(store) == set()


def test_a_failed_write_leaves_no_record_so_the_next_run_entails_again(
        store: EmbeddedStore, monkeypatch: pytest.MonkeyPatch) -> None:
    _load(store, _feature(1))
    materialise(store, GRAPH)
    _load(store, _feature(2))
    real = entailment._run_update

    def failing(target: Any) -> Any:
        run = real(target)

        def update(text: str) -> None:
            if text.startswith("INSERT DATA") and "/eeflow-load" not in text:
                raise OSError("connection reset")
            run(text)

        return update

    monkeypatch.setattr(entailment, "_run_update", failing)
    with pytest.raises(OSError, match="connection reset"):
        materialise(store, GRAPH)
    monkeypatch.undo()
    assert entailment._recorded(store, entailed_graph(GRAPH)) is None  # dropped before writing
    assert materialise(store, GRAPH) == len(_expected(store))
    assert _entailed(store) == _expected(store)
