"""Named GeoSPARQL queries (``queries/*.rq``) with typed, safely bound parameters.

A query file declares its parameters in header comments::

    # @param area wkt            CRS84 WKT
    # @param ice_type concept:ice_type
    # @embedded-only             (needs eeflow's custom functions, see functions.py)

User text never goes into the SPARQL text as is: each value is parsed and checked for its declared
type (``iri``, ``wkt``, ``date``, ``double``, ``distance`` (metres, >= 0; also a ``double``
named ``radius``), ``integer``, ``string``, ``concept:SCHEME``,
``endpoint``), turned into a pyoxigraph term and written in its N-Triples form (which escapes
it) into a ``VALUES`` block placed first in the query's ``WHERE`` group - or, where the file has
``# @bind-values`` lines, at each of them instead (for groups the engine evaluates on their own,
such as ``MINUS`` blocks and sub-selects, which do not see the outer bindings). ``endpoint``
parameters (``SERVICE ?name``) become a validated ``<IRI>``.

Grid pre-filter: a query whose header has ``# @grid-cells PARAM -> ?geometry`` (PARAM a ``wkt``
parameter) gets, at its ``# @grid-values`` line,
``VALUES ?grid_cell { "i_j" ... } ?geometry eeo:gridCell ?grid_cell .`` listing the
``eeo:gridCell`` labels (:data:`~tasks.linked_data.namespaces.GRID_CELL_DEG` grid, labels made by
:func:`tasks.linked_data.export.grid_cells`, so they are exactly the exporter's) of every cell the
bounding box of PARAM touches, grown by :data:`REGION_MARGIN_M`. A geometry that intersects the
region shares at least one such cell (the exporter lists every cell of a geometry's bounding box
grown by 25 m), so the join drops only geometries that cannot match the exact
``geof:sfIntersects`` that follows. A geometry sharing several cells with the region comes once
per cell: such queries ``SELECT DISTINCT``. Regions touching more than ``max_grid_cells`` cells
(default :data:`MAX_GRID_CELLS`) get no pre-filter (the line is dropped; the query scans): a long
VALUES list makes oxigraph's plan slower than the scan (see :func:`grid_prefilter`). Lines ending
in ``# @if-grid`` are kept only with the pre-filter, lines ending in ``# @if-no-grid`` only
without it (join shapes that suit each plan).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.errors import EeflowError
from tasks.linked_data.export import METRES_PER_DEG_LAT, cell_label, grid_cells
from tasks.linked_data.geosparql.engine import query as geosparql_query
from tasks.linked_data.namespaces import (
    CRS84,
    EEO,
    WKT_LITERAL,
    XSD,
    concept_iri,
)
from tasks.linked_data.vocabulary import code_list

if TYPE_CHECKING:
    from tasks.config.linked_data import LinkedDataConfig

log = logging.getLogger(__name__)

QUERIES_DIR = Path(__file__).resolve().parent / "queries"
#: ``double`` parameters that are distances in metres: negative values are refused.
DISTANCE_PARAMS = frozenset({"radius", "distance", "buffer", "max_distance"})
_PARAM = re.compile(r"^#\s*@param\s+(\w+)\s+(\S+)", re.M)
_WHERE = re.compile(r"\bWHERE\s*\{", re.I)
_BIND_HERE = re.compile(r"^[ \t]*#\s*@bind-values\b.*$", re.M)
_GRID_CELLS = re.compile(r"^#\s*@grid-cells\s+(\w+)\s*->\s*\?(\w+)", re.M)
_GRID_HERE = re.compile(r"^[ \t]*#\s*@grid-values\b.*$", re.M)
_IF_GRID = re.compile(r"^.*#\s*@if-grid\s*\n", re.M)
_IF_NO_GRID = re.compile(r"^.*#\s*@if-no-grid\s*\n", re.M)
MAX_GRID_RADIUS_M = 25.0
#: Regions whose bounding box touches more grid cells than this are not pre-filtered (see
#: :func:`grid_prefilter`; 256 cells = 0.16 x 0.16 deg, about 12 x 18 km at 47 N).
MAX_GRID_CELLS = 256
#: The region's bounding box is grown by this much before listing its cells (absorbs the rounding
#: of exported point WKT; polygons carry a 25 m margin already). Extra cells only add candidates.
REGION_MARGIN_M = 1.0


class QueryError(EeflowError, ValueError):
    """A query file, a parameter value or the query's execution failed (message says which)."""


@dataclass(frozen=True)
class NamedQuery:
    """A query file with its declared parameters."""

    name: str
    path: Path
    text: str
    params: dict[str, str]
    embedded_only: bool
    grid_cells: tuple[str, str] | None = None


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
    params = dict(_PARAM.findall(text))
    grid = _GRID_CELLS.search(text)
    if grid is not None:
        if params.get(grid.group(1)) != "wkt":
            raise QueryError(
                f"query file {path}: '# @grid-cells {grid.group(1)}' must name a wkt parameter; "
                f"declared: {params}"
            )
        if _GRID_HERE.search(text) is None:
            raise QueryError(
                f"query file {path}: has '# @grid-cells' but no '# @grid-values' line to put the "
                "cells at"
            )
    return NamedQuery(
        path.stem,
        path,
        text,
        params,
        "@embedded-only" in text,
        (grid.group(1), grid.group(2)) if grid else None,
    )


def region_bounds(wkt: str, margin_m: float = REGION_MARGIN_M) -> tuple[float, ...]:
    """Bounding box ``(lon0, lat0, lon1, lat1)`` of a CRS84 WKT grown by ``margin_m`` metres.

    Args:
        wkt: CRS84 WKT, optionally prefixed by ``<CRS84 IRI>`` (a bound ``wkt`` parameter).
        margin_m: metres added on every side of the bounding box.

    """
    import shapely

    body = re.sub(r"^\s*<[^>]*>\s*", "", wkt)
    lon0, lat0, lon1, lat1 = shapely.bounds(shapely.from_wkt(body)).tolist()
    dlat = margin_m / METRES_PER_DEG_LAT
    dlon = margin_m / (METRES_PER_DEG_LAT * max(math.cos(math.radians((lat0 + lat1) / 2)), 0.01))
    return lon0 - dlon, lat0 - dlat, lon1 + dlon, lat1 + dlat


def region_cell_range(wkt: str, margin_m: float = REGION_MARGIN_M) -> tuple[int, int, int, int]:
    """Grid cell index range ``(i0, i1, j0, j1)`` of :func:`region_bounds` (labels ``i_j``)."""
    lon0, lat0, lon1, lat1 = region_bounds(wkt, margin_m)
    i0, j0 = (int(v) for v in cell_label(lon0, lat0).split("_"))
    i1, j1 = (int(v) for v in cell_label(lon1, lat1).split("_"))
    return i0, i1, j0, j1


def region_cells(wkt: str, margin_m: float = REGION_MARGIN_M) -> list[str]:
    """``eeo:gridCell`` labels of every cell :func:`region_bounds` touches (exporter's labels)."""
    import numpy as np
    import shapely

    box = shapely.box(*region_bounds(wkt, margin_m))
    _rows, labels = grid_cells(np.array([box]), margin_m=0.0)
    return labels.to_pylist()


def grid_prefilter(
    geometry: str, wkt: str, max_cells: int = MAX_GRID_CELLS, margin_m: float = REGION_MARGIN_M
) -> str:
    """SPARQL text restricting ``?geometry`` to geometries sharing a grid cell with the region.

    Returns ``VALUES ?grid_cell { "i_j" ... } ?geometry eeo:gridCell ?grid_cell .`` (typed string
    literals, the exporter's labels) when the region's bounding box touches at most ``max_cells``
    cells, else ``""``: no pre-filter, the query scans as it would without one (measured on 110k
    fields: the cell join beats the scan up to ~400 cells and is far slower beyond).
    """
    import pyoxigraph as ox

    i0, i1, j0, j1 = region_cell_range(wkt, margin_m)
    count = (i1 - i0 + 1) * (j1 - j0 + 1)
    if count > max_cells:
        log.info("grid pre-filter: region touches %d cells > %d, not used", count, max_cells)
        return ""
    labels = region_cells(wkt, margin_m)
    if len(labels) != count:
        raise QueryError(f"grid pre-filter: {len(labels)} cell labels for {count} cells")
    cells = " ".join(str(ox.Literal(c)) for c in labels)
    return f"VALUES ?grid_cell {{ {cells} }} ?{geometry} <{EEO}gridCell> ?grid_cell ."


def _iri_term(kind: str, text: str, endpoints: dict[str, str]) -> Any:
    import pyoxigraph as ox

    if kind == "endpoint":
        from tasks.linked_data.source_selection import FederationError, resolve_endpoint

        try:  # only configured endpoints: a query never calls an arbitrary URL
            text = resolve_endpoint(text, endpoints)
        except FederationError as err:
            raise ValueError(str(err)) from None
    return ox.NamedNode(text)


def _concept_term(kind: str, text: str, base: str) -> Any:
    import pyoxigraph as ox

    scheme = kind.split(":", 1)[1]
    allowed = [*code_list(scheme), *(["ice"] if scheme == "ice_type" else [])]
    if text not in allowed:
        raise ValueError(f"not in code list {scheme}: {allowed}")
    return ox.NamedNode(concept_iri(base, scheme, text))


def _wkt_term(text: str) -> Any:
    import pyoxigraph as ox
    import shapely

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


def _double_term(kind: str, text: str, name: str) -> Any:
    import pyoxigraph as ox

    number = float(text)
    if not math.isfinite(number):
        raise ValueError("not finite")
    if (kind == "distance" or name in DISTANCE_PARAMS) and number < 0:
        raise ValueError("a distance in metres must be 0 or more")
    return ox.Literal(repr(number), datatype=ox.NamedNode(XSD + "double"))


def _parse_term(kind: str, text: str, name: str, base: str, endpoints: dict[str, str]) -> Any:
    """Term of a declared kind, None for an unknown kind (raises ValueError for a bad value)."""
    import pyoxigraph as ox

    if kind == "iri" or kind == "endpoint":
        return _iri_term(kind, text, endpoints)
    if kind.startswith("concept:"):
        return _concept_term(kind, text, base)
    if kind == "wkt":
        return _wkt_term(text)
    if kind == "date":
        return ox.Literal(
            dt.date.fromisoformat(text).isoformat(), datatype=ox.NamedNode(XSD + "date")
        )
    if kind in ("double", "distance"):
        return _double_term(kind, text, name)
    if kind == "integer":
        return ox.Literal(str(int(text)), datatype=ox.NamedNode(XSD + "integer"))
    if kind == "string":
        return ox.Literal(text)
    return None


def to_term(kind: str, value: Any, name: str, base: str, endpoints: dict[str, str]) -> Any:
    """Parse a user value into a pyoxigraph term of the declared kind (raises QueryError)."""
    import shapely

    text = str(value).strip()
    try:
        term = _parse_term(kind, text, name, base, endpoints)
    except (ValueError, TypeError, shapely.errors.GEOSException) as err:
        raise QueryError(f"parameter {name}={text[:120]!r} is not a valid {kind}: {err}") from None
    if term is None:
        raise QueryError(f"parameter {name}: unknown declared type {kind!r}")
    return term


def bind_parameters(
    query: NamedQuery,
    values: dict[str, Any],
    base: str,
    endpoints: dict[str, str] | None = None,
    max_grid_cells: int = MAX_GRID_CELLS,
) -> str:
    """Return the query text with every declared parameter bound (see the module docstring).

    Args:
        query: the loaded query.
        values: parameter name -> user value (parsed and checked for its declared type).
        base: base IRI of data and concept IRIs.
        endpoints: configured federation endpoint names -> URLs.
        max_grid_cells: above this many region cells the query gets no grid pre-filter (scan).

    """
    missing = sorted(set(query.params) - set(values))
    unknown = sorted(set(values) - set(query.params))
    if missing or unknown:
        raise QueryError(
            f"query {query.name}: missing parameters {missing}, unknown parameters {unknown}; "
            f"declared: {query.params}"
        )
    text = query.text
    bound: list[tuple[str, Any]] = []
    for name, kind in query.params.items():
        term = to_term(kind, values[name], name, base, endpoints or {})
        if name == "radius" and "gridCell" in query.text and float(term.value) > MAX_GRID_RADIUS_M:
            raise QueryError(
                f"query {query.name}: radius {term.value} m exceeds the grid "
                f"index margin of {MAX_GRID_RADIUS_M} m"
            )
        if kind == "endpoint":

            def service(m: re.Match[str], t: Any = term) -> str:
                return f"SERVICE {m.group(1) or ''}{t}"

            text, count = re.subn(rf"SERVICE\s+(SILENT\s+)?\?{name}\b", service, text)
            if count == 0:
                raise QueryError(f"query {query.name}: endpoint parameter ?{name} is not a SERVICE")
        else:
            bound.append((name, term))
    if query.grid_cells is not None:
        param, variable = query.grid_cells
        region = dict(bound)[param].value
        prefilter = grid_prefilter(variable, region, max_grid_cells)
        text = _GRID_HERE.sub(lambda _m: prefilter, text)
        text = (_IF_NO_GRID if prefilter else _IF_GRID).sub("", text)
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

    if embedded_only and not isinstance(store, EmbeddedStore) and not serves_geosparql(store):
        raise QueryError(
            f"{label} uses eeflow's GeoSPARQL functions (geof:distance for any geometry, "
            "geof:buffer) and runs only on the embedded store or behind `eeflow rdf serve`; "
            "this SPARQL server lacks them and would leave them unbound and answer wrongly"
        )
    try:
        if isinstance(store, EmbeddedStore):
            # every geof: function + the GeoSPARQL query rewrite (tasks/linked_data/geosparql)
            solutions = geosparql_query(store.store, sparql)
        else:
            solutions = store.query(sparql)
        variables = [v.value for v in solutions.variables]
        return [{name: term_value(row[name]) for name in variables} for row in solutions]
    except SyntaxError as err:
        raise QueryError(f"{label}: SPARQL syntax error: {err}") from None


_GEOSPARQL_PROBE = (
    "SELECT ?b WHERE { BIND(<http://www.opengis.net/def/function/geosparql/buffer>("
    '"POINT(0 0)"^^<http://www.opengis.net/ont/geosparql#wktLiteral>, 1, '
    "<http://www.opengis.net/def/uom/OGC/1.0/metre>) AS ?b) }"
)
_PROBED: dict[str, bool] = {}


def serves_geosparql(store: Any) -> bool:
    """Whether an HTTP store evaluates eeflow's ``geof:`` functions (``eeflow rdf serve``).

    Asks once per query URL for a ``geof:buffer`` (plain Oxigraph refuses or leaves it unbound).
    """
    import pyoxigraph as ox
    import requests

    url = store.cfg.endpoint("query")
    if url not in _PROBED:
        try:  # one request, no retries: plain Oxigraph answers 500 "not supported"
            answer = store.session.post(
                url,
                data={"query": _GEOSPARQL_PROBE},
                headers={"Accept": "application/sparql-results+json"},
                timeout=store.cfg.timeout_s,
            )
        except requests.RequestException:
            return False  # unreachable now: let the query itself report it
        rows = []
        if answer.status_code == 200:
            parsed = ox.parse_query_results(answer.content, ox.QueryResultsFormat.JSON)
            assert isinstance(parsed, ox.QuerySolutions)  # the probe is a SELECT
            rows = list(parsed)
        _PROBED[url] = bool(rows) and rows[0]["b"] is not None
    return _PROBED[url]


def run_named_query(
    cfg: LinkedDataConfig,
    name: str,
    params: dict[str, Any],
    store: Any = None,
    max_grid_cells: int = MAX_GRID_CELLS,
) -> dict[str, Any]:
    """Run a shipped (or file) query with parameters on the configured store.

    ``max_grid_cells``: see :func:`bind_parameters` (grid pre-filter of region queries).

    Returns:
        ``{"query": name, "rows": [...], "count": n, "seconds": s}``.

    """
    from tasks.linked_data.store import open_store

    query = load_query(name)
    text = bind_parameters(query, params, cfg.base_iri, cfg.federation.endpoints, max_grid_cells)
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
