"""GeoSPARQL 1.0 conformance, one test per requirement of the standard (OGC 11-052r4).

Each requirement's checks (WKT, GML and mixed variants; see
tasks/linked_data/geosparql_conformance.py) run on eeflow's embedded store and on eeflow's HTTP
server (``eeflow rdf serve``); the baseline (plain Oxigraph) is measured by
bench/geosparql_conformance.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tasks.linked_data import geosparql_conformance as conformance

REQUIREMENTS = {req.number: req for req in conformance.requirements()}


def _assert_requirement(target: Any, number: int) -> None:
    failed = [r for r in conformance.run_checks(target, REQUIREMENTS[number]) if not r.passed]
    assert not failed, [(r.check, r.error) for r in failed]


def test_requirement_list_is_the_standards() -> None:
    assert sorted(REQUIREMENTS) == list(range(1, 31))
    assert {req.klass for req in REQUIREMENTS.values()} == set(conformance.CLASSES)
    assert all(req.checks for req in REQUIREMENTS.values())


# --- Core ---------------------------------------------------------------------------------
def test_req01_core_sparql_protocol(target: Any) -> None:
    _assert_requirement(target, 1)


def test_req02_core_spatial_object_class(target: Any) -> None:
    _assert_requirement(target, 2)


def test_req03_core_feature_class(target: Any) -> None:
    _assert_requirement(target, 3)


# --- Topology vocabulary ------------------------------------------------------------------
def test_req04_sf_spatial_relations(target: Any) -> None:
    _assert_requirement(target, 4)


def test_req05_eh_spatial_relations(target: Any) -> None:
    _assert_requirement(target, 5)


def test_req06_rcc8_spatial_relations(target: Any) -> None:
    _assert_requirement(target, 6)


# --- Geometry extension -------------------------------------------------------------------
def test_req07_geometry_class(target: Any) -> None:
    _assert_requirement(target, 7)


def test_req08_feature_properties(target: Any) -> None:
    _assert_requirement(target, 8)


def test_req09_geometry_properties(target: Any) -> None:
    _assert_requirement(target, 9)


def test_req10_wkt_literal(target: Any) -> None:
    _assert_requirement(target, 10)


def test_req11_wkt_literal_default_srs(target: Any) -> None:
    _assert_requirement(target, 11)


def test_req12_wkt_axis_order(target: Any) -> None:
    _assert_requirement(target, 12)


def test_req13_wkt_literal_empty(target: Any) -> None:
    _assert_requirement(target, 13)


def test_req14_geometry_as_wkt_literal(target: Any) -> None:
    _assert_requirement(target, 14)


def test_req15_gml_literal(target: Any) -> None:
    _assert_requirement(target, 15)


def test_req16_gml_literal_empty(target: Any) -> None:
    _assert_requirement(target, 16)


def test_req17_gml_profile(target: Any) -> None:
    _assert_requirement(target, 17)


def test_req18_geometry_as_gml_literal(target: Any) -> None:
    _assert_requirement(target, 18)


def test_req19_query_functions(target: Any) -> None:
    _assert_requirement(target, 19)


def test_req20_srid_function(target: Any) -> None:
    _assert_requirement(target, 20)


# --- Geometry topology --------------------------------------------------------------------
def test_req21_relate_query_function(target: Any) -> None:
    _assert_requirement(target, 21)


def test_req22_sf_query_functions(target: Any) -> None:
    _assert_requirement(target, 22)


def test_req23_eh_query_functions(target: Any) -> None:
    _assert_requirement(target, 23)


def test_req24_rcc8_query_functions(target: Any) -> None:
    _assert_requirement(target, 24)


# --- RDFS entailment ----------------------------------------------------------------------
def test_req25_rdfs_entailment_bgp(target: Any) -> None:
    _assert_requirement(target, 25)


def test_req26_wkt_geometry_types(target: Any) -> None:
    _assert_requirement(target, 26)


def test_req27_gml_geometry_types(target: Any) -> None:
    _assert_requirement(target, 27)


# --- Query rewrite ------------------------------------------------------------------------
def test_req28_sf_query_rewrite(target: Any) -> None:
    _assert_requirement(target, 28)


def test_req29_eh_query_rewrite(target: Any) -> None:
    _assert_requirement(target, 29)


def test_req30_rcc8_query_rewrite(target: Any) -> None:
    _assert_requirement(target, 30)


@pytest.mark.parametrize("number", [12, 19, 22, 28])
def test_checks_fail_without_eeflow_geosparql(tmp_path: Any, number: int) -> None:
    """The checks are not vacuous: plain pyoxigraph fails these requirements."""
    plain = conformance.EmbeddedTarget(False, tmp_path)
    plain.load(conformance.DATASET)
    results = list(conformance.run_checks(plain, REQUIREMENTS[number]))
    assert not all(r.passed for r in results)
