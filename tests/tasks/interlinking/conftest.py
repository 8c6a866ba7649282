from __future__ import annotations

import numpy as np
import pytest
import shapely

from tasks.interlinking.generator import GeneratedSets, generate_sets


def mixed_set(rng: np.random.Generator, n_boxes: int, n_points: int, n_lines: int) -> np.ndarray:
    """Boxes with log-normal sizes, points and short lines over a 100 x 100 square."""
    x, y = rng.uniform(0, 100, n_boxes), rng.uniform(0, 100, n_boxes)
    w, h = rng.lognormal(0, 0.9, n_boxes), rng.lognormal(0, 0.9, n_boxes)
    boxes = shapely.box(x, y, x + w, y + h)
    points = shapely.points(rng.uniform(0, 100, (n_points, 2)))
    start = rng.uniform(0, 100, (n_lines, 2))
    lines = shapely.linestrings(np.stack([start, start + rng.normal(0, 3, (n_lines, 2))], axis=1))
    return np.concatenate([boxes, points, lines])


@pytest.fixture(scope="session")
def random_sets() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    source = mixed_set(rng, 1500, 300, 200)
    copies = source[rng.choice(source.size, 150, replace=False)]  # equal pairs
    box = shapely.bounds(source[rng.choice(1500, 150, replace=False)])
    neighbours = shapely.box(box[:, 2], box[:, 1], box[:, 2] + 1, box[:, 3])  # touching
    corners = shapely.points(box[:, 0], box[:, 1])  # on a boundary
    return source, np.concatenate([mixed_set(rng, 1200, 500, 300), copies, neighbours, corners])


@pytest.fixture(scope="session")
def generated() -> GeneratedSets:
    return generate_sets(3000, seed=5)
