"""Confusion-matrix figure shared by the evaluations (sea ice, crop types, LUCAS).

One plain function, :func:`plot_confusion_matrix`: rows are the reference (true) classes, columns
the predicted (map) classes; colours are the share of each reference class (row-normalised) or the
raw counts, and the counts are written in the cells. The PNG is written atomically (a temporary
file renamed into place). matplotlib is imported lazily with the ``Agg`` backend, so importing
this module costs nothing and works without a display.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tasks.storage import atomic_write_bytes

CellText = Literal["counts", "counts_and_share"]


def _checked_matrix(matrix: np.ndarray, labels: Sequence[str],
                    predicted_labels: Sequence[str] | None) -> np.ndarray:
    """Return ``matrix`` as float after checking its shape against the labels and its values."""
    counts = np.asarray(matrix)
    if counts.ndim != 2:
        raise ValueError(f"confusion matrix must be 2-D (reference x predicted), got shape "
                         f"{counts.shape}")
    real = np.issubdtype(counts.dtype, np.integer) or np.issubdtype(counts.dtype, np.floating)
    if not real:
        raise ValueError(f"confusion matrix must hold real counts, got dtype {counts.dtype}")
    rows, cols = counts.shape
    if rows == 0 or cols == 0:
        raise ValueError(f"confusion matrix of shape {counts.shape} is empty; nothing to plot")
    if predicted_labels is None and rows != cols:
        raise ValueError(f"confusion matrix of shape {counts.shape} is not square; give "
                         f"predicted_labels for its {cols} columns or pass a square matrix")
    if len(labels) != rows:
        raise ValueError(f"{len(labels)} labels for a confusion matrix with {rows} rows "
                         f"(shape {counts.shape}); give one label per reference class")
    if predicted_labels is not None and len(predicted_labels) != cols:
        raise ValueError(f"{len(predicted_labels)} predicted_labels for a confusion matrix with "
                         f"{cols} columns (shape {counts.shape}); give one label per column")
    counts = counts.astype(float)
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError("confusion matrix must hold finite, non-negative counts")
    return counts


def _count_text(value: float) -> str:
    return f"{int(value)}" if float(value).is_integer() else f"{value:.3g}"


def _without_empty_classes(
    counts: np.ndarray, row_names: list[str], col_names: list[str], path: str | Path
) -> tuple[np.ndarray, list[str], list[str]]:
    """Drop classes with no count in their row nor their column (square matrices only)."""
    if counts.shape[0] != counts.shape[1] or row_names != col_names:
        raise ValueError("drop_empty_classes needs a square matrix with the same classes on "
                         "both axes; give predicted_labels=None")
    shown = np.flatnonzero((counts.sum(axis=0) > 0) | (counts.sum(axis=1) > 0))
    if shown.size == 0:
        raise ValueError(f"confusion matrix for {path} holds no count; nothing to plot")
    return (counts[np.ix_(shown, shown)], [row_names[i] for i in shown],
            [col_names[i] for i in shown])


def _confusion_png(
    counts: np.ndarray,
    share: np.ndarray,
    colours: np.ndarray,
    vmax: float,
    row_names: list[str],
    col_names: list[str],
    title: str,
    *,
    show_zero_cells: bool,
    cell_text: CellText,
    axis_labels: tuple[str, str],
    colour_label: str,
    dpi: int,
) -> bytes:
    """Render the (already filtered) matrix as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_cols = counts.shape
    width = max(4.5, 3.5 + 0.6 * n_cols)
    height = max(3.5, 2.0 + 0.5 * n_rows)
    fig, ax = plt.subplots(figsize=(width, height))
    try:
        image = ax.imshow(colours, cmap="Blues", vmin=0, vmax=vmax)
        for i in range(n_rows):
            for j in range(n_cols):
                if not (counts[i, j] or show_zero_cells):
                    continue
                text = _count_text(counts[i, j])
                if cell_text == "counts_and_share":
                    text += f"\n{share[i, j]:.0%}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if colours[i, j] > 0.6 * vmax else "black")
        ax.set_xticks(range(n_cols), col_names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(n_rows), row_names, fontsize=8)
        ax.set_xlabel(axis_labels[0])
        ax.set_ylabel(axis_labels[1])
        ax.set_title(title, fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=colour_label)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def plot_confusion_matrix(
    matrix: np.ndarray,
    labels: Sequence[str],
    path: str | Path,
    title: str,
    *,
    predicted_labels: Sequence[str] | None = None,
    normalise: bool = True,
    cell_text: CellText = "counts",
    show_zero_cells: bool = False,
    drop_empty_classes: bool = False,
    row_support: bool = False,
    axis_labels: tuple[str, str] = ("predicted", "true"),
    colour_label: str | None = None,
    dpi: int = 100,
) -> Path:
    """Save a confusion matrix as a PNG (atomically) and return its path.

    Args:
        matrix: counts, shape (reference classes, predicted classes); ``matrix[i, j]`` counts
            samples of reference class ``i`` predicted as ``j``.
        labels: names of the reference classes (rows); also of the columns when
            ``predicted_labels`` is not given (the matrix must then be square).
        path: PNG to write (parent folders are created).
        title: figure title (may hold a line break).
        predicted_labels: names of the columns when they differ from the rows (e.g. LUCAS: map
            classes plus ``no_instance``).
        normalise: colour each cell by its share of the row (recall per reference class, 0-1);
            ``False`` colours by the raw counts.
        cell_text: ``counts`` or ``counts_and_share`` (count and row percentage in every cell).
        show_zero_cells: also write the text of cells with no count.
        drop_empty_classes: leave out classes with no count in their row nor their column
            (square matrices only; keeps the diagonal aligned).
        row_support: add the number of samples of each reference class to its row label.
        axis_labels: (x axis, y axis) titles.
        colour_label: colour-bar title (default: share of the reference class, or count).
        dpi: resolution of the PNG.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: the matrix is not 2-D, not square without ``predicted_labels``, does not
            match the number of labels, holds negative / non-finite values, or has no count left
            to show.

    """
    counts = _checked_matrix(matrix, labels, predicted_labels)
    row_names = list(labels)
    col_names = list(predicted_labels) if predicted_labels is not None else list(labels)
    if cell_text not in ("counts", "counts_and_share"):
        raise ValueError(f"cell_text {cell_text!r}; allowed: ['counts', 'counts_and_share']")
    if drop_empty_classes:
        counts, row_names, col_names = _without_empty_classes(counts, row_names, col_names, path)
    support = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, support, out=np.zeros_like(counts), where=support > 0)
    colours = share if normalise else counts
    vmax = 1.0 if normalise else max(float(counts.max()), 1.0)
    if row_support:
        row_names = [f"{name} ({_count_text(n)})" for name, n in
                     zip(row_names, support[:, 0], strict=True)]

    png = _confusion_png(
        counts, share, colours, vmax, row_names, col_names, title,
        show_zero_cells=show_zero_cells, cell_text=cell_text, axis_labels=axis_labels,
        colour_label=colour_label or ("share of the reference class" if normalise else "count"),
        dpi=dpi,
    )
    return atomic_write_bytes(path, png)


@dataclass(frozen=True)
class CurvePanel:
    """One panel of a learning curve: the logged metrics it plots and its axes.

    ``series`` pairs a metric name of the Lightning CSV log with a colour (``None``: the axes'
    colour cycle).
    """

    series: tuple[tuple[str, str | None], ...]
    ylabel: str
    title: str | None = None
    ylim: tuple[float, float] | None = None


@dataclass(frozen=True)
class CurveStyle:
    """The look of a learning curve (each use case keeps its own; the PNGs are products).

    Attributes:
        panels: the panels, left to right.
        figsize: figure size, inches.
        label: legend label of a line, formatted with ``metric``, ``stage`` (the metric name
            before ``_``) and ``phase``.
        linestyles: line format per phase (``None``: matplotlib's default).
        markersize: marker size (``None``: default).
        legend_fontsize: legend font size (``None``: default).
        first_epoch: x value of the first epoch (0 or 1); later phases continue the count.
        missing_epoch: epoch of a CSV row without one (``None``: the row is skipped).
        skip_nan: leave NaN values out of the lines.
        plot_empty: write the figure even when no CSV has a value (else return ``None``).

    """

    panels: tuple[CurvePanel, ...]
    figsize: tuple[float, float]
    label: str = "{stage}"
    linestyles: tuple[str | None, ...] = (None,)
    markersize: float | None = None
    legend_fontsize: float | None = None
    first_epoch: int = 0
    missing_epoch: int | None = None
    skip_nan: bool = False
    plot_empty: bool = False


def _curve_series(csv_path: Path, keys: Sequence[str], style: CurveStyle,
                  offset: int) -> dict[str, dict[int, float]]:
    """Return ``{metric: {epoch (x value): value}}`` of one CSV log (later rows win)."""
    import csv
    import math

    series: dict[str, dict[int, float]] = {}
    if not csv_path.is_file():
        return series
    with csv_path.open() as handle:
        for row in csv.DictReader(handle):
            if row.get("epoch"):
                epoch = int(float(row["epoch"]))
            elif style.missing_epoch is None:
                continue
            else:
                epoch = style.missing_epoch
            for key in keys:
                if not row.get(key):
                    continue
                value = float(row[key])
                if not (style.skip_nan and math.isnan(value)):
                    series.setdefault(key, {})[epoch + offset + style.first_epoch] = value
    return series


def _draw_phase(axes: Any, style: CurveStyle, index: int, phase: str,
                series: dict[str, dict[int, float]]) -> None:
    """Draw one training phase's series into every panel (line style by phase index)."""
    fmt = style.linestyles[min(index, len(style.linestyles) - 1)]
    for panel, ax in zip(style.panels, axes, strict=True):
        for key, colour in panel.series:
            points = sorted(series.get(key, {}).items())
            if not points:
                continue
            kwargs: dict[str, object] = {"marker": "o", "label": style.label.format(
                metric=key, stage=key.split("_")[0], phase=phase)}
            if colour is not None:
                kwargs["color"] = colour
            if style.markersize is not None:
                kwargs["ms"] = style.markersize
            ax.plot(*zip(*points, strict=True), *([fmt] if fmt else []), **kwargs)


def plot_learning_curve(phases: Sequence[tuple[str, Path]], png: Path, title: str,
                        style: CurveStyle) -> Path | None:
    """Plot per-epoch metrics of Lightning ``CSVLogger`` files into ``png`` (100 dpi).

    Args:
        phases: ``(phase name, metrics.csv)`` in training order; the epochs of a phase continue
            those of the one before, and a grey line separates consecutive phases.
        png: the PNG to write.
        title: figure title.
        style: the panels and look (:class:`CurveStyle`).

    Returns:
        ``png``, or ``None`` when no log holds a value and ``style.plot_empty`` is false.

    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [key for panel in style.panels for key, _ in panel.series]
    offset, collected = 0, []
    for index, (phase, csv_path) in enumerate(phases):
        series = _curve_series(csv_path, keys, style, offset)
        if not series:
            continue
        collected.append((index, phase, series))
        offset = max(e for s in series.values() for e in s) + 1 - style.first_epoch
    if not collected and not style.plot_empty:
        return None
    fig, axes = plt.subplots(1, len(style.panels), figsize=style.figsize)
    for index, phase, series in collected:
        _draw_phase(axes, style, index, phase, series)
        if index < len(phases) - 1:
            last_epoch = max(e for s in series.values() for e in s)
            for ax in axes:
                ax.axvline(last_epoch + 0.5, color="grey", lw=0.8)
    for panel, ax in zip(style.panels, axes, strict=True):
        ax.set(xlabel="epoch", ylabel=panel.ylabel,
               **({"title": panel.title} if panel.title else {}),
               **({"ylim": panel.ylim} if panel.ylim else {}))
        ax.legend(**({"fontsize": style.legend_fontsize} if style.legend_fontsize else {}))
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png
