"""Fixtures of the GeoSPARQL conformance tests: the dataset loaded once per target and module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks.linked_data import geosparql_conformance as conformance
from tasks.linked_data.server import SparqlServer


@pytest.fixture(scope="module", params=["embedded", "http"])
def target(request: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """eeflow's embedded store, or eeflow's SPARQL server on 127.0.0.1, holding the dataset."""
    workdir: Path = tmp_path_factory.mktemp("conformance")
    if request.param == "embedded":
        embedded = conformance.EmbeddedTarget(True, workdir)
        embedded.load(conformance.DATASET)
        yield embedded
        embedded.close()
        return
    with SparqlServer(None) as server:
        http = conformance.HttpTarget("eeflow rdf serve", server.url)
        http.load(conformance.DATASET)
        yield http
        http.close()
