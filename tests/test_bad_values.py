"""Bad user values through the command line: one clean line on stderr, exit 1, nothing written.

Every case drives the typer app in-process and checks the product promise: exit
status 1 raised as ``SystemExit`` (no traceback), exactly one line of error
output that starts with ``oathcube: error:``, names the bad value (or the file or
option) and says what was expected.  Where the command must write nothing, the
locations it was pointed at are compared before and after.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import h5py
import imageio.v3 as iio
import numpy as np
import pytest
import xarray as xr
from click.testing import Result
from typer.testing import CliRunner

from oathcube import ingest, synth
from oathcube.cli import app
from oathcube.rawprep import RawPreparation

PREFIX = "oathcube: error:"


# --------------------------------------------------------------------------- helpers


def _error_text(result: Result) -> str:
    """What the command wrote to stderr (all of its output where click mixes the two)."""
    try:
        return result.stderr
    except ValueError:  # click < 8.2 with mix_stderr=True: stderr is not kept apart
        return result.output


def _shown(result: Result) -> str:
    """Everything a failed assertion should show: status, output and any traceback."""
    text = f"exit {result.exit_code}\n--- output ---\n{result.output}"
    if result.exc_info is not None and not isinstance(result.exception, SystemExit):
        text += "\n--- traceback ---\n" + "".join(traceback.format_exception(*result.exc_info))
    return text


def _assert_clean_error(
    result: Result,
    names: tuple[str, ...],
    expected: tuple[str, ...] = ("expected",),
    *,
    alone: bool = True,
) -> str:
    """Exit 1 and one ``oathcube: error:`` line naming one of ``names`` and of ``expected``.

    With ``alone`` the error line is all of stderr (the value is refused before
    any work); otherwise log lines and progress bars may come before it, but the
    error is still one line, the last.  Returns the error line.
    """
    text = _error_text(result)
    shown = _shown(result)
    assert "Traceback" not in result.output and "Traceback" not in text, shown
    assert result.exit_code == 1, shown
    assert isinstance(result.exception, SystemExit), shown
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines and lines[-1].startswith(PREFIX), shown
    assert sum(PREFIX in line for line in lines) == 1, shown
    if alone:
        assert len(lines) == 1, shown
    line = lines[-1]
    assert any(name in line for name in names), f"none of {names} named: {line}"
    lowered = line.lower()
    assert any(word.lower() in lowered for word in expected), f"no {expected}: {line}"
    return line


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (``root`` itself included): file bytes, None for folders."""
    if not root.exists():
        return {}
    paths = [root, *sorted(root.rglob("*"))]
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in paths}


def _frames(folder: Path, station: str = "fsmi", n: int = 3) -> Path:
    """A folder of 8-bit grey 32x32 PNG frames named ``<station>_YYYYMMDD_HHMMSS.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        image = rng.integers(0, 255, (32, 32), dtype=np.uint8)
        iio.imwrite(folder / f"{station}_20111103_04{i:02d}00.png", image)
    return folder


@pytest.fixture
def cube(make_cube) -> Path:
    """A small cube of the 90-image synthetic archive (chunks of 16 images)."""
    return make_cube(chunk_images=16)


# --------------------------------------------------------------------------- synth


def test_synth_negative_n(runner: CliRunner, tmp_path: Path) -> None:
    """Case 1: ``synth OUT --n -5``."""
    out = tmp_path / "out"
    result = runner.invoke(app, ["synth", str(out), "--n", "-5"])
    _assert_clean_error(result, ("-5", "--n"), ("expected", "at least 1"))
    assert not out.exists()


def test_synth_zero_size(runner: CliRunner, tmp_path: Path) -> None:
    """Case 2: ``synth OUT --size 0``."""
    out = tmp_path / "out"
    result = runner.invoke(app, ["synth", str(out), "--size", "0"])
    _assert_clean_error(result, ("--size",), ("expected", "at least"))
    assert not out.exists()


def test_synth_into_a_non_empty_folder(runner: CliRunner, tmp_path: Path) -> None:
    """Case 3: ``synth OUT`` where OUT already holds a file."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine\n")
    before = _snapshot(out)
    result = runner.invoke(app, ["synth", str(out), "--n", "6", "--size", "32"])
    _assert_clean_error(result, (str(out),))
    assert _snapshot(out) == before


# --------------------------------------------------------------------------- evaluate


@pytest.mark.parametrize("alpha", ["-1", "nan", "inf"])
def test_evaluate_bad_alpha(runner: CliRunner, cube: Path, alpha: str) -> None:
    """Case 4: ``evaluate CUBE --alpha -1 | nan | inf``."""
    before = _snapshot(cube)
    result = runner.invoke(app, ["evaluate", str(cube), "--alpha", alpha])
    printed = str(float(alpha))  # -1.0, nan, inf: the value as Python prints it
    _assert_clean_error(result, (alpha, printed, "--alpha"))
    assert _snapshot(cube) == before


# --------------------------------------------------------------------------- timeline


def test_timeline_bad_freq(runner: CliRunner, cube: Path, tmp_path: Path) -> None:
    """Case 5: ``timeline CUBE --station fsmi --freq 10parsecs`` (no predictions yet)."""
    ingest(
        [_frames(tmp_path / "frames")],
        cube,
        preparation=RawPreparation(out_size=32),
        progress=False,
    )
    before = _snapshot(cube)
    result = runner.invoke(app, ["timeline", str(cube), "--station", "fsmi", "--freq", "10parsecs"])
    _assert_clean_error(result, ("10parsecs",))
    assert _snapshot(cube) == before


# --------------------------------------------------------------------------- classify


def test_classify_bad_start(runner: CliRunner, cube: Path) -> None:
    """Case 6: ``classify CUBE --model SOMEMODEL --start notadate`` (the option first)."""
    before = _snapshot(cube)
    result = runner.invoke(
        app, ["classify", str(cube), "--model", "SOMEMODEL", "--start", "notadate"]
    )
    _assert_clean_error(result, ("notadate",))
    assert _snapshot(cube) == before


# --------------------------------------------------------------------------- --scheduler


def test_features_unknown_scheduler(runner: CliRunner, cube: Path) -> None:
    """Case 7a: ``features CUBE --extractor handcrafted --scheduler foo``."""
    before = _snapshot(cube)
    result = runner.invoke(
        app, ["features", str(cube), "--extractor", "handcrafted", "--scheduler", "foo"]
    )
    _assert_clean_error(result, ("--scheduler",), ("expected",))
    assert "'foo'" in _error_text(result)
    assert _snapshot(cube) == before


def test_features_names_its_extractor_once(runner: CliRunner, cube: Path) -> None:
    before = _snapshot(cube)
    result = runner.invoke(app, ["features", str(cube)])
    _assert_clean_error(result, ("which extractor?",), ("--extractor handcrafted",))
    both = ["--extractor", "handcrafted", "--model", "inception_v4"]
    result = runner.invoke(app, ["features", str(cube), *both])
    named = ("--extractor handcrafted and --model inception_v4",)
    _assert_clean_error(result, named, ("once",), alone=False)
    assert _snapshot(cube) == before
    # The old flag still works for one release, and says so.
    args = ["features", str(cube), "--model", "handcrafted", "--scheduler", "synchronous"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "--model is deprecated here: use --extractor" in result.output


def test_build_unknown_scheduler(runner: CliRunner, archive: Path, tmp_path: Path) -> None:
    """Case 7b: ``build ARCHIVE -o OUT --scheduler foo`` creates no OUT."""
    out = tmp_path / "out.zarr"
    result = runner.invoke(app, ["build", str(archive), "-o", str(out), "--scheduler", "foo"])
    _assert_clean_error(result, ("--scheduler",), ("expected",))
    assert "'foo'" in _error_text(result)
    assert not out.exists()


# --------------------------------------------------------------------------- ingest


def test_ingest_into_an_existing_file(runner: CliRunner, tmp_path: Path) -> None:
    """Case 8a: ``ingest SRC -o FILE`` where FILE is a regular file."""
    source = _frames(tmp_path / "frames")
    target = tmp_path / "notes.txt"
    target.write_text("not a cube\n")
    result = runner.invoke(app, ["ingest", str(source), "-o", str(target)])
    _assert_clean_error(result, (str(target),))
    assert target.read_text() == "not a cube\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "notes.txt"]


def test_ingest_into_an_array_of_a_cube(runner: CliRunner, cube: Path, tmp_path: Path) -> None:
    """Case 8b: ``ingest SRC -o CUBE/pixels`` (a Zarr array, not a group)."""
    source = _frames(tmp_path / "frames")
    before = _snapshot(cube)
    target = cube / "pixels"
    result = runner.invoke(app, ["ingest", str(source), "-o", str(target)])
    _assert_clean_error(result, (str(target),))
    assert _snapshot(cube) == before


def test_ingest_into_a_folder_that_is_not_a_cube(runner: CliRunner, tmp_path: Path) -> None:
    """Case 9a: ``ingest SRC -o DIR`` where DIR holds other files."""
    source = _frames(tmp_path / "frames")
    target = tmp_path / "mine"
    (target / "sub").mkdir(parents=True)
    (target / "a.txt").write_text("a\n")
    (target / "sub" / "b.dat").write_bytes(b"\x00\x01")
    before = _snapshot(target)
    result = runner.invoke(app, ["ingest", str(source), "-o", str(target)])
    _assert_clean_error(result, (str(target),))
    assert _snapshot(target) == before


def test_ingest_into_its_own_source(runner: CliRunner, tmp_path: Path) -> None:
    """Case 9b: ``ingest SRC -o SRC``."""
    source = _frames(tmp_path / "frames")
    before = _snapshot(source)
    result = runner.invoke(app, ["ingest", str(source), "-o", str(source)])
    _assert_clean_error(result, (str(source),))
    assert _snapshot(source) == before


# --------------------------------------------------------------------------- build


def test_build_under_a_regular_file(runner: CliRunner, archive: Path, tmp_path: Path) -> None:
    """Case 10: ``build ARCHIVE -o tmp/afile/cube.zarr`` with ``afile`` a file."""
    afile = tmp_path / "afile"
    afile.write_text("a file\n")
    out = afile / "cube.zarr"
    result = runner.invoke(app, ["build", str(archive), "-o", str(out)])
    _assert_clean_error(result, (str(afile),))
    assert afile.read_text() == "a file\n"


def test_build_over_its_own_archive(runner: CliRunner, archive: Path) -> None:
    """Case 11: ``build ARCHIVE -o ARCHIVE --overwrite`` leaves the archive whole."""
    before = _snapshot(archive)
    result = runner.invoke(app, ["build", str(archive), "-o", str(archive), "--overwrite"])
    _assert_clean_error(result, (str(archive),))
    assert _snapshot(archive) == before


def test_build_with_string_logits(runner: CliRunner, archive: Path, tmp_path: Path) -> None:
    """Case 15: ``build ARCHIVE -o OUT`` where ``Logits`` holds byte strings."""
    h5 = archive / "features" / "auroral_feat.h5"
    with h5py.File(h5, "r+") as file:
        values = file["Logits"][...]
        del file["Logits"]
        file["Logits"] = np.array(values.astype(str), dtype="S32")
    out = tmp_path / "out.zarr"
    result = runner.invoke(app, ["build", str(archive), "-o", str(out)])
    _assert_clean_error(result, ("Logits", "auroral_feat.h5"), alone=False)
    assert not out.exists()


# --------------------------------------------------------------------------- not oathcube cubes


@pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")
def test_info_on_a_plain_xarray_store(runner: CliRunner, tmp_path: Path) -> None:
    """Case 12: ``info CUBE`` on a Zarr v3 store written by plain xarray."""
    path = tmp_path / "plain.zarr"
    xr.Dataset({"a": ("x", np.arange(3))}).to_zarr(path, zarr_format=3)
    before = _snapshot(path)
    result = runner.invoke(app, ["info", str(path)])
    _assert_clean_error(result, (str(path),))
    assert _snapshot(path) == before


def test_features_on_a_zarr_v2_store(runner: CliRunner, tmp_path: Path) -> None:
    """Case 13: ``features CUBE --model handcrafted`` on a Zarr v2 store."""
    path = tmp_path / "v2.zarr"
    xr.Dataset({"a": ("x", np.arange(3))}).to_zarr(path, zarr_format=2)
    before = _snapshot(path)
    result = runner.invoke(app, ["features", str(path), "--extractor", "handcrafted"])
    _assert_clean_error(result, (str(path),))
    assert _snapshot(path) == before


def test_evaluate_on_a_one_image_cube(runner: CliRunner, tmp_path: Path) -> None:
    """Case 14: ``evaluate CUBE`` on a 1-image cube (or ``build`` refusing the archive)."""
    archive = synth(tmp_path / "one", n=1, size=32, seed=0)
    out = tmp_path / "one.zarr"
    result = runner.invoke(app, ["build", str(archive), "-o", str(out)])
    if result.exit_code != 0:  # refusing a 1-image archive is fine, cleanly
        _assert_clean_error(result, (str(archive), "1 image", "one image"))
        assert not out.exists()
        return
    before = _snapshot(out)
    result = runner.invoke(app, ["evaluate", str(out)])
    _assert_clean_error(result, (str(out),))
    assert _snapshot(out) == before


# --------------------------------------------------------------------------- broken chunks


@pytest.mark.parametrize(
    ("array", "command"),
    [
        (
            "pixels",
            ["features", "{cube}", "--extractor", "handcrafted", "--scheduler", "synchronous"],
        ),
        ("features_published", ["evaluate", "{cube}"]),
    ],
)
def test_truncated_chunk(runner: CliRunner, cube: Path, array: str, command: list[str]) -> None:
    """Case 16: a chunk of ``pixels`` (features) or ``features_published`` (evaluate) cut short."""
    chunk = sorted(p for p in (cube / array / "c").rglob("*") if p.is_file())[1]
    data = chunk.read_bytes()
    chunk.write_bytes(data[: len(data) // 2])
    result = runner.invoke(app, [part.format(cube=cube) for part in command])
    _assert_clean_error(result, (array, str(chunk.relative_to(cube))), alone=False)
