"""Accuracy figures of a LUCAS comparison: confusion matrix, OA, per-class precision/recall/F1."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

#: predicted label of a point with no map instance within ``nearest_max_distance_m``.
NO_INSTANCE = "no_instance"


class ClassScores(BaseModel):
    """Scores of one evaluation class (None where undefined: no reference or no prediction)."""

    precision: float | None
    recall: float | None
    f1: float | None
    support: int
    predicted: int


class RuleResult(BaseModel):
    """Accuracy of one matching rule (``within_radius`` or ``nearest``) on the used points.

    ``median_f1`` and ``macro_f1`` are over the classes with at least one LUCAS point;
    ``weighted_f1`` weights them by their number of points.
    """

    rule: str
    points: int
    correct: int
    overall_accuracy: float | None
    median_f1: float | None
    macro_f1: float | None
    weighted_f1: float | None
    per_class: dict[str, ClassScores]
    reference_classes: list[str]
    predicted_classes: list[str]
    confusion: list[list[int]]


def confusion_matrix(
    reference: Sequence[str] | np.ndarray, predicted: Sequence[str] | np.ndarray,
    classes: Sequence[str],
) -> np.ndarray:
    """Count (reference, predicted) pairs.

    Args:
        reference: class of each point (must be in ``classes``).
        predicted: map class of each point (in ``classes`` or :data:`NO_INSTANCE`).
        classes: evaluation classes (row order; columns add ``no_instance`` last).

    Returns:
        int64 (len(classes), len(classes) + 1).

    """
    columns = list(classes) + [NO_INSTANCE]
    row_of = {c: i for i, c in enumerate(classes)}
    col_of = {c: i for i, c in enumerate(columns)}
    matrix = np.zeros((len(classes), len(columns)), "int64")
    ref = np.asarray(reference, dtype=object)
    pred = np.asarray(predicted, dtype=object)
    if ref.shape != pred.shape:
        raise ValueError(f"reference {ref.shape} and predicted {pred.shape} differ in length")
    r = np.fromiter((row_of[v] for v in ref), "int64", ref.size)
    c = np.fromiter((col_of[v] for v in pred), "int64", pred.size)
    np.add.at(matrix, (r, c), 1)
    return matrix


def rule_result(
    rule: str, reference: np.ndarray, predicted: np.ndarray, classes: Sequence[str]
) -> RuleResult:
    """Score one rule: OA, per-class precision/recall/F1, median/macro/weighted F1, confusion."""
    matrix = confusion_matrix(reference, predicted, classes)
    n = int(matrix.sum())
    correct = int(np.trace(matrix[:, : len(classes)]))
    per_class: dict[str, ClassScores] = {}
    f1s: list[float] = []
    weights: list[int] = []
    for i, name in enumerate(classes):
        tp = int(matrix[i, i])
        support = int(matrix[i].sum())
        predicted_n = int(matrix[:, i].sum())
        precision = tp / predicted_n if predicted_n else None
        recall = tp / support if support else None
        if precision is not None and recall is not None:
            f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        elif support:
            f1 = 0.0  # points of this class, never predicted: recall 0
        else:
            f1 = None
        per_class[name] = ClassScores(
            precision=precision, recall=recall, f1=f1, support=support, predicted=predicted_n
        )
        if support and f1 is not None:
            f1s.append(f1)
            weights.append(support)
    return RuleResult(
        rule=rule,
        points=n,
        correct=correct,
        overall_accuracy=correct / n if n else None,
        median_f1=float(np.median(f1s)) if f1s else None,
        macro_f1=float(np.mean(f1s)) if f1s else None,
        weighted_f1=float(np.average(f1s, weights=weights)) if f1s else None,
        per_class=per_class,
        reference_classes=list(classes),
        predicted_classes=list(classes) + [NO_INSTANCE],
        confusion=matrix.tolist(),
    )
