"""The confusion matrix of a classifier's test predictions, as a figure."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np

from ..errors import OptionError
from .figures import STYLE, new_figure, save_figure

__all__ = ["plot_confusion"]


def plot_confusion(
    matrix: np.ndarray,
    class_names: list[str],
    out: str | os.PathLike[str],
    title: str = "",
    normalize: bool = True,
) -> Path:
    """Draw a confusion matrix: counts in the cells, colour = recall (row-normalised).

    Parameters
    ----------
    matrix
        ``(n, n)`` counts, rows = true class, columns = predicted class.
    class_names
        ``n`` names, in the order of the rows.
    out
        PNG path to write.
    title
        Title; the overall accuracy is appended.
    normalize
        Colour by the row-normalised fraction (recall); ``False`` colours by counts.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    OptionError
        If ``matrix`` is not square, does not match ``class_names`` or holds negative
        or non-finite values.
    """
    cm = np.asarray(matrix)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise OptionError(f"confusion matrix of shape {cm.shape} (expected square (n, n))")
    if cm.shape[0] != len(class_names):
        raise OptionError(
            f"confusion matrix is {cm.shape[0]}x{cm.shape[1]} but got "
            f"{len(class_names)} class names"
        )
    if cm.size == 0 or not np.isfinite(cm).all() or (cm < 0).any():
        raise OptionError("confusion matrix must be non-empty, finite and non-negative")
    n = cm.shape[0]
    total = cm.sum()
    accuracy = float(np.trace(cm) / total) if total > 0 else float("nan")
    row_sums = cm.sum(axis=1, keepdims=True)
    recall = np.divide(cm, row_sums, out=np.zeros(cm.shape, float), where=row_sums > 0)
    shade = recall if normalize else cm.astype(float)
    vmax = 1.0 if normalize else max(float(shade.max()), 1.0)

    with matplotlib.rc_context(STYLE):
        side = max(5.5, 0.95 * n + 3.0)
        fig = new_figure(side + 1.2, side)
        ax = fig.add_subplot()
        im = ax.imshow(shade, cmap="Blues", vmin=0.0, vmax=vmax)
        is_int = np.issubdtype(cm.dtype, np.integer) or np.all(cm == np.round(cm))
        cell_font = 12 if n <= 8 else max(7, 12 - (n - 8))
        for i in range(n):
            for j in range(n):
                count = f"{int(cm[i, j])}" if is_int else f"{cm[i, j]:.3g}"
                text = f"{count}\n{recall[i, j]:.0%}" if normalize and row_sums[i, 0] else count
                dark = shade[i, j] > 0.55 * vmax  # white text on dark cells
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=cell_font,
                    color="white" if dark else "#222222",
                    fontweight="bold" if i == j else "normal",
                )
        ax.set_xticks(range(n), class_names, rotation=30, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(n), class_names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        # Light grid between cells reads better than none when neighbouring cells are pale.
        ax.set_xticks(np.arange(n + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(n + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", linewidth=1.5)
        ax.tick_params(which="minor", length=0)
        acc_text = f"accuracy {accuracy:.1%} (n = {total:g})" if total > 0 else "no samples"
        ax.set_title(f"{title}\n{acc_text}" if title else acc_text)
        cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        cbar.set_label("recall (row-normalised)" if normalize else "count")
        if normalize:
            cbar.ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        fig.tight_layout()
        return save_figure(fig, out)
