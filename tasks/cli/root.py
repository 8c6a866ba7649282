"""``eeflow`` root command: the use-case command groups, ``config`` and the error boundary.

Every use case has a sub-command group (``eeflow polar ...``, ``eeflow crops ...``); each stage
command takes ``--config`` and ``--run-date`` and prints the output URIs and a summary as JSON.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tasks.cli.demo import demo
from tasks.config.common import ConfigError, load_config
from tasks.console import echo_json

app = typer.Typer(
    help="eeflow: Copernicus data to sea-ice charts and crop maps.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
config_app = typer.Typer(help="Inspect and validate configs.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.command()(demo)


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
    from tasks.cli.airflow_commands import app as airflow_app

    app.add_typer(airflow_app, name="airflow", help="Local Airflow: start, trigger, backfill.")
    from tasks.interlinking.cli import app as interlink_app

    app.add_typer(interlink_app, name="interlink", help="Topological interlinking -> GeoSPARQL.")
    from tasks.serving.cli import app as serve_app

    app.add_typer(serve_app, name="serve", help="Model serving API, API keys, monitoring.")
    from tasks.serving.process_cli import app as process_app

    app.add_typer(process_app, name="process",
                  help="On-demand processing: a use case over a region and time window.")


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


def command_path(argv: list[str]) -> tuple[str, str]:
    """Split ``argv`` into the sub-command path (``eeflow polar harmonise``) and its arguments."""
    import typer.main

    command: Any = typer.main.get_command(app)
    words = ["eeflow"]
    rest = list(argv)
    while rest and hasattr(command, "commands") and rest[0] in command.commands:
        command = command.commands[rest[0]]
        words.append(rest.pop(0))
    return " ".join(words), " ".join(rest)


def main() -> None:
    """Entry point of the ``eeflow`` script: the CLI's one error boundary.

    Any failure is reported in one message naming the command, its arguments and the cause, with
    an exit code per error family (see :mod:`tasks.errors`: 1 bad input data, 2 config error, 3
    store or service unavailable, 4 I/O, 70 internal error); ``EEFLOW_DEBUG=1`` adds the
    traceback.
    """
    from tasks.errors import debug_enabled, describe_failure

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    _register_subcommands()
    try:
        app()
    except Exception as err:
        stage, inputs = command_path(sys.argv[1:])
        failure = describe_failure(err, stage, inputs)
        if debug_enabled():
            import traceback

            traceback.print_exception(err, file=sys.stderr)
        typer.echo(failure.message, err=True)
        sys.exit(failure.exit_code)


if __name__ == "__main__":
    main()
