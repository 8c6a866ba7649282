"""``eeflow polar ...``: run each polar stage, or a whole pipeline, without Airflow.

The stage commands call the DAGs' stage functions (:mod:`tasks.polar.stages`) and print the
``StageResult`` the DAG pushes to XCom; ``search`` has no stage (it only lists the catalogue).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

from tasks.config.options import ConfigOption, SetOption, load_cli_config
from tasks.config.polar import PolarConfig
from tasks.stage_result import StageResult

app = typer.Typer(no_args_is_help=True)

ConfigOpt = ConfigOption
RunDateOpt = Annotated[
    str, typer.Option("--run-date", "-d", help="logical date, YYYY-MM-DD (default: today, UTC)")
]
SetOpt = SetOption
DEFAULT_CONFIG = Path("configs/polar.yaml")


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def _cfg(config: Path, overrides: list[str] | None) -> PolarConfig:
    return load_cli_config(config, overrides, expect=PolarConfig)


def _echo(payload: Any) -> None:
    """Print a result as JSON (a ``StageResult`` as its ``as_dict()``, the DAG's XCom value)."""
    from tasks.console import echo_json

    echo_json(payload.as_dict() if isinstance(payload, StageResult) else payload)


@app.command()
def ingest(
    config: ConfigOpt = DEFAULT_CONFIG, run_date: RunDateOpt = "", set_: SetOpt = None
) -> None:
    """Find (or generate) the day's Sentinel-1 EW GRD scenes."""
    from tasks.polar.stages import ingest_stage

    _echo(ingest_stage(_cfg(config, set_), run_date or _today()))


@app.command()
def search(
    config: ConfigOpt = DEFAULT_CONFIG, run_date: RunDateOpt = "", set_: SetOpt = None
) -> None:
    """Search the configured catalogue (ingest.source cdse_odata / stac) for the day's scenes."""
    from tasks.polar.ingest import describe_area, search_day
    from tasks.storage import to_date

    cfg = _cfg(config, set_)
    if cfg.ingest.source not in ("cdse_odata", "stac"):
        raise typer.BadParameter(
            f"ingest.source is {cfg.ingest.source!r}; search needs a catalogue source: "
            "--set ingest.source=cdse_odata or --set ingest.source=stac"
        )
    day = to_date(run_date or _today())
    products, rejected = search_day(cfg, day)
    _echo({"day": day.isoformat(), "area": describe_area(cfg),
           "provider": cfg.ingest.catalogue.provider,
           "products": [p.summary() for p in products], "rejected": rejected})


@app.command()
def harmonise(
    config: ConfigOpt = DEFAULT_CONFIG, run_date: RunDateOpt = "", set_: SetOpt = None
) -> None:
    """Noise removal, calibration, multilook, dB, incidence angle -> zarr."""
    from tasks.polar.stages import harmonise_stage

    _echo(harmonise_stage(_cfg(config, set_), run_date or _today()))


@app.command()
def labels(
    config: ConfigOpt = DEFAULT_CONFIG, run_date: RunDateOpt = "", set_: SetOpt = None
) -> None:
    """Rasterise the day's ice-chart polygons onto the harmonised grid."""
    from tasks.polar.stages import labels_stage

    _echo(labels_stage(_cfg(config, set_), run_date or _today()))


@app.command()
def daily(
    config: ConfigOpt = DEFAULT_CONFIG, run_date: RunDateOpt = "", set_: SetOpt = None
) -> None:
    """Run the daily ice chart: ingest -> harmonise -> predict -> publish -> RDF."""
    from tasks.polar.stages import daily_ice_chart

    _echo(daily_ice_chart(_cfg(config, set_), run_date or _today()))


@app.command()
def training(
    config: ConfigOpt = DEFAULT_CONFIG,
    run_date: RunDateOpt = "",
    set_: SetOpt = None,
) -> None:
    """Training pipeline: ingest -> harmonise -> labels -> patches -> train -> evaluate."""
    from tasks.polar.stages import training_pipeline

    _echo(training_pipeline(_cfg(config, set_), run_date or _today()))


@app.command()
def patches(
    config: ConfigOpt = DEFAULT_CONFIG, run_date: RunDateOpt = "", set_: SetOpt = None
) -> None:
    """Extract the versioned patch training set from the day's harmonised scenes and labels."""
    from tasks.polar.stages import patches_stage

    _echo(patches_stage(_cfg(config, set_), run_date or _today()))


@app.command()
def train(
    config: ConfigOpt = DEFAULT_CONFIG, run_date: RunDateOpt = "", set_: SetOpt = None
) -> None:
    """Train train.model on the patches.dataset_version training set (train.patch_size)."""
    from tasks.polar.stages import train_stage

    _echo(train_stage(_cfg(config, set_), run_date or _today()))


@app.command()
def evaluate(
    config: ConfigOpt = DEFAULT_CONFIG,
    run_date: RunDateOpt = "",
    set_: SetOpt = None,
    model_dir: Annotated[
        str | None, typer.Option("--model-dir", help="model folder (default: the latest)")
    ] = None,
) -> None:
    """Evaluate a trained model on the validation part of its training set."""
    from tasks.polar.stages import evaluate_stage

    _echo(evaluate_stage(_cfg(config, set_), run_date or _today(), model_dir=model_dir))


@app.command()
def predict(
    config: ConfigOpt = DEFAULT_CONFIG, run_date: RunDateOpt = "", set_: SetOpt = None
) -> None:
    """Chart the day's harmonised scenes with predict.model (COG, quicklook, GeoJSON)."""
    from tasks.polar.stages import predict_stage

    _echo(predict_stage(_cfg(config, set_), run_date or _today()))


@app.command()
def publish(
    config: ConfigOpt = DEFAULT_CONFIG, run_date: RunDateOpt = "", set_: SetOpt = None
) -> None:
    """Publish the day's chart under polar/published/{day} (STAC items, latest.json)."""
    from tasks.polar.stages import publish_stage

    _echo(publish_stage(_cfg(config, set_), run_date or _today()))


@app.command("evaluate-transfer")
def evaluate_transfer(
    train_day: Annotated[
        list[str], typer.Option("--train-day", help="a training day A, YYYY-MM-DD (repeatable)")
    ],
    test_day: Annotated[
        list[str], typer.Option("--test-day", help="a test day B, YYYY-MM-DD (repeatable)")
    ],
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOpt = None,
    test_set: Annotated[
        list[str] | None,
        typer.Option("--test-set", help="override a config key for the test days only (another "
                     "region: --test-set seed=7, --test-set ingest.aoi_bbox=[...]; repeatable)"),
    ] = None,
    model_dir: Annotated[
        str | None, typer.Option("--model-dir", help="evaluate this model instead of training one")
    ] = None,
) -> None:
    """Train on days A, chart days B (or another region) and score it against B's truth."""
    from tasks.config.options import parse_overrides
    from tasks.polar.generalisation import evaluate_transfer as run

    _echo(run(_cfg(config, set_), train_day, test_day, test_overrides=parse_overrides(test_set),
              model_dir=Path(model_dir) if model_dir else None))
