"""The ``--config`` / ``--set`` options every ``eeflow`` command that reads a config shares.

Each command takes ``--config PATH`` (``-c``; the use case's YAML) and ``--set key.path=value``
(repeatable; the value is read as a YAML scalar, so ``--set train.epochs=2`` gives an int and
``--set ingest.source=stac`` a string). :func:`load_cli_config` applies them with
:func:`tasks.config.common.load_config`, and refuses a config of another use case.

Example::

    @app.command()
    def train(config: ConfigOption = DEFAULT, set_: SetOption = None) -> None:
        cfg = load_cli_config(config, set_, expect=PolarConfig)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar, overload

import typer

from tasks.config.common import UseCaseConfig, load_config

C = TypeVar("C", bound=UseCaseConfig)
D = TypeVar("D", bound=UseCaseConfig)

#: ``--config`` / ``-c``: the YAML file of the command's use case.
ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="the use case's YAML file (configs/*.yaml)")
]
#: ``--set key.path=value``, repeatable: replaces a key of the config file.
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="override a config key, e.g. --set train.epochs=2 (repeatable; values are YAML "
        "scalars)",
    ),
]


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """Parse ``key.path=value`` strings; values are read as YAML scalars (numbers, booleans...).

    Raises:
        typer.BadParameter: an item without ``=``.

    """
    import yaml

    overrides: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise typer.BadParameter(f"--set {item!r}: expected key.path=value")
        key, value = item.split("=", 1)
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


@overload
def load_cli_config(
    config: Path, set_: list[str] | None = None, *, expect: None = None
) -> UseCaseConfig: ...


@overload
def load_cli_config(config: Path, set_: list[str] | None = None, *, expect: type[C]) -> C: ...


@overload
def load_cli_config(
    config: Path, set_: list[str] | None = None, *, expect: tuple[type[C], type[D]]
) -> C | D: ...


def load_cli_config(
    config: Path,
    set_: list[str] | None = None,
    *,
    expect: type[UseCaseConfig] | tuple[type[UseCaseConfig], ...] | None = None,
) -> UseCaseConfig:
    """Load ``--config`` with the ``--set`` overrides applied; the type follows ``expect``.

    Raises:
        ConfigError: the file is missing or invalid, or holds another use case than ``expect``.
        typer.BadParameter: a ``--set`` item without ``=``.

    """
    return load_config(config, parse_overrides(set_), expect=expect)
