"""Federated GeoSPARQL: join this store with other SPARQL endpoints through ``SERVICE``.

The embedded store evaluates the query (with eeflow's custom GeoSPARQL functions) and sends the
``SERVICE`` parts to the remote endpoint over the SPARQL 1.1 protocol. Endpoints are parameters
of the query (``# @param lucas_endpoint endpoint``): give a URL, or a name configured in
``linked_data.federation.endpoints`` (e.g. ``{lucas: https://example.org/lucas/sparql}``); the
remote side needs only the SPARQL 1.1 protocol (any store: Oxigraph, Fuseki, GraphDB, Virtuoso).
Code lists are mapped by the SKOS mapping in this store's vocabulary graph (LUCAS LC1 ->
crop type: tasks/lucas/codelists/lc1_to_crop_class.csv), so the remote side keeps its own codes.
"""

from __future__ import annotations

from typing import Any

from tasks.linked_data.query import run_named_query


def run_federated_query(
    cfg: Any,
    endpoint: str,
    radius_m: float = 10.0,
    name: str = "federated_lucas_unmatched",
    store: Any = None,
) -> dict[str, Any]:
    """LUCAS points from ``endpoint`` with no same-class field of this store within ``radius_m``.

    Args:
        cfg: LinkedDataConfig (its embedded store holds the fields and the vocabulary graph).
        endpoint: query URL of the remote SPARQL endpoint, or a configured endpoint name.
        radius_m: the matching radius in metres (the paper's rule: 10 m; at most 25).
        name: a query with an ``endpoint`` parameter named ``lucas_endpoint``.
        store: an open embedded store (default: open the configured one).

    """
    return run_named_query(cfg, name, {"lucas_endpoint": endpoint, "radius": radius_m}, store)
