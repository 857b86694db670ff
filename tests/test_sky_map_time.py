"""``map --time`` far from any frame, and the skymap used when none is valid (issue 20).

Case 2 (map part): a requested time farther than two frame steps from the nearest frame
is an error naming both times, not a map of a frame decades away.  Case 13: when the
station's only skymap starts after its frames (the real Gakona skymap is valid from
2011-03-05, the real frames are of 2011-01-06), maps and keograms use the nearest one,
print a warning and record it on the output; ``map --help`` does not offer a keogram's
"none (centre column)".
"""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr
from typer.testing import CliRunner

from oathcube.cli import app
from oathcube.ingestion.stations import ingest

CDF = "thg_l1_asf_gako_2011010617_v01.cdf"
SKYMAP = "themis_skymap_gako_20110305-+_vXX.sav"
NOTE = "valid from 2011-03-05, 57.6 days after these frames"


@pytest.fixture(scope="module")
def cube(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    themis = shared / "data" / "themis"
    path = tmp_path_factory.mktemp("sky") / "sky.zarr"
    ingest([themis / SKYMAP, themis / CDF], path, progress=False)
    return path


def _map(cube: Path, out: Path, *args: str):
    return CliRunner().invoke(
        app, ["map", str(cube), "--station", "gako", "--out", str(out), *args]
    )


def test_a_time_far_from_every_frame_is_refused(cube: Path, tmp_path: Path) -> None:
    out = tmp_path / "old.png"
    # (the skymap named, so that only the time can be what is refused)
    result = _map(cube, out, "--time", "1990-01-01", "--skymap", "20110305")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("oathcube: error: --time: no frame of gako near 1990-01-01T00:00:00")
    assert "the nearest is 2011-01-06T17:00:00.053" in lines[0]
    assert "within two frame steps (3 s)" in lines[0]
    assert not out.exists()
    # 14 s after the last frame (17:01:06.020) is too far; 4 s is the last frame.
    late = _map(cube, out, "--time", "2011-01-06T17:01:20")
    assert late.exit_code == 1 and "the nearest is 2011-01-06T17:01:06.020" in late.output
    near = _map(cube, tmp_path / "near.nc", "--time", "2011-01-06T17:01:10")
    assert near.exit_code == 0, near.output
    assert (
        xr.load_dataset(tmp_path / "near.nc")
        .attrs["first_time"]
        .startswith("2011-01-06T17:01:06.02")
    )


def test_the_nearest_skymap_is_used_with_a_warning(cube: Path, tmp_path: Path) -> None:
    result = _map(cube, tmp_path / "map.nc", "--time", "2011-01-06T17:00:33")
    assert result.exit_code == 0, result.output
    assert "warning: no skymap of gako is valid at 2011-01-06T17:00:33" in result.output
    assert f"using 20110305T08, the nearest ({NOTE})" in result.output
    mapped = xr.load_dataset(tmp_path / "map.nc")
    assert mapped.attrs["skymap"] == "20110305T08" and mapped.attrs["skymap_note"] == NOTE
    keo = CliRunner().invoke(
        app, ["keogram", str(cube), "--station", "gako", "--out", str(tmp_path / "k.nc")]
    )
    assert keo.exit_code == 0, keo.output
    assert "warning: no skymap of gako is valid at 2011-01-06T17:00:00" in keo.output
    assert xr.load_dataarray(tmp_path / "k.nc").attrs["skymap_note"] == NOTE
    # Named on purpose: recorded all the same, and no warning printed.
    named = _map(
        cube, tmp_path / "named.nc", "--time", "2011-01-06T17:00:33", "--skymap", "20110305"
    )
    assert named.exit_code == 0 and "warning" not in named.output
    assert xr.load_dataset(tmp_path / "named.nc").attrs["skymap_note"] == NOTE


def test_map_offers_no_centre_column(cube: Path, tmp_path: Path) -> None:
    text = CliRunner().invoke(app, ["map", "--help"]).output
    assert "centre column" not in " ".join(text.split())
    assert "nearest in time" in " ".join(text.split())
    assert "none (centre column)" in " ".join(
        CliRunner().invoke(app, ["keogram", "--help"]).output.split()
    )
    result = _map(cube, tmp_path / "m.png", "--time", "2011-01-06T17:00:33", "--skymap", "none")
    assert result.exit_code == 1
    assert result.output.strip() == (
        "oathcube: error: --skymap: a map needs a skymap: --skymap none draws nothing "
        "(expected a stored skymap's name or start date, or no --skymap)"
    )
