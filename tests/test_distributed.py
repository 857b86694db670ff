"""A real dask.distributed cluster: ``dask scheduler`` and two ``dask worker`` processes.

They run on 127.0.0.1 as subprocesses, bounded in time.  build (each worker reads its
PNGs by path and writes its pixel chunk), features, ingest (each worker reads its CDF
files by path and writes whole chunks) and classify run on them; every array is
compared with a threaded local run (float features within FEATURE_TOLERANCE,
everything else equal), locally and with the cube on S3.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from oathcube import Cube, build, classify, compute_features, ingest, train
from oathcube.features import FEATURE_TOLERANCE
from oathcube.rawprep import RawPreparation
from oathcube.synthetic.themis import write_cdf

PREP = RawPreparation(out_size=32)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def cluster(s3_env: dict[str, str]) -> Iterator[str]:
    """The address of a scheduler with two single-threaded worker processes.

    Started after the S3 server, so that the workers inherit its environment.
    """
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-dashboard",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("dask scheduler did not start in 60 s") from None
                time.sleep(0.2)
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "distributed.cli.dask_worker",
                        address,
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--host",
                        "127.0.0.1",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for proc in procs[::-1]:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _assert_close(a: str, b: str) -> None:
    """Every array of two cubes equal; float arrays within FEATURE_TOLERANCE."""
    left, right = Cube.open(a), Cube.open(b)
    groups = [None, *[f"stations/{s}" for s in left.stations()]]
    groups += [f"models/{m}" for m in left.models()]
    assert left.stations() == right.stations() and left.models() == right.models()
    for group in groups:
        x, y = left.dataset(group), right.dataset(group)
        assert sorted(x.variables) == sorted(y.variables)
        for name in x.variables:
            u, v = np.asarray(x[name].values), np.asarray(y[name].values)
            if u.dtype.kind == "f" and name != "features_published":
                atol = FEATURE_TOLERANCE * float(np.nanmax(np.abs(v))) if v.size else 0
                np.testing.assert_allclose(u, v, rtol=0, atol=atol, err_msg=f"{group}/{name}")
            elif u.dtype.kind in "fmM":
                assert np.array_equal(u, v, equal_nan=True), f"{group}/{name}"
            else:
                assert np.array_equal(u, v), f"{group}/{name}"


def _run(archive: Path, raw: Path, cube: str, scheduler: str) -> str:
    location = build(archive, cube, chunk_images=16, scheduler=scheduler, progress=False)
    compute_features(location, "handcrafted", scheduler=scheduler, progress=False)
    model = train(location, "handcrafted")
    ingest([raw], location, preparation=PREP, chunk_frames=16, scheduler=scheduler, progress=False)
    classify(location, model, scheduler=scheduler, progress=False)
    return location


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    folder = tmp_path / "raw"
    folder.mkdir()
    write_cdf(folder, "fsmi", "2011-01-06T05:00:00", 40, size=32, seed=1)
    return folder


@pytest.mark.slow
def test_build_features_ingest_classify_on_a_cluster_equal_threads(
    cluster: str, archive: Path, raw: Path, tmp_path: Path
) -> None:
    threaded = _run(archive, raw, str(tmp_path / "threads.zarr"), "threads")
    distributed = _run(archive, raw, str(tmp_path / "cluster.zarr"), cluster)
    _assert_close(distributed, threaded)


@pytest.mark.slow
def test_a_cluster_writing_a_cube_on_s3(
    cluster: str, s3_env: dict[str, str], archive: Path, raw: Path, tmp_path: Path
) -> None:
    threaded = _run(archive, raw, str(tmp_path / "threads.zarr"), "threads")
    distributed = _run(archive, raw, "s3://cubes/cluster.zarr", cluster)
    _assert_close(distributed, threaded)
