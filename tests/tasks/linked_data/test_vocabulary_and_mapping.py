from __future__ import annotations

from pathlib import Path

import pytest
from rdflib import URIRef
from rdflib.namespace import RDF, SKOS

from tasks.domain.crops import CROP_CLASSES
from tasks.domain.ice import ice_classes
from tasks.linked_data.mapping import MappingError, available_products, load_mapping
from tasks.linked_data.namespaces import DEFAULT_BASE, concept_iri
from tasks.linked_data.vocabulary import code_list, vocabulary_graph


def test_vocabulary_has_ontology_and_concepts_from_code_lists():
    graph = vocabulary_graph()
    concepts = set(graph.subjects(RDF.type, SKOS.Concept))
    for ice in ice_classes():
        assert URIRef(concept_iri(DEFAULT_BASE, "ice_type", ice.name)) in concepts
    for crop in CROP_CLASSES:
        assert URIRef(concept_iri(DEFAULT_BASE, "crop_type", crop)) in concepts
    young = URIRef(concept_iri(DEFAULT_BASE, "ice_type", "young"))
    assert (young, SKOS.broader, URIRef(concept_iri(DEFAULT_BASE, "ice_type", "ice"))) in graph
    b13 = URIRef(concept_iri(DEFAULT_BASE, "lucas_lc1", "B13"))
    matches = set(graph.objects(b13, SKOS.closeMatch))
    assert {
        concept_iri(DEFAULT_BASE, "crop_type", c) for c in ("winter_barley", "spring_barley")
    } == {str(m) for m in matches}
    a11 = URIRef(concept_iri(DEFAULT_BASE, "lucas_lc1", "A11"))
    assert not list(graph.objects(a11, SKOS.closeMatch))
    eeo_feature = URIRef("https://w3id.org/eeflow/ontology#IceChartPolygon")
    assert (eeo_feature, None, None) in graph


def test_code_list_errors_name_allowed_values():
    with pytest.raises(ValueError, match="allowed"):
        code_list("sea_state")


@pytest.mark.parametrize("product", available_products())
def test_shipped_mappings_validate(product):
    mapping = load_mapping(product)
    assert mapping.product == product


def test_mapping_errors_name_file_and_key(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "product: x\nuse_case: y\ntitle: t\nsource: {format: xls, file_pattern: x}\n"
        "features: [{subject: 'a/{row}'}]\n"
    )
    with pytest.raises(MappingError, match=r"bad.yaml.*source.format"):
        load_mapping(bad)
    with pytest.raises(MappingError, match="shipped product mappings"):
        load_mapping("no_such_product")
    prefix = tmp_path / "prefix.yaml"
    prefix.write_text(
        "product: x\nuse_case: y\ntitle: t\nsource: {format: csv, file_pattern: x, "
        "wkt_column: wkt}\nfeatures: [{subject: 'a/{row}', types: [nope:Thing]}]\n"
    )
    with pytest.raises(MappingError, match="known prefixes"):
        load_mapping(prefix)
