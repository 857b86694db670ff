"""The figure kit every view draws with: class colours, a style, bare Agg figures.

Every function draws on a bare :class:`matplotlib.figure.Figure` with the Agg canvas,
never through ``pyplot``: no window ever opens, the caller's backend is left alone,
and figures are not kept alive in pyplot's global registry (dask workers draw many).
Each view writes one file and returns its path.

Class colours come from the Okabe-Ito palette, which stays distinguishable for the
common forms of colour blindness; they are defined once, in :data:`CLASS_COLORS`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..errors import OptionError
from ..outputs import replacing

__all__ = [
    "CLASS_COLORS",
    "CLASS_ALIASES",
    "STYLE",
    "class_color",
    "new_figure",
    "save_figure",
    "as_grey",
    "show_image",
]

#: Colour of each OATH class (Okabe-Ito palette: safe for colour-blind readers).
CLASS_COLORS: dict[str, str] = {
    "arc": "#E69F00",  # orange
    "diffuse": "#009E73",  # bluish green, like a diffuse auroral glow
    "discrete": "#D55E00",  # vermillion
    "cloudy": "#999999",  # grey
    "moon": "#F0E442",  # yellow
    "clear": "#0072B2",  # blue
}

#: OATH's own label for "clear" is "noaurora"; both name the same class.
CLASS_ALIASES = {"noaurora": "clear", "no aurora": "clear", "clear/noaurora": "clear"}
# For class names outside OATH's six (other label sets): the rest of Okabe-Ito, then greys.
_SPARE_COLORS = ("#CC79A7", "#56B4E9", "#000000", "#666666", "#BBBBBB")

#: Font sizes and resolution of every figure.
STYLE: dict[Any, Any] = {
    "font.size": 12,
    "axes.titlesize": 14,
    "axes.labelsize": 12,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "legend.fontsize": 11,
    "figure.titlesize": 16,
    "savefig.dpi": 120,
}


def class_color(name: str, index: int = 0) -> str:
    """Return the colour of class ``name``.

    Parameters
    ----------
    name
        An OATH class name (``"noaurora"`` is accepted for ``"clear"``), any case.
    index
        Position of the class in its list, used to pick a spare colour for a name
        that is not one of the six OATH classes.
    """
    key = str(name).strip().lower()
    key = CLASS_ALIASES.get(key, key)
    if key in CLASS_COLORS:
        return CLASS_COLORS[key]
    return _SPARE_COLORS[index % len(_SPARE_COLORS)]


def new_figure(width: float, height: float, dpi: float | None = None) -> Figure:
    """A figure bound to the Agg canvas (never pyplot: no window, no global registry)."""
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, out: str | os.PathLike[str], fmt: str = "png") -> Path:
    """Write ``fig`` to ``out`` (PNG by default), whole or not at all; return the path."""
    with replacing(out) as tmp:
        fig.savefig(tmp, format=fmt, facecolor="white")
    return Path(out)


def as_grey(image: np.ndarray, what: str) -> np.ndarray:
    """Return ``image`` as a 2-D array; bands are averaged (OATH PNGs are grey in RGB)."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        arr = arr[..., :3].mean(axis=2) if arr.shape[2] > 1 else arr[..., 0]
    if arr.ndim != 2 or arr.size == 0:
        raise OptionError(
            f"{what}: image of shape {np.shape(image)} (expected (y, x) or (y, x, 1|3|4))"
        )
    return arr


def show_image(ax: matplotlib.axes.Axes, image: np.ndarray) -> None:
    """Draw a frame in grey without ticks; uint8 frames keep their true 0..255 scale."""
    vmin, vmax = (0, 255) if np.issubdtype(image.dtype, np.integer) else (None, None)
    ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, interpolation="antialiased")
    ax.set_xticks([])
    ax.set_yticks([])
