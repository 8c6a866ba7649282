"""Named GeoSPARQL queries (``queries/*.rq``) with typed, safely bound parameters.

A query file declares its parameters in header comments::

    # @param area wkt            CRS84 WKT
    # @param ice_type concept:ice_type
    # @embedded-only             (needs eeflow's custom functions, see functions.py)

User text never goes into the SPARQL text as is: each value is parsed and checked for its declared
type (``iri``, ``wkt``, ``date``, ``double``, ``integer``, ``string``, ``concept:SCHEME``,
``endpoint``), turned into a pyoxigraph term and written in its N-Triples form (which escapes
it) into a ``VALUES`` block placed first in the query's ``WHERE`` group - or, where the file has
``# @bind-values`` lines, at each of them instead (for groups the engine evaluates on their own,
such as ``MINUS`` blocks and sub-selects, which do not see the outer bindings). ``endpoint``
parameters (``SERVICE ?name``) become a validated ``<IRI>``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.linked_data.functions import custom_functions
from tasks.linked_data.namespaces import CRS84, WKT_LITERAL, XSD, concept_iri
from tasks.linked_data.vocabulary import code_list

log = logging.getLogger(__name__)

QUERIES_DIR = Path(__file__).resolve().parent / "queries"
_PARAM = re.compile(r"^#\s*@param\s+(\w+)\s+(\S+)", re.M)
_WHERE = re.compile(r"\bWHERE\s*\{", re.I)
_BIND_HERE = re.compile(r"^[ \t]*#\s*@bind-values\b.*$", re.M)
MAX_GRID_RADIUS_M = 25.0


class QueryError(ValueError):
    """A query file, a parameter value or the query's execution failed (message says which)."""


@dataclass(frozen=True)
class NamedQuery:
    """A query file with its declared parameters."""

    name: str
    path: Path
    text: str
    params: dict[str, str]
    embedded_only: bool


def available_queries() -> list[str]:
    """Names of the shipped queries."""
    return sorted(p.stem for p in QUERIES_DIR.glob("*.rq"))


def load_query(name_or_path: str | Path) -> NamedQuery:
    """Load a shipped query by name, or a ``.rq`` file by path."""
    path = Path(name_or_path)
    if path.suffix != ".rq":
        path = QUERIES_DIR / f"{name_or_path}.rq"
    if not path.is_file():
        raise QueryError(
            f"query {name_or_path!r} not found; shipped queries: {available_queries()}"
        )
    text = path.read_text()
    return NamedQuery(path.stem, path, text, dict(_PARAM.findall(text)), "@embedded-only" in text)


def to_term(kind: str, value: Any, name: str, base: str, endpoints: dict[str, str]) -> Any:
    """Parse a user value into a pyoxigraph term of the declared kind (raises QueryError)."""
    import pyoxigraph as ox
    import shapely

    text = str(value).strip()
    try:
        if kind == "iri" or kind == "endpoint":
            if kind == "endpoint":
                text = endpoints.get(text, text)
                if not text.startswith(("http://", "https://")):
                    raise ValueError(
                        f"not an http(s) URL nor a configured endpoint {sorted(endpoints)}"
                    )
            return ox.NamedNode(text)
        if kind.startswith("concept:"):
            scheme = kind.split(":", 1)[1]
            allowed = [*code_list(scheme), *(["ice"] if scheme == "ice_type" else [])]
            if text not in allowed:
                raise ValueError(f"not in code list {scheme}: {allowed}")
            return ox.NamedNode(concept_iri(base, scheme, text))
        if kind == "wkt":
            match = re.match(r"^<([^>]*)>\s*(.*)$", text, re.S)
            body = text
            if match:
                if match.group(1) != CRS84:
                    raise ValueError(f"only CRS84 WKT is supported (<{CRS84}>)")
                body = match.group(2)
            geometry = shapely.from_wkt(body)
            if geometry is None or geometry.is_empty or not geometry.is_valid:
                raise ValueError("empty or invalid geometry")
            return ox.Literal(
                f"<{CRS84}> {shapely.to_wkt(geometry, trim=True)}",
                datatype=ox.NamedNode(WKT_LITERAL),
            )
        if kind == "date":
            return ox.Literal(
                dt.date.fromisoformat(text).isoformat(), datatype=ox.NamedNode(XSD + "date")
            )
        if kind == "double":
            number = float(text)
            if not math.isfinite(number):
                raise ValueError("not finite")
            return ox.Literal(repr(number), datatype=ox.NamedNode(XSD + "double"))
        if kind == "integer":
            return ox.Literal(str(int(text)), datatype=ox.NamedNode(XSD + "integer"))
        if kind == "string":
            return ox.Literal(text)
    except (ValueError, TypeError, shapely.errors.GEOSException) as err:
        raise QueryError(f"parameter {name}={text[:120]!r} is not a valid {kind}: {err}") from None
    raise QueryError(f"parameter {name}: unknown declared type {kind!r}")


def bind_parameters(
    query: NamedQuery, values: dict[str, Any], base: str, endpoints: dict[str, str] | None = None
) -> str:
    """Return the query text with every declared parameter bound (see the module docstring)."""
    missing = sorted(set(query.params) - set(values))
    unknown = sorted(set(values) - set(query.params))
    if missing or unknown:
        raise QueryError(
            f"query {query.name}: missing parameters {missing}, unknown parameters {unknown}; "
            f"declared: {query.params}"
        )
    if (
        "radius" in values
        and "gridCell" in query.text
        and float(values["radius"]) > MAX_GRID_RADIUS_M
    ):
        raise QueryError(
            f"query {query.name}: radius {values['radius']} m exceeds the grid "
            f"index margin of {MAX_GRID_RADIUS_M} m"
        )
    text = query.text
    bound: list[tuple[str, Any]] = []
    for name, kind in query.params.items():
        term = to_term(kind, values[name], name, base, endpoints or {})
        if kind == "endpoint":
            text, count = re.subn(
                rf"SERVICE\s+(SILENT\s+)?\?{name}\b",
                lambda m, t=term: f"SERVICE {m.group(1) or ''}{t}",
                text,
            )
            if count == 0:
                raise QueryError(f"query {query.name}: endpoint parameter ?{name} is not a SERVICE")
        else:
            bound.append((name, term))
    if bound and _BIND_HERE.search(text):
        values_block = (
            "VALUES ("
            + " ".join(f"?{n}" for n, _ in bound)
            + ") { ("
            + " ".join(str(t) for _, t in bound)
            + ") }"
        )
        text = _BIND_HERE.sub(lambda _m: values_block, text)
    elif bound:
        match = _WHERE.search(text)
        if match is None:
            raise QueryError(f"query {query.name}: no 'WHERE {{' to bind parameters into")
        values_block = (
            " VALUES ("
            + " ".join(f"?{n}" for n, _ in bound)
            + ") { ("
            + " ".join(str(t) for _, t in bound)
            + ") }\n"
        )
        text = text[: match.end()] + values_block + text[match.end() :]
    return text


def term_value(term: Any) -> Any:
    """Convert a result term to Python: IRIs as str, numbers as int/float, others as str."""
    if term is None:
        return None
    datatype = getattr(getattr(term, "datatype", None), "value", "")
    if datatype in (XSD + "integer", XSD + "long", XSD + "int"):
        return int(term.value)
    if datatype in (XSD + "double", XSD + "float", XSD + "decimal"):
        return float(term.value)
    if datatype == XSD + "boolean":
        return term.value == "true"
    return term.value


def run_sparql(
    store: Any, sparql: str, *, embedded_only: bool = False, label: str = "query"
) -> list[dict[str, Any]]:
    """Run a SELECT on an open store; rows as dicts of Python values."""
    from tasks.linked_data.store import EmbeddedStore

    if embedded_only and not isinstance(store, EmbeddedStore):
        raise QueryError(
            f"{label} uses eeflow's custom GeoSPARQL functions (geof:distance for any geometry, "
            "geof:buffer) and runs only on the embedded store; a plain SPARQL server would "
            "leave them unbound and answer wrongly"
        )
    kwargs: dict[str, Any] = {}
    if isinstance(store, EmbeddedStore):
        kwargs["custom_functions"] = custom_functions()
    try:
        solutions = store.query(sparql, **kwargs)
        variables = [v.value for v in solutions.variables]
        return [{name: term_value(row[name]) for name in variables} for row in solutions]
    except SyntaxError as err:
        raise QueryError(f"{label}: SPARQL syntax error: {err}") from None


def run_named_query(
    cfg: Any, name: str, params: dict[str, Any], store: Any = None
) -> dict[str, Any]:
    """Run a shipped (or file) query with parameters on the configured store.

    Returns:
        ``{"query": name, "rows": [...], "count": n, "seconds": s}``.

    """
    from tasks.linked_data.store import open_store

    query = load_query(name)
    text = bind_parameters(query, params, cfg.base_iri, cfg.federation.endpoints)
    own = store is None
    target = store or open_store(cfg)
    started = time.perf_counter()
    try:
        rows = run_sparql(
            target, text, embedded_only=query.embedded_only, label=f"query file {query.path}"
        )
    finally:
        if own:
            target.close()
    seconds = time.perf_counter() - started
    log.info("query %s: %d rows in %.3fs", query.name, len(rows), seconds)
    return {"query": query.name, "rows": rows, "count": len(rows), "seconds": round(seconds, 4)}
