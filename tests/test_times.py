"""One time parser with a checked range for every command (issue 20, case 2).

``pd.Timestamp("2300-01-01")`` is valid, but cast to ``datetime64[ns]`` (the cube's
time type) it wrapped around to 1715, so ``--start 2300-01-01`` selected the whole
archive with exit status 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from oathcube import ingest
from oathcube.cli import app
from oathcube.cube.index import _time_bounds
from oathcube.errors import OptionError
from oathcube.rawprep import RawPreparation
from oathcube.synthetic.themis import write_cdf
from oathcube.times import EARLIEST, LATEST, parse_time


@pytest.mark.parametrize("text", ["2300-01-01", "1500-06-01T00:00", "9999-12-31"])
def test_times_beyond_nanoseconds_are_refused_not_wrapped(text: str) -> None:
    with pytest.raises(OptionError, match=r"^start: .* outside the times oathcube can hold"):
        parse_time(text, "start")


def test_the_edges_of_the_range_are_accepted_and_exact() -> None:
    assert parse_time("2262-04-11", "end") == np.datetime64("2262-04-11", "ns")
    assert parse_time("1677-09-22", "end") == np.datetime64("1677-09-22", "ns")
    assert EARLIEST < parse_time("2011-01-06T17:00+01:00", "t") < LATEST
    assert parse_time("2011-01-06T17:00+01:00", "t") == np.datetime64("2011-01-06T16:00", "ns")


@pytest.fixture(scope="module")
def cube(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("times")
    raw = base / "raw"
    raw.mkdir()
    write_cdf(raw, "fsmi", "2011-01-06T05:00:00", 12, size=32, seed=1)
    out = base / "c.zarr"
    ingest(sorted(raw.iterdir()), out, preparation=RawPreparation(out_size=32), progress=False)
    return out


ARGS = {
    "keogram": ["--station", "fsmi", "--out", "x.png"],
    "movie": ["--station", "fsmi", "--end", "2300-01-02", "--out", "x.mp4"],
    "timeline": ["--station", "fsmi", "--out", "x.png"],
    "nights": ["--out", "x.png"],
    "classify": ["--model", "m"],
}


@pytest.mark.parametrize("command", sorted(ARGS))
def test_every_command_refuses_a_start_beyond_the_range(
    command: str, cube: Path, tmp_path: Path, runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = runner.invoke(app, [command, str(cube), "--start", "2300-01-01", *ARGS[command]])
    assert out.exit_code == 1, out.output
    assert "'2300-01-01' lies outside the times oathcube can hold" in out.output
    assert not list(tmp_path.iterdir())  # nothing drawn from a wrapped-around range


def test_selection_by_time_label_refuses_it_too() -> None:
    # The station/time index of labelled images parses its labels the same way.
    assert _time_bounds("2011-01")[0] == np.datetime64("2011-01-01", "ns")
    with pytest.raises(OptionError, match="outside the times"):
        _time_bounds("2300")
