"""``eeflow rdf ...``: export products to RDF, load them, query, federate, serve."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

from tasks.config.linked_data import LinkedDataConfig
from tasks.config.options import ConfigOption, SetOption, load_cli_config

app = typer.Typer(
    no_args_is_help=True, help="Linked geospatial data: RDF export, store, GeoSPARQL."
)

ConfigOpt = ConfigOption
RunDateOpt = Annotated[
    str, typer.Option("--run-date", "-d", help="logical date, YYYY-MM-DD (default: today, UTC)")
]
RunKeyOpt = Annotated[
    str, typer.Option("--run-key", help="explicit run key (default: derived from --run-date)")
]
ProductOpt = Annotated[str, typer.Option("--product", "-p", help="product type")]
DEFAULT_CONFIG = Path("configs/linked_data.yaml")


def _cfg(config: Path, set_: list[str] | None = None) -> LinkedDataConfig:
    return load_cli_config(config, set_, expect=LinkedDataConfig)


def _run_key(product: str, run_date: str, run_key: str) -> str:
    from tasks.linked_data.export import run_key_for

    return run_key or run_key_for(product, run_date or dt.datetime.now(dt.UTC).date().isoformat())


def _echo(payload: Any) -> None:
    from tasks.console import echo_json

    echo_json(payload)


@app.command()
def export(
    product: ProductOpt,
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOption = None,
    run_date: RunDateOpt = "",
    run_key: RunKeyOpt = "",
    inputs: Annotated[
        list[Path] | None, typer.Option("--input", help="input file (repeatable)")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="nt | nq | ttl")] = "",
    engine: Annotated[str, typer.Option("--engine", help="fast | pyoxigraph")] = "",
) -> None:
    """Export one product run to RDF (streaming)."""
    from tasks.linked_data.export import export_product

    _echo(
        export_product(
            _cfg(config, set_),
            product,
            _run_key(product, run_date, run_key),
            list(inputs) if inputs else None,
            # typer passes the choices as plain str, handed on as given
            fmt=fmt or None,  # type: ignore[arg-type]
            engine=engine or None,  # type: ignore[arg-type]
        )
    )


@app.command()
def load(
    product: ProductOpt,
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOption = None,
    run_date: RunDateOpt = "",
    run_key: RunKeyOpt = "",
    entail: Annotated[
        bool, typer.Option(help="materialise RDFS / GeoSPARQL entailment into {graph}/entailed")
    ] = True,
) -> None:
    """Load an exported product run into its named graph (replacing it)."""
    from tasks.linked_data.store import load_product

    _echo(
        load_product(
            _cfg(config, set_), product, _run_key(product, run_date, run_key), entail=entail
        )
    )


@app.command()
def publish(
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOption = None,
    run_date: RunDateOpt = "",
    products: Annotated[list[str] | None, typer.Option("--product", "-p")] = None,
) -> None:
    """Export and load a product set (default: the config's ``products``)."""
    from tasks.linked_data.export import export_product
    from tasks.linked_data.store import load_product

    cfg = _cfg(config, set_)
    results = []
    for product in products or cfg.products:
        key = _run_key(product, run_date, "")
        exported = export_product(cfg, product, key)
        results.append(
            {"export": exported, "load": load_product(cfg, product, key, entail=True)}
        )
    _echo(results)


@app.command()
def query(
    name: Annotated[str, typer.Argument(help="shipped query name or a .rq file")],
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOption = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="name=value (repeatable)")
    ] = None,
) -> None:
    """Run a GeoSPARQL query with bound parameters; print rows as JSON."""
    from tasks.linked_data.query import run_named_query

    values: dict[str, str] = {}
    for item in param or []:
        if "=" not in item:
            raise typer.BadParameter(f"--param {item!r}: expected name=value")
        key, value = item.split("=", 1)
        values[key.strip()] = value
    _echo(run_named_query(_cfg(config, set_), name, values))


@app.command()
def federate(
    endpoint: Annotated[
        str,
        typer.Option(
            help="LUCAS endpoint: a name (or URL) from the config's federation.endpoints; "
            "runs the shipped federated_lucas_unmatched query"
        ),
    ] = "",
    query: Annotated[
        str,
        typer.Option(
            "--query",
            "-q",
            help="a .rq file or shipped query (no SERVICE) to run over every configured "
            "endpoint with source selection",
        ),
    ] = "",
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOption = None,
    radius: Annotated[float, typer.Option(help="metres (with --endpoint)")] = 10.0,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="name=value for --query (repeatable)")
    ] = None,
    sources: Annotated[
        str,
        typer.Option(
            help="with --query: void+ask | ask | all (no selection); default: the config's "
            "federation.source_selection"
        ),
    ] = "",
) -> None:
    """Federated queries over the endpoints of the config's ``federation.endpoints`` only.

    With --endpoint: LUCAS points of that endpoint with no same-class field within RADIUS in this
    store. With --query: the query over all configured endpoints, each triple pattern sent only
    to the endpoints that can answer it (VoID or cached ASK probes); prints the rows, the
    rewritten query and the sources chosen per pattern.
    """
    from tasks.linked_data.federation import run_federated_file, run_federated_query

    if bool(endpoint) == bool(query):
        raise typer.BadParameter("give exactly one of --endpoint NAME or --query FILE")
    if sources and sources not in ("void+ask", "ask", "all"):
        raise typer.BadParameter(f"--sources {sources!r}: allowed: void+ask, ask, all")
    if endpoint:
        _echo(run_federated_query(_cfg(config, set_), endpoint, radius))
        return
    values: dict[str, str] = {}
    for item in param or []:
        if "=" not in item:
            raise typer.BadParameter(f"--param {item!r}: expected name=value")
        key, value = item.split("=", 1)
        values[key.strip()] = value
    _echo(run_federated_file(_cfg(config, set_), query, values, sources or None))


@app.command()
def serve(
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOption = None,
    location: Annotated[
        Path | None, typer.Option(help="store folder (default: {root}/linked_data/server)")
    ] = None,
    host: Annotated[str, typer.Option(help="address to bind (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 7878,
    engine: Annotated[
        str,
        typer.Option(help="eeflow (pyoxigraph + GeoSPARQL functions) | oxigraph (plain binary)"),
    ] = "eeflow",
    rewrite: Annotated[
        bool, typer.Option(help="GeoSPARQL query rewrite of ?f1 geo:sfWithin ?f2 patterns")
    ] = True,
) -> None:
    """Run a SPARQL 1.1 endpoint (query, update, graph store) in the foreground; Ctrl-C stops it.

    The default engine is eeflow's server on pyoxigraph, which carries every GeoSPARQL function
    (WKT and GML, any CRS), the query rewrite and entailment of Graph Store writes.
    """
    import os

    cfg = _cfg(config, set_)
    folder = location or cfg.resolved_root() / "linked_data" / "server"
    folder.mkdir(parents=True, exist_ok=True)
    if engine not in ("eeflow", "oxigraph"):
        raise typer.BadParameter(f"--engine {engine!r}: allowed: eeflow, oxigraph")
    typer.echo(
        f"SPARQL endpoint ({engine}): http://{host}:{port}/query (update: /update, graph store: "
        f"/store), store {folder}",
        err=True,
    )
    if engine == "eeflow":
        from tasks.linked_data.server import SparqlServer

        SparqlServer(folder, host=host, port=port, rewrite=rewrite).serve_forever()
        return
    from tasks.linked_data.server import oxigraph_binary

    os.execv(
        oxigraph_binary(),
        [
            oxigraph_binary(),
            "serve",
            "--union-default-graph",
            "--location",
            str(folder),
            "--bind",
            f"{host}:{port}",
        ],
    )
