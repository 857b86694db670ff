"""Class occurrence per time bin at one station: the time series of a model's classes.

:func:`timeline` counts, :func:`plot_timeline` draws and :func:`write_timeline` writes
it as CSV, NetCDF or PNG.

The station's arrays are read through the chunk check of the views
(:func:`oathcube.cube.checked.checked`): a damaged chunk of predictions or of the
frames shown beside the plot is named, not read as "unclassified" or a black frame.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.dates as mdates
import matplotlib.ticker
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.patches import ConnectionPatch, Patch
from matplotlib.transforms import blended_transform_factory

from ..cube.checked import checked
from ..cube.schema import prediction_models, prediction_names, station_group
from ..cube.store import Cube, CubeLike
from ..errors import CubeError, ModelError, OptionError
from ..outputs import replacing
from ..times import check_freq, parse_time
from .figures import CLASS_ALIASES, STYLE, as_grey, class_color, new_figure, save_figure, show_image

__all__ = [
    "timeline",
    "sample_frames",
    "station_series",
    "plot_timeline",
    "class_bins",
    "write_timeline",
    "TIMELINE_SUFFIXES",
]

#: The files :func:`write_timeline` writes, told apart by their suffix.
TIMELINE_SUFFIXES = (".csv", ".nc", ".nc4", ".netcdf", ".png")


def station_series(cube: Cube, station: str) -> xr.Dataset:
    """A station's frames along ``time``: its station group, else its labelled images."""
    if station in cube.stations():
        return checked(cube.station(station), cube, station_group(station))
    labelled = checked(cube.labelled(), cube, None)
    if "station" not in labelled.coords or station not in set(labelled.station.values):
        raise CubeError(
            f"no frames of station {station!r}",
            path=cube.location,
            expected=f"one of {', '.join(cube.stations()) or '(none)'}",
        )
    ds = labelled.sel(station=station).drop_indexes(["station", "time"])
    ds = ds.dropna("image", subset=["time"]).drop_vars("station")
    return ds.swap_dims({"image": "time"}).sortby("time")


def _pick_model(ds: xr.Dataset, model: str | None, where: str) -> str:
    have = prediction_models(ds.data_vars)
    if model is None:
        if len(have) != 1:
            raise ModelError(
                "say which model's predictions to use" if have else "no predictions yet",
                path=where,
                expected=f"`model` one of {', '.join(have)}"
                if have
                else "`oathcube classify` first",
            )
        return have[0]
    if model not in have:
        raise ModelError(
            f"no predictions of model {model!r}",
            path=where,
            expected=f"one of {', '.join(have) or '(none: run oathcube classify)'}",
        )
    return model


def timeline(
    cube: CubeLike,
    station: str,
    *,
    freq: str = "10min",
    model: str | None = None,
    start: Any = None,
    end: Any = None,
    storage_options: dict[str, Any] | None = None,
) -> xr.Dataset:
    """Class occurrence per time bin at one station.

    Parameters
    ----------
    cube
        Path, URL or :class:`~oathcube.cube.store.Cube`.
    station
        Station code (a ``stations/<code>`` group, or a station of the labelled images).
    freq
        Bin width, a pandas frequency (``10min``, ``1h``, ``1D``).
    model
        Whose predictions (default: the only model that classified this station).
    start, end
        Optional time range.
    storage_options
        fsspec options of a cube at a URL (credentials, an endpoint), as for
        :meth:`~oathcube.cube.store.Cube.open`; or pass a Cube that carries them.

    Returns
    -------
    xarray.Dataset
        ``count(time, class)``, ``fraction(time, class)`` (NaN in empty bins),
        ``n_frames(time)``; ``time`` holds the bin starts.
    """
    check_freq(freq)
    t0, t1 = parse_time(start, "start"), parse_time(end, "end")
    cube = Cube.open(cube, storage_options=storage_options)
    ds = station_series(cube, station)
    where = cube.where(station_group(station)) if station in cube.stations() else cube.location
    name = _pick_model(ds, model, where)
    pred_name, _, class_dim = prediction_names(name)
    pred = ds[pred_name]
    if t0 is not None or t1 is not None:
        pred = pred.sel(time=slice(t0, t1))
    pred = pred.load()
    pred = pred.where(pred >= 0, drop=True)
    if pred.size == 0:
        raise CubeError(
            "no classified frames in that range",
            path=where,
            expected=f"`oathcube classify --model {name}` first",
        )
    classes = [str(c) for c in ds[class_dim].values]
    codes = [int(c) for c in cube.model(name)["class_index"].values]
    return class_bins(
        pred,
        classes,
        codes,
        freq,
        {"station": station, "model": name, "freq": freq, "cube": cube.location},
    )


def class_bins(
    pred: xr.DataArray,
    classes: list[str],
    codes: list[int],
    freq: str,
    attrs: dict[str, Any],
) -> xr.Dataset:
    """What :func:`timeline` returns, from classified frames' codes already read.

    Parameters
    ----------
    pred
        ``(time,)`` predicted class codes, unclassified frames (-1) left out.
    classes, codes
        The model's class names and the code of each (its ``class_index``).
    freq
        Bin width, a pandas frequency.
    attrs
        The result's attributes.
    """
    one_hot = xr.concat([(pred == c).astype(np.int32) for c in codes], dim="class")
    one_hot = one_hot.assign_coords({"class": classes}).transpose("time", "class")
    # Empty bins come back as NaN from resample: they hold zero frames.
    count = one_hot.resample(time=freq).sum().fillna(0)
    n_frames = count.sum("class")
    out = xr.Dataset(
        {
            "count": count.astype(np.int32),
            "fraction": (count / n_frames.where(n_frames > 0)).astype(np.float32),
            "n_frames": n_frames.astype(np.int32),
        },
        attrs=attrs,
    )
    out["count"].attrs = {"long_name": "frames classified as each class"}
    out["fraction"].attrs = {"long_name": "fraction of the bin's frames in each class"}
    out["n_frames"].attrs = {"long_name": "frames in the bin"}
    return out


def sample_frames(
    cube: CubeLike, station: str, result: xr.Dataset, k: int = 8
) -> list[tuple[np.datetime64, np.ndarray]]:
    """Up to ``k`` frames spread evenly over a timeline's span, for the plot's strip."""
    ds = station_series(Cube.open(cube), station)
    t0 = result["time"].values[0]
    t1 = result["time"].values[-1] + pd.Timedelta(result.attrs["freq"]).to_timedelta64()
    times = ds["time"].values
    inside = np.flatnonzero((times >= t0) & (times < t1))
    if inside.size == 0:
        return []
    picks = inside[np.unique(np.linspace(0, inside.size - 1, min(k, inside.size)).astype(int))]
    pixels = ds["pixels"].isel(time=picks).values
    return [(times[i], pixels[j]) for j, i in enumerate(picks)]


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
        lookup = {CLASS_ALIASES.get(c.lower(), c.lower()): i for i, c in enumerate(classes)}
        codes = np.array(
            [lookup.get(CLASS_ALIASES.get(str(v).lower(), str(v).lower()), -1) for v in values]
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
        thumbs.append((when, as_grey(img, f"sample {i}")))
    thumbs.sort(key=lambda pair: pair[0])
    if len(thumbs) > max_samples:
        keep = np.unique(np.linspace(0, len(thumbs) - 1, max_samples).round().astype(int))
        thumbs = [thumbs[k] for k in keep]
    truth_times, truth_codes = (None, None) if truth is None else _truth_codes(truth, classes)

    width = _bin_width(starts, timeline.attrs)
    edges, stacked = _edges_with_gaps(starts, width, fraction)
    _, frames_per_bin = _edges_with_gaps(starts, width, n_frames[:, None])
    span_days = (edges[-1] - edges[0]) or 1.0

    with matplotlib.rc_context(STYLE):
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
        show_image(tax, img)
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
    """Write a timeline (:func:`timeline`) as CSV, NetCDF or PNG.

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
