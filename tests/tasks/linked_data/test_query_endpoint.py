"""A named query's endpoint parameter resolves only to configured federation endpoints."""

from __future__ import annotations

import pytest

from tasks.linked_data.query import QueryError, bind_parameters, load_query

ENDPOINTS = {"lucas": "http://127.0.0.1:7879/query"}


def _bind(endpoint: str) -> str:
    query = load_query("federated_lucas_unmatched")
    return bind_parameters(query, {"lucas_endpoint": endpoint, "radius": 10},
                           "https://w3id.org/eeflow/data/",
                           ENDPOINTS)


def test_configured_name_or_url_binds_the_endpoint():
    assert "<http://127.0.0.1:7879/query>" in _bind("lucas")
    assert "<http://127.0.0.1:7879/query>" in _bind("http://127.0.0.1:7879/query/")


@pytest.mark.parametrize("endpoint", ["http://elsewhere.example/sparql", "lucas2", "file:///x"])
def test_an_unconfigured_endpoint_is_refused_before_any_request(endpoint):
    with pytest.raises(QueryError, match=r"not configured.*lucas=http://127\.0\.0\.1:7879/query"):
        _bind(endpoint)
