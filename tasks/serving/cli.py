"""``eeflow serve ...``: run the serving API, manage project API keys, read the monitoring summary.

Example::

    eeflow serve keys create --project polar-ops        # prints the key once
    eeflow serve run --host 127.0.0.1 --port 8090       # docs at http://127.0.0.1:8090/docs
    eeflow serve monitor --project polar-ops
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tasks.config.options import ConfigOption, SetOption

if TYPE_CHECKING:
    from tasks.config.serving import ServingConfig
    from tasks.serving.keys import ApiKeyStore

app = typer.Typer(no_args_is_help=True, help="Model serving API, API keys, monitoring.")
keys_app = typer.Typer(no_args_is_help=True, help="Project API keys (stored hashed).")
app.add_typer(keys_app, name="keys")

DEFAULT_CONFIG = Path("configs/serving.yaml")
ConfigOpt = ConfigOption


def load_serving_config(path: Path, set_: list[str] | None = None) -> ServingConfig:
    """Load and validate a serving config (``use_case: serving``) with ``--set`` applied."""
    from tasks.config.options import load_cli_config
    from tasks.config.serving import ServingConfig

    return load_cli_config(path, set_, expect=ServingConfig)


def _echo(payload: Any) -> None:
    from tasks.console import echo_json

    echo_json(payload)


def _store(cfg: ServingConfig) -> ApiKeyStore:
    from tasks.serving.keys import ApiKeyStore

    return ApiKeyStore(cfg.under_root(cfg.keys_file))


@keys_app.command("create")
def keys_create(
    project: Annotated[str, typer.Option(help="project whose models the key may use")],
    expires_days: Annotated[float | None, typer.Option(help="days until it expires")] = None,
    note: Annotated[str, typer.Option(help="who holds the key")] = "",
    config: ConfigOpt = DEFAULT_CONFIG, set_: SetOption = None,
) -> None:
    """Create a key; the plain key is printed once (only its scrypt hash is stored)."""
    cfg = load_serving_config(config, set_)
    known = sorted({m.project for m in cfg.models.values()})
    if known and project not in known:
        typer.echo(f"warning: no served model belongs to project {project!r} yet "
                   f"(projects in {config}: {known})", err=True)
    key, record = _store(cfg).create(project, expires_in_days=expires_days, note=note)
    _echo({"api_key": key, **record.as_dict(),
           "hint": "send it as the X-API-Key header; it cannot be shown again"})


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="key id (see keys list)")],
                config: ConfigOpt = DEFAULT_CONFIG, set_: SetOption = None) -> None:
    """Revoke a key by its id; requests with it get 401 from then on."""
    try:
        record = _store(load_serving_config(config, set_)).revoke(key_id)
    except LookupError as err:
        raise ValueError(str(err)) from None
    _echo(record.as_dict())


@keys_app.command("list")
def keys_list(project: Annotated[str | None, typer.Option(help="only this project")] = None,
              config: ConfigOpt = DEFAULT_CONFIG, set_: SetOption = None) -> None:
    """List keys (ids, projects, status; never secrets)."""
    _echo([r.as_dict() for r in _store(load_serving_config(config, set_)).list(project)])


@app.command("run")
def run(host: Annotated[str | None, typer.Option(help="default: server.host")] = None,
        port: Annotated[int | None, typer.Option(help="default: server.port")] = None,
        config: ConfigOpt = DEFAULT_CONFIG, set_: SetOption = None) -> None:
    """Serve the API with uvicorn (OpenAPI docs at /docs)."""
    import uvicorn

    from tasks.serving.app import create_app

    cfg = load_serving_config(config, set_)
    host = host or cfg.server.host
    port = port or cfg.server.port
    application = create_app(cfg)
    typer.echo(f"eeflow serving {len(cfg.models)} model(s) on http://{host}:{port} "
               f"(docs: http://{host}:{port}/docs)", err=True)
    uvicorn.run(application, host=host, port=port, log_level=cfg.server.log_level)


@app.command("models")
def models(config: ConfigOpt = DEFAULT_CONFIG, set_: SetOption = None) -> None:
    """List the served models, their projects, versions and aliases (no key needed locally)."""
    from tasks.serving.catalog import ModelCatalog

    catalog = ModelCatalog(load_serving_config(config, set_))
    _echo([{"model": m.name, "project": m.project, "use_case": m.use_case,
            "versions": [v.as_dict() for v in m.versions()]}
           for _, m in sorted(catalog.models.items())])


@app.command("monitor")
def monitor(project: Annotated[str | None, typer.Option(help="only this project")] = None,
            model: Annotated[str | None, typer.Option(help="only this model")] = None,
            since_hours: Annotated[float | None, typer.Option(help="only the last hours")] = None,
            config: ConfigOpt = DEFAULT_CONFIG, set_: SetOption = None) -> None:
    """Print the monitoring summary of the request log (counts, latency, class drift)."""
    from tasks.serving.catalog import ModelCatalog
    from tasks.serving.monitoring import summarise
    from tasks.serving.request_log import read_records

    cfg = load_serving_config(config, set_)
    catalog = ModelCatalog(cfg)
    sink = next(s for s in cfg.request_log.sinks if s in ("jsonl", "parquet"))

    def training(name: str, version: int) -> tuple[list[str], list[int] | None, str]:
        if name not in catalog.models:
            raise LookupError(f"model {name!r} is no longer in {config}")
        predictor = catalog.get(name).predictor(version)
        return predictor.classes, predictor.training_counts, predictor.training_counts_source

    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=since_hours) if since_hours else None
    _echo(summarise(read_records(cfg.under_root(cfg.request_log.folder), sink), training,
                    project=project, model=model, since=since))
