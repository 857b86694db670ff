"""Class occurrence per time bin at one station: the time series of a model's classes.

The station's arrays are read through the chunk check of the views
(:func:`oathcube.cube.checked.checked`): a damaged chunk of predictions or of the
frames shown beside the plot is named, not read as "unclassified" or a black frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .cube.checked import checked
from .cube.schema import prediction_names, station_group
from .cube.store import Cube, CubeLike
from .errors import CubeError, ModelError
from .times import check_freq, parse_time

__all__ = ["timeline", "sample_frames", "station_series"]


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
    have = sorted(
        str(v).removeprefix("predicted_") for v in ds.data_vars if str(v).startswith("predicted_")
    )
    if model is None:
        if len(have) != 1:
            raise ModelError(
                "say which model's predictions to use" if have else "no predictions yet",
                path=where,
                expected=f"--model one of {', '.join(have)}"
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
    freq: str = "10min",
    *,
    model: str | None = None,
    start: Any = None,
    end: Any = None,
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

    Returns
    -------
    xarray.Dataset
        ``count(time, class)``, ``fraction(time, class)`` (NaN in empty bins),
        ``n_frames(time)``; ``time`` holds the bin starts.
    """
    check_freq(freq)
    t0, t1 = parse_time(start, "--start"), parse_time(end, "--end")
    cube = Cube.open(cube)
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
        attrs={"station": station, "model": name, "freq": freq, "cube": cube.location},
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
