"""Frames and skymaps agree whatever the preparation (issue 20, case 3).

A preparation that flips or resizes the frames (``ingest --prep``) must do the same to
the skymap stored with the station, or maps and keograms put the sky somewhere else and
still look plausible.  Checked through the CLI on the real Gakona hour and skymap: the
brightest star lands on the same latitude and longitude as with an unprepared ingest.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from oathcube.archive.skymap import ideal_skymap, read_skymap
from oathcube.cli import app
from oathcube.errors import IngestError
from oathcube.ingestion.skymaps import store_skymaps
from oathcube.ingestion.stations import ingest
from oathcube.rawprep import RawPreparation
from oathcube.views.skymaps import skymap_for

CDF = "thg_l1_asf_gako_2011010617_v01.cdf"
SKYMAP = "themis_skymap_gako_20110305-+_vXX.sav"
GROUP = "stations/gako/skymaps/20110305T08"
# The mean of the hour's 23 frames; above 30 deg the horizon glow is out of the way
# and the brightest pixel is one star, unique in value.
MEAN = [
    *("--start", "2011-01-06T17:00", "--end", "2011-01-06T17:02"),
    *("--min-elevation", "30", "--skymap", "20110305"),
]


@pytest.fixture(scope="module")
def themis(shared: Path) -> Path:
    return shared / "data" / "themis"


def _ingest_and_map(runner, themis: Path, folder: Path, prep: dict) -> xr.Dataset:
    """``ingest --prep PREP`` of the real hour and skymap, then ``map`` of its mean (.nc)."""
    cube, out = folder / "cube.zarr", folder / "map.nc"
    folder.mkdir()
    args = ["ingest", str(themis / SKYMAP), str(themis / CDF), "-o", str(cube)]
    result = runner.invoke(app, [*args, "--prep", json.dumps(prep)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["map", str(cube), "--station", "gako", *MEAN, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return xr.load_dataset(out)


def _centres(mapped: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude of every mapped pixel's centre (mean of its corners)."""
    out = []
    for name in ("latitude", "longitude"):
        c = mapped[name].values.astype(np.float64)
        out.append((c[:-1, :-1] + c[1:, :-1] + c[:-1, 1:] + c[1:, 1:]) / 4)
    return out[0], out[1]


def _brightest(mapped: xr.Dataset) -> tuple[float, float, float]:
    """(value, latitude, longitude) of the brightest mapped pixel."""
    value = mapped["value"].values
    i = np.unravel_index(np.nanargmax(value), value.shape)
    lat, lon = _centres(mapped)
    return float(value[i]), float(lat[i]), float(lon[i])


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, themis: Path) -> xr.Dataset:
    from typer.testing import CliRunner

    return _ingest_and_map(CliRunner(), themis, tmp_path_factory.mktemp("plain") / "p", {})


def test_a_flip_moves_the_skymap_with_the_frames(
    tmp_path: Path, themis: Path, runner, plain: xr.Dataset
) -> None:
    flipped = _ingest_and_map(runner, themis, tmp_path / "flip", {"flip_north_south": True})
    value, lat, lon = _brightest(plain)
    assert value > 200  # a star, well above the sky around it
    assert _brightest(flipped) == pytest.approx((value, lat, lon), abs=1e-4)
    # Not only the star: every mapped pixel keeps its value at its place on the ground.
    for mapped in (plain, flipped):
        assert np.isfinite(mapped["value"].values).sum() > 20_000
    a_lat, a_lon = _centres(plain)
    b_lat, b_lon = _centres(flipped)
    a = plain["value"].values
    b = flipped["value"].values[::-1, :]  # stored rows are flipped: undo to compare
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a_lat, b_lat[::-1, :], atol=1e-4)
    np.testing.assert_allclose(a_lon, b_lon[::-1, :], atol=1e-4)
    # What plain xarray sees: the stored skymap is the file's, flipped, and says so.
    stored = xr.open_zarr(tmp_path / "flip" / "cube.zarr", group=GROUP)
    sky = read_skymap(themis / SKYMAP)
    np.testing.assert_array_equal(stored["elevation"].values, sky.elevation[::-1, :])
    np.testing.assert_array_equal(stored["latitude"].values, sky.latitude[:, ::-1, :])
    geometry = json.loads(stored.attrs["frame_geometry"])
    assert geometry["flip_north_south"] is True and "frame_geometry" in stored.attrs["orientation"]


def test_a_resize_and_flip_keep_the_star_in_place(
    tmp_path: Path, themis: Path, runner, plain: xr.Dataset
) -> None:
    prep = {"flip_north_south": True, "out_size": 192}
    resized = _ingest_and_map(runner, themis, tmp_path / "resized", prep)
    assert resized["value"].shape == (192, 192)
    _, lat, lon = _brightest(plain)
    _, r_lat, r_lon = _brightest(resized)
    # A stored pixel is 4/3 raw pixels (~0.05 deg at this elevation): within a tenth of that.
    assert abs(r_lat - lat) < 0.02 and abs(r_lon - lon) * np.cos(np.radians(lat)) < 0.02
    stored = xr.open_zarr(tmp_path / "resized" / "cube.zarr", group=GROUP)
    assert stored["elevation"].shape == (192, 192)
    assert stored["latitude"].shape == (3, 193, 193)
    # Zenith stays where the frames have it: the mean raw zenith pixel, flipped and scaled.
    sky = read_skymap(themis / SKYMAP)
    raw = np.unravel_index(np.nanargmax(sky.elevation), sky.elevation.shape)
    got = np.unravel_index(np.nanargmax(stored["elevation"].values), (192, 192))
    want = ((255 - raw[0] + 0.5) * 0.75 - 0.5, (raw[1] + 0.5) * 0.75 - 0.5)
    assert abs(got[0] - want[0]) <= 1 and abs(got[1] - want[1]) <= 1


def test_a_turned_skymap_is_stored_turned(tmp_path: Path, themis: Path) -> None:
    # skymap_orientation says how a skymap must turn to fit the raw frames (used for an
    # elevation crop): the stored skymap turns the same way, then flips with the frames.
    prep = RawPreparation(
        min_elevation_deg=10.0,
        skymap=str(themis / SKYMAP),
        skymap_orientation="rot180",
        flip_north_south=True,
    )
    cube = tmp_path / "cube.zarr"
    ingest([themis / SKYMAP, themis / CDF], cube, preparation=prep, progress=False)
    stored = xr.open_zarr(cube, group=GROUP)
    sky = read_skymap(themis / SKYMAP)
    np.testing.assert_array_equal(stored["elevation"].values, sky.elevation[:, ::-1])
    np.testing.assert_array_equal(stored["longitude"].values, sky.longitude[:, :, ::-1])
    # The frames' crop and the stored skymap agree: zero exactly below 10 deg.
    pixels = xr.open_zarr(cube, group="stations/gako")["pixels"].values
    with np.errstate(invalid="ignore"):
        low = ~(stored["elevation"].values >= 10.0)
    assert not pixels[:, low].any() and pixels[:, ~low].any()


def test_a_skymap_stored_before_the_fit_is_fitted_on_reading(tmp_path: Path, themis: Path) -> None:
    # Cubes written before skymaps followed the preparation hold the file's arrays with
    # no frame_geometry: readers fit them to the frames, so old cubes draw right too.
    cube = tmp_path / "cube.zarr"
    prep = RawPreparation(flip_north_south=True)
    ingest([themis / SKYMAP, themis / CDF], cube, preparation=prep, progress=False)
    sky = read_skymap(themis / SKYMAP)
    group = zarr.open_group(cube / GROUP, mode="r+")
    for name in ("elevation", "azimuth", "latitude", "longitude"):
        group[name][...] = getattr(sky, name)  # type: ignore[index]
    del group.attrs["frame_geometry"]
    ds = skymap_for(cube, "gako", "2011-03-06")
    assert ds is not None
    np.testing.assert_array_equal(ds["elevation"].values, sky.elevation[::-1, :])
    np.testing.assert_array_equal(ds["latitude"].values, sky.latitude[:, ::-1, :])
    assert json.loads(ds.attrs["frame_geometry"])["flip_north_south"] is True


def test_stored_mask_is_where_apply_keeps_pixels(themis: Path) -> None:
    frames = np.full((1, 256, 256), 3000, dtype=np.uint16)
    frames[0, ::7, ::5] = 9000  # some texture, so that scaling keeps the crop nonzero
    for extra in ({}, {"out_size": 128}):
        prep = RawPreparation(
            min_elevation_deg=20.0,
            skymap=str(themis / SKYMAP),
            flip_north_south=True,
            scaling="fixed",
            fixed_low=0,
            fixed_high=10000,
            **extra,  # type: ignore[arg-type]
        )
        out = prep.apply(frames)[0]
        keep = prep.stored_mask((256, 256))
        assert keep.shape == out.shape and keep.sum() > 0.3 * keep.size
        if not extra:
            np.testing.assert_array_equal(out > 0, keep)
            np.testing.assert_array_equal(keep, prep.mask((256, 256))[::-1, :])
        else:  # resampled: the rim blends kept and cropped pixels, inside is kept
            assert (out[keep] > 0).mean() > 0.99 and (out[~keep] > 0).mean() < 0.05


def test_a_map_leaves_out_the_crop_of_flipped_frames(tmp_path: Path, themis: Path, runner) -> None:
    prep = {"flip_north_south": True, "min_elevation_deg": 20, "skymap": str(themis / SKYMAP)}
    cube, out = tmp_path / "cube.zarr", tmp_path / "map.nc"
    args = ["ingest", str(themis / SKYMAP), str(themis / CDF), "-o", str(cube)]
    assert runner.invoke(app, [*args, "--prep", json.dumps(prep)]).exit_code == 0
    args = ["map", str(cube), "--station", "gako", "--time", "2011-01-06T17:00:33"]
    result = runner.invoke(app, [*args, "--min-elevation", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    shown = np.isfinite(xr.load_dataset(out)["value"].values)
    elevation = xr.open_zarr(cube, group=GROUP)["elevation"].values
    with np.errstate(invalid="ignore"):
        assert not (shown & ~(elevation >= 20)).any()  # the crop's zeros are no sky


def test_a_skymap_of_another_size_is_refused_before_writing(tmp_path: Path, themis: Path) -> None:
    # Resizing follows out_size only for the imager's own skymap: one of another size
    # (another imager at the site) is refused, not squeezed onto the frames.
    cube = tmp_path / "cube.zarr"
    ingest([themis / CDF], cube, preparation=RawPreparation(out_size=128), progress=False)
    other = ideal_skymap("gako", 62.41, 214.84, size=512, valid_from="2011-01-01T00")
    with pytest.raises(IngestError, match=r"skymap is \(512, 512\), the station's raw frames"):
        store_skymaps([other], cube)
    assert not (cube / "stations/gako/skymaps").exists()
    own = ideal_skymap("gako", 62.41, 214.84, size=256, valid_from="2011-01-01T00")
    store_skymaps([own], cube)
    assert xr.open_zarr(cube, group="stations/gako/skymaps/20110101T00")["elevation"].shape == (
        128,
        128,
    )


def test_a_skymap_added_after_the_frames_moved_fits_by_the_recorded_raw_size(
    tmp_path: Path, themis: Path, runner
) -> None:
    # The station records its raw frames' size on ingest (raw_frames), so a skymap added
    # later is checked and resized without the frames' source file at hand.
    moved = tmp_path / CDF
    moved.write_bytes((themis / CDF).read_bytes())
    cube = tmp_path / "cube.zarr"
    prep = json.dumps({"out_size": 128})
    assert (
        runner.invoke(app, ["ingest", str(moved), "-o", str(cube), "--prep", prep]).exit_code == 0
    )
    assert zarr.open_group(str(cube / "stations/gako")).attrs["raw_frames"] == {
        "raw": True,
        "shape": [256, 256],
    }
    moved.unlink()
    result = runner.invoke(
        app, ["ingest", str(themis / SKYMAP), "-o", str(cube), "--station", "gako"]
    )
    assert result.exit_code == 0, result.output
    stored = zarr.open_group(str(cube / GROUP))
    assert stored["elevation"].shape == (128, 128)


def test_the_crop_mask_follows_what_ingest_recorded_of_the_raw_frames() -> None:
    from oathcube.views._common import prepared_mask

    prep = RawPreparation(out_size=128, flip_north_south=True)
    frames = xr.Dataset(coords={"y": np.arange(128), "x": np.arange(128)})
    frames.attrs["preparation"] = json.dumps(prep.attrs())
    # Raw 256 px frames prepared to 128 px: the crop is resampled as the frames were.
    frames.attrs["raw_frames"] = {"raw": True, "shape": [256, 256]}
    mask = prepared_mask(frames)
    assert mask is not None and mask.shape == (128, 128)
    np.testing.assert_array_equal(mask, prep.stored_mask((256, 256)))
    # Image folders are stored as read: their recorded preparation crops nothing.
    frames.attrs["raw_frames"] = {"raw": False, "shape": []}
    assert prepared_mask(frames) is None
