"""What cannot fit is refused with its reason, and running out is one line (issue 20, case 12).

``synth --size 100000`` was a MemoryError traceback, and ``build`` under ``ulimit -v``
1 GB died with "can't start new thread": glibc reserved a 64 MiB arena and an 8 MiB
stack for each of the run's threads.  The limits are set on subprocesses with
``resource.setrlimit(RLIMIT_AS)``, as ``ulimit -v`` does.
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

import oathcube.features as registry
import oathcube.memory as memory
import oathcube.synthetic.oath as synthetic
from oathcube import build
from oathcube.cli import app
from oathcube.errors import OptionError

GB = 1 << 30


def _one_line(output: str) -> str:
    """The error line, checked to be the only one (a progress bar may precede it)."""
    assert "Traceback" not in output and output.count("oathcube: error:") == 1, output
    line = output.rstrip("\n").rsplit("\n", 1)[-1].rsplit("\r", 1)[-1]
    assert line.startswith("oathcube: error:"), output
    return line


def _nothing_at(out: Path) -> None:
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.partial-*"))


def _limited(args: list[str], limit: int, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``oathcube ARGS`` in a fresh interpreter whose address space is ``limit`` bytes."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "oathcube.cli", *args],
        preexec_fn=cap,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
    )


def test_synth_size_that_cannot_fit_is_refused_before_writing(
    tmp_path: Path, runner: CliRunner
) -> None:
    out = tmp_path / "big"
    result = runner.invoke(app, ["synth", str(out), "--size", "100000"])
    assert result.exit_code == 1
    line = _one_line(result.output)
    assert line.startswith("oathcube: error: --size: drawing 5824 images of 100000x100000")
    assert re.search(r"needs about [\d.]+ TB of memory, and .* is available", line)
    _nothing_at(out)


def test_the_size_named_in_the_refusal_fits(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound is stated: 40 bytes a pixel, 64 more per drawing thread, 9 kB an image."""
    avail = 60_000_000
    monkeypatch.setattr(memory, "available_memory", lambda: (avail, "a test's bound"))
    monkeypatch.setattr(synthetic, "available_memory", lambda: (avail, "a test's bound"))
    monkeypatch.setattr(synthetic, "_drawing_threads", lambda: 2)
    out = tmp_path / "arch"
    result = runner.invoke(app, ["synth", str(out), "--size", "4096", "--n", "3"])
    assert result.exit_code == 1
    line = _one_line(result.output)
    assert "on 2 threads needs about 2.82 GB" in line and "60 MB is available (a test's" in line
    largest = int(re.search(r"--size (\d+) or less here", line).group(1))
    assert largest == int(np.sqrt((avail - 3 * 9 * 1024) / (40 + 2 * 64)))
    result = runner.invoke(app, ["synth", str(out), "--size", str(largest), "--n", "3"])
    assert result.exit_code == 0, result.output
    assert len(list((out / "images" / "cropped_scaled").glob("*.png"))) == 3
    # Too many images for even their records: --n is named.
    result = runner.invoke(app, ["synth", str(tmp_path / "n"), "--n", "100000"])
    assert result.exit_code == 1 and "--n: drawing 100000 images" in _one_line(result.output)


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (MemoryError(), "ran out of memory"),
        (RuntimeError("can't start new thread"), "ran out of memory for a new thread"),
    ],
)
def test_running_out_while_drawing_is_one_line_and_leaves_nothing(
    tmp_path: Path,
    runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
    error: BaseException,
    said: str,
) -> None:
    def exhausted(*args: object) -> None:
        raise error

    monkeypatch.setattr(synthetic, "_render_to", exhausted)
    out = tmp_path / "arch"
    result = runner.invoke(app, ["synth", str(out), "--n", "4", "--size", "32"])
    assert result.exit_code == 1
    line = _one_line(result.output)
    assert f"drawing 4 images of 32x32 pixels {said}" in line and "--size or --n" in line
    _nothing_at(out)


def test_other_runtime_errors_are_not_disguised() -> None:
    with pytest.raises(RuntimeError, match="something else"):
        with memory.exhaustion_as_error("work", "less"):
            raise RuntimeError("something else")
    with pytest.raises(memory.MemoryBoundError) as err:
        with memory.exhaustion_as_error("work", "less"):
            raise MemoryError
    assert isinstance(err.value, OptionError) and isinstance(err.value, MemoryError)


def test_synth_under_ulimit_v_is_refused_naming_the_limit(tmp_path: Path) -> None:
    out = tmp_path / "arch"
    done = _limited(["synth", str(out), "--size", "4000", "--n", "10"], GB, tmp_path)
    assert done.returncode == 1, done.stderr
    line = _one_line(done.stderr)
    assert "--size: drawing 10 images of 4000x4000" in line
    assert f"is available (ulimit -v {GB // 1024} (kB))" in line
    _nothing_at(out)


_PROBE = r"""
import json, threading, zarr
from oathcube.parallel import check_scheduler
check_scheduler("threads")
print(json.dumps({"stack": threading.stack_size(),
                  "zarr": zarr.config.get("threading.max_workers", None)}))
"""


@pytest.mark.parametrize("limit", [None, 2 * GB])
def test_threads_are_sized_only_under_an_address_space_limit(limit: int | None) -> None:
    def cap() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    done = subprocess.run(
        [sys.executable, "-c", _PROBE], preexec_fn=cap, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    if limit is None:
        assert seen == {"stack": 0, "zarr": None}  # nothing changes without a limit
    else:
        assert seen == {
            "stack": memory.STACK_UNDER_LIMIT,
            "zarr": memory.ZARR_THREADS_UNDER_LIMIT,
        }


def test_build_runs_under_ulimit_v_1_gb(archive: Path, tmp_path: Path) -> None:
    """Before: "can't start new thread" in 3 of 4 runs of this build under 1 GB."""
    cube = tmp_path / "c.zarr"
    done = _limited(["build", str(archive), "-o", str(cube)], GB, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"cube written to {cube}"
    pixels = zarr.open_array(str(cube), path="pixels", mode="r")
    assert pixels.shape[0] == 90 and pixels[...].any()


class ExhaustedExtractor:
    """An extractor that runs out of memory on every chunk."""

    name = "exhausted"
    dim = "feature"
    n_features = 1

    def __init__(self, **options: object) -> None:
        pass

    def feature_labels(self) -> None:
        return None

    def attrs(self) -> dict[str, object]:
        return {}

    def __call__(self, pixels: np.ndarray, rot_angle: np.ndarray) -> np.ndarray:
        raise MemoryError


def test_running_out_in_a_task_is_one_line(
    archive: Path, tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(registry.REGISTRY, "exhausted", f"{__name__}:ExhaustedExtractor")
    monkeypatch.setattr(registry, "_CACHE", {})
    cube = build(archive, tmp_path / "c.zarr", progress=False, chunk_images=32)
    result = runner.invoke(app, ["features", cube, "--extractor", "exhausted"])
    assert result.exit_code == 1
    line = _one_line(result.output)
    assert "computing features_exhausted (threads) ran out of memory" in line
    assert "--scheduler synchronous" in line
    # Nothing was computed: every row is still "to do" for a rerun.
    rows = zarr.open_array(cube, path="features_exhausted", mode="r")[...]
    assert np.isnan(rows).all()
