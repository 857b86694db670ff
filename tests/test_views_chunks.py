"""Issue 20, case 6: a missing or damaged chunk of pixels or labels is named, never drawn.

Before, a deleted pixel chunk read as zeros: keograms drew black columns, movies black
frames and ``info --montage`` black images, all with exit 0; half a chunk of ``class6`` or
``split`` made ``evaluate`` print a zstd traceback.  Every reader now goes through
:func:`oathcube.cube.nodes.read_checked`: one line naming the array, the chunk key and
what to do, exit 1, and no output file.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import Result
from zarr.storage import LocalStore

from oathcube import build, ingest, keogram
from oathcube.archive.skymap import ideal_skymap
from oathcube.cli import app
from oathcube.cube.store import Cube
from oathcube.ingestion.skymaps import store_skymaps
from oathcube.rawprep import RawPreparation
from oathcube.synthetic.themis import write_pgm

SIZE = 16
#: Three chunks of four frames each: c/0 holds 05:00:00-05:00:09, c/1 the next four.
N, PER_CHUNK = 12, 4
IDENTITY = RawPreparation(
    scaling="fixed", fixed_low=0, fixed_high=255, crop_radius_fraction=None, out_size=SIZE
)
PIXELS = Path("stations/fsmi/pixels/c")


def _frames() -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    # Never 0 inside the frame: a black pixel in a view can only come from a fill value.
    return np.stack([1 + (5 * y + 3 * x + 7 * t) % 250 for t in range(N)]).astype(np.uint16)


@pytest.fixture(scope="module")
def station_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("chunks")
    (root / "raw").mkdir()
    write_pgm(root / "raw", "fsmi", "2011-01-06T05:00:00", N, size=SIZE, frames=_frames())
    cube = root / "cube.zarr"
    ingest([root / "raw"], cube, preparation=IDENTITY, progress=False, chunk_frames=PER_CHUNK)
    store_skymaps([ideal_skymap("fsmi", 60.02, -111.93, size=SIZE)], cube)
    return cube


@pytest.fixture
def station(station_base: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(station_base, tmp_path / "cube.zarr"))


@pytest.fixture(scope="module")
def labelled_base(tmp_path_factory: pytest.TempPathFactory, _synth_template: Path) -> Path:
    out = tmp_path_factory.mktemp("labelled") / "cube.zarr"
    return Path(build(_synth_template, out, progress=False, chunk_images=32))


@pytest.fixture
def labelled(labelled_base: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(labelled_base, tmp_path / "labelled.zarr"))


def _error(result: Result) -> str:
    """Exit 1, no traceback, and exactly one ``oathcube: error:`` line, the last one."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("oathcube: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    return errors[0]


def _cut_in_half(chunk: Path) -> None:
    data = chunk.read_bytes()
    chunk.write_bytes(data[: len(data) // 2])


VIEWS = {
    "keogram": ["keogram", "{cube}", "--station", "fsmi", "--out", "{out}/view.png"],
    "movie": ["movie", "{cube}", "--station", "fsmi", "--start", "2011-01-06T05:00",
              "--end", "2011-01-06T05:01", "--out", "{out}/view.gif"],
    "map": ["map", "{cube}", "--station", "fsmi", "--time", "2011-01-06T05:00:15",
            "--out", "{out}/view.png"],
    "mean map": ["map", "{cube}", "--station", "fsmi", "--start", "2011-01-06T05:00",
                 "--end", "2011-01-06T05:01", "--out", "{out}/view.nc"],
}  # fmt: skip


def _run(runner, args: list[str], cube: Path, out: Path) -> Result:
    return runner.invoke(app, [a.format(cube=cube, out=out) for a in args])


@pytest.mark.parametrize("damage", ["deleted", "half"])
@pytest.mark.parametrize("view", sorted(VIEWS))
def test_every_view_names_a_damaged_pixel_chunk(
    station: Path, tmp_path: Path, runner, view: str, damage: str
) -> None:
    chunk = station / PIXELS / "1" / "0" / "0"
    if damage == "deleted":
        chunk.unlink()
    else:
        _cut_in_half(chunk)
    line = _error(_run(runner, VIEWS[view], station, tmp_path))
    what = "is missing" if damage == "deleted" else "cannot be read"
    assert f"chunk c/1/0/0 of stations/fsmi/pixels {what}" in line, line
    assert str(station) in line and "ingest the station's raw files again" in line
    # No picture of fill values, and no partial file left behind.
    assert not [p for p in tmp_path.iterdir() if p.name != "cube.zarr"]


def test_a_view_reads_only_the_chunks_it_shows(
    station: Path, tmp_path: Path, runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A keogram of the first chunk's frames works while a later chunk is missing."""
    (station / PIXELS / "2" / "0" / "0").unlink()
    args = ["keogram", str(station), "--station", "fsmi", "--skymap", "none"]
    first = ["--start", "2011-01-06T05:00:00", "--end", "2011-01-06T05:00:09"]
    result = runner.invoke(app, [*args, *first, "--out", str(tmp_path / "k.nc")])
    assert result.exit_code == 0, result.output
    # Which pixel chunks the view looks up or reads: the first one only, no listing.
    touched: list[str] = []
    for name in ("exists", "get"):
        original = getattr(LocalStore, name)

        async def spy(self: LocalStore, key: str, *a: Any, _f: Any = original, **k: Any) -> Any:
            if "/pixels/c" in key:
                touched.append(key)
            return await _f(self, key, *a, **k)

        monkeypatch.setattr(LocalStore, name, spy)
    for owner, name in ((LocalStore, "list_prefix"), (Cube, "stored_chunks")):
        monkeypatch.setattr(owner, name, lambda *a: pytest.fail("a view listed the store"))
    keo = keogram(
        station, "fsmi", start="2011-01-06T05:00:00", end="2011-01-06T05:00:09", skymap="none"
    )
    assert set(touched) == {"stations/fsmi/pixels/c/0/0/0"}, touched
    monkeypatch.undo()
    assert keo.sizes["time"] == PER_CHUNK
    np.testing.assert_array_equal(keo.values, _frames()[:PER_CHUNK, :, SIZE // 2])
    # The whole night touches the missing chunk: named, not drawn.
    line = _error(runner.invoke(app, [*args, "--out", str(tmp_path / "all.png")]))
    assert "chunk c/2/0/0 of stations/fsmi/pixels is missing" in line
    assert not (tmp_path / "all.png").exists()


def test_montage_names_a_missing_pixel_chunk(labelled: Path, tmp_path: Path, runner) -> None:
    whole = tmp_path / "whole.png"
    result = runner.invoke(app, ["info", str(labelled), "--montage", str(whole)])
    assert result.exit_code == 0, result.output
    (labelled / "pixels" / "c" / "0" / "0" / "0").unlink()
    out = tmp_path / "montage.png"
    line = _error(runner.invoke(app, ["info", str(labelled), "--montage", str(out)]))
    assert "chunk c/0/0/0 of pixels is missing" in line and "oathcube build" in line, line
    assert not out.exists()


@pytest.mark.parametrize(
    ("command", "array"), [("evaluate", "class6"), ("evaluate", "split"), ("train", "class6")]
)
def test_half_a_label_chunk_is_named_not_a_traceback(
    labelled: Path, runner, array: str, command: str
) -> None:
    chunk = sorted(p for p in (labelled / array / "c").rglob("*") if p.is_file())[0]
    _cut_in_half(chunk)
    key = "c/" + "/".join(chunk.relative_to(labelled / array / "c").parts)
    args = [command, str(labelled)] + (["--features", "published"] if command == "train" else [])
    line = _error(runner.invoke(app, args))
    assert f"chunk {key} of {array} cannot be read" in line, line
    assert "rebuild it with `oathcube build --overwrite`" in line


def test_info_names_a_missing_label_chunk(labelled: Path, runner) -> None:
    (labelled / "class6" / "c" / "0").unlink()
    line = _error(runner.invoke(app, ["info", str(labelled)]))
    assert "chunk c/0 of class6 is missing" in line, line
