"""Building cubes: schema, plain-xarray readability, tarball streaming, atomic publish."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import xarray as xr
import zarr

import oathcube.ingestion.labelled as cube_write
from oathcube import build, open_cube
from oathcube.cli import app
from oathcube.errors import CubeError


def test_plain_xarray_opens_the_cube_without_oathcube(cube: Path) -> None:
    code = (
        "import sys, warnings, xarray as xr\n"
        "warnings.simplefilter('error')\n"
        f"ds = xr.open_zarr({str(cube)!r})\n"
        "assert 'oathcube' not in sys.modules\n"
        "print(ds.pixels.dtype, ds.pixels.dims, ds.time.dtype, ds.station.dims, ds.image.dtype)\n"
        "print(sorted(ds.data_vars))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "uint8 ('image', 'y', 'x') datetime64[ns] ('image',) int32"
    assert json.loads(out[1].replace("'", '"')) == [
        "class2",
        "class6",
        "features_published",
        "label",
        "pixels",
        "rot_angle",
        "split",
    ]


def test_schema_values_match_the_archive(cube: Path, archive: Path) -> None:
    ds = xr.open_zarr(cube)
    assert ds.sizes["image"] == 90 and ds.image.values[0] == 1
    png = iio.imread(archive / "images/cropped_scaled/00017.png")
    np.testing.assert_array_equal(ds.pixels.sel(image=17).values, png)
    assert ds.split.dims == ("fold", "rank") and ds.split.shape == (5, 90)
    assert ds.features_published.dims == ("image", "logit")
    assert ds.features_published.dtype == np.float32
    assert ds.station.values[0] == "unknown" and np.isnat(ds.time.values[0])
    assert ds.time.encoding["units"].startswith("microseconds since 1970-01-01")
    assert ds.pixels.encoding["chunks"] == (32, 32, 32)
    labels = (archive / "classifications/classifications.csv").read_bytes()
    sums = ds.attrs["source_sha256"]
    assert sums["classifications/classifications.csv"] == hashlib.sha256(labels).hexdigest()
    assert ds.attrs["oathcube_status"] == "complete" and ds.attrs["synthetic_archive"] == 1
    assert "oathcube_version" in ds.attrs and "created" in ds.attrs


def test_tensorstore_reads_the_pixels(cube: Path) -> None:
    tensorstore = pytest.importorskip("tensorstore")
    store = tensorstore.open({"driver": "zarr3", "kvstore": f"file://{cube}/pixels"}).result()
    np.testing.assert_array_equal(store.read().result(), xr.open_zarr(cube).pixels.values)


def test_select_by_station_and_time(cube: Path) -> None:
    ds = open_cube(cube)
    station = str(ds.station.values[1])
    day = str(ds.time.values[1])[:10]
    by_station = ds.sel(station=station)
    assert set(by_station.station.values) == {station}
    both = ds.sel(station=station, time=slice(day, day))
    assert both.sizes["image"] >= 1
    assert all(str(t)[:10] == day for t in both.time.values)
    assert set(both.station.values) == {station}
    assert ds.sel(station=station).pixels.shape[0] == by_station.sizes["image"]


def test_tarball_streams_to_the_same_cube(archive: Path, tmp_path: Path) -> None:
    tgz = tmp_path / "oath_v1.1.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(archive, arcname="oath")
    a = xr.open_zarr(build(archive, tmp_path / "a.zarr", progress=False, chunk_images=32))
    b = xr.open_zarr(build(tgz, tmp_path / "b.zarr", progress=False, chunk_images=32))
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())


def test_rgb_pngs_get_a_band_dimension(archive: Path, tmp_path: Path) -> None:
    path = archive / "images/cropped_scaled/00003.png"
    grey = iio.imread(path)
    iio.imwrite(path, np.stack([grey, grey // 2, grey // 3], axis=-1))
    ds = xr.open_zarr(build(archive, tmp_path / "rgb.zarr", progress=False))
    assert ds.pixels.dims == ("image", "y", "x", "band")
    np.testing.assert_array_equal(ds.pixels.sel(image=3).values[..., 1], grey // 2)
    np.testing.assert_array_equal(
        ds.pixels.sel(image=2).values[..., 2],
        iio.imread(archive / "images/cropped_scaled/00002.png"),
    )


def test_existing_cube_needs_overwrite(cube: Path, archive: Path, runner) -> None:
    result = runner.invoke(app, ["build", str(archive), "-o", str(cube)])
    assert result.exit_code == 1 and "already exists" in result.output
    with pytest.raises(CubeError):
        build(archive, cube, progress=False)
    build(archive, cube, overwrite=True, progress=False)
    assert open_cube(cube).sizes["image"] == 90


def test_interrupted_build_leaves_nothing_and_keeps_the_old_cube(
    cube: Path, archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = xr.open_zarr(cube).pixels.values
    calls = {"n": 0}
    real = cube_write.write_region

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(cube_write, "write_region", flaky)
    with pytest.raises(KeyboardInterrupt):
        build(
            archive, cube, overwrite=True, progress=False, chunk_images=32, scheduler="synchronous"
        )
    assert not list(cube.parent.glob(".cube.zarr.*"))
    np.testing.assert_array_equal(open_cube(cube).pixels.values, before)


def test_unfinished_cube_is_refused(cube: Path) -> None:
    zarr.open_group(str(cube), mode="r+").attrs["oathcube_status"] = "building"
    with pytest.raises(CubeError, match="not complete"):
        open_cube(cube)


def test_info_summarises(cube: Path, runner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["info", str(cube), "--montage", str(tmp_path / "m.png")])
    assert result.exit_code == 0, result.output
    assert "90 labelled images" in result.output and "SYNTHETIC" in result.output
    assert "size on disk" in result.output and (tmp_path / "m.png").stat().st_size > 10_000


def test_cube_at_an_fsspec_url(archive: Path) -> None:
    url = "memory://oathcube-test/cube.zarr"
    build(archive, url, progress=False, chunk_images=32)
    ds = open_cube(url)
    np.testing.assert_array_equal(
        ds.pixels.sel(image=5).values, iio.imread(archive / "images/cropped_scaled/00005.png")
    )
    with pytest.raises(CubeError, match="already exists"):
        build(archive, url, progress=False)
    build(archive, url, overwrite=True, progress=False)
    assert open_cube(url).attrs["oathcube_status"] == "complete"
