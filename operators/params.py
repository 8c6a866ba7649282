"""DAG params for the trigger forms: "empty means the config's value", said the same way everywhere.

A param whose default is ``""`` is shown as required by Airflow's trigger form (Trigger stays
disabled until the user types something). Optional params are therefore nullable (``["null",
<type>]``) with a ``None`` default, and each description says what empty means.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Param

#: Appended to the description of a param that overrides a config key.
FROM_CONFIG = "Empty = the config's value ({key})."


def optional_param(
    type_: str,
    description: str,
    *,
    key: str | None = None,
    enum: Sequence[Any] | None = None,
    title: str | None = None,
    **schema: Any,
) -> Param:
    """Make a nullable param, default ``None``; ``key`` names the config key used when empty."""
    text = f"{description} {FROM_CONFIG.format(key=key)}" if key else description
    extra: dict[str, Any] = dict(schema)
    if enum is not None:
        extra["enum"] = [None, *enum]
    if title is not None:
        extra["title"] = title
    return Param(None, type=["null", type_], description=text, **extra)


def run_date_param(what: str) -> Param:
    """Make the ``run_date`` param (manual runs only; scheduled / backfill keep their date)."""
    return optional_param(
        "string",
        f"{what} (YYYY-MM-DD). Used by runs triggered by hand only; empty = the run's logical "
        "date / data interval. Scheduled runs and backfills always process their own interval.",
        format="date",
        title="Run date",
    )


def region_and_window_params() -> dict[str, Param]:
    """Make the on-demand processing params (``eeflow process submit``): region, time window."""
    return {
        "region": optional_param(
            "string", "Area to process: WKT or GeoJSON (WGS84), e.g. from `eeflow process "
            "submit`.", key="ingest.catalogue.area", title="Region"),
        "window_start": optional_param(
            "string", "First day of the requested time window (YYYY-MM-DD); a manual run "
            "without run_date processes this day. Empty = no window.", format="date",
            title="Window start"),
        "window_end": optional_param(
            "string", "Last day of the requested time window (YYYY-MM-DD); run_date must not "
            "be later. Empty = no window.", format="date", title="Window end"),
    }
