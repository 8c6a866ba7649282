"""Turn an Airflow task context into the (config, run date) a stage function takes.

Pure functions over a mapping, so they are tested without a running Airflow.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, overload

from tasks.config.common import UseCaseConfig, eeflow_home, load_config

log = logging.getLogger(__name__)


C = TypeVar("C", bound=UseCaseConfig)
D = TypeVar("D", bound=UseCaseConfig)


def config_path(params: Mapping[str, Any], default: str) -> Path:
    """Resolve the ``config`` param (or ``default``) against ``$EEFLOW_HOME``."""
    path = Path(str(params.get("config") or default))
    return path if path.is_absolute() else eeflow_home() / path


def overrides_from_params(
    params: Mapping[str, Any], param_to_key: Mapping[str, str]
) -> dict[str, Any]:
    """Map DAG params to dotted config keys; params left empty (None / "") are not applied."""
    return {
        key: params[name]
        for name, key in param_to_key.items()
        if name in params and params[name] not in (None, "")
    }


#: On-demand processing params (tasks/serving/process.py) -> config keys: the region is the
#: catalogue search area of ingestion (WKT or GeoJSON, WGS84).
REGION_PARAMS_TO_KEYS: dict[str, str] = {"region": "ingest.catalogue.area"}


def window_from_params(params: Mapping[str, Any]) -> tuple[dt.date | None, dt.date | None]:
    """Return the ``window_start`` / ``window_end`` params as dates (None when empty).

    Raises:
        ValueError: a param that is not a YYYY-MM-DD date, or a window that ends before it starts.

    """
    bounds: list[dt.date | None] = []
    for name in ("window_start", "window_end"):
        value = params.get(name)
        if value in (None, ""):
            bounds.append(None)
            continue
        try:
            bounds.append(dt.date.fromisoformat(str(value)[:10]))
        except ValueError:
            raise ValueError(f"param {name}={value!r} is not a date; give YYYY-MM-DD") from None
    start, end = bounds
    if start is not None and end is not None and end < start:
        raise ValueError(f"param window_end={end} is before window_start={start}; swap them")
    return start, end


def run_type(context: Mapping[str, Any]) -> str | None:
    """Return the run type (``manual``, ``scheduled``, ``backfill``, ...); None outside Airflow."""
    dag_run = context.get("dag_run")
    value = getattr(dag_run, "run_type", None) if dag_run is not None else None
    return None if value is None else str(getattr(value, "value", value))


def run_date_from_context(context: Mapping[str, Any]) -> dt.date:
    """Return the logical day a run processes.

    Order: the ``run_date`` param (manual runs only: a scheduled or backfill run always processes
    its own interval, so a backfill over two years computes two years even when its conf carries
    a ``run_date``), then ``window_start`` (manual runs), the data interval start (scheduled runs
    and backfills), the logical date, and finally ``run_after`` (manual runs without a logical
    date, asset-triggered runs). A manual run with a ``window_start`` / ``window_end`` window must
    process a day inside it (on-demand processing triggers one run per day / agronomic year).
    """
    params = context.get("params") or {}
    kind = run_type(context)
    if kind in (None, "manual"):
        start, end = window_from_params(params)
        day = (dt.date.fromisoformat(str(params["run_date"])[:10]) if params.get("run_date")
               else start)
        if day is not None:
            if (start is not None and day < start) or (end is not None and day > end):
                raise ValueError(f"param run_date={day} lies outside the window "
                                 f"window_start={start} .. window_end={end}; give a run_date "
                                 "inside the window or leave it empty (= window_start)")
            return day
    elif params.get("run_date"):
        log.warning("ignoring param run_date=%s: a %s run processes its own data interval",
                    params["run_date"], kind)
    dag_run = context.get("dag_run")
    for key in ("data_interval_start", "logical_date", "run_after"):
        value = context.get(key)
        if value is None and dag_run is not None:
            value = getattr(dag_run, key, None)
        if value is not None:
            return (
                value.date()
                if isinstance(value, dt.datetime)
                else dt.date.fromisoformat(str(value)[:10])
            )
    raise ValueError("the task context has no run_date param, data interval or logical date")


@overload
def load_run_config(
    context: Mapping[str, Any], default_config: str,
    param_to_key: Mapping[str, str] | None = None, *, expect: None = None,
) -> UseCaseConfig: ...


@overload
def load_run_config(
    context: Mapping[str, Any], default_config: str,
    param_to_key: Mapping[str, str] | None = None, *, expect: type[C],
) -> C: ...


@overload
def load_run_config(
    context: Mapping[str, Any], default_config: str,
    param_to_key: Mapping[str, str] | None = None, *, expect: tuple[type[C], type[D]],
) -> C | D: ...


@overload
def load_run_config(
    context: Mapping[str, Any], default_config: str,
    param_to_key: Mapping[str, str] | None = None, *,
    expect: type[UseCaseConfig] | tuple[type[UseCaseConfig], ...] | None,
) -> UseCaseConfig: ...


def load_run_config(
    context: Mapping[str, Any], default_config: str, param_to_key: Mapping[str, str] | None = None,
    *, expect: type[UseCaseConfig] | tuple[type[UseCaseConfig], ...] | None = None,
) -> UseCaseConfig:
    """Load and validate the use-case config for this run, with the run's params applied.

    ``expect`` (a config model, or a pair) refuses a ``config`` param of another use case with a
    ConfigError naming the file, its use case and the expected one; the return type follows it.
    """
    params = context.get("params") or {}
    overrides = overrides_from_params(params, {**REGION_PARAMS_TO_KEYS, **(param_to_key or {})})
    return load_config(config_path(params, default_config), overrides, expect=expect)
