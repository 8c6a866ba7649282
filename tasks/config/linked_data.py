"""Config model of the linked-data use case (``configs/linked_data.yaml``)."""

from __future__ import annotations

import logging
from pathlib import Path
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
            "readers see the old or the new graph (a first load posts parallel chunks). On "
            "eeflow's server (`eeflow rdf serve`) a re-load that changes most triples goes by "
            "one PUT, which the server applies by rebuilding its store and swapping it in. "
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
            "chart). Bigger files: the difference in one SPARQL update (atomic too; faster "
            "than a PUT, which clears the graph inside its transaction). 0: never"
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
    timeout_s: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="seconds to wait for the server's answer; a write waits at least its body "
        "size / 1 MB/s (the server answers once the write is applied)",
    )

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


class LinkedDataLink(StrictModel):
    """The linked-data config a use case's ``rdf_export`` / ``load_triples`` stages use.

    Written in the use-case YAML as ``linked_data: {config: configs/linked_data.yaml}``;
    :func:`tasks.config.common.load_config` loads and validates that file into :attr:`settings`
    with the use case's ``data_root`` (a missing file is a ConfigError naming the key), so the
    stages receive it typed and never read a file themselves.
    """

    config: str = Field(
        min_length=1,
        description="linked_data YAML of the RDF export and triple store; relative paths are "
        "resolved against $EEFLOW_HOME (default: the current directory)",
    )
    settings: LinkedDataConfig | None = Field(
        default=None,
        description="the loaded file, with the use case's data_root (set by load_config; not "
        "written in YAML)",
    )


class LinksLinkedData(UseCaseConfig):
    """A use case whose products are exported to RDF: it names its linked-data config."""

    linked_data: LinkedDataLink | None = Field(
        default=None,
        description="the linked-data config of the rdf_export / load_triples stages, e.g. "
        "{config: configs/linked_data.yaml}; the stages fail when it is not named",
    )

    def load_references(self, source: str) -> None:
        """Load the ``linked_data.config`` file into ``linked_data.settings`` (once).

        Raises:
            ConfigError: the file is missing or invalid (named with the key ``linked_data.config``
                of ``source``), or is not a linked_data config.

        """
        link = self.linked_data
        if link is None or link.settings is not None:
            return
        root = self.data_root if self.is_remote_root() else str(self.resolved_root())
        link.settings = load_linked_data_config(
            link.config, root, f"{source}: key 'linked_data.config'"
        )

    def linked_data_settings(self) -> LinkedDataConfig:
        """Return the loaded linked-data config of the RDF stages.

        Raises:
            ConfigError: the config names no ``linked_data.config``, or was not loaded with
                :func:`tasks.config.common.load_config`.

        """
        from tasks.config.common import ConfigError

        link = self.linked_data
        if link is None:
            raise ConfigError(
                f"the {self.use_case} config names no linked-data config; add "
                "'linked_data: {config: configs/linked_data.yaml}' to it (the rdf_export and "
                "load_triples stages need the store and export settings)"
            )
        if link.settings is None:
            raise ConfigError(
                f"linked_data.config {link.config!r} of the {self.use_case} config is not loaded; "
                "load the config with tasks.config.load_config (or call load_references)"
            )
        return link.settings


def load_linked_data_config(
    path: str | Path, data_root: str | None = None, source: str = "linked_data config"
) -> LinkedDataConfig:
    """Load a linked_data YAML (relative to ``$EEFLOW_HOME``), its ``data_root`` replaced.

    Args:
        path: the file, e.g. ``configs/linked_data.yaml``.
        data_root: the data root of the use case whose products are exported (None: the file's).
        source: what names the file, for the error message.

    Raises:
        ConfigError: the file is missing or invalid, or not a linked_data config.

    """
    from tasks.config.common import ConfigError, eeflow_home, load_config

    file = Path(path).expanduser()
    if not file.is_absolute():
        file = eeflow_home() / file
    if not file.is_file():
        raise ConfigError(
            f"{source}: file {file} does not exist (got {str(path)!r}; relative paths are "
            "resolved against $EEFLOW_HOME or the current directory)"
        )
    overrides = {"data_root": data_root} if data_root is not None else {}
    return load_config(file, overrides, expect=LinkedDataConfig)

