"""IRIs of the vocabularies eeflow reuses and of its own ontology, data and named graphs."""

from __future__ import annotations

import re
from urllib.parse import quote

EEO = "https://w3id.org/eeflow/ontology#"
GEO = "http://www.opengis.net/ont/geosparql#"
GEOF = "http://www.opengis.net/def/function/geosparql/"
EEFN = "https://w3id.org/eeflow/function#"
SOSA = "http://www.w3.org/ns/sosa/"
SSN = "http://www.w3.org/ns/ssn/"
PROV = "http://www.w3.org/ns/prov#"
DCAT = "http://www.w3.org/ns/dcat#"
DCT = "http://purl.org/dc/terms/"
SKOS = "http://www.w3.org/2004/02/skos/core#"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
OWL = "http://www.w3.org/2002/07/owl#"
XSD = "http://www.w3.org/2001/XMLSchema#"
UOM = "http://www.opengis.net/def/uom/OGC/1.0/"

#: GeoSPARQL's default CRS (longitude, latitude on WGS84); every exported WKT literal carries it.
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
WKT_LITERAL = GEO + "wktLiteral"

#: Default base of data IRIs (features, observations, datasets, graphs, concepts).
DEFAULT_BASE = "https://w3id.org/eeflow/data/"

#: Grid index cell edge in degrees (CRS84) used by ``eeo:gridCell`` for near-join pre-filtering.
GRID_CELL_DEG = 0.01
#: Features with grid cells list every cell their bounding box touches after growing it by this
#: many metres; distance joins through shared cells are therefore exact up to this radius.
GRID_MARGIN_M = 25.0

PREFIXES: dict[str, str] = {
    "eeo": EEO,
    "geo": GEO,
    "geof": GEOF,
    "eefn": EEFN,
    "sosa": SOSA,
    "ssn": SSN,
    "prov": PROV,
    "dcat": DCAT,
    "dct": DCT,
    "skos": SKOS,
    "rdf": RDF,
    "rdfs": RDFS,
    "owl": OWL,
    "xsd": XSD,
    "uom": UOM,
}

_CURIE = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*):(.*)$")
_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9._~-]+$")


def expand_curie(value: str, prefixes: dict[str, str] | None = None) -> str:
    """Expand ``prefix:local`` with :data:`PREFIXES`; full IRIs (with ``://``) pass unchanged.

    Raises:
        ValueError: the prefix is unknown.

    """
    if "://" in value or value.startswith("urn:"):
        return value
    table = prefixes or PREFIXES
    match = _CURIE.match(value)
    if not match or match.group(1) not in table:
        raise ValueError(
            f"{value!r} is neither a full IRI nor a known prefixed name; known prefixes: "
            f"{sorted(table)}"
        )
    return table[match.group(1)] + match.group(2)


def iri_segment(value: object) -> str:
    """Return ``value`` as one IRI path segment (percent-encoding all but [A-Za-z0-9._~-])."""
    text = str(value)
    if _SAFE_SEGMENT.match(text):
        return text
    return quote(text, safe="")


def graph_iri(base: str, use_case: str, product: str, run_key: str) -> str:
    """IRI of the named graph that holds one product of one run (re-loads replace it)."""
    return f"{base}graph/{iri_segment(use_case)}/{iri_segment(product)}/{iri_segment(run_key)}"


def concept_iri(base: str, scheme: str, code: str) -> str:
    """IRI of a SKOS concept ``code`` in the code list ``scheme`` (ice_type, crop_type, ...)."""
    return f"{base}concept/{iri_segment(scheme)}/{iri_segment(code)}"


def scheme_iri(base: str, scheme: str) -> str:
    """IRI of the SKOS concept scheme of a code list."""
    return f"{base}scheme/{iri_segment(scheme)}"


def vocabulary_graph_iri(base: str) -> str:
    """IRI of the named graph holding the ontology and the SKOS code lists."""
    return f"{base}graph/vocabulary"
