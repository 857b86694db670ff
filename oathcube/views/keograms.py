"""Keograms: the north-south slice through zenith of every frame, side by side in time.

With a skymap (:mod:`oathcube.views.skymaps`), the slice follows the true geographic
meridian: from the northern horizon through zenith to the southern one, each point at
elevation ``min_elevation`` or higher is the pixel whose skymap direction is nearest
(cameras are mounted turned by up to ~25 deg, so the meridian is not a pixel column).
The keogram's axis is then the geographic latitude of those pixels at an emission
altitude.  Without a skymap it is the centre column of the frames, row 0 (north in the
cube's orientation) first.  Every keogram value is a pixel of a stored frame, unchanged.

The picture has UTC on x, latitude (or pixel row) on y with north up, the predicted
classes as a strip beneath, frames classified cloudy or moonlit hatched and dimmed, and
gaps in time (more than 1.5 frame steps) left empty.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..cube.store import Cube, CubeLike
from ..errors import OptionError
from ..outputs import check_output, replacing
from ._common import (
    HIDDEN_SKY,
    cadence,
    classes_of,
    prepared_mask,
    require_one_band,
    station_rows,
)
from .figures import new_figure, save_figure
from .skymaps import skymap_for

__all__ = [
    "keogram_rows",
    "keogram",
    "meridian_pixels",
    "plot_keogram",
    "write_keogram",
    "KEOGRAM_SUFFIXES",
]

log = logging.getLogger(__name__)

KEOGRAM_SUFFIXES = (".png", ".nc")


def check_elevation(min_elevation: float) -> float:
    """Refuse a minimum elevation outside 0..89 degrees."""
    value = float(min_elevation)
    if not 0.0 <= value < 90.0:
        raise OptionError(
            f"minimum elevation {min_elevation}",
            parameter="min_elevation",
            expected="0 to 89 deg",
        )
    return value


def meridian_pixels(
    elevation: np.ndarray, azimuth: np.ndarray, min_elevation: float = 10.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pixels along the geographic meridian, from the northern horizon to the southern.

    Parameters
    ----------
    elevation, azimuth
        ``(y, x)`` skymap arrays in degrees (NaN outside the field of view).
    min_elevation
        Leave out the meridian below this elevation at either end.

    Returns
    -------
    rows, cols
        Pixel indices, each pixel once, ordered north to south.
    angle
        For each pixel, the angle along the meridian from the northern horizon (0)
        through zenith (90) to the southern horizon (180), in degrees.
    """
    el, az = np.radians(elevation), np.radians(azimuth)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(el) & np.isfinite(az) & (elevation >= min_elevation)
    ys, xs = np.nonzero(ok)
    if ys.size == 0:
        raise OptionError(
            f"no pixel of the skymap is at {min_elevation} deg or higher",
            parameter="min_elevation",
            expected="a lower minimum elevation",
        )
    # Unit vectors (north, east, up) of the usable pixels.
    e, a = el[ys, xs], az[ys, xs]
    vec = np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], axis=1)
    # Sample the meridian finer than a pixel (THEMIS: ~0.7 deg per pixel near zenith).
    phi = np.radians(np.arange(min_elevation, 180.0 - min_elevation + 1e-9, 0.2))
    samples = np.stack([np.cos(phi), np.zeros_like(phi), np.sin(phi)], axis=1)
    nearest = np.argmax(samples @ vec.T, axis=1)
    # Keep the pixels that lie on the meridian (nearest to some sample), in path order.
    _, first = np.unique(nearest, return_index=True)
    order = nearest[np.sort(first)]
    rows, cols = ys[order], xs[order]
    n, up = vec[order, 0], vec[order, 2]
    angle = np.degrees(np.arctan2(up, n))
    return rows, cols, angle


def keogram(
    cube: CubeLike,
    station: str,
    *,
    start: Any = None,
    end: Any = None,
    min_elevation: float = 10.0,
    altitude: float = 110.0,
    skymap: str | None = None,
    model: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> xr.DataArray:
    """A station's keogram from ``start`` to ``end``, with its frames' classes.

    Parameters
    ----------
    cube
        Path, URL or :class:`~oathcube.cube.store.Cube`.
    station
        Station code.
    start, end
        Time range (inclusive); default the whole archive.
    min_elevation
        With a skymap: leave out the meridian below this elevation (degrees).
    altitude
        Emission altitude (km) of the latitude axis; one of the skymap's (90, 110, 150).
    skymap
        None: the skymap valid at ``start`` (else the nearest in time, with a warning and
        a ``skymap_note``; the centre column when the station has none); ``"none"``:
        centre column; or a stored skymap's name or start date.
    model
        Whose predictions label the frames (default: the only model that classified
        the station; none is fine).
    storage_options
        fsspec options of a cube at a URL (credentials, an endpoint), as for
        :meth:`~oathcube.cube.store.Cube.open`; or pass a Cube that carries them.

    Returns
    -------
    xarray.DataArray
        ``uint8`` ``(time, latitude)`` with a skymap (coordinates ``elevation``,
        ``azimuth``, ``y``, ``x`` along ``latitude``), else ``(time, y)`` (coordinate
        ``x``); ``class`` and ``score`` along ``time``.

    Raises
    ------
    OptionError
        A bad time, elevation or altitude.
    CubeError
        No such station or no frames in the range; ``skymap`` names no stored skymap.
    """
    check_elevation(min_elevation)
    opened = Cube.open(cube, storage_options=storage_options)
    whole, lo, hi = station_rows(opened, station, start, end)
    return keogram_rows(
        opened,
        station,
        whole,
        lo,
        hi,
        min_elevation=min_elevation,
        altitude=altitude,
        skymap=skymap,
        model=model,
    )


def keogram_rows(
    opened: Cube,
    station: str,
    whole: xr.Dataset,
    lo: int,
    hi: int,
    *,
    min_elevation: float = 10.0,
    altitude: float = 110.0,
    skymap: str | None = None,
    model: str | None = None,
) -> xr.DataArray:
    """:func:`keogram` of rows ``lo .. hi`` of a station group already open (``whole``,
    as :func:`~oathcube.views._common.station_rows` gives it): what a caller that keeps
    the group open (``oathcube browse``) asks, without opening it again."""
    check_elevation(min_elevation)
    ds = whole.isel(time=slice(lo, hi))
    require_one_band(ds, opened, station, "keogram")
    times = ds["time"].values
    classes = classes_of(ds, opened, model)
    sky = skymap_for(opened, station, times[0], skymap)
    ny, nx = ds.sizes["y"], ds.sizes["x"]
    attrs: dict[str, Any] = {
        "station": station,
        "model": classes.model or "",
        "long_name": "keogram: frame pixels along the north-south meridian",
        "units": "1",
    }
    if sky is not None:
        el = sky["elevation"].values
        if el.shape != (ny, nx):
            raise OptionError(
                f"skymap {sky.attrs['name']} is {el.shape}, frames are {(ny, nx)}",
                parameter="skymap",
                expected="a skymap of the frames' size, or `skymap` none",
            )
        alts = [float(a) for a in sky["altitude"].values]
        if not any(abs(a - altitude) < 0.5 for a in alts):
            raise OptionError(
                f"altitude {altitude} km", parameter="altitude", expected=f"one of {alts} km"
            )
        usable = el.copy()
        cropped = prepared_mask(ds)
        if cropped is not None:
            usable[~cropped] = np.nan  # the ingest's crop set these to 0: no sky
        rows, cols, angle = meridian_pixels(usable, sky["azimuth"].values, min_elevation)
        lat = sky["latitude"].sel(altitude=altitude, method="nearest").values
        centre = (
            lat[rows, cols] + lat[rows + 1, cols] + lat[rows, cols + 1] + lat[rows + 1, cols + 1]
        ) / 4
        # South at the bottom of the axis: reverse the north-to-south path.
        rows, cols, angle, centre = rows[::-1], cols[::-1], angle[::-1], centre[::-1]
        dim = "latitude"
        coords: dict[str, Any] = {
            "latitude": ("latitude", centre.astype(np.float32), {"units": "degrees_north"}),
            "elevation": ("latitude", el[rows, cols].astype(np.float32), {"units": "degree"}),
            "azimuth": ("latitude", sky["azimuth"].values[rows, cols].astype(np.float32)),
            "meridian_angle": ("latitude", angle.astype(np.float32)),
            "y": ("latitude", rows.astype(np.int16)),
            "x": ("latitude", cols.astype(np.int16)),
        }
        # A skymap not valid at these frames (the nearest, or one named), or a synthetic
        # one: said on every output.
        notes = ["SYNTHETIC"] if int(sky.attrs.get("synthetic", 0)) else []
        if sky.attrs.get("validity_note"):
            notes.append(str(sky.attrs["validity_note"]))
        if notes:
            attrs["skymap_note"] = "; ".join(notes)
        attrs.update(
            skymap=str(sky.attrs["name"]),
            altitude_km=float(altitude),
            min_elevation=float(min_elevation),
        )
    else:
        rows = np.arange(ny)
        cropped = prepared_mask(ds)
        if cropped is not None and cropped[:, nx // 2].any():
            rows = rows[cropped[:, nx // 2]]  # the rows the ingest's crop kept
        cols = np.full(rows.size, nx // 2)
        dim = "y"
        coords = {"y": ("y", rows.astype(np.int16)), "x": ("y", cols.astype(np.int16))}
        attrs.update(skymap="", note="no skymap: the centre column, row 0 = north edge")
        log.info("%s: no skymap, the keogram is the frames' centre column", station)
    # The frames are read a stored chunk at a time and only the meridian kept, so a
    # night of full frames never sits in memory at once (a browsed night, a long range).
    pixels = whole["pixels"]
    step = int((pixels.encoding.get("chunks") or (hi - lo,))[0]) or hi - lo
    values = np.empty((hi - lo, len(rows)), dtype=pixels.dtype)
    # Blocks on the stored chunks' boundaries: each chunk is read once.
    edges = [lo, *range((lo // step + 1) * step, hi, step), hi]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        values[a - lo : b - lo] = pixels.isel(time=slice(a, b)).values[:, rows, cols]
    return xr.DataArray(
        values,
        dims=("time", dim),
        coords={
            "time": times,
            **coords,
            "class": ("time", classes.names.astype(str)),
            "score": ("time", classes.scores.astype(np.float32)),
        },
        name="keogram",
        attrs=attrs,
    )


def _columns(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column edges (matplotlib date numbers) and, per column, the frame index or -1 (gap)."""
    import matplotlib.dates as mdates

    step = cadence(times)
    edges = [times[0]]
    index: list[int] = []
    for i, t in enumerate(times):
        if i and t > edges[-1]:
            edges.append(t)  # a gap longer than 1.5 steps: an empty column
            index.append(-1)
        nxt = times[i + 1] if i + 1 < len(times) else t + step
        width = nxt - t if nxt - t <= 1.5 * step else step
        edges.append(t + width)
        index.append(i)
    return mdates.date2num(np.array(edges, dtype="datetime64[ns]")), np.array(index)


def plot_keogram(keo: xr.DataArray, out: str | os.PathLike[str], title: str | None = None) -> Path:
    """Draw a keogram (from :func:`keogram`) with its class strip, as PNG.

    Returns the path written (via a temporary name, renamed when complete).
    """
    import matplotlib.dates as mdates
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from .figures import class_color

    path = check_output(out, (".png",))
    times = keo["time"].values
    edges, index = _columns(times)
    values = np.asarray(keo.values, dtype=float)
    grid = np.full((values.shape[1], len(index)), np.nan)
    grid[:, index >= 0] = values[index[index >= 0]].T
    names = keo["class"].values.astype(str)
    fig = new_figure(11, 5.2, dpi=110)
    gs = fig.add_gridspec(2, 1, height_ratios=[8, 1], hspace=0.08)
    ax = fig.add_subplot(gs[0])
    strip = fig.add_subplot(gs[1], sharex=ax)
    dim = keo.dims[1]
    k = np.arange(values.shape[1])
    ticks = k[:: max(1, len(k) // 8)]
    ypos = np.arange(values.shape[1] + 1) - 0.5
    lat = keo["latitude"].values.astype(float) if dim == "latitude" else None
    # Latitude on a true scale where it rises pixel by pixel (any skymap's meridian does
    # above the horizon): keograms of two imagers at one site then line up row for row,
    # whatever their pixel scales.  Else (NaN corners at the horizon) one row per pixel.
    on_scale = lat is not None and lat.size > 1 and bool(np.all(np.diff(lat) > 0))
    if on_scale and lat is not None:
        mid = (lat[1:] + lat[:-1]) / 2
        ypos = np.concatenate([[2 * lat[0] - mid[0]], mid, [2 * lat[-1] - mid[-1]]])
    grey = ListedColormap(np.linspace(0, 1, 256)[:, None].repeat(3, 1)).with_extremes(bad="white")
    ax.pcolormesh(edges, ypos, np.ma.masked_invalid(grid), cmap=grey, vmin=0, vmax=255)
    if lat is not None:
        el = keo["elevation"].values
        right = ax.secondary_yaxis("right")
        if on_scale:
            ax.set_ylim(ypos[0], ypos[-1])
            ax.yaxis.set_major_formatter(lambda v, _: f"{v:.1f}\N{DEGREE SIGN}")
            marks = _elevation_marks(el)
            right.set_yticks(lat[marks], [f"{el[i]:.0f}\N{DEGREE SIGN}" for i in marks])
        else:
            ax.set_yticks(ticks, [f"{lat[i]:.1f}\N{DEGREE SIGN}" for i in ticks])
            right.set_yticks(ticks, [f"{el[i]:.0f}\N{DEGREE SIGN}" for i in ticks])
        ax.set_ylabel(f"geographic latitude at {keo.attrs.get('altitude_km', 110):g} km")
        right.set_ylabel("elevation")
    else:
        # Row 0 is the north edge: put it at the top.
        ax.set_yticks(ticks, [str(int(v)) for v in keo["y"].values[ticks]])
        ax.set_ylabel("pixel row of the centre column (north up)")
        ax.invert_yaxis()
    # Frames that do not show the sky: dimmed and hatched.
    hidden = np.isin(names, HIDDEN_SKY)
    for lo, hi in _runs(hidden, index):
        ax.axvspan(
            edges[lo],
            edges[hi],
            facecolor=(1, 1, 1, 0.45),
            edgecolor=(0.85, 0.2, 0.1, 0.9),
            hatch="///",
            linewidth=0,
        )
    present = [c for c in dict.fromkeys(names.tolist())]
    palette = [
        class_color(c, i) if c != "unclassified" else "#ffffff" for i, c in enumerate(present)
    ]
    codes = np.array([present.index(c) for c in names], dtype=float)
    row = np.full(len(index), np.nan)
    row[index >= 0] = codes[index[index >= 0]]
    cmap = ListedColormap(palette).with_extremes(bad="white")
    strip.pcolormesh(
        edges,
        [0, 1],
        np.ma.masked_invalid(row[None]),
        cmap=cmap,
        vmin=-0.5,
        vmax=len(present) - 0.5,
    )
    strip.set_yticks([])
    strip.set_ylabel("class", rotation=0, ha="right", va="center")
    strip.xaxis_date()
    span = (times[-1] - times[0]).astype("timedelta64[s]").astype(int)
    strip.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S" if span < 1200 else "%H:%M"))
    strip.set_xlabel(
        f"UTC, {str(times[0])[:10]}"
        + ("" if str(times[-1])[:10] == str(times[0])[:10] else f" to {str(times[-1])[:10]}")
    )
    ax.tick_params(labelbottom=False)
    handles = [
        Patch(facecolor=palette[i], edgecolor="black", label=c) for i, c in enumerate(present)
    ]
    if hidden.any():
        handles.append(
            Patch(facecolor="white", edgecolor=(0.85, 0.2, 0.1), hatch="///", label="cloudy/moon")
        )
    model = keo.attrs.get("model") or "no model"
    strip.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -1.6),
        ncol=min(len(handles), 7),
        frameon=False,
        fontsize=9,
        title=f"predicted by {model}",
        title_fontsize=9,
    )
    sky = keo.attrs.get("skymap") or "none (centre column)"
    if keo.attrs.get("skymap_note"):
        sky += f" ({keo.attrs['skymap_note']})"
    ax.set_title(title or f"{keo.attrs.get('station', '')} keogram, skymap {sky}")
    fig.subplots_adjust(left=0.1, right=0.9, top=0.92, bottom=0.26)
    return save_figure(fig, path)


def _elevation_marks(elevation: np.ndarray) -> list[int]:
    """Pixels along the meridian to mark with their elevation: the highest, and on either
    side the one nearest 10, 20, 30 and 45 deg (within 3 deg)."""
    top = int(np.nanargmax(elevation))
    marks = {top}
    for side in (np.arange(0, top), np.arange(top + 1, elevation.size)):
        for target in (10.0, 20.0, 30.0, 45.0):
            if side.size:
                i = int(side[np.nanargmin(np.abs(elevation[side] - target))])
                if abs(elevation[i] - target) <= 3.0:
                    marks.add(i)
    return sorted(marks)


def _runs(mask: np.ndarray, index: np.ndarray) -> list[tuple[int, int]]:
    """Column ranges ``[lo, hi)`` (edge indices) where frames in ``mask`` follow each other."""
    out: list[tuple[int, int]] = []
    lo = None
    for col, i in enumerate(index):
        on = i >= 0 and bool(mask[i])
        if on and lo is None:
            lo = col
        if not on and lo is not None:
            out.append((lo, col))
            lo = None
    if lo is not None:
        out.append((lo, len(index)))
    return out


def write_keogram(keo: xr.DataArray, out: str | os.PathLike[str]) -> Path:
    """Write a keogram as PNG (picture) or NetCDF (the DataArray), by the file's suffix."""
    path = check_output(out, KEOGRAM_SUFFIXES)
    if path.suffix.lower() == ".png":
        return plot_keogram(keo, path)
    with replacing(path) as tmp:
        keo.to_netcdf(tmp)
    return path
