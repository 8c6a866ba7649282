"""Budgeted (progressive) interlinking: verify the most promising candidate pairs first.

As progressive JedAI-spatial: every candidate pair (pairs sharing a grid cell, each once) gets a
weight from a *selector*; pairs are verified in decreasing weight until the budget (a number of
pairs) is spent. Selectors, from the pair's cell listings and MBRs (all vectorised):

* ``random``: a seeded uniform draw (baseline);
* ``cf``: co-occurrence frequency, the number of cells the two MBRs share;
* ``js``: Jaccard similarity of their cell sets, ``cf / (cells_a + cells_b - cf)``;
* ``chi2``: Pearson's chi-square of the 2x2 table of cell co-occurrence over the grid's
  ``N = nx * ny`` cells,
  ``N (cf N - cells_a cells_b)^2 / (cells_a cells_b (N - cells_a) (N - cells_b))``;
* ``mbro``: MBR overlap, area of the MBRs' intersection over the area of their union (extents
  below ``1e-6`` of a cell edge count as that, so points and axis-parallel lines get weights too);
* ``cf_mbro``, ``js_mbro``, ``chi2_mbro``: the products.

Ties are broken by a seeded random draw, so orders are deterministic under a seed. A candidate
whose MBRs are disjoint is rejected by the MBR test without a DE-9IM computation but still counts
against the budget (it was selected). Recall = related pairs (any relation but disjoint) found /
related pairs of the exhaustive run; precision = related pairs found / pairs selected.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import shapely

from tasks.interlinking.grid import (
    EquiGrid,
    candidate_pairs,
    cell_counts,
    grid_from_data,
    mbrs_intersect,
)
from tasks.interlinking.link import check_geometries, verify_pairs
from tasks.interlinking.relations import relation_bit

log = logging.getLogger(__name__)

Selector = Literal["random", "cf", "js", "chi2", "mbro", "cf_mbro", "js_mbro", "chi2_mbro"]
SELECTORS: tuple[str, ...] = get_args(Selector)
#: The paper's expected ordering (best first), checked by :func:`paper_ordering_holds`.
PAPER_ORDER = ("chi2_mbro", "mbro", "chi2", "js", "cf", "random")


@dataclass
class CandidateSet:
    """Every candidate pair of two geometry sets and what the selectors need.

    Attributes:
        source: ``(k,)`` int64 positions in the source array.
        target: ``(k,)`` int64 positions in the target array.
        grid: the equi-grid.
        ranges_a: ``(n, 4)`` cell ranges of the source MBRs.
        ranges_b: ``(m, 4)`` cell ranges of the target MBRs.
        bounds_a: ``(n, 4)`` source MBRs.
        bounds_b: ``(m, 4)`` target MBRs.

    """

    source: np.ndarray
    target: np.ndarray
    grid: EquiGrid
    ranges_a: np.ndarray
    ranges_b: np.ndarray
    bounds_a: np.ndarray
    bounds_b: np.ndarray

    @property
    def size(self) -> int:
        """Number of candidate pairs."""
        return int(self.source.size)


def candidate_set(
    source: np.ndarray, target: np.ndarray, cell_factor: float = 1.0,
    grid: EquiGrid | None = None,
) -> CandidateSet:
    """List every pair sharing a grid cell (each once), without verifying anything."""
    source = check_geometries(source, "source")
    target = check_geometries(target, "target")
    bounds_a = np.asfortranarray(shapely.bounds(source))
    bounds_b = np.asfortranarray(shapely.bounds(target))
    grid = grid or grid_from_data(bounds_a, bounds_b, cell_factor)
    ranges_a, ranges_b = grid.cell_ranges(bounds_a), grid.cell_ranges(bounds_b)
    chunks = list(candidate_pairs(ranges_a, ranges_b, 0, grid.nx, grid.ny))
    if chunks:
        src = np.concatenate([c[0] for c in chunks])
        tgt = np.concatenate([c[1] for c in chunks])
    else:
        src = tgt = np.empty(0, np.int64)
    return CandidateSet(src, tgt, grid, ranges_a, ranges_b, bounds_a, bounds_b)


def _shared_cells(cands: CandidateSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = cands.ranges_a[cands.source]
    b = cands.ranges_b[cands.target]
    columns = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]) + 1
    rows = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]) + 1
    shared = (np.maximum(columns, 0) * np.maximum(rows, 0)).astype(np.float64)
    return shared, cell_counts(a).astype(np.float64), cell_counts(b).astype(np.float64)


def _mbr_overlap(cands: CandidateSet) -> np.ndarray:
    eps_x, eps_y = 1e-6 * cands.grid.dx, 1e-6 * cands.grid.dy
    a = cands.bounds_a[cands.source]
    b = cands.bounds_b[cands.target]
    inter_w = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    inter_h = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    disjoint = (inter_w < 0) | (inter_h < 0)
    inter = np.maximum(inter_w, eps_x) * np.maximum(inter_h, eps_y)
    inter[disjoint] = 0.0
    area_a = np.maximum(a[:, 2] - a[:, 0], eps_x) * np.maximum(a[:, 3] - a[:, 1], eps_y)
    area_b = np.maximum(b[:, 2] - b[:, 0], eps_x) * np.maximum(b[:, 3] - b[:, 1], eps_y)
    return inter / (area_a + area_b - inter)


def pair_weights(cands: CandidateSet, selector: str, seed: int = 0) -> np.ndarray:
    """Return the weight of every candidate pair under ``selector`` (higher = verify first).

    Raises:
        ValueError: unknown selector (lists the allowed ones).

    """
    if selector not in SELECTORS:
        raise ValueError(f"unknown selector {selector!r}; allowed: {list(SELECTORS)}")
    if selector == "random":
        return np.random.default_rng(seed).random(cands.size)
    base, _, hybrid = selector.partition("_")
    if base == "mbro":
        return _mbr_overlap(cands)
    shared, cells_a, cells_b = _shared_cells(cands)
    if base == "cf":
        weight = shared
    elif base == "js":
        weight = shared / (cells_a + cells_b - shared)
    else:  # chi2
        total = float(cands.grid.nx) * float(cands.grid.ny)
        numerator = total * (shared * total - cells_a * cells_b) ** 2
        denominator = cells_a * cells_b * (total - cells_a) * (total - cells_b)
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = np.where(denominator > 0, numerator / denominator, np.inf)
    if hybrid == "mbro":
        weight = weight * _mbr_overlap(cands)
    return weight


def selection_order(weights: np.ndarray, seed: int = 0) -> np.ndarray:
    """Return candidate positions by decreasing weight, ties broken by a seeded random draw."""
    tie_break = np.random.default_rng(seed + 1).random(weights.size)
    return np.lexsort((tie_break, -weights))


@dataclass
class BudgetedResult:
    """Pairs verified within a budget, in selection order.

    Attributes:
        selector: the selector used.
        budget: pairs allowed; ``selected`` may be lower when there are fewer candidates.
        selected: candidate pairs taken (MBR-rejected ones included).
        source: ``(v,)`` positions of the verified pairs (MBRs intersect) in the source.
        target: ``(v,)`` positions in the target.
        de9im: ``(v,)`` S9 DE-9IM matrices.
        masks: ``(v,)`` uint16 relation masks.
        candidates: size of the candidate set.
        seconds: wall time per phase.

    """

    selector: str
    budget: int
    selected: int
    source: np.ndarray
    target: np.ndarray
    de9im: np.ndarray
    masks: np.ndarray
    candidates: int
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def related(self) -> int:
        """Number of selected pairs with a relation other than disjoint."""
        return int(np.count_nonzero(self.masks & relation_bit("intersects")))


def budgeted_interlink(
    source: np.ndarray,
    target: np.ndarray,
    selector: str,
    budget: int,
    *,
    seed: int = 0,
    cell_factor: float = 1.0,
    candidates: CandidateSet | None = None,
) -> BudgetedResult:
    """Verify at most ``budget`` candidate pairs, the heaviest under ``selector`` first.

    Args:
        source: ``(n,)`` shapely geometries in the common CRS.
        target: ``(m,)`` shapely geometries in the same CRS.
        selector: one of :data:`SELECTORS`.
        budget: number of candidate pairs that may be selected (>= 0).
        seed: seed of the random selector and of tie breaking.
        cell_factor: multiplier of the data-derived cell size.
        candidates: a candidate set already listed for these geometries (reused).

    Returns:
        The verified pairs (selection order) and their relations.

    Raises:
        ValueError: negative budget or unknown selector.

    """
    if budget < 0:
        raise ValueError(f"budget must be >= 0 pairs, got {budget}")
    started = time.perf_counter()
    cands = candidates or candidate_set(source, target, cell_factor)
    listed = time.perf_counter()
    weights = pair_weights(cands, selector, seed)
    chosen = selection_order(weights, seed)[:budget]
    weighted = time.perf_counter()
    src, tgt = cands.source[chosen], cands.target[chosen]
    keep = mbrs_intersect(cands.bounds_a, cands.bounds_b, src, tgt)
    src, tgt = src[keep], tgt[keep]
    de9im, masks = verify_pairs(np.asarray(source, dtype=object), np.asarray(target, dtype=object),
                                src, tgt)
    done = time.perf_counter()
    return BudgetedResult(
        selector, budget, int(chosen.size), src, tgt, de9im, masks, cands.size,
        seconds={"candidates": listed - started, "weights": weighted - listed,
                 "verify": done - weighted},
    )


def recall_curve(
    related: np.ndarray, weights: np.ndarray, budgets: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision after each budget, from the exhaustive labels of the candidates.

    Identical to running :func:`budgeted_interlink` at each budget (same order, same labels),
    without verifying again.

    Args:
        related: ``(k,)`` bool, candidate pair is related (exhaustive run, same candidate order).
        weights: ``(k,)`` the selector's weights.
        budgets: budgets in pairs (clipped to ``k``).
        seed: tie-breaking seed (as in :func:`selection_order`).

    Returns:
        ``(recall, precision)`` arrays, one value per budget.

    """
    found = np.concatenate([[0], np.cumsum(related[selection_order(weights, seed)])])
    taken = np.minimum(np.asarray(budgets, dtype=np.int64), related.size)
    total = max(int(related.sum()), 1)
    recall = found[taken] / total
    precision = np.where(taken > 0, found[taken] / np.maximum(taken, 1), 0.0)
    return recall, precision


def candidate_labels(source: np.ndarray, target: np.ndarray, cands: CandidateSet) -> np.ndarray:
    """Verify every candidate (exhaustive run) and return whether each pair is related."""
    keep = mbrs_intersect(cands.bounds_a, cands.bounds_b, cands.source, cands.target)
    related = np.zeros(cands.size, dtype=bool)
    _, masks = verify_pairs(np.asarray(source, dtype=object), np.asarray(target, dtype=object),
                            cands.source[keep], cands.target[keep])
    related[keep] = (masks & relation_bit("intersects")) > 0
    return related


def compare_selectors(
    source: np.ndarray,
    target: np.ndarray,
    *,
    selectors: tuple[str, ...] = SELECTORS,
    fractions: tuple[float, ...] = (0.1, 0.25, 0.5),
    curve_points: int = 101,
    seed: int = 0,
    cell_factor: float = 1.0,
) -> dict:
    """Recall / precision of every selector against the exhaustive result of the same run.

    Args:
        source: source geometries (common CRS).
        target: target geometries.
        selectors: selectors to compare.
        fractions: budgets as fractions of the exhaustive candidate count, reported one by one.
        curve_points: budgets on the curve (evenly spaced fractions 0..1).
        seed: seed of the random selector and tie breaking.
        cell_factor: multiplier of the data-derived cell size.

    Returns:
        ``{"candidates", "related", "fractions", "at_fractions": {selector: {fraction: {recall,
        precision}}}, "curve": {"fractions": [...], selector: [recall...]}, "seconds": {...},
        "paper_ordering": {...}}``.

    """
    started = time.perf_counter()
    cands = candidate_set(source, target, cell_factor)
    listed = time.perf_counter()
    related = candidate_labels(source, target, cands)
    verified = time.perf_counter()
    curve_fractions = np.linspace(0.0, 1.0, curve_points)
    report_budgets = np.round(np.asarray(fractions) * cands.size).astype(np.int64)
    curve_budgets = np.round(curve_fractions * cands.size).astype(np.int64)
    at_fractions: dict[str, dict[str, dict[str, float]]] = {}
    curve: dict[str, list[float]] = {"fractions": [round(float(f), 4) for f in curve_fractions]}
    weigh_seconds: dict[str, float] = {}
    for selector in selectors:
        t0 = time.perf_counter()
        weights = pair_weights(cands, selector, seed)
        recall, precision = recall_curve(related, weights, np.r_[report_budgets, curve_budgets],
                                         seed)
        weigh_seconds[selector] = round(time.perf_counter() - t0, 3)
        at_fractions[selector] = {
            str(f): {"recall": round(float(r), 4), "precision": round(float(p), 4)}
            for f, r, p in zip(fractions, recall, precision, strict=False)
        }
        curve[selector] = [round(float(r), 4) for r in recall[len(fractions):]]
    return {
        "candidates": cands.size,
        "related": int(related.sum()),
        "grid": {"dx": cands.grid.dx, "dy": cands.grid.dy, "nx": cands.grid.nx,
                 "ny": cands.grid.ny},
        "fractions": list(fractions),
        "at_fractions": at_fractions,
        "curve": curve,
        "paper_ordering": paper_ordering_holds(at_fractions),
        "seconds": {"candidates": round(listed - started, 3),
                    "exhaustive_verify": round(verified - listed, 3),
                    "weights_and_curves": weigh_seconds},
    }


def paper_ordering_holds(at_fractions: dict[str, dict[str, dict[str, float]]],
                         tolerance: float = 0.02) -> dict[str, object]:
    """Check the paper's ordering chi2*MBRO >= MBRO > chi2 ~ JS ~ CF > random at each fraction.

    ``~`` is read as "within ``tolerance`` recall of each other"; ``>`` as strictly greater than
    the best of the group below.

    Returns:
        ``{fraction: {"holds": bool, "checks": {...}}}`` plus ``"all"``.

    """
    needed = {"chi2_mbro", "mbro", "chi2", "js", "cf", "random"}
    if not needed <= set(at_fractions):
        return {"all": None, "reason": f"needs selectors {sorted(needed)}"}
    out: dict[str, object] = {}
    every = True
    for fraction in next(iter(at_fractions.values())):
        r = {s: at_fractions[s][fraction]["recall"] for s in needed}
        middle = [r["chi2"], r["js"], r["cf"]]
        checks = {
            "chi2_mbro>=mbro": r["chi2_mbro"] >= r["mbro"] - 1e-9,
            "mbro>chi2,js,cf": r["mbro"] > max(middle),
            "chi2~js~cf": max(middle) - min(middle) <= tolerance,
            "chi2,js,cf>random": min(middle) > r["random"],
        }
        holds = all(checks.values())
        every &= holds
        out[fraction] = {"holds": holds, "checks": checks}
    out["all"] = every
    return out


def plot_recall_curves(report: dict, path: str | Path, title: str = "") -> Path:
    """Write the recall-vs-budget curves of a :func:`compare_selectors` report as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tasks.storage import atomic_write_bytes

    curve = report["curve"]
    fractions = np.asarray(curve["fractions"])
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    styles = {"random": ":", "cf": "--", "js": "--", "chi2": "--"}
    for selector in [s for s in curve if s != "fractions"]:
        ax.plot(fractions * 100, curve[selector], styles.get(selector, "-"), label=selector,
                linewidth=1.6)
    ideal = np.minimum(1.0, fractions * report["candidates"] / max(report["related"], 1))
    ax.plot(fractions * 100, ideal, color="black", linestyle="-.", linewidth=0.9,
            label="ideal (oracle)")
    ax.set_xlabel("budget (% of the exhaustive candidate pairs)")
    ax.set_ylabel("recall of related pairs")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, ncols=2)
    ax.set_title(title or f"{report['candidates']:,} candidates, {report['related']:,} related "
                 "pairs", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
