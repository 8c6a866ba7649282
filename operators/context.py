"""Turn an Airflow task context into the (config, run date) a stage function takes.

Pure functions over a mapping, so they are tested without a running Airflow.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tasks.config.common import load_config

log = logging.getLogger(__name__)


def eeflow_home() -> Path:
    """Return the project folder that configs and relative data roots are resolved against."""
    return Path(os.environ.get("EEFLOW_HOME", Path(__file__).resolve().parents[1]))


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


def run_type(context: Mapping[str, Any]) -> str | None:
    """Return the run type (``manual``, ``scheduled``, ``backfill``, ...); None outside Airflow."""
    dag_run = context.get("dag_run")
    value = getattr(dag_run, "run_type", None) if dag_run is not None else None
    return None if value is None else str(getattr(value, "value", value))


def run_date_from_context(context: Mapping[str, Any]) -> dt.date:
    """Return the logical day a run processes.

    Order: the ``run_date`` param (manual runs only: a scheduled or backfill run always processes
    its own interval, so a backfill over two years computes two years even when its conf carries
    a ``run_date``), the data interval start (scheduled runs and backfills), the logical date, and
    finally ``run_after`` (manual runs without a logical date, asset-triggered runs).
    """
    params = context.get("params") or {}
    kind = run_type(context)
    if params.get("run_date"):
        if kind in (None, "manual"):
            return dt.date.fromisoformat(str(params["run_date"])[:10])
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


def load_run_config(
    context: Mapping[str, Any], default_config: str, param_to_key: Mapping[str, str] | None = None
) -> Any:
    """Load and validate the use-case config for this run, with the run's params applied."""
    params = context.get("params") or {}
    overrides = overrides_from_params(params, param_to_key or {})
    return load_config(config_path(params, default_config), overrides)
