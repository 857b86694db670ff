"""ingest (oathcube.ingestion.stations): raw THEMIS files into station groups, appended, sharded."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from oathcube import classify, compute_features, ingest, train
from oathcube.cli import app
from oathcube.errors import IngestError, OptionError
from oathcube.rawprep import RawPreparation
from oathcube.synthetic.themis import write_cdf, write_pgm

PREP = RawPreparation(out_size=32)


def test_ingest_two_stations_into_a_tree(raw: Path, cube: Path) -> None:
    written = ingest([raw], cube, preparation=PREP, progress=False)
    assert written == {"fsmi": 60, "gill": 20}
    tree = xr.open_datatree(cube, engine="zarr")
    text = str(tree)
    assert "/stations/fsmi" in text and "/stations/gill" in text
    fsmi = xr.open_zarr(cube, group="stations/fsmi")
    assert fsmi.pixels.dims == ("time", "y", "x") and fsmi.pixels.dtype == np.uint8
    assert fsmi.indexes["time"].is_monotonic_increasing
    assert fsmi.time.values[0] == np.datetime64("2011-01-06T05:00:00")
    assert '"out_size": 32' in fsmi.attrs["preparation"]
    assert len(fsmi.attrs["sources"]) == 2 and fsmi.attrs["station"] == "fsmi"


def test_frames_are_stored_at_the_prepared_size(tmp_path: Path) -> None:
    # 64-pixel raw frames prepared to 32: the station holds 32 x 32 frames, and a
    # second append of the same size fits them.
    folder = tmp_path / "raw64"
    folder.mkdir()
    write_cdf(folder, "fsmi", "2011-01-06T05:00:00", 9, size=64, seed=1)
    write_cdf(folder, "fsmi", "2011-01-06T06:00:00", 9, size=64, seed=2)
    cube = tmp_path / "prepared.zarr"
    ingest([folder / "thg_l1_asf_fsmi_2011010605_v01.cdf"], cube, preparation=PREP, progress=False)
    ingest([folder], cube, preparation=PREP, progress=False)
    pixels = xr.open_zarr(cube, group="stations/fsmi").pixels
    assert pixels.shape == (18, 32, 32) and int(pixels.max()) > 0


def test_appending_keeps_what_is_there(raw: Path, cube: Path, tmp_path: Path) -> None:
    ingest(
        [raw / "thg_l1_asf_fsmi_2011010605_v01.cdf"],
        cube,
        preparation=PREP,
        progress=False,
        chunk_frames=10,
    )
    chunk = Path(cube) / "stations/fsmi/pixels/c/2/0/0"  # the third full chunk of 10 frames
    before = chunk.read_bytes(), chunk.stat().st_mtime_ns
    first = xr.open_zarr(cube, group="stations/fsmi").pixels.values
    ingest([raw], cube, preparation=PREP, progress=False)  # the same hour again + a new one
    after = xr.open_zarr(cube, group="stations/fsmi")
    assert after.sizes["time"] == 60
    np.testing.assert_array_equal(after.pixels.values[:30], first)
    assert (chunk.read_bytes(), chunk.stat().st_mtime_ns) == before
    assert after.attrs["sources"][0].endswith("2011010605_v01.cdf")


def test_earlier_frames_than_the_archive_are_refused(raw: Path, cube: Path) -> None:
    ingest([raw / "thg_l1_asf_fsmi_2011010606_v01.cdf"], cube, preparation=PREP, progress=False)
    with pytest.raises(IngestError, match="overlap"):
        ingest([raw / "thg_l1_asf_fsmi_2011010605_v01.cdf"], cube, preparation=PREP, progress=False)


def test_a_bad_file_stops_everything_unless_skipped(raw: Path, cube: Path, runner) -> None:
    bad = raw / "thg_l1_asf_fsmi_2011010607_v01.cdf"
    data = (raw / "thg_l1_asf_fsmi_2011010606_v01.cdf").read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    result = runner.invoke(app, ["ingest", str(raw), "-o", str(cube)])
    assert result.exit_code == 1 and bad.name in result.output
    assert not (Path(cube) / "stations").exists()  # nothing half-written
    result = runner.invoke(
        app, ["ingest", str(raw), "-o", str(cube), "--skip-bad", "--prep", '{"out_size": 32}']
    )
    assert result.exit_code == 0, result.output
    fsmi = xr.open_zarr(cube, group="stations/fsmi")
    assert fsmi.sizes["time"] == 60
    assert any(bad.name in s for s in fsmi.attrs["skipped"])


def test_pgm_and_image_folders_ingest(tmp_path: Path) -> None:
    folder = tmp_path / "pgm"
    folder.mkdir()
    write_pgm(folder, "gill", "2014-03-10T06:00:00", 5, size=32)
    write_pgm(folder, "gill", "2014-03-10T06:01:00", 5, size=32, gz=True)
    cube = str(tmp_path / "new.zarr")
    assert ingest([folder], cube, preparation=PREP, progress=False) == {"gill": 10}
    assert xr.open_zarr(cube, group="stations/gill").sizes["time"] == 10


def test_sharded_station_classifies_like_an_unsharded_one(
    raw: Path, cube: Path, tmp_path: Path
) -> None:
    # 60 frames in shards of 16 (chunks of 4): features and predictions follow the
    # shards (one chunk each), and every array equals an unsharded ingest's.
    compute_features(cube, "handcrafted", progress=False, scheduler="synchronous")
    model = train(cube, "handcrafted")
    other = str(tmp_path / "sharded.zarr")
    shutil.copytree(cube, other)
    files = [raw / "thg_l1_asf_fsmi_2011010605_v01.cdf", raw / "thg_l1_asf_fsmi_2011010606_v01.cdf"]
    ingest(files, cube, preparation=PREP, progress=False)
    ingest(files, other, preparation=PREP, progress=False, chunk_frames=4, shard_frames=16)
    for where in (cube, other):
        classify(where, model, station="fsmi", progress=False, scheduler="synchronous")
    plain = zarr.open_group(cube, mode="r")["stations/fsmi"]
    sharded = zarr.open_group(other, mode="r")["stations/fsmi"]
    assert sharded["pixels"].shards == (16, 32, 32)
    assert sharded["features_handcrafted"].chunks[0] == 16
    for name in ("pixels", "features_handcrafted", f"predicted_{model}", "time"):
        np.testing.assert_array_equal(sharded[name][:], plain[name][:], err_msg=name)
    with pytest.raises(OptionError, match="multiple of the 4 frames per chunk"):
        ingest(files, str(tmp_path / "x.zarr"), chunk_frames=4, shard_frames=10, progress=False)


def test_real_themis_files_keep_their_times(shared: Path, tmp_path: Path) -> None:
    cube = str(tmp_path / "real.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no lossy time encoding, no other surprise
        written = ingest([shared / "data" / "themis"], cube, progress=False)
    assert written == {"gako": 23, "gill": 40}
    gako = xr.open_zarr(cube, group="stations/gako")
    assert gako.time.values[0] == np.datetime64("2011-01-06T17:00:00.053")
    gill = xr.open_zarr(cube, group="stations/gill").time.values
    assert gill[0] == np.datetime64("2014-03-10T06:00:00.063119")  # microseconds kept
    tree = xr.open_datatree(cube, engine="zarr")
    assert set(tree["stations"].children) == {"gako", "gill"}
