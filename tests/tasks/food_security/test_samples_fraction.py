"""``samples.fraction``: a small sample that keeps the labels' own class imbalance (issue 18)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from tasks.config.food_security import SamplesConfig
from tasks.food_security.samples import select_pixels


def _labels() -> dict[str, np.ndarray]:
    """Two tiles; class 0: 600 px, class 1: 60 px, class 2: 3 px, the rest unlabelled."""
    a = np.full((30, 30), -1, dtype=np.int16)
    b = np.full((30, 30), -1, dtype=np.int16)
    a.ravel()[:400] = 0
    b.ravel()[:200] = 0
    a.ravel()[400:440] = 1
    b.ravel()[200:220] = 1
    b.ravel()[300:303] = 2
    return {"T1": a, "T2": b}


def _counts(labels: dict[str, np.ndarray], chosen: dict[str, np.ndarray]) -> dict[int, int]:
    values = np.concatenate([labels[t].ravel()[chosen[t]] for t in sorted(chosen)])
    assert (values >= 0).all()
    return {int(c): int((values == c).sum()) for c in np.unique(values)}


def test_fraction_keeps_the_class_imbalance() -> None:
    labels = _labels()
    chosen = select_pixels(labels, None, np.random.default_rng(1), fraction=0.1)
    # round(0.1 * n), at least one pixel of every class
    assert _counts(labels, chosen) == {0: 60, 1: 6, 2: 1}
    for tile, idx in chosen.items():
        assert (np.diff(idx) > 0).all(), tile  # sorted, no repeats


def test_fraction_then_cap() -> None:
    labels = _labels()
    chosen = select_pixels(labels, 20, np.random.default_rng(1), fraction=0.5)
    assert _counts(labels, chosen) == {0: 20, 1: 20, 2: 2}  # 300 -> 20, 30 -> 20, round(1.5) = 2


def test_fraction_one_keeps_everything_and_seed_decides() -> None:
    labels = _labels()
    every = select_pixels(labels, None, np.random.default_rng(1), fraction=1.0)
    assert _counts(labels, every) == {0: 600, 1: 60, 2: 3}
    first = select_pixels(labels, None, np.random.default_rng(5), fraction=0.2)
    again = select_pixels(labels, None, np.random.default_rng(5), fraction=0.2)
    other = select_pixels(labels, None, np.random.default_rng(6), fraction=0.2)
    assert all(np.array_equal(first[t], again[t]) for t in first)
    assert any(not np.array_equal(first[t], other[t]) for t in first)


def test_without_fraction_the_cap_draws_what_it_drew_before() -> None:
    """The option leaves existing datasets unchanged: same random draws as the cap alone."""
    labels = _labels()
    chosen = select_pixels(labels, 50, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    pixel = np.concatenate([np.flatnonzero(labels[t].ravel() != -1) for t in ("T1", "T2")])
    owner = np.concatenate([np.full(int((labels[t] != -1).sum()), i)
                            for i, t in enumerate(("T1", "T2"))])
    cls = np.concatenate([labels[t].ravel()[labels[t].ravel() != -1] for t in ("T1", "T2")])
    keep = np.zeros(len(pixel), dtype=bool)
    for c in np.unique(cls):
        idx = np.flatnonzero(cls == c)
        if len(idx) > 50:
            idx = rng.choice(idx, size=50, replace=False)
        keep[idx] = True
    for i, tile in enumerate(("T1", "T2")):
        assert np.array_equal(chosen[tile], np.sort(pixel[keep & (owner == i)]))


@pytest.mark.parametrize("value", [0, -0.1, 1.5])
def test_fraction_must_be_a_share(value: float) -> None:
    with pytest.raises(ValidationError, match="fraction"):
        SamplesConfig.model_validate({"fraction": value})
