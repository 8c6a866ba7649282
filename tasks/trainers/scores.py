"""Validation scores of a confusion matrix, shared by crop training and the evaluations."""

from __future__ import annotations

from typing import Any

import numpy as np


def classification_scores(confusion: np.ndarray) -> dict[str, Any]:
    """Scores of a confusion matrix ``confusion[true, predicted]`` (counts).

    Returns overall accuracy, per-class precision / recall / F1 / support, the median and macro F1
    over classes with support > 0 (the paper's F1 figure is the median), all as fractions.
    Classes with no reference pixel get F1 ``None``.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    total = confusion.sum()
    true_positive = np.diag(confusion)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, true_positive / predicted, 0.0)
        recall = np.where(support > 0, true_positive / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0
    return {
        "overall_accuracy": float(true_positive.sum() / total) if total else float("nan"),
        "median_f1": float(np.median(f1[present])) if present.any() else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "precision": [float(p) if s else None for p, s in zip(precision, present, strict=True)],
        "recall": [float(r) if s else None for r, s in zip(recall, present, strict=True)],
        "f1": [float(v) if s else None for v, s in zip(f1, present, strict=True)],
        "support": [int(s) for s in support],
        "n_samples": int(total),
    }
