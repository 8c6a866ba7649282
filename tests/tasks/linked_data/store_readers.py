"""A reader that polls a graph's size on a SPARQL server while a test replaces the graph."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def graph_sizes_seen(server_url: str, graph: str) -> Iterator[set[int]]:
    """Yield the set of sizes of ``graph`` that a polling reader saw until the block ends."""
    import requests

    seen: set[int] = set()
    stop = threading.Event()
    query = f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}"

    def poll() -> None:
        while not stop.is_set():
            answer = requests.post(f"{server_url}/query", data={"query": query},
                                   headers={"Accept": "application/sparql-results+json"},
                                   timeout=30).json()
            seen.add(int(answer["results"]["bindings"][0]["n"]["value"]))

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        yield seen
    finally:
        stop.set()
        reader.join()
