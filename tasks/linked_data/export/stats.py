"""Counts, rejected rows, bounding box and dates gathered while a product run is exported."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ExportStats:
    """What one export wrote and rejected."""

    triples: int = 0
    features: int = 0
    rejected: list[dict[str, str]] = field(default_factory=list)
    bounds: list[float] = field(default_factory=lambda: [math.inf, math.inf, -math.inf, -math.inf])
    dates: list[dt.date] = field(default_factory=list)
    source_crs: set[str] = field(default_factory=set)

    def add_bounds(self, bounds: np.ndarray) -> None:
        """Grow the bounding box by per-geometry ``bounds`` (CRS84, ``shapely.bounds`` rows)."""
        if len(bounds) == 0:
            return
        box = np.array(
            [
                np.nanmin(bounds[:, 0]),
                np.nanmin(bounds[:, 1]),
                np.nanmax(bounds[:, 2]),
                np.nanmax(bounds[:, 3]),
            ]
        )
        if np.all(np.isfinite(box)):
            self.bounds = [
                min(self.bounds[0], box[0]),
                min(self.bounds[1], box[1]),
                max(self.bounds[2], box[2]),
                max(self.bounds[3], box[3]),
            ]
