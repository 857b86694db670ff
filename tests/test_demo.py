"""``oathcube demo``: end to end on a small synthetic archive; a rerun deletes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr

from oathcube.cli import app


@pytest.mark.slow
def test_demo_runs_end_to_end_and_a_rerun_keeps_the_last_run(tmp_path: Path, runner) -> None:
    work = tmp_path / "demo"
    args = ["demo", str(work), "--n", "120", "--size", "32", "--scheduler", "synchronous"]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "classified correctly" in out.stderr
    for name in ("timeline_fsmi.png", "confusion_handcrafted.png", "montage.png"):
        assert (work / name).stat().st_size > 10_000
    fsmi = xr.open_zarr(work / "oath.zarr", group="stations/fsmi")
    assert fsmi.sizes["time"] == 360 and "predicted_handcrafted_class6" in fsmi

    first = (work / "timeline_fsmi.csv").read_bytes()
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    (kept,) = work.glob("previous-*")
    assert (kept / "timeline_fsmi.csv").read_bytes() == first  # moved aside, not deleted
    assert (kept / "oath.zarr" / "zarr.json").exists()


def test_demo_refuses_a_folder_it_did_not_write(tmp_path: Path, runner) -> None:
    work = tmp_path / "mine"
    work.mkdir()
    (work / "notes.txt").write_text("keep me")
    out = runner.invoke(app, ["demo", str(work), "--n", "60", "--size", "32"])
    assert out.exit_code == 1
    assert "no demo wrote" in out.stderr
    assert [p.name for p in work.iterdir()] == ["notes.txt"]
