"""UCalgary REGO, TREx NIR, Blueline and RGB files (and THEMIS PGM) against pyucalgarysrs.

pyucalgarysrs 1.28 (the test extra) is the reference: on files that
``oathcube.synthetic.ucalgary`` writes as its readers define each format, and on the real
THEMIS PGM minutes in ``../shared/data/themis``, oathcube's frames equal its frames
pixel for pixel in the stated orientation relation (``oathcube.archive.orientation``),
and its times to the microsecond.  Then: through ``oathcube ingest`` into a cube, damaged
files as one line, dark files kept apart, instruments never mixed in one station.
"""

from __future__ import annotations

import bz2
import gzip
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import h5py
import imageio.v3 as iio
import numpy as np
import pytest
import pyucalgarysrs
import xarray as xr
import zarr

from oathcube import ingest
from oathcube.archive.blocks import FrameBlock
from oathcube.archive.frames import DARK_REASON, is_dark, iter_frame_blocks, source_kind
from oathcube.archive.instruments import (
    INSTRUMENTS,
    instrument_of_imager,
    is_dark_name,
    parse_ucalgary_name,
)
from oathcube.archive.orientation import PYUCALGARYSRS, from_pyucalgarysrs
from oathcube.archive.themis_pgm import read_pgm
from oathcube.archive.trex_rgb import read_trex_rgb, scan_trex_rgb
from oathcube.cli import app
from oathcube.cube.store import Cube
from oathcube.errors import IngestError, OptionError
from oathcube.rawprep import RawPreparation, load_skymap_elevation
from oathcube.sites import station_code
from oathcube.synthetic.ucalgary import (
    ucalgary_frames,
    write_trex_rgb_h5,
    write_ucalgary_pgm,
)

READERS = pyucalgarysrs.PyUCalgarySRS().data.readers
PGM_READERS = {
    "themis": READERS.read_themis,
    "rego": READERS.read_rego,
    "trex_nir": READERS.read_trex_nir,
    "trex_blue": READERS.read_trex_blue,
}
PREP = RawPreparation(out_size=32)
N = 3  # frames per synthetic minute: nominal sizes, few frames, quick tests

#: The relation each test states on its own, index by index (not through
#: from_pyucalgarysrs): oathcube's frame i from pyucalgarysrs's array.
RELATION = {
    "themis": lambda pyu, i: pyu[::-1, :, i],
    "rego": lambda pyu, i: pyu[::-1, ::-1, i],
    "trex_nir": lambda pyu, i: pyu[::-1, :, i],
    "trex_blue": lambda pyu, i: pyu[::-1, :, i],
    "trex_rgb": lambda pyu, i: pyu[::-1, :, :, i],
}


def _pyu_times(data: Any) -> np.ndarray:
    return np.array(data.timestamp, dtype="datetime64[us]").astype("datetime64[ns]")


def _check_equal(instrument: str, ours: np.ndarray, times: np.ndarray, data: Any) -> None:
    """Pixels and times of oathcube's reader against pyucalgarysrs's ``Data``."""
    assert data.problematic_files == []
    pyu = np.asarray(data.data)
    assert ours.shape[0] == pyu.shape[-1] == len(data.timestamp) == times.size
    for i in range(ours.shape[0]):
        np.testing.assert_array_equal(ours[i], RELATION[instrument](pyu, i), err_msg=str(i))
    np.testing.assert_array_equal(ours, from_pyucalgarysrs(instrument, pyu))
    # To the microsecond: the same instants, and nothing finer than a microsecond.
    np.testing.assert_array_equal(times, _pyu_times(data))
    assert (times.astype("datetime64[us]").astype("datetime64[ns]") == times).all()


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _minutes(folder: Path, instrument: str, site: str = "gill", gz: bool = True) -> list[Path]:
    """Two consecutive synthetic minutes of ``instrument`` (plain or gzip PGM, or HDF5)."""
    _dir(folder)
    paths = []
    for k, start in enumerate(("2021-01-01T06:00:00.031416", "2021-01-01T06:01:00.027183")):
        if instrument == "trex_rgb":
            paths.append(write_trex_rgb_h5(folder, site, start, N, seed=10 + k))
        else:
            paths.append(write_ucalgary_pgm(folder, instrument, site, start, N, gz=gz, seed=k))
    return paths


# --------------------------------------------------------------------------- readers
@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("instrument", ["themis", "rego", "trex_nir", "trex_blue"])
def test_pgm_reader_equals_pyucalgarysrs(tmp_path: Path, instrument: str, gz: bool) -> None:
    paths = _minutes(tmp_path, instrument, gz=gz)
    blocks = list(iter_frame_blocks([tmp_path]))
    assert [b.instrument for b in blocks] == [instrument, instrument]
    assert [Path(b.source) for b in blocks] == paths
    ours = np.concatenate([b.frames for b in blocks])
    times = np.concatenate([b.time for b in blocks])
    nominal = INSTRUMENTS[instrument].shape or (270, 320)  # Blueline: as pyucalgarysrs expects
    assert ours.dtype == np.uint16 and ours.shape[1:] == nominal
    data = PGM_READERS[instrument]([str(p) for p in paths], quiet=True)
    _check_equal(instrument, ours, times, data)
    # And the frames are the rasters as written (row 0 first): no flip on oathcube's side.
    np.testing.assert_array_equal(blocks[0].frames, ucalgary_frames(N, ours.shape[1:], seed=0))


def test_rgb_reader_equals_pyucalgarysrs(tmp_path: Path) -> None:
    paths = _minutes(tmp_path, "trex_rgb")
    blocks = list(iter_frame_blocks([tmp_path]))
    assert [(b.instrument, b.frames.shape, b.bands, b.raw) for b in blocks] == [
        ("trex_rgb", (N, 480, 553, 3), 3, True)
    ] * 2
    ours = np.concatenate([b.frames for b in blocks])
    assert ours.dtype == np.uint8
    times = np.concatenate([b.time for b in blocks])
    data = READERS.read_trex_rgb([str(p) for p in paths], quiet=True)
    _check_equal("trex_rgb", ours, times, data)
    np.testing.assert_array_equal(
        blocks[1].frames, ucalgary_frames(N, (480, 553, 3), seed=11, dtype=np.uint8)
    )
    scanned = scan_trex_rgb(paths[0])
    assert scanned.frames.shape == blocks[0].frames.shape and not any(scanned.frames.strides)
    np.testing.assert_array_equal(scanned.time, blocks[0].time)


def test_bz2_themis_equals_pyucalgarysrs(tmp_path: Path) -> None:
    # UCalgary's oldest THEMIS minutes are .pgm.bz2 (20040825_0526_atha_themis01_full_1000ms).
    plain = write_ucalgary_pgm(tmp_path, "themis", "atha", "2004-08-25T05:26:00", N, gz=False)
    packed = tmp_path / "20040825_0526_atha_themis01_full_1000ms.pgm.bz2"
    packed.write_bytes(bz2.compress(plain.read_bytes()))
    plain.unlink()
    assert source_kind(packed) == "pgm"
    block = read_pgm(packed)
    _check_equal("themis", block.frames, block.time, READERS.read_themis(str(packed), quiet=True))


@pytest.mark.parametrize(
    "name", ["20140310_0600_gill_themis19_full.pgm.gz", "20140310_0605_gill_themis19_full.pgm"]
)
def test_real_themis_pgm_equals_pyucalgarysrs(shared: Path, name: str) -> None:
    path = shared / "data" / "themis" / name
    block = read_pgm(path)
    assert block.instrument == "themis" and block.n == 20
    _check_equal("themis", block.frames, block.time, READERS.read_themis(str(path), quiet=True))


def test_pyucalgarysrs_turns_skymaps_as_it_turns_frames(shared: Path) -> None:
    # Why oathcube's frames and skymaps agree with each other as pyucalgarysrs's do: it
    # flips a THEMIS skymap north-south, as it flips the frames; oathcube flips neither.
    path = shared / "data" / "themis" / "themis_skymap_gako_20110305-+_vXX.sav"
    (skymap,) = READERS.read_skymap(str(path), quiet=True).data
    np.testing.assert_array_equal(skymap.full_elevation[::-1, :], load_skymap_elevation(str(path)))


def test_orientation_sentences_name_every_ucalgary_instrument() -> None:
    assert set(PYUCALGARYSRS) == set(RELATION)
    assert "both axes" in PYUCALGARYSRS["rego"] and "north-south" in PYUCALGARYSRS["trex_nir"]
    docs = (Path(__file__).resolve().parents[1] / "docs" / "sky.md").read_text()
    for instrument in RELATION:
        assert f"`{instrument}`" in docs


# --------------------------------------------------------------------------- names
def test_ucalgary_names() -> None:
    rego = parse_ucalgary_name("20180403_0600_gill_rego-652_6300.pgm.gz")
    assert rego is not None and (rego.site, rego.instrument, rego.dark) == ("gill", "rego", False)
    dark = parse_ucalgary_name("20240101_005115_825600_atha_blue-633_dark_full.pgm")
    assert dark is not None and (dark.site, dark.instrument) == ("atha", "trex_blue") and dark.dark
    assert is_dark_name("20220101_2329_gill_nir-216_8446_dark.pgm.gz")
    assert not is_dark_name("20220307_0600_gill_nir-216_8446.pgm.gz")
    assert not is_dark_name("20220307_0600_darkh_nir-216_8446.pgm.gz")
    assert [instrument_of_imager(i) for i in ("themis19", "rego-652", "nir-216", "blue-814")] == [
        "themis",
        "rego",
        "trex_nir",
        "trex_blue",
    ]
    assert instrument_of_imager("rgb-04") == "trex_rgb" and instrument_of_imager("spect-02") is None
    assert source_kind("20210205_0600_gill_rgb-04_full.h5") == "h5"
    assert source_kind("auroral_feat.h5") is None  # OATH's features are not frames
    assert source_kind("20230503_06_rabb_spect-01_cal_v01.h5") is None
    assert is_dark("20220101_2329_gill_nir-216_8446_dark.pgm.gz")
    assert not is_dark("notes_dark.txt")


def test_frame_block_instrument_rules() -> None:
    t = np.array(["2021-01-01T06:00:00", "2021-01-01T06:00:03"], dtype="datetime64[ns]")
    counts, images = np.zeros((2, 4, 4), np.uint16), np.zeros((2, 4, 4), np.uint8)
    assert FrameBlock("gill", t, counts, "x", raw=True).instrument == "themis"
    assert FrameBlock("gill", t, images, "x", raw=False).instrument == "images"
    rgb = FrameBlock("gill", t, np.zeros((2, 4, 5, 3), np.uint8), "x", True, "trex_rgb")
    assert rgb.bands == 3
    with pytest.raises(IngestError, match=r"\(n, y, x, 3\)"):
        FrameBlock("gill", t, np.zeros((2, 4, 5), np.uint8), "x", True, "trex_rgb")
    with pytest.raises(IngestError, match="uint8"):
        FrameBlock("gill", t, np.zeros((2, 4, 5, 3), np.uint16), "x", True, "trex_rgb")
    with pytest.raises(IngestError, match=r"\(n, y, x\)"):
        FrameBlock("gill", t, np.zeros((2, 4, 5, 3), np.uint16), "x", True, "rego")
    with pytest.raises(IngestError, match="unknown instrument 'asi'"):
        FrameBlock("gill", t, np.zeros((2, 4, 4), np.uint16), "x", True, "asi")


def test_pgm_name_and_imager_must_agree(tmp_path: Path) -> None:
    path = write_ucalgary_pgm(tmp_path, "rego", "gill", "2021-01-01T06:00", 2, shape=(8, 8))
    renamed = path.rename(tmp_path / path.name.replace("rego-652_6300", "nir-216_8446"))
    with pytest.raises(IngestError, match="imager 'nir-216' but the frames say 'rego-652'"):
        read_pgm(renamed)
    spect = write_ucalgary_pgm(tmp_path, "rego", "luck", "2023-05-03T06:00", 1, imager="spect-02")
    with pytest.raises(IngestError, match="'spect-02' is not one whose PGM frames"):
        read_pgm(spect)


# --------------------------------------------------------------------------- ingest
def test_ingest_equals_pyucalgarysrs(tmp_path: Path, runner) -> None:
    """Four instruments at four sites, through `oathcube ingest`, against pyucalgarysrs."""
    sites = {"themis": "gill", "rego": "fsmi", "trex_nir": "rabb", "trex_blue": "atha"}
    raw = tmp_path / "raw"
    paths = {inst: _minutes(raw / inst, inst, site) for inst, site in sites.items()}
    cube = tmp_path / "cube.zarr"
    result = runner.invoke(app, ["ingest", str(raw), "-o", str(cube), "--prep", '{"out_size": 32}'])
    assert result.exit_code == 0, result.output
    for instrument, site in sites.items():
        station = xr.open_zarr(cube, group=f"stations/{station_code(site, instrument)}")
        assert station.attrs["instrument"] == instrument
        data = PGM_READERS[instrument]([str(p) for p in paths[instrument]], quiet=True)
        expected = PREP.apply(from_pyucalgarysrs(instrument, data.data))
        np.testing.assert_array_equal(station.pixels.values, expected, err_msg=instrument)
        np.testing.assert_array_equal(station.time.values, _pyu_times(data), err_msg=instrument)
        raw_size = list(INSTRUMENTS[instrument].shape or (270, 320))
        assert station.attrs["raw_frames"] == {"raw": True, "shape": raw_size}


RGB_PREP = RawPreparation(out_size=32, scaling="none")


def test_rgb_ingest_equals_pyucalgarysrs(tmp_path: Path, runner) -> None:
    """TREx RGB through `oathcube ingest`: three bands, each prepared as recorded."""
    paths = _minutes(tmp_path / "raw", "trex_rgb")
    cube = tmp_path / "cube.zarr"
    prep = '{"out_size": 32, "scaling": "none"}'
    result = runner.invoke(app, ["ingest", str(tmp_path / "raw"), "-o", str(cube), "--prep", prep])
    assert result.exit_code == 0, result.output
    station = xr.open_zarr(cube, group="stations/gill_trex_rgb")
    assert station.pixels.dims == ("time", "y", "x", "band")
    assert station.pixels.shape == (2 * N, 32, 32, 3) and station.pixels.dtype == np.uint8
    data = READERS.read_trex_rgb([str(p) for p in paths], quiet=True)
    raw = from_pyucalgarysrs("trex_rgb", data.data)
    expected = RGB_PREP.apply(raw)
    np.testing.assert_array_equal(station.pixels.values, expected)
    np.testing.assert_array_equal(station.time.values, _pyu_times(data))
    # Band by band: each band is the greyscale geometry of that band alone.
    for band in range(3):
        np.testing.assert_array_equal(
            station.pixels.values[..., band], RGB_PREP.apply(raw[..., band]), err_msg=str(band)
        )
    recorded = json.loads(station.attrs["preparation"])
    assert RawPreparation.from_attrs(recorded) == RGB_PREP
    assert recorded["scaling"] == "none" and "band by band" in recorded["bands"]
    assert station.attrs["instrument"] == "trex_rgb"
    assert station.attrs["raw_frames"] == {"raw": True, "shape": [480, 553]}
    # A rerun appends nothing; the next minute appends to the same bands.
    assert ingest(paths, cube, preparation=RGB_PREP, progress=False) == {"gill_trex_rgb": 0}


def test_rgb_preparation_is_explicit() -> None:
    """RGB frames are cropped, flipped and resized per band, never scaled; refusals are one line."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (2, 40, 48, 3), dtype=np.uint8)
    flipped = RawPreparation(
        out_size=40, scaling="none", flip_north_south=True, crop_radius_fraction=None
    )
    out = RawPreparation(crop_radius_fraction=None, out_size=40, scaling="none")
    # Same size in y only: a resize, band by band.
    for band in range(3):
        np.testing.assert_array_equal(
            flipped.apply(rgb)[..., band], flipped.apply(rgb[..., band]), err_msg=str(band)
        )
        np.testing.assert_array_equal(
            flipped.apply(rgb)[..., band], out.apply(rgb)[:, ::-1, :, band]
        )
    square = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    kept = RawPreparation(out_size=32, scaling="none")
    mask = kept.mask((32, 32))
    np.testing.assert_array_equal(kept.apply(square), square * mask[:, :, None])
    for bad, text in [
        (RawPreparation(out_size=32), "take no 16->8-bit scaling (scaling='percentile')"),
        (
            RawPreparation(out_size=32, scaling="fixed", fixed_low=0, fixed_high=9),
            "take no 16->8-bit scaling (scaling='fixed')",
        ),
    ]:
        with pytest.raises(OptionError, match=re.escape(text)) as info:
            bad.apply(square)
        assert "\n" not in str(info.value)
    with pytest.raises(OptionError, match="must be uint8, not uint16"):
        kept.apply(square.astype(np.uint16))
    with pytest.raises(OptionError, match='scaling="none" keeps 8-bit counts'):
        kept.apply(square[..., 0].astype(np.uint16))
    # The greyscale record is what it always was: no `bands` key where scaling scales.
    assert "bands" not in RawPreparation().attrs()
    assert list(RawPreparation().attrs()) == [
        "method", "format_version", "crop_radius_fraction", "min_elevation_deg", "skymap",
        "skymap_orientation", "scaling", "low_percentile", "high_percentile", "fixed_low",
        "fixed_high", "flip_north_south", "out_size", "orientation",
    ]  # fmt: skip


def test_rgb_ingest_with_scaling_is_refused_in_one_line(tmp_path: Path) -> None:
    (path, _) = _minutes(tmp_path / "rgb", "trex_rgb")
    cube = tmp_path / "cube.zarr"
    with pytest.raises(IngestError, match="TREx RGB frames: uint8 frames with 3 bands") as info:
        ingest([path], cube, preparation=PREP, progress=False)
    assert info.value.path == str(path) and "\n" not in str(info.value)
    assert 'scaling="none"' in str(info.value)
    assert not cube.exists()
    # And the other way round: 16-bit frames with an RGB preparation.
    (pgm, _) = _minutes(tmp_path / "nir", "trex_nir")
    with pytest.raises(IngestError, match='scaling="none" keeps 8-bit counts') as info:
        ingest([pgm], cube, preparation=RGB_PREP, progress=False)
    assert "\n" not in str(info.value) and not cube.exists()


def test_rgb_station_takes_no_greyscale_frames(tmp_path: Path) -> None:
    paths = _minutes(tmp_path / "rgb", "trex_rgb")
    cube = tmp_path / "cube.zarr"
    ingest(paths[:1], cube, preparation=RGB_PREP, progress=False)
    folder = _dir(tmp_path / "pngs")
    iio.imwrite(folder / "20210101_060200.png", np.zeros((32, 32), np.uint8))
    with pytest.raises(IngestError, match="holds TREx RGB frames") as info:
        ingest([folder], cube, station="gill_trex_rgb", progress=False)
    assert "\n" not in str(info.value)
    assert zarr.open_group(cube, mode="r")["stations/gill_trex_rgb/pixels"].shape[0] == N


@pytest.fixture
def rgb_classified(tmp_path: Path, archive: Path) -> tuple[Path, str]:
    """A built cube with a handcrafted model and a classified RGB station."""
    from oathcube import build, classify, compute_features, train

    cube = build(archive, tmp_path / "cube.zarr", progress=False, chunk_images=32)
    compute_features(cube, "handcrafted", progress=False, scheduler="synchronous")
    model = train(cube, "handcrafted")
    paths = _minutes(tmp_path / "raw", "trex_rgb")
    ingest(paths, cube, preparation=RGB_PREP, progress=False, scheduler="synchronous")
    classify(cube, model, station="gill_trex_rgb", progress=False, scheduler="synchronous")
    return Path(cube), model


def test_rgb_station_features_classify_timeline_nights(
    rgb_classified: tuple[Path, str], runner
) -> None:
    """features and classify take an RGB station's bands as the root's RGB PNGs'."""
    cube, model = rgb_classified
    code = "gill_trex_rgb"
    station = xr.open_zarr(cube, group=f"stations/{code}")
    assert (station[f"predicted_{model}"].values >= 0).all()
    features = station.features_handcrafted.values
    assert features.shape[0] == 2 * N and np.isfinite(features).all()
    # handcrafted averages the bands (as for RGB PNGs): the same as on the mean frame.
    from oathcube.features import get_extractor

    grey = np.rint(station.pixels.values.mean(axis=3)).astype(np.uint8)
    extractor = get_extractor("handcrafted")
    np.testing.assert_allclose(features, extractor(grey, np.zeros(2 * N)), rtol=1e-6)
    for args in [
        ["timeline", str(cube), "--station", code, "--freq", "20s", "--model", model],
        ["nights", str(cube), "--station", code],
    ]:
        out = runner.invoke(app, args)
        assert out.exit_code == 0, f"{args[0]}: {out.output}"


@pytest.mark.parametrize("view", ["keogram", "movie", "map"])
def test_rgb_station_greyscale_views_refuse_in_one_line(
    rgb_classified: tuple[Path, str], tmp_path: Path, runner, view: str
) -> None:
    # A keogram, movie or map draws one brightness a pixel: no band is picked silently.
    cube, _ = rgb_classified
    suffix = ".gif" if view == "movie" else ".png"
    args = [view, str(cube), "--station", "gill_trex_rgb", "--out", str(tmp_path / f"v{suffix}")]
    args += ["--start", "2021-01-01T06:00", "--end", "2021-01-01T06:02"]
    out = runner.invoke(app, args)
    assert out.exit_code == 1, out.output
    line = out.output.strip().splitlines()[-1]
    assert "holds RGB frames (3 bands)" in line and "Traceback" not in out.output
    assert not (tmp_path / f"v{suffix}").exists()


# --------------------------------------------------------------------------- damage
def _cut_raster(path: Path) -> Path:
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data[: len(data) - 100]))
    return path


def _cut_gzip(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _cut_header(path: Path) -> Path:
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data[: data.index(b"65535") - 3]))
    return path


def _cut_h5(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def _h5_frame_metadata_gone(path: Path) -> Path:
    with h5py.File(path, "r+") as f:
        del f["metadata/frame/frame1"]
    return path


def _h5_times_short(path: Path) -> Path:
    with h5py.File(path, "r+") as f:
        stamps = f["data/timestamp"][:-1]
        del f["data/timestamp"]
        f["data/timestamp"] = stamps
    return path


def _h5_not_hdf5(path: Path) -> Path:
    path.write_bytes(b"This is not a data file.\n")
    return path


@pytest.mark.parametrize(
    ("instrument", "damage", "says"),
    [
        (inst, damage, says)
        for inst in ("themis", "rego", "trex_nir", "trex_blue")
        for damage, says in (
            (_cut_raster, "cut short"),
            (_cut_gzip, "gzip stream"),
            (_cut_header, "does not parse"),
        )
    ]
    + [
        ("trex_rgb", _cut_h5, "cannot read HDF5 file"),
        ("trex_rgb", _h5_frame_metadata_gone, "no 'metadata/frame/frame1' group"),
        ("trex_rgb", _h5_times_short, "3 frames but data/timestamp has shape"),
        ("trex_rgb", _h5_not_hdf5, "cannot read HDF5 file"),
    ],
)
def test_a_damaged_file_is_one_line(tmp_path: Path, instrument: str, damage, says: str) -> None:
    good, bad = _minutes(tmp_path / "raw", instrument)
    damage(bad)
    with pytest.raises(IngestError, match=says) as info:
        list(iter_frame_blocks([bad]))
    assert info.value.path == str(bad) and "\n" not in str(info.value)
    # skip_bad: the good minute is read, the bad one listed with its reason.
    reader = iter_frame_blocks([tmp_path / "raw"], skip_bad=True)
    assert [b.source for b in reader] == [str(good)]
    assert [s.path for s in reader.skipped] == [str(bad)] and says in reader.skipped[0].reason


def test_rgb_file_of_another_imager_is_refused(tmp_path: Path) -> None:
    path = write_trex_rgb_h5(tmp_path, "gill", "2021-02-05T06:00", 1, shape=(4, 5))
    with h5py.File(path, "r+") as f:
        f["metadata/file"].attrs["site_unique_id"] = "rabb"
    with pytest.raises(IngestError, match="name says station 'gill' but the file says 'rabb'"):
        read_trex_rgb(path)


# --------------------------------------------------------------------------- darks
def test_dark_files_are_kept_apart(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    raw = _dir(tmp_path / "raw")
    sky = write_ucalgary_pgm(raw, "trex_nir", "gill", "2022-01-01T23:28:00", N)
    darks = [
        write_ucalgary_pgm(raw, "trex_nir", "gill", "2022-01-01T23:29:00", N, dark=True),
        write_ucalgary_pgm(raw, "rego", "gill", "2022-01-01T23:30:00", 1, dark=True),
        write_ucalgary_pgm(raw, "trex_blue", "gill", "2022-01-01T23:30:15.8256", 1, dark=True),
    ]
    assert darks[0].name == "20220101_2329_gill_nir-216_8446_dark.pgm.gz"
    assert darks[2].name == "20220101_233015_825600_gill_blue-814_dark_full.pgm.gz"
    # The dark frames themselves read like any PGM: pyucalgarysrs reads them, too.
    assert READERS.read_trex_nir(str(darks[0]), quiet=True).data.shape[-1] == N
    cube = tmp_path / "cube.zarr"
    with caplog.at_level(logging.INFO, logger="oathcube.archive.frames"):
        assert ingest([raw], cube, preparation=PREP, progress=False) == {"gill_trex_nir": N}
    station = xr.open_zarr(cube, group="stations/gill_trex_nir")
    assert station.attrs["instrument"] == "trex_nir" and station.attrs["sources"] == [str(sky)]
    assert station.attrs["skipped"] == [f"{d}: {DARK_REASON}" for d in sorted(darks)]
    assert sum(DARK_REASON in r.getMessage() for r in caplog.records) == len(darks)
    # Named explicitly, a dark file is still not sky: nothing read, listed, no error.
    reader = iter_frame_blocks([darks[0]])
    assert list(reader) == [] and [s.path for s in reader.skipped] == [str(darks[0])]
    with pytest.raises(IngestError, match="no frames found"):
        ingest([darks[0]], tmp_path / "dark.zarr", preparation=PREP, progress=False)


# --------------------------------------------------------------------------- mixing
def test_a_site_with_three_imagers_has_three_stations(tmp_path: Path, runner) -> None:
    # THEMIS, REGO and TREx NIR at one site, in one ingest: each imager its own station,
    # with its own cadence, frame size and instrument; TREx NIR frames are 256 x 256 like
    # THEMIS's, and only the station names keep them apart.
    _minutes(tmp_path / "themis", "themis")
    nir = write_ucalgary_pgm(_dir(tmp_path / "nir"), "trex_nir", "gill", "2021-01-01T06:00", N)
    rego = write_ucalgary_pgm(_dir(tmp_path / "rego"), "rego", "gill", "2021-01-01T06:00", N)
    cube = tmp_path / "cube.zarr"
    args = ["ingest", str(tmp_path / "themis"), str(nir), str(rego), "-o", str(cube)]
    result = runner.invoke(app, [*args, "--prep", '{"out_size": 32}'])
    assert result.exit_code == 0, result.output
    assert Cube.open(cube).stations() == ["gill", "gill_rego", "gill_trex_nir"]
    for station, instrument, cadence in (
        ("gill", "themis", 3.0),
        ("gill_rego", "rego", 3.0),
        ("gill_trex_nir", "trex_nir", 6.0),
    ):
        ds = xr.open_zarr(cube, group=f"stations/{station}")
        assert ds.attrs["instrument"] == instrument, station
        steps = np.diff(ds.time.values) / np.timedelta64(1, "s")
        assert abs(np.median(steps) - cadence) < 0.05, station
    # Another ingest of the site's NIR appends to its own station, never to THEMIS's
    before = xr.open_zarr(cube, group="stations/gill").time.values
    later = write_ucalgary_pgm(_dir(tmp_path / "nir2"), "trex_nir", "gill", "2021-01-01T06:01", N)
    assert ingest([later], cube, preparation=PREP, progress=False) == {"gill_trex_nir": N}
    np.testing.assert_array_equal(xr.open_zarr(cube, group="stations/gill").time.values, before)


@pytest.mark.filterwarnings("ignore:Consolidated metadata")
def test_old_stations_count_as_themis(tmp_path: Path) -> None:
    import imageio.v3 as iio

    themis = _minutes(tmp_path / "themis", "themis")
    cube = tmp_path / "cube.zarr"
    ingest(themis[:1], cube, preparation=PREP, progress=False)
    group = zarr.open_group(cube, mode="r+", use_consolidated=False)["stations/gill"]
    del group.attrs["instrument"]  # as a cube ingested before the attribute
    zarr.consolidate_metadata(str(cube))
    folder = tmp_path / "png"
    folder.mkdir()
    iio.imwrite(folder / "gill_20210101_080000.png", np.full((32, 32), 7, np.uint8))
    with pytest.raises(IngestError, match="station 'gill' holds THEMIS frames"):
        ingest([folder], cube, preparation=PREP, progress=False)
    assert ingest(themis[1:], cube, preparation=PREP, progress=False) == {"gill": N}
    assert xr.open_zarr(cube, group="stations/gill").attrs["instrument"] == "themis"


def test_image_folders_are_their_own_instrument(tmp_path: Path) -> None:
    import imageio.v3 as iio

    folder = tmp_path / "png"
    folder.mkdir()
    iio.imwrite(folder / "gill_20210101_080000.png", np.full((32, 32), 7, np.uint8))
    cube = tmp_path / "cube.zarr"
    ingest(_minutes(tmp_path / "themis", "themis"), cube, preparation=PREP, progress=False)
    with pytest.raises(IngestError, match="image-folder frames, but station 'gill' holds THEMIS"):
        ingest([folder], cube, preparation=PREP, progress=False)
    other = tmp_path / "images.zarr"
    ingest([folder], other, preparation=PREP, progress=False)
    assert xr.open_zarr(other, group="stations/gill").attrs["instrument"] == "images"
    shutil.rmtree(other)
