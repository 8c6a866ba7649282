"""``eeflow interlink ...``: topological interlinking of two geometry sets (JedAI-spatial style)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tasks.config.options import ConfigOption, SetOption

if TYPE_CHECKING:
    from tasks.config.linked_data import LinkedDataConfig
    from tasks.stage_result import StageResult

app = typer.Typer(
    no_args_is_help=True,
    help="Interlink two geometry sets by their DE-9IM relations; write GeoSPARQL triples.",
)

SourceOpt = Annotated[Path, typer.Option("--source", "-s", help="source geometries (GeoParquet, "
                                         "GeoJSON, LUCAS CSV ...)")]
TargetOpt = Annotated[Path, typer.Option("--target", "-t", help="target geometries")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="output folder (replaced atomically)")]
CrsOpt = Annotated[str, typer.Option("--target-crs", help="reproject both sets into this CRS, "
                                     "e.g. EPSG:32633 (default: they must share one)")]
SeedOpt = Annotated[int, typer.Option("--seed", help="seed of the random selector / tie breaks")]
CellOpt = Annotated[float, typer.Option("--cell-factor", help="x the data-derived grid cell size")]


def _linked_data_config(config: Path, set_: list[str] | None) -> LinkedDataConfig:
    """Load the linked_data config (its store) of ``--load`` / ``load`` with ``--set`` applied."""
    from tasks.config.linked_data import LinkedDataConfig
    from tasks.config.options import load_cli_config

    return load_cli_config(config, set_, expect=LinkedDataConfig)


def _load_relations(config: Path, set_: list[str] | None, out: Path) -> StageResult:
    """Run the ``interlinking`` DAG's ``load_relations`` stage on an output folder."""
    import datetime as dt

    from tasks.interlinking.stages import load_relations_stage

    # the stage ignores the run date: the folder names its day
    return load_relations_stage(_linked_data_config(config, set_), dt.datetime.now(dt.UTC).date(),
                                str(out))


def _echo(payload: Any) -> None:
    from tasks.console import echo_json

    echo_json(payload)


@app.command()
def run(
    source: SourceOpt,
    target: TargetOpt,
    out: OutOpt,
    target_crs: CrsOpt = "",
    budget: Annotated[int | None, typer.Option(
        "--budget", help="verify at most N candidate pairs, heaviest first (default: all)")] = None,
    selector: Annotated[str, typer.Option(
        "--selector", help="budgeted mode's selector: random cf js chi2 mbro cf_mbro js_mbro "
                           "chi2_mbro")] = "chi2_mbro",
    seed: SeedOpt = 0,
    cell_factor: CellOpt = 1.0,
    workers: Annotated[int, typer.Option(
        "--workers", help="Dask LocalCluster workers for the exhaustive mode (0: in process)")] = 0,
    scheduler: Annotated[str, typer.Option(
        "--scheduler", help="connect to this Dask scheduler (tcp://host:8786) instead")] = "",
    partitions: Annotated[int | None, typer.Option(
        "--partitions", help="grid column strips (default 1, or 4 per Dask worker)")] = None,
    source_iri: Annotated[str, typer.Option(
        "--source-iri", help="IRI template of source features: {row}, {dataset}, columns; "
                             "'{iri}' for a column of full IRIs")] = "",
    target_iri: Annotated[str, typer.Option("--target-iri", help="of target features")] = "",
    graph: Annotated[str, typer.Option("--graph", help="named graph IRI (default: derived)")] = "",
    include_disjoint: Annotated[bool, typer.Option(
        "--include-disjoint", help="also write geo:sfDisjoint for verified disjoint pairs"),
    ] = False,
    load: Annotated[bool, typer.Option(
        "--load", help="load the triples into the store of --config as their named graph")] = False,
    config: ConfigOption = Path("configs/linked_data.yaml"),
    set_: SetOption = None,
) -> None:
    """Interlink SOURCE x TARGET (exhaustive, or budgeted with --budget); write relations.nt."""
    from tasks.config.common import DaskConfig
    from tasks.interlinking.progressive import SELECTORS
    from tasks.interlinking.run import run_interlinking

    if selector not in SELECTORS:
        raise typer.BadParameter(f"{selector!r}; allowed: {', '.join(SELECTORS)}",
                                 param_hint="--selector")
    dask = None
    if scheduler:
        dask = DaskConfig(cluster="address", address=scheduler)
    elif workers > 0:
        dask = DaskConfig(cluster="local", n_workers=workers)
    summary = run_interlinking(
        source, target, out, target_crs=target_crs or None, budget=budget, selector=selector,
        seed=seed, cell_factor=cell_factor, n_partitions=partitions, dask=dask,
        source_iri_template=source_iri or None, target_iri_template=target_iri or None,
        graph=graph or None, include_disjoint=include_disjoint,
    )
    if load:
        summary["load"] = _load_relations(config, set_, out).as_dict()
    _echo(summary)


@app.command("load")
def load_command(
    out: Annotated[Path, typer.Argument(help="folder written by `eeflow interlink run`")],
    config: ConfigOption = Path("configs/linked_data.yaml"),
    set_: SetOption = None,
) -> None:
    """Load an interlinking output's triples into their named graph (replacing it)."""
    _echo(_load_relations(config, set_, out).as_dict())


@app.command()
def generate(
    out: OutOpt = Path("work/data/interlinking/generated"),
    parcels: Annotated[int, typer.Option("--parcels", help="about how many parcels")] = 10_000,
    points: Annotated[int | None, typer.Option("--points", help="LUCAS-like points "
                                               "(default parcels / 10)")] = None,
    seed: SeedOpt = 0,
) -> None:
    """Generate parcels.parquet, fields.parquet (derived instances) and points.parquet."""
    from tasks.interlinking.run import generate_stage

    _echo(generate_stage(out, n_parcels=parcels, seed=seed, n_points=points))


@app.command("compare-selectors")
def compare_selectors(
    source: SourceOpt,
    target: TargetOpt,
    out: OutOpt,
    target_crs: CrsOpt = "",
    fractions: Annotated[str, typer.Option(
        "--fractions", help="budgets reported, as fractions of the candidate count")] = (
        "0.1,0.25,0.5"),
    seed: SeedOpt = 0,
    cell_factor: CellOpt = 1.0,
) -> None:
    """Recall / precision of every selector vs the exhaustive run; selectors.json + curve PNG."""
    from tasks.interlinking.run import compare_selectors_stage

    try:
        values = tuple(float(f) for f in fractions.split(","))
    except ValueError:
        raise typer.BadParameter(f"{fractions!r} is not a comma-separated list of numbers",
                                 param_hint="--fractions") from None
    if not all(0 <= f <= 1 for f in values):
        raise typer.BadParameter(f"{fractions!r}: fractions must lie in [0, 1]",
                                 param_hint="--fractions")
    result = compare_selectors_stage(source, target, out, target_crs=target_crs or None,
                                     fractions=values, seed=seed, cell_factor=cell_factor)
    _echo(result)
