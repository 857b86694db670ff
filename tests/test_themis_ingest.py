"""Raw THEMIS ingest: CDF and PGM readers, image folders, the dispatcher, rawprep.

Readers are tested on the real files in ``../shared/data/themis`` and on synthetic files
that ``oathcube.synthetic.themis`` writes in the same formats.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import cdflib
import imageio.v3 as iio
import numpy as np
import pytest

from oathcube.archive.folder import load_grey_image, parse_image_name, read_folder
from oathcube.archive.frames import FrameBlock, iter_frame_blocks, source_kind
from oathcube.archive.themis_cdf import read_cdf, station_from_cdf_name
from oathcube.archive.themis_pgm import read_pgm, station_from_pgm_name
from oathcube.errors import IngestError
from oathcube.rawprep import (
    RawPreparation,
    load_skymap_elevation,
    skymap_alignment,
)
from oathcube.synthetic.themis import expected_frames, frame_times, write_cdf, write_pgm

REAL_CDF = "thg_l1_asf_gako_2011010617_v01.cdf"
REAL_PGM_GZ = "20140310_0600_gill_themis19_full.pgm.gz"
REAL_PGM = "20140310_0605_gill_themis19_full.pgm"
REAL_SKYMAP = "themis_skymap_gako_20110305-+_vXX.sav"
SIZE = 64  # synthetic frames are small to keep the tests quick; the layouts are the real ones


@pytest.fixture(scope="session")
def themis(shared: Path) -> Path:
    """The folder of real THEMIS raw files."""
    return shared / "data" / "themis"


def _ns(text: str) -> np.datetime64:
    return np.datetime64(text, "ns")


# --------------------------------------------------------------------------- CDF
def test_real_cdf(themis: Path) -> None:
    block = read_cdf(themis / REAL_CDF)
    assert block.station == "gako" and block.raw and block.source == str(themis / REAL_CDF)
    assert block.frames.shape == (23, 256, 256) and block.frames.dtype == np.uint16
    assert block.frames.flags.c_contiguous
    # Times come from _epoch (exposure start, to the millisecond).
    assert block.time[0] == _ns("2011-01-06T17:00:00.053")
    assert block.time[-1] == _ns("2011-01-06T17:01:06.020")
    cdf = cdflib.CDF(str(themis / REAL_CDF))
    # Turned by 180 deg into the cube's orientation (oathcube.archive.orientation).
    np.testing.assert_array_equal(block.frames, cdf.varget("thg_asf_gako")[:, ::-1, ::-1])
    via_cdflib = cdflib.cdfepoch.to_datetime(cdf.varget("thg_asf_gako_epoch"))
    np.testing.assert_array_equal(block.time, via_cdflib.astype("datetime64[ns]"))
    # _time is the same instants rounded to whole seconds.
    unix = cdf.varget("thg_asf_gako_time")
    delta = (block.time - (unix * 1e9).astype("int64").astype("datetime64[ns]")).astype(float)
    assert np.all(np.abs(delta) < 0.1e9)


@pytest.mark.parametrize(
    ("layout", "one_record"), [("classic", False), ("2024", False), ("2024", True)]
)
def test_synthetic_cdf_layouts(tmp_path: Path, layout: str, one_record: bool) -> None:
    path = write_cdf(
        tmp_path,
        "fsmi",
        "2011-01-06T17:00:00.050",
        7,
        layout=layout,
        seed=4,
        size=SIZE,
        time_one_record=one_record,
    )
    assert path.name == "thg_l1_asf_fsmi_2011010617_v01.cdf"
    names = cdflib.CDF(str(path)).cdf_info().zVariables
    assert ("thg_asf_fsmi_epoch" in names) == (layout == "classic")
    block = read_cdf(path)
    assert block.station == "fsmi" and block.n == 7
    np.testing.assert_array_equal(block.frames, expected_frames(7, 4, SIZE)[:, ::-1, ::-1])
    np.testing.assert_array_equal(block.time, frame_times("2011-01-06T17:00:00.050", 7))


@pytest.mark.parametrize("layout", ["classic", "2024"])
@pytest.mark.parametrize("rows", [(0, 15), (0, 1), (6, 7), (3, 11), (14, 15), (9, 9)])
def test_cdf_rows_equal_slices_of_the_whole(
    tmp_path: Path, themis: Path, layout: str, rows: tuple[int, int]
) -> None:
    # Ingest tasks read only their records: the same frames and times as slicing a
    # whole read, whichever compressed blocks (7 records each) the rows start and end in.
    path = write_cdf(tmp_path, "fsmi", "2011-01-06T17:00", 15, layout=layout, seed=2, size=SIZE)
    whole = read_cdf(path)
    part = read_cdf(path, rows=rows)
    np.testing.assert_array_equal(part.frames, whole.frames[rows[0] : rows[1]])
    np.testing.assert_array_equal(part.time, whole.time[rows[0] : rows[1]])
    real = read_cdf(themis / "thg_l1_asf_gako_2011010617_v01.cdf", rows=rows)
    assert real.n == rows[1] - rows[0] and real.frames.shape[1:] == (256, 256)
    with pytest.raises(IngestError, match="rows 3:99 of 15"):
        read_cdf(path, rows=(3, 99))


def test_cdf_rows_of_records_out_of_time_order(tmp_path: Path) -> None:
    # Records stored out of time order: rows are still counted in time order.
    path = write_cdf(tmp_path, "fsmi", "2011-01-06T17:00", 9, seed=3, size=SIZE)
    shuffled = tmp_path / "shuffled" / path.name
    shuffled.parent.mkdir()
    order = np.array([4, 0, 8, 2, 6, 1, 7, 3, 5])
    whole = read_cdf(path)
    write_cdf(
        shuffled.parent,
        "fsmi",
        "2011-01-06T17:00",
        9,
        size=SIZE,
        frames=whole.frames[order][:, ::-1, ::-1],  # back to the file's orientation
        times=whole.time[order],
    )
    part = read_cdf(shuffled, rows=(2, 6))
    np.testing.assert_array_equal(part.frames, whole.frames[2:6])
    np.testing.assert_array_equal(part.time, whole.time[2:6])


def test_cdf_layouts_agree_on_256_frames(tmp_path: Path) -> None:
    # The same pixels written in both layouts read back identically at full size.
    frames = expected_frames(3, 9)
    a = read_cdf(write_cdf(tmp_path / "a.cdf", "gako", "2024-02-01T05:00", 3, frames=frames))
    b = read_cdf(
        write_cdf(tmp_path / "b.cdf", "gako", "2024-02-01T05:00", 3, "2024", frames=frames)
    )
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.time, b.time)


@pytest.mark.parametrize("keep", [100, 5_000, 1_000_000, 2_000_000, -1_000])
def test_truncated_real_cdf(themis: Path, tmp_path: Path, keep: int) -> None:
    data = (themis / REAL_CDF).read_bytes()
    cut = tmp_path / REAL_CDF
    cut.write_bytes(data[:keep])
    with pytest.raises(IngestError) as info:
        read_cdf(cut)
    assert info.value.path == str(cut)
    assert REAL_CDF in str(info.value)


def test_not_a_cdf(tmp_path: Path) -> None:
    bad = tmp_path / "thg_l1_asf_gako_2011010617_v01.cdf"
    bad.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(IngestError, match="cannot open as CDF"):
        read_cdf(bad)


def test_cdf_name_and_variables_disagree(tmp_path: Path) -> None:
    path = write_cdf(tmp_path, "fsmi", "2011-01-06T17:00", 2, size=SIZE)
    wrong = path.rename(tmp_path / "thg_l1_asf_gako_2011010617_v01.cdf")
    with pytest.raises(IngestError, match="station 'gako'"):
        read_cdf(wrong)


def test_cdf_name_parsing() -> None:
    assert station_from_cdf_name("thg_l1_asf_fsmi_2011010617_v01.cdf") == "fsmi"
    assert station_from_cdf_name("other.cdf") is None


# --------------------------------------------------------------------------- PGM
@pytest.mark.parametrize(
    ("name", "first", "last"),
    [
        (REAL_PGM_GZ, "2014-03-10T06:00:00.063119", "2014-03-10T06:00:57.006018"),
        (REAL_PGM, "2014-03-10T06:05:00.058114", "2014-03-10T06:05:57.063061"),
    ],
)
def test_real_pgm(themis: Path, name: str, first: str, last: str) -> None:
    block = read_pgm(themis / name)
    assert block.station == "gill" and block.raw and Path(block.source).name == name
    assert block.frames.shape == (20, 256, 256) and block.frames.dtype == np.uint16
    assert block.time[0] == _ns(first) and block.time[-1] == _ns(last)
    steps = np.diff(block.time).astype("timedelta64[ms]").astype(float) / 1000
    assert np.all(np.abs(steps - 3.0) < 0.1)


def test_real_pgm_bytes_are_big_endian(themis: Path) -> None:
    # Independent of the parser: the first raster starts right after "65535\n".
    data = (themis / REAL_PGM).read_bytes()
    start = data.index(b"\n65535\n") + len(b"\n65535\n")
    first_row = np.frombuffer(data, ">u2", count=256, offset=start)
    block = read_pgm(themis / REAL_PGM)
    np.testing.assert_array_equal(block.frames[0, 0], first_row)
    assert 3000 < np.median(block.frames) < 20000  # counts, not byte-swapped noise


@pytest.mark.parametrize("gz", [False, True])
def test_synthetic_pgm(tmp_path: Path, gz: bool) -> None:
    path = write_pgm(tmp_path, "gill", "2014-03-10T06:00:00.058114", 20, gz=gz, seed=5)
    assert path.name == "20140310_0600_gill_themis19_full.pgm" + (".gz" if gz else "")
    block = read_pgm(path)
    assert block.station == "gill" and block.n == 20
    np.testing.assert_array_equal(block.frames, expected_frames(20, 5))
    np.testing.assert_array_equal(block.time, frame_times("2014-03-10T06:00:00.058114", 20))


@pytest.mark.parametrize("keep", [500, 1_100, 140_000, -10])
def test_truncated_real_pgm(themis: Path, tmp_path: Path, keep: int) -> None:
    data = (themis / REAL_PGM).read_bytes()
    cut = tmp_path / REAL_PGM
    cut.write_bytes(data[:keep])
    with pytest.raises(IngestError, match="cut short|does not parse") as info:
        read_pgm(cut)
    assert info.value.path == str(cut)


def test_truncated_real_pgm_gz(themis: Path, tmp_path: Path) -> None:
    data = (themis / REAL_PGM_GZ).read_bytes()
    cut = tmp_path / REAL_PGM_GZ
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(IngestError, match="gzip") as info:
        read_pgm(cut)
    assert REAL_PGM_GZ in str(info.value)


def test_pgm_frame_without_time(tmp_path: Path) -> None:
    path = write_pgm(tmp_path, "gill", "2014-03-10T06:00", 3, size=SIZE)
    data = path.read_bytes()
    line = b'#"Image request start" 2014-03-10 06:00:03.000000 UTC\n'
    assert line in data
    path.write_bytes(data.replace(line, b""))
    with pytest.raises(IngestError, match="frame 2 has no 'Image request start'"):
        read_pgm(path)


def test_pgm_garbage_and_station(tmp_path: Path) -> None:
    junk = tmp_path / "20140310_0600_gill_themis19_full.pgm"
    junk.write_bytes(b"not a pgm at all")
    with pytest.raises(IngestError, match="P5"):
        read_pgm(junk)
    path = write_pgm(tmp_path, "gill", "2014-03-10T06:00", 2, size=SIZE)
    renamed = path.rename(tmp_path / "20140310_0600_rank_themis19_full.pgm")
    with pytest.raises(IngestError, match="station 'rank'"):
        read_pgm(renamed)
    assert station_from_pgm_name("20140310_0600_gill_themis19_full.pgm.gz") == "gill"


# --------------------------------------------------------------------------- folders
def _png(path: Path, value: int, size: int = 16, rgb: bool = False) -> Path:
    grey = np.full((size, size), value, np.uint8)
    grey[0, 0] = 255 - value  # not flat, so a mix-up of images would show
    iio.imwrite(path, np.repeat(grey[:, :, None], 3, axis=2) if rgb else grey)
    return path


def test_image_names() -> None:
    assert parse_image_name("gako_20110106_170003.png") == ("gako", _ns("2011-01-06T17:00:03"))
    assert parse_image_name("20110106_170003_FSMI.jpg") == ("fsmi", _ns("2011-01-06T17:00:03"))
    assert parse_image_name("20110106-170003.5.png") == (None, _ns("2011-01-06T17:00:03.5"))
    assert parse_image_name("00001.png") is None
    assert parse_image_name("gako_20111306_170003.png") is None  # month 13


def test_folder_by_names(tmp_path: Path) -> None:
    _png(tmp_path / "gako_20110106_170006.png", 30, rgb=True)
    _png(tmp_path / "gako_20110106_170000.png", 10)
    _png(tmp_path / "20110106_170003_gako.png", 20)
    _png(tmp_path / "fsmi_20110106_170000.png", 40)
    blocks = read_folder(tmp_path)
    assert [b.station for b in blocks] == ["fsmi", "gako"]
    gako = blocks[1]
    assert not gako.raw and gako.frames.dtype == np.uint8 and gako.frames.shape == (3, 16, 16)
    assert list(gako.frames[:, 1, 1]) == [10, 20, 30]  # sorted by time, RGB made one band
    assert gako.time[1] == _ns("2011-01-06T17:00:03")


def test_folder_by_csv(tmp_path: Path) -> None:
    for i in range(3):
        _png(tmp_path / f"{i + 1:05d}.png", 10 * (i + 1))
    (tmp_path / "times.csv").write_text(
        "File,Station,Time\n"
        "00002.png,INUV,2013-01-07T06:01:00Z\n"
        "00001.png,inuv,2013-01-07 06:00:00\n"
        "00003.png,rank,2013-01-07T07:02:00+01:00\n"
    )
    blocks = read_folder(tmp_path)
    assert [(b.station, b.n) for b in blocks] == [("inuv", 2), ("rank", 1)]
    np.testing.assert_array_equal(
        blocks[0].time, [_ns("2013-01-07T06:00:00"), _ns("2013-01-07T06:01:00")]
    )
    assert blocks[1].time[0] == _ns("2013-01-07T06:02:00")  # offset converted to UTC
    assert list(blocks[0].frames[:, 1, 1]) == [10, 20]


def test_folder_csv_errors(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", 1)
    (tmp_path / "t.csv").write_text("file,station,time\na.png,gako,yesterday\n")
    with pytest.raises(IngestError) as info:
        read_folder(tmp_path)
    assert info.value.line == 2 and "yesterday" in str(info.value)
    (tmp_path / "t.csv").write_text("name,when\na.png,2011-01-01\n")
    with pytest.raises(IngestError, match="file,station,time"):
        read_folder(tmp_path)
    (tmp_path / "t.csv").write_text(
        "file,station,time\na.png,gako,2011-01-01\nb.png,gako,2011-01-02\n"
    )
    with pytest.raises(IngestError, match="'b.png' is listed but not in the folder"):
        read_folder(tmp_path)


def test_folder_station_given_by_caller(tmp_path: Path) -> None:
    _png(tmp_path / "20110106_170000.png", 1)
    with pytest.raises(IngestError, match="no station"):
        read_folder(tmp_path)
    (block,) = read_folder(tmp_path, station="KIAN")
    assert block.station == "kian"


def test_bad_images(tmp_path: Path) -> None:
    (tmp_path / "gako_20110106_170000.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(IngestError, match="cannot decode") as info:
        read_folder(tmp_path)
    assert info.value.path.endswith("gako_20110106_170000.png")
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0] = 200
    iio.imwrite(tmp_path / "c.png", colour)
    with pytest.raises(IngestError, match="colour"):
        load_grey_image(tmp_path / "c.png")


def test_folder_skip_bad(tmp_path: Path) -> None:
    _png(tmp_path / "gako_20110106_170000.png", 10)
    (tmp_path / "gako_20110106_170003.png").write_bytes(b"not an image")
    _png(tmp_path / "gako_20110106_170006.png", 30, size=32)  # other size than the first
    _png(tmp_path / "gako_20110106_170009.png", 40)
    with pytest.raises(IngestError, match="gako_20110106_170003.png"):
        list(iter_frame_blocks([tmp_path]))
    reader = iter_frame_blocks([tmp_path], skip_bad=True)
    (block,) = list(reader)
    assert list(block.frames[:, 1, 1]) == [10, 40]
    assert [Path(s.path).name for s in reader.skipped] == [
        "gako_20110106_170003.png",
        "gako_20110106_170006.png",
    ]
    assert "cannot decode" in reader.skipped_as_attrs()[0]
    json.dumps(reader.skipped_as_attrs())


# --------------------------------------------------------------------------- dispatcher
@pytest.fixture
def mixed_tree(tmp_path: Path, themis: Path) -> Path:
    """A directory tree with a real CDF, a real PGM.gz, synthetic files, images and junk."""
    root = tmp_path / "data"
    (root / "cdf").mkdir(parents=True)
    (root / "pgm" / "ut06").mkdir(parents=True)
    (root / "png").mkdir()
    shutil.copy(themis / REAL_CDF, root / "cdf")
    write_cdf(root / "cdf", "gako", "2011-01-06T18:00:00", 4, layout="2024", size=SIZE)
    shutil.copy(themis / REAL_PGM_GZ, root / "pgm" / "ut06")
    _png(root / "png" / "fsmi_20110106_170000.png", 5)
    (root / "README.md").write_text("not data")
    shutil.copy(themis / REAL_SKYMAP, root)  # a skymap is not a frame source
    return root


def test_dispatch_tree(mixed_tree: Path) -> None:
    reader = iter_frame_blocks([mixed_tree])
    blocks = list(reader)
    assert [(b.station, b.n, b.raw) for b in blocks] == [
        ("gill", 20, True),
        ("gako", 23, True),
        ("gako", 4, True),
        ("fsmi", 1, False),
    ]
    assert blocks[1].time[-1] < blocks[2].time[0]  # hours of one station in time order
    assert reader.skipped == []
    # `source` is a path that reads the same frames again.
    for block in blocks:
        again = [b for b in iter_frame_blocks([block.source]) if b.station == block.station]
        np.testing.assert_array_equal(again[0].time, block.time)


def test_dispatch_bad_file(mixed_tree: Path, themis: Path) -> None:
    bad = mixed_tree / "cdf" / "thg_l1_asf_gako_2011010619_v01.cdf"
    bad.write_bytes((themis / REAL_CDF).read_bytes()[:1_000_000])
    with pytest.raises(IngestError) as info:
        list(iter_frame_blocks([mixed_tree]))
    assert info.value.path == str(bad)
    reader = iter_frame_blocks([mixed_tree], skip_bad=True)
    assert len(list(reader)) == 4
    (skipped,) = reader.skipped
    assert skipped.path == str(bad) and skipped.reason
    assert reader.skipped_as_attrs()[0].startswith(str(bad) + ": ")


def test_dispatch_explicit_files(tmp_path: Path, themis: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("x")
    missing = tmp_path / "nothere.cdf"
    with pytest.raises(IngestError, match="not a THEMIS raw file"):
        list(iter_frame_blocks([junk]))
    reader = iter_frame_blocks([themis / REAL_PGM, junk, missing], skip_bad=True)
    assert [b.station for b in reader] == ["gill"]
    assert [Path(s.path).name for s in reader.skipped] == ["notes.txt", "nothere.cdf"]
    with pytest.raises(IngestError, match="station 'gill'"):
        list(iter_frame_blocks([themis / REAL_PGM], station="gako"))
    assert source_kind("x.PGM.GZ") == "pgm" and source_kind("y.jpeg") == "image"


def test_frame_block_rules() -> None:
    t = np.array(["2011-01-01T00:00:03", "2011-01-01T00:00:00"], dtype="datetime64[ns]")
    frames = np.zeros((2, 4, 4), np.uint16)
    with pytest.raises(IngestError, match="strictly increasing"):
        FrameBlock("gako", t, frames, "x", raw=True)
    with pytest.raises(IngestError, match="uint8"):
        FrameBlock("gako", t[::-1].copy(), frames, "x", raw=False)
    with pytest.raises(IngestError, match="datetime64"):
        FrameBlock("gako", t.astype("datetime64[s]"), frames, "x", raw=True)


# --------------------------------------------------------------------------- rawprep
def test_rawprep_defaults_on_real_frames(themis: Path) -> None:
    raw = read_cdf(themis / REAL_CDF).frames
    prep = RawPreparation()
    out = prep.apply(raw)
    assert out.dtype == np.uint8 and out.shape == raw.shape
    keep = prep.mask(raw.shape[1:])
    assert not out[:, ~keep].any()  # the border is zeroed
    # (127, 127) is the file's pixel (128, 128): CDF frames are read turned by 180 deg.
    assert out[:, 0, 0].max() == 0 and out[:, 127, 127].min() > 0
    # Percentile stretch: about 1% of the sky at each end of the range.
    sky = out[:, keep]
    assert 0.005 < (sky == 255).mean() < 0.02 and 0.005 < (sky == 0).mean() < 0.02
    # Radius 0.875 of 128 px: the mask is a 112 px disc.
    assert abs(keep.sum() - np.pi * 112**2) < 0.01 * keep.sum()
    np.testing.assert_array_equal(prep.apply(raw[3]), out[3])  # one frame alone, same result


def test_rawprep_options(themis: Path) -> None:
    raw = read_pgm(themis / REAL_PGM).frames[:4]
    base = RawPreparation().apply(raw)
    flipped = RawPreparation(flip_north_south=True).apply(raw)
    np.testing.assert_array_equal(flipped, base[:, ::-1, :])
    small = RawPreparation(out_size=128).apply(raw)
    assert small.shape == (4, 128, 128) and small.dtype == np.uint8
    fixed = RawPreparation(
        scaling="fixed", fixed_low=3000, fixed_high=12000, crop_radius_fraction=None
    )
    out = fixed.apply(raw)
    expect = np.clip((raw.astype(float) - 3000) / 9000, 0, 1) * 255
    assert np.abs(out - expect).max() <= 0.5 + 1e-6
    flat = RawPreparation().apply(np.full((1, 16, 16), 5000, np.uint16))
    assert not flat.any()  # a flat frame has no contrast to stretch


def test_rawprep_skymap(themis: Path) -> None:
    sky = str(themis / REAL_SKYMAP)
    elevation = load_skymap_elevation(sky)
    assert elevation.shape == (256, 256) and np.nanmax(elevation) > 85
    prep = RawPreparation(min_elevation_deg=10, skymap=sky)
    raw = read_cdf(themis / REAL_CDF).frames[:2]
    out = prep.apply(raw)
    with np.errstate(invalid="ignore"):
        low = ~(elevation >= 10)
    assert not out[:, low].any() and out[:, ~low].any()
    scores = skymap_alignment(raw, elevation)
    assert set(scores) == {"as_read", "flip_lr", "flip_ud", "rot180"}
    # CDF frames are read turned by 180 deg into the skymaps' orientation, so the skymap
    # fits them as read (the stars say so too: tests/test_skymap.py).
    assert max(scores, key=scores.get) == "as_read"
    assert scores["as_read"] > scores["rot180"] + 0.02


def test_rawprep_attrs_round_trip(themis: Path) -> None:
    for prep in (
        RawPreparation(),
        RawPreparation(scaling="fixed", fixed_low=2500, fixed_high=9000, flip_north_south=True),
        RawPreparation(
            min_elevation_deg=12.5,
            skymap=themis / REAL_SKYMAP,
            skymap_orientation="rot180",
            out_size=224,
        ),
    ):
        attrs = prep.attrs()
        text = json.dumps(attrs)
        assert RawPreparation.from_attrs(json.loads(text)) == prep
        assert attrs["method"] == "oathcube.rawprep.RawPreparation"
        assert "orientation" in attrs


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scaling": "fixed"},
        {"scaling": "log"},
        {"low_percentile": 50, "high_percentile": 10},
        {"min_elevation_deg": 10},
        {"crop_radius_fraction": 0},
        {"skymap_orientation": "sideways"},
        {"out_size": 3},
    ],
)
def test_rawprep_rejects_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        RawPreparation(**kwargs)


def test_gzip_module_reads_what_write_pgm_writes(tmp_path: Path) -> None:
    # The .pgm.gz written for tests is a real gzip stream of the plain file's bytes.
    plain = write_pgm(tmp_path, "gill", "2014-03-10T06:00", 2, size=SIZE)
    gz = write_pgm(tmp_path, "gill", "2014-03-10T06:00", 2, gz=True, size=SIZE)
    assert gzip.decompress(gz.read_bytes()) == plain.read_bytes()


def test_single_frame_cdf(tmp_path: Path) -> None:
    block = read_cdf(write_cdf(tmp_path, "rank", "2012-12-01T04:00:00", 1, size=SIZE))
    assert block.frames.shape == (1, SIZE, SIZE) and block.station == "rank"


def test_skip_reason_keeps_the_line(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", 1)
    (tmp_path / "t.csv").write_text(
        "file,station,time\na.png,gako,2011-01-01\nb.png,gako,2011-01-02\n"
    )
    reader = iter_frame_blocks([tmp_path], skip_bad=True)
    assert [b.n for b in reader] == [1]
    (skipped,) = reader.skipped
    assert skipped.path.endswith("t.csv") and skipped.reason.startswith("line 3: ")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_counted_percentiles_equal_numpys(dtype: type) -> None:
    from oathcube.rawprep import integer_percentiles

    rng = np.random.default_rng(7)
    for trial in range(200):
        rows, k = int(rng.integers(1, 30)), int(rng.integers(1, 2000))
        top = min(int(np.iinfo(dtype).max), int(rng.choice([1, 12, 300, 4000, 65535])))
        values = rng.integers(0, top + 1, (rows, k)).astype(dtype)
        qs = [float(rng.choice([0.0, 1.0, 2.5, 50.0, 97.3, 99.0, 100.0])), 99.0]
        want = np.percentile(values.astype(np.float32), qs, axis=1)
        got = integer_percentiles(values, qs)
        for w, g in zip(want, got, strict=True):
            np.testing.assert_array_equal(g.astype(np.float32), w.astype(np.float32), str(trial))


def test_epoch_times_equal_cdflibs() -> None:
    import cdflib

    from oathcube.archive.themis_cdf import _epoch_times

    rng = np.random.default_rng(11)
    lo = cdflib.cdfepoch.compute_epoch([2000, 1, 1, 0, 0, 0, 0])
    hi = cdflib.cdfepoch.compute_epoch([2100, 1, 1, 0, 0, 0, 0])
    whole = np.round(rng.uniform(lo, hi, 20000))
    seconds = np.round(rng.uniform(lo, hi, 2000) / 1000) * 1000
    edges = seconds + rng.choice([0.0, 0.4, 0.9999, 999.0, 999.6], seconds.size)
    values = np.concatenate([rng.uniform(lo, hi, 20000), whole, edges, [-1.0e31, 0.0]])
    want = np.asarray(cdflib.cdfepoch.to_datetime(values)).astype("datetime64[ns]")
    got = _epoch_times(values)
    assert got.dtype == np.dtype("datetime64[ns]")
    np.testing.assert_array_equal(got, want)
    assert np.isnat(got[-2:]).all()
    # Years datetime64[ns] cannot hold are NaT, never wrapped into 1678..2262.
    far = [cdflib.cdfepoch.compute_epoch([y, 1, 1, 0, 0, 0, 0]) for y in (1500, 2300, 3000)]
    assert np.isnat(_epoch_times(np.array(far))).all()
    assert not np.isnat(_epoch_times(np.array([lo, hi - 1.0]))).any()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_scale_kernel_gives_numpys_bytes(dtype: type) -> None:
    """The compiled scale-and-mask pass against the float32 numpy formula it replaces."""
    from oathcube.kernels import scale_and_mask

    rng = np.random.default_rng(5)
    for trial in range(60):
        n, ny, nx = int(rng.integers(1, 9)), int(rng.integers(2, 40)), int(rng.integers(2, 40))
        top = min(int(np.iinfo(dtype).max), int(rng.choice([3, 255, 4000, 65535])))
        counts = rng.integers(0, top + 1, (n, ny, nx)).astype(dtype)
        lo = rng.uniform(-10, top, n).astype(np.float32)
        span = rng.choice([0.0, 0.37, 1.0, 17.3, float(top)], n).astype(np.float32)
        scale = np.divide(255.0, span, out=np.zeros_like(span), where=span > 0)
        keep = rng.random((ny, nx)) < rng.choice([0.0, 0.5, 1.0])
        chunk = counts.astype(np.float32)
        np.subtract(chunk, lo[:, None, None], out=chunk)
        np.multiply(chunk, scale[:, None, None], out=chunk)
        np.clip(chunk, 0.0, 255.0, out=chunk)
        want = np.rint(chunk).astype(np.uint8) * keep
        np.testing.assert_array_equal(scale_and_mask(counts, lo, scale, keep), want, str(trial))


def test_preparation_of_real_frames_is_the_numpy_formula(themis: Path) -> None:
    """RawPreparation's compiled path gives the bytes of percentile scaling written out."""
    frames = read_cdf(themis / REAL_CDF).frames
    prep = RawPreparation()
    keep = prep.mask(frames.shape[1:])
    inside = frames[:, keep].astype(np.float32)
    lo, hi = (v.astype(np.float32) for v in np.percentile(inside, [1.0, 99.0], axis=1))
    span = hi - lo
    scale = np.divide(255.0, span, out=np.zeros_like(span), where=span > 0)
    chunk = (frames.astype(np.float32) - lo[:, None, None]) * scale[:, None, None]
    want = np.rint(np.clip(chunk, 0.0, 255.0)).astype(np.uint8) * keep
    np.testing.assert_array_equal(prep.apply(frames), want)


@pytest.mark.parametrize("compress", [0, 1, 6])
def test_block_reader_equals_cdflib(tmp_path: Path, compress: int) -> None:
    """Frames read block by block (cdf_records) are cdflib's, turned, for every slice."""
    import cdflib

    from oathcube.archive.cdf_records import record_index
    from oathcube.archive.orientation import cdf_to_cube

    path = write_cdf(tmp_path, "fsmi", "2011-01-06T05:00", 40, seed=3, compress=compress)
    cdf = cdflib.CDF(str(path))
    index = record_index(cdf, "thg_asf_fsmi", path)
    assert index is not None and index.shape == (256, 256)
    if compress:
        assert index.first.size > 1  # blocks of 7 records, as the Berkeley files
    want = cdf_to_cube(cdf.varget("thg_asf_fsmi"))
    del cdf
    for lo, hi in [(0, 40), (0, 1), (6, 8), (7, 14), (13, 40), (39, 40), (20, 20)]:
        np.testing.assert_array_equal(read_cdf(path, rows=(lo, hi)).frames, want[lo:hi])


def test_real_cdf_read_block_by_block_equals_cdflib(themis: Path) -> None:
    import cdflib

    from oathcube.archive.cdf_records import record_index
    from oathcube.archive.orientation import cdf_to_cube

    cdf = cdflib.CDF(str(themis / REAL_CDF))
    assert record_index(cdf, "thg_asf_gako", themis / REAL_CDF) is not None  # big-endian
    want = cdf_to_cube(cdf.varget("thg_asf_gako"))
    del cdf
    np.testing.assert_array_equal(read_cdf(themis / REAL_CDF).frames, want)
    np.testing.assert_array_equal(read_cdf(themis / REAL_CDF, rows=(5, 16)).frames, want[5:16])


def test_a_damaged_block_is_named(themis: Path, tmp_path: Path) -> None:
    """A flipped byte inside a compressed block fails the gzip check: one IngestError."""
    import cdflib

    from oathcube.archive.cdf_records import record_index

    index = record_index(cdflib.CDF(str(themis / REAL_CDF)), "thg_asf_gako", themis / REAL_CDF)
    assert index is not None
    data = bytearray((themis / REAL_CDF).read_bytes())
    at = int(index.offset[1]) + 24 + 5000  # inside the gzip data of the second block
    data[at] ^= 0xFF
    bad = tmp_path / REAL_CDF
    bad.write_bytes(bytes(data))
    np.testing.assert_array_equal(
        read_cdf(bad, rows=(0, 7)).frames, read_cdf(themis / REAL_CDF, rows=(0, 7)).frames
    )
    with pytest.raises(IngestError, match="thg_asf_gako.*compressed block at byte") as info:
        read_cdf(bad, rows=(7, 9))
    assert info.value.path == str(bad)


def test_a_damaged_gzip_trailer_is_named_before_inflating(themis: Path, tmp_path: Path) -> None:
    """The member's length (its last 4 bytes) must be the block's: libdeflate sizes its
    output by it, so a damaged one is refused before anything is allocated."""
    import cdflib

    from oathcube.archive.cdf_records import record_index

    index = record_index(cdflib.CDF(str(themis / REAL_CDF)), "thg_asf_gako", themis / REAL_CDF)
    assert index is not None
    data = bytearray((themis / REAL_CDF).read_bytes())
    head = int(index.offset[1])
    packed = int.from_bytes(data[head + 16 : head + 24], "big")  # CVVR cSize
    data[head + 24 + packed - 1] ^= 0x40  # the top byte of ISIZE: a 1 GiB member
    bad = tmp_path / REAL_CDF
    bad.write_bytes(bytes(data))
    with pytest.raises(IngestError, match="compressed block at byte.*trailer"):
        read_cdf(bad, rows=(7, 9))


def test_parts_read_at_once_equal_parts_read_alone(tmp_path: Path, themis: Path) -> None:
    """read_cdf_parts (one open, one index) gives each part as read_cdf reads it."""
    from oathcube.archive.themis_cdf import read_cdf_parts

    synthetic = write_cdf(tmp_path, "fsmi", "2011-01-06T05:00", 40, seed=5, compress=6)
    cases = [
        (synthetic, [(0, 7), (7, 21), (21, 22), (22, 40), (40, 40)]),
        (themis / REAL_CDF, [(0, 5), (5, 16), (16, 23)]),
    ]
    for path, parts in cases:
        got = list(read_cdf_parts(path, parts))
        assert len(got) == len(parts)
        for (lo, hi), frames in zip(parts, got, strict=True):
            np.testing.assert_array_equal(frames, read_cdf(path, rows=(lo, hi)).frames)
    with pytest.raises(IngestError, match="rows 30:41 of 40"):
        list(read_cdf_parts(synthetic, [(0, 7), (30, 41)]))
