"""What every view needs: a station's frames in a time range, their classes, and output checks.

Every array a view reads goes through :meth:`~oathcube.cube.store.Cube.read_checked` (see
:func:`~oathcube.cube.checked.checked`): a pixel chunk missing from the store or cut short
is an error that names the chunk, never black columns or black frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from ..cube.checked import checked
from ..cube.schema import prediction_models, prediction_names, station_group
from ..cube.store import Cube
from ..errors import CubeError, ModelError, OptionError
from ..labels import CLASS2_NAMES, CLASS6_NAMES
from ..times import parse_time, rows_between

__all__ = [
    "HIDDEN_SKY",
    "Classes",
    "station_range",
    "station_rows",
    "classes_of",
    "class_values",
    "cadence",
    "prepared_mask",
]

#: Classes whose frames do not show the sky: hatched in keograms, left out of statistics.
HIDDEN_SKY: tuple[str, ...] = ("cloudy", "moon")
_AURORA: tuple[str, ...] = ("arc", "diffuse", "discrete", "aurora")


@dataclass(frozen=True)
class Classes:
    """A model's per-frame classes over a station's frames (``name`` None: not classified).

    Attributes
    ----------
    model
        The model's name, or None when the station has no predictions.
    names
        ``(time,)`` class name of each frame (``unclassified`` where -1).
    scores
        ``(time,)`` the decision score of the predicted class (NaN where unclassified).
    all_names
        Every class of the model, in its order.
    """

    model: str | None
    names: np.ndarray
    scores: np.ndarray
    all_names: tuple[str, ...]

    def hidden(self) -> np.ndarray:
        """Frames that do not show the sky (cloudy or moonlit)."""
        return np.isin(self.names, HIDDEN_SKY)

    def aurora(self) -> np.ndarray:
        """Frames classified as aurora (arc, diffuse, discrete; or ``aurora``)."""
        return np.isin(self.names, _AURORA)

    def classified(self) -> np.ndarray:
        """Frames the model has classified."""
        return self.names != "unclassified"


def require_one_band(ds: xr.Dataset, cube: Cube, station: str, view: str) -> None:
    """Refuse, in one line, a view that draws one brightness a pixel of an RGB station.

    Keograms, movies and maps draw greyscale frames; how three bands should become one
    there is a choice the view would otherwise make silently (timelines and nightly
    statistics, which draw classes, take RGB stations as they are).
    """
    if "band" in ds["pixels"].dims:
        raise CubeError(
            f"station {station!r} holds RGB frames (3 bands): a {view} draws greyscale "
            "frames only, and picking or mixing bands for it is not done implicitly",
            path=cube.where(station_group(station)),
            expected=f"a greyscale station for the {view}; `timeline` and `nights` take RGB",
        )


def station_rows(
    cube: Cube, station: str, start: Any = None, end: Any = None
) -> tuple[xr.Dataset, int, int]:
    """A station group's whole frames (lazily loaded) and the rows from ``start`` to
    ``end`` (inclusive): ``ds.isel(time=slice(lo, hi))`` is the range.

    Raises
    ------
    OptionError
        A bad time, or ``end`` before ``start``.
    CubeError
        No such station, no frames, or no frames in the range.
    """
    t0, t1 = parse_time(start, "start"), parse_time(end, "end")
    if t0 is not None and t1 is not None and t1 < t0:
        raise OptionError(f"`end` {end} is before `start` {start}", parameter="end")
    ds = checked(cube.station(station), cube, station_group(station))
    if "pixels" not in ds or ds.sizes.get("time", 0) == 0:
        raise CubeError(
            f"station {station!r} has no frames",
            path=cube.where(station_group(station)),
            expected="`oathcube ingest` of its CDF/PGM files first",
        )
    times = ds["time"].values
    lo, hi = rows_between(times, t0, t1)
    if hi <= lo:
        raise CubeError(
            f"no frames of {station} between {start} and {end}",
            path=cube.where(station_group(station)),
            expected=f"a range within {times[0]} .. {times[-1]}",
        )
    return ds, lo, hi


def station_range(
    cube: Cube, station: str, start: Any = None, end: Any = None
) -> tuple[xr.Dataset, np.datetime64 | None, np.datetime64 | None]:
    """A station group's frames from ``start`` to ``end`` (inclusive), lazily loaded,
    and the two times parsed; it raises as :func:`station_rows` does."""
    ds, lo, hi = station_rows(cube, station, start, end)
    return ds.isel(time=slice(lo, hi)), parse_time(start, "start"), parse_time(end, "end")


def classes_of(ds: xr.Dataset, cube: Cube, model: str | None = None) -> Classes:
    """The predicted classes (and scores) of ``ds``'s frames; no model is fine.

    Raises
    ------
    ModelError
        ``model`` names no predictions in the group, or several models classified it
        and ``model`` is None.
    """
    have = prediction_models(ds.data_vars)
    n = ds.sizes["time"]
    if model is None:
        if not have:
            return Classes(None, np.full(n, "unclassified", dtype=object), np.full(n, np.nan), ())
        if len(have) > 1:
            raise ModelError(
                "several models classified this station: say which",
                path=cube.location,
                expected=f"`model` one of {', '.join(have)}",
            )
        model = have[0]
    if model not in have:
        raise ModelError(
            f"no predictions of model {model!r}",
            path=cube.location,
            expected=f"one of {', '.join(have) or '(none: run oathcube classify)'}",
        )
    pred_name, score_name, _ = prediction_names(model)
    pred = ds[pred_name].values.astype(np.int64)
    values, meanings = class_values(ds, model)
    # Each frame's position in ``values`` (-1: a code the model does not have), found
    # by a sorted search: a station-year holds millions of frames.
    codes = np.asarray(values, dtype=np.int64)
    order = np.argsort(codes, kind="stable")
    at = np.minimum(np.searchsorted(codes[order], pred), len(codes) - 1)
    column = np.where(codes[order][at] == pred, order[at], -1)
    table = np.array([*meanings, "unclassified"], dtype=object)
    names = table[np.where(column >= 0, column, len(meanings))]
    scores = np.full(n, np.nan)
    if score_name in ds:
        raw = np.asarray(ds[score_name].values, dtype=np.float64)
        if raw.ndim == 2:
            ok = (column >= 0) & (column < raw.shape[1])
            scores[ok] = raw[np.flatnonzero(ok), column[ok]]
    return Classes(model, names, scores, tuple(meanings))


def class_values(ds: xr.Dataset, model: str) -> tuple[list[int], list[str]]:
    """The codes ``model``'s predictions hold in ``ds``, and the class each stands for."""
    pred_name, _, class_dim = prediction_names(model)
    values = [int(v) for v in np.atleast_1d(ds[pred_name].attrs.get("flag_values", []))]
    meanings = str(ds[pred_name].attrs.get("flag_meanings", "")).split()
    if len(values) != len(meanings) or not values:
        # Older cubes: the class dimension holds the names in score order.
        meanings = [str(c) for c in ds[class_dim].values]
        target = CLASS6_NAMES if len(meanings) == len(CLASS6_NAMES) else CLASS2_NAMES
        values = [target.index(m) if m in target else i for i, m in enumerate(meanings)]
    return values, meanings


def cadence(times: np.ndarray) -> np.timedelta64:
    """The usual spacing of frames (the median step; 3 s for fewer than two frames)."""
    if len(times) < 2:
        return np.timedelta64(3, "s")
    return np.median(np.diff(times).astype("timedelta64[ns]").astype(np.int64)).astype(
        "timedelta64[ns]"
    )


def prepared_mask(ds: xr.Dataset) -> np.ndarray | None:
    """The pixels the station's preparation kept (True), or None when it cannot be told.

    Ingest sets pixels outside the preparation's crop to 0; views leave those out
    rather than show them as black sky.
    """
    from ..rawprep import RawPreparation

    text = ds.attrs.get("preparation")
    if not text:
        return None
    raw = ds.attrs.get("raw_frames")
    try:
        prep = RawPreparation.from_record(text)
        if isinstance(raw, dict):  # what ingest recorded of the frames as read
            if not raw.get("raw"):
                return None  # image folders: stored as read, no preparation applied
            ny, nx = raw["shape"]
            return np.asarray(prep.stored_mask((int(ny), int(nx))))
        # Older stations record nothing: the stored size is the raw one, or no mask.
        shape = (ds.sizes["y"], ds.sizes["x"])
        if prep.out_size != shape[0] or shape[0] != shape[1]:
            return None
        return np.asarray(prep.stored_mask(shape))
    except Exception:  # a skymap file the preparation named may be gone: no mask then
        return None
