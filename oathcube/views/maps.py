"""Frames drawn on geographic latitude and longitude at an emission altitude.

A skymap gives the latitude and longitude of every pixel's four corners at 90, 110 and
150 km (:mod:`oathcube.views.skymaps`); a frame (or the mean of the frames in a time range)
is drawn cell by cell on those corners with :meth:`matplotlib.axes.Axes.pcolormesh`.
Pixels below ``min_elevation`` (default 10 deg, where one pixel spans tens of km and
the horizon's trees and lights sit) and pixels outside the field of view are left out.
Longitudes are shown in -180..180 deg east.  No coastlines: cartopy would need map
data that cannot be downloaded here, so the map is a plain lat/lon grid with the
station marked.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..cube.store import Cube, CubeLike
from ..errors import CubeError, OptionError
from ..outputs import check_output, replacing
from ..times import parse_time
from ._common import (
    cadence,
    classes_of,
    prepared_mask,
    require_one_band,
    station_range,
)
from .figures import new_figure, save_figure
from .keograms import check_elevation
from .skymaps import skymap_for

__all__ = ["sky_map", "plot_map", "write_map", "MAP_SUFFIXES"]

log = logging.getLogger(__name__)

MAP_SUFFIXES = (".png", ".nc")


def sky_map(
    cube: CubeLike,
    station: str,
    *,
    time: Any = None,
    start: Any = None,
    end: Any = None,
    altitude: float = 110.0,
    min_elevation: float = 10.0,
    skymap: str | None = None,
    model: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> xr.Dataset:
    """One frame, or the mean of a time range, on geographic coordinates.

    Parameters
    ----------
    cube
        Path, URL or :class:`~oathcube.cube.store.Cube`.
    station
        Station code; it must have a skymap.
    time
        The frame nearest this time; or give ``start`` and ``end`` for a mean.
    start, end
        Time range (inclusive) whose frames are averaged.
    altitude
        Emission altitude in km: one of the skymap's (90, 110, 150).
    min_elevation
        Leave out pixels below this elevation (degrees).
    skymap
        None: the skymap valid at the frame's time (else the nearest in time, with a
        warning and a ``skymap_note``); or a stored skymap's name/date.
    model
        Whose predictions are reported (default: the only one; none is fine).
    storage_options
        fsspec options of a cube at a URL (credentials, an endpoint), as for
        :meth:`~oathcube.cube.store.Cube.open`; or pass a Cube that carries them.

    Returns
    -------
    xarray.Dataset
        ``value(y, x)`` (float32, NaN where left out), ``latitude`` and ``longitude``
        ``(y_corner, x_corner)`` (longitude in -180..180), attributes ``time`` or
        ``start``/``end``, ``n_frames``, ``classes`` (counts per predicted class),
        ``altitude_km``, ``skymap``, site position.

    Raises
    ------
    OptionError
        Both or neither of ``time`` and a range; a bad altitude or elevation; no frame
        within two frame steps of ``time``; ``skymap="none"``.
    CubeError
        No frames, or no skymap for the station.
    """
    check_elevation(min_elevation)
    if (time is None) == (start is None and end is None):
        raise OptionError(
            "give either `time` (one frame) or `start` and `end` (a mean)",
            parameter="time",
            expected="one of the two",
        )
    if skymap is not None and skymap.lower() == "none":
        raise OptionError(
            "a map needs a skymap: `skymap` none draws nothing",
            parameter="skymap",
            expected="a stored skymap's name or start date, or no `skymap`",
        )
    opened = Cube.open(cube, storage_options=storage_options)
    if time is not None:
        ds = nearest_frame(opened, station, time)
    else:
        ds, _, _ = station_range(opened, station, start, end)
        require_one_band(ds, opened, station, "map")
    times = ds["time"].values
    sky = skymap_for(opened, station, times[0], skymap)
    if sky is None:
        raise CubeError(
            f"station {station!r} has no skymap: a map needs one",
            path=opened.location,
            expected="`oathcube ingest themis_skymap_<site>_<date>-+_vXX.sav` first",
        )
    alts = [float(a) for a in sky["altitude"].values]
    if not any(abs(a - altitude) < 0.5 for a in alts):
        raise OptionError(
            f"altitude {altitude} km", parameter="altitude", expected=f"one of {alts} km"
        )
    el = sky["elevation"].values
    if el.shape != tuple(ds["pixels"].shape[1:]):
        raise OptionError(
            f"skymap {sky.attrs['name']} is {el.shape}, frames are {ds['pixels'].shape[1:]}",
            parameter="skymap",
            expected="a skymap of the frames' size",
        )
    lat = sky["latitude"].sel(altitude=altitude, method="nearest").values.astype(np.float64)
    lon = sky["longitude"].sel(altitude=altitude, method="nearest").values.astype(np.float64)
    lon = np.where(np.isfinite(lon), (lon + 180.0) % 360.0 - 180.0, np.nan)
    corners_ok = np.isfinite(lat) & np.isfinite(lon)
    cell_ok = corners_ok[:-1, :-1] & corners_ok[1:, :-1] & corners_ok[:-1, 1:] & corners_ok[1:, 1:]
    with np.errstate(invalid="ignore"):
        keep = cell_ok & (el >= min_elevation)
    cropped = prepared_mask(ds)
    if cropped is not None:
        keep &= cropped  # pixels the ingest's crop set to 0 are no sky
    # Mean in float64 over the frames, read once (a range is a few thousand frames at most).
    frames = ds["pixels"].values.astype(np.float64)
    value = np.where(keep, frames.mean(axis=0), np.nan).astype(np.float32)
    # pcolormesh needs finite corners everywhere: a corner outside the field of view
    # takes the position of the nearest finite corner, so that the cells left out
    # (NaN, not drawn) collapse at the edge instead of reaching across the map.
    from scipy import ndimage

    site_lon = (float(sky.attrs["site_longitude"]) + 180.0) % 360.0 - 180.0
    if corners_ok.any():
        _, (iy, ix) = ndimage.distance_transform_edt(~corners_ok, return_indices=True)
        lat, lon = lat[iy, ix], lon[iy, ix]
    classes = classes_of(ds, opened, model)
    counts = {
        str(k): int(v)
        for k, v in zip(*np.unique(classes.names.astype(str), return_counts=True), strict=True)
    }
    attrs: dict[str, Any] = {
        "station": station,
        "altitude_km": float(altitude),
        "min_elevation": float(min_elevation),
        "skymap": str(sky.attrs["name"]),
        "synthetic_skymap": int(sky.attrs.get("synthetic", 0)),
        "site_latitude": float(sky.attrs["site_latitude"]),
        "site_longitude": site_lon,
        "n_frames": int(len(times)),
        "first_time": str(times[0]),
        "last_time": str(times[-1]),
        "model": classes.model or "",
        "classes": ", ".join(f"{k} {v}" for k, v in counts.items()),
    }
    if len(times) == 1:
        attrs["score"] = float(classes.scores[0])
    if sky.attrs.get("validity_note"):
        # A skymap not valid at these frames (the nearest, or one named): on every output.
        attrs["skymap_note"] = str(sky.attrs["validity_note"])
    return xr.Dataset(
        {
            "value": (("y", "x"), value, {"long_name": "mean prepared frame value", "units": "1"}),
            "latitude": (
                ("y_corner", "x_corner"),
                lat.astype(np.float32),
                {"units": "degrees_north"},
            ),
            "longitude": (
                ("y_corner", "x_corner"),
                lon.astype(np.float32),
                {"units": "degrees_east"},
            ),
        },
        attrs=attrs,
    )


def nearest_frame(cube: Cube, station: str, time: Any) -> xr.Dataset:
    """The station's one frame nearest ``time``, refused when no frame is near it.

    Parameters
    ----------
    cube
        The opened cube.
    station
        Station code.
    time
        The requested time, as :func:`~oathcube.times.parse_time` takes it (``--time``).

    Returns
    -------
    xarray.Dataset
        The station's group cut to that one frame (lazily loaded).

    Raises
    ------
    OptionError
        ``time`` is not a time, or the nearest frame is more than two frame steps
        (:func:`cadence`) from it: a map of that frame would show another moment than
        the one asked for.
    """
    t = parse_time(time, "time")
    if t is None:
        raise OptionError("no time given", parameter="time", expected="a UTC time")
    ds, _, _ = station_range(cube, station)
    times = ds["time"].values
    gaps = np.abs((times - t).astype("timedelta64[ns]").astype(np.int64))
    i = int(np.argmin(gaps))
    step = cadence(times)
    if gaps[i] > 2 * step.astype("timedelta64[ns]").astype(np.int64):
        raise OptionError(
            f"no frame of {station} near {_when(t)}: the nearest is {_when(times[i])}",
            parameter="time",
            expected=f"a time within two frame steps ({_seconds(step)}) of a frame; "
            f"{station} has frames from {_when(times[0])} to {_when(times[-1])}",
        )
    return ds.isel(time=slice(i, i + 1))


def _seconds(step: np.timedelta64) -> str:
    """A frame step as ``3 s`` (three digits)."""
    return f"{step / np.timedelta64(1, 's'):.3g} s"


def _when(t: np.datetime64) -> str:
    """A time to the millisecond, as frames are stamped; ``.000`` left off."""
    return str(np.datetime_as_string(t, unit="ms")).removesuffix(".000")


def plot_map(mapped: xr.Dataset, out: str | os.PathLike[str], title: str | None = None) -> Path:
    """Draw :func:`sky_map`'s result on a latitude/longitude grid, as PNG."""
    path = check_output(out, (".png",))
    value = np.ma.masked_invalid(mapped["value"].values)
    lat, lon = mapped["latitude"].values, mapped["longitude"].values
    fig = new_figure(7.5, 6.8, dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    mesh = ax.pcolormesh(lon, lat, value, cmap="gray", vmin=0, vmax=255, shading="flat")
    shown = ~np.ma.getmaskarray(value)
    cells_lat = lat[:-1, :-1][shown]
    cells_lon = lon[:-1, :-1][shown]
    if cells_lat.size:
        pad = 0.3
        ax.set_xlim(cells_lon.min() - pad, cells_lon.max() + pad)
        ax.set_ylim(cells_lat.min() - pad / 3, cells_lat.max() + pad / 3)
    site_lat, site_lon = mapped.attrs["site_latitude"], mapped.attrs["site_longitude"]
    ax.plot(site_lon, site_lat, marker="^", color="red", markersize=9, linestyle="none")
    ax.annotate(
        mapped.attrs["station"],
        (site_lon, site_lat),
        xytext=(6, 6),
        textcoords="offset points",
        color="red",
    )
    # Degrees of longitude shrink with cos(latitude): keep the map's shape true.
    ax.set_aspect(1.0 / np.cos(np.radians(site_lat)))
    ax.set_facecolor("#dde3ea")
    ax.grid(True, color="white", linewidth=0.6)
    ax.set_xlabel("geographic longitude (deg east)")
    ax.set_ylabel("geographic latitude (deg north)")
    fig.colorbar(mesh, ax=ax, shrink=0.8, label="prepared frame value")
    n = mapped.attrs["n_frames"]
    first, last = mapped.attrs["first_time"][:19], mapped.attrs["last_time"][11:19]
    when = f"{first} UTC" if n == 1 else f"mean of {n} frames {first} to {last} UTC"
    label = mapped.attrs.get("classes", "")
    if mapped.attrs.get("model"):
        label = f"{mapped.attrs['model']}: {label}"
        if n == 1 and np.isfinite(mapped.attrs.get("score", np.nan)):
            label += f" (score {mapped.attrs['score']:+.2f})"
    sky = (
        "SYNTHETIC skymap"
        if mapped.attrs.get("synthetic_skymap")
        else f"skymap {mapped.attrs['skymap']}"
    )
    if mapped.attrs.get("skymap_note"):
        sky += f" ({mapped.attrs['skymap_note']})"
    ax.set_title(
        title
        or f"{mapped.attrs['station']} at {mapped.attrs['altitude_km']:g} km, "
        f"elevation >= {mapped.attrs['min_elevation']:g} deg\n{sky}\n{when}\n{label}",
        fontsize=10,
    )
    fig.subplots_adjust(left=0.12, right=0.95, top=0.84, bottom=0.1)
    return save_figure(fig, path)


def write_map(mapped: xr.Dataset, out: str | os.PathLike[str]) -> Path:
    """Write a mapped frame as PNG (picture) or NetCDF (the Dataset), by the suffix."""
    path = check_output(out, MAP_SUFFIXES)
    if path.suffix.lower() == ".png":
        return plot_map(mapped, path)
    with replacing(path) as tmp:
        mapped.to_netcdf(tmp)
    return path
