"""GeoSPARQL query-rewrite extension (req. 28-30): topological properties from geometries.

A triple pattern ``S geo:sfWithin O`` (any Simple Features, Egenhofer or RCC8 property) is
replaced by a group that matches the asserted triple (e.g. eeflow's interlinking graph) *or*
computes the relation from the serialisations of ``S`` and ``O`` - features through their
``geo:hasDefaultGeometry``, geometries themselves (the standard's four rules: feature-feature,
feature-geometry, geometry-feature, geometry-geometry)::

    { SELECT DISTINCT ?f1 ?f2 WHERE {
        { ?f1 geo:sfWithin ?f2 } UNION {
          ?g1 geo:asWKT|geo:asGML ?l1 . ?f1 geo:hasDefaultGeometry? ?g1 .
          ?g2 geo:asWKT|geo:asGML ?l2 . ?f2 geo:hasDefaultGeometry? ?g2 .
          FILTER(geof:sfWithin(?l1, ?l2)) } } }

The rewrite works on the query's tokens (no full SPARQL parser): it handles triple patterns whose
subject and object are variables or IRIs, written ``S P O .`` or inside ``;`` predicate-object
lists, in the WHERE clause (CONSTRUCT templates and updates are left alone). Patterns in other
shapes (object lists with ``,``, blank-node subjects, property paths) are left as they are, i.e.
matched against asserted triples only. Cost: with both ends unbound the computed branch relates
every geometry to every geometry (n^2 function calls) - for large sets materialise the relations
with ``tasks/interlinking`` and query with the rewrite off (``rewrite=False``, ``eeflow rdf serve
--no-rewrite``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.linked_data.geosparql.functions import TOPOLOGY_RELATIONS
from tasks.linked_data.namespaces import GEO, GEOF

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<iri><[^<>"{}|^`\\\s]*>)
  | (?P<string>'''(?:[^'\\]|\\.|'(?!''))*'''|\"\"\"(?:[^"\\]|\\.|"(?!""))*\"\"\"
               |'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
  | (?P<var>[?$][A-Za-z0-9_\u00b7\u00c0-\uffff]+)
  | (?P<lang>@[A-Za-z]+(?:-[A-Za-z0-9]+)*)
  | (?P<pname>(?:[A-Za-z\u00c0-\uffff](?:[\w.\-\u00b7\u00c0-\uffff]*[\w\-\u00b7\u00c0-\uffff])?)?
               :(?:[\w:%\-\u00c0-\uffff](?:[\w.:%\-\u00c0-\uffff]*[\w:%\-\u00c0-\uffff])?)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*|[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<punct>\^\^|&&|\|\||!=|<=|>=|.)
    """,
    re.X | re.S,
)
RELATION_IRIS = {GEO + name: name for name in TOPOLOGY_RELATIONS}
_TERM_KINDS = ("iri", "var", "pname")
_STARTS = ("{", ".", "}", ")")


@dataclass
class _Token:
    kind: str
    text: str


def tokenize(sparql: str) -> list[_Token]:
    """Split SPARQL text into tokens (whitespace and comments kept, so joining gives the text)."""
    return [
        _Token(match.lastgroup or "punct", match.group()) for match in _TOKEN.finditer(sparql)
    ]


def _prefixes(tokens: list[_Token]) -> dict[str, str]:
    found = {}
    for i, token in enumerate(tokens[:-2]):
        if token.kind == "word" and token.text.upper() == "PREFIX":
            name, iri = tokens[i + 1], tokens[i + 2]
            if name.kind == "pname" and iri.kind == "iri":
                found[name.text[:-1]] = iri.text[1:-1]
    return found


def _expand(token: _Token, prefixes: dict[str, str]) -> str | None:
    if token.kind == "iri":
        return token.text[1:-1]
    if token.kind == "pname":
        prefix, _, local = token.text.partition(":")
        if prefix in prefixes:
            return prefixes[prefix] + local
    return None


def _is_term(token: _Token) -> bool:
    return token.kind in _TERM_KINDS


def _protected(tokens: list[_Token]) -> set[int]:
    """Indexes (into the significant tokens) of CONSTRUCT templates: never rewritten."""
    protected: set[int] = set()
    for i, token in enumerate(tokens):
        if token.kind == "word" and token.text.upper() == "CONSTRUCT" and i + 1 < len(tokens):
            if tokens[i + 1].text != "{":
                continue
            depth = 0
            for j in range(i + 1, len(tokens)):
                depth += {"{": 1, "}": -1}.get(tokens[j].text, 0)
                protected.add(j)
                if depth == 0:
                    break
    return protected


def _skip_object_back(tokens: list[_Token], k: int) -> int | None:
    """Index just before the object term ending at ``k`` (literals with ^^ / @lang included)."""
    if k < 0:
        return None
    token = tokens[k]
    if token.kind == "lang" and k >= 1 and tokens[k - 1].kind == "string":
        return k - 2
    if _is_term(token) and k >= 2 and tokens[k - 1].text == "^^":
        return k - 3
    if _is_term(token) or token.kind in ("string", "word"):
        return k - 1
    return None


def _subject_index(tokens: list[_Token], i: int) -> int | None:
    """Subject of the predicate at ``i`` (through ``;`` lists), or None if not a simple term."""
    k = i - 1
    while k >= 0 and tokens[k].text == ";":
        while k >= 0 and tokens[k].text == ";":
            k -= 1
        skipped = _skip_object_back(tokens, k)
        while skipped is not None and skipped >= 0 and tokens[skipped].text == ",":
            skipped = _skip_object_back(tokens, skipped - 1)
        if skipped is None or skipped < 0:
            return None
        k = skipped
        if not (_is_term(tokens[k]) or tokens[k].text == "a"):
            return None
        k -= 1
    if k >= 0 and _is_term(tokens[k]) and (k == 0 or tokens[k - 1].text in _STARTS):
        return k
    return None


def _group(subject: str, relation: str, obj: str, n: int) -> str:
    g1, g2, l1, l2 = (f"?geo_rw{n}_{name}" for name in ("g1", "g2", "l1", "l2"))
    serialisation = f"(<{GEO}asWKT>|<{GEO}asGML>)"
    default = f"<{GEO}hasDefaultGeometry>?"
    body = (
        f"{{ {subject} <{GEO}{relation}> {obj} }} UNION {{ "
        f"{g1} {serialisation} {l1} . {subject} {default} {g1} . "
        f"{g2} {serialisation} {l2} . {obj} {default} {g2} . "
        f"FILTER(<{GEOF}{relation}>({l1}, {l2})) }}"
    )
    variables = [t for t in dict.fromkeys((subject, obj)) if t.startswith(("?", "$"))]
    if not variables:
        return f" FILTER EXISTS {{ {body} }} "
    return f" {{ SELECT DISTINCT {' '.join(variables)} WHERE {{ {body} }} }} "


def rewrite_query(sparql: str) -> str:
    """Return ``sparql`` with topological triple patterns rewritten (see the module doc).

    Queries without a ``geo:`` topological property come back unchanged (same string).
    """
    if not any(name in sparql for name in TOPOLOGY_RELATIONS):
        return sparql
    everything = tokenize(sparql)
    tokens = [t for t in everything if t.kind not in ("ws", "comment")]
    if any(t.kind == "word" and t.text.upper() in ("INSERT", "DELETE", "LOAD") for t in tokens):
        return sparql
    prefixes = _prefixes(tokens)
    protected = _protected(tokens)
    removed: set[int] = set()
    groups: dict[int, list[str]] = {}
    for i, token in enumerate(tokens):
        iri = _expand(token, prefixes) if _is_term(token) else None
        if iri not in RELATION_IRIS or i in protected or i + 2 >= len(tokens):
            continue
        obj, after = tokens[i + 1], tokens[i + 2]
        if not _is_term(obj) or after.text not in (".", "}", ";"):
            continue
        s = _subject_index(tokens, i)
        if s is None:
            continue
        relation = RELATION_IRIS[str(iri)]
        groups.setdefault(s, []).append(
            _group(tokens[s].text, relation, obj.text, sum(map(len, groups.values())))
        )
        if tokens[i - 1].text == ";" and i - 1 not in removed:
            removed.update((i - 1, i, i + 1))  # "; P O": the list keeps its other pairs
        elif after.text == ";":
            removed.update((i, i + 1, i + 2))  # "S P O ;" (or its earlier pairs went already)
        else:
            removed.update((s, i, i + 1, *((i + 2,) if after.text == "." else ())))
    if not groups:
        return sparql
    for index, token in enumerate(tokens):
        text = " " if index in removed else token.text
        token.text = "".join(groups.get(index, [])) + text
    return "".join(t.text for t in everything)
