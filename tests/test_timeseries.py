"""Station archives: ingest raw THEMIS files, append, classify, count classes in time."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from themis_files import write_cdf, write_pgm

from oathcube import build, classify, compute_features, ingest, timeline, train
from oathcube.cli import app
from oathcube.errors import CubeError, IngestError, ModelError, OptionError
from oathcube.rawprep import RawPreparation

PREP = RawPreparation(out_size=32)


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    """Two stations, two hours each, small frames."""
    folder = tmp_path / "raw"
    folder.mkdir()
    write_cdf(folder, "fsmi", "2011-01-06T05:00:00", 30, size=32, seed=1)
    write_cdf(folder, "fsmi", "2011-01-06T06:00:00", 30, size=32, seed=2, layout="2024")
    write_cdf(folder, "gill", "2011-01-06T05:00:00", 20, size=32, seed=3)
    return folder


@pytest.fixture
def cube(archive: Path, tmp_path: Path) -> str:
    return build(archive, tmp_path / "cube.zarr", progress=False, chunk_images=32)


def test_ingest_two_stations_into_a_tree(raw: Path, cube: str) -> None:
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


def test_appending_keeps_what_is_there(raw: Path, cube: str, tmp_path: Path) -> None:
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


def test_earlier_frames_than_the_archive_are_refused(raw: Path, cube: str) -> None:
    ingest([raw / "thg_l1_asf_fsmi_2011010606_v01.cdf"], cube, preparation=PREP, progress=False)
    with pytest.raises(IngestError, match="overlap"):
        ingest([raw / "thg_l1_asf_fsmi_2011010605_v01.cdf"], cube, preparation=PREP, progress=False)


def test_a_bad_file_stops_everything_unless_skipped(raw: Path, cube: str, runner) -> None:
    bad = raw / "thg_l1_asf_fsmi_2011010607_v01.cdf"
    data = (raw / "thg_l1_asf_fsmi_2011010606_v01.cdf").read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    result = runner.invoke(app, ["ingest", str(raw), "-o", cube])
    assert result.exit_code == 1 and bad.name in result.output
    assert not (Path(cube) / "stations").exists()  # nothing half-written
    result = runner.invoke(
        app, ["ingest", str(raw), "-o", cube, "--skip-bad", "--prep", '{"out_size": 32}']
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
    raw: Path, cube: str, tmp_path: Path
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


@pytest.mark.slow
def test_classify_and_timeline(raw: Path, cube: str, tmp_path: Path, runner) -> None:
    compute_features(cube, "handcrafted", progress=False, scheduler="synchronous")
    model = train(cube, "handcrafted")
    ingest([raw], cube, preparation=PREP, progress=False)
    done = classify(cube, model, progress=False, scheduler="synchronous")
    assert done == {"": 90, "stations/fsmi": 60, "stations/gill": 20}
    fsmi = xr.open_zarr(cube, group="stations/fsmi")
    pred = fsmi[f"predicted_{model}"].values
    assert pred.min() >= 0 and pred.max() <= 5
    assert fsmi[f"score_{model}"].shape == (60, 6)
    np.testing.assert_array_equal(pred, fsmi[f"score_{model}"].values.argmax(1))

    result = timeline(cube, "fsmi", "30min", model=model)
    assert result["count"].dims == ("time", "class")
    assert int(result["n_frames"].sum()) == 60
    filled = result["n_frames"].values > 0
    assert not filled.all()  # 05:30-06:00 holds no frames: an empty bin, not a zero
    np.testing.assert_allclose(result["fraction"].sum("class").values[filled], 1.0, rtol=1e-6)
    assert np.isnan(result["fraction"].values[~filled]).all()
    counts = np.bincount(pred, minlength=6)
    np.testing.assert_array_equal(result["count"].sum("time").values, counts)

    out = runner.invoke(
        app,
        [
            "timeline",
            cube,
            "--station",
            "fsmi",
            "--freq",
            "30min",
            "--out",
            str(tmp_path / "t.csv"),
            "--out",
            str(tmp_path / "t.nc"),
            "--out",
            str(tmp_path / "t.png"),
        ],
    )
    assert out.exit_code == 0, out.output
    table = pd.read_csv(tmp_path / "t.csv")
    assert table["n_frames"].sum() == 60
    assert xr.open_dataset(tmp_path / "t.nc")["count"].sum() == 60
    assert (tmp_path / "t.png").stat().st_size > 20_000

    # the labelled images of a station can be counted too
    station = str(xr.open_zarr(cube).station.values[5])
    assert int(timeline(cube, station, "1D", model=model)["n_frames"].sum()) > 0

    # a second run recomputes nothing and gives the same predictions
    classify(cube, model, station="fsmi", progress=False, scheduler="synchronous")
    again = xr.open_zarr(cube, group="stations/fsmi")[f"predicted_{model}"].values
    np.testing.assert_array_equal(again, pred)


def test_clear_errors(raw: Path, cube: str) -> None:
    compute_features(cube, "handcrafted", progress=False, scheduler="synchronous")
    model = train(cube, "handcrafted")
    ingest([raw], cube, preparation=PREP, progress=False)
    with pytest.raises(CubeError, match="no station 'inuv'"):
        classify(cube, model, station="inuv", progress=False)
    with pytest.raises(CubeError, match="no frames between"):
        classify(cube, model, station="fsmi", start="2012-01-01", end="2012-01-02", progress=False)
    with pytest.raises(ModelError, match="no model"):
        classify(cube, "nope", progress=False)
    with pytest.raises(ModelError, match="no predictions"):
        timeline(cube, "fsmi")
    published = train(cube, "published")
    with pytest.raises(ModelError, match="published features"):
        classify(cube, published, station="fsmi", progress=False)
    settings = zarr.open_group(cube, mode="r+", use_consolidated=False)[f"models/{model}"].attrs
    settings["feature_settings"] = settings["feature_settings"].replace(
        '"hist_bins": 16', '"hist_bins": 32'
    )
    with pytest.raises(ModelError, match="hist_bins"):
        classify(cube, model, station="fsmi", progress=False, scheduler="synchronous")


def test_real_themis_files_keep_their_times(shared: Path, tmp_path: Path) -> None:
    import warnings

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
