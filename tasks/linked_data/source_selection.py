"""Source selection for federated SPARQL (the paper's Semagrow): which endpoint answers what.

:class:`SourceSelector` decides, for each triple pattern, which of the configured endpoints hold
matching triples: from the endpoint's VoID description when it publishes one (one ``SELECT`` per
endpoint for its ``void:propertyPartition`` / ``void:classPartition`` lists, trusted as complete),
otherwise by a SPARQL ``ASK`` per pattern. Answers are cached per (endpoint URL, pattern with its
variables renamed ``?v0 ?v1 ...``) for ``ttl_s`` seconds, in memory and, when given a file, across
runs (JSON, wall-clock expiry).

:func:`rewrite_federated` parses a SELECT query with rdflib's SPARQL algebra and writes it again
with every basic graph pattern replaced by ``SERVICE`` blocks: the patterns whose only source is
one endpoint go together into one ``SERVICE`` block for it (an exclusive group); a pattern with
several sources becomes ``{ SELECT DISTINCT * { { SERVICE <a> {tp} } UNION { SERVICE <b> {tp} }
} }`` (set semantics: the same rows as the pattern on the union of all sources); a pattern no source
can answer makes its basic graph pattern empty (``FILTER(false)``, no request). Supported:
SELECT (``DISTINCT``, ``REDUCED``, expressions, ``ORDER BY``, ``LIMIT`` / ``OFFSET``), basic
graph patterns, ``FILTER`` (``EXISTS`` / ``NOT EXISTS`` too), ``OPTIONAL``, ``UNION``, ``MINUS``,
``BIND``, ``VALUES``. Refused, with the construct named: ``GRAPH``, ``SERVICE`` (the query is
federated for you), property paths, sub-queries, aggregates / ``GROUP BY``, ``FROM``, and ASK /
CONSTRUCT / DESCRIBE queries. The rewritten query runs on an empty local pyoxigraph store that
carries eeflow's GeoSPARQL functions (``FILTER``s with ``geof:`` functions are evaluated locally
on the rows the endpoints return).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from tasks.errors import EeflowError, ErrorFamily

log = logging.getLogger(__name__)

RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
VOID = "http://rdfs.org/ns/void#"
SelectionMode = Literal["void+ask", "ask", "all"]
_VOID_QUERY = f"""SELECT ?kind ?iri WHERE {{
  ?dataset a <{VOID}Dataset> .
  {{ ?dataset <{VOID}propertyPartition>/<{VOID}property> ?iri BIND("property" AS ?kind) }}
  UNION {{ ?dataset <{VOID}classPartition>/<{VOID}class> ?iri BIND("class" AS ?kind) }}
}}"""


class FederationError(EeflowError, ValueError):
    """A federated query, an endpoint name or URL is not accepted (the message says why)."""


class EndpointUnavailableError(EeflowError, ConnectionError):
    """A configured endpoint did not answer a probe or a ``SERVICE`` request."""

    family: ClassVar[ErrorFamily] = ErrorFamily.UNAVAILABLE


def resolve_endpoint(endpoint: str, endpoints: dict[str, str]) -> str:
    """Query URL of a configured endpoint, given its name or its URL.

    Raises:
        FederationError: ``endpoint`` is neither a configured name nor a configured URL.

    """
    if endpoint in endpoints:
        return endpoints[endpoint]
    wanted = endpoint.rstrip("/")
    for url in endpoints.values():
        if url.rstrip("/") == wanted:
            return url
    configured = ", ".join(f"{n}={u}" for n, u in endpoints.items()) or "none"
    raise FederationError(
        f"endpoint {endpoint!r} is not configured (linked_data federation.endpoints: "
        f"{configured}); add it there as `name: http://host:port/query` and pass the name"
    )


Triple = tuple[Any, Any, Any]  # rdflib terms (Variable, URIRef, Literal, BNode)


def pattern_key(triple: Triple) -> str:
    """Return the pattern in N3, variables and blank nodes renamed ``?v0 ?v1 ...`` by position."""
    from rdflib.term import BNode, Variable

    names: dict[Any, str] = {}
    parts = []
    for term in triple:
        if isinstance(term, Variable | BNode):
            parts.append(names.setdefault(term, f"?v{len(names)}"))
        else:
            parts.append(term.n3())
    return " ".join(parts)


@dataclass
class SelectionStats:
    """Requests the selector made (and spared by its cache)."""

    ask_requests: int = 0
    void_requests: int = 0
    cache_hits: int = 0

    @property
    def requests(self) -> int:
        """All probe requests sent (ASK + VoID)."""
        return self.ask_requests + self.void_requests


@dataclass
class _VoidSummary:
    properties: frozenset[str]
    classes: frozenset[str]


@dataclass
class SourceSelector:
    """Which configured endpoints can answer a triple pattern (VoID, else ASK; cached).

    Args:
        endpoints: endpoint name -> SPARQL query URL (``linked_data.federation.endpoints``).
        mode: ``void+ask`` (VoID when published, else ASK), ``ask``, or ``all`` (no selection:
            every endpoint is a source of every pattern; the baseline).
        ttl_s: seconds a probe answer stays valid (0: no caching).
        cache_file: JSON file keeping the answers across runs (None: in memory only).
        timeout_s: seconds per probe request.
        clock: wall-clock seconds (tests inject one).

    """

    endpoints: dict[str, str]
    mode: SelectionMode = "void+ask"
    ttl_s: float = 300.0
    cache_file: Path | None = None
    timeout_s: float = 60.0
    clock: Callable[[], float] = time.time
    stats: SelectionStats = field(default_factory=SelectionStats)
    _cache: dict[str, tuple[Any, float]] = field(default_factory=dict, repr=False)
    _session: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise FederationError(
                "no federation endpoints configured: add `federation.endpoints: {name: "
                "http://host:port/query}` to the linked_data config"
            )
        if self.cache_file is not None and self.cache_file.is_file() and self.ttl_s > 0:
            try:
                stored = json.loads(self.cache_file.read_text())
                self._cache = {k: (v[0], float(v[1])) for k, v in stored.items()}
            except (ValueError, TypeError, IndexError, KeyError):
                log.warning("source cache %s is unreadable; starting empty", self.cache_file)

    def _cached(self, key: str) -> tuple[bool, Any]:
        entry = self._cache.get(key)
        if entry is not None and entry[1] > self.clock():
            self.stats.cache_hits += 1
            return True, entry[0]
        return False, None

    def _store(self, key: str, value: Any) -> None:
        if self.ttl_s > 0:
            self._cache[key] = (value, self.clock() + self.ttl_s)

    def save(self) -> None:
        """Write the unexpired cache entries to ``cache_file`` (if any)."""
        if self.cache_file is None or self.ttl_s <= 0:
            return
        now = self.clock()
        live = {k: [v, t] for k, (v, t) in self._cache.items() if t > now}
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(live, indent=0, sort_keys=True))
        tmp.replace(self.cache_file)

    def _post(self, name: str, sparql: str) -> Any:
        import pyoxigraph as ox
        import requests

        if self._session is None:
            self._session = requests.Session()
        url = self.endpoints[name]
        try:
            answer = self._session.post(
                url,
                data={"query": sparql},
                headers={"Accept": "application/sparql-results+json"},
                timeout=self.timeout_s,
            )
        except requests.RequestException as err:
            raise EndpointUnavailableError(
                f"federation endpoint {name!r} ({url}) is unreachable: {err}; start it, or "
                "remove it from linked_data federation.endpoints"
            ) from None
        if answer.status_code != 200:
            raise EndpointUnavailableError(
                f"federation endpoint {name!r} ({url}) answered HTTP {answer.status_code} to a "
                f"source-selection probe: {answer.text[:300]!r}; check that it is a SPARQL 1.1 "
                "query endpoint"
            )
        return ox.parse_query_results(answer.content, ox.QueryResultsFormat.JSON)

    def void_summary(self, name: str) -> _VoidSummary | None:
        """Return the endpoint's VoID property / class partitions, None if it publishes none."""
        key = f"void {self.endpoints[name]}"
        hit, value = self._cached(key)
        if not hit:
            self.stats.void_requests += 1
            rows = list(self._post(name, _VOID_QUERY))
            value = {
                "property": sorted(r["iri"].value for r in rows if r["kind"].value == "property"),
                "class": sorted(r["iri"].value for r in rows if r["kind"].value == "class"),
            }
            self._store(key, value)
        if not value["property"] and not value["class"]:
            return None
        return _VoidSummary(frozenset(value["property"]), frozenset(value["class"]))

    def _void_answer(self, summary: _VoidSummary, triple: Triple) -> bool | None:
        from rdflib.term import URIRef

        predicate, obj = triple[1], triple[2]
        if not isinstance(predicate, URIRef):
            return None  # ?p: VoID cannot say; ASK
        if str(predicate).startswith(VOID) or (
            isinstance(obj, URIRef) and str(obj).startswith(VOID)
        ):
            return None  # the description itself: ASK
        if str(predicate) == RDF_TYPE:
            if isinstance(obj, URIRef):
                return str(obj) in summary.classes
            return bool(summary.classes) or RDF_TYPE in summary.properties
        return str(predicate) in summary.properties

    def can_answer(self, name: str, triple: Triple) -> bool:
        """Whether endpoint ``name`` holds a triple matching ``triple``."""
        if self.mode == "void+ask":
            summary = self.void_summary(name)
            if summary is not None:
                answer = self._void_answer(summary, triple)
                if answer is not None:
                    return answer
        pattern = pattern_key(triple)
        key = f"ask {self.endpoints[name]} {pattern}"
        hit, value = self._cached(key)
        if hit:
            return bool(value)
        self.stats.ask_requests += 1
        value = bool(self._post(name, f"ASK {{ {pattern} }}"))
        self._store(key, value)
        return value

    def sources(self, triple: Triple) -> list[str]:
        """Names of the endpoints that can answer ``triple``, in configuration order."""
        if self.mode == "all":
            return list(self.endpoints)
        return [name for name in self.endpoints if self.can_answer(name, triple)]


# --- rewrite: rdflib algebra -> SPARQL text with SERVICE blocks ------------------------------


@dataclass
class FederatedPlan:
    """A rewritten query and the sources chosen for each triple pattern."""

    sparql: str
    patterns: list[dict[str, Any]]
    service_blocks: int


class _Rewriter:
    def __init__(self, selector: SourceSelector) -> None:
        self.selector = selector
        self.patterns: list[dict[str, Any]] = []
        self.service_blocks = 0
        self.bnodes: dict[Any, str] = {}

    # terms and expressions
    def term(self, term: Any) -> str:
        from rdflib.term import BNode, Literal, URIRef, Variable

        if isinstance(term, Variable):
            return f"?{term}"
        if isinstance(term, BNode):  # a query blank node is a variable not projected
            return self.bnodes.setdefault(term, f"?_fed_bnode{len(self.bnodes)}")
        if isinstance(term, URIRef | Literal):
            return str(term.n3())
        raise FederationError(f"unsupported term {term!r} in the query")

    def expr(self, node: Any) -> str:
        from rdflib.plugins.sparql.parserutils import CompValue

        if not isinstance(node, CompValue):
            return self.term(node)
        name = node.name
        text = self._operator_expr(node, name)
        return text if text is not None else self._call_expr(node, name)

    def _operator_expr(self, node: Any, name: str) -> str | None:
        """Write logical, relational, arithmetic and unary expressions; None for anything else."""
        if name == "ConditionalOrExpression":
            return "(" + " || ".join(self.expr(e) for e in [node.expr, *node.other]) + ")"
        if name == "ConditionalAndExpression":
            return "(" + " && ".join(self.expr(e) for e in [node.expr, *node.other]) + ")"
        if name == "RelationalExpression":
            if node.op in ("IN", "NOT IN"):
                items = ", ".join(self.expr(e) for e in node.other)
                return f"({self.expr(node.expr)} {node.op} ({items}))"
            return f"({self.expr(node.expr)} {node.op} {self.expr(node.other)})"
        if name in ("AdditiveExpression", "MultiplicativeExpression"):
            text = self.expr(node.expr)
            for op, other in zip(node.op, node.other, strict=True):
                text += f" {op} {self.expr(other)}"
            return f"({text})"
        if name in ("UnaryNot", "UnaryMinus", "UnaryPlus"):
            sign = {"UnaryNot": "!", "UnaryMinus": "-", "UnaryPlus": "+"}[name]
            return f"({sign}{self.expr(node.expr)})"
        return None

    def _call_expr(self, node: Any, name: str) -> str:
        """Write function calls, EXISTS and built-ins (aggregates are refused)."""
        if name == "Function":
            if node.distinct:
                raise FederationError("DISTINCT in a function call (an aggregate) is not supported")
            return f"{self.term(node.iri)}({', '.join(self.expr(e) for e in node.expr)})"
        if name in ("Builtin_EXISTS", "Builtin_NOTEXISTS"):
            keyword = "EXISTS" if name == "Builtin_EXISTS" else "NOT EXISTS"
            return f"{keyword} {self.group(node.graph)}"
        if name.startswith("Aggregate_"):
            raise FederationError(f"aggregates ({name[10:]}) are not supported in federation")
        if name.startswith("Builtin_"):
            args: list[str] = []
            for key, value in node.items():
                if key.startswith("_") or value is None:
                    continue
                values = value if isinstance(value, list) else [value]
                args.extend(self.expr(v) for v in values)
            return f"{name[8:]}({', '.join(args)})"
        raise FederationError(f"unsupported expression {name} in the query")

    # graph patterns
    def group(self, node: Any) -> str:
        name = node.name
        if name == "BGP":
            return "{ " + self.bgp(node.triples) + " }"
        if name == "Join":
            return f"{{ {self.group(node.p1)} {self.group(node.p2)} }}"
        if name == "LeftJoin":
            inner = self.group(node.p2)
            expr = node.expr
            if expr is not None and getattr(expr, "name", "") != "TrueFilter":
                inner = f"{{ {inner} FILTER({self.expr(expr)}) }}"
            return f"{{ {self.group(node.p1)} OPTIONAL {inner} }}"
        if name == "Filter":
            return f"{{ {self.group(node.p)} FILTER({self.expr(node.expr)}) }}"
        if name == "Union":
            return f"{{ {self.group(node.p1)} UNION {self.group(node.p2)} }}"
        if name == "Minus":
            return f"{{ {self.group(node.p1)} MINUS {self.group(node.p2)} }}"
        if name == "Extend":
            bind = f"BIND({self.expr(node.expr)} AS {self.term(node.var)})"
            return f"{{ {self.group(node.p)} {bind} }}"
        if name == "ToMultiSet" and getattr(node.p, "name", "") == "values":
            return "{ " + self.values(node.p.res) + " }"
        refused = {
            "Graph": "GRAPH",
            "ServiceGraphPattern": "SERVICE (name no endpoint; the query is federated for you)",
            "ToMultiSet": "sub-queries",
            "Project": "sub-queries",
            "Group": "GROUP BY / aggregates",
            "AggregateJoin": "GROUP BY / aggregates",
        }
        raise FederationError(f"{refused.get(name, name)} is not supported in federated queries")

    def values(self, rows: list[dict[Any, Any]]) -> str:
        variables = sorted({v for row in rows for v in row}, key=str)
        body = " ".join(
            "(" + " ".join(self.term(row[v]) if v in row else "UNDEF" for v in variables) + ")"
            for row in rows
        )
        return f"VALUES ({' '.join(self.term(v) for v in variables)}) {{ {body} }}"

    def bgp(self, triples: list[Triple]) -> str:
        from rdflib.paths import Path as PropertyPath

        if not triples:
            return ""
        exclusive: dict[str, list[str]] = {}
        shared: list[tuple[str, list[str]]] = []
        empty = False
        for triple in triples:
            if isinstance(triple[1], PropertyPath):
                raise FederationError(
                    f"property paths ({triple[1].n3()}) are not supported in federated "
                    "queries; write the steps as triple patterns"
                )
            text = " ".join(self.term(t) for t in triple) + " ."
            sources = self.selector.sources(triple)
            self.patterns.append({"pattern": text, "sources": sources})
            if not sources:
                empty = True
            elif len(sources) == 1:
                exclusive.setdefault(sources[0], []).append(text)
            else:
                shared.append((text, sources))
        if empty:
            return "FILTER(false)"
        blocks = []
        for name, texts in exclusive.items():
            self.service_blocks += 1
            blocks.append(f"SERVICE <{self.selector.endpoints[name]}> {{ {' '.join(texts)} }}")
        for text, sources in shared:
            self.service_blocks += len(sources)
            union = " UNION ".join(
                f"{{ SERVICE <{self.selector.endpoints[n]}> {{ {text} }} }}" for n in sources
            )
            blocks.append(f"{{ SELECT DISTINCT * WHERE {{ {union} }} }}")
        return " ".join(blocks)

    def query(self, algebra: Any) -> str:
        name = algebra.name
        if name != "SelectQuery":
            raise FederationError(
                f"{name.replace('Query', '').upper()} queries are not supported in federation; "
                "write a SELECT"
            )
        if algebra.get("datasetClause"):
            raise FederationError("FROM / FROM NAMED are not supported in federated queries")
        node = algebra.p
        modifier, limit, offset, order = "", None, 0, ""
        if node.name == "Slice":
            limit, offset, node = node.length, node.start or 0, node.p
        if node.name in ("Distinct", "Reduced"):
            modifier, node = node.name.upper() + " ", node.p
        if node.name != "Project":
            raise FederationError(f"unsupported query form {node.name}")
        variables = " ".join(self.term(v) for v in node.PV) or "*"
        node = node.p
        if node.name == "OrderBy":
            order = " ORDER BY " + " ".join(
                f"{c.order or 'ASC'}({self.expr(c.expr)})"
                if getattr(c, "name", "") == "OrderCondition"
                else self.expr(c)
                for c in node.expr
            )
            node = node.p
        text = f"SELECT {modifier}{variables} WHERE {self.group(node)}{order}"
        if limit is not None:
            text += f" LIMIT {limit}"
        if offset:
            text += f" OFFSET {offset}"
        return text


def rewrite_federated(sparql: str, selector: SourceSelector) -> FederatedPlan:
    """Rewrite a SELECT query into ``SERVICE`` blocks on the endpoints chosen by ``selector``.

    Raises:
        FederationError: the query does not parse, or uses a construct named in the module doc
            as not supported.

    """
    from pyparsing import ParseException
    from rdflib.plugins.sparql import prepareQuery

    try:
        prepared = prepareQuery(sparql)
    except ParseException as err:
        raise FederationError(f"federated query: SPARQL syntax error: {err}") from None
    rewriter = _Rewriter(selector)
    text = rewriter.query(prepared.algebra)
    return FederatedPlan(text, rewriter.patterns, rewriter.service_blocks)
