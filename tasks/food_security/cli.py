"""``eeflow crops ...``: the food-security stages from the command line (no Airflow needed).

Every command takes ``--config``, ``--set key.path=value`` (repeatable) and ``--run-date`` (any day
of the agronomic year, which runs from 1 September to 31 August) and prints the stage's summary as
JSON. ``ingest``, ``harmonise``, ``labels`` and ``samples`` call the DAG's stage functions
(:mod:`tasks.food_security.stages`) and print the ``StageResult`` the DAG pushes to XCom;
``train``, ``predict`` and ``evaluate`` print the science's full summary (the stages keep only
the XCom keys of it, and ``evaluate --model`` may name several models).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tasks.config.food_security import CROP_MODEL_NAMES, FoodSecurityConfig
from tasks.config.options import ConfigOption, SetOption, load_cli_config
from tasks.stage_result import StageResult

MODEL_CHOICES = " | ".join(CROP_MODEL_NAMES)
app = typer.Typer(help="Crop-type maps from Sentinel-2 L2A time series.", no_args_is_help=True)

RunDateOption = Annotated[
    str, typer.Option("--run-date", help="a day of the agronomic year, e.g. 2017-09-01")
]


def _config(path: Path, set_: list[str] | None = None) -> FoodSecurityConfig:
    return load_cli_config(path, set_, expect=FoodSecurityConfig)


def _echo(payload: Any) -> None:
    """Print a result as JSON (a ``StageResult`` as its ``as_dict()``, the DAG's XCom value)."""
    from tasks.console import echo_json

    echo_json(payload.as_dict() if isinstance(payload, StageResult) else payload)


@app.command("generate")
def generate(config: ConfigOption, run_date: RunDateOption, set_: SetOption = None) -> None:
    """Generate synthetic Sentinel-2 L2A tiles and the parcel map of an agronomic year."""
    from tasks.sentinel2.generator import run_generate

    _echo(run_generate(_config(config, set_), run_date))


@app.command("ingest")
def ingest(config: ConfigOption, run_date: RunDateOption, set_: SetOption = None) -> None:
    """Ingest the agronomic year's L2A tiles from ingest.source (generator, directory, stac)."""
    from tasks.food_security.stages import ingest_stage

    _echo(ingest_stage(_config(config, set_), run_date))


@app.command("search")
def search(config: ConfigOption, run_date: RunDateOption, set_: SetOption = None) -> None:
    """Search the STAC API (ingest.catalogue) for the configured tiles' L2A items of the year."""
    from tasks.food_security.ingest import item_tile, search_year

    products = search_year(_config(config, set_), run_date)
    _echo([{**p.summary(), "tile": item_tile(p.item or {})} for p in products])


@app.command("harmonise")
def harmonise(config: ConfigOption, run_date: RunDateOption, set_: SetOption = None) -> None:
    """Mask clouds/snow and composite 12 monthly medians per tile."""
    from tasks.food_security.stages import harmonise_stage

    _echo(harmonise_stage(_config(config, set_), run_date))


@app.command("labels")
def labels(config: ConfigOption, run_date: RunDateOption, set_: SetOption = None) -> None:
    """Rasterise the parcel map and select reliable labels."""
    from tasks.food_security.stages import labels_stage

    _echo(labels_stage(_config(config, set_), run_date))


@app.command("samples")
def samples(config: ConfigOption, run_date: RunDateOption, set_: SetOption = None) -> None:
    """Build the train/val/test pixel time-series dataset split by tile."""
    from tasks.food_security.stages import samples_stage

    _echo(samples_stage(_config(config, set_), run_date))


@app.command("train")
def train(
    config: ConfigOption,
    run_date: RunDateOption,
    set_: SetOption = None,
    model: Annotated[
        str | None, typer.Option("--model", help=f"{MODEL_CHOICES} (default: train.model)")
    ] = None,
) -> None:
    """Train a crop model with the weighted two-phase procedure (models/{year}/{model}/)."""
    from tasks.food_security.train import train_crop_model

    _echo(train_crop_model(_config(config, set_), run_date, model=model))


@app.command("predict")
def predict(
    config: ConfigOption,
    run_date: RunDateOption,
    set_: SetOption = None,
    tile: Annotated[str | None, typer.Option("--tile", help="default: predict.tile")] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="model name, 'latest', 'registry:<alias>', "
                     "'best:<metric>' or a model folder"),
    ] = None,
) -> None:
    """Map a tile: crop-map COG, confidence COG, PNG quicklook, field instances GeoParquet."""
    from tasks.food_security.predict import run_predict

    _echo(run_predict(_config(config, set_), run_date, tile=tile, model=model))


@app.command("evaluate")
def evaluate(
    config: ConfigOption,
    run_date: RunDateOption,
    set_: SetOption = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", help="repeat to choose models (default: all)")
    ] = None,
) -> None:
    """Score the year's models on the held-out tile; write the comparison table."""
    from tasks.food_security.evaluate import run_evaluate

    _echo(run_evaluate(_config(config, set_), run_date, models=model or None))
