"""``eeflow lucas ...``: evaluate crop maps against LUCAS survey points without Airflow.

Example::

    eeflow lucas evaluate --points lucas_2018_AT.csv --map lstm=map_lstm.parquet \
        --map tempcnn=map_tempcnn.parquet --radius 10
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tasks.config.options import SetOption, parse_overrides

if TYPE_CHECKING:
    from tasks.config.lucas import LucasConfig

app = typer.Typer(no_args_is_help=True, help="Evaluate crop maps against LUCAS survey points.")

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="a LUCAS section YAML, or a use-case YAML with a "
                 "'lucas' section (food_security.yaml)"),
]
RunDateOpt = Annotated[
    str,
    typer.Option("--run-date", "-d", help="a day of the agronomic year (default: the median "
                 "SURVEY_DATE of the points)"),
]


def load_lucas_config(
    path: Path | None, overrides: dict[str, Any], sets: dict[str, Any] | None = None
) -> tuple[LucasConfig, str | None]:
    """Read the LUCAS settings (standalone section or a use case's ``lucas`` key) + overrides.

    ``sets`` (``--set key.path=value``) replace keys of the file given: dotted keys of the use
    case (``lucas.radius_m``) for a use-case YAML, keys of the section (``radius_m``) otherwise.

    Returns:
        (LucasConfig, the use case's data root or None).

    """
    import yaml
    from pydantic import ValidationError

    from tasks.config.common import ConfigError, format_validation_error, load_config, set_dotted
    from tasks.config.lucas import LucasConfig

    data: dict[str, Any] = {}
    root = None
    from_use_case = False
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        raw = yaml.safe_load(path.read_text()) or {}
        if isinstance(raw, dict) and "use_case" in raw:
            use_case = load_config(path, sets)
            from_use_case = True
            root = str(use_case.resolved_root())
            section = getattr(use_case, "lucas", None)
            data = section.model_dump() if section is not None else {}
        elif isinstance(raw, dict):
            data = raw
        else:
            raise ConfigError(f"{path}: the top level must be a mapping")
    if not from_use_case:
        for dotted, value in (sets or {}).items():
            set_dotted(data, dotted, value)
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return LucasConfig.model_validate(data), root
    except ValidationError as err:
        raise format_validation_error(err, LucasConfig, str(path or "<options>")) from None


def parse_maps(items: list[str]) -> dict[str, str]:
    """Parse ``NAME=PATH`` (or ``PATH``, named by its file stem) map arguments."""
    maps: dict[str, str] = {}
    for item in items:
        name, _, path = item.partition("=") if "=" in item else (Path(item).stem, "", item)
        if name in maps:
            raise typer.BadParameter(f"--map: name {name!r} given twice")
        maps[name] = path
    return maps


@app.command()
def evaluate(
    points: Annotated[Path, typer.Option("--points", "-p", help="LUCAS points, CSV or GeoParquet")],
    map_: Annotated[
        list[str],
        typer.Option("--map", "-m", help="crop map, NAME=PATH or PATH (GeoParquet instances or "
                     "class COG); repeat to compare models"),
    ],
    radius: Annotated[float | None, typer.Option("--radius", help="radius of the rule, m")] = None,
    barley_rule: Annotated[
        str | None, typer.Option("--barley-rule", help="merge | winter_barley | spring_barley")
    ] = None,
    min_usable_share: Annotated[
        float | None,
        typer.Option("--min-usable-share",
                     help="least share of points with a usable location (lucas.min_usable_share)"),
    ] = None,
    config: ConfigOpt = None,
    run_date: RunDateOpt = "",
    set_: SetOption = None,
    root: Annotated[
        Path | None,
        typer.Option(
            "--root", help="data root (default: the use case's, else $EEFLOW_HOME/work/data)"
        ),
    ] = None,
) -> None:
    """Evaluate maps against LUCAS points (same class within the radius, and nearest instance)."""
    from tasks.config.common import eeflow_home
    from tasks.console import echo_json
    from tasks.lucas.run import run_lucas_evaluation, survey_run_date

    cfg, config_root = load_lucas_config(
        config, {"radius_m": radius, "barley_rule": barley_rule,
                 "min_usable_share": min_usable_share},
        parse_overrides(set_),
    )
    data_root = root or Path(
        config_root or eeflow_home() / "work" / "data"
    )
    day = run_date or survey_run_date(points).isoformat()
    echo_json(run_lucas_evaluation(cfg, points, parse_maps(map_), data_root, day))
