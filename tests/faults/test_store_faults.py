"""Faults during triple-store (re-)loads: the previous graph survives, errors name the cause."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.config.linked_data import StoreConfig
from tasks.linked_data.export import export_product
from tasks.linked_data.server import OxigraphServer
from tasks.linked_data.store import (
    EmbeddedStore,
    HttpStore,
    LoadVerificationError,
    RdfFileError,
    load_product,
)
from tests.faults.conftest import REPO, snapshot
from tests.tasks.linked_data.linked_data_samples import YEAR
from tests.tasks.linked_data.store_readers import graph_sizes_seen

GRAPH = "https://x.org/daily"


def _dump(store: EmbeddedStore, graph: str) -> list[str]:
    import pyoxigraph as ox

    quads = store.store.quads_for_pattern(None, None, None, ox.NamedNode(graph))
    return sorted(str(q) for q in quads)


def _assert_same_graph(after: list[str], before: list[str]) -> None:
    """Assert two graph dumps are equal; on failure say how, without pytest's slow diff."""
    same = after == before
    if not same:
        missing, extra = len(set(before) - set(after)), len(set(after) - set(before))
        raise AssertionError(f"graph changed: {len(after)} triples (was {len(before)}), "
                             f"{missing} missing, {extra} added")


def _http_rows(http: HttpStore, graph: str) -> list[str]:
    return sorted(text for text, _, _ in http._statements([graph]))


def test_embedded_truncated_mid_line_keeps_old_graph(tmp_path, nt_lines):
    old, bad = tmp_path / "old.nt", tmp_path / "bad.nt"
    old.write_text("".join(nt_lines))
    bad.write_text("".join(nt_lines[:3000]) + nt_lines[3000][:25])
    store = EmbeddedStore(tmp_path / "store")
    assert store.replace_graph(GRAPH, old, "nt") == 20_000
    before = _dump(store, GRAPH)
    message = r"bad\.nt is not valid N-Triples.*line 3001.*not changed"
    with pytest.raises(RdfFileError, match=message):
        store.replace_graph(GRAPH, bad, "nt")
    _assert_same_graph(_dump(store, GRAPH), before)
    store.close()


def test_embedded_truncated_at_line_end_caught_by_manifest_count(ld_cfg, products):
    out = export_product(ld_cfg, "crop_field_instances", YEAR)
    first = load_product(ld_cfg, "crop_field_instances", YEAR)
    rdf = Path(out["rdf"])
    lines = rdf.read_bytes().splitlines(keepends=True)
    rdf.write_bytes(b"".join(lines[: len(lines) // 2]))  # parses fine: only the count tells
    with pytest.raises(RdfFileError, match=r"holds \d+ triples but its export manifest records"):
        load_product(ld_cfg, "crop_field_instances", YEAR)
    store = EmbeddedStore(ld_cfg.resolved_root() / "linked_data" / "store")
    assert store.graph_size(first["graph"]) == first["triples"]
    store.close()


def test_embedded_reload_changes_only_the_difference(tmp_path, nt_lines):
    old, new = tmp_path / "old.nt", tmp_path / "new.nt"
    old.write_text("".join(nt_lines))
    new.write_text("".join(nt_lines[1000:]) + '<https://x.org/n> <https://x.org/p> "new" .\n')
    store = EmbeddedStore(tmp_path / "store")
    store.replace_graph(GRAPH, old, "nt")
    assert store.replace_graph(GRAPH, new, "nt") == 19_001
    assert store.replace_graph(GRAPH, new, "nt") == 19_001  # identical re-load: nothing to apply
    assert len(list(store.store.named_graphs())) == 1
    store.close()


KILLED_RELOAD = """
import sys, time
from pathlib import Path
from tasks.linked_data.store import EmbeddedStore
store = EmbeddedStore(Path(sys.argv[1]), reload=sys.argv[3])
print("open", flush=True)
store.replace_graph("https://x.org/daily", Path(sys.argv[2]), "nt")
print("done", flush=True)
time.sleep(120)  # a fast machine may finish before the kill: the kill must still find it alive
"""


@pytest.mark.parametrize("reload", ["diff", "auto"])
def test_embedded_kill_9_during_reload_keeps_old_graph(tmp_path, nt_lines, reload):
    old, new = tmp_path / "old.nt", tmp_path / "new.nt"
    old.write_text("".join(nt_lines))
    with new.open("w") as fh:  # 100k triples, none shared with the old graph: a long diff
        for i in range(100_000):
            fh.write(f'<https://x.org/n{i}> <https://x.org/q{i % 7}> "v{i}" .\n')
    store = EmbeddedStore(tmp_path / "store")
    store.replace_graph(GRAPH, old, "nt")
    before = _dump(store, GRAPH)
    store.close()
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_RELOAD, str(tmp_path / "store"), str(new), reload],
        stdout=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "open"
    time.sleep(1.2)  # parsing / diffing / inside the update transaction
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL  # killed before the process ended
    store = EmbeddedStore(tmp_path / "store")
    after = _dump(store, GRAPH)
    # On a fast machine the update may have committed just before the kill (the process was
    # closing the store): then the whole new graph is there. Never a mix of the two.
    if len(after) == 100_000:
        new_graph = EmbeddedStore(tmp_path / "new_store")
        new_graph.replace_graph(GRAPH, new, "nt")
        complete = after == _dump(new_graph, GRAPH)
        new_graph.close()
        assert complete, "the graph holds 100,000 triples but not the new file's"
    else:  # compared outside the assert: pytest's diff of 20,000 strings takes minutes
        unchanged = after == before
        assert unchanged, (
            f"partial graph after kill -9: {len(after)} triples, old {len(before)}, new 100,000")
    assert store.replace_graph(GRAPH, old, "nt") == 20_000  # the store is usable afterwards
    store.close()


@pytest.fixture
def server(tmp_path):
    with OxigraphServer(tmp_path / "server") as running:
        yield running


def _http(server, **settings) -> HttpStore:
    return HttpStore(
        StoreConfig(mode="http", url=server.url, chunk_triples=1000, atomic_max_triples=0,
                    retries=0, **settings)
    )


@pytest.mark.integration
def test_http_truncated_file_keeps_old_graph(server, tmp_path, nt_lines):
    old, bad = tmp_path / "old.nt", tmp_path / "bad.nt"
    old.write_text("".join(nt_lines))
    bad.write_text("".join(nt_lines[:7000]) + nt_lines[7000][:30])
    http = _http(server)
    assert http.replace_graph(GRAPH, old, "nt") == 20_000
    before = _http_rows(http, GRAPH)
    with pytest.raises(RdfFileError, match=r"bad\.nt is not valid N-Triples.*not changed"):
        http.replace_graph(GRAPH, bad, "nt")
    short = tmp_path / "short.nt"
    short.write_text("".join(nt_lines[:7000]))  # cut at a line end: the manifest count tells
    with pytest.raises(RdfFileError, match="holds 7000 triples but its export manifest records"):
        http.replace_graph(GRAPH, short, "nt", expected_triples=20_000)
    _assert_same_graph(_http_rows(http, GRAPH), before)
    http.close()


@pytest.mark.integration
def test_http_rejected_chunk_fails_and_leaves_no_partial_graph(server, tmp_path, nt_lines):
    data = tmp_path / "data.nt"
    data.write_text("".join(nt_lines))
    http = _http(server)
    original = http._post

    def reject_third_chunk(url, what, **kwargs):
        if what.endswith("chunk 3"):
            raise ValueError(f"{what}: the store answered 400: Parser error")
        return original(url, what, **kwargs)

    http._post = reject_third_chunk  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="chunk 3: the store answered 400"):
        http.replace_graph(GRAPH, data, "nt")
    http._post = original  # type: ignore[method-assign]
    assert http.graph_size(GRAPH) == 0  # no half-loaded graph stays behind
    http.close()


@pytest.mark.integration
def test_http_lost_chunk_is_caught_by_the_final_count(server, tmp_path, nt_lines):
    data = tmp_path / "data.nt"
    data.write_text("".join(nt_lines))
    http = _http(server)
    original = http._post

    def drop_chunk(url, what, **kwargs):
        if what.endswith("chunk 5"):
            return None  # answered 204 but stored nothing
        return original(url, what, **kwargs)

    http._post = drop_chunk  # type: ignore[method-assign]
    with pytest.raises(LoadVerificationError, match=r"holds 19000 triples .* has 20000 distinct"):
        http.replace_graph(GRAPH, data, "nt")
    http._post = original  # type: ignore[method-assign]
    assert http.graph_size(GRAPH) == 0
    http.close()


@pytest.mark.integration
def test_http_failed_reload_update_keeps_old_graph(server, tmp_path, nt_lines):
    old, new = tmp_path / "old.nt", tmp_path / "new.nt"
    old.write_text("".join(nt_lines))
    new.write_text("".join(nt_lines[:5000]))
    http = _http(server)
    http.replace_graph(GRAPH, old, "nt")
    before = _http_rows(http, GRAPH)
    original = http.update
    http.update = lambda sparql: (_ for _ in ()).throw(  # type: ignore[method-assign]
        ValueError("SPARQL update: the store answered 500: disk full")
    )
    with pytest.raises(ValueError, match="disk full"):
        http.replace_graph(GRAPH, new, "nt")
    http.update = original  # type: ignore[method-assign]
    _assert_same_graph(_http_rows(http, GRAPH), before)
    http.close()


@pytest.mark.integration
def test_http_reload_readers_see_old_or_new_never_a_mix(server, tmp_path, nt_lines):

    old, new = tmp_path / "old.nt", tmp_path / "new.nt"
    old.write_text("".join(nt_lines))
    new.write_text("".join(nt_lines[:5000]))
    http = _http(server)
    http.replace_graph(GRAPH, old, "nt")
    with graph_sizes_seen(server.url, GRAPH) as seen:
        assert http.replace_graph(GRAPH, new, "nt") == 5_000
        assert http.replace_graph(GRAPH, old, "nt") == 20_000
    assert seen <= {20_000, 5_000}
    http.close()


def test_load_refuses_unsafe_product_and_run_key(ld_cfg, products):
    from tasks.naming import UnsafeNameError

    export_product(ld_cfg, "crop_field_instances", YEAR)
    before = snapshot(ld_cfg.resolved_root())
    with pytest.raises(UnsafeNameError, match=r"product name '\.\./\.\./\.\.' cannot be used"):
        load_product(ld_cfg, "../../..", YEAR)
    with pytest.raises(UnsafeNameError, match="run_key name"):
        load_product(ld_cfg, "crop_field_instances", "../x")
    assert snapshot(ld_cfg.resolved_root()) == before
