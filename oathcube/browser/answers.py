"""What the browser shows, as answers to a fixed set of read-only requests on one cube.

Every view of ``oathcube browse`` (the page, :mod:`oathcube.browser.app`) and of the
notebook widget (:mod:`oathcube.browser.widget`) is one of :data:`ROUTES`: a name and
a few named parameters, each checked here before anything is read.  No request names a
file, a group or code: the cube is the one :class:`Browser` was given, opened read-only,
and a request can only pick a station, a night, a time, a class and sizes within it.

A request that cannot be answered gets an :class:`Answer` with a 4xx status and one line
saying why (an unknown station, a time with no frame, a malformed value); nothing here
lets a traceback reach the page.  Reads are as small as the view: a night reads its own
rows (its keogram, its frames' classes), a frame or a thumbnail one row, the night list
only the predictions; what is kept between requests is bounded (one entry per station:
its times and night boundaries) so memory stays flat while a user clicks through nights.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..cube.checked import checked
from ..cube.schema import prediction_models, prediction_names, station_group
from ..cube.store import Cube, CubeLike
from ..errors import CubeError, FeatureError, ModelError, OathcubeError, OptionError
from ..times import parse_time
from ..views._common import cadence, class_values, classes_of
from ..views.figures import class_color
from ..views.keograms import keogram_rows
from ..views.movies import movie
from ..views.nights import night_labels, night_statistics, station_longitude
from ..views.timelines import class_bins

__all__ = ["Answer", "Browser", "BrowseError", "ROUTES", "OPENING", "FREQS", "MAX_MOVIE_FRAMES"]

log = logging.getLogger(__name__)

#: The timeline bin widths a request may ask for; ``auto`` (the default) is the
#: narrowest that gives a night at most :data:`AUTO_BINS` bins.
FREQS: tuple[str, ...] = ("auto", "1min", "2min", "5min", "10min", "15min", "30min", "1h")
AUTO_BINS = 96

#: Frames a movie download may hold: a movie of a chosen range, not of a station-year.
MAX_MOVIE_FRAMES = 3_000

#: Largest thumbnail or frame side a request may ask for, in pixels.
MAX_SIZE = 1024

#: Hits a similar-skies request may ask for.
MAX_K = 60

#: Longest value of any parameter (times, codes and class names are far shorter).
MAX_VALUE = 64

#: What a page or a widget may be asked to open on.
OPENING: tuple[str, ...] = ("station", "night", "time")

#: Stored pixel chunks kept decoded for frames and thumbnails (about 32 MB each).
CACHED_CHUNKS = 2

#: Frames before and after the shown one, as thumbnails.
NEIGHBOURS = 3


class BrowseError(OptionError):
    """A request that cannot be answered: its HTTP status and one line saying why.

    An :class:`~oathcube.errors.OptionError` (a ``ValueError``), as every bad value is,
    for Python callers of :class:`Browser`'s methods.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Answer:
    """One answer: status, media type and body (and a file name for a download)."""

    status: int
    media_type: str
    body: bytes
    filename: str | None = None

    @classmethod
    def of_json(cls, value: Any, status: int = 200) -> Answer:
        """``value`` as JSON (NaN written as null)."""
        return cls(status, "application/json", json.dumps(_plain(value)).encode())

    @classmethod
    def of_error(cls, status: int, message: str) -> Answer:
        """A refusal: ``{"error": message}`` with a 4xx (or 500) status."""
        return cls.of_json({"error": message}, status)

    def json(self) -> Any:
        """The body decoded, for JSON answers."""
        return json.loads(self.body)


def _plain(value: Any) -> Any:
    """JSON-ready: NaN and infinities as None, numpy scalars as Python ones."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class Route:
    """A request's name, its parameters (required and optional) and its media type."""

    required: tuple[str, ...]
    optional: tuple[str, ...]
    media_type: str


#: Every request the browser answers; nothing else is served.
ROUTES: dict[str, Route] = {
    "stations": Route((), (), "application/json"),
    "nights": Route(("station",), ("start", "end", "class"), "application/json"),
    "night": Route(("station", "night"), ("freq",), "application/json"),
    "frame": Route(("station", "time"), (), "application/json"),
    "frame.png": Route(("station", "time"), ("size", "download"), "image/png"),
    "similar": Route(("station", "time"), ("k", "class"), "application/json"),
    "timeline.csv": Route(("station", "night"), ("freq",), "text/csv"),
    "movie": Route(("station", "start", "end"), ("format", "fps"), "video"),
}


def _utc(t: np.datetime64) -> str:
    """A time as the page shows it: ISO 8601 UTC to the millisecond, with Z."""
    return str(np.datetime_as_string(np.asarray(t, dtype="datetime64[ms]"), unit="ms")) + "Z"


def _ms(times: np.ndarray) -> list[int]:
    """Times as integer milliseconds since 1970 (what JavaScript's Date takes)."""
    return [int(v) for v in np.asarray(times, dtype="datetime64[ms]").astype(np.int64)]


@dataclass
class _Station:
    """What one station's views share: read once per session, bounded in size."""

    code: str
    ds: xr.Dataset
    times: np.ndarray
    model: str | None
    nights: np.ndarray  # datetime64[D], one per night, ascending
    bounds: np.ndarray  # rows: night i holds rows bounds[i] .. bounds[i + 1]
    class_codes: tuple[int, ...]
    class_names: tuple[str, ...]
    step: np.timedelta64  # the station's cadence (median frame spacing)
    bins: tuple[list[str], list[int]] | None  # timeline classes and their codes
    stats: pd.DataFrame | None = field(default=None)
    # The predicted class code of every frame (-1: unclassified), read when first needed
    # (a class filter, a timeline): listing stations reads no predictions.
    all_codes: np.ndarray | None = field(default=None)


class Browser:
    """Read-only answers about one cube, for the page and the notebook widget.

    Parameters
    ----------
    cube
        Path, URL or :class:`~oathcube.cube.store.Cube`; opened read-only (a Cube
        opened for writing is opened again read-only).
    model
        Whose predictions give the classes (default: per station, the only model that
        classified it; a station several models classified is refused until one is
        named).
    storage_options
        fsspec options of a cube at a URL.

    Raises
    ------
    CubeError
        The cube is not there, not written by oathcube, or its writer did not finish.

    Examples
    --------
    >>> b = Browser("oath.zarr")                                    # doctest: +SKIP
    >>> b.answer("nights", {"station": "fsmi"}).json()              # doctest: +SKIP
    """

    def __init__(
        self,
        cube: CubeLike,
        *,
        model: str | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        where = cube.location if isinstance(cube, Cube) else cube
        options = cube.storage_options if isinstance(cube, Cube) else storage_options
        self.cube = Cube.open(where, "r", storage_options=options)
        self.cube.require_complete()
        self.model = model
        if model is not None and model not in self.cube.models():
            raise ModelError(
                f"no model {model!r} in the cube",
                path=self.cube.location,
                expected=f"one of {', '.join(self.cube.models()) or '(none)'}",
            )
        self._stations: dict[str, _Station] = {}
        self._lock = threading.Lock()
        self._chunks: dict[tuple[str, int], np.ndarray] = {}
        self._chunk_lock = threading.Lock()

    # -- the one entry point of the page and the widget -----------------------------

    def answer(self, route: str, params: Mapping[str, str]) -> Answer:
        """Answer one request: ``route`` one of :data:`ROUTES`, ``params`` its values.

        Never raises for a bad request: the answer carries a 4xx status and one line
        (a 500 and one line for a fault of the cube or of oathcube, logged).
        """
        try:
            spec = ROUTES.get(route)
            if spec is None:
                raise BrowseError(404, f"no such view {route!r}: one of {', '.join(ROUTES)}")
            args = _checked_params(route, spec, params)
            return self._dispatch(route, args)
        except BrowseError as err:
            return Answer.of_error(err.status, err.message)
        except OptionError as err:
            return Answer.of_error(400, str(err))
        except (CubeError, FeatureError, ModelError) as err:
            return Answer.of_error(404, str(err))
        except OathcubeError as err:
            return Answer.of_error(400, str(err))
        except Exception as err:  # a fault, not the request's: one line, logged whole
            log.exception("browse: %s %s failed", route, dict(params))
            return Answer.of_error(500, f"{type(err).__name__}: {err}".splitlines()[0])

    def _dispatch(self, route: str, a: dict[str, str]) -> Answer:
        handlers: dict[str, Callable[[], Answer]] = {
            "stations": lambda: Answer.of_json(self.stations()),
            "nights": lambda: Answer.of_json(
                self.nights(a["station"], a.get("start"), a.get("end"), a.get("class"))
            ),
            "night": lambda: Answer.of_json(
                self.night(a["station"], a["night"], _freq(a.get("freq")))
            ),
            "frame": lambda: Answer.of_json(self.frame(a["station"], a["time"])),
            "frame.png": lambda: self._frame_png(a),
            "similar": lambda: Answer.of_json(
                self.similar(a["station"], a["time"], _int(a, "k", 12, 1, MAX_K), a.get("class"))
            ),
            "timeline.csv": lambda: self._timeline_csv(a),
            "movie": lambda: self._movie(a),
        }
        return handlers[route]()

    def opening(self, params: Mapping[str, str]) -> tuple[int, str | None]:
        """Check what a page or widget is asked to open on (``station``, ``night``,
        ``time``) as its requests would: ``(200, None)``, or a 4xx status and one line."""
        unknown = sorted(set(params) - set(OPENING))
        if unknown:
            return 400, f"unknown parameter {unknown[0]!r} (the page takes {', '.join(OPENING)})"
        a = {k: v for k, v in params.items() if v}
        if "station" not in a:
            if a:
                return 400, "the page opens on a night or a time of a station: name the station"
            return 200, None
        if "night" in a:
            try:
                _date(a["night"], "night")
            except BrowseError as err:
                return err.status, err.message
        answer = self.answer("nights", {"station": a["station"]})
        if answer.status != 200:
            return answer.status, str(answer.json()["error"])
        if "night" in a and a["night"] not in [n["night"] for n in answer.json()]:
            return 404, f"no frames of {a['station']} on the night of {a['night']}"
        if "time" in a:
            answer = self.answer("frame", {"station": a["station"], "time": a["time"]})
            if answer.status != 200:
                return answer.status, str(answer.json()["error"])
        return 200, None

    # -- stations and nights ------------------------------------------------------------

    def stations(self) -> list[dict[str, Any]]:
        """Every station group with frames: code, frames, first and last time, model."""
        out = []
        for code in self.cube.stations():
            try:
                st = self._station(code, strict=False)
            except BrowseError as err:  # several models: listed, its views say why
                times = self.cube.times(code)
                out.append(
                    {
                        "station": code,
                        "n_frames": int(times.size),
                        "first": _utc(times[0]) if times.size else None,
                        "last": _utc(times[-1]) if times.size else None,
                        "n_nights": None,
                        "model": None,
                        "classes": [],
                        "colors": [],
                        "error": err.message,
                    }
                )
                continue
            if st is None:
                continue
            out.append(
                {
                    "station": code,
                    "n_frames": int(st.times.size),
                    "first": _utc(st.times[0]),
                    "last": _utc(st.times[-1]),
                    "n_nights": int(st.nights.size),
                    "model": st.model,
                    "classes": list(st.class_names),
                    "colors": [class_color(c, i) for i, c in enumerate(st.class_names)],
                }
            )
        return out

    def nights(
        self,
        station: str,
        start: str | None = None,
        end: str | None = None,
        klass: str | None = None,
    ) -> list[dict[str, Any]]:
        """The station's nights (local date each starts on), with the ``nights`` statistics.

        ``start`` and ``end`` (dates, inclusive) bound the nights; ``klass`` keeps the
        nights with at least one frame of that class.
        """
        st = self._station(station)
        d0 = _date(start, "start")
        d1 = _date(end, "end")
        if d0 is not None and d1 is not None and d1 < d0:
            raise BrowseError(400, f"end {end} is before start {start}")
        keep = np.ones(st.nights.size, dtype=bool)
        if d0 is not None:
            keep &= st.nights >= d0
        if d1 is not None:
            keep &= st.nights <= d1
        count = None
        if klass is not None:
            code = self._class_code(st, klass)
            # Frames of the class per night, from the predictions alone.
            hits = np.add.reduceat((self._codes(st) == code).astype(np.int64), st.bounds[:-1])
            count = hits
            keep &= hits > 0
        stats = self._stats(st)
        out = []
        for i in np.flatnonzero(keep):
            lo, hi = int(st.bounds[i]), int(st.bounds[i + 1])
            row: dict[str, Any] = {
                "night": str(st.nights[i]),
                "n_frames": hi - lo,
                "first": _utc(st.times[lo]),
                "last": _utc(st.times[hi - 1]),
            }
            if stats is not None and st.nights[i] in stats.index:
                s = stats.loc[st.nights[i]]
                row.update(
                    n_classified=int(s["n_classified"]),
                    clear_fraction=float(s["clear_fraction"]),
                    aurora_occurrence=float(s["aurora_occurrence"]),
                )
            if count is not None:
                row["n_class"] = int(count[i])
            out.append(row)
        return out

    def night(self, station: str, night: str, freq: str = FREQS[0]) -> dict[str, Any]:
        """One night: its frames' times and classes, its timeline and its keogram.

        The keogram is a PNG (base64) with one column per frame, latitude (or image
        row) down; the page places each column at its frame's time, so the timeline,
        the class strip and the keogram share one time axis.
        """
        st = self._station(station)
        lo, hi = self._night_rows(st, night)
        times = st.times[lo:hi]
        names, scores = self._classes(st, lo, hi)
        out: dict[str, Any] = {
            "station": station,
            "night": night,
            "model": st.model,
            "first": _utc(times[0]),
            "last": _utc(times[-1]),
            "cadence_ms": int(st.step / np.timedelta64(1, "ms")),
            "times": _ms(times),
            "classes": list(st.class_names),
            "colors": [class_color(c, i) for i, c in enumerate(st.class_names)],
            "class": [_class_index(st, n) for n in names],
            "score": [round(float(s), 4) for s in scores],
            "freq": _resolved(freq, times),
            "timeline": self._timeline(st, lo, hi, freq),
        }
        out.update(self._keogram(st, lo, hi))
        return out

    def _timeline(self, st: _Station, lo: int, hi: int, freq: str) -> dict[str, Any] | None:
        t = self._bins(st, lo, hi, freq)
        if t is None:
            return None
        return {
            "start": _ms(t["time"].values),
            "step_ms": int(pd.Timedelta(t.attrs["freq"]).total_seconds() * 1000),
            "classes": [str(c) for c in t["class"].values],
            "fraction": np.nan_to_num(t["fraction"].values.T, nan=0.0).round(4).tolist(),
            "n_frames": t["n_frames"].values.tolist(),
        }

    def _bins(self, st: _Station, lo: int, hi: int, freq: str) -> xr.Dataset | None:
        """timeline()'s bins over rows ``lo .. hi``, from those rows of the predictions
        (None: no classified frame there)."""
        if st.model is None or st.bins is None:
            return None
        freq = _resolved(freq, st.times[lo:hi])
        codes = self._codes(st, lo, hi)
        pred = xr.DataArray(codes, dims="time", coords={"time": st.times[lo:hi]})
        pred = pred[pred >= 0]
        if pred.size == 0:
            return None
        attrs = {"station": st.code, "model": st.model, "freq": freq, "cube": self.cube.location}
        return class_bins(pred, *st.bins, freq, attrs)

    def _keogram(self, st: _Station, lo: int, hi: int) -> dict[str, Any]:
        try:
            keo = keogram_rows(self.cube, st.code, st.ds, lo, hi, model=st.model)
        except (CubeError, OptionError) as err:
            return {"keogram": None, "keogram_note": str(err)}
        image = np.ascontiguousarray(keo.values.T)  # rows: latitude (or image row), north first
        if keo.dims[1] == "latitude":
            image = image[::-1]  # keogram() puts south first along latitude; draw north up
            lat = keo["latitude"].values[::-1]
            axis = {"axis": "latitude", "top": float(lat[0]), "bottom": float(lat[-1])}
        else:
            axis = {
                "axis": "image row",
                "top": int(keo["y"].values[0]),
                "bottom": int(keo["y"].values[-1]),
            }
        note = " ".join(str(keo.attrs.get(k, "")) for k in ("note", "skymap_note")).strip()
        return {"keogram": _png_b64(image), "keogram_axis": axis, "keogram_note": note}

    # -- frames ---------------------------------------------------------------------

    def frame(self, station: str, time: str) -> dict[str, Any]:
        """The frame nearest ``time`` (within one cadence): time, class, score, night,
        and its neighbours before and after."""
        st = self._station(station)
        i = self._row(st, time)
        lo, hi = max(0, i - NEIGHBOURS), min(st.times.size, i + NEIGHBOURS + 1)
        names, scores = self._classes(st, lo, hi)
        rows = [
            {
                "time": _utc(st.times[r]),
                "ms": int(np.datetime64(st.times[r], "ms").astype(np.int64)),
                "class": str(names[r - lo]),
                "score": float(scores[r - lo]),
            }
            for r in range(lo, hi)
        ]
        me = rows[i - lo]
        night = st.nights[_night_of_row(st, i)]
        return {
            "station": station,
            "row": i,
            "night": str(night),
            "model": st.model,
            **me,
            "before": rows[: i - lo],
            "after": rows[i - lo + 1 :],
        }

    def frame_png(self, station: str, time: str, size: int | None = None) -> bytes:
        """The frame nearest ``time`` as a PNG (north up, east left, as the cube stores
        it), its longer side scaled to ``size`` pixels when given (a thumbnail)."""
        from PIL import Image

        st = self._station(station)
        i = self._row(st, time)
        pixels = self._frame_pixels(st, i)
        if "band" in st.ds["pixels"].dims:
            pixels = np.moveaxis(pixels, st.ds["pixels"].dims.index("band") - 1, -1)
        image = Image.fromarray(_as_uint8(pixels))
        if size is not None and size != max(image.size):
            scale = size / max(image.size)
            shape = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
            image = image.resize(shape, Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return buf.getvalue()

    def _frame_pixels(self, st: _Station, row: int) -> np.ndarray:
        """One frame's pixels, through a cache of the last :data:`CACHED_CHUNKS` stored
        chunks: a click shows a frame and its neighbours, which mostly share a chunk
        that would otherwise be read and decoded once per picture."""
        pixels = st.ds["pixels"]
        size = int((pixels.encoding.get("chunks") or (1,))[0]) or 1
        key = (st.code, row // size)
        with self._chunk_lock:
            block = self._chunks.get(key)
            if block is None:
                a = key[1] * size
                block = np.asarray(pixels.isel(time=slice(a, a + size)).values)
                self._chunks[key] = block
                while len(self._chunks) > CACHED_CHUNKS:
                    self._chunks.pop(next(iter(self._chunks)))
            else:
                self._chunks[key] = self._chunks.pop(key)  # most recently used last
        return block[row - key[1] * size]

    def _frame_png(self, a: dict[str, str]) -> Answer:
        size = _int(a, "size", 0, 16, MAX_SIZE) if "size" in a else None
        body = self.frame_png(a["station"], a["time"], size)
        name = None
        if _flag(a, "download"):
            st = self._station(a["station"])
            stamp = _utc(st.times[self._row(st, a["time"])]).replace(":", "").replace("-", "")
            name = f"{a['station']}_{stamp[:15]}.png"
        return Answer(200, "image/png", body, name)

    # -- similar skies -------------------------------------------------------------

    def similar(
        self, station: str, time: str, k: int = 12, klass: str | None = None
    ) -> dict[str, Any]:
        """The ``k`` frames over the cube's stations most like the frame nearest ``time``
        (:func:`oathcube.similar`: exact, or through a fresh index), each with its night."""
        from ..similarity import similar

        st = self._station(station)
        i = self._row(st, time)
        if klass is not None:
            self._class_code(st, klass)
        table = similar(
            self.cube,
            station=station,
            time=st.times[i],
            k=k,
            klass=klass,
            model=st.model if klass is not None else None,
            scheduler="threads",
        )
        hits = []
        for row in table.to_dict("records"):
            code = str(row["station"])
            when = np.datetime64(row["time"], "ns")
            other = self._station(code)
            r = int(np.searchsorted(other.times, when))
            cls = row.get("class")
            hits.append(
                {
                    "rank": int(row["rank"]),
                    "station": code,
                    "time": _utc(when),
                    "night": str(other.nights[_night_of_row(other, r)]),
                    "similarity": float(row["score"]),
                    "class": cls if isinstance(cls, str) else "",
                    "score": float(row.get("class_score", math.nan)),
                }
            )
        return {
            "station": station,
            "time": _utc(st.times[i]),
            "features": str(table.attrs.get("features", "")),
            "index": bool(table.attrs.get("index", False)),
            "hits": hits,
        }

    # -- downloads -------------------------------------------------------------------

    def timeline_csv(self, station: str, night: str, freq: str = FREQS[0]) -> bytes:
        """The night's timeline (counts and fractions per class and bin) as CSV."""
        st = self._station(station)
        lo, hi = self._night_rows(st, night)
        if st.model is None:
            raise BrowseError(404, f"station {station} has no predictions: no timeline")
        t = self._bins(st, lo, hi, freq)
        if t is None:
            raise BrowseError(404, f"no classified frames of {station} on the night of {night}")
        return t[["count", "fraction"]].to_dataframe().to_csv().encode()

    def _timeline_csv(self, a: dict[str, str]) -> Answer:
        st = self._station(a["station"])
        lo, hi = self._night_rows(st, a["night"])
        freq = _resolved(_freq(a.get("freq")), st.times[lo:hi])
        body = self.timeline_csv(a["station"], a["night"], freq)
        return Answer(200, "text/csv", body, f"timeline_{a['station']}_{a['night']}_{freq}.csv")

    def movie(
        self, station: str, start: str, end: str, fmt: str = "gif", fps: float = 10.0
    ) -> bytes:
        """A captioned movie (GIF or MP4) of the station's frames from ``start`` to ``end``.

        It is written in a temporary folder of its own, outside the cube, read back and
        the folder removed.
        """
        st = self._station(station)
        t0, t1 = parse_time(start, "start"), parse_time(end, "end")
        if t1 < t0:
            raise BrowseError(400, f"end {end} is before start {start}")
        n = int(np.searchsorted(st.times, t1, "right") - np.searchsorted(st.times, t0, "left"))
        if n == 0:
            raise BrowseError(404, f"no frames of {station} between {start} and {end}")
        if n > MAX_MOVIE_FRAMES:
            raise BrowseError(
                413, f"{n} frames between {start} and {end}: at most {MAX_MOVIE_FRAMES} a movie"
            )
        with tempfile.TemporaryDirectory(prefix="oathcube-browse-") as tmp:
            out = Path(tmp) / f"movie.{fmt}"
            movie(self.cube, station, start=t0, end=t1, out=out, fps=fps, model=st.model)
            return out.read_bytes()

    def _movie(self, a: dict[str, str]) -> Answer:
        fmt = a.get("format", "gif")
        if fmt not in ("gif", "mp4"):
            raise BrowseError(400, f"format {fmt!r}: gif or mp4")
        fps = _float(a, "fps", 10.0, 0.5, 60.0)
        body = self.movie(a["station"], a["start"], a["end"], fmt, fps)
        media = "image/gif" if fmt == "gif" else "video/mp4"
        stamp = _utc(parse_time(a["start"], "start")).replace(":", "").replace("-", "")[:15]
        return Answer(200, media, body, f"{a['station']}_{stamp}.{fmt}")

    # -- what the views share --------------------------------------------------------

    def _station(self, code: str, strict: bool = True) -> Any:
        with self._lock:
            if code in self._stations:
                return self._stations[code]
        have = self.cube.stations()
        if code not in have:
            raise BrowseError(404, f"no station {code!r} in this cube: one of {', '.join(have)}")
        ds = checked(self.cube.station(code), self.cube, station_group(code))
        if "pixels" not in ds or ds.sizes.get("time", 0) == 0:
            if not strict:
                return None
            raise BrowseError(404, f"station {code!r} has no frames")
        times = ds["time"].values
        models = prediction_models(ds.data_vars)
        model = self.model
        if model is None and len(models) > 1:
            raise BrowseError(
                409,
                f"several models classified {code} ({', '.join(models)}): "
                "name one (oathcube browse --model, or browse(..., model=))",
            )
        if model is None and models:
            model = models[0]
        if model is not None and model not in models:
            model = None  # this station is not classified by the model asked for
        class_codes: tuple[int, ...] = ()
        class_names: tuple[str, ...] = ()
        bins: tuple[list[str], list[int]] | None = None
        if model is not None:
            pred_name, _, class_dim = prediction_names(model)
            values, meanings = class_values(ds, model)
            class_codes, class_names = tuple(values), tuple(meanings)
            # What timeline() bins by, read once: the stored model's class codes.
            index = self.cube.model(model)["class_index"].values
            bins = ([str(c) for c in ds[class_dim].values], [int(c) for c in index])
        labels = night_labels(times, station_longitude(self.cube, code))
        starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
        st = _Station(
            code=code,
            ds=ds,
            times=times,
            model=model,
            nights=labels[starts],
            bounds=np.r_[starts, times.size],
            class_codes=class_codes,
            class_names=class_names,
            step=cadence(times),
            bins=bins,
        )
        with self._lock:
            self._stations[code] = st
        return st

    def _codes(self, st: _Station, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """The predicted class codes of rows ``lo .. hi``: read alone (a night reads its
        own rows), or sliced from every frame's once those were read (a class filter
        reads them all, once per station)."""
        assert st.model is not None
        pred = st.ds[prediction_names(st.model)[0]]
        if st.all_codes is None and (lo, hi) == (0, None):
            st.all_codes = np.asarray(pred.values, dtype=np.int64)
        if st.all_codes is not None:
            return st.all_codes[lo:hi]
        return np.asarray(pred.isel(time=slice(lo, hi)).values, dtype=np.int64)

    def _stats(self, st: _Station) -> pd.DataFrame | None:
        if st.model is None:
            return None
        if st.stats is None:
            stats = night_statistics(self.cube, st.code, model=st.model)
            st.stats = stats.sel(station=st.code).to_dataframe()
            st.stats.index = st.stats.index.values.astype("datetime64[D]")
        return st.stats

    def _night_rows(self, st: _Station, night: str) -> tuple[int, int]:
        day = _date(night, "night")
        assert day is not None
        i = int(np.searchsorted(st.nights, day))
        if i >= st.nights.size or st.nights[i] != day:
            raise BrowseError(
                404,
                f"no frames of {st.code} on the night of {night}: nights "
                f"{st.nights[0]} .. {st.nights[-1]}",
            )
        return int(st.bounds[i]), int(st.bounds[i + 1])

    def _row(self, st: _Station, time: str) -> int:
        t = parse_time(time, "time")
        i = int(np.searchsorted(st.times, t))
        near = [j for j in (i - 1, i) if 0 <= j < st.times.size]
        j = min(near, key=lambda r: abs(st.times[r] - t))
        step = st.step
        if abs(st.times[j] - t) > step:
            raise BrowseError(404, f"no frame of {st.code} within {_seconds(step)} of {_utc(t)}")
        return j

    def _classes(self, st: _Station, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Class names and scores of rows ``lo .. hi`` (reads only those rows)."""
        if st.model is None:
            return np.full(hi - lo, "unclassified", dtype=object), np.full(hi - lo, np.nan)
        c = classes_of(st.ds.isel(time=slice(lo, hi)), self.cube, st.model)
        return c.names, c.scores

    def _class_code(self, st: _Station, klass: str) -> int:
        if st.model is None:
            raise BrowseError(404, f"station {st.code} has no predictions: no class filter")
        if klass not in st.class_names:
            raise BrowseError(
                400, f"class {klass!r}: one of {', '.join(st.class_names)} ({st.model})"
            )
        return st.class_codes[st.class_names.index(klass)]


def _night_of_row(st: _Station, row: int) -> int:
    return int(np.searchsorted(st.bounds, row, side="right")) - 1


def _class_index(st: _Station, name: str) -> int:
    return st.class_names.index(name) if name in st.class_names else -1


def _seconds(step: np.timedelta64) -> str:
    return f"{step / np.timedelta64(1, 's'):g} s"


def _png_b64(image: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(_as_uint8(image)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _as_uint8(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return np.ascontiguousarray(pixels)
    x = pixels.astype(np.float32)
    top = float(np.nanmax(x)) if x.size else 0.0
    return np.ascontiguousarray(np.clip(x / (top or 1.0) * 255.0, 0, 255).astype(np.uint8))


def _checked_params(route: str, spec: Route, params: Mapping[str, str]) -> dict[str, str]:
    unknown = sorted(set(params) - set(spec.required) - set(spec.optional))
    if unknown:
        allowed = ", ".join((*spec.required, *spec.optional)) or "none"
        raise BrowseError(400, f"{route}: unknown parameter {unknown[0]!r} (takes {allowed})")
    missing = [p for p in spec.required if not params.get(p)]
    if missing:
        raise BrowseError(400, f"{route}: parameter {missing[0]!r} is missing")
    out = {}
    for name, value in params.items():
        if not isinstance(value, str) or len(value) > MAX_VALUE:
            raise BrowseError(400, f"{route}: parameter {name!r} is not a short text")
        if value != "":
            out[name] = value
    return out


def _int(a: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    return int(_number(a, name, default, lo, hi, int, "an integer"))


def _float(a: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    return float(_number(a, name, default, lo, hi, float, "a number"))


def _number(
    a: Mapping[str, str],
    name: str,
    default: float,
    lo: float,
    hi: float,
    kind: Callable[[str], float],
    what: str,
) -> float:
    """Parameter ``name`` as ``kind`` within ``lo .. hi`` (``default`` when absent)."""
    if name not in a:
        return default
    try:
        value = kind(a[name])
    except ValueError:
        raise BrowseError(400, f"{name} {a[name]!r}: {what} {lo}..{hi}") from None
    if not (lo <= value <= hi and math.isfinite(value)):
        raise BrowseError(400, f"{name} {value:g}: {what} {lo}..{hi}")
    return value


def _flag(a: Mapping[str, str], name: str) -> bool:
    value = a.get(name, "0")
    if value not in ("0", "1"):
        raise BrowseError(400, f"{name} {value!r}: 0 or 1")
    return value == "1"


def _freq(value: str | None) -> str:
    if value is None:
        return FREQS[0]
    if value not in FREQS:
        raise BrowseError(400, f"freq {value!r}: one of {', '.join(FREQS)}")
    return value


def _resolved(freq: str, times: np.ndarray) -> str:
    """``auto``: the narrowest bin width of :data:`FREQS` that gives at most
    :data:`AUTO_BINS` bins over ``times``; any other width as it is."""
    if freq != "auto":
        return freq
    span = (times[-1] - times[0]) / np.timedelta64(1, "s")
    for width in FREQS[1:]:
        if span / pd.Timedelta(width).total_seconds() <= AUTO_BINS:
            return width
    return FREQS[-1]


def _date(value: str | None, name: str) -> np.datetime64 | None:
    if value is None:
        return None
    try:
        day = np.datetime64(value, "D")
    except ValueError:
        raise BrowseError(400, f"{name} {value!r}: a date YYYY-MM-DD") from None
    if np.isnat(day) or str(day) != value:
        raise BrowseError(400, f"{name} {value!r}: a date YYYY-MM-DD")
    return day
