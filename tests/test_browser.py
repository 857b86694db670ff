"""browse (oathcube.browser): the page's answers equal the cube's own views, bad requests
are one-line 4xx answers, the cube is only read, and the widget and the command line
answer as the page does.

Two cubes: the session's ``demo_cube`` (fsmi, one night of 360 frames 3 s apart from
2011-11-03T04:00:00Z, no skymap) and ``two`` below (fsmi on three nights, the last one of
featureless frames that are all one class; gill on one night, with a synthetic skymap).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageSequence
from starlette.testclient import TestClient

import oathcube
from oathcube import classify, compute_features, ingest, train
from oathcube.archive.skymap import ideal_skymap
from oathcube.browser.answers import AUTO_BINS, FREQS, MAX_VALUE, ROUTES, Answer, Browser
from oathcube.browser.app import make_app, serve
from oathcube.browser.widget import reply
from oathcube.cli import app
from oathcube.cube.schema import prediction_names
from oathcube.cube.store import Cube
from oathcube.errors import OptionError
from oathcube.ingestion.skymaps import store_skymaps
from oathcube.rawprep import RawPreparation
from oathcube.synthetic.themis import write_cdf
from oathcube.views._common import class_values, classes_of
from oathcube.views.keograms import keogram
from oathcube.views.nights import night_labels, night_statistics, station_longitude
from oathcube.views.timelines import timeline

MODEL = "handcrafted_class6"
#: The demo's night and its first frame.
NIGHT = "2011-11-02"
FIRST = np.datetime64("2011-11-03T04:00:00", "ns")


# ------------------------------------------------------------------------------ cubes
@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory, cube_factory: Any) -> Path:
    """Two classified stations: fsmi on the nights of 2011-01-05 and 2011-01-07 (30
    frames each) and 2011-01-09 (10 flat frames: one class only), gill on the night of
    2011-01-05 (20 frames) with a synthetic skymap; 32-pixel frames."""
    base = tmp_path_factory.mktemp("browser")
    raw = base / "raw"
    raw.mkdir()
    write_cdf(raw, "fsmi", "2011-01-06T05:00:00", 30, size=32, seed=1)
    write_cdf(raw, "fsmi", "2011-01-08T05:00:00", 30, size=32, seed=2)
    flat = np.full((10, 32, 32), 800, dtype=np.uint16)
    write_cdf(raw, "fsmi", "2011-01-10T05:00:00", 10, size=32, frames=flat)
    write_cdf(raw, "gill", "2011-01-06T05:00:00", 20, size=32, seed=3)
    cube = cube_factory.copy(base / "cube.zarr")
    compute_features(cube, "handcrafted", scheduler="synchronous")
    model = train(cube, "handcrafted")
    assert model == MODEL
    ingest([raw], cube, preparation=RawPreparation(out_size=32), chunk_frames=8)
    classify(cube, model, scheduler="synchronous")
    store_skymaps([ideal_skymap("gill", 56.38, 265.36, size=32)], cube)
    return cube


@pytest.fixture(scope="module")
def demo(demo_cube: Path) -> Browser:
    """A Browser on the demo cube, shared by the tests that only read through it."""
    return Browser(demo_cube)


@pytest.fixture(scope="module")
def both(two: Path) -> Browser:
    """A Browser on the two-station cube."""
    return Browser(two)


@pytest.fixture(scope="module")
def client(demo: Browser) -> TestClient:
    """The HTTP app on the demo cube."""
    return TestClient(make_app(demo))


def _ok(browser: Browser, route: str, **params: str) -> Any:
    """The JSON of an answer that must be a 200."""
    answer = browser.answer(route, params)
    assert answer.status == 200, answer.body
    return answer.json()


def _refused(answer: Answer, status: int, *words: str) -> str:
    """An answer's one-line refusal, checked for its status and its words."""
    assert answer.status == status, answer.body
    assert answer.media_type == "application/json"
    assert b"Traceback" not in answer.body
    message = answer.json()["error"]
    assert isinstance(message, str) and message and "\n" not in message
    for word in words:
        assert word in message, message
    return message


def _station_truth(cube: Path, code: str) -> tuple[np.ndarray, np.ndarray, Any]:
    """A station's times, their night labels and their classes, straight from the views."""
    opened = Cube.open(cube)
    ds = opened.station(code)
    times = ds["time"].values
    return times, night_labels(times, station_longitude(opened, code)), classes_of(ds, opened)


def _ms(t: Any) -> int:
    return int(np.datetime64(t, "ms").astype(np.int64))


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


# ------------------------------------------------------------ 1. answers equal the cube
@pytest.mark.parametrize(("which", "code"), [("demo", "fsmi"), ("two", "fsmi"), ("two", "gill")])
def test_nights_equal_night_statistics(
    demo_cube: Path, two: Path, demo: Browser, both: Browser, which: str, code: str
) -> None:
    """Every night of a station is listed once, with night_statistics' own numbers."""
    cube, browser = (demo_cube, demo) if which == "demo" else (two, both)
    rows = _ok(browser, "nights", station=code)
    stats = night_statistics(cube, code).sel(station=code)
    have = stats["night"].values[stats["n_frames"].values > 0].astype("datetime64[D]")
    assert [r["night"] for r in rows] == [str(d) for d in have]
    times, labels, _ = _station_truth(cube, code)
    for row in rows:
        night = np.datetime64(row["night"])
        s = stats.sel(night=night)
        assert row["n_frames"] == int(s["n_frames"]) == int((labels == night).sum())
        assert row["n_classified"] == int(s["n_classified"])
        assert row["clear_fraction"] == float(s["clear_fraction"])
        assert row["aurora_occurrence"] == float(s["aurora_occurrence"])
        mine = times[labels == night]
        assert row["first"] == str(mine[0].astype("datetime64[ms]")) + "Z"
        assert row["last"] == str(mine[-1].astype("datetime64[ms]")) + "Z"
    if which == "demo":
        assert [r["night"] for r in rows] == [NIGHT] and rows[0]["n_frames"] == 360


def test_class_filter_keeps_the_nights_with_that_class(two: Path, both: Browser) -> None:
    """``class`` keeps exactly the nights with a frame of that class, and ``n_class``
    counts them from the stored predictions."""
    opened = Cube.open(two)
    ds = opened.station("fsmi")
    pred = np.asarray(ds[prediction_names(MODEL)[0]].values)
    names = classes_of(ds, opened, MODEL).names
    _, labels, _ = _station_truth(two, "fsmi")
    values, classes = class_values(ds, MODEL)
    assert _ok(both, "stations")[0]["classes"] == list(classes)
    dropped = 0
    for code, name in zip(values, classes, strict=True):
        counts = {str(d): int(((labels == d) & (names == name)).sum()) for d in np.unique(labels)}
        expected = {d: n for d, n in counts.items() if n > 0}
        rows = _ok(both, "nights", station="fsmi", **{"class": name})
        assert {r["night"]: r["n_class"] for r in rows} == expected, name
        assert sum(expected.values()) == int((pred == code).sum())
        dropped += len(expected) not in (0, len(counts))
    assert dropped, "the fixture must have a class that only some nights have"
    # with a date range too: the bounds are inclusive
    rows = _ok(both, "nights", station="fsmi", start="2011-01-07", end="2011-01-09")
    assert [r["night"] for r in rows] == ["2011-01-07", "2011-01-09"]
    rows = _ok(both, "nights", station="fsmi", end="2011-01-07", **{"class": "noaurora"})
    assert [r["night"] for r in rows] == ["2011-01-05", "2011-01-07"]
    assert _ok(both, "nights", station="fsmi", start="2011-01-10") == []


@pytest.mark.parametrize(
    ("which", "code", "night"),
    [("demo", "fsmi", NIGHT), ("two", "fsmi", "2011-01-07"), ("two", "gill", "2011-01-05")],
)
def test_night_equals_the_cube(
    demo_cube: Path, two: Path, demo: Browser, both: Browser, which: str, code: str, night: str
) -> None:
    """A night's times, classes and scores are the station's own; its timeline is
    timeline()'s over the night, at the asked bin width."""
    cube, browser = (demo_cube, demo) if which == "demo" else (two, both)
    times, labels, classes = _station_truth(cube, code)
    mine = labels == np.datetime64(night)
    for freq in ("10min", "1min", "auto"):
        d = _ok(browser, "night", station=code, night=night, freq=freq)
        if freq == "auto":  # the narrowest width of at most AUTO_BINS bins
            span = (times[mine][-1] - times[mine][0]) / np.timedelta64(1, "s")
            fits = [f for f in FREQS[1:] if span / pd.Timedelta(f).total_seconds() <= AUTO_BINS]
            assert d["freq"] == fits[0]
            freq = d["freq"]
        assert d["times"] == [_ms(t) for t in times[mine]]
        assert d["model"] == MODEL and d["freq"] == freq and d["cadence_ms"] == 3000
        assert d["classes"] == list(classes.all_names)
        shown = [d["classes"][i] if i >= 0 else "unclassified" for i in d["class"]]
        assert shown == list(classes.names[mine])
        np.testing.assert_allclose(d["score"], classes.scores[mine], rtol=0, atol=6e-5)
        t = timeline(cube, code, freq=freq, model=MODEL, start=times[mine][0], end=times[mine][-1])
        line = d["timeline"]
        assert line["start"] == [_ms(s) for s in t["time"].values]
        assert line["classes"] == [str(c) for c in t["class"].values]
        assert line["step_ms"] == pd.Timedelta(freq).total_seconds() * 1000
        assert line["n_frames"] == t["n_frames"].values.tolist()
        assert sum(line["n_frames"]) == int(mine.sum())
        np.testing.assert_allclose(
            line["fraction"], np.nan_to_num(t["fraction"].values.T), rtol=0, atol=6e-5
        )  # rounded to 4 decimals, of float32 fractions
    if which == "demo":
        assert len(d["times"]) == 360 and d["times"][0] == _ms(FIRST)
        assert set(np.diff(d["times"])) == {3000}
        assert len(line["start"]) == 18  # 1-min bins from 04:00 to 04:17


@pytest.mark.parametrize(
    ("which", "code", "night"),
    [("demo", "fsmi", NIGHT), ("two", "fsmi", "2011-01-05"), ("two", "gill", "2011-01-05")],
)
def test_night_keogram_equals_keogram(
    demo_cube: Path, two: Path, demo: Browser, both: Browser, which: str, code: str, night: str
) -> None:
    """The keogram PNG is keogram()'s values, one column per frame: rows the image rows
    as stored (north edge first) without a skymap, latitude north first with one."""
    cube, browser = (demo_cube, demo) if which == "demo" else (two, both)
    d = _ok(browser, "night", station=code, night=night)
    times = np.asarray(d["times"], dtype="datetime64[ms]")
    keo = keogram(cube, code, start=times[0], end=times[-1], model=MODEL)
    image = _png(base64.b64decode(d["keogram"]))
    assert image.shape == (keo.shape[1], len(times))
    axis = d["keogram_axis"]
    if code == "gill":  # the synthetic skymap: latitude, drawn north up
        assert keo.dims == ("time", "latitude")
        np.testing.assert_array_equal(image, keo.values.T[::-1])
        assert not np.array_equal(image, keo.values.T)
        lat = keo["latitude"].values
        assert axis == {"axis": "latitude", "top": float(lat.max()), "bottom": float(lat.min())}
        assert "SYNTHETIC" in d["keogram_note"]
    else:
        assert keo.dims == ("time", "y")
        np.testing.assert_array_equal(image, keo.values.T)
        y = keo["y"].values
        assert axis == {"axis": "image row", "top": int(y[0]), "bottom": int(y[-1])}
        assert "no skymap" in d["keogram_note"]
        if which == "demo":  # nothing cropped: every row, the north edge first
            assert (axis["top"], axis["bottom"]) == (0, 63)


def test_frame_is_the_nearest_with_its_neighbours(demo_cube: Path, demo: Browser) -> None:
    """``frame`` answers the nearest frame within one cadence, and 3 frames each side
    (fewer at the ends of the station's frames)."""
    times, labels, classes = _station_truth(demo_cube, "fsmi")

    def row(r: int) -> dict[str, Any]:
        return {
            "time": str(times[r].astype("datetime64[ms]")) + "Z",
            "ms": _ms(times[r]),
            "class": str(classes.names[r]),
            "score": float(classes.scores[r]),
        }

    for query, r in [
        (times[100] + np.timedelta64(1, "s"), 100),
        (times[100] - np.timedelta64(1400, "ms"), 100),
        (times[100] + np.timedelta64(1600, "ms"), 101),
    ]:
        d = _ok(demo, "frame", station="fsmi", time=str(query))
        assert d["row"] == r and d["night"] == str(labels[r]) == NIGHT and d["model"] == MODEL
        assert {k: d[k] for k in ("time", "ms", "class", "score")} == row(r)
        assert d["before"] == [row(i) for i in range(r - 3, r)]
        assert d["after"] == [row(i) for i in range(r + 1, r + 4)]
    first = _ok(demo, "frame", station="fsmi", time="2011-11-03T03:59:57Z")  # one cadence
    assert first["row"] == 0 and first["before"] == [] and len(first["after"]) == 3
    assert first["after"] == [row(1), row(2), row(3)]
    second = _ok(demo, "frame", station="fsmi", time="2011-11-03T04:00:03")
    assert second["before"] == [row(0)]
    last = _ok(demo, "frame", station="fsmi", time=str(times[-1]))
    assert last["row"] == 359 and last["after"] == [] and len(last["before"]) == 3
    # zone-aware times are converted to UTC
    here = _ok(demo, "frame", station="fsmi", time="2011-11-03T05:00:30+01:00")
    assert here["row"] == 10
    _refused(
        demo.answer("frame", {"station": "fsmi", "time": "2011-11-03T03:59:56.9"}),
        404,
        "no frame of fsmi within 3 s of 2011-11-03T03:59:56.900Z",
    )


def test_frame_png_is_the_stored_frame(demo_cube: Path, demo: Browser) -> None:
    """``frame.png`` without a size is the stored pixels exactly; with one, a picture
    whose longer side is that size."""
    pixels = Cube.open(demo_cube).station("fsmi")["pixels"]
    assert pixels.dtype == np.uint8
    for r in (0, 17, 359):
        t = str(FIRST + np.timedelta64(3 * r, "s"))
        answer = demo.answer("frame.png", {"station": "fsmi", "time": t})
        assert answer.status == 200 and answer.media_type == "image/png"
        assert answer.filename is None
        np.testing.assert_array_equal(_png(answer.body), pixels.isel(time=r).values)
    t = str(FIRST + np.timedelta64(30, "s"))
    same = demo.answer("frame.png", {"station": "fsmi", "time": t, "size": "64"})
    np.testing.assert_array_equal(_png(same.body), pixels.isel(time=10).values)
    for size in (16, 100, 1024):
        answer = demo.answer("frame.png", {"station": "fsmi", "time": t, "size": str(size)})
        assert answer.status == 200
        assert Image.open(io.BytesIO(answer.body)).size == (size, size)
    thumb = _png(demo.answer("frame.png", {"station": "fsmi", "time": t, "size": "32"}).body)
    # a thumbnail of that frame, not another one
    small = np.asarray(Image.fromarray(pixels.isel(time=10).values).resize((32, 32)))
    assert np.abs(thumb.astype(int) - small.astype(int)).mean() < 8


@pytest.mark.parametrize(
    ("query", "k", "klass"),
    [("2011-01-06T05:00:30", 20, None), ("2011-01-06T05:00:10", 12, None),
     ("2011-01-08T05:00:30", 8, "arc")],
)  # fmt: skip
def test_similar_equals_oathcube_similar(
    two: Path, both: Browser, query: str, k: int, klass: str | None
) -> None:
    """``similar`` hits are oathcube.similar's rows, each with the night it lies in."""
    params = {"station": "fsmi", "time": query, "k": str(k)}
    if klass:
        params["class"] = klass
    d = _ok(both, "similar", **params)
    table = oathcube.similar(
        two, station="fsmi", time=query, k=k, klass=klass, model=MODEL if klass else None
    )
    nearest = _ok(both, "frame", station="fsmi", time=query)["time"]
    assert d["station"] == "fsmi" and d["time"] == nearest
    assert d["features"] == "handcrafted"
    hits = d["hits"]
    assert len(hits) == len(table) > 0
    truth = {code: _station_truth(two, code) for code in ("fsmi", "gill")}
    for hit, row in zip(hits, table.to_dict("records"), strict=True):
        assert hit["rank"] == row["rank"] and hit["station"] == row["station"]
        assert hit["time"] == pd.Timestamp(row["time"]).isoformat(timespec="milliseconds") + "Z"
        assert hit["similarity"] == pytest.approx(row["score"], abs=1e-12)
        assert hit["class"] == row["class"]
        assert hit["score"] == pytest.approx(row["class_score"], abs=1e-12)
        times, labels, _ = truth[hit["station"]]
        at = int(np.flatnonzero(times == np.datetime64(row["time"], "ns"))[0])
        assert hit["night"] == str(labels[at])
    if klass:
        assert {h["class"] for h in hits} == {klass}
    else:
        assert len({(h["station"], h["night"]) for h in hits}) > 1


# --------------------------------------------------------- 2. bad requests, one line each
T = "2011-11-03T04:10:00"
BAD: list[tuple[str, dict[str, str], int, tuple[str, ...]]] = [
    ("nope", {}, 404, ("no such view 'nope'", "stations", "movie")),
    ("stations", {"station": "fsmi"}, 400, ("unknown parameter 'station'", "takes none")),
    ("nights", {"station": "nope"}, 404, ("no station 'nope'", "one of fsmi")),
    ("frame", {"station": "gill", "time": T}, 404, ("no station 'gill'", "fsmi")),
    ("nights", {"station": "fsmi", "bogus": "1"}, 400, ("unknown parameter 'bogus'", "station")),
    ("night", {"station": "fsmi"}, 400, ("night: parameter 'night' is missing",)),
    ("night", {"station": "fsmi", "night": ""}, 400, ("'night' is missing",)),
    ("frame", {"time": T}, 400, ("'station' is missing",)),
    ("frame", {"station": "fsmi", "time": "2" * 65}, 400, ("'time' is not a short text",)),
    ("nights", {"station": "f" * 65}, 400, ("'station' is not a short text",)),
    ("frame", {"station": "fsmi", "time": "not-a-time"}, 400, ("'not-a-time' is not a time",)),
    ("frame", {"station": "fsmi", "time": "2011-11-03T25:00"}, 400, ("is not a time",)),
    ("frame", {"station": "fsmi", "time": "1000-01-01"}, 400, ("outside the times",)),
    ("frame", {"station": "fsmi", "time": "2011-11-03T05:00"}, 404,
     ("no frame of fsmi within 3 s of 2011-11-03T05:00:00.000Z",)),
    ("frame.png", {"station": "fsmi", "time": "2011-11-02T04:00"}, 404, ("no frame of fsmi",)),
    ("night", {"station": "fsmi", "night": "2011-11-05"}, 404,
     ("no frames of fsmi on the night of 2011-11-05", "2011-11-02")),
    ("timeline.csv", {"station": "fsmi", "night": "2011-11-03"}, 404, ("night of 2011-11-03",)),
    ("night", {"station": "fsmi", "night": "2011-1-5"}, 400, ("night '2011-1-5'", "YYYY-MM-DD")),
    ("night", {"station": "fsmi", "night": "2011-11-02T00"}, 400, ("YYYY-MM-DD",)),
    ("night", {"station": "fsmi", "night": "20111102"}, 400, ("YYYY-MM-DD",)),
    ("night", {"station": "fsmi", "night": "2011-11-31"}, 400, ("YYYY-MM-DD",)),
    ("nights", {"station": "fsmi", "start": "2011/11/02"}, 400, ("start '2011/11/02'",)),
    ("nights", {"station": "fsmi", "end": " 2011-11-02"}, 400, ("end ' 2011-11-02'",)),
    ("nights", {"station": "fsmi", "start": "2011-11-03", "end": "2011-11-01"}, 400,
     ("end 2011-11-01 is before start 2011-11-03",)),
    ("similar", {"station": "fsmi", "time": T, "k": "0"}, 400, ("k 0", "1..60")),
    ("similar", {"station": "fsmi", "time": T, "k": "abc"}, 400, ("k 'abc'", "an integer")),
    ("similar", {"station": "fsmi", "time": T, "k": "1000"}, 400, ("k 1000", "1..60")),
    ("similar", {"station": "fsmi", "time": T, "k": "2.5"}, 400, ("k '2.5'",)),
    ("night", {"station": "fsmi", "night": NIGHT, "freq": "7min"}, 400,
     ("freq '7min'", "auto, 1min")),
    ("timeline.csv", {"station": "fsmi", "night": NIGHT, "freq": "1D"}, 400, ("freq '1D'",)),
    ("frame.png", {"station": "fsmi", "time": T, "size": "8"}, 400, ("size 8", "16..1024")),
    ("frame.png", {"station": "fsmi", "time": T, "size": "2000"}, 400, ("size 2000",)),
    ("frame.png", {"station": "fsmi", "time": T, "size": "big"}, 400, ("size 'big'",)),
    ("frame.png", {"station": "fsmi", "time": T, "download": "2"}, 400,
     ("download '2'", "0 or 1")),
    ("frame.png", {"station": "fsmi", "time": T, "download": "yes"}, 400, ("download 'yes'",)),
    ("nights", {"station": "fsmi", "class": "aurora"}, 400,
     ("class 'aurora'", "arc, diffuse", MODEL)),
    ("similar", {"station": "fsmi", "time": T, "class": "Arc"}, 400, ("class 'Arc'",)),
    ("movie", {"station": "fsmi", "start": T, "end": "2011-11-03T04:05"}, 400,
     ("is before start",)),
    ("movie", {"station": "fsmi", "start": T, "end": "2011-11-03T04:10:09", "format": "avi"},
     400, ("format 'avi'", "gif or mp4")),
    ("movie", {"station": "fsmi", "start": T, "end": "2011-11-03T04:10:09", "fps": "0"}, 400,
     ("fps 0",)),
    ("movie", {"station": "fsmi", "start": T, "end": "2011-11-03T04:10:09", "fps": "nan"},
     400, ("fps",)),
    ("movie", {"station": "fsmi", "start": "2011-11-04", "end": "2011-11-05"}, 404,
     ("no frames of fsmi between 2011-11-04 and 2011-11-05",)),
    ("movie", {"station": "fsmi", "start": T}, 400, ("'end' is missing",)),
]  # fmt: skip


@pytest.mark.parametrize(("route", "params", "status", "words"), BAD)
def test_bad_requests_are_one_line(
    demo: Browser,
    client: TestClient,
    route: str,
    params: dict[str, str],
    status: int,
    words: tuple[str, ...],
) -> None:
    """A bad request is a 4xx and one line saying why, in Python and over HTTP alike."""
    message = _refused(demo.answer(route, params), status, *words)
    response = client.get(f"/api/{route}", params=params)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert "Traceback" not in response.text
    assert response.json() == {"error": message}


def test_a_movie_of_too_many_frames_is_413(
    demo: Browser, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A movie longer than MAX_MOVIE_FRAMES is refused before a frame is read."""
    import oathcube.browser.answers as answers

    monkeypatch.setattr(answers, "MAX_MOVIE_FRAMES", 5)
    params = {"station": "fsmi", "start": T, "end": "2011-11-03T04:10:15"}  # 6 frames
    _refused(demo.answer("movie", params), 413, "6 frames between", "at most 5 a movie")
    assert client.get("/api/movie", params=params).status_code == 413
    params["end"] = "2011-11-03T04:10:12"  # 5 frames: fine
    assert demo.answer("movie", params).status == 200


def test_nat_is_not_a_date(demo: Browser) -> None:
    """``NaT`` is refused as a date, as every other text that is not YYYY-MM-DD is."""
    _refused(demo.answer("nights", {"station": "fsmi", "start": "NaT"}), 400, "YYYY-MM-DD")
    _refused(demo.answer("night", {"station": "fsmi", "night": "NaT"}), 400, "YYYY-MM-DD")


def test_movie_file_name_is_the_first_frame_utc(demo: Browser) -> None:
    """A movie is named after its start in UTC, as frame.png downloads are, whatever
    spelling of the time the request used."""
    spellings = ["2011-11-03T04:10:00", "2011-11-03T05:10:00+01:00", "2011/11/03 04:10"]
    for start in [*spellings, "2011-11-03T04:10:00\r\n"]:
        params = {"station": "fsmi", "start": start, "end": "2011-11-03T04:10:06"}
        answer = demo.answer("movie", params)
        assert answer.status == 200
        assert answer.filename == "fsmi_20111103T041000.gif", repr(start)


def test_http_addresses(client: TestClient) -> None:
    """Only GET and HEAD of the page, its two files and the API; nothing else is a file."""
    ok = client.get("/api/stations")
    assert ok.status_code == 200 and ok.json()[0]["station"] == "fsmi"
    assert ok.headers["cache-control"] == "no-store"
    assert ok.headers["x-content-type-options"] == "nosniff"
    head = client.head("/api/stations")
    assert head.status_code == 200 and head.content == b""
    twice = client.get("/api/nights?station=fsmi&station=gill")
    assert twice.status_code == 400 and twice.json() == {"error": "parameter 'station' given twice"}
    assert client.get("/?station=fsmi&station=fsmi").status_code == 400
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/api/stations", "/", "/static/browse.js"):
            r = client.request(method, path)
            assert r.status_code == 405, (method, path)
            assert r.json() == {"error": f"{method} is not answered: read-only"}
    for name, media in (("browse.js", "text/javascript"), ("browse.css", "text/css")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(media)
    assert "export default" in client.get("/static/browse.js").text
    for path in (
        "/static/index.html",
        "/static/answers.py",
        "/static/../answers.py",
        "/static/..%2Fanswers.py",
        "/static/%2e%2e/app.py",
        "/static/..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/etc/passwd",
        "/../../../../etc/passwd",
        "/api/..%2F..%2Fetc%2Fpasswd",
        "/api",
        "/api/",
        "/api/stations/more",
        "/index.html",
    ):
        r = client.get(path)
        assert r.status_code == 404, path
        assert "error" in r.json() and "root:" not in r.text and "import" not in r.text
    assert client.get("/favicon.ico").status_code == 204


def _state(html: str) -> dict[str, Any]:
    """The page's embedded state, read as the page's script reads it (textContent)."""
    found = re.search(r'<script id="oc-state" type="application/json">(.*?)</script>', html, re.S)
    assert found, html
    return json.loads(found.group(1))


def test_the_page_opens_on_what_it_is_asked(client: TestClient) -> None:
    """``/`` is the page with its state; what it is asked to open on is checked as the
    API checks it, and a refusal is said in the page with the API's status."""
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert _state(page.text) == {"initial": {}, "error": None}
    assert 'import { mount, httpTransport } from "./static/browse.js"' in page.text
    opened = client.get("/?station=fsmi&night=2011-11-02")
    assert opened.status_code == 200
    assert _state(opened.text) == {"initial": {"station": "fsmi", "night": NIGHT}, "error": None}
    at = client.get("/", params={"station": "fsmi", "time": "2011-11-03T04:01:00"})
    assert at.status_code == 200 and _state(at.text)["initial"]["time"] == "2011-11-03T04:01:00"
    for query, status, words in [
        ({"station": "nope"}, 404, ("no station 'nope'", "one of fsmi")),
        ({"station": "fsmi", "night": "2011-11-05"}, 404, ("night of 2011-11-05",)),
        ({"station": "fsmi", "time": "2011-11-03T06:00"}, 404, ("no frame of fsmi",)),
        ({"station": "fsmi", "time": "soon"}, 400, ("'soon' is not a time",)),
        ({"night": NIGHT}, 400, ("name the station",)),
        ({"bogus": "1"}, 400, ("unknown parameter 'bogus'",)),
    ]:
        r = client.get("/", params=query)
        assert r.status_code == status, query
        assert r.headers["content-type"].startswith("text/html")
        state = _state(r.text)
        assert state["initial"] == {}
        for word in words:
            assert word in state["error"], state
        assert "Traceback" not in r.text


def test_the_page_keeps_markup_out_of_its_state(client: TestClient) -> None:
    """A value echoed in the page's error cannot close its script element."""
    r = client.get("/", params={"station": "</script><script>alert(1)</script>"})
    assert r.status_code == 404
    assert "<script>alert(1)" not in r.text and r.text.count("</script>") == 2


def test_the_page_error_reads_as_the_api_error(client: TestClient) -> None:
    """The error the page shows is the API's message, character for character."""
    station = "<b>&"
    api = client.get("/api/nights", params={"station": station}).json()["error"]
    page = client.get("/", params={"station": station})
    assert _state(page.text)["error"] == api


def test_the_page_refuses_a_malformed_night_as_the_api_does(
    client: TestClient, demo: Browser
) -> None:
    """Browser.opening checks a night "as its requests would": a malformed one is a 400."""
    api = demo.answer("night", {"station": "fsmi", "night": "2011-1-5"})
    assert api.status == 400
    page = client.get("/", params={"station": "fsmi", "night": "2011-1-5"})
    assert page.status_code == 400
    assert _state(page.text)["error"] == api.json()["error"]


def test_downloads_say_their_file_names(client: TestClient, demo_cube: Path) -> None:
    """frame.png with download=1, timeline.csv and movie are attachments with a name;
    the CSV is timeline()'s, the movie a GIF of the range's frames."""
    t = "2011-11-03T04:00:01"
    png = client.get("/api/frame.png", params={"station": "fsmi", "time": t, "download": "1"})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    disposition = 'attachment; filename="fsmi_20111103T040000.png"'
    assert png.headers["content-disposition"] == disposition
    plain = client.get("/api/frame.png", params={"station": "fsmi", "time": t, "download": "0"})
    assert "content-disposition" not in plain.headers and plain.content == png.content

    query = {"station": "fsmi", "night": NIGHT, "freq": "5min"}
    csv = client.get("/api/timeline.csv", params=query)
    assert csv.status_code == 200
    assert csv.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = f'attachment; filename="timeline_fsmi_{NIGHT}_5min.csv"'
    assert csv.headers["content-disposition"] == disposition
    table = pd.read_csv(io.StringIO(csv.text), parse_dates=["time"])
    assert list(table.columns) == ["time", "class", "count", "fraction"]
    t5 = timeline(demo_cube, "fsmi", freq="5min", model=MODEL)
    assert len(table) == t5["count"].size == 4 * 6
    for name in ("count", "fraction"):
        got = table.pivot(index="time", columns="class", values=name)
        want = t5[name].to_pandas()
        got = got.loc[want.index, list(want.columns)]
        np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-6)

    params = {"station": "fsmi", "start": "2011-11-03T04:10:00", "end": "2011-11-03T04:10:15"}
    gif = client.get("/api/movie", params=params)
    assert gif.status_code == 200 and gif.headers["content-type"] == "image/gif"
    assert gif.content.startswith(b"GIF8")
    assert gif.headers["content-disposition"] == 'attachment; filename="fsmi_20111103T041000.gif"'
    frames = list(ImageSequence.Iterator(Image.open(io.BytesIO(gif.content))))
    assert len(frames) == 6


# ---------------------------------------------------------------- 3. the cube is only read
def _snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file and folder under ``root``: sha256 (files) and mtime in ns."""
    out = {}
    for path in sorted(root.rglob("*")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        out[str(path.relative_to(root))] = (digest, path.stat().st_mtime_ns)
    out["."] = ("dir", root.stat().st_mtime_ns)
    return out


def test_a_session_leaves_the_cube_as_it_was(two: Path, tmp_path: Path) -> None:
    """A session of good and bad requests changes no byte, no mtime and no file of the
    cube, and leaves no temporary folder behind."""
    cube = Path(shutil.copytree(two, tmp_path / "cube.zarr"))
    before = _snapshot(cube)
    temp_before = set(Path(tempfile.gettempdir()).glob("oathcube-browse-*"))
    browser = Browser(cube)
    assert browser.cube.mode == "r"
    http = TestClient(make_app(browser))
    gets = [
        "/",
        "/?station=fsmi&night=2011-01-07",
        "/static/browse.js",
        "/api/stations",
        "/api/nights?station=fsmi",
        "/api/nights?station=fsmi&class=arc&start=2011-01-05",
        "/api/nights?station=gill&class=noaurora",
        "/api/night?station=fsmi&night=2011-01-05",
        "/api/night?station=fsmi&night=2011-01-07&freq=1min",
        "/api/night?station=fsmi&night=2011-01-09",
        "/api/night?station=gill&night=2011-01-05",
        "/api/frame?station=fsmi&time=2011-01-06T05:00:31",
        "/api/frame?station=gill&time=2011-01-06T05:00:00",
        "/api/frame.png?station=fsmi&time=2011-01-08T05:00:00",
        "/api/frame.png?station=fsmi&time=2011-01-08T05:00:03&size=64&download=1",
        "/api/frame.png?station=gill&time=2011-01-06T05:00:09&size=16",
        "/api/similar?station=fsmi&time=2011-01-06T05:00:30",
        "/api/similar?station=gill&time=2011-01-06T05:00:30&k=5&class=arc",
        "/api/timeline.csv?station=fsmi&night=2011-01-05",
        "/api/movie?station=fsmi&start=2011-01-06T05:00:00&end=2011-01-06T05:00:12",
    ]
    for path in gets:
        r = http.get(path)
        assert r.status_code == 200, (path, r.text)
    bad = [
        "/api/nights?station=nope",
        "/api/frame?station=fsmi&time=2012-01-01",
        "/api/night?station=fsmi&night=2011-01-06",
        "/api/similar?station=fsmi&time=2011-01-06T05:00:30&k=0",
        "/api/movie?station=fsmi&start=2011-01-06&end=2011-01-05",
        "/api/frame.png?station=fsmi&time=x",
        "/static/../cube.zarr/zarr.json",
    ]
    for path in bad:
        assert 400 <= http.get(path).status_code < 500, path
    assert http.post("/api/stations").status_code == 405
    reply(browser, {"id": 1, "view": "night", "params": {"station": "gill", "night": "2011-01-05"}})
    after = _snapshot(cube)
    assert after.keys() == before.keys(), set(after) ^ set(before)
    assert after == before
    assert set(Path(tempfile.gettempdir()).glob("oathcube-browse-*")) == temp_before


def test_a_cube_open_for_writing_is_opened_again_read_only(two: Path) -> None:
    """Browser never keeps a writable Cube: given one opened "r+", it reads its own."""
    writable = Cube.open(two, "r+")
    browser = Browser(writable)
    assert writable.mode == "r+" and browser.cube is not writable
    assert browser.cube.mode == "r" and browser.cube.location == writable.location
    assert Browser(str(two)).cube.mode == "r"


# ------------------------------------------------------------------- 4. memory is bounded
def test_one_cache_entry_per_station(two: Path) -> None:
    """What is kept between requests is one entry per station, made once."""
    browser = Browser(two)
    assert browser._stations == {}
    browser.answer("stations", {})
    kept = dict(browser._stations)
    assert set(kept) == {"fsmi", "gill"}
    for i in range(3):
        for night in ("2011-01-05", "2011-01-07", "2011-01-09", "2011-01-06"):
            browser.answer("night", {"station": "fsmi", "night": night})
            browser.answer("nights", {"station": "fsmi", "class": "arc"})
        for s in range(0, 60, 7):
            t = str(np.datetime64("2011-01-06T05:00:00") + np.timedelta64(s, "s"))
            browser.answer("frame", {"station": "gill", "time": t})
            browser.answer("frame.png", {"station": "fsmi", "time": t, "size": "16"})
        browser.answer("similar", {"station": "gill", "time": "2011-01-06T05:00:09", "k": "4"})
        browser.answer("nights", {"station": f"nope{i}"})
        browser.answer("frame", {"station": "fsmi", "time": "garbage"})
    assert set(browser._stations) == {"fsmi", "gill"}
    assert all(browser._stations[c] is kept[c] for c in kept)


# --------------------------------------------------------------------------- 5. widget
def test_widget_replies_as_the_page_is_answered(demo: Browser, client: TestClient) -> None:
    """A widget message gets the HTTP answer: JSON in the message, pictures and files as
    binary buffers, its id echoed."""
    params = {"station": "fsmi", "time": "2011-11-03T04:02:00"}
    message, buffers = reply(demo, {"id": 3, "view": "frame", "params": params})
    http = client.get("/api/frame", params=params)
    assert message == {
        "id": 3, "status": 200, "media_type": "application/json", "json": http.json()
    }  # fmt: skip
    assert buffers == []
    for extra in ({}, {"size": 128}, {"size": "128", "download": 1}):
        message, buffers = reply(demo, {"id": "a", "view": "frame.png", "params": params | extra})
        http = client.get("/api/frame.png", params=params | {k: str(v) for k, v in extra.items()})
        assert http.status_code == 200 and message["status"] == 200
        assert message["id"] == "a" and message["media_type"] == "image/png"
        assert buffers == [http.content]
        assert isinstance(buffers[0], bytes)
        name = "fsmi_20111103T040200.png" if "download" in extra else None
        assert message["filename"] == name
        want = f'attachment; filename="{name}"' if name else None
        assert http.headers.get("content-disposition") == want
        side = 128 if "size" in extra else 64
        assert Image.open(io.BytesIO(buffers[0])).size == (side, side)
    # empty and None values are left out, as the page's query leaves them out
    empty = {"station": "fsmi", "class": "", "start": None}
    message, _ = reply(demo, {"id": 4, "view": "nights", "params": empty})
    assert (
        message["status"] == 200
        and message["json"] == client.get("/api/nights?station=fsmi").json()
    )
    message, buffers = reply(demo, {"id": 5, "view": "similar", "params": params | {"k": 4}})
    assert message["json"] == client.get("/api/similar", params=params | {"k": "4"}).json()
    message, buffers = reply(demo, {"id": 6, "view": "frame", "params": {"station": "nope"}})
    assert message["status"] == 400 and "'time' is missing" in message["error"]
    message, buffers = reply(demo, {"id": 7, "view": "nights", "params": {"station": "nope"}})
    assert message == {
        "id": 7, "status": 404, "media_type": "application/json",
        "error": client.get("/api/nights?station=nope").json()["error"],
    }  # fmt: skip
    assert buffers == []


@pytest.mark.parametrize(
    "content",
    [None, 5, "frame", [], {}, {"id": 8}, {"view": 5}, {"id": 8, "view": None},
     {"id": 8, "view": "frame", "params": ["station", "fsmi"]},
     {"id": 8, "view": "frame", "params": "station=fsmi"},
     {"id": 8, "view": "frame", "params": None}],
)  # fmt: skip
def test_widget_malformed_messages_are_400(demo: Browser, content: Any) -> None:
    """A message that is not a request is answered with a 400, never an exception."""
    message, buffers = reply(demo, content)
    assert message["status"] == 400 and buffers == []
    assert message["error"] == "a request names a view and parameters"
    assert message["id"] == (content.get("id") if isinstance(content, dict) else None)


def test_widget_odd_parameter_values_are_400(demo: Browser) -> None:
    """Values that are not texts are written as texts and checked as such."""
    base = {"station": "fsmi", "time": "2011-11-03T04:02:00"}
    for extra, said in [
        ({"size": [1, 2]}, "size '[1, 2]'"),
        ({"size": 8}, "size 8"),
        ({"download": 2}, "download '2'"),
        ({"time": "9" * (MAX_VALUE + 1)}, "not a short text"),
        ({"bogus": 1}, "unknown parameter 'bogus'"),
    ]:
        message, buffers = reply(demo, {"id": 1, "view": "frame.png", "params": base | extra})
        assert message["status"] == 400 and said in message["error"], message
        assert buffers == []
    message, _ = reply(demo, {"id": 2, "view": "nope", "params": {}})
    assert message["status"] == 404 and "no such view 'nope'" in message["error"]


def test_browse_returns_a_widget(demo_cube: Path) -> None:
    """oathcube.browse gives an anywidget carrying the page's script, opened where asked;
    an unknown station or night is refused in one line naming it."""
    w = oathcube.browse(demo_cube, station="fsmi")
    assert "export default" in w._esm and w._css
    assert (w.station, w.night, w.time, w.error) == ("fsmi", "", "", "")
    assert w.browser.cube.mode == "r"
    w = oathcube.browse(demo_cube, station="fsmi", night=NIGHT, time="2011-11-03T04:00:03")
    assert (w.night, w.time) == (NIGHT, "2011-11-03T04:00:03")
    # its message handler sends the reply
    sent: list[tuple[Any, Any]] = []
    w.send = lambda msg, buffers=None: sent.append((msg, buffers))  # type: ignore[method-assign]
    at = {"station": "fsmi", "time": "2011-11-03T04:00:03"}
    w._on_msg(w, {"id": 11, "view": "frame.png", "params": at}, [])
    assert sent[0][0]["id"] == 11 and sent[0][1][0].startswith(b"\x89PNG")
    w._on_msg(w, {"id": 12, "view": "stations", "params": {}}, [])
    assert sent[1][0]["json"][0]["station"] == "fsmi" and sent[1][1] is None
    w._on_msg(w, None, [])
    assert sent[2][0]["status"] == 400
    assert oathcube.browse(demo_cube).station == ""
    for kwargs, said in [
        ({"station": "nope"}, "no station 'nope' in this cube: one of fsmi"),
        ({"station": "fsmi", "night": "1999-01-01"}, "night of 1999-01-01"),
        ({"station": "fsmi", "time": "1999-01-01"}, "no frame of fsmi"),
        ({"night": NIGHT}, "name the station"),
    ]:
        with pytest.raises(OptionError) as err:
            oathcube.browse(demo_cube, **kwargs)
        assert said in str(err.value) and "\n" not in str(err.value)


# ------------------------------------------------------------------------ 6. command line
@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--station", "nope"], "no station 'nope' in this cube: one of fsmi"),
        (["--station", "fsmi", "--night", "1999-01-01"], "night of 1999-01-01"),
        (["--night", NIGHT], "name the station"),
        (["--port", "70000"], "port 70000"),
        (["--port", "-1"], "port -1"),
        (["--host", ""], "host ''"),
        (["--host", "local host"], "host 'local host'"),
        (["--model", "nope"], "no model 'nope'"),
        (["--missing-cube"], "missing.zarr"),
    ],
)
def test_browse_command_refusals_are_one_line(
    demo_cube: Path, tmp_path: Path, runner: Any, args: list[str], said: str
) -> None:
    """A bad station, night, port, host, model or cube: exit 1, one line, no traceback
    (and no server started)."""
    cube = str(demo_cube)
    if args == ["--missing-cube"]:
        cube, args = str(tmp_path / "missing.zarr"), []
    out = runner.invoke(app, ["browse", cube, *args])
    assert out.exit_code == 1, out.output
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("oathcube: error:"), out.stderr
    assert said in lines[0], lines[0]
    assert "Traceback" not in out.output and "http://" not in out.output


# ------------------------------------------------------------------------- 7. a server
def _browse(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "oathcube.cli", "browse", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def server(demo_cube: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``oathcube browse DEMO --port 0`` in its own process, and the URL it printed."""
    proc = _browse(str(demo_cube), "--port", "0", "--station", "fsmi")
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 90)
        line = proc.stdout.readline() if ready else ""
        found = re.search(r"(http://127\.0\.0\.1:(\d+)/)\S*", line)
        assert found, (line, proc.poll())
        assert "read-only" in line and "?station=fsmi" in line
        yield proc, found.group(1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.slow
def test_a_real_server_answers_and_holds_its_port(
    server: tuple[subprocess.Popen[str], str], demo_cube: Path
) -> None:
    """The command serves the API on the port it says; a second one on that port exits
    1 in one line."""
    proc, url = server
    # The command listens before it prints its address: the first request is answered.
    r = urllib.request.urlopen(url + "api/stations", timeout=30)
    with r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
        stations = json.loads(r.read())
    assert [s["station"] for s in stations] == ["fsmi"] and stations[0]["n_frames"] == 360
    with urllib.request.urlopen(url + "?station=fsmi", timeout=30) as r:
        assert r.status == 200 and b"oc-state" in r.read()
    port = url.rsplit(":", 1)[1].strip("/")
    second = _browse(str(demo_cube), "--port", port)
    try:
        out, err = second.communicate(timeout=90)
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
    assert second.returncode == 1, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0], err
    assert "Traceback" not in err and out == ""
    assert proc.poll() is None  # the first one still serves
    with urllib.request.urlopen(url + "api/nights?station=fsmi", timeout=30) as r:
        assert json.loads(r.read())[0]["night"] == NIGHT


class _Served:
    """What serve() hands uvicorn and the web browser, caught without serving."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import webbrowser

        import uvicorn

        self.port = -1
        self.listening: dict[str, int] = {}
        self.opened: list[str] = []
        self._sock: Any = None
        served = self

        def run(server: Any, sockets: list[Any]) -> None:
            (served._sock,) = sockets
            served.port = served._sock.getsockname()[1]
            served.listening["run"] = served._accepting()
            served._sock.close()

        def open_page(url: str) -> bool:
            self.opened.append(url)
            return True

        monkeypatch.setattr(uvicorn.Server, "run", run)
        monkeypatch.setattr(webbrowser, "open", open_page)

    def _accepting(self) -> int:
        return int(self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))


def test_serve_says_the_port_it_bound(
    demo: Browser, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """serve() prints (and opens) the address of the port it bound, page state included."""
    served = _Served(monkeypatch)
    serve(demo, port=0, station="fsmi", night=NIGHT, open_browser=True)
    url = f"http://127.0.0.1:{served.port}/?station=fsmi&night={NIGHT}"
    assert served.port > 0 and served.opened == [url]
    assert capsys.readouterr().out.splitlines() == [
        f"oathcube browse: {url}  (read-only; Ctrl-C stops)",
        "oathcube browse: stopped",
    ]


def test_serve_listens_before_it_says_its_address(
    demo: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By the time the address is printed (and handed uvicorn), the port accepts."""
    served = _Served(monkeypatch)
    serve(demo, port=0)
    assert served.listening["run"] == 1


def test_routes_are_the_ones_the_page_uses() -> None:
    """The browser's views are a fixed table (the tests above cover each of them)."""
    assert set(ROUTES) == {
        "stations", "nights", "night", "frame", "frame.png", "similar", "timeline.csv", "movie"
    }  # fmt: skip


def test_serving_leaves_the_process_logging_alone(demo: Browser) -> None:
    """uvicorn's own logging set-up (dictConfig) closes every handler of the process (a
    notebook's, a test runner's); the app is served without it, so none is closed."""
    import logging

    from oathcube.browser.app import running

    class Kept(logging.Handler):
        closed = False

        def emit(self, record: logging.LogRecord) -> None:
            pass

        def close(self) -> None:
            Kept.closed = True
            super().close()

    handler = Kept()
    logging.getLogger("someone.else").addHandler(handler)
    try:
        with running(demo) as url:
            with urllib.request.urlopen(url + "api/stations", timeout=30) as r:
                assert r.status == 200
        assert not Kept.closed
    finally:
        logging.getLogger("someone.else").removeHandler(handler)


@pytest.mark.slow
def test_ctrl_c_stops_the_server_quietly(demo_cube: Path) -> None:
    """Ctrl-C (SIGINT) is how a server stops: exit 0 and "stopped", not the message of
    an interrupted write ("Rerun the command to resume")."""
    import signal

    proc = _browse(str(demo_cube), "--port", "0")
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 90)
        assert ready and "read-only" in proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "oathcube browse: stopped" in out
    assert "Rerun" not in err and "Traceback" not in err
