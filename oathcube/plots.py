"""Figures a scientist puts in a talk: confusion matrix, example montage, class timeline.

Every function draws on a bare :class:`matplotlib.figure.Figure` with the Agg canvas,
never through ``pyplot``: no window ever opens, the caller's backend is left alone,
and figures are not kept alive in pyplot's global registry (dask workers draw many).
Each writes one PNG and returns its path.

Class colours come from the Okabe-Ito palette, which stays distinguishable for the
common forms of colour blindness; they are defined once, in :data:`CLASS_COLORS`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.dates as mdates
import matplotlib.ticker
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import ConnectionPatch, Patch
from matplotlib.transforms import blended_transform_factory

from .errors import OptionError
from .outputs import replacing

__all__ = [
    "CLASS_COLORS",
    "class_color",
    "plot_confusion",
    "plot_montage",
    "plot_timeline",
    "new_figure",
    "save_figure",
    "write_timeline",
    "TIMELINE_SUFFIXES",
]

#: The files :func:`write_timeline` writes, told apart by their suffix.
TIMELINE_SUFFIXES = (".csv", ".nc", ".nc4", ".netcdf", ".png")

#: Colour of each OATH class (Okabe-Ito palette: safe for colour-blind readers).
CLASS_COLORS: dict[str, str] = {
    "arc": "#E69F00",  # orange
    "diffuse": "#009E73",  # bluish green, like a diffuse auroral glow
    "discrete": "#D55E00",  # vermillion
    "cloudy": "#999999",  # grey
    "moon": "#F0E442",  # yellow
    "clear": "#0072B2",  # blue
}

# OATH's own label for "clear" is "noaurora"; both name the same class.
_ALIASES = {"noaurora": "clear", "no aurora": "clear", "clear/noaurora": "clear"}
# For class names outside OATH's six (other label sets): the rest of Okabe-Ito, then greys.
_SPARE_COLORS = ("#CC79A7", "#56B4E9", "#000000", "#666666", "#BBBBBB")

_STYLE: dict[Any, Any] = {
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
    key = _ALIASES.get(key, key)
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


def _as_grey(image: np.ndarray, what: str) -> np.ndarray:
    """Return ``image`` as a 2-D array; bands are averaged (OATH PNGs are grey in RGB)."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        arr = arr[..., :3].mean(axis=2) if arr.shape[2] > 1 else arr[..., 0]
    if arr.ndim != 2 or arr.size == 0:
        raise OptionError(
            f"{what}: image of shape {np.shape(image)} (expected (y, x) or (y, x, 1|3|4))"
        )
    return arr


def _show_image(ax: matplotlib.axes.Axes, image: np.ndarray) -> None:
    """Draw a frame in grey without ticks; uint8 frames keep their true 0..255 scale."""
    vmin, vmax = (0, 255) if np.issubdtype(image.dtype, np.integer) else (None, None)
    ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, interpolation="antialiased")
    ax.set_xticks([])
    ax.set_yticks([])


# -- confusion matrix ----------------------------------------------------------------------


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

    with matplotlib.rc_context(_STYLE):
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


# -- montage -------------------------------------------------------------------------------


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
        str(name): [_as_grey(im, f"class {name!r}, example {i}") for i, im in enumerate(ims)]
        for name, ims in images.items()
    }
    totals = {name: len(ims) for name, ims in rows.items()}
    rows = {name: ims[:max_per_class] for name, ims in rows.items()}
    n_cols = max(1, max(len(ims) for ims in rows.values()))
    n_rows = len(rows)

    with matplotlib.rc_context(_STYLE):
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
                    _show_image(ax, ims[c])
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


# -- timeline ------------------------------------------------------------------------------


def _bin_width(times: np.ndarray, attrs: Mapping[str, object]) -> np.timedelta64:
    """Width of one time bin: the smallest spacing, else the ``freq`` attribute, else 10 min."""
    if len(times) > 1:
        steps = np.diff(times)
        steps = steps[steps > np.timedelta64(0, "ns")]
        if len(steps):
            return steps.min()
    freq = attrs.get("freq")
    if freq:
        try:
            return pd.to_timedelta(pd.tseries.frequencies.to_offset(str(freq))).to_timedelta64()
        except (ValueError, TypeError):
            pass
    return np.timedelta64(10, "m")


def _edges_with_gaps(
    starts: np.ndarray, width: np.timedelta64, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges for :meth:`~matplotlib.axes.Axes.stairs`, with NaN bins in time holes.

    Bins are ``[start, start + width)``; where the next bin starts later than that, a
    NaN bin fills the hole so that it shows as a gap rather than a stretched bin.
    """
    edges = [starts[0]]
    rows = []
    for i, start in enumerate(starts):
        if i and start > edges[-1]:
            edges.append(start)
            rows.append(np.full(values.shape[1:], np.nan))
        edges.append(start + width)
        rows.append(values[i])
    return mdates.date2num(np.array(edges)), np.array(rows, dtype=float)


def _truth_codes(truth: xr.DataArray, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Times and class indices (into ``classes``; -1 = unknown) of a truth DataArray."""
    if truth.ndim != 1 or truth.dims[0] != "time" or "time" not in truth.coords:
        raise OptionError(
            f"truth has dims {truth.dims} (expected one dimension 'time' with a time coordinate)"
        )
    times = np.asarray(truth["time"].values)
    if not np.issubdtype(times.dtype, np.datetime64):
        raise OptionError(f"truth time coordinate has dtype {times.dtype} (expected datetime64)")
    values = np.asarray(truth.values)
    if np.issubdtype(values.dtype, np.integer):
        codes = np.where((values >= 0) & (values < len(classes)), values, -1)
    else:
        lookup = {_ALIASES.get(c.lower(), c.lower()): i for i, c in enumerate(classes)}
        codes = np.array(
            [lookup.get(_ALIASES.get(str(v).lower(), str(v).lower()), -1) for v in values]
        )
    order = np.argsort(times, kind="stable")
    return times[order], codes[order].astype(int)


def plot_timeline(
    timeline: xr.Dataset,
    out: str | os.PathLike[str],
    samples: list[tuple[np.datetime64, np.ndarray]] | None = None,
    title: str = "",
    truth: xr.DataArray | None = None,
    max_samples: int = 8,
) -> Path:
    """Draw class occurrence over time: stacked class bands, frames per bin, thumbnails.

    Parameters
    ----------
    timeline
        Dataset with dims ``time`` (bin starts, datetime64, UTC) and ``class`` (class
        names), variables ``fraction(time, class)`` in [0, 1] and ``n_frames(time)``
        (``count(time, class)`` may be present and is not needed).  Bins with no frames
        are drawn as hatched gaps.  An attribute ``station`` goes into the default title,
        ``freq`` sets the bin width when there is only one bin.
    out
        PNG path to write.
    samples
        ``(time, frame)`` pairs shown as a strip of thumbnails on top, each joined to its
        time on the axis (at most ``max_samples``, evenly chosen).
    title
        Figure title (default: "Sky classes over time" and the station).
    truth
        Known class per time (names or indices into ``class``), drawn as a strip above
        the bands, labelled "truth".
    max_samples
        Most thumbnails to show.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    OptionError
        If a variable is missing or has other dimensions, the time coordinate is not
        datetime64, there are no bins, or a sample or ``truth`` does not fit.
    """
    for var, dims in (("fraction", {"time", "class"}), ("n_frames", {"time"})):
        if var not in timeline:
            raise OptionError(f"timeline has no variable {var!r} (has {list(timeline.data_vars)})")
        if set(timeline[var].dims) != dims:
            raise OptionError(
                f"timeline[{var!r}] has dims {timeline[var].dims} (expected {sorted(dims)})"
            )
    if timeline.sizes["time"] == 0:
        raise OptionError("timeline has no time bins")
    starts = np.asarray(timeline["time"].values)
    if not np.issubdtype(starts.dtype, np.datetime64):
        raise OptionError(
            f"timeline time coordinate has dtype {starts.dtype} (expected datetime64)"
        )
    order = np.argsort(starts, kind="stable")
    starts = starts[order]
    classes = [str(c) for c in timeline["class"].values]
    fraction = np.asarray(timeline["fraction"].transpose("time", "class").values, float)[order]
    n_frames = np.asarray(timeline["n_frames"].values, float)[order]
    fraction = np.where(np.isfinite(fraction), fraction, 0.0)
    empty = ~(n_frames > 0)
    fraction[empty] = np.nan  # no frames: a gap, not "0% of everything"

    thumbs: list[tuple[np.datetime64, np.ndarray]] = []
    for i, (t, img) in enumerate(samples or []):
        try:
            when = np.datetime64(pd.Timestamp(t).to_datetime64(), "ns")
        except (ValueError, TypeError) as exc:
            raise OptionError(f"sample {i}: time {t!r} is not a datetime") from exc
        thumbs.append((when, _as_grey(img, f"sample {i}")))
    thumbs.sort(key=lambda pair: pair[0])
    if len(thumbs) > max_samples:
        keep = np.unique(np.linspace(0, len(thumbs) - 1, max_samples).round().astype(int))
        thumbs = [thumbs[k] for k in keep]
    truth_times, truth_codes = (None, None) if truth is None else _truth_codes(truth, classes)

    width = _bin_width(starts, timeline.attrs)
    edges, stacked = _edges_with_gaps(starts, width, fraction)
    _, frames_per_bin = _edges_with_gaps(starts, width, n_frames[:, None])
    span_days = (edges[-1] - edges[0]) or 1.0

    with matplotlib.rc_context(_STYLE):
        panels = (["thumbs"] if thumbs else []) + (["truth"] if truth is not None else [])
        panels += ["bands", "frames"]
        heights = {"thumbs": 1.9, "truth": 0.28, "bands": 3.4, "frames": 0.9}
        fig = new_figure(13.0, 1.0 + sum(heights[p] for p in panels) * 1.05)
        fig_h = fig.get_size_inches()[1]
        gs = fig.add_gridspec(
            len(panels),
            1,
            height_ratios=[heights[p] for p in panels],
            left=0.08,
            right=0.84,
            top=1 - 0.75 / fig_h,
            bottom=0.75 / fig_h,
            hspace=0.12,
        )
        slot = {p: gs[i] for i, p in enumerate(panels)}
        ax = fig.add_subplot(slot["bands"])
        ax_frames = fig.add_subplot(slot["frames"], sharex=ax)

        # Stacked class bands: one step patch per class, whatever the number of bins.
        bottom = np.zeros(stacked.shape[0])
        handles = []
        for k, name in enumerate(classes):
            color = class_color(name, k)
            top = bottom + stacked[:, k]
            ax.stairs(top, edges, baseline=bottom, fill=True, color=color, linewidth=0)
            handles.append(Patch(facecolor=color, label=name))
            bottom = top
        for lo, hi in _runs(np.isnan(stacked[:, 0]), edges):
            for target in (ax, ax_frames):
                target.axvspan(
                    lo, hi, facecolor="none", edgecolor="#BBBBBB", hatch="///", linewidth=0
                )
        handles.reverse()  # legend top-to-bottom in the order the bands are stacked
        if empty.any():
            handles.append(
                Patch(facecolor="white", edgecolor="#999999", hatch="///", label="no frames")
            )
        ax.set_ylim(0, 1)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylabel("fraction of frames")
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=False,
            title="class",
        )
        ax.tick_params(labelbottom=False)

        ax_frames.stairs(frames_per_bin[:, 0], edges, fill=True, color="#555555", linewidth=0)
        ax_frames.set_ylabel("frames\nper bin")
        ax_frames.set_ylim(0, max(1.0, float(np.nanmax(n_frames)) * 1.15))
        ax_frames.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(3, integer=True))
        locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
        ax_frames.xaxis.set_major_locator(locator)
        ax_frames.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax_frames.set_xlabel("time (UTC)")

        top_ax = ax
        if truth_times is not None and truth_codes is not None:
            ax_truth = fig.add_subplot(slot["truth"], sharex=ax)
            _draw_truth(ax_truth, truth_times, truth_codes, classes, width, edges)
            top_ax = ax_truth

        if thumbs:
            _draw_thumbnails(fig, slot["thumbs"], thumbs, top_ax, span_days)

        station = timeline.attrs.get("station")
        default = "Sky classes over time" + (f" at {station}" if station else "")
        fig.suptitle(title or default, y=1 - 0.2 / fig_h, va="top")
        return save_figure(fig, out)


def _runs(mask: np.ndarray, edges: np.ndarray) -> list[tuple[float, float]]:
    """``(start, end)`` of each run of True bins in ``mask``, in edge units."""
    runs, start = [], None
    for i, flag in enumerate(mask):
        if flag and start is None:
            start = edges[i]
        elif not flag and start is not None:
            runs.append((start, edges[i]))
            start = None
    if start is not None:
        runs.append((start, edges[len(mask)]))
    return runs


def _draw_truth(
    ax: matplotlib.axes.Axes,
    times: np.ndarray,
    codes: np.ndarray,
    classes: list[str],
    bin_width: np.timedelta64,
    edges: np.ndarray,
) -> None:
    """A thin strip coloured by the known class; each value lasts until the next one."""
    if len(times) > 1:
        steps = np.diff(times)
        positive = steps[steps > np.timedelta64(0, "ns")]
        step = np.median(positive) if len(positive) else bin_width
    else:
        step = bin_width
    ends = np.append(times[1:], times[-1] + step)
    # A hole much longer than the usual spacing is unknown, not the previous class.
    ends = np.minimum(ends, times + 3 * step)
    x0, x1 = mdates.date2num(times), mdates.date2num(ends)
    i = 0
    while i < len(codes):
        j = i
        while j + 1 < len(codes) and codes[j + 1] == codes[i] and x0[j + 1] <= x1[j]:
            j += 1
        if codes[i] >= 0:
            ax.axvspan(x0[i], x1[j], color=class_color(classes[codes[i]], codes[i]), linewidth=0)
        i = j + 1
    ax.set_xlim(edges[0], edges[-1])
    ax.set_yticks([])
    ax.set_ylabel("truth", rotation=0, ha="right", va="center")
    ax.tick_params(labelbottom=False)
    for spine in ax.spines.values():
        spine.set_visible(False)


def _draw_thumbnails(
    fig: Figure,
    slot: matplotlib.gridspec.SubplotSpec,
    thumbs: list[tuple[np.datetime64, np.ndarray]],
    target: matplotlib.axes.Axes,
    span_days: float,
) -> None:
    """A row of sample frames, each labelled with its time and joined to it on ``target``."""
    n = len(thumbs)
    # Never fewer than 6 cells, so that one or two samples stay thumbnail-sized.
    cells = max(n, 6)
    sub = slot.subgridspec(1, cells, wspace=0.12)
    offset = (cells - n) // 2
    if span_days <= 1.0:
        fmt = "%H:%M:%S"  # the date is on the time axis already
    elif all(pd.Timestamp(when) == pd.Timestamp(when).normalize() for when, _ in thumbs):
        fmt = "%Y-%m-%d"  # daily bins: the hour says nothing
    else:
        fmt = "%m-%d %H:%M"
    to_target = blended_transform_factory(target.transData, target.transAxes)
    for k, (when, img) in enumerate(thumbs):
        tax = fig.add_subplot(sub[0, offset + k])
        _show_image(tax, img)
        label = pd.Timestamp(when).strftime(fmt)
        tax.set_title(label, fontsize=10, pad=3)
        x = mdates.date2num(when)
        line = ConnectionPatch(
            xyA=(0.5, 0.0),
            coordsA=tax.transAxes,
            xyB=(x, 1.0),
            coordsB=to_target,
            color="#444444",
            linewidth=0.8,
            alpha=0.7,
        )
        fig.add_artist(line)
        target.plot(
            [x],
            [1.0],
            marker="v",
            color="#222222",
            markersize=6,
            transform=to_target,
            clip_on=False,
            zorder=5,
        )


def write_timeline(
    result: xr.Dataset, out: str | os.PathLike[str], cube: Any, station: str
) -> Path:
    """Write a timeline (:func:`oathcube.timelines.timeline`) as CSV, NetCDF or PNG.

    Parameters
    ----------
    result
        The timeline Dataset.
    out
        The file; its suffix (one of :data:`TIMELINE_SUFFIXES`) says which kind.
    cube
        The cube the timeline came from (a PNG shows sample frames from it).
    station
        The station code.

    Returns
    -------
    pathlib.Path
        ``out``, written whole (see :func:`oathcube.outputs.replacing`).
    """
    path = Path(out)
    if path.suffix.lower() == ".png":
        from .timelines import sample_frames

        return plot_timeline(
            result,
            path,
            samples=sample_frames(cube, station, result),
            title=f"{station}: {result.attrs['model']}, {result.attrs['freq']} bins",
        )
    with replacing(path) as tmp:
        if path.suffix.lower() == ".csv":
            frame = result[["count", "fraction"]].to_dataframe().unstack("class")
            frame.columns = [f"{var}_{cls}" for var, cls in frame.columns]
            frame["n_frames"] = result["n_frames"].to_pandas()
            frame.to_csv(tmp)
        else:
            result.to_netcdf(tmp)
    return path
