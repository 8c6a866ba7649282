"""Federated GeoSPARQL: join this store with other SPARQL endpoints through ``SERVICE``.

Only the endpoints of ``linked_data.federation.endpoints`` (name -> query URL) are used; a name or
one of their URLs is accepted, any other URL is refused (:func:`resolve_endpoint`). The remote
side needs only the SPARQL 1.1 protocol (any store: Oxigraph, Fuseki, GraphDB, Virtuoso).

Two ways to federate:

* :func:`run_federated_query`: the shipped hand-written query ``federated_lucas_unmatched``: the
  embedded store evaluates it (with eeflow's GeoSPARQL functions) and sends its ``SERVICE``
  parts to the LUCAS endpoint. Code lists are mapped by the SKOS mapping in this store's
  vocabulary graph (LUCAS LC1 -> crop type: tasks/lucas/codelists/lc1_to_crop_class.csv).
* :func:`run_source_selected_query`: any SELECT without ``SERVICE`` over all configured endpoints
  (the paper's Semagrow): per triple pattern the endpoints that can answer are found (VoID or
  cached ``ASK`` probes, :mod:`.source_selection`), the query is rewritten into ``SERVICE``
  blocks on just those, and the rows are those of the query on the union of all endpoints' data.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from tasks.config.linked_data import LinkedDataConfig
from tasks.linked_data.query import run_named_query, term_value
from tasks.linked_data.source_selection import (  # resolve_endpoint: kept importable from here
    EndpointUnavailableError,
    FederationError,
    SourceSelector,
    resolve_endpoint,
    rewrite_federated,
)

log = logging.getLogger(__name__)


def run_federated_query(
    cfg: LinkedDataConfig,
    endpoint: str,
    radius_m: float = 10.0,
    name: str = "federated_lucas_unmatched",
    store: Any = None,
) -> dict[str, Any]:
    """LUCAS points from ``endpoint`` with no same-class field of this store within ``radius_m``.

    Args:
        cfg: LinkedDataConfig (its embedded store holds the fields and the vocabulary graph).
        endpoint: a name of ``federation.endpoints``, or one of their query URLs.
        radius_m: the matching radius in metres (the paper's rule: 10 m; at most 25).
        name: a query with an ``endpoint`` parameter named ``lucas_endpoint``.
        store: an open embedded store (default: open the configured one).

    Raises:
        FederationError: ``endpoint`` is not configured.

    """
    url = resolve_endpoint(endpoint, cfg.federation.endpoints)
    return run_named_query(cfg, name, {"lucas_endpoint": url, "radius": radius_m}, store)


def selector_for(cfg: LinkedDataConfig, mode: str | None = None) -> SourceSelector:
    """Make a :class:`SourceSelector` on the configured endpoints (probes cached per config)."""
    federation = cfg.federation
    cache = (
        cfg.resolved_root() / federation.probe_cache if federation.probe_cache else None
    )
    return SourceSelector(
        dict(federation.endpoints),
        # a plain str from the CLI (typer passes choices as str), handed on as given
        mode=mode or federation.source_selection,  # type: ignore[arg-type]
        ttl_s=federation.probe_ttl_s,
        cache_file=Path(cache) if cache else None,
        timeout_s=federation.timeout_s,
    )


def run_source_selected_query(
    sparql: str, selector: SourceSelector, label: str = "federated query"
) -> dict[str, Any]:
    """Run a SELECT over the selector's endpoints with source selection.

    Args:
        sparql: a SELECT without ``SERVICE`` or ``GRAPH`` (see :mod:`.source_selection`).
        selector: the endpoints, selection mode and probe cache (kept between calls).
        label: names the query in errors.

    Returns:
        ``{"rows", "count", "seconds", "sparql" (rewritten), "patterns" (each with its
        sources), "service_blocks", "probe_requests", "probe_cache_hits"}``.

    """
    import pyoxigraph as ox

    from tasks.linked_data.geosparql.engine import query as geosparql_query

    started = time.perf_counter()
    before_requests, before_hits = selector.stats.requests, selector.stats.cache_hits
    plan = rewrite_federated(sparql, selector)
    selector.save()
    log.info("%s rewritten with %d SERVICE blocks: %s", label, plan.service_blocks, plan.sparql)
    try:
        solutions = geosparql_query(ox.Store(), plan.sparql, rewrite=False)
        variables = [v.value for v in solutions.variables]
        rows = [{name: term_value(row[name]) for name in variables} for row in solutions]
    except SyntaxError as err:
        raise FederationError(
            f"{label}: the rewritten query does not parse ({err}); rewritten text: {plan.sparql}"
        ) from None
    except OSError as err:
        raise EndpointUnavailableError(
            f"{label}: a SERVICE request failed: {err}; check the endpoints "
            f"{sorted(selector.endpoints.values())} (linked_data federation.endpoints)"
        ) from None
    return {
        "query": label,
        "rows": rows,
        "count": len(rows),
        "seconds": round(time.perf_counter() - started, 4),
        "sparql": plan.sparql,
        "patterns": plan.patterns,
        "service_blocks": plan.service_blocks,
        "probe_requests": selector.stats.requests - before_requests,
        "probe_cache_hits": selector.stats.cache_hits - before_hits,
    }


def run_federated_file(
    cfg: LinkedDataConfig,
    name_or_path: str,
    params: dict[str, Any] | None = None,
    mode: str | None = None,
) -> dict[str, Any]:
    """Run a query file (or shipped query) with parameters over every configured endpoint.

    Parameters are bound as by ``eeflow rdf query`` (typed, escaped); the query must not name
    endpoints itself (no ``SERVICE``): source selection decides where each pattern goes.
    """
    from tasks.linked_data.query import bind_parameters, load_query

    query = load_query(name_or_path)
    text = bind_parameters(query, params or {}, cfg.base_iri, cfg.federation.endpoints)
    return run_source_selected_query(text, selector_for(cfg, mode), f"query file {query.path}")
