"""``eeflow experiments ...``: search, LOCO ablation, reports, dashboard and model registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tasks.config.food_security import FoodSecurityConfig
from tasks.config.options import ConfigOption, SetOption, load_cli_config
from tasks.config.polar import PolarConfig

app = typer.Typer(help="Optuna search, LOCO ablation and the MLflow model registry.",
                  no_args_is_help=True)
registry_app = typer.Typer(help="List, register, promote and resolve models.",
                           no_args_is_help=True)
app.add_typer(registry_app, name="registry")

ConfigOpt = ConfigOption
RunDateOpt = Annotated[str | None, typer.Option(
    "--run-date", help="day of the training data (crops: any day of the agronomic year)")]


def _cfg(config: Path, set_: list[str] | None) -> PolarConfig | FoodSecurityConfig:
    """Load a polar or food_security config with the ``--set`` overrides applied."""
    return load_cli_config(config, set_, expect=(PolarConfig, FoodSecurityConfig))


def _echo(payload: Any) -> None:
    from tasks.console import echo_json

    echo_json(payload)


@app.command()
def search(
    config: ConfigOpt,
    run_date: RunDateOpt = None,
    trials: Annotated[int | None, typer.Option(help="budget (default: search.n_trials)")] = None,
    workers: Annotated[int, typer.Option(help="parallel workers (Dask)")] = 1,
    dataset: Annotated[str | None, typer.Option(help="training set (polar zarr)")] = None,
    register: Annotated[bool, typer.Option(help="register the best model")] = True,
    set_: SetOption = None,
) -> None:
    """Run (or resume) the search study, write its report and register the best model."""
    from tasks.experiments.stages import run_experiment

    _echo(run_experiment(_cfg(config, set_), run_date, mode="search", trials=trials,
                         workers=workers, register=register, dataset_path=dataset))


@app.command()
def ablation(
    config: ConfigOpt,
    run_date: RunDateOpt = None,
    workers: Annotated[int, typer.Option(help="parallel workers (Dask)")] = 1,
    dataset: Annotated[str | None, typer.Option(help="training set (polar zarr)")] = None,
    set_: SetOption = None,
) -> None:
    """Run (or resume) the LOCO ablation and write its table and bar plot."""
    from tasks.experiments.stages import run_experiment

    _echo(run_experiment(_cfg(config, set_), run_date, mode="ablation", workers=workers,
                         register=False, dataset_path=dataset))


@app.command()
def report(
    config: ConfigOpt,
    mode: Annotated[str, typer.Option(help="search | ablation")] = "search",
    set_: SetOption = None,
) -> None:
    """Write the report of the search study or the ablation table of the config."""
    from tasks.experiments.stages import report_experiment

    _echo(report_experiment(_cfg(config, set_), mode=mode))


#: Default ports of the experiment UIs, clear of Airflow (8080), the serving API (8090), the SPARQL
#: server (7878) and the Dask dashboard (8787), so that all run side by side on one machine.
DASHBOARD_PORT = 8081
MLFLOW_UI_PORT = 5000


@app.command()
def dashboard(
    config: ConfigOpt,
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = DASHBOARD_PORT,
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    set_: SetOption = None,
) -> None:
    """Open optuna-dashboard on the config's study storage (Ctrl-C stops it)."""
    from optuna_dashboard import run_server

    from tasks.experiments.search import open_storage, redact_url, storage_url

    cfg = _cfg(config, set_)
    url = storage_url(cfg)
    typer.echo(f"optuna-dashboard on http://{host}:{port} for {redact_url(url)}")
    run_server(open_storage(url, cfg.search), host=host, port=port)


def mlflow_ui_command(cfg: PolarConfig | FoodSecurityConfig, host: str, port: int) -> list[str]:
    """Return the ``mlflow ui`` command line on the config's registry store.

    The backend store is the registry's tracking URI (``$MLFLOW_TRACKING_URI`` or the
    ``registry`` section; default the SQLite file under ``{data_root}/registry``), the default
    artifact root its artifact folder: the values
    :meth:`~tasks.model_registry.ModelRegistry.from_config` opens, resolved here without
    connecting to the store (the UI does that).
    """
    import os
    import sys

    base = cfg.resolved_root() / "registry"
    uri = (os.environ.get("MLFLOW_TRACKING_URI") or cfg.registry.tracking_uri
           or f"sqlite:///{base / 'mlflow.db'}")
    artifacts = str(cfg.registry.artifact_root or base / "artifacts")
    if "://" not in artifacts:
        artifacts = Path(artifacts).resolve().as_uri()
    exe = Path(sys.executable).with_name("mlflow")
    return [str(exe) if exe.exists() else "mlflow", "ui",
            "--backend-store-uri", uri,
            "--default-artifact-root", artifacts,
            "--host", host, "--port", str(port)]


@app.command("mlflow-ui")
def mlflow_ui(
    config: ConfigOpt,
    port: Annotated[int, typer.Option(help="port to listen on")] = MLFLOW_UI_PORT,
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    set_: SetOption = None,
) -> None:
    """Open the MLflow UI on the config's model registry (runs, versions, aliases; Ctrl-C stops)."""
    import subprocess

    from tasks.experiments.search import redact_url

    command = mlflow_ui_command(_cfg(config, set_), host, port)
    store = command[command.index("--backend-store-uri") + 1]
    typer.echo(f"MLflow UI on http://{host}:{port} for {redact_url(store)}")
    try:
        code = subprocess.call(command)
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


@registry_app.command("list")
def registry_list(config: ConfigOpt, set_: SetOption = None) -> None:
    """List the registered versions of the config's use case."""
    from tasks.model_registry import ModelRegistry

    cfg = _cfg(config, set_)
    _echo([r.as_dict() for r in ModelRegistry.from_config(cfg).versions(cfg.use_case)])


@registry_app.command("register")
def registry_register(
    config: ConfigOpt,
    model_dir: Annotated[Path, typer.Argument(help="folder with model.json + checkpoint")],
    alias: Annotated[str | None, typer.Option(help="give the new version this alias")] = None,
    set_: SetOption = None,
) -> None:
    """Register a trained model folder as a new version."""
    from tasks.model_registry import ModelRegistry

    cfg = _cfg(config, set_)
    _echo(ModelRegistry.from_config(cfg).register(cfg.use_case, model_dir, alias=alias).as_dict())


@registry_app.command("best")
def registry_best(
    config: ConfigOpt,
    metric: Annotated[str, typer.Option(help="metric to rank by")],
    direction: Annotated[str, typer.Option(help="maximize | minimize")] = "maximize",
    set_: SetOption = None,
) -> None:
    """Print the version with the best metric."""
    from tasks.model_registry import ModelRegistry

    cfg = _cfg(config, set_)
    _echo(ModelRegistry.from_config(cfg).best_model(cfg.use_case, metric, direction).as_dict())


@registry_app.command("promote")
def registry_promote(
    config: ConfigOpt,
    version: Annotated[int, typer.Option(help="version to promote")],
    alias: Annotated[str | None, typer.Option(help="default: registry.alias")] = None,
    set_: SetOption = None,
) -> None:
    """Point an alias (default ``production``) at a version."""
    from tasks.model_registry import ModelRegistry

    cfg = _cfg(config, set_)
    record = ModelRegistry.from_config(cfg).set_alias(cfg.use_case, alias or cfg.registry.alias,
                                                      version)
    _echo(record.as_dict())


@registry_app.command("resolve")
def registry_resolve(
    config: ConfigOpt,
    alias: Annotated[str | None, typer.Option(help="default: registry.alias")] = None,
    set_: SetOption = None,
) -> None:
    """Print the verified local folder of the model an alias points at."""
    from tasks.model_registry import ModelRegistry

    cfg = _cfg(config, set_)
    typer.echo(str(ModelRegistry.from_config(cfg).resolve(cfg.use_case,
                                                         alias=alias or cfg.registry.alias)))
