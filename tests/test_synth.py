"""Tests of oathcube.synth: the synthetic archive's layout, its quirks, and its images."""

from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta
from pathlib import Path

import h5py
import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from oathcube.synthetic import (
    CLASS_NAMES,
    OATH_CLASS_COUNTS,
    STATION_LONGITUDES,
    class_counts,
    render_sky,
    station_night,
    synth,
    synth_logits,
    write_split,
)

# The module that draws the archive (where `synth` looks up `_render_to`).
SYNTH_MODULE = sys.modules["oathcube.synthetic.oath"]

N, SIZE, SEED = 40, 32, 5
DASHES = "-" * 79
CLASS_ROW = re.compile(
    r"^([01]),([0-5]),(\d{5}),(arc|diffuse|discrete|cloudy|moon|noaurora),(\d{3})$"
)
ORIGIN_ROW = re.compile(
    r"^([a-z]{4}) (\d{2}/[A-Z][a-z]{2}/\d{4} \d{2}:\d{2}:\d{2}\.\d),"
    r"images/scaled_cropped/(\d{5})\.png$"
)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-image archive of 32x32 frames (seed 5)."""
    return synth(tmp_path_factory.mktemp("synth") / "oath", n=N, size=SIZE, seed=SEED)


def _lines(path: Path) -> list[str]:
    raw = path.read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n")  # LF endings, final newline, as published
    return raw.decode("ascii").split("\n")[:-1]


# --------------------------------------------------------------------------------------------
# Split and class counts
# --------------------------------------------------------------------------------------------


def test_split_is_byte_identical_to_published(tmp_path: Path, shared: Path) -> None:
    path = write_split(tmp_path / "train_test_split.csv", 5824)
    published = shared / "data" / "oath" / "train_test_split.csv"
    assert path.read_bytes() == published.read_bytes()


def test_split_leaves_global_random_state_alone(tmp_path: Path) -> None:
    np.random.seed(123)
    expected = np.random.rand(3)
    np.random.seed(123)
    write_split(tmp_path / "split.csv", 50)
    assert np.array_equal(np.random.rand(3), expected)
    arr = np.loadtxt(tmp_path / "split.csv", delimiter=",")
    assert arr.shape == (5, 50)
    assert all(sorted(row) == list(range(50)) for row in arr.astype(int).tolist())


def test_class_counts() -> None:
    assert tuple(class_counts(5824)) == OATH_CLASS_COUNTS
    for n in (1, 5, 6, 7, 40, 90, 1000):
        counts = class_counts(n)
        assert counts.sum() == n and (counts >= 0).all()
        if n >= 6:
            assert (counts >= 1).all()


# --------------------------------------------------------------------------------------------
# Archive layout
# --------------------------------------------------------------------------------------------


def test_layout(small: Path) -> None:
    files = {p.relative_to(small).as_posix() for p in small.rglob("*") if p.is_file()}
    expected = {
        "00_README",
        "code/README",
        "classifications/classifications.csv",
        "classifications/train_test_split.csv",
        "features/auroral_feat.h5",
        "images/files_origin.csv",
    } | {f"images/cropped_scaled/{i:05d}.png" for i in range(1, N + 1)}
    assert files == expected
    readme = (small / "00_README").read_text()
    assert "SYNTHETIC" in readme and "NOT THE OATH DATA" in readme
    assert f"seed {SEED}" in readme and f"{N} images" in readme
    assert "not Inception" in readme.replace("NOT", "not")
    code = (small / "code" / "README").read_text()
    assert "ridge.py" in code and "rotate.sh" in code and "not reproduce" in code
    # Nothing half-written is left beside the archive.
    assert [p.name for p in small.parent.iterdir()] == [small.name]


def test_classifications_csv(small: Path) -> None:
    lines = _lines(small / "classifications" / "classifications.csv")
    preamble = lines[:18]
    assert preamble[0] == DASHES and preamble[17] == DASHES
    assert "" in preamble[1:17] and "SYNTHETIC" in preamble[1]
    assert lines[18] == "class2,class6,picNum,picType,rotAng"
    rows = lines[19:]
    assert len(rows) == N
    counts = np.zeros(6, int)
    for i, row in enumerate(rows, start=1):
        m = CLASS_ROW.match(row)
        assert m, row
        class2, class6, pic, name, rot = m.groups()
        assert int(pic) == i
        assert name == CLASS_NAMES[int(class6)]
        assert int(class2) == int(int(class6) >= 3)
        assert 0 <= int(rot) <= 359
        counts[int(class6)] += 1
    assert tuple(counts) == tuple(class_counts(N))
    # ridge.py's own way of reading it.
    table = pd.read_csv(small / "classifications" / "classifications.csv", skiprows=18)
    assert list(table.columns) == ["class2", "class6", "picNum", "picType", "rotAng"]


def test_files_origin_quirks(small: Path) -> None:
    lines = _lines(small / "images" / "files_origin.csv")
    classifications = _lines(small / "classifications" / "classifications.csv")
    assert lines[:18] == classifications[:18]  # the same preamble, and no header after it
    rows = lines[18:]
    assert len(rows) == N - 1
    parsed = []
    for row in rows:
        m = ORIGIN_ROW.match(row)
        assert m, row
        station, when, pic = m.groups()
        assert station in STATION_LONGITUDES
        parsed.append((station, datetime.strptime(when, "%d/%b/%Y %H:%M:%S.%f"), int(pic)))
    assert [p for _, _, p in parsed] == list(range(2, N + 1))  # no row for image 00001


def test_files_origin_blocks_are_plausible_nights(tmp_path: Path) -> None:
    # Only the text files matter here: 300 images of 16 px keep it fast.
    root = synth(tmp_path / "a", n=300, size=16, seed=11)
    rows = [ORIGIN_ROW.match(r).groups() for r in _lines(root / "images" / "files_origin.csv")[18:]]
    blocks: list[list[tuple[str, datetime]]] = []
    for station, when, _ in rows:
        t = datetime.strptime(when, "%d/%b/%Y %H:%M:%S.%f")
        if not blocks or (blocks[-1][-1][0], blocks[-1][-1][1].date()) != (station, t.date()):
            blocks.append([])
        blocks[-1].append((station, t))
    assert len(blocks) >= 3
    for block in blocks:
        times = [t for _, t in block]
        assert all(b > a for a, b in zip(times, times[1:], strict=False))
    for station, t in (entry for block in blocks for entry in block):
        assert 2006 <= t.year <= 2016 and t.month in (11, 12, 1, 2)
        assert t.second % 3 == 0 and t.microsecond == 0  # on the 3 s frame grid
        # Within five hours of local (solar) midnight.
        midnight = (-STATION_LONGITUDES[station] / 15.0) % 24.0
        hours = t.hour + t.minute / 60 + t.second / 3600
        assert abs(hours - midnight) <= 5.0, (station, t)


def test_features_h5(small: Path) -> None:
    table = pd.read_csv(small / "classifications" / "classifications.csv", skiprows=18, dtype=str)
    with h5py.File(small / "features" / "auroral_feat.h5", "r") as h5:
        logits = h5["Logits"][()]
        names = h5["filenames"][()]
    assert logits.shape == (N, 1001) and logits.dtype == np.float32
    assert np.isfinite(logits).all()
    assert isinstance(names[0], bytes)
    expected = [
        f"images/cropped_scaled_rotated/{p}_{r}.png".encode()
        for p, r in zip(table["picNum"], table["rotAng"], strict=True)
    ]
    assert list(names) == expected
    assert list(names) == sorted(names)  # sorted-filename order is picNum order


def test_images(small: Path) -> None:
    for i in (1, 2, N):
        im = iio.imread(small / "images" / "cropped_scaled" / f"{i:05d}.png")
        assert im.shape == (SIZE, SIZE) and im.dtype == np.uint8
        assert im[0, 0] == im[0, -1] == im[-1, 0] == im[-1, -1] == 0  # outside the sky disc


def test_deterministic_by_seed(small: Path, tmp_path: Path) -> None:
    again = synth(tmp_path / "again", n=N, size=SIZE, seed=SEED)
    for p in small.rglob("*"):
        if p.is_file() and p.suffix != ".h5":  # h5 files carry no timestamps, but be safe
            assert (again / p.relative_to(small)).read_bytes() == p.read_bytes(), p
    with (
        h5py.File(small / "features" / "auroral_feat.h5") as a,
        h5py.File(again / "features" / "auroral_feat.h5") as b,
    ):
        assert np.array_equal(a["Logits"][()], b["Logits"][()])
    other = synth(tmp_path / "other", n=N, size=SIZE, seed=SEED + 1)
    assert (other / "images" / "files_origin.csv").read_bytes() != (
        small / "images" / "files_origin.csv"
    ).read_bytes()
    # Labels, times and features do not depend on the image size.
    tiny = synth(tmp_path / "tiny", n=N, size=16, seed=SEED)
    for rel in ("classifications/classifications.csv", "images/files_origin.csv"):
        assert (tiny / rel).read_bytes() == (small / rel).read_bytes()


def test_refuses_non_empty_target_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "x"
    target.mkdir()
    (target / "keep").write_text("mine")
    with pytest.raises(FileExistsError, match="already exists"):
        synth(target, n=6, size=16)
    assert (target / "keep").read_text() == "mine"

    def broken(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(SYNTH_MODULE, "_render_to", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        synth(tmp_path / "y", n=6, size=16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]  # no archive, no leftovers


def test_empty_existing_folder_is_fine(tmp_path: Path) -> None:
    (tmp_path / "e").mkdir()
    assert (synth(tmp_path / "e", n=6, size=16) / "00_README").is_file()


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^n: 0 images \(expected at least 1\)"):
        synth(tmp_path / "a", n=0)
    with pytest.raises(ValueError, match=r"^size: 8 pixels \(expected at least 16"):
        synth(tmp_path / "a", n=3, size=8)


@pytest.mark.slow
def test_features_give_ridge_accuracy_like_the_paper() -> None:
    sklearn = pytest.importorskip("sklearn.linear_model")
    n = 5824
    labels = np.repeat(np.arange(6), class_counts(n))
    np.random.default_rng(0).shuffle(labels)
    x = synth_logits(labels, seed=0)
    split = np.argsort(np.random.RandomState(1804).rand(5, n), axis=1)
    ntrain = round(0.7 * n)
    accuracies = []
    for row in split[[0, 4]]:  # two folds of ridge.py's protocol are enough to place it
        model = sklearn.RidgeClassifier(alpha=0.03).fit(x[row[:ntrain]], labels[row[:ntrain]])
        accuracies.append(np.mean(model.predict(x[row[ntrain:]]) == labels[row[ntrain:]]))
    assert 0.75 <= np.mean(accuracies) <= 0.9, accuracies


# --------------------------------------------------------------------------------------------
# Images per class
# --------------------------------------------------------------------------------------------


def _class_stats(class6: int, count: int = 16, size: int = 128) -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    inner = (yy - c) ** 2 + (xx - c) ** 2 < (0.45 * size) ** 2
    stats: dict[str, list[float]] = {k: [] for k in ("mean", "p995", "sat", "aniso", "stars")}
    for i in range(count):
        im = render_sky(class6, np.random.default_rng([99, class6, i]), size)
        f = im.astype(np.float64)
        labels, nlab = ndi.label(im == 255)
        stats["sat"].append(np.bincount(labels.ravel())[1:].max() if nlab else 0)
        stats["mean"].append(f[inner].mean())
        stats["p995"].append(np.percentile(f[inner], 99.5))
        # Gradient energy along columns (north-south) over rows (east-west), at scales
        # larger than stars and noise: east-west forms have most of it north-south.
        sm = ndi.gaussian_filter(f, 1.5)
        gy = np.abs(np.diff(sm, axis=0))[:, :-1][inner[:-1, :-1]].sum()
        gx = np.abs(np.diff(sm, axis=1))[:-1, :][inner[:-1, :-1]].sum()
        stats["aniso"].append(gy / gx)
        stats["stars"].append(((f - ndi.median_filter(f, 5)) > 12)[inner].sum())
    return {k: np.asarray(v, dtype=float) for k, v in stats.items()}


@pytest.fixture(scope="module")
def class_stats() -> dict[int, dict[str, np.ndarray]]:
    return {c: _class_stats(c) for c in range(6)}


def test_render_sky_basics() -> None:
    for c in range(6):
        a = render_sky(c, np.random.default_rng(1), 64)
        b = render_sky(c, np.random.default_rng(1), 64)
        assert a.shape == (64, 64) and a.dtype == np.uint8
        assert np.array_equal(a, b)
        assert a[0, 0] == 0 and a[32, 32] > 0
    with pytest.raises(ValueError, match="class6"):
        render_sky(6, np.random.default_rng(0))
    with pytest.raises(ValueError, match="size"):
        render_sky(0, np.random.default_rng(0), 8)


def test_moon_has_a_saturated_disc(class_stats: dict[int, dict[str, np.ndarray]]) -> None:
    assert (class_stats[4]["sat"] >= 5).all()
    for c in (1, 3, 5):  # only single bright-star pixels saturate in these
        assert (class_stats[c]["sat"] <= 2).all(), c
    assert class_stats[4]["mean"].mean() > class_stats[5]["mean"].mean() + 10  # glare


def test_arcs_are_east_west(class_stats: dict[int, dict[str, np.ndarray]]) -> None:
    assert (class_stats[0]["aniso"] > 1.5).all()
    for c in (1, 3, 4, 5):
        assert class_stats[0]["aniso"].mean() > 2 * class_stats[c]["aniso"].mean(), c


def test_clear_is_darkest_with_stars(class_stats: dict[int, dict[str, np.ndarray]]) -> None:
    clear = class_stats[5]
    for c in range(5):
        assert clear["mean"].mean() < class_stats[c]["mean"].mean(), c
    assert clear["stars"].mean() > 2 * class_stats[3]["stars"].mean()  # clouds hide stars
    assert (clear["stars"] >= 10).all()


def test_discrete_is_bright_and_diffuse_is_faint(
    class_stats: dict[int, dict[str, np.ndarray]],
) -> None:
    bright = {c: class_stats[c]["p995"].mean() for c in range(6)}
    assert bright[2] > 1.5 * max(bright[1], bright[3], bright[5])
    # Diffuse glow: brighter than a clear sky, but about star-bright, far below discrete forms.
    assert bright[5] < bright[1] < bright[2]
    assert class_stats[1]["mean"].mean() > class_stats[5]["mean"].mean() + 5


# --------------------------------------------------------------------------------------------
# Station night
# --------------------------------------------------------------------------------------------


def test_station_night(tmp_path: Path) -> None:
    seq = (5, 0, 2, 1, 3, 4)
    out = station_night(tmp_path / "night", frames_per_class=3, size=32, sequence=seq)
    frames = sorted((out / "frames").glob("*.png"))
    assert len(frames) == 18
    assert frames[0].name == "fsmi_20111103_040000.png"
    assert frames[-1].name == "fsmi_20111103_040051.png"
    assert all(re.fullmatch(r"fsmi_\d{8}_\d{6}\.png", f.name) for f in frames)
    im = iio.imread(frames[0])
    assert im.shape == (32, 32) and im.dtype == np.uint8
    truth = pd.read_csv(out / "truth.csv")
    assert list(truth.columns) == ["station", "time", "class6", "label"]
    assert list(truth["class6"]) == [c for c in seq for _ in range(3)]
    assert list(truth["label"]) == [CLASS_NAMES[c] for c in truth["class6"]]
    times = pd.to_datetime(truth["time"])
    assert (times.diff().dropna() == pd.Timedelta(seconds=3)).all()
    names = [f"fsmi_{t:%Y%m%d_%H%M%S}.png" for t in times]
    assert names == [f.name for f in frames]
    assert "SYNTHETIC" in (out / "00_README").read_text()
    again = station_night(tmp_path / "again", frames_per_class=3, size=32, sequence=seq)
    assert all((again / "frames" / f.name).read_bytes() == f.read_bytes() for f in frames)


def test_station_night_across_midnight_and_fractional_cadence(tmp_path: Path) -> None:
    out = station_night(
        tmp_path / "n",
        station="gill",
        start="2012-12-31T23:59:57",
        sequence=(0,),
        frames_per_class=4,
        cadence_s=1.5,
        size=16,
    )
    names = sorted(p.name for p in (out / "frames").glob("*.png"))
    assert names == [
        "gill_20121231_235957.png",
        "gill_20121231_235958.png",
        "gill_20130101_000000.png",
        "gill_20130101_000001.png",
    ]
    truth = pd.read_csv(out / "truth.csv")
    start = datetime(2012, 12, 31, 23, 59, 57)
    assert list(pd.to_datetime(truth["time"])) == [
        start + timedelta(seconds=1.5 * k) for k in range(4)
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"station": "xxxx"}, "unknown THEMIS station"),
        ({"sequence": (0, 7)}, "classes 0..5"),
        ({"start": "yesterday"}, "ISO 8601"),
        ({"start": "2011-11-03T04:00:00+00:00"}, "without a time zone"),
        ({"cadence_s": 0.5}, "at least 1 s"),
        ({"frames_per_class": 0}, "frames_per_class"),
    ],
)
def test_station_night_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        station_night(tmp_path / "n", size=16, **kwargs)
    assert not (tmp_path / "n").exists()
