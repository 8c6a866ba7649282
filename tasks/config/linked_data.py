"""Config model of the linked-data use case (``configs/linked_data.yaml``)."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tasks.config.common import StrictModel, UseCaseConfig

log = logging.getLogger(__name__)

ProductName = Literal[
    "vocabulary", "ice_chart", "crop_field_instances", "lucas_points", "model", "evaluation"
]


class InputsConfig(StrictModel):
    """Where each product's input files are, as globs relative to ``data_root`` (or absolute).

    ``{run_key}`` is filled with the run being exported.
    """

    ice_chart: str = "polar/predict/{run_key}/*_chart.geojson"
    crop_field_instances: str = "food_security/predict/{run_key}/*/*_instances.parquet"
    lucas_points: str = "lucas/points/{run_key}/*.csv"
    model: str = "*/registry/**/model.json"
    evaluation: str = "*/evaluate/{run_key}/*.json"

    def for_product(self, product: str) -> str:
        """Return the input glob of ``product``."""
        if product not in type(self).model_fields:
            raise ValueError(
                f"no input glob for product {product!r}; allowed: {sorted(type(self).model_fields)}"
            )
        return str(getattr(self, product))


class ExportConfig(StrictModel):
    """RDF export."""

    format: Literal["nt", "nq", "ttl"] = "nt"
    engine: Literal["fast", "pyoxigraph"] = Field(
        default="fast", description="fast: vectorised N-Triples writer; pyoxigraph: its serialisers"
    )
    batch_rows: int = Field(default=50_000, ge=1, le=5_000_000)
    wkt_precision: int = Field(default=7, ge=1, le=15, description="decimals of CRS84 degrees")


class StoreConfig(StrictModel):
    """Triple store: embedded pyoxigraph store (default) or a SPARQL 1.1 server over HTTP."""

    mode: Literal["embedded", "http"] = "embedded"
    path: str = Field(
        default="linked_data/store", description="embedded store folder (under data_root)"
    )
    url: str = Field(
        default="http://127.0.0.1:7878",
        description="server base URL; Oxigraph layout: /query, /update, /store",
    )
    query_url: str | None = Field(default=None, description="default: {url}/query")
    update_url: str | None = Field(default=None, description="default: {url}/update")
    graph_store_url: str | None = Field(default=None, description="default: {url}/store")
    chunk_triples: int = Field(default=100_000, ge=1000, le=10_000_000)
    entail: bool = Field(
        default=True,
        description="after each pipeline / DAG load, materialise the graph's RDFS and GeoSPARQL "
        "entailment (superclasses, geometry properties) into {graph}/entailed",
    )
    replace: Literal["atomic_diff", "staging_move"] = Field(
        default="atomic_diff",
        description=(
            "how a re-load replaces a graph. atomic_diff: files of at most atomic_max_triples "
            "triples (and Turtle) by one Graph Store PUT, bigger ones by the difference between "
            "the stored graph and the file in one SPARQL update; both run as one transaction, so "
            "readers see the old or the new graph (a first load posts parallel chunks). "
            "staging_move: POST into a staging graph, then SPARQL `MOVE` it over the graph "
            "(Oxigraph's MOVE copies triple by triple, ~30x slower than the load). "
            "drop_then_load: deprecated name of atomic_diff"
        ),
    )
    atomic_max_triples: int = Field(
        default=100_000,
        ge=0,
        le=10_000_000,
        description=(
            "http, replace atomic_diff: an N-Triples file of at most this many triples (and "
            "any Turtle file) replaces its graph with one Graph Store PUT, which Oxigraph runs in "
            "one transaction: readers see the old or the new graph, never a mix (a daily ice "
            "chart). Bigger files: batched clear + parallel chunks (fast, not atomic). 0: never"
        ),
    )
    oxigraph_bulk: bool = Field(
        default=True,
        description=(
            "send Oxigraph's `no_transaction` and `lenient` parameters with the chunked Graph "
            "Store POSTs (each chunk is written without a transaction: ~3x faster); set false "
            "for other SPARQL servers"
        ),
    )
    parallel_requests: int = Field(default=4, ge=1, le=64)
    retries: int = Field(default=4, ge=0, le=20)
    backoff_s: float = Field(default=0.5, gt=0, le=60)
    timeout_s: float = Field(default=120.0, gt=0, le=3600)

    @field_validator("replace", mode="before")
    @classmethod
    def _deprecated_replace(cls, value: Any) -> Any:
        if value == "drop_then_load":
            log.warning(
                "store.replace: drop_then_load is deprecated (re-loads no longer drop the "
                "graph; they apply the difference in one transaction); write atomic_diff"
            )
            return "atomic_diff"
        return value

    @field_validator("url", "query_url", "update_url", "graph_store_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    def endpoint(self, kind: Literal["query", "update", "store"]) -> str:
        """URL of the query, update or Graph Store endpoint."""
        explicit = {
            "query": self.query_url,
            "update": self.update_url,
            "store": self.graph_store_url,
        }[kind]
        return explicit or f"{self.url}/{kind}"


class FederationConfig(StrictModel):
    """Remote SPARQL endpoints joined with SERVICE (name -> query URL)."""

    endpoints: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "e.g. {lucas: http://127.0.0.1:7879/query}; the only endpoints `eeflow rdf federate` "
            "and federated queries may reach (any other URL is refused)"
        ),
    )
    source_selection: Literal["void+ask", "ask", "all"] = Field(
        default="void+ask",
        description=(
            "how federated queries pick the endpoints of each triple pattern. void+ask: the "
            "endpoint's VoID property / class partitions when it publishes them, else an ASK "
            "probe; ask: ASK probes only; all: no selection, every endpoint gets every pattern"
        ),
    )
    probe_ttl_s: float = Field(
        default=300.0, ge=0, le=30 * 86_400,
        description="seconds a probe answer (ASK, VoID) is reused; 0: probe on every query",
    )
    probe_cache: str = Field(
        default="linked_data/federation/source_cache.json",
        description="probe answers kept across runs (under data_root); empty: in memory only",
    )
    timeout_s: float = Field(default=60.0, gt=0, le=3600, description="per probe request")

    @field_validator("endpoints")
    @classmethod
    def _urls(cls, value: dict[str, str]) -> dict[str, str]:
        for name, url in value.items():
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"endpoint {name!r}: {url!r} must be an http(s) URL")
        return value


class LinkedDataConfig(UseCaseConfig):
    """Linked geospatial data: export products to RDF, load them, query and federate."""

    use_case: Literal["linked_data"] = "linked_data"
    base_iri: str = Field(default="https://w3id.org/eeflow/data/", description="base of data IRIs")
    products: list[ProductName] = Field(
        default=["vocabulary", "ice_chart", "crop_field_instances"],
        min_length=1,
        description="product set the linked_data DAG exports and loads by default",
    )
    mappings: dict[str, str] = Field(
        default_factory=dict, description="product -> mapping file overriding the shipped one"
    )
    inputs: InputsConfig = InputsConfig()
    export: ExportConfig = ExportConfig()
    store: StoreConfig = StoreConfig()
    federation: FederationConfig = FederationConfig()

    @model_validator(mode="after")
    def _base(self) -> LinkedDataConfig:
        if not self.base_iri.startswith(("http://", "https://")) or not self.base_iri.endswith(
            ("/", "#")
        ):
            raise ValueError(f"base_iri {self.base_iri!r} must be an http(s) IRI ending in / or #")
        return self
