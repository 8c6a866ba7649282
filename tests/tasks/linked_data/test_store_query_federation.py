from __future__ import annotations

from pathlib import Path

import pytest

from tasks.config.linked_data import LinkedDataConfig, StoreConfig
from tasks.linked_data.export import export_product
from tasks.linked_data.federation import run_federated_query
from tasks.linked_data.functions import buffer_wkt, distance_metres
from tasks.linked_data.query import QueryError, bind_parameters, load_query, run_named_query
from tasks.linked_data.server import OxigraphServer
from tasks.linked_data.store import (
    EmbeddedStore,
    HttpStore,
    StoreUnavailableError,
    load_product,
    open_store,
)
from tests.tasks.linked_data.linked_data_samples import DAY, SCENE, YEAR, write_lucas

ALL = [
    ("vocabulary", "current"),
    ("ice_chart", DAY),
    ("crop_field_instances", YEAR),
    ("lucas_points", "2018"),
    ("model", "current"),
    ("evaluation", YEAR),
]
AUSTRIA = "POLYGON((15 47.5, 16 47.5, 16 48.5, 15 48.5, 15 47.5))"
FRAM = "POLYGON((-20 70, 10 70, 10 85, -20 85, -20 70))"


@pytest.fixture
def loaded(ld_cfg, products):
    for product, key in ALL:
        export_product(ld_cfg, product, key)
        load_product(ld_cfg, product, key)
    store = open_store(ld_cfg)
    yield ld_cfg, store
    store.close()


def test_reload_replaces_graph_never_duplicates(ld_cfg, products):
    export_product(ld_cfg, "crop_field_instances", YEAR)
    first = load_product(ld_cfg, "crop_field_instances", YEAR)
    second = load_product(ld_cfg, "crop_field_instances", YEAR)
    assert first["triples"] == second["triples"] > 0
    store = EmbeddedStore(ld_cfg.resolved_root() / "linked_data" / "store")
    assert len(list(store.store.named_graphs())) == 1
    store.close()


def test_shipped_queries_on_embedded_store(loaded):
    cfg, store = loaded
    ice = run_named_query(
        cfg, "ice_of_type_in_area", {"ice_type": "ice", "area": FRAM, "day": DAY}, store
    )
    assert ice["count"] == 2 and {r["type"].rsplit("/", 1)[1] for r in ice["rows"]} == {
        "young",
        "deformed",
    }
    water = run_named_query(
        cfg, "ice_of_type_in_area", {"ice_type": "water", "area": FRAM, "day": DAY}, store
    )
    assert water["count"] == 1
    elsewhere = run_named_query(
        cfg, "ice_of_type_in_area", {"ice_type": "ice", "area": AUSTRIA, "day": DAY}, store
    )
    assert elsewhere["count"] == 0
    maize = run_named_query(
        cfg, "crop_fields_in_region", {"crop_type": "maize", "region": AUSTRIA}, store
    )
    assert maize["count"] == 4 and all(r["confidence"] == 0.8 for r in maize["rows"])
    unmatched = run_named_query(cfg, "lucas_unmatched", {"radius": 10}, store)
    assert [r["point_id"] for r in unmatched["rows"]] == ["47003", "47004", "47006"]
    cat = run_named_query(
        cfg,
        "catalogue_search",
        {
            "product_type": "crop_field_instances",
            "area": AUSTRIA,
            "start": "2018-05-01",
            "end": "2018-05-31",
        },
        store,
    )
    assert cat["count"] == 1 and cat["rows"][0]["features"] == 16
    none = run_named_query(
        cfg,
        "catalogue_search",
        {
            "product_type": "crop_field_instances",
            "area": AUSTRIA,
            "start": "2019-05-01",
            "end": "2019-05-31",
        },
        store,
    )
    assert none["count"] == 0
    ice_cat = run_named_query(
        cfg,
        "catalogue_search",
        {"product_type": "ice_chart", "area": FRAM, "start": DAY, "end": DAY},
        store,
    )
    assert ice_cat["count"] == 1
    feature = f"{cfg.base_iri}feature/ice_chart/{DAY}/{SCENE}/0"
    chain = run_named_query(cfg, "observation_image_scene", {"feature": feature}, store)["rows"]
    assert chain[0]["scene_id"] == SCENE and chain[0]["platform"] == "S1A"
    assert chain[0]["model"].endswith("/model/adhoc_cnn-v3")


def test_lucas_query_agrees_with_python_evaluator(loaded, tmp_path):
    evaluate = pytest.importorskip("tasks.lucas.evaluate")
    import geopandas as gpd

    cfg, store = loaded
    root = cfg.resolved_root()
    instances = gpd.read_parquet(
        root / "food_security/predict" / YEAR / "T33UVP" / "T33UVP_instances.parquet"
    )
    points_csv = root / "lucas/points/2018/lucas_2018_at.csv"
    hits = evaluate.points_with_same_class_within(points_csv, instances, radius=10.0)
    unmatched = {
        int(r["point_id"])
        for r in run_named_query(cfg, "lucas_unmatched", {"radius": 10}, store)["rows"]
    }
    all_ids = {47001, 47002, 47003, 47004, 47005, 47006}
    assert hits == all_ids - unmatched


def test_parameters_are_typed_and_never_pasted(loaded):
    cfg, store = loaded
    query = load_query("crop_fields_in_region")
    with pytest.raises(QueryError, match="not in code list crop_type"):
        bind_parameters(
            query, {"crop_type": 'maize" } DROP ALL #', "region": AUSTRIA}, cfg.base_iri
        )
    with pytest.raises(QueryError, match="not a valid wkt"):
        bind_parameters(query, {"crop_type": "maize", "region": 'POINT(1 2)" . } #'}, cfg.base_iri)
    with pytest.raises(QueryError, match="missing parameters"):
        bind_parameters(query, {"crop_type": "maize"}, cfg.base_iri)
    with pytest.raises(QueryError, match="radius"):
        bind_parameters(load_query("lucas_unmatched"), {"radius": 100}, cfg.base_iri)
    text = bind_parameters(
        load_query("observation_image_scene"), {"feature": "https://example.org/a"}, cfg.base_iri
    )
    assert "VALUES (?feature) { (<https://example.org/a>) }" in text
    with pytest.raises(QueryError, match="not a valid iri"):
        bind_parameters(
            load_query("observation_image_scene"),
            {"feature": "https://x/a> } DROP ALL"},
            cfg.base_iri,
        )


def test_query_file_syntax_error(loaded, tmp_path):
    cfg, store = loaded
    bad = tmp_path / "broken.rq"
    bad.write_text("SELECT ?s WHERE { ?s ?p }\n")
    with pytest.raises(QueryError, match=r"broken.rq: SPARQL syntax error"):
        run_named_query(cfg, str(bad), {}, store)


def test_custom_functions_distance_and_buffer():
    a = "<http://www.opengis.net/def/crs/OGC/1.3/CRS84> POINT(15.5 48.1)"
    b = "POINT(15.5 48.10009)"  # ~10 m north
    assert distance_metres(a, b) == pytest.approx(10.0, abs=0.1)
    grown = buffer_wkt(a, 50.0, "http://www.opengis.net/def/uom/OGC/1.0/metre")
    assert grown.startswith("<http://www.opengis.net/def/crs/OGC/1.3/CRS84> POLYGON")
    import shapely

    assert distance_metres(a, grown) == 0.0
    assert shapely.from_wkt(grown.split("> ", 1)[1]).bounds[3] == pytest.approx(
        48.1 + 50 / 111_200, rel=1e-5
    )


@pytest.mark.integration
def test_http_server_chunked_parallel_load_and_queries(ld_cfg, products, tmp_path):
    for product, key in ALL:
        export_product(ld_cfg, product, key)
    with OxigraphServer(tmp_path / "server") as server:
        cfg = ld_cfg.model_copy(
            update={
                "store": StoreConfig(
                    mode="http",
                    url=server.url,
                    chunk_triples=1000,
                    parallel_requests=3,
                    atomic_max_triples=0,  # the chunked path, not one PUT
                )
            }
        )
        for product, key in ALL:
            load_product(cfg, product, key)
        again = load_product(cfg, "crop_field_instances", YEAR)
        embedded = EmbeddedStore(None)
        embedded.replace_graph(again["graph"], Path(again["rdf"]), "nt")
        assert again["triples"] == embedded.graph_size(again["graph"])
        http = HttpStore(cfg.store)
        maize = run_named_query(
            cfg, "crop_fields_in_region", {"crop_type": "maize", "region": AUSTRIA}, http
        )
        assert maize["count"] == 4
        with pytest.raises(QueryError, match="runs only on the embedded store"):
            run_named_query(cfg, "lucas_unmatched", {"radius": 10}, http)
        http.close()


def test_unreachable_store_retries_then_clear_error(ld_cfg, products):
    from tasks.net import free_port

    export_product(ld_cfg, "ice_chart", DAY)
    cfg = ld_cfg.model_copy(
        update={
            "store": StoreConfig(
                mode="http", url=f"http://127.0.0.1:{free_port()}", retries=2, backoff_s=0.01
            )
        }
    )
    with pytest.raises(
        StoreUnavailableError, match=r"unreachable after 3 attempts.*eeflow rdf serve"
    ):
        load_product(cfg, "ice_chart", DAY)


@pytest.mark.integration
def test_federation_joins_a_second_endpoint(ld_cfg, products, tmp_path):
    """Fields + vocabulary in the embedded store; LUCAS points only on a separate server."""
    for product, key in [("vocabulary", "current"), ("crop_field_instances", YEAR)]:
        export_product(ld_cfg, product, key)
        load_product(ld_cfg, product, key)
    lucas = export_product(ld_cfg, "lucas_points", "2018")
    with OxigraphServer(None) as server:
        remote_cfg = ld_cfg.model_copy(update={"store": StoreConfig(mode="http", url=server.url)})
        load_product(remote_cfg, "lucas_points", "2018")
        cfg = ld_cfg.model_copy(
            update={"federation": {"endpoints": {"lucas": f"{server.url}/query"}}}
        )
        cfg = LinkedDataConfig.model_validate(cfg.model_dump())
        result = run_federated_query(cfg, "lucas", radius_m=10.0)
    assert [r["point_id"] for r in result["rows"]] == ["47003", "47004", "47006"]
    assert lucas["features"] == 6


def test_lucas_gps_placeholder_falls_back_to_theoretical_point(ld_cfg):
    root = ld_cfg.resolved_root()
    write_lucas(
        root,
        extra="47007,88.888888,88.888888,48.1,15.5,B16,18/06/18,1,AT\n"
        "47008,,,,,B16,18/06/18,1,AT\n47009,48.1,15.5,48.1,15.5,B16,31/02/18,1,AT\n",
    )
    out = export_product(ld_cfg, "lucas_points", "2018")
    assert out["features"] == 7 and out["rejected"] == 2
    text = Path(out["rdf"]).read_text()
    assert "POINT (15.5 48.1)" in text
    report = Path(out["rejected_csv"]).read_text()
    assert "47008,geometry is missing" in report and "47009,SURVEY_DATE '31/02/18'" in report


@pytest.mark.integration
def test_http_staging_move_replaces_graph_atomically(ld_cfg, products, tmp_path):
    """staging_move: chunks go to {graph}/staging, one MOVE swaps them in; no staging graph left."""
    out = export_product(ld_cfg, "crop_field_instances", YEAR)
    with OxigraphServer(tmp_path / "server") as server:
        cfg = ld_cfg.model_copy(
            update={
                "store": StoreConfig(
                    mode="http",
                    url=server.url,
                    chunk_triples=1000,
                    parallel_requests=2,
                    replace="staging_move",
                )
            }
        )
        first = load_product(cfg, "crop_field_instances", YEAR)
        second = load_product(cfg, "crop_field_instances", YEAR)
        assert first["triples"] == second["triples"] == out["triples"]
        http = HttpStore(cfg.store)
        graphs = {
            row["g"]
            for row in run_sparql_rows(http, "SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }")
        }
        http.close()
    assert graphs == {out["graph"]}


def run_sparql_rows(store, text):
    from tasks.linked_data.query import run_sparql

    return run_sparql(store, text)


def test_bind_values_marker_binds_inside_minus_block():
    query = load_query("lucas_unmatched")
    text = bind_parameters(query, {"radius": 10}, "https://w3id.org/eeflow/data/")
    minus = text.index("MINUS {")
    values = text.index('VALUES (?radius) { ("10.0"^^<http://www.w3.org/2001/XMLSchema#double>) }')
    assert values > minus and "# @bind-values" not in text


def test_batched_graph_clear_removes_only_that_graph(tmp_path):
    import pyoxigraph as ox

    store = EmbeddedStore(tmp_path / "store")
    lines = "".join(
        f"<https://x.org/s{i}> <https://x.org/p{i % 3}> \"{i}\" .\n" for i in range(50)
    )
    data = tmp_path / "data.nt"
    data.write_text(lines)
    for name in ("a", "b"):
        store.replace_graph(f"https://x.org/{name}", data, "nt")
    assert store.graph_size("https://x.org/a") == store.graph_size("https://x.org/b") == 50
    store.clear_graph("https://x.org/a", batch=7)  # 17 quads per predicate: three batches each
    assert store.graph_size("https://x.org/a") == 0
    assert store.graph_size("https://x.org/b") == 50
    assert not store.store.contains_named_graph(ox.NamedNode("https://x.org/a"))
    # a re-load of b through the batched clear keeps exactly one copy
    assert store.replace_graph("https://x.org/b", data, "nt") == 50
    store.close()


def test_http_small_graph_is_replaced_atomically_with_one_put(tmp_path, monkeypatch):
    import threading

    import requests

    lines = [f"<https://x.org/s{i}> <https://x.org/p> \"{i}\" .\n" for i in range(20_000)]
    old, new = tmp_path / "old.nt", tmp_path / "new.nt"
    old.write_text("".join(lines))
    new.write_text("".join(lines[:5_000]))
    graph = "https://x.org/daily"
    with OxigraphServer(tmp_path / "server") as server:
        http = HttpStore(StoreConfig(mode="http", url=server.url, chunk_triples=1000))
        calls: list[str] = []
        for name in ("put_graph", "post_file"):
            original = getattr(http, name)
            monkeypatch.setattr(
                http, name, lambda *a, _n=name, _f=original: (calls.append(_n), _f(*a))[1]
            )
        assert http.replace_graph(graph, old, "nt") == 20_000
        seen: set[int] = set()
        stop = threading.Event()

        def poll() -> None:
            query = f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}"
            while not stop.is_set():
                answer = requests.post(
                    f"{server.url}/query",
                    data={"query": query},
                    headers={"Accept": "application/sparql-results+json"},
                    timeout=30,
                ).json()
                seen.add(int(answer["results"]["bindings"][0]["n"]["value"]))

        reader = threading.Thread(target=poll)
        reader.start()
        try:
            assert http.replace_graph(graph, new, "nt") == 5_000
        finally:
            stop.set()
            reader.join()
        assert calls == ["put_graph", "put_graph"]
        assert seen <= {20_000, 5_000}  # never a half-deleted or half-loaded graph
        # above the threshold: batched clear + chunks
        big = HttpStore(
            StoreConfig(mode="http", url=server.url, chunk_triples=1000, atomic_max_triples=10_000)
        )
        assert big.replace_graph(graph, old, "nt") == 20_000
        http.close()
        big.close()
