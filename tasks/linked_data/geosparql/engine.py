"""Run SPARQL on a pyoxigraph store with eeflow's GeoSPARQL: functions + query rewrite."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from tasks.linked_data.geosparql.functions import custom_functions as _custom_functions
from tasks.linked_data.geosparql.rewrite import rewrite_query


@lru_cache(maxsize=1)
def custom_functions() -> dict[Any, Any]:
    """Return the ``geof:`` custom functions (built once)."""
    return _custom_functions()


def query(store: Any, sparql: str, *, rewrite: bool = True, **kwargs: Any) -> Any:
    """Run a query on a ``pyoxigraph.Store`` with every GeoSPARQL function and the rewrite.

    Args:
        store: the pyoxigraph store.
        sparql: the query text.
        rewrite: apply the query-rewrite extension (see :mod:`.rewrite`).
        **kwargs: passed to ``Store.query`` (``use_default_graph_as_union`` defaults to True).

    """
    kwargs.setdefault("use_default_graph_as_union", True)
    text = rewrite_query(sparql) if rewrite else sparql
    return store.query(text, custom_functions=custom_functions(), **kwargs)


def update(store: Any, sparql: str, **kwargs: Any) -> None:
    """Run a SPARQL update with the GeoSPARQL functions available (e.g. in ``WHERE``)."""
    store.update(sparql, custom_functions=custom_functions(), **kwargs)
