"""Is there a scene for DAY over AREA yet? The pure logic behind the DAG's waiting sensor.

A use case's search (:func:`tasks.polar.ingest.check_polar_day`) runs its configured catalogue
search once and returns an :class:`Availability`; :func:`poll_decision` says what a poller does
next (found / wait / give up) from the clock alone, so it is tested without Airflow. The trigger
in :mod:`operators.sensors` calls both in the triggerer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

CATALOGUE_SOURCES = ("cdse_odata", "stac")


@dataclass(frozen=True)
class Availability:
    """Result of one search: how many usable scenes, their names, and the area searched."""

    day: str
    area: str
    found: int
    names: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()

    def message(self) -> str:
        """One line for logs and the skip reason."""
        if self.found:
            return f"{self.found} scene(s) for {self.day} over {self.area}: {', '.join(self.names)}"
        why = f" ({len(self.rejected)} rejected: {self.rejected[0]} ...)" if self.rejected else ""
        return f"no scene for {self.day} over {self.area}{why}"

    def to_event(self, status: str) -> dict[str, Any]:
        """JSON payload of a trigger event."""
        return {"status": status, "day": self.day, "area": self.area, "found": self.found,
                "names": list(self.names), "message": self.message()}


def poll_decision(
    availability: Availability, *, now: float, deadline: float, poll_s: float
) -> tuple[Literal["found", "wait", "timeout"], float]:
    """Return what to do after a search, and how long to sleep before the next one.

    ``found`` when a scene is there (or the source needs no waiting), ``timeout`` when the next
    search would start after ``deadline`` (epoch seconds), else ``wait`` with the sleep time (never
    past the deadline).
    """
    if availability.found != 0:
        return "found", 0.0
    if now >= deadline:
        return "timeout", 0.0
    return "wait", max(0.0, min(poll_s, deadline - now))
