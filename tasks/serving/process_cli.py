"""``eeflow process submit|status``: on-demand processing from the shell (tasks/serving/process).

The same :class:`~tasks.serving.process.ProcessJobs` as ``POST /v1/process``: the jobs lie under
the serving config's data root and the runs are triggered through the Airflow API named by
``EEFLOW_AIRFLOW_URL`` / ``EEFLOW_AIRFLOW_USERNAME`` / ``EEFLOW_AIRFLOW_PASSWORD``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tasks.config.options import ConfigOption, SetOption

if TYPE_CHECKING:
    from tasks.serving.process import ProcessJobs

app = typer.Typer(no_args_is_help=True)

ConfigOpt = ConfigOption
DEFAULT_CONFIG = Path("configs/serving.yaml")


def _jobs(config: Path, set_: list[str] | None = None) -> ProcessJobs:  # lazy serving import
    from tasks.config.options import load_cli_config
    from tasks.config.serving import ServingConfig
    from tasks.serving.process import ProcessJobs

    cfg = load_cli_config(config, set_, expect=ServingConfig)
    return ProcessJobs(cfg.resolved_root(), coverage=cfg.process.coverage)


def _run(call: Callable[..., Any], *args: Any) -> None:
    from tasks.serving.process import ProcessError

    try:
        typer.echo(json.dumps(call(*args), indent=2, default=str))
    except ProcessError as err:
        typer.echo(f"error: {err.message}", err=True)
        raise typer.Exit(1) from None


@app.command("submit")
def submit(
    use_case: Annotated[str, typer.Option(help="polar | food_security")],
    region: Annotated[str, typer.Option(help="WKT or GeoJSON (WGS84), or a .wkt/.geojson file")],
    start: Annotated[str, typer.Option(help="first day of the window, YYYY-MM-DD")],
    end: Annotated[str, typer.Option(help="last day of the window, YYYY-MM-DD")],
    model: Annotated[str | None, typer.Option(help="polar: predict.model; crops: all|lstm|...")]
    = None,
    replace: Annotated[bool, typer.Option(
        help="replace the products of earlier jobs that covered these days over another region")]
    = False,
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOption = None,
) -> None:
    """Trigger the use case's DAG over a region and time window; print the job (its job_id)."""
    from pydantic import ValidationError

    from tasks.serving.process import ProcessRequest

    path = Path(region)
    text = path.read_text() if region.endswith((".wkt", ".geojson")) and path.is_file() else region
    try:
        request = ProcessRequest.model_validate({
            "use_case": use_case, "region": text, "window_start": start, "window_end": end,
            "model": model, "replace": replace,
        })
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'request'}: {e['msg']}"
                             for e in err.errors())
        raise typer.BadParameter(problems) from None
    _run(_jobs(config, set_).submit, request)


@app.command("status")
def status(
    job_id: str,
    results: Annotated[bool, typer.Option(help="list the STAC items the runs published")] = False,
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOption = None,
) -> None:
    """Print a job with the Airflow state of each run (or, with --results, its products)."""
    jobs = _jobs(config, set_)
    _run(jobs.results if results else jobs.status, job_id)
