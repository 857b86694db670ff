"""Views: keograms, captioned movies, maps and nightly statistics of a classified station.

The station is SYNTHETIC: small PGM files whose pixel values encode their row, column and
time, ``(7 y + 3 x + 11 t) % 256``, ingested with an identity preparation, and classes
written the way ``oathcube classify`` writes them, so that every value a view shows can
be traced to the pixel and the class it came from.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import imageio.v2 as iio2
import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from PIL import Image

from oathcube import ingest, keogram, movie, night_statistics, sky_map
from oathcube.archive.skymap import ideal_skymap, read_skymap
from oathcube.cli import app
from oathcube.cube.schema import prediction_names, prediction_specs, station_group, variable_path
from oathcube.cube.store import Cube
from oathcube.errors import CubeError, OptionError
from oathcube.ingestion.skymaps import store_skymaps
from oathcube.labels import CLASS6_NAMES
from oathcube.rawprep import RawPreparation
from oathcube.synthetic.themis import write_pgm
from oathcube.views.keograms import _columns, meridian_pixels, write_keogram
from oathcube.views.maps import write_map
from oathcube.views.movies import CAPTION_HEIGHT, caption_frame
from oathcube.views.nights import write_nights

SIZE = 32
#: Counts 0..255 pass unchanged: (raw - 0) * 255 / 255, nothing cropped.
IDENTITY = RawPreparation(
    scaling="fixed", fixed_low=0, fixed_high=255, crop_radius_fraction=None, out_size=SIZE
)
#: Start of each PGM file and its frames: a gap of 10 min, then another night.
FILES = [("2011-01-06T05:00:00", 6), ("2011-01-06T05:10:00", 4), ("2011-01-07T05:00:00", 5)]
#: Classes of the 15 frames (class6 indices): 3 cloudy, 2 moon, 6 aurora, 4 clear.
CLASSES = [5, 5, 0, 0, 3, 3, 1, 2, 4, 5, 2, 2, 3, 4, 5]


def _value(t: int, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return (7 * y + 3 * x + 11 * t) % 256


def _frames(first: int, n: int) -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    return np.stack([_value(first + i, y, x) for i in range(n)]).astype(np.uint16)


def _write_classes(cube: Path, station: str, model: str = "fake6") -> None:
    """Predictions as classify writes them: scores, labels, flag values and meanings."""
    opened = Cube.open(cube, "r+")
    group = station_group(station)
    pred, score, labels = prediction_specs(
        model, dim="time", rows_per_chunk=64, classes=CLASS6_NAMES, class_index=range(6)
    )
    n = len(CLASSES)
    scores = np.full((n, 6), -1.0, dtype=np.float32)
    scores[np.arange(n), CLASSES] = 0.5 + 0.01 * np.arange(n)
    opened.create(score, (n, 6), group=group, overwrite=True)
    opened.write_labels(group, labels.name, list(CLASS6_NAMES))
    opened.write_rows(variable_path(group, score.name), 0, scores)
    opened.create(pred, (n,), group=group, overwrite=True)
    opened.write_rows(variable_path(group, pred.name), 0, np.array(CLASSES, dtype=np.int8))
    opened.publish()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("views")
    raw = root / "raw"
    raw.mkdir()
    first = 0
    for start, n in FILES:
        write_pgm(raw, "fsmi", start, n, size=SIZE, frames=_frames(first, n))
        first += n
    cube = root / "cube.zarr"
    ingest([raw], cube, preparation=IDENTITY, progress=False)
    _write_classes(cube, "fsmi")
    return cube


@pytest.fixture
def cube(base: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(base, tmp_path / "cube.zarr"))


@pytest.fixture
def with_skymap(cube: Path) -> Path:
    store_skymaps([ideal_skymap("fsmi", 60.02, -111.93, size=SIZE, rotation_deg=30.0)], cube)
    return cube


def _png_shape(path: Path) -> tuple[int, ...]:
    assert path.is_file() and path.stat().st_size > 5_000
    return iio.imread(path).shape


# --------------------------------------------------------------------------- keograms
def test_keogram_without_skymap_is_the_centre_column(cube: Path, tmp_path: Path) -> None:
    keo = keogram(cube, "fsmi")
    assert keo.dims == ("time", "y") and keo.sizes == {"time": 15, "y": SIZE}
    y = keo["y"].values.astype(int)
    np.testing.assert_array_equal(y, np.arange(SIZE))
    assert set(keo["x"].values) == {SIZE // 2}
    for t in range(15):  # every value is the pixel it was cut from
        np.testing.assert_array_equal(keo.values[t], _value(t, y, SIZE // 2))
    assert list(keo["class"].values) == [CLASS6_NAMES[c] for c in CLASSES]
    part = keogram(cube, "fsmi", start="2011-01-06T05:10", end="2011-01-06T06:00")
    assert part.sizes["time"] == 4
    np.testing.assert_array_equal(part.values[0], _value(6, y, SIZE // 2))
    # The picture and the DataArray.
    assert _png_shape(write_keogram(keo, tmp_path / "k.png"))[1] > 800
    write_keogram(keo, tmp_path / "k.nc")
    back = xr.open_dataarray(tmp_path / "k.nc")
    np.testing.assert_array_equal(back.values, keo.values)
    assert not list(tmp_path.glob(".*partial*"))


def test_keogram_follows_the_skymap_meridian(with_skymap: Path) -> None:
    keo = keogram(with_skymap, "fsmi", min_elevation=10)
    assert keo.dims == ("time", "latitude") and keo.attrs["skymap"] == "20000101T00"
    y, x = keo["y"].values.astype(int), keo["x"].values.astype(int)
    for t in range(15):
        np.testing.assert_array_equal(keo.values[t], _value(t, y, x))
    assert (keo["elevation"].values >= 10).all()
    # The camera is turned by 30 deg: the meridian is not the centre column.
    assert len(set(x)) > 3
    lat = keo["latitude"].values
    assert lat[0] < 60.02 < lat[-1]  # south at the start of the axis, north at its end
    az = keo["azimuth"].values
    assert abs((az[-1] + 180) % 360 - 180) < 15 and abs(az[0] - 180) < 15


def test_meridian_on_the_real_skymap(shared: Path) -> None:
    sky = read_skymap(shared / "data" / "themis" / "themis_skymap_gako_20110305-+_vXX.sav")
    rows, cols, angle = meridian_pixels(sky.elevation, sky.azimuth, 10.0)
    el, az = sky.elevation[rows, cols], sky.azimuth[rows, cols]
    off = np.minimum(np.abs((az + 180) % 360 - 180), np.abs(az - 180))
    assert (el >= 10).all() and np.all(np.diff(angle) > 0)
    assert np.median(off[el < 80]) < 1.0 and off[el < 80].max() < 3.0
    assert len(set(cols)) > 40  # the Gakona camera is turned by 22.6 deg


def test_keogram_shows_gaps() -> None:
    t = np.datetime64("2011-01-06T05:00", "ns") + np.array([0, 3, 6, 600, 603], "timedelta64[s]")
    _, index = _columns(t)
    assert list(index) == [0, 1, 2, -1, 3, 4]


# --------------------------------------------------------------------------- movies
def test_caption_frame() -> None:
    frame = _frames(0, 1)[0].astype(np.uint8)
    out = caption_frame(frame, np.datetime64("2011-01-06T05:00:03"), "arc", 0.61, 8, "fsmi")
    assert out.shape == (SIZE * 8 + CAPTION_HEIGHT, SIZE * 8, 3) and out.dtype == np.uint8
    big = np.repeat(np.repeat(frame, 8, 0), 8, 1)
    np.testing.assert_array_equal(out[: SIZE * 8, :, 0], big)  # the frame itself, unchanged
    band = out[SIZE * 8 :]
    assert band.std() > 10  # text is there
    other = caption_frame(frame, np.datetime64("2011-01-06T05:00:06"), "moon", 0.5, 8, "fsmi")
    assert (other[SIZE * 8 :] != band).any() and (other[: SIZE * 8] == out[: SIZE * 8]).all()


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_movie_read_back(cube: Path, tmp_path: Path, suffix: str) -> None:
    out = movie(
        cube, "fsmi", start="2011-01-06T05:00", end="2011-01-06T05:30", out=tmp_path / f"m{suffix}"
    )
    assert not list(tmp_path.glob(".*partial*"))
    if suffix == ".mp4":
        reader = iio2.get_reader(out, format="FFMPEG")
        assert reader.count_frames() == 10
        frames = [reader.get_data(i) for i in range(10)]
        reader.close()
    else:
        with Image.open(out) as gif:
            assert gif.n_frames == 10
            frames = []
            for i in range(10):
                gif.seek(i)
                frames.append(np.asarray(gif.convert("RGB")))
    h = SIZE * 8
    assert frames[0].shape == (h + CAPTION_HEIGHT, h, 3)
    for i, frame in enumerate(frames):
        expect = np.repeat(np.repeat(_frames(i, 1)[0], 8, 0), 8, 1)
        assert np.abs(frame[:h, :, 0].astype(float) - expect).mean() < 8, i
        assert frame[h:].std() > 10  # a caption in every frame
    # Each caption says its own time: the bands of consecutive frames differ (a digit).
    assert (np.abs(frames[0][h:].astype(float) - frames[1][h:]) > 60).sum() > 20


# --------------------------------------------------------------------------- maps
def test_map_of_one_frame_and_of_a_mean(with_skymap: Path, tmp_path: Path) -> None:
    one = sky_map(with_skymap, "fsmi", time="2011-01-06T05:00:04")
    assert one.attrs["n_frames"] == 1 and one.attrs["classes"] == "noaurora 1"
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    value = one["value"].values
    shown = np.isfinite(value)
    assert 200 < shown.sum() < SIZE * SIZE
    np.testing.assert_array_equal(value[shown], _value(1, y, x)[shown])  # frame 1 (05:00:03)
    mean = sky_map(with_skymap, "fsmi", start="2011-01-06T05:00", end="2011-01-06T05:00:16")
    expect = np.mean([_value(t, y, x) for t in range(6)], axis=0)
    np.testing.assert_allclose(mean["value"].values[shown], expect[shown], rtol=1e-6)
    assert np.isfinite(one["latitude"].values).all()  # pcolormesh needs finite corners
    assert _png_shape(write_map(mean, tmp_path / "map.png"))[0] > 500
    write_map(one, tmp_path / "map.nc")
    assert xr.open_dataset(tmp_path / "map.nc")["value"].shape == (SIZE, SIZE)


def test_a_map_needs_a_skymap(cube: Path) -> None:
    with pytest.raises(CubeError, match="has no skymap"):
        sky_map(cube, "fsmi", time="2011-01-06T05:00")
    with pytest.raises(OptionError, match="either `time`"):
        sky_map(cube, "fsmi", time="2011-01-06T05:00", start="2011-01-06T05:00")


# --------------------------------------------------------------------------- statistics
def test_night_statistics(cube: Path, tmp_path: Path) -> None:
    stats = night_statistics(cube)
    nights = [str(n)[:10] for n in stats["night"].values]
    assert nights == ["2011-01-05", "2011-01-06"]  # 05 UT at fsmi is evening, local time
    first, second = CLASSES[:10], CLASSES[10:]
    for k, part in enumerate((first, second)):
        row = stats.isel(station=0, night=k)
        hidden = sum(c in (3, 4) for c in part)
        aurora = sum(c in (0, 1, 2) for c in part)
        assert int(row["n_frames"]) == len(part) and int(row["n_sky"]) == len(part) - hidden
        assert float(row["clear_fraction"]) == pytest.approx((len(part) - hidden) / len(part))
        assert float(row["cloudy_fraction"]) == pytest.approx(part.count(3) / len(part))
        assert float(row["aurora_occurrence"]) == pytest.approx(aurora / (len(part) - hidden))
    write_nights(stats, tmp_path / "n.csv")
    text = (tmp_path / "n.csv").read_text().splitlines()
    assert text[0].startswith("station,night,n_frames") and len(text) == 3
    assert _png_shape(write_nights(stats, tmp_path / "n.png"))[0] > 200
    write_nights(stats, tmp_path / "n.nc")


def _unclassify(cube: Path, rows: slice, model: str = "fake6") -> None:
    """Mark ``rows`` as classify leaves frames it was not asked to classify (-1, NaN)."""
    opened = Cube.open(cube, "r+")
    node = opened.group(station_group("fsmi"))
    pred, score, _ = prediction_names(model)
    node[pred][rows] = -1
    node[score][rows] = np.nan
    opened.publish()


def test_nights_of_a_partly_classified_station(cube: Path, tmp_path: Path, runner) -> None:
    """Issue 20 case 4: every night listed, frames and classified frames both counted.

    Before, ``nights`` counted only classified frames as ``n_frames`` (5, not 10, for the
    first night), gave their span as the night's hours, and left out the second night,
    which has no classified frame.
    """
    _unclassify(cube, slice(5, 10))  # the first night: 5 of its 10 frames classified
    _unclassify(cube, slice(10, 15))  # the second night: none
    result = runner.invoke(app, ["nights", str(cube), "--out", str(tmp_path / "n.csv")])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "n.csv")
    assert list(table["night"]) == ["2011-01-05", "2011-01-06"]
    first, second = table.iloc[0], table.iloc[1]
    assert (first["n_frames"], first["n_classified"]) == (10, 5)
    assert (second["n_frames"], second["n_classified"]) == (5, 0)
    # Frames times the 3 s cadence: what exists, and what the model has seen.
    assert first["hours"] == pytest.approx(10 * 3 / 3600, rel=1e-4)
    assert first["classified_hours"] == pytest.approx(5 * 3 / 3600, rel=1e-4)
    assert second["classified_hours"] == 0
    part = CLASSES[:5]  # the fractions describe the classified frames only
    hidden = sum(c in (3, 4) for c in part)
    assert first["clear_fraction"] == pytest.approx((5 - hidden) / 5)
    assert np.isnan(second[["clear_fraction", "aurora_occurrence"]].astype(float)).all()
    notes = [line for line in result.output.splitlines() if line.startswith("note: ")]
    assert notes == [
        "note: fsmi night 2011-01-05: only partly classified, 5 of 10 frames (15 s of 30 s): "
        "its fractions describe those frames only",
        "note: fsmi night 2011-01-06: not classified (5 frames, 15 s): no fractions; "
        "run `oathcube classify --station fsmi` for it",
    ]
    # The table printed without --out says the same.
    shown = runner.invoke(app, ["nights", str(cube)])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    rows = [line.split() for line in lines if "2011-01-0" in line and not line.startswith("note")]
    assert [r[-9:-7] for r in rows] == [["10", "5"], ["5", "0"]], shown.output
    assert "only partly classified" in shown.output and "not classified" in shown.output


# --------------------------------------------------------------------------- command line
def test_commands_write_their_files(with_skymap: Path, tmp_path: Path, runner) -> None:
    c = str(with_skymap)
    for args in (
        ["keogram", c, "--station", "fsmi", "--out", str(tmp_path / "k.png")],
        ["movie", c, "--station", "fsmi", "--start", "2011-01-06T05:00", "--end",
         "2011-01-06T05:01", "--out", str(tmp_path / "m.gif"), "--fps", "4"],
        ["map", c, "--station", "fsmi", "--time", "2011-01-06T05:00", "--out",
         str(tmp_path / "map.png")],
        ["nights", c, "--out", str(tmp_path / "n.csv")],
    ):  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert (tmp_path / Path(args[-1] if args[-2] == "--out" else args[-3]).name).exists()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["keogram", "--station", "fsmi", "--out", "OUT/k.jpg"], "unknown file kind '.jpg'"),
        (
            ["keogram", "--station", "fsmi", "--out", "OUT/k.png", "--min-elevation", "95"],
            "0 to 89",
        ),
        (["keogram", "--station", "nope", "--out", "OUT/k.png"], "no station 'nope'"),
        (
            ["keogram", "--station", "fsmi", "--out", "OUT/k.png", "--altitude", "120"],
            "altitude 120",
        ),
        (
            ["keogram", "--station", "fsmi", "--out", "OUT/k.png", "--skymap", "2099"],
            "matches '2099'",
        ),
        (
            ["keogram", "--station", "fsmi", "--out", "OUT/k.png", "--model", "x"],
            "no predictions of",
        ),
        (
            [
                "movie",
                "--station",
                "fsmi",
                "--start",
                "2011-01-06",
                "--end",
                "2011-01-07",
                "--out",
                "OUT/m.mp4",
                "--fps",
                "0",
            ],
            "frames per second",
        ),
        (
            [
                "movie",
                "--station",
                "fsmi",
                "--start",
                "2011-01-06T06",
                "--end",
                "2011-01-06T05",
                "--out",
                "OUT/m.mp4",
            ],
            "before --start",
        ),
        (
            [
                "movie",
                "--station",
                "fsmi",
                "--start",
                "2012-01-01",
                "--end",
                "2012-01-02",
                "--out",
                "OUT/m.mp4",
            ],
            "no frames of fsmi between",
        ),
        (
            ["movie", "--station", "fsmi", "--start", "x", "--end", "y", "--out", "OUT/m.avi"],
            "'.avi'",
        ),
        (
            [
                "map",
                "--station",
                "fsmi",
                "--time",
                "2011-01-06",
                "--start",
                "2011-01-06",
                "--out",
                "OUT/m.png",
            ],
            "either --time",
        ),
        (["nights", "--out", "OUT/n.txt"], "unknown file kind '.txt'"),
    ],
)
def test_bad_options_say_one_line(
    with_skymap: Path, tmp_path: Path, runner, args: list[str], match: str
) -> None:
    args = [args[0], str(with_skymap), *(a.replace("OUT/", f"{tmp_path}/") for a in args[1:])]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("oathcube: error:") and match in lines[0], lines
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob(".*partial*"))
