"""Search spaces: turn ``search.space`` into Optuna suggestions, grids and config overrides.

Parameter names are dotted config keys (``train.learning_rate``). A trial's values are applied to
a copy of the use-case config and re-validated, so a sampled value the config refuses (or a key
that does not exist) is a :class:`~tasks.config.common.ConfigError` naming the key.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tasks.config.common import format_validation_error, set_dotted
from tasks.config.experiments import ParameterSpec
from tasks.errors import EeflowError, ErrorFamily

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class SearchSpaceError(EeflowError, ValueError):
    """The search space is empty, contradictory or cannot be used by the chosen sampler."""

    family = ErrorFamily.CONFIG


def check_space(space: Mapping[str, ParameterSpec], source: str = "search.space") -> None:
    """Raise :class:`SearchSpaceError` when ``space`` has no parameter at all."""
    if not space:
        raise SearchSpaceError(
            f"{source} is empty: declare at least one parameter, e.g. "
            "'train.learning_rate: {type: float, low: 1e-4, high: 1e-2, log: true}'"
        )


def to_distribution(spec: ParameterSpec) -> Any:
    """Return the Optuna distribution of one parameter spec."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if spec.type == "categorical":
        return CategoricalDistribution([_hashable(c) for c in spec.choices or []])
    if spec.type == "int":
        return IntDistribution(int(spec.low or 0), int(spec.high or 0), log=spec.log,
                               step=int(spec.step or 1))
    return FloatDistribution(float(spec.low or 0.0), float(spec.high or 0.0), log=spec.log,
                             step=spec.step)


def _hashable(choice: Any) -> Any:
    """Optuna choices must be None/bool/int/float/str: encode lists/dicts as JSON strings."""
    if isinstance(choice, list | dict):
        return json.dumps(choice)
    return choice


def decode_value(spec: ParameterSpec, value: Any) -> Any:
    """Turn a stored Optuna value back into the config value (JSON-encoded list choices)."""
    if spec.type == "categorical" and isinstance(value, str):
        for choice in spec.choices or []:
            if isinstance(choice, list | dict) and json.dumps(choice) == value:
                return choice
    if spec.type == "int":
        return int(value)
    return value


def distributions(space: Mapping[str, ParameterSpec]) -> dict[str, Any]:
    """Return ``{name: optuna distribution}`` of a space."""
    check_space(space)
    return {name: to_distribution(spec) for name, spec in space.items()}


def suggest(trial: Any, space: Mapping[str, ParameterSpec]) -> dict[str, Any]:
    """Ask ``trial`` for every parameter and return ``{dotted key: config value}``."""
    check_space(space)
    values = {}
    for name, spec in space.items():
        if spec.type == "categorical":
            raw = trial.suggest_categorical(name, [_hashable(c) for c in spec.choices or []])
        elif spec.type == "int":
            raw = trial.suggest_int(name, int(spec.low or 0), int(spec.high or 0),
                                    step=int(spec.step or 1), log=spec.log)
        else:
            raw = trial.suggest_float(name, float(spec.low or 0.0), float(spec.high or 0.0),
                                      step=spec.step, log=spec.log)
        values[name] = decode_value(spec, raw)
    return values


def grid_values(name: str, spec: ParameterSpec) -> list[Any]:
    """Return the finite list of values of one parameter for the grid sampler."""
    if spec.type == "categorical":
        return [_hashable(c) for c in spec.choices or []]
    if spec.step is None:
        raise SearchSpaceError(
            f"search.space.{name}: the grid sampler needs a finite set of values; give 'choices' "
            "(type: categorical) or a 'step'"
        )
    low, high, step = float(spec.low or 0), float(spec.high or 0), float(spec.step)
    count = int(round((high - low) / step)) + 1
    values = [low + i * step for i in range(count) if low + i * step <= high + 1e-12]
    return [int(v) for v in values] if spec.type == "int" else [round(v, 12) for v in values]


def grid_points(space: Mapping[str, ParameterSpec]) -> list[dict[str, Any]]:
    """Return every combination of the grid (first key varies slowest), as Optuna values."""
    check_space(space)
    points: list[dict[str, Any]] = [{}]
    for name, spec in space.items():
        points = [{**p, name: v} for p in points for v in grid_values(name, spec)]
    return points


def apply_overrides(cfg: ConfigT, overrides: Mapping[str, Any], source: str = "trial") -> ConfigT:
    """Return a re-validated copy of ``cfg`` with dotted-key ``overrides`` applied.

    Raises:
        ConfigError: a key does not exist in the config, or a value is refused; the message names
            the key, the value and the allowed keys / values.

    """
    data = copy.deepcopy(cfg.model_dump(mode="python"))
    for dotted, value in overrides.items():
        set_dotted(data, dotted, value)
    model = type(cfg)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise format_validation_error(err, model, source) from None
