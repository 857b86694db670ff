"""A montage of a query frame and its most similar frames (``oathcube similar --out x.png``).

The frames are read from the cube (a station's ``pixels`` along ``time``, or the labelled
images' ``pixels`` along ``image``) through the chunk check, so a damaged chunk is named,
never drawn black.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd

from ..cube.schema import variable_path
from ..cube.store import Cube, CubeLike
from ..errors import OptionError
from .figures import STYLE, as_grey, class_color, new_figure, save_figure, show_image

__all__ = ["plot_similar"]

#: The query's frame colour: black, apart from every class colour.
_QUERY_COLOR = "#000000"


def _frame(cube: Cube, group: str | None, row: int) -> np.ndarray:
    path = variable_path(group, "pixels")
    return as_grey(cube.read_checked(path, (np.array([row]),))[0], f"{path}[{row}]")


def _when(time: Any) -> str:
    return "time unknown" if pd.isna(time) else pd.Timestamp(time).strftime("%Y-%m-%d %H:%M:%S UTC")


def _where(station: Any, image: Any) -> str:
    text = str(station) if isinstance(station, str) and station else "?"
    return text if pd.isna(image) else f"{text} image {int(image)}"


def plot_similar(
    cube: CubeLike,
    table: pd.DataFrame,
    out: str | os.PathLike[str],
    *,
    columns: int = 6,
    storage_options: dict[str, Any] | None = None,
) -> Path:
    """Draw each query frame followed by its hits, captioned, and write a PNG.

    Parameters
    ----------
    cube
        The cube the table was searched in.
    table
        What :func:`oathcube.similar` returned (its ``attrs["queries"]`` say where the
        query frames are).
    out
        PNG path to write.
    columns
        Frames per row; each query starts a new row.
    storage_options
        fsspec options of a cube at a URL.

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    if columns < 2:
        raise OptionError(f"columns={columns}", parameter="columns", expected=">= 2")
    queries = table.attrs.get("queries")
    if not queries:
        raise OptionError(
            "the table says nothing of its queries", expected="a table from oathcube.similar"
        )
    cube = Cube.open(cube, storage_options=storage_options)
    # One cell per frame: (image, caption lines, frame colour, is the query)
    cells: list[list[tuple[np.ndarray, str, str, bool]]] = []
    for q, query in enumerate(queries):
        group = query["group"]
        row = [
            (
                _frame(cube, group, int(query["row"])),
                f"QUERY\n{_where(query['station'], query['image'])}\n{_when(query['time'])}",
                _QUERY_COLOR,
                True,
            )
        ]
        for hit in table[table["query"] == q].to_dict("records"):
            name = str(hit["class"] or "")
            score = hit["class_score"]
            klass = f"{name} {score:.2f}" if name and not pd.isna(score) else name or "unclassified"
            caption = (
                f"#{hit['rank']}  cos {hit['score']:.4f}\n{_where(hit['station'], hit['image'])}"
                f"\n{_when(hit['time'])}\n{klass}"
            )
            group = None if pd.isna(hit["group"]) else str(hit["group"])
            row.append((_frame(cube, group, int(hit["row"])), caption, class_color(name), False))
        cells.extend(row[i : i + columns] for i in range(0, len(row), columns))

    n_cols = min(columns, max(len(r) for r in cells))
    n_rows = len(cells)
    # inches: a square frame, four caption lines beneath it, gaps, the title band
    frame, below, gap, margin, top = 2.1, 0.95, 0.15, 0.15, 0.55
    width = 2 * margin + n_cols * frame + (n_cols - 1) * gap
    height = top + n_rows * (frame + below) + margin
    title = f"frames most like the query (cosine of features_{table.attrs.get('features', '?')})"
    with matplotlib.rc_context(STYLE):
        fig = new_figure(width, height)
        for r, row_cells in enumerate(cells):
            bottom = height - top - (r + 1) * frame - r * below
            for c, (image, text, color, is_query) in enumerate(row_cells):
                left = margin + c * (frame + gap)
                ax = fig.add_axes((left / width, bottom / height, frame / width, frame / height))
                show_image(ax, image)
                for spine in ax.spines.values():
                    spine.set_edgecolor(color)
                    spine.set_linewidth(5 if is_query else 3)
                ax.set_xlabel(
                    text,
                    fontsize=10,
                    linespacing=1.2,
                    fontweight="bold" if is_query else "normal",
                )
        fig.suptitle(title, y=1 - 0.12 / height, va="top", fontsize=13)
        return save_figure(fig, out)
