"""A montage of example frames per class, as a figure."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np

from ..errors import OptionError
from .figures import STYLE, as_grey, class_color, new_figure, save_figure, show_image

__all__ = ["plot_montage"]


def plot_montage(
    images: Mapping[str, Sequence[np.ndarray]],
    out: str | os.PathLike[str],
    title: str = "",
    max_per_class: int = 8,
) -> Path:
    """Draw a grid of example frames, one row per class, greyscale, no ticks.

    Parameters
    ----------
    images
        Class name -> example frames (uint8 ``(y, x)`` or ``(y, x, band)``).  A class
        with no examples gets a row saying so.
    out
        PNG path to write.
    title
        Figure title.
    max_per_class
        At most this many examples per row (the first ones are shown).

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    OptionError
        If ``images`` is empty or a frame is not 2-D (or 3-D with 1, 3 or 4 bands).
    """
    if not images:
        raise OptionError("montage needs at least one class")
    if max_per_class < 1:
        raise OptionError(f"max_per_class={max_per_class} (expected >= 1)")
    rows = {
        str(name): [as_grey(im, f"class {name!r}, example {i}") for i, im in enumerate(ims)]
        for name, ims in images.items()
    }
    totals = {name: len(ims) for name, ims in rows.items()}
    rows = {name: ims[:max_per_class] for name, ims in rows.items()}
    n_cols = max(1, max(len(ims) for ims in rows.values()))
    n_rows = len(rows)

    with matplotlib.rc_context(STYLE):
        cell = 1.7 if n_cols > 3 else 2.2
        label_w = 1.5
        top = 0.8 if title else 0.25
        fig = new_figure(label_w + cell * n_cols + 0.2, cell * n_rows + top + 0.15)
        width, height = fig.get_size_inches()
        gs = fig.add_gridspec(
            n_rows,
            n_cols,
            left=label_w / width,
            right=1 - 0.2 / width,
            bottom=0.15 / height,
            top=1 - top / height,
            wspace=0.05,
            hspace=0.08,
        )
        for r, (name, ims) in enumerate(rows.items()):
            color = class_color(name, r)
            for c in range(n_cols):
                ax = fig.add_subplot(gs[r, c])
                if c < len(ims):
                    show_image(ax, ims[c])
                    # A coloured frame ties the row to the class colour used in other plots.
                    for spine in ax.spines.values():
                        spine.set_edgecolor(color)
                        spine.set_linewidth(3)
                else:
                    ax.set_axis_off()
                    if c == 0:
                        ax.text(
                            0.5,
                            0.5,
                            "no examples",
                            ha="center",
                            va="center",
                            transform=ax.transAxes,
                            color="#666666",
                            style="italic",
                        )
                if c == 0:
                    ax.text(
                        -0.08,
                        0.5,
                        f"{name}\n({totals[name]})",
                        ha="right",
                        va="center",
                        transform=ax.transAxes,
                        fontsize=13,
                        fontweight="bold",
                    )
        if title:
            fig.suptitle(title, y=1 - 0.15 / height, va="top")
        return save_figure(fig, out)
