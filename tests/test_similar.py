"""similar (oathcube.similar): exact cosine search equals a brute-force numpy search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import zarr

from oathcube import classify, compute_features, ingest, similar, train
from oathcube.cli import app
from oathcube.rawprep import RawPreparation
from oathcube.synthetic.themis import write_cdf

FEATURES = "features_handcrafted"


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory, cube_factory: Any) -> tuple[Path, str]:
    """A cube with two classified stations in chunks of 8 frames: fsmi 05:00 and 06:00
    (30 frames each, 3 s apart), gill 05:00 (20), and the 90 labelled images."""
    base = tmp_path_factory.mktemp("similar")
    raw = base / "raw"
    raw.mkdir()
    write_cdf(raw, "fsmi", "2011-01-06T05:00:00", 30, size=32, seed=1)
    write_cdf(raw, "fsmi", "2011-01-06T06:00:00", 30, size=32, seed=2)
    write_cdf(raw, "gill", "2011-01-06T05:00:00", 20, size=32, seed=3)
    cube = cube_factory.copy(base / "cube.zarr")
    compute_features(cube, "handcrafted", scheduler="synchronous")
    model = train(cube, "handcrafted")
    ingest([raw], cube, preparation=RawPreparation(out_size=32), chunk_frames=8)
    classify(cube, model, scheduler="synchronous")
    return cube, model


def _brute(
    cube: Path,
    model: str,
    query: tuple[str, str],
    k: int,
    x: float,
    stations: tuple[str, ...] = ("fsmi", "gill"),
    start: str | None = None,
    end: str | None = None,
    klass: int | None = None,
) -> pd.DataFrame:
    """Every frame scored in float64, the rules applied naively, in the one order."""
    root = zarr.open_group(str(cube), mode="r")
    rows = []
    for code in stations:
        g = root[f"stations/{code}"]
        feats = np.asarray(g[FEATURES][:], dtype=np.float64)
        times = pd.to_datetime(np.asarray(g["time"][:]), unit="us").to_numpy()
        pred = np.asarray(g[f"predicted_{model}"][:])
        for i in range(len(times)):
            rows.append((code, times[i], feats[i], int(pred[i])))
    qstation, qtime = query
    qt = np.datetime64(qtime, "ns")
    qg = root[f"stations/{qstation}"]
    qtimes = pd.to_datetime(np.asarray(qg["time"][:]), unit="us").to_numpy()
    qrow = int(np.argmin(np.abs(qtimes - qt)))
    qt = qtimes[qrow]
    qv = np.asarray(qg[FEATURES][qrow], dtype=np.float64)
    qv /= np.linalg.norm(qv)
    window = np.timedelta64(int(round(x * 1e9)), "ns")
    kept = []
    for code, t, f, p in rows:
        if code == qstation and abs(t - qt) <= window:
            continue
        if start is not None and t < np.datetime64(start):
            continue
        if end is not None and t > np.datetime64(end):
            continue
        if klass is not None and p != klass:
            continue
        norm = np.linalg.norm(f)
        kept.append((code, t, 0.0 if norm == 0 else float(f @ qv / norm)))
    hits = []
    for code, t, s in kept:
        better = [
            1
            for c2, t2, s2 in kept
            if c2 == code and abs(t2 - t) <= window and (s2 > s or (s2 == s and t2 < t))
        ]
        if not better:
            hits.append((code, t, s))
    hits.sort(key=lambda h: (-h[2], h[0], h[1]))
    return pd.DataFrame(hits[:k], columns=["station", "time", "score"])


def _same(table: pd.DataFrame, brute: pd.DataFrame) -> None:
    assert list(table["station"]) == list(brute["station"])
    assert list(table["time"]) == list(brute["time"])
    np.testing.assert_allclose(table["score"], brute["score"], atol=1e-6, rtol=0)
    assert list(table["rank"]) == list(range(1, len(table) + 1))


QUERIES = [
    ("fsmi", "2011-01-06T05:00:30"),
    ("fsmi", "2011-01-06T06:01:27"),
    ("gill", "2011-01-06T05:00:00"),
]


@pytest.mark.parametrize("x", [0.0, 10.0, 30.0, 4000.0])
@pytest.mark.parametrize("block_rows", [None, 5, 7])
def test_exact_search_equals_brute_force(
    searched: tuple[Path, str], x: float, block_rows: Any
) -> None:
    cube, model = searched
    for query in QUERIES:
        table = similar(
            cube, station=query[0], time=query[1], features="handcrafted", k=12,
            exclude_seconds=x, block_rows=block_rows, scheduler="synchronous",
        )  # fmt: skip
        _same(table, _brute(cube, model, query, 12, x))


def test_filters_equal_brute_force(searched: tuple[Path, str]) -> None:
    cube, model = searched
    query = QUERIES[0]
    start, end = "2011-01-06T05:00:20", "2011-01-06T06:00:40"
    table = similar(
        cube, station=query[0], time=query[1], k=50, stations=["fsmi"], start=start, end=end,
        exclude_seconds=10, block_rows=6, scheduler="synchronous",
    )  # fmt: skip
    _same(table, _brute(cube, model, query, 50, 10, ("fsmi",), start, end))
    assert table.attrs["features"] == "handcrafted"  # the only ones: the default's last

    classes = table["class"].unique()
    name = str(classes[0])
    root = zarr.open_group(str(cube), mode="r")
    attrs = root[f"stations/fsmi/predicted_{model}"].attrs
    code = dict(zip(attrs["flag_meanings"].split(), attrs["flag_values"], strict=True))[name]
    by_class = similar(
        cube, station=query[0], time=query[1], k=50, klass=name, exclude_seconds=10,
        block_rows=7, scheduler="synchronous",
    )  # fmt: skip
    _same(by_class, _brute(cube, model, query, 50, 10, klass=code))
    assert set(by_class["class"]) == {name}
    assert by_class["class_score"].notna().all()


def test_a_batch_equals_its_queries_one_by_one(searched: tuple[Path, str]) -> None:
    cube, _ = searched
    batch = similar(cube, queries=[*QUERIES, 5], k=6, block_rows=9, include_labelled=True)
    assert sorted(batch["query"].unique()) == [0, 1, 2, 3]
    for i, query in enumerate([*QUERIES, 5]):
        one = (
            similar(cube, image=query, k=6, include_labelled=True)
            if isinstance(query, int)
            else similar(cube, station=query[0], time=query[1], k=6, include_labelled=True)
        )
        got = batch[batch["query"] == i].drop(columns="query").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, one.drop(columns="query"))
    # the labelled image never finds itself, and labelled images are hits
    mine = batch[batch["query"] == 3]
    assert 5 not in set(mine["image"].dropna()) and mine["image"].notna().any()


def test_montage_and_csv_from_the_command_line(
    searched: tuple[Path, str], tmp_path: Path, runner: Any
) -> None:
    cube, _ = searched
    png, csv = Path("/tmp/similar_hits.png"), tmp_path / "hits.csv"
    args = ["similar", str(cube), "--station", "fsmi", "--time", "2011-01-06T05:00:30", "-k", "8"]
    out = runner.invoke(app, [*args, "--out", str(png)])
    assert out.exit_code == 0, out.output
    assert png.stat().st_size > 20_000
    out = runner.invoke(app, [*args, "--out", str(csv), "--stations", "gill"])
    assert out.exit_code == 0, out.output
    # gill's 20 frames span 57 s: two hits 30 s apart at most
    assert len(pd.read_csv(csv)) == 2
    out = runner.invoke(
        app, [*args, "--out", str(csv), "--stations", "gill", "--exclude-seconds", "0"]
    )
    assert out.exit_code == 0, out.output
    table = pd.read_csv(csv)
    assert len(table) == 8 and set(table["station"]) == {"gill"}
    assert "handcrafted" in out.output


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["-k", "0"], "-k: k=0 (expected a number of hits >= 1)"),
        (["--stations", "nope"], "no station 'nope' in the cube (expected one of fsmi, gill)"),
        (["--time", "2011-01-06T05:30:00"], "the nearest is 2011-01-06 05:01:27 UTC"),
        (["--features", "aurora_fm"], "`oathcube features --extractor aurora_fm --station fsmi`"),
        (["--class", "nope"], "--class: class 'nope'"),
        (["--exclude-seconds", "-1"], "--exclude-seconds"),
        (["--out", "x.txt"], "unknown file kind '.txt'"),
    ],
)
def test_bad_values_are_one_line(
    searched: tuple[Path, str], runner: Any, extra: list[str], said: str
) -> None:
    cube, _ = searched
    args = ["similar", str(cube), "--station", "fsmi", "--time", "2011-01-06T05:00:30"]
    if extra[0] == "--time":
        args = args[:-2]
    out = runner.invoke(app, [*args, *extra])
    assert out.exit_code == 1, out.output
    lines = [line for line in out.output.splitlines() if line.startswith("oathcube: error:")]
    assert len(lines) == 1, out.output
    assert said in lines[0], out.output
    assert "Traceback" not in out.output
