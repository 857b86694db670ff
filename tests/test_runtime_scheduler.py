"""A scheduler is reached before the first write (issue 20, case 10).

``features --overwrite`` with a dead scheduler used to empty every row and fail 30 s
later with a traceback; ``classify`` created its prediction arrays first.  Each test
goes through the command line and reads the store afterwards.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

import oathcube.features as registry
import oathcube.parallel as parallel
from oathcube import build
from oathcube.cli import app
from oathcube.errors import OptionError


class MeanExtractor:
    """A cheap deterministic extractor: the mean and max of each frame."""

    name = "means"
    dim = "feature"
    n_features = 2

    def __init__(self, **options: object) -> None:
        pass

    def feature_labels(self) -> list[str]:
        return ["mean", "max"]

    def attrs(self) -> dict[str, object]:
        return {"recipe": "means-1"}

    def __call__(self, pixels: np.ndarray, rot_angle: np.ndarray) -> np.ndarray:
        flat = pixels.reshape(len(pixels), -1).astype(np.float32)
        return np.stack([flat.mean(1), flat.max(1)], axis=1)


@pytest.fixture
def means(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.REGISTRY, "means", f"{__name__}:MeanExtractor")
    monkeypatch.setattr(registry, "_CACHE", {})


@pytest.fixture
def featured(archive: Path, tmp_path: Path, runner: CliRunner, means: None) -> str:
    """A cube with features_means computed (and a model trained on them)."""
    cube = build(archive, tmp_path / "c.zarr", progress=False, chunk_images=32)
    out = runner.invoke(
        app, ["features", cube, "--extractor", "means", "--scheduler", "synchronous"]
    )
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["train", cube, "--features", "means", "--name", "m"])
    assert out.exit_code == 0, out.output
    return cube


@pytest.fixture
def dead_address() -> str:
    """A tcp:// address where nothing listens (a port just freed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


@pytest.fixture
def silent_address(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A tcp:// address that accepts connections and never says a word (not dask)."""
    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT", 0.5)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for conn in held:
        conn.close()


def _stored(cube: str) -> dict[str, object]:
    """What the cube holds: every array's values and attributes, by path."""
    root = zarr.open_group(cube, mode="r")
    found: dict[str, object] = {}

    def walk(group: zarr.Group, prefix: str) -> None:
        for name, node in group.members():
            if isinstance(node, zarr.Group):
                walk(node, f"{prefix}{name}/")
            else:
                found[prefix + name] = (node[...].tobytes(), dict(node.attrs))

    walk(root, "")
    return found


def _one_line(output: str) -> str:
    assert output.count("\n") == 1, output
    assert "Traceback" not in output
    return output


@pytest.mark.parametrize("kind", ["dead", "silent"])
def test_features_overwrite_with_unreachable_scheduler_keeps_every_row(
    featured: str, runner: CliRunner, kind: str, request: pytest.FixtureRequest
) -> None:
    address = request.getfixturevalue(f"{kind}_address")
    before = _stored(featured)
    assert np.isfinite(zarr.open_array(featured, path="features_means", mode="r")[...]).all()
    tic = time.perf_counter()
    out = runner.invoke(
        app, ["features", featured, "--extractor", "means", "--overwrite", "--scheduler", address]
    )
    elapsed = time.perf_counter() - tic
    assert out.exit_code == 1
    line = _one_line(out.output)
    assert line.startswith("oathcube: error: --scheduler: no dask scheduler answers at " + address)
    assert elapsed < 10, elapsed  # dask's own default waits 30 s
    assert _stored(featured) == before  # not one row emptied, no attribute changed


def test_classify_with_dead_scheduler_creates_nothing(
    featured: str, runner: CliRunner, dead_address: str
) -> None:
    before = _stored(featured)
    out = runner.invoke(app, ["classify", featured, "--model", "m", "--scheduler", dead_address])
    assert out.exit_code == 1
    assert dead_address in _one_line(out.output)
    after = _stored(featured)
    assert after == before
    assert not [k for k in after if "_m" in k and k.startswith(("predicted", "score"))]


def test_check_scheduler_names_the_address_at_once(dead_address: str) -> None:
    tic = time.perf_counter()
    with pytest.raises(OptionError, match="no dask scheduler answers at tcp://127.0.0.1"):
        parallel.check_scheduler(dead_address)
    assert time.perf_counter() - tic < parallel.CONNECT_TIMEOUT
    with pytest.raises(OptionError, match="unknown scheduler"):
        parallel.check_scheduler("tcp//nowhere")
    assert parallel.check_scheduler("threads") == "threads"


def test_a_live_scheduler_is_connected_once_for_the_command(
    featured: str, runner: CliRunner
) -> None:
    distributed = pytest.importorskip("distributed")
    before = zarr.open_array(featured, path="features_means", mode="r")[...]
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        out = runner.invoke(
            app,
            ["features", featured, "--extractor", "means", "--overwrite", "--scheduler", address],
        )
        assert out.exit_code == 0, out.output
        # The command's Client is closed when it ends: none is left as the default.
        with pytest.raises(ValueError):
            distributed.default_client()
    np.testing.assert_array_equal(
        zarr.open_array(featured, path="features_means", mode="r")[...], before
    )


def test_features_overwrite_with_a_missing_pixel_chunk_keeps_every_row(
    featured: str, runner: CliRunner
) -> None:
    """Every input is checked before --overwrite empties the variable, not only the scheduler."""
    second = Path(featured) / "pixels" / "c" / "1"  # images 32-63
    chunks = [path for path in second.rglob("*") if path.is_file()]
    assert chunks, "pixels of the 90-image cube come in chunks of 32 images"
    for path in chunks:
        path.unlink()
    before = _stored(featured)
    out = runner.invoke(
        app, ["features", featured, "--extractor", "means", "--overwrite", "--scheduler", "threads"]
    )
    assert out.exit_code == 1
    assert "pixels" in _one_line(out.output)
    assert _stored(featured) == before
