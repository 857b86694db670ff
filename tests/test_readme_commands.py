"""The README's "See the sky" commands run as written on the real files they name (issue 20, 13).

Each command line of the section's first ``bash`` block is run by bash (so its globs and
comments are bash's own) in a folder that holds the real THEMIS files of
``../shared/data/themis`` under their own names, with ``oathcube`` being this
interpreter's ``python -m oathcube.cli``.  A new line in that block is run too: the test
fails on any line it cannot run, except ``nights``, which needs classified frames
(``oath.zarr`` of the README's classify section, not buildable from these files).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import xarray as xr

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## See the sky"


def _commands() -> list[str]:
    """The ``oathcube`` lines of the section's first bash block, as written."""
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    block = re.search(r"```bash\n(.*?)```", text[start:], re.DOTALL)
    assert block is not None, "no bash block in the README's See the sky section"
    return [line for line in block.group(1).splitlines() if line.startswith("oathcube ")]


def _run(line: str, folder: Path) -> subprocess.CompletedProcess[str]:
    command = shlex.quote(sys.executable) + " -m oathcube.cli" + line.removeprefix("oathcube")
    return subprocess.run(
        ["bash", "-c", command], cwd=folder, capture_output=True, text=True, timeout=300
    )


def test_see_the_sky_commands_run_as_written(shared: Path, tmp_path: Path) -> None:
    for real in sorted((shared / "data" / "themis").iterdir()):
        (tmp_path / real.name).symlink_to(real)
    commands = _commands()
    run = [c for c in commands if " sky.zarr" in c]
    not_run = [c for c in commands if c not in run]
    assert [c.split()[1:3] for c in not_run] == [["nights", "oath.zarr"]], not_run
    assert [c.split()[1] for c in run] == ["ingest", "keogram", "movie", "map"]
    said = {}
    for line in run:
        result = _run(line, tmp_path)
        assert result.returncode == 0, f"{line}\n{result.stderr}"
        said[line.split()[1]] = result.stderr + result.stdout
    # What a reader gets: the frames and the skymap in the cube, each picture written,
    # and the two-month gap between skymap and frames said, not hidden.
    pixels = xr.open_zarr(tmp_path / "sky.zarr", group="stations/gako")["pixels"]
    assert pixels.shape == (23, 256, 256)
    skymap = xr.open_zarr(tmp_path / "sky.zarr", group="stations/gako/skymaps/20110305T08")
    assert skymap["elevation"].shape == (256, 256)
    for name in ("gako_keogram.png", "gako.mp4", "gako_map.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
    for command in ("keogram", "map"):
        assert "warning: no skymap of gako is valid at 2011-01-06T17:00" in said[command]
        assert "valid from 2011-03-05, 57.6 days after these frames" in said[command]
