"""PNG figures of a training run: learning curves, confusion matrix, ROC curve.

Figures are built with ``matplotlib.figure.Figure`` and rendered by Agg, never through
pyplot: no global figure state, no GUI backend, safe in worker processes and threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import roc_auc_score, roc_curve

from shared.labels import LABEL_NAMES
from workers.training.evaluate import equal_error_rate

DPI = 120


def plot_history(history: dict, path: str | Path) -> Path:
    """Accuracy and loss per epoch, train vs validation, side by side."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    accuracy_axes, loss_axes = fig.subplots(1, 2)
    for axes, metric, title in ((accuracy_axes, "accuracy", "Accuracy"), (loss_axes, "loss", "Loss")):
        for key, label, style in ((metric, "train", "o-"), (f"val_{metric}", "validation", "s--")):
            values = history.get(key) or []
            if values:
                epochs = np.arange(1, len(values) + 1)
                axes.plot(epochs, values, style, label=label, linewidth=1.8, markersize=4)
        axes.set_title(title)
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        epochs_run = max((len(history.get(k) or []) for k in (metric, f"val_{metric}")), default=0)
        axes.set_xlim(0.5, max(epochs_run, 1) + 0.5)  # whole epochs, even for a one-epoch run
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend()
        else:
            axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
    return _save(fig, path)


def plot_confusion_matrix(
    cm: Sequence[Sequence[int]],
    path: str | Path,
    class_names: Sequence[str] = (LABEL_NAMES[0], LABEL_NAMES[1]),
    title: str = "Confusion matrix",
) -> Path:
    """2x2 matrix [[tn, fp], [fn, tp]] with counts and row percentages in the cells."""
    cm = np.asarray(cm, dtype=int)
    row_totals = cm.sum(axis=1, keepdims=True)
    row_fractions = np.divide(cm, row_totals, out=np.zeros(cm.shape), where=row_totals > 0)

    fig = Figure(figsize=(4.8, 4.2), layout="constrained")
    axes = fig.subplots()
    image = axes.imshow(row_fractions, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=axes, label="fraction of true class")
    ticks = np.arange(len(class_names))
    axes.set_xticks(ticks, labels=class_names)
    axes.set_yticks(ticks, labels=class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    for row in range(cm.shape[0]):
        for col in range(cm.shape[1]):
            colour = "white" if row_fractions[row, col] > 0.5 else "black"
            axes.text(
                col,
                row,
                f"{cm[row, col]}\n{row_fractions[row, col]:.1%}",
                ha="center",
                va="center",
                color=colour,
                fontsize=12,
            )
    return _save(fig, path)


def plot_roc(
    y_true: Sequence[int], y_prob: Sequence[float], path: str | Path, title: str = "ROC curve"
) -> Path:
    """ROC curve with its AUC in the legend and the equal error rate point marked.
    With one class only, the curve is undefined: the figure says so instead."""
    y_true = np.asarray(y_true, dtype=int).reshape(-1)
    y_prob = np.asarray(y_prob, dtype=np.float64).reshape(-1)

    fig = Figure(figsize=(5, 4.6), layout="constrained")
    axes = fig.subplots()
    axes.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    if 0 < y_true.sum() < len(y_true):
        fpr, tpr, _ = roc_curve(y_true, y_prob)
        auc = roc_auc_score(y_true, y_prob)
        axes.plot(fpr, tpr, linewidth=2, label=f"classifier (AUC = {auc:.3f})")
        eer, _ = equal_error_rate(y_true, y_prob)
        axes.plot([eer], [1 - eer], "o", color="crimson", label=f"EER = {eer:.3f}")
    else:
        axes.text(
            0.5,
            0.5,
            "ROC undefined:\nonly one class present",
            ha="center",
            va="center",
            transform=axes.transAxes,
            fontsize=11,
            bbox={"facecolor": "white", "edgecolor": "grey", "boxstyle": "round"},
        )
    axes.set_xlim(-0.01, 1.01)
    axes.set_ylim(-0.01, 1.01)
    axes.set_aspect("equal")
    axes.set_xlabel("false positive rate (real called fake)")
    axes.set_ylabel("true positive rate (fake caught)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    return _save(fig, path)


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path
