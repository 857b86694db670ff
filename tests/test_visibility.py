"""What readers see of a station before its first commit: nothing (issue 20, case 1).

A first ingest that fails or is killed used to leave a cube whose new station held
frames of zeros that plain xarray, ``oathcube info`` and ``Cube.station`` read as data.
A new station is now written beside the cube (``.NAME.ingest-CODE``) and moved into
it only at its first commit; a new cube appears only then.  Every case runs the real
command line in its own process and checks what a reader sees afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from oathcube import Cube, ingest
from oathcube.faults import KILL_ENV
from oathcube.rawprep import RawPreparation
from oathcube.synthetic.themis import write_cdf

PREP = '{"out_size": 32}'


def _oathcube(*args: str, kill_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    if kill_at:
        env[KILL_ENV] = kill_at
    return subprocess.run(
        [sys.executable, "-m", "oathcube.cli", *args],
        env=env,
        start_new_session=True,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Two hour files of fsmi, 40 frames in all (5 chunks of 8)."""
    folder = tmp_path_factory.mktemp("raw")
    write_cdf(folder, "fsmi", "2011-01-06T05:00:00", 20, size=32, seed=1)
    write_cdf(folder, "fsmi", "2011-01-06T06:00:00", 20, size=32, seed=2)
    return [str(f) for f in sorted(folder.iterdir())]


@pytest.fixture(scope="module")
def uninterrupted(raw: list[str], tmp_path_factory: pytest.TempPathFactory) -> xr.Dataset:
    cube = tmp_path_factory.mktemp("ref") / "ref.zarr"
    ingest(raw, cube, preparation=RawPreparation(out_size=32), chunk_frames=8, progress=False)
    return Cube.open(cube).station("fsmi").load()


def _sees_no_station(cube: Path) -> None:
    """Plain xarray, ``oathcube info`` and ``Cube`` all see no frames of fsmi."""
    with pytest.raises((FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError)):
        xr.open_zarr(cube, group="stations/fsmi", consolidated=False)
    info = _oathcube("info", str(cube))
    assert "fsmi" not in info.stdout, info.stdout
    if (cube / "zarr.json").exists():
        assert "fsmi" not in Cube.open(cube).stations()


def test_a_damaged_first_file_leaves_no_cube(shared: Path, tmp_path: Path) -> None:
    real = shared / "data" / "themis" / "thg_l1_asf_gako_2011010617_v01.cdf"
    bad = tmp_path / real.name
    data = bytearray(real.read_bytes())
    at = int(len(data) * 0.6)
    data[at : at + 4000] = np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes()
    bad.write_bytes(bytes(data))
    cube = tmp_path / "cg.zarr"
    out = _oathcube("ingest", str(bad), "-o", str(cube))
    assert out.returncode == 1
    assert "compressed block" in out.stderr and "Traceback" not in out.stderr
    assert not cube.exists()  # no cube of zeros that reads as "gako: 23 frames"
    info = _oathcube("info", str(cube))
    assert info.returncode == 1 and "no cube here" in info.stderr
    # The good file, once at hand, ingests whole; the failed run's stage is given up.
    shutil.copy(real, bad)
    assert _oathcube("ingest", str(bad), "-o", str(cube)).returncode == 0
    gako = xr.open_zarr(cube, group="stations/gako")
    assert gako.sizes["time"] == 23 and int(gako.pixels.max()) > 0
    assert not list(tmp_path.glob(".cg.zarr.*"))


@pytest.mark.parametrize("point", ["ingest.chunk_written:3", "ingest.committed"])
def test_a_killed_first_ingest_shows_nothing_then_resumes(
    point: str, raw: list[str], uninterrupted: xr.Dataset, tmp_path: Path
) -> None:
    cube = tmp_path / "new.zarr"
    args = ["ingest", *raw, "-o", str(cube), "--prep", PREP, "--chunk-frames", "8"]
    args += ["--scheduler", "synchronous"]
    assert _oathcube(*args, kill_at=point).returncode == -signal.SIGKILL
    assert not cube.exists()
    assert _oathcube(*args).returncode == 0
    got = Cube.open(cube).station("fsmi").load()
    assert np.array_equal(got.pixels.values, uninterrupted.pixels.values)
    assert np.array_equal(got.time.values, uninterrupted.time.values)
    assert not list(tmp_path.glob(".new.zarr.*"))


def test_a_new_station_killed_in_a_published_cube_stays_invisible(
    raw: list[str], tmp_path: Path
) -> None:
    cube = tmp_path / "c.zarr"
    other = tmp_path / "other"
    other.mkdir()
    write_cdf(other, "gako", "2011-01-06T05:00:00", 8, size=32, seed=5)
    first = ["ingest", str(next(other.iterdir())), "-o", str(cube), "--prep", PREP]
    assert _oathcube(*first).returncode == 0
    args = ["ingest", *raw, "-o", str(cube), "--prep", PREP, "--chunk-frames", "8"]
    assert _oathcube(*args, kill_at="ingest.chunk_written").returncode == -signal.SIGKILL
    _sees_no_station(cube)
    assert Cube.open(cube).stations() == ["gako"]
    with pytest.raises(Exception, match="no station 'fsmi'|fsmi"):
        Cube.open(cube).station("fsmi")
    # Any other ingest of fsmi drops the killed run's frames instead of resuming them.
    out = _oathcube("ingest", raw[0], "-o", str(cube), "--prep", PREP)
    assert out.returncode == 0, out.stderr
    assert Cube.open(cube).station("fsmi").sizes["time"] == 20
