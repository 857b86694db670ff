"""Errors name the Python parameter; the command line renders its flag (issue 21, item 5)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oathcube.cli import app
from oathcube.errors import OathcubeError, OptionError
from oathcube.fetch import fetch_themis
from oathcube.memory import MemoryBoundError
from oathcube.outputs import check_output
from oathcube.times import parse_time

#: A THEMIS request refused before any request: no network is needed.
THEMIS = ["fetch", "themis", "--station", "gako", "--base-url", "http://127.0.0.1:9/"]


def _error_line(result) -> str:
    """The one ``oathcube: error:`` line of a failed CLI run."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [x for x in result.output.splitlines() if x.startswith("oathcube: error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_a_library_error_names_the_parameter_not_the_flag(tmp_path: Path) -> None:
    with pytest.raises(OptionError) as err:
        fetch_themis("gako", start="notatime", end="2011-01-06T18:00", out=tmp_path)
    text = str(err.value)
    assert err.value.parameter == "start" and err.value.path is None
    assert text.startswith("start: 'notatime' is not a time") and "--" not in text
    # Names in the text are the parameters, between backquotes.
    with pytest.raises(OptionError) as err:
        fetch_themis("gako", start="2011-01-06T18:00", end="2011-01-06T17:00", out=tmp_path)
    assert err.value.parameter == "end" and "--" not in str(err.value)
    assert str(err.value).startswith("end: `end` 2011-01-06T17:00:00 is not after `start`")
    with pytest.raises(OptionError) as err:
        fetch_themis("gako", start="2011-01-06", end="2011-01-07", out=tmp_path, max_files=2)
    assert "check `start`/`end`, or raise `max_files` to 24" in str(err.value)


def test_the_cli_renders_the_flags(tmp_path: Path) -> None:
    runner = CliRunner()
    out = ["-o", str(tmp_path / "o")]
    line = _error_line(
        runner.invoke(app, [*THEMIS, "--start", "notatime", "--end", "2011-01-06T18", *out])
    )
    assert line.startswith("oathcube: error: --start: 'notatime' is not a time"), line
    line = _error_line(
        runner.invoke(app, [*THEMIS, "--start", "2011-01-06T18", "--end", "2011-01-06T17", *out])
    )
    assert line.startswith("oathcube: error: --end: --end 2011-01-06T17:00:00 is not after --start")
    line = _error_line(
        runner.invoke(
            app,
            [*THEMIS, "--start", "2011-01-06", "--end", "2011-01-07", "--max-files", "2", *out],
        )
    )
    assert "check --start/--end, or raise --max-files to 24" in line and "`" in line
    # A library parameter the command takes under another name (cli._RENAMED).
    line = _error_line(runner.invoke(app, ["fetch", "oath", "--base-url", "ftp://x/", *out]))
    assert line.startswith("oathcube: error: --base-url: 'ftp://x/' is not an http(s) URL")
    args = [*THEMIS, "--start", "2011-01-06T17", "--end", "2011-01-06T18", *out]
    line = _error_line(runner.invoke(app, [*args, "--skymap", "--skymap-base-url", "ftp://y/"]))
    assert line.startswith("oathcube: error: --skymap-base-url: 'ftp://y/'"), line
    # A number checked by the library, named as the flag.
    line = _error_line(runner.invoke(app, [*args, "--workers", "0"]))
    assert line.startswith("oathcube: error: --workers: 0 workers"), line


def test_the_folder_a_fetch_writes_to_is_named_by_its_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(OptionError) as err:
        fetch_themis("gako", start="2011-01-06T17", end="2011-01-06T18", out=tmp_path / "file")
    assert str(err.value).startswith(f"{tmp_path / 'file'}: not a folder")
    assert err.value.parameter == "out"


def test_helpers_name_the_parameter_they_are_given(tmp_path: Path) -> None:
    with pytest.raises(OptionError) as err:
        parse_time("notatime", "start")
    assert err.value.parameter == "start" and str(err.value).startswith("start: ")
    with pytest.raises(OptionError) as err:
        check_output(tmp_path / "x.txt", (".png",))
    assert err.value.parameter == "out"


@pytest.mark.parametrize(
    "err",
    [
        OptionError("`start` is after `end`", parameter="start", expected="`end` later"),
        OptionError("a", path="f.csv", line=3, member="m", expected="b", parameter="p"),
        MemoryBoundError("too big", parameter="size", expected="`size` 8 or less"),
    ],
)
def test_pickling_keeps_every_field(err: OathcubeError) -> None:
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err) and str(back) == str(err)
    for field in ("message", "path", "line", "member", "expected", "parameter"):
        assert getattr(back, field) == getattr(err, field)


def test_render_with_and_without_names() -> None:
    err = OptionError(
        "`start` is after `end`", parameter="start", expected="`end` later than `start`"
    )
    assert (
        str(err)
        == err.render()
        == "start: `start` is after `end` (expected `end` later than `start`)"
    )
    flags = {"start": "--start", "end": "--end"}
    assert (
        err.render(flags) == "--start: --start is after --end (expected --end later than --start)"
    )
    # A name the command does not have stays as it is.
    assert err.render({"start": "--start"}) == (
        "--start: --start is after `end` (expected `end` later than --start)"
    )
    several = OptionError("give all three", parameter="station/start/end")
    assert str(several) == "station/start/end: give all three"
    assert several.render({**flags, "station": "--station"}) == (
        "--station/--start/--end: give all three"
    )
    # A file is where the error is, when there is one; a command in backquotes stays.
    at_file = OptionError("`oathcube fetch themis --max-files 3`", path="f", parameter="x")
    assert at_file.render({"x": "--x"}) == "f: `oathcube fetch themis --max-files 3`"
