"""Per night and station: how often the sky was clear, and how often it showed aurora.

The classes are used as masks: a frame classified ``cloudy`` or ``moon`` does not show
the sky, so it counts against the clear-sky fraction and is left out of the aurora
occurrence:

* ``clear_fraction``    = frames neither cloudy nor moonlit / classified frames;
* ``aurora_occurrence`` = aurora frames (arc, diffuse, discrete) / frames neither cloudy
  nor moonlit (NaN when there are none);
* ``cloudy_fraction``, ``moon_fraction``: their share of the classified frames.

Every night with frames is listed, classified or not: ``n_frames`` counts the frames
the cube holds, ``n_classified`` those the model has classified, and ``hours`` and
``classified_hours`` what each covers (frames times the station's cadence).  The
fractions describe the classified frames only; a night without one has NaN fractions,
and :func:`coverage_notes` says which nights are partly classified or not at all.

A night is labelled by the local date on which it starts: frames are grouped by the
date of (local solar time - 12 h), local solar time being UTC + longitude / 15 h, so a
whole night, evening to morning, falls on one label.  The longitude comes from the
station's skymap, else from :data:`STATION_LONGITUDES` (approximate positions of the
THEMIS sites, enough to place local midnight within minutes).  With a two-class model
(aurora / no aurora) cloudy and moonlit frames cannot be told apart: the clear-sky
fraction is then NaN and the aurora occurrence is over all classified frames.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..cube.schema import prediction_models
from ..cube.store import Cube, CubeLike
from ..errors import CubeError, OptionError
from ..outputs import check_output, replacing
from ..sites import STATION_LONGITUDES, site_of
from ._common import (
    cadence,
    classes_of,
    station_range,
)
from .figures import new_figure, save_figure
from .skymaps import station_skymaps

__all__ = [
    "night_statistics",
    "plot_nights",
    "write_nights",
    "coverage_notes",
    "night_labels",
    "station_longitude",
    "STATION_LONGITUDES",
    "NIGHT_SUFFIXES",
]

log = logging.getLogger(__name__)

NIGHT_SUFFIXES = (".csv", ".nc", ".png")


def station_longitude(cube: Cube, station: str) -> float:
    """The station's longitude (degrees east, -180..180): its skymap's, else its site's.

    Raises
    ------
    OptionError
        Neither a skymap nor a THEMIS site code gives it.
    """
    have = station_skymaps(cube, station)
    if have:
        attrs = cube.group(have[-1]["group"]).attrs
        return (float(str(attrs["site_longitude"])) + 180.0) % 360.0 - 180.0
    if site_of(station) in STATION_LONGITUDES:
        return STATION_LONGITUDES[site_of(station)]
    raise OptionError(
        f"the longitude of station {station!r} is unknown (no skymap, not a THEMIS site)",
        parameter="station",
        expected="a station with a skymap (oathcube ingest SKYMAP.sav) or a THEMIS site code",
    )


def night_labels(times: np.ndarray, longitude: float) -> np.ndarray:
    """The night of each UTC time: the local date on which its night starts.

    That is the date of (local solar time - 12 h), local solar time being UTC +
    ``longitude`` / 15 h, so a whole night, evening to morning, has one label.

    Parameters
    ----------
    times
        ``datetime64`` UTC times.
    longitude
        Degrees east.

    Returns
    -------
    numpy.ndarray
        ``datetime64[D]``, one per time.
    """
    local = np.asarray(times, dtype="datetime64[ns]") + np.timedelta64(
        int(round(longitude / 15.0 * 3600e9)), "ns"
    )
    return (local - np.timedelta64(12, "h")).astype("datetime64[D]")


def night_statistics(
    cube: CubeLike,
    station: str | None = None,
    *,
    model: str | None = None,
    start: Any = None,
    end: Any = None,
    storage_options: dict[str, Any] | None = None,
) -> xr.Dataset:
    """Clear-sky fraction and aurora occurrence per night and station.

    Parameters
    ----------
    cube
        Path, URL or :class:`~oathcube.cube.store.Cube`.
    station
        One station; by default every station group with frames.
    model
        Whose predictions (default: the only model of each station).
    start, end
        Optional time range (inclusive).
    storage_options
        fsspec options of a cube at a URL (credentials, an endpoint), as for
        :meth:`~oathcube.cube.store.Cube.open`; or pass a Cube that carries them.

    Returns
    -------
    xarray.Dataset
        Dimensions ``station`` and ``night`` (the local date a night starts on);
        ``n_frames`` (frames in the cube), ``n_classified`` (frames the model
        classified), ``hours`` and ``classified_hours`` (what each covers: frames
        times the station's cadence), ``clear_fraction``, ``cloudy_fraction``,
        ``moon_fraction``, ``aurora_occurrence`` and ``n_sky`` (classified frames
        that show the sky).  Every night with frames is there: one with no
        classified frame has ``n_classified`` 0 and NaN fractions.  ``hours`` is NaN
        and the counts 0 where a station has no frames that night.

    Raises
    ------
    CubeError
        No station has frames, or none has predictions (run ``oathcube classify``).
    ModelError
        ``model`` names no predictions, or several models classified a station and
        ``model`` is None.
    """
    opened = Cube.open(cube, storage_options=storage_options)
    stations = [station] if station else opened.stations()
    if station:
        opened.require_station(station)
    frames = []
    used: set[str] = set()
    for code in stations:
        ds = opened.station(code)
        if "pixels" not in ds or ds.sizes.get("time", 0) == 0:
            continue
        # The cadence of the whole station: a night's classified stretch may be short.
        step_h = float(cadence(ds["time"].values) / np.timedelta64(1, "h"))
        ds, _, _ = station_range(opened, code, start, end)
        predicted = bool(prediction_models(ds.data_vars))
        # A station that no model has classified yet still has nights: listed, unclassified.
        classes = classes_of(ds, opened, model if predicted else None)
        if classes.model is not None:
            used.add(classes.model)
        times = ds["time"].values
        night = night_labels(times, station_longitude(opened, code))
        six = len(classes.all_names) > 2
        frames.append(
            pd.DataFrame(
                {
                    "station": code,
                    "night": night,
                    "step_h": step_h,
                    "classified": classes.classified(),
                    "cloudy": classes.names == "cloudy",
                    "moon": classes.names == "moon",
                    "hidden": classes.hidden(),
                    "aurora": classes.aurora(),
                    "six": six,
                }
            )
        )
    if not frames:
        raise CubeError(
            "no station has frames", path=opened.location, expected="`oathcube ingest` first"
        )
    if not used:
        raise CubeError(
            f"station {station!r} has no predictions" if station else "no station has predictions",
            path=opened.location,
            expected="`oathcube classify` first",
        )
    table = pd.concat(frames, ignore_index=True)
    # Every frame counts towards n_frames; only classified ones towards the fractions.
    grouped = table.groupby(["station", "night"])
    mine = table[table["classified"]].groupby(["station", "night"])
    n_frames = grouped.size()
    out = pd.DataFrame(
        {
            "n_frames": n_frames,
            "step_h": grouped["step_h"].first(),
            "n_classified": grouped["classified"].sum(),
            "cloudy": mine["cloudy"].sum(),
            "moon": mine["moon"].sum(),
            "hidden": mine["hidden"].sum(),
            "aurora": mine["aurora"].sum(),
            "six": mine["six"].all(),
        },
        index=n_frames.index,
    )
    for name in ("cloudy", "moon", "hidden", "aurora"):
        out[name] = out[name].fillna(0)
    six = out["six"].fillna(False).astype(bool)
    # A night without one classified frame has NaN fractions, never 0 (nothing was seen).
    n = out["n_classified"].astype(float).where(out["n_classified"] > 0)
    n_sky = (out["n_classified"] - out["hidden"]).astype(float)
    result = pd.DataFrame(
        {
            "n_frames": out["n_frames"].astype(np.int64),
            "n_classified": out["n_classified"].astype(np.int64),
            "n_sky": n_sky.astype(np.int64),
            "hours": (out["n_frames"] * out["step_h"]).astype(np.float32),
            "classified_hours": (out["n_classified"] * out["step_h"]).astype(np.float32),
            "clear_fraction": np.where(six, n_sky / n, np.nan).astype(np.float32),
            "cloudy_fraction": np.where(six, out["cloudy"] / n, np.nan).astype(np.float32),
            "moon_fraction": np.where(six, out["moon"] / n, np.nan).astype(np.float32),
            "aurora_occurrence": (out["aurora"] / n_sky.where(n_sky > 0)).astype(np.float32),
        },
        index=out.index,
    )
    ds = xr.Dataset.from_dataframe(result)
    ds["night"] = ds["night"].astype("datetime64[ns]")
    for name in ("n_frames", "n_classified", "n_sky"):
        ds[name] = ds[name].fillna(0).astype(np.int64)
    ds["n_frames"].attrs["long_name"] = "frames in the cube"
    ds["n_classified"].attrs["long_name"] = "frames the model has classified"
    ds["hours"].attrs.update(long_name="hours of frames (frames x cadence)", units="h")
    ds["classified_hours"].attrs.update(
        long_name="hours of classified frames (classified frames x cadence)", units="h"
    )
    ds["clear_fraction"].attrs["long_name"] = (
        "frames neither cloudy nor moonlit / classified frames"
    )
    ds["aurora_occurrence"].attrs["long_name"] = "aurora frames / frames neither cloudy nor moonlit"
    ds["night"].attrs["long_name"] = "local date on which the night starts"
    ds.attrs.update(
        {
            "model": ", ".join(sorted(used)),
            "cube": opened.location,
            "definition": __doc__.split("\n\n")[1].strip() if __doc__ else "",
        }
    )
    return ds


def _span(hours: float) -> str:
    """A duration as people read it: seconds, minutes or hours."""
    seconds = hours * 3600.0
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if hours < 1 else f"{hours:.2f} h"


def coverage_notes(stats: xr.Dataset) -> list[str]:
    """One line for each night that is only partly classified, or not classified at all.

    The fractions of such a night describe its classified frames only; users must
    know that before they compare nights.
    """
    notes = []
    for code in stats["station"].values:
        row = stats.sel(station=code)
        for k, night in enumerate(pd.to_datetime(row["night"].values)):
            total, done = int(row["n_frames"].values[k]), int(row["n_classified"].values[k])
            if total == 0 or done == total:
                continue
            hours = float(row["hours"].values[k])
            label = f"{code} night {night:%Y-%m-%d}"
            if done == 0:
                notes.append(
                    f"{label}: not classified ({total} frames, {_span(hours)}): no fractions; "
                    f"run `oathcube classify --station {code}` for it"
                )
            else:
                part = float(row["classified_hours"].values[k])
                notes.append(
                    f"{label}: only partly classified, {done} of {total} frames "
                    f"({_span(part)} of {_span(hours)}): its fractions describe those frames only"
                )
    return notes


def plot_nights(stats: xr.Dataset, out: str | os.PathLike[str], title: str | None = None) -> Path:
    """Bars per night: clear-sky fraction and aurora occurrence, one row per station."""
    path = check_output(out, (".png",))
    stations = [str(s) for s in stats["station"].values]
    nights = pd.to_datetime(stats["night"].values)
    fig = new_figure(max(6.0, 1.0 + 0.5 * len(nights)), 2.6 * len(stations) + 1.0, dpi=110)
    x = np.arange(len(nights))
    for k, code in enumerate(stations):
        ax = fig.add_subplot(len(stations), 1, k + 1)
        row = stats.sel(station=code)
        clear = row["clear_fraction"].values
        aurora = row["aurora_occurrence"].values
        ax.bar(x - 0.2, np.nan_to_num(clear), width=0.4, color="#0072B2", label="clear sky")
        ax.bar(
            x + 0.2,
            np.nan_to_num(aurora),
            width=0.4,
            color="#009E73",
            label="aurora (of clear-sky frames)",
        )
        counts = zip(clear, row["n_frames"].values, row["n_classified"].values, strict=True)
        for i, (c, n, done) in enumerate(counts):
            if n == 0:
                ax.text(i, 0.02, "no frames", ha="center", fontsize=8, rotation=90)
            elif done == 0:
                ax.text(i, 0.02, "not classified", ha="center", fontsize=8, rotation=90)
            elif not np.isfinite(c):
                ax.text(i - 0.2, 0.02, "n/a", ha="center", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(f"{code}\nfraction")
        for i, (c, a) in enumerate(zip(clear, aurora, strict=True)):
            for dx, v in ((-0.2, c), (0.2, a)):
                if np.isfinite(v):
                    ax.text(i + dx, v + 0.01, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
        ax.set_xlim(-0.7, len(nights) - 0.3)
        # A partly classified night's bars describe only part of it: the tick says how much.
        ticks = [
            d.strftime("%Y-%m-%d") + (f"\n{k}/{n} classified" if 0 < k < n else "")
            for d, k, n in zip(
                nights, row["n_classified"].values, row["n_frames"].values, strict=True
            )
        ]
        ax.set_xticks(x, ticks, rotation=30, ha="right")
        ax.set_xlabel("night (local date it starts on)")
        ax.grid(axis="y", alpha=0.3)
        if k == 0:
            ax.legend(loc="upper right", fontsize=8, frameon=False)
            ax.set_title(title or "clear sky and aurora occurrence per night")
    fig.tight_layout()
    return save_figure(fig, path)


def write_nights(stats: xr.Dataset, out: str | os.PathLike[str]) -> Path:
    """Write night statistics as CSV, NetCDF or a PNG plot, by the file's suffix."""
    path = check_output(out, NIGHT_SUFFIXES)
    suffix = path.suffix.lower()
    if suffix == ".png":
        return plot_nights(stats, path)
    with replacing(path) as tmp:
        if suffix == ".csv":
            stats.to_dataframe().dropna(subset=["hours"]).to_csv(tmp)
        else:
            stats.to_netcdf(tmp)
    return path
