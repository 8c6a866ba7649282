"""``eeflow`` command line: run any stage or pipeline without Airflow.

Every use case has a sub-command group (``eeflow polar ...``, ``eeflow crops ...``); each stage
command takes ``--config`` and ``--run-date`` and prints the output URIs and a summary as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tasks.config.common import ConfigError, load_config

app = typer.Typer(
    help="eeflow: Copernicus data to sea-ice charts and crop maps.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
config_app = typer.Typer(help="Inspect and validate configs.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _register_subcommands() -> None:
    """Attach the use-case command groups (each lives beside its stages)."""
    from tasks.polar.cli import app as polar_app

    app.add_typer(polar_app, name="polar", help="Sea-ice charts from Sentinel-1 EW GRD.")
    from tasks.linked_data.cli import app as rdf_app

    app.add_typer(rdf_app, name="rdf", help="Linked data: RDF export, load, GeoSPARQL, federation.")
    from tasks.food_security.cli import app as crops_app

    app.add_typer(crops_app, name="crops", help="Crop-type maps from Sentinel-2 L2A time series.")
    from tasks.experiments.cli import app as experiments_app

    app.add_typer(experiments_app, name="experiments", help="Optuna search, ablation, registry.")
    from tasks.lucas.cli import app as lucas_app

    app.add_typer(lucas_app, name="lucas", help="Evaluate crop maps against LUCAS points.")
    from tasks.interlinking.cli import app as interlink_app

    app.add_typer(interlink_app, name="interlink", help="Topological interlinking -> GeoSPARQL.")


def echo_json(payload: Any) -> None:
    """Print a result as indented JSON on stdout."""
    typer.echo(json.dumps(payload, indent=2, sort_keys=True, default=str))


@config_app.command("validate")
def validate(paths: Annotated[list[Path], typer.Argument(help="config files")]) -> None:
    """Validate config files; exit 1 with the key path, value and allowed values on error."""
    failed = False
    for path in paths:
        try:
            cfg = load_config(path)
            typer.echo(f"{path}: ok (use_case={cfg.use_case})")
        except ConfigError as err:
            failed = True
            typer.echo(str(err), err=True)
    raise typer.Exit(1 if failed else 0)


@config_app.command("show")
def show(path: Path) -> None:
    """Print a config with all defaults filled in."""
    echo_json(load_config(path).model_dump(mode="json"))


@app.command()
def demo(
    training_date: Annotated[
        str, typer.Option(help="day whose generated scenes train the model")
    ] = "2026-01-14",
    chart_date: Annotated[
        str, typer.Option(help="day to chart with the trained model")
    ] = "2026-01-15",
    home: Annotated[Path, typer.Option(help="project folder (EEFLOW_HOME)")] = Path("."),
) -> None:
    """Run the polar pipeline end to end on a local Airflow (SQLite) and print where outputs are.

    Initialises ``work/airflow`` (SQLite metadata DB), checks every DAG imports, runs
    ``polar_training`` on generated scenes of ``training_date`` and then ``polar_ice_chart_daily``
    for ``chart_date`` with ``airflow dags test``.
    """
    from tasks.local_airflow import airflow_env, init_db, list_dags, run_dag_test
    from tasks.polar.pipeline import describe_outputs

    home = home.resolve()
    env = airflow_env(home)
    typer.echo(f"[1/4] local Airflow in {env['AIRFLOW_HOME']} (SQLite)")
    init_db(env)
    dags = list_dags(env)
    typer.echo(f"[2/4] DAGs: {', '.join(dags)}")
    typer.echo(f"[3/4] polar_training on generated scenes of {training_date} ...")
    run_dag_test("polar_training", training_date, env, conf={"run_date": training_date})
    typer.echo(f"[4/4] polar_ice_chart_daily for {chart_date} ...")
    run_dag_test("polar_ice_chart_daily", chart_date, env, conf={"run_date": chart_date})
    typer.echo("done. Outputs:")
    echo_json(describe_outputs(home, chart_date))


def main() -> None:
    """Entry point of the ``eeflow`` script."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    _register_subcommands()
    try:
        app()
    except ConfigError as err:
        typer.echo(f"config error: {err}", err=True)
        sys.exit(2)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        # expected failures (bad input, missing upstream output): the message says what to do;
        # EEFLOW_DEBUG=1 shows the traceback
        if os.environ.get("EEFLOW_DEBUG"):
            raise
        typer.echo(f"error: {type(err).__name__}: {err}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
