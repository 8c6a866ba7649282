"""The eeflow ontology plus SKOS concept schemes generated from the code-list files.

Code lists stay data: ice types from ``tasks/domain/codelists/ice_classes.csv``, crop types from
``tasks.domain.crops.CROP_CLASSES``, LUCAS LC1 classes and their mapping to crop types from
the LUCAS evaluator's table ``tasks/lucas/codelists/lc1_to_crop_class.csv`` (one source for the
Python and the GeoSPARQL form of the 10 m rule; ``barley`` maps to winter and spring barley, the
``merge`` rule; ``non_crop`` / ``not_comparable`` codes get no crop match), product types from
``codelists/product_types.csv``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.namespace import OWL, RDF, RDFS, SKOS

from tasks.linked_data.namespaces import (
    DEFAULT_BASE,
    EEO,
    concept_iri,
    scheme_iri,
)

HERE = Path(__file__).resolve().parent
ONTOLOGY_PATH = HERE / "ontology" / "eeflow.ttl"
CODELISTS = HERE / "codelists"
EEO_NS = Namespace(EEO)

#: code-list scheme name -> class of its concepts.
SCHEMES: dict[str, str] = {
    "ice_type": "IceType",
    "crop_type": "CropType",
    "lucas_lc1": "LandCoverClass",
    "product_type": "ProductType",
}


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@cache
def code_list(scheme: str) -> tuple[str, ...]:
    """Return the allowed codes of a code list (``ice_type``, ``crop_type``, ``lucas_lc1`` ...)."""
    if scheme == "ice_type":
        from tasks.domain.ice import ice_classes

        # the five classes plus their binary merge ("ice"; "water" is both), as charts of the
        # binary scheme carry the merged names
        names = [c.name for c in ice_classes()]
        return tuple(names + sorted({c.binary_name for c in ice_classes()} - set(names)))
    if scheme == "crop_type":
        from tasks.domain.crops import CROP_CLASSES

        return tuple(CROP_CLASSES)
    if scheme == "lucas_lc1":
        return tuple(dict.fromkeys(r["lc1_code"] for r in lucas_lc1_mapping()))
    if scheme == "product_type":
        return tuple(r["code"] for r in _read_csv(CODELISTS / "product_types.csv"))
    raise ValueError(f"code list {scheme!r} unknown; allowed: {sorted(SCHEMES)}")


LUCAS_MAPPING = HERE.parent / "lucas" / "codelists" / "lc1_to_crop_class.csv"
#: reference classes of the LUCAS table that are not crop types, and what they match instead.
_SPECIAL_CLASSES: dict[str, tuple[str, ...]] = {
    "barley": ("winter_barley", "spring_barley"),
    "non_crop": (),
    "not_comparable": (),
}


@cache
def lucas_lc1_mapping() -> tuple[dict[str, str], ...]:
    """Rows of the LUCAS LC1 table (lc1_code, lc1_label, reference_class, ...), validated."""
    from tasks.domain.crops import CROP_CLASSES

    rows = _read_csv(LUCAS_MAPPING)
    for row in rows:
        if (
            row["reference_class"] not in CROP_CLASSES
            and row["reference_class"] not in _SPECIAL_CLASSES
        ):
            raise ValueError(
                f"{LUCAS_MAPPING}: LC1 {row['lc1_code']} maps to {row['reference_class']!r}; "
                "allowed: "
                f"{[*CROP_CLASSES, *_SPECIAL_CLASSES]}"
            )
    return tuple(rows)


def lc1_crop_types(reference_class: str) -> tuple[str, ...]:
    """Crop types an LC1 reference class matches (``barley`` -> winter and spring barley)."""
    return _SPECIAL_CLASSES.get(reference_class, (reference_class,))


def _concepts(base: str) -> Iterator[tuple[URIRef, URIRef, URIRef | Literal]]:
    for scheme in SCHEMES:
        scheme_node = URIRef(scheme_iri(base, scheme))
        yield scheme_node, RDF.type, SKOS.ConceptScheme
        yield scheme_node, SKOS.prefLabel, Literal(scheme.replace("_", " "), lang="en")
    from tasks.domain.ice import ice_classes

    for ice in ice_classes():
        yield from _concept(base, "ice_type", ice.name, ice.label, notation=str(ice.code))
        node = URIRef(concept_iri(base, "ice_type", ice.name))
        yield node, EEO_NS.colour, Literal(ice.colour)
        if ice.binary_name != ice.name:
            yield node, SKOS.broader, URIRef(concept_iri(base, "ice_type", ice.binary_name))
    if "ice" not in {c.name for c in ice_classes()}:
        yield from _concept(base, "ice_type", "ice", "Sea ice (any type)", notation="ice")
    for index, name in enumerate(code_list("crop_type")):
        yield from _concept(base, "crop_type", name, name.replace("_", " "), notation=str(index))
    for row in lucas_lc1_mapping():
        code = row["lc1_code"]
        yield from _concept(base, "lucas_lc1", code, row["lc1_label"] or code, notation=code)
        for crop in lc1_crop_types(row["reference_class"]):
            yield (
                URIRef(concept_iri(base, "lucas_lc1", code)),
                SKOS.closeMatch,
                URIRef(concept_iri(base, "crop_type", crop)),
            )
    for row in _read_csv(CODELISTS / "product_types.csv"):
        yield from _concept(base, "product_type", row["code"], row["label"], notation=row["code"])


def _concept(
    base: str, scheme: str, code: str, label: str, notation: str
) -> Iterator[tuple[URIRef, URIRef, URIRef | Literal]]:
    node = URIRef(concept_iri(base, scheme, code))
    yield node, RDF.type, SKOS.Concept
    yield node, RDF.type, EEO_NS[SCHEMES[scheme]]
    yield node, SKOS.inScheme, URIRef(scheme_iri(base, scheme))
    yield node, SKOS.prefLabel, Literal(label, lang="en")
    yield node, SKOS.notation, Literal(notation)


def vocabulary_graph(base: str = DEFAULT_BASE) -> Graph:
    """Return the ontology plus all SKOS code lists as one rdflib graph (a few hundred triples)."""
    graph = Graph()
    graph.parse(ONTOLOGY_PATH, format="turtle")
    for triple in _concepts(base):
        graph.add(triple)
    graph.add((EEO_NS.colour, RDF.type, OWL.DatatypeProperty))
    graph.add(
        (EEO_NS.colour, RDFS.comment, Literal("display colour of a class, #rrggbb", lang="en"))
    )
    graph.bind("eeo", EEO_NS)
    graph.bind("skos", SKOS)
    return graph


def write_vocabulary(path: str | Path, base: str = DEFAULT_BASE) -> int:
    """Write :func:`vocabulary_graph` as N-Triples to ``path``; return the triple count."""
    graph = vocabulary_graph(base)
    Path(path).write_text(graph.serialize(format="nt"))
    return len(graph)
