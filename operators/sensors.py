"""Waiting for data: ``SceneAvailableSensor`` defers to ``SceneAvailableTrigger`` in the triggerer.

The sensor loads the run's config; for a non-catalogue source (generator, directory) it succeeds at
once. Otherwise it searches once, and when the day has no scene over the area yet it defers: the
trigger repeats the search every ``ingest.wait_poll_s`` seconds in the triggerer (no worker slot
held) until a scene appears or ``ingest.wait_timeout_h`` has passed. On timeout the task (and so
the run's downstream tasks) is skipped with "no scene for DAY over AREA", not failed.

The search logic is :mod:`tasks.ingestion.availability` (pure, tested without Airflow); eeflow
modules are imported inside the methods, so parsing a DAG imports nothing heavy.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent

from operators.context import config_path, overrides_from_params, run_date_from_context

if TYPE_CHECKING:
    from tasks.config.polar import PolarConfig


def _load(path: str, overrides: Mapping[str, Any]) -> PolarConfig:
    """Load the polar config of the run (another use case's config is refused)."""
    from tasks.config.common import load_config
    from tasks.config.polar import PolarConfig

    return load_config(path, dict(overrides), expect=PolarConfig)


class SceneAvailableTrigger(BaseTrigger):
    """Poll the catalogue for ``day``'s scenes until found or ``deadline`` (epoch seconds)."""

    def __init__(self, config: str, overrides: dict[str, Any], day: str, deadline: float,
                 poll_s: float) -> None:
        super().__init__()
        self.config = config
        self.overrides = dict(overrides)
        self.day = day
        self.deadline = float(deadline)
        self.poll_s = float(poll_s)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and keyword arguments (JSON) to rebuild the trigger in the triggerer."""
        return ("operators.sensors.SceneAvailableTrigger",
                {"config": self.config, "overrides": self.overrides, "day": self.day,
                 "deadline": self.deadline, "poll_s": self.poll_s})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Search, sleep, search again ... then yield one ``found`` or ``timeout`` event."""
        from tasks.errors import EeflowError
        from tasks.ingestion.availability import Availability, poll_decision
        from tasks.polar.ingest import check_polar_day

        cfg = await asyncio.to_thread(_load, self.config, self.overrides)
        day = dt.date.fromisoformat(self.day)
        last_error = ""
        while True:
            try:
                availability = await asyncio.to_thread(check_polar_day, cfg, day)
            except (EeflowError, OSError) as err:  # catalogue down: keep polling until deadline
                last_error = f"; last search error: {err}"
                self.log.warning("scene search failed (will retry): %s", err)
                availability = Availability(self.day, "the configured area", 0)
            decision, sleep_s = poll_decision(
                availability, now=time.time(), deadline=self.deadline, poll_s=self.poll_s
            )
            if decision != "wait":
                event = availability.to_event(decision)
                if decision == "timeout":
                    event["message"] += last_error
                yield TriggerEvent(event)
                return
            self.log.info("%s; next search in %.0f s", availability.message(), sleep_s)
            await asyncio.sleep(sleep_s)


class SceneAvailableSensor(BaseSensorOperator):
    """Wait (deferred) until the catalogue has a scene for the run's day over the area.

    Args:
        default_config: config file used when the run has no ``config`` param.
        param_to_key: DAG params that override config keys (as for the stage operator).

    """

    ui_color = "#f2e6c9"

    def __init__(self, *, default_config: str, param_to_key: Mapping[str, str] | None = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        super().__init__(**kwargs)
        self.default_config = default_config
        self.param_to_key = dict(param_to_key or {})

    def poke(self, context: Any) -> bool:
        """One search (used only if the sensor is run without deferral)."""
        from tasks.polar.ingest import check_polar_day

        cfg, day, _, _ = self._inputs(context)
        return check_polar_day(cfg, day).found != 0

    def _inputs(self, context: Any) -> tuple[PolarConfig, dt.date, str, dict[str, Any]]:
        params = context.get("params") or {}
        path = str(config_path(params, self.default_config))
        overrides = overrides_from_params(params, self.param_to_key)
        return _load(path, overrides), run_date_from_context(context), path, overrides

    def execute(self, context: Any) -> Any:
        """Succeed at once (non-catalogue source or scene found), else defer to the trigger."""
        from tasks.polar.ingest import check_polar_day

        cfg, day, path, overrides = self._inputs(context)
        availability = check_polar_day(cfg, day)
        if availability.found != 0:
            self.log.info("%s", availability.message())
            return availability.to_event("found")
        timeout_s = cfg.ingest.wait_timeout_h * 3600.0
        self.log.info("%s; waiting up to %.1f h", availability.message(), cfg.ingest.wait_timeout_h)
        self.defer(
            trigger=SceneAvailableTrigger(path, overrides, day.isoformat(),
                                          time.time() + timeout_s, cfg.ingest.wait_poll_s),
            method_name="execute_complete",
            timeout=dt.timedelta(seconds=timeout_s + cfg.ingest.wait_poll_s + 600),
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        """Return the event when a scene was found; skip the run on timeout."""
        from airflow.sdk.exceptions import AirflowSkipException

        if not event or event.get("status") != "found":
            raise AirflowSkipException((event or {}).get("message") or "no scene found")
        self.log.info("%s", event["message"])
        return event
