"""``eeflow demo``: the polar pipeline end to end under a real local Airflow, and its outputs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

from tasks.console import echo_json


def describe_outputs(
    home: Path, run_date: dt.date | dt.datetime | str, config: str = "configs/polar.yaml"
) -> dict[str, Any]:
    """List the main outputs a user looks at after the demo."""
    from tasks.config.common import load_config
    from tasks.config.polar import PolarConfig
    from tasks.polar.train import latest_model
    from tasks.storage import day_run_key, stage_dir

    cfg = load_config(home / config, expect=PolarConfig)
    published = stage_dir(cfg.resolved_root(), "polar", "published", day_run_key(run_date))
    model = latest_model(cfg.resolved_root())
    return {
        "ice_chart_cog": sorted(str(p) for p in published.glob("*.tif")),
        "quicklook_png": sorted(str(p) for p in published.glob("*.png")),
        "polygons_geojson": sorted(str(p) for p in published.glob("*.geojson")),
        "model_dir": str(model),
        "evaluation": sorted(str(p) for p in (model / "evaluation").glob("*")),
        "airflow_home": str(home / "work" / "airflow"),
    }


def demo(
    training_date: Annotated[
        str, typer.Option(help="day whose generated scenes train the model")
    ] = "2026-01-14",
    chart_date: Annotated[
        str, typer.Option(help="day to chart with the trained model")
    ] = "2026-01-15",
    home: Annotated[Path, typer.Option(help="project folder (EEFLOW_HOME)")] = Path("."),
    port: Annotated[int, typer.Option(help="API server port; 0 = any free port")] = 0,
) -> None:
    """Run the polar pipeline end to end under a real local Airflow scheduler, print the outputs.

    Starts the local Airflow (SQLite in ``work/airflow``, LocalExecutor: api-server, scheduler,
    dag-processor), waits until every DAG is parsed, triggers ``polar_training`` on generated
    scenes of ``training_date`` and then ``polar_ice_chart_daily`` for ``chart_date`` over the
    REST API, as the UI's Trigger button does, and stops the services when both runs succeeded.
    """
    from tasks.cli.local_airflow import LocalAirflow
    from tasks.net import free_port

    home = home.resolve()
    af = LocalAirflow(home, port=port or free_port(),
                      services=("api-server", "scheduler", "dag-processor"))
    typer.echo(f"[1/4] local Airflow in {af.env['AIRFLOW_HOME']} (SQLite, LocalExecutor), "
               f"API on {af.url}")
    with af:
        dags = ["experiments", "food_security_agronomic_year", "linked_data",
                "polar_ice_chart_daily", "polar_training"]
        af.wait_for_dags(dags)
        typer.echo(f"[2/4] DAGs parsed by the DAG processor: {', '.join(dags)}")
        for step, dag_id, day in ((3, "polar_training", training_date),
                                  (4, "polar_ice_chart_daily", chart_date)):
            typer.echo(f"[{step}/4] {dag_id} for {day}: triggered, running under the scheduler ...")
            af.set_paused(dag_id, False)
            run_id = af.trigger(dag_id, {"run_date": day})
            af.wait_for_runs(dag_id, [run_id])
            af.set_paused(dag_id, True)
    typer.echo("done. Outputs:")
    echo_json(describe_outputs(home, chart_date))
    typer.echo("See the runs in the UI: eeflow airflow start  (then open http://127.0.0.1:8080)")
