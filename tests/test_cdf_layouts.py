"""THEMIS CDF L1 layouts: classic, 2024, and what lies between them (issue 22, item 1).

The 2024 files hold the hour in one record with the frames on its last axis, the frames'
times in ``_time`` and one start value in ``_epoch``; ``oathcube.synthetic.themis``
writes them, and every layout between (frames first or last, one record or many, not
record-varying), from the same frames.  Checked: each reads as the classic layout does
(pixels, times, rows, parts, block by block against cdflib); the real Gakona frames
written in the 2024 layout ingest to the classic layout's cube; a damaged file of the
new layout is one line; an ingest of new-layout files killed with SIGKILL resumes to the
arrays of an uninterrupted run.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path
from typing import Any

import cdflib
import numpy as np
import pytest
from conftest import run_oathcube

from oathcube import Cube, ingest
from oathcube.archive.cdf_records import read_packed, record_index
from oathcube.archive.themis_cdf import part_step, read_cdf, read_cdf_parts, scan_cdf
from oathcube.errors import IngestError
from oathcube.rawprep import RawPreparation
from oathcube.synthetic.themis import expected_frames, frame_times, write_cdf

REAL_CDF = "thg_l1_asf_gako_2011010617_v01.cdf"
SIZE = 32  # small frames keep the tests quick; the layouts are the real ones
N = 12
START = "2024-05-10T21:13:00.050"  # the May 2024 storm; not at the top of an hour
PREP = RawPreparation(out_size=SIZE)

#: Every layout a reader may meet, as write_cdf's options.
LAYOUTS: dict[str, dict[str, Any]] = {
    "classic": {},
    "2024 (as the real files)": {"layout": "2024", "epoch": "start", "big_endian": True},
    "2024, no _epoch": {"layout": "2024"},
    "2024, _epoch per frame": {"layout": "2024", "epoch": "frames"},
    "2024, _time in one record": {"layout": "2024", "epoch": "start", "time_one_record": True},
    "frames first, one record": {"layout": "2024", "frames_axis": "first", "epoch": "start"},
    "frames last, 4 records": {"layout": "2024", "records": 4, "epoch": "start"},
    "frames first, 3 records": {"layout": "2024", "records": 3, "frames_axis": "first"},
    "frames last, not record-varying": {"layout": "2024", "rec_vary": False},
    "frames first, not record-varying": {
        "layout": "2024",
        "rec_vary": False,
        "frames_axis": "first",
    },
    "classic, one _epoch value": {"epoch": "start"},
    "classic, no _epoch": {"epoch": "none"},
    "classic, big-endian": {"big_endian": True},
}


@pytest.fixture(scope="session")
def themis(shared: Path) -> Path:
    """The folder of real THEMIS raw files."""
    return shared / "data" / "themis"


def _want() -> tuple[np.ndarray, np.ndarray]:
    """The frames (in the cube's orientation) and times every layout must read."""
    return expected_frames(N, 7, SIZE)[:, ::-1, ::-1], frame_times(START, N)


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_every_layout_reads_as_the_classic_one(tmp_path: Path, name: str) -> None:
    path = write_cdf(tmp_path, "gako", START, N, seed=7, size=SIZE, **LAYOUTS[name])
    frames, times = _want()
    block = read_cdf(path)
    assert block.station == "gako" and block.raw and block.frames.flags.c_contiguous
    np.testing.assert_array_equal(block.frames, frames)
    np.testing.assert_array_equal(block.time, times)  # never the lone _epoch start value
    scan = scan_cdf(path)
    np.testing.assert_array_equal(scan.time, times)
    assert scan.frames.shape == block.frames.shape
    for lo, hi in [(0, 1), (2, 7), (6, 12), (11, 12), (5, 5), (0, 12)]:
        part = read_cdf(path, rows=(lo, hi))
        np.testing.assert_array_equal(part.frames, frames[lo:hi])
        np.testing.assert_array_equal(part.time, times[lo:hi])
    parts = [(0, 3), (3, 4), (4, 11), (11, 12)]
    for (lo, hi), got in zip(parts, read_cdf_parts(path, parts), strict=True):
        np.testing.assert_array_equal(got, frames[lo:hi])
    with pytest.raises(IngestError, match=f"rows 3:99 of {N}"):
        read_cdf(path, rows=(3, 99))


def test_the_2024_times_are_time_not_the_epoch_start(tmp_path: Path) -> None:
    # The lone _epoch value (the hour's start) is no frame's time, also where a file
    # holds a single frame packed into its one record (1 _epoch value for 1 frame).
    for n in (N, 1):
        path = write_cdf(tmp_path, "gako", START, n, "2024", size=SIZE, epoch="start")
        cdf = cdflib.CDF(str(path))
        lone = cdflib.cdfepoch.to_datetime(cdf.varget("thg_asf_gako_epoch"))
        assert lone.size == 1 and lone[0] == np.datetime64("2024-05-10T21:00:00")
        del cdf
        np.testing.assert_array_equal(read_cdf(path).time, frame_times(START, n))
        np.testing.assert_array_equal(scan_cdf(path).time, frame_times(START, n))


def test_a_packed_single_frame_keeps_a_classic_single_frame_epoch(tmp_path: Path) -> None:
    # Only in a packed record is a lone _epoch value doubted: a classic one-frame file
    # keeps its millisecond _epoch time.
    path = write_cdf(tmp_path, "gako", START, 1, size=SIZE)
    assert read_cdf(path).time[0] == np.datetime64("2024-05-10T21:13:00.050")


@pytest.mark.parametrize(
    ("dims", "records", "times", "want"),
    [
        ([256, 256], 23, {23}, (23, 1, None, (256, 256))),  # classic
        ([256, 256, 1200], 1, {1200, 1}, (1, 1200, True, (256, 256))),  # 2024
        ([256, 256, 256], 1, {256}, (1, 256, True, (256, 256))),  # a cube: frames last
        ([20, 256, 256], 60, {1200}, (60, 20, False, (256, 256))),  # frames first
        ([256, 256, 1], 5, {5}, (5, 1, True, (256, 256))),
        ([480, 553, 7], 1, {7}, (1, 7, True, (480, 553))),  # not square: by the times
        ([7, 480, 553], 1, {7}, (1, 7, False, (480, 553))),
    ],
)
def test_where_the_frames_lie(
    dims: list[int], records: int, times: set[int], want: tuple[Any, ...]
) -> None:
    from oathcube.archive.themis_cdf import _frames_in

    layout = _frames_in(dims, records, times, "thg_asf_gako", Path("f.cdf"))
    assert (layout.records, layout.per_record, layout.frames_last, layout.frame) == want


@pytest.mark.parametrize("dims", [[256], [1, 1, 5], [2, 256, 256, 9], [256, 1]])
def test_dimensions_that_hold_no_frames_are_one_line(dims: list[int]) -> None:
    from oathcube.archive.themis_cdf import _frames_in

    with pytest.raises(IngestError, match=r"thg_asf_gako has dimensions \[") as info:
        _frames_in(dims, 1, {5}, "thg_asf_gako", Path("f.cdf"))
    assert "\n" not in str(info.value)


def test_the_new_layout_is_read_block_by_block(tmp_path: Path) -> None:
    """The 2024 record is read by cdf_records (libdeflate, GIL released), equal to
    cdflib's values turned, in both byte orders, for any rows and block boundaries."""
    cases = [
        ({"epoch": "start", "big_endian": True}, 1),
        ({"frames_axis": "first"}, 1),
        ({"records": 12, "block_factor": 4}, 3),  # 1 frame a record, 4 records a block
        ({"records": 6, "block_factor": 2, "frames_axis": "first"}, 3),
    ]
    for options, blocks in cases:
        path = write_cdf(tmp_path / "f.cdf", "gako", START, N, "2024", 7, size=128, **options)
        cdf = cdflib.CDF(str(path))
        index = record_index(cdf, "thg_asf_gako", path)
        assert index is not None and index.first.size == blocks
        values = cdf.varget("thg_asf_gako")
        del cdf
        last = options.get("frames_axis", "last") == "last"
        k = N // int(options.get("records", 1))
        record = (128, 128, k) if last else (k, 128, 128)
        stack = values.reshape(-1, *record)
        if last:
            stack = np.moveaxis(stack, -1, 1)
        want = stack.reshape(N, 128, 128)[:, ::-1, ::-1]
        for lo, hi in [(0, N), (0, 1), (3, 9), (4, 8), (11, 12), (6, 6)]:
            got = read_packed(path, index, lo, hi, frames_last=last)
            np.testing.assert_array_equal(got, want[lo:hi])
            assert got.dtype == np.uint16 and got.flags.c_contiguous
        # Parts of whole blocks where a block holds fewer than all frames; 0: read whole.
        assert part_step(path, 5) == (0 if blocks == 1 else 4)  # 4 frames a block


@pytest.mark.parametrize(
    ("options", "counts"),
    [
        ({"layout": "2024", "epoch": "start"}, "thg_asf_gako_time has 11"),
        ({"layout": "2024", "time_one_record": True}, "thg_asf_gako_time has 11"),
        ({"layout": "2024", "records": 3}, "thg_asf_gako_time has 11"),
        ({}, "thg_asf_gako_epoch has 11 and thg_asf_gako_time has 11"),
    ],
)
def test_frames_and_times_that_disagree_are_one_line(
    tmp_path: Path, options: dict[str, Any], counts: str
) -> None:
    path = write_cdf(
        tmp_path, "gako", START, N, size=SIZE, times=frame_times(START, N - 1), **options
    )
    for reader in (read_cdf, scan_cdf, lambda p: part_step(p, 4)):
        with pytest.raises(IngestError, match=f"thg_asf_gako holds {N} frames but") as info:
            reader(path)
        text = str(info.value)
        assert "\n" not in text and counts in text and info.value.path == str(path)
    with pytest.raises(IngestError, match=f"holds {N} frames but"):
        ingest([path], tmp_path / "c.zarr", preparation=PREP, progress=False)


@pytest.mark.parametrize("keep", [300, 2_000, 30_000, 60_000, -100, -1])
def test_a_truncated_new_layout_file_is_one_line(tmp_path: Path, keep: int) -> None:
    # Cut anywhere, the tail included (the lone _epoch value, never read, lies there).
    whole = write_cdf(tmp_path, "gako", START, N, "2024", size=64, epoch="start", big_endian=True)
    data = whole.read_bytes()
    assert len(data) > 60_000
    cut = tmp_path / "cut" / whole.name
    cut.parent.mkdir()
    cut.write_bytes(data[:keep])
    readers = (read_cdf, scan_cdf, lambda p: read_cdf(p, rows=(3, 5)), lambda p: part_step(p, 4))
    for reader in readers:
        with pytest.raises(IngestError) as info:
            reader(cut)
        assert info.value.path == str(cut) and "\n" not in str(info.value)
    if keep > 30_000 or keep < 0:  # the header whole: it says where the file should end
        assert f"the file ends at byte {len(data[:keep]):,} but its header says" in str(info.value)


def test_a_damaged_new_layout_block_is_named(tmp_path: Path) -> None:
    path = write_cdf(tmp_path, "gako", START, N, "2024", size=64, epoch="start")
    index = record_index(cdflib.CDF(str(path)), "thg_asf_gako", path)
    assert index is not None
    data = bytearray(path.read_bytes())
    data[int(index.offset[0]) + 24 + 500] ^= 0xFF  # inside the gzip data of the record
    path.write_bytes(bytes(data))
    with pytest.raises(IngestError, match="thg_asf_gako.*compressed block at byte") as info:
        read_cdf(path, rows=(0, 1))
    assert info.value.path == str(path) and "\n" not in str(info.value)


# --------------------------------------------------------------------------- real frames
def _real_in_2024_layout(themis: Path, folder: Path) -> Path:
    """The real Gakona hour's frames and times, written in the 2024 layout."""
    cdf = cdflib.CDF(str(themis / REAL_CDF))
    raw = cdf.varget("thg_asf_gako")  # (23, 256, 256), the file's orientation
    del cdf
    times = read_cdf(themis / REAL_CDF).time  # from _epoch, to the millisecond
    folder.mkdir(parents=True, exist_ok=True)
    return write_cdf(
        folder,
        "gako",
        times[0],
        raw.shape[0],
        "2024",
        frames=raw,
        times=times,
        epoch="start",
        big_endian=True,
    )


def test_real_gakona_frames_in_the_2024_layout_make_the_classic_cube(
    themis: Path, tmp_path: Path
) -> None:
    new = _real_in_2024_layout(themis, tmp_path / "new")
    assert new.name == REAL_CDF
    classic_block, new_block = read_cdf(themis / REAL_CDF), read_cdf(new)
    np.testing.assert_array_equal(new_block.frames, classic_block.frames)
    np.testing.assert_array_equal(new_block.time, classic_block.time)
    cubes = {}
    for name, source in (("classic", themis / REAL_CDF), ("2024", new)):
        cubes[name] = tmp_path / f"{name}.zarr"
        assert ingest([source], cubes[name], chunk_frames=8, progress=False) == {"gako": 23}
    classic, fresh = (Cube.open(cubes[name]) for name in ("classic", "2024"))
    assert classic.stations() == fresh.stations() == ["gako"]
    a, b = classic.station("gako"), fresh.station("gako")
    np.testing.assert_array_equal(b.time.values, a.time.values)
    assert b.time.values[0] == np.datetime64("2011-01-06T17:00:00.053")
    np.testing.assert_array_equal(b.pixels.values, a.pixels.values)
    assert b.pixels.attrs == a.pixels.attrs


# --------------------------------------------------------------------------- kill -9
def _arrays(cube: Path) -> dict[str, np.ndarray]:
    """Every array of every station, as oathcube's readers see them."""
    opened = Cube.open(cube)
    out: dict[str, np.ndarray] = {}
    for code in opened.stations():
        for name, var in opened.station(code).variables.items():
            out[f"{code}/{name}"] = np.asarray(var.values)
    return out


@pytest.fixture(scope="module")
def new_layout_hours(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Three new-layout hour files of one station, and a cube of their uninterrupted ingest."""
    folder = tmp_path_factory.mktemp("raw2024")
    for hour in (5, 6, 7):
        start = f"2024-05-10T{hour:02d}:00:00.040"
        write_cdf(folder, "fsmi", start, 20, "2024", hour, size=SIZE, epoch="start")
    reference = tmp_path_factory.mktemp("reference") / "cube.zarr"
    ingest(sorted(folder.iterdir()), reference, preparation=PREP, chunk_frames=8, progress=False)
    return folder, reference


@pytest.mark.slow
@pytest.mark.parametrize("point", ["ingest.chunk_written:2", "ingest.committed"])
def test_a_killed_new_layout_ingest_resumes_to_the_same_arrays(
    point: str, tmp_path: Path, new_layout_hours: tuple[Path, Path]
) -> None:
    folder, reference = new_layout_hours
    cube = tmp_path / "cube.zarr"
    files = [str(f) for f in sorted(folder.iterdir())]
    args = ["ingest", *files, "-o", str(cube), "--prep", '{"out_size": 32}']
    args += ["--chunk-frames", "8", "--scheduler", "synchronous"]
    assert run_oathcube(args, kill_at=point) == -signal.SIGKILL
    assert run_oathcube(args) == 0
    got, want = _arrays(cube), _arrays(reference)
    assert sorted(got) == sorted(want) and got["fsmi/pixels"].shape == (60, SIZE, SIZE)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    shutil.rmtree(cube)
