from __future__ import annotations

import numpy as np
import pytest

from tasks.interlinking.link import interlink
from tasks.interlinking.progressive import (
    SELECTORS,
    budgeted_interlink,
    candidate_labels,
    candidate_set,
    compare_selectors,
    pair_weights,
    plot_recall_curves,
    recall_curve,
)
from tasks.interlinking.relations import relation_bit


@pytest.fixture(scope="module")
def sets(generated):
    return generated.parcels.geometry.to_numpy(), generated.fields.geometry.to_numpy()


@pytest.fixture(scope="module")
def labelled(sets):
    cands = candidate_set(*sets)
    return cands, candidate_labels(*sets, cands)


@pytest.mark.parametrize("selector", SELECTORS)
def test_recall_is_monotone_in_budget_and_complete_at_full_budget(labelled, selector):
    cands, related = labelled
    budgets = np.linspace(0, cands.size, 41).astype(int)
    recall, precision = recall_curve(related, pair_weights(cands, selector, 3), budgets, 3)
    assert np.all(np.diff(recall) >= 0)
    assert recall[0] == 0 and recall[-1] == pytest.approx(1.0)
    assert precision[-1] == pytest.approx(related.mean())


@pytest.mark.parametrize("selector", ["random", "chi2_mbro", "cf"])
def test_budgeted_run_matches_the_curve_and_the_exhaustive_run(sets, labelled, selector):
    cands, related = labelled
    exhaustive = interlink(*sets)
    all_related = int(np.count_nonzero(exhaustive.masks & relation_bit("intersects")))
    assert all_related == related.sum()
    weights = pair_weights(cands, selector, 0)
    for budget in (0, cands.size // 10, cands.size // 2):
        run = budgeted_interlink(*sets, selector, budget, candidates=cands)
        recall, _ = recall_curve(related, weights, np.array([budget]))
        assert run.selected == budget
        assert run.related / all_related == pytest.approx(recall[0])
    full = budgeted_interlink(*sets, selector, cands.size + 10, candidates=cands)
    order = np.lexsort((full.target, full.source))
    assert np.array_equal(full.source[order], exhaustive.source)
    assert np.array_equal(full.target[order], exhaustive.target)
    assert np.array_equal(full.masks[order], exhaustive.masks)


def test_selectors_beat_random_and_weights_are_sane(labelled):
    cands, related = labelled
    budget = np.array([cands.size // 4])
    random_recall = recall_curve(related, pair_weights(cands, "random"), budget)[0][0]
    for selector in ("cf", "js", "chi2", "mbro", "chi2_mbro"):
        weights = pair_weights(cands, selector)
        assert np.isfinite(weights).all() and (weights >= 0).all(), selector
        assert recall_curve(related, weights, budget)[0][0] > random_recall, selector
    with pytest.raises(ValueError, match="allowed"):
        pair_weights(cands, "jaccard")
    with pytest.raises(ValueError, match="budget"):
        budgeted_interlink(np.empty(0), np.empty(0), "cf", -1)


def test_compare_selectors_report_and_png(sets, tmp_path):
    report = compare_selectors(*sets, curve_points=11)
    assert set(report["at_fractions"]) == set(SELECTORS)
    assert report["curve"]["fractions"][-1] == 1.0
    assert all(report["curve"][s][-1] == pytest.approx(1.0) for s in SELECTORS)
    assert "all" in report["paper_ordering"]
    png = plot_recall_curves(report, tmp_path / "curve.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
