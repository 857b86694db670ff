"""Shared fixtures: small synthetic archives and cubes (one factory), the real OATH text
files, an S3 server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import imageio.v3 as iio
import numpy as np
import pytest
from typer.testing import CliRunner

from oathcube import build
from oathcube.archive.oath import parse_classifications
from oathcube.faults import KILL_ENV
from oathcube.synthetic import synth
from oathcube.synthetic.themis import write_cdf

#: ../shared beside the repository root (CI clones the repository with it there).
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL_OATH = SHARED / "data" / "oath"


@pytest.fixture(scope="session", autouse=True)
def _own_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """An empty oathcube data folder for the session, never the developer's own.

    What a developer fetched (a checkpoint, say) must not change what tests see; set in
    the environment so that CLI subprocesses and dask workers inherit it.
    """
    saved = os.environ.get("OATHCUBE_DATA_DIR")
    os.environ["OATHCUBE_DATA_DIR"] = str(tmp_path_factory.mktemp("oathcube-data"))
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("OATHCUBE_DATA_DIR", None)
        else:
            os.environ["OATHCUBE_DATA_DIR"] = saved


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared folder; tests that need it are skipped (loudly) when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not found: the real reference data are not beside the repository")
    return SHARED


@pytest.fixture(scope="session")
def _synth_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth(tmp_path_factory.mktemp("synth") / "oath", n=90, size=32, seed=3)


@pytest.fixture
def archive(tmp_path: Path, _synth_template: Path) -> Path:
    """A fresh copy of a 90-image synthetic archive (32x32) that a test may break."""
    return Path(shutil.copytree(_synth_template, tmp_path / "oath"))


class CubeFactory:
    """Cubes of the 90-image synthetic archive, built once per chunking for the session.

    The templates are never handed out: every cube a test gets is its own copy, so a
    test may add features, models and stations, or break chunks, without touching
    another test's cube.  A copy costs a few milliseconds, a build about a second.
    """

    def __init__(self, archive: Path, base: Path) -> None:
        self._archive, self._base = archive, base
        self._templates: dict[int | None, Path] = {}

    def template(self, chunk_images: int | None = 32) -> Path:
        """The session's one cube with this chunking; read it, never write to it."""
        if chunk_images not in self._templates:
            target = self._base / f"chunks-{chunk_images}" / "cube.zarr"
            built = build(self._archive, target, progress=False, chunk_images=chunk_images)
            self._templates[chunk_images] = Path(built)
        return self._templates[chunk_images]

    def copy(self, target: Path, chunk_images: int | None = 32) -> Path:
        """A fresh copy at ``target`` of the cube with ``chunk_images`` images per chunk
        (``None``: build's own choice)."""
        return Path(shutil.copytree(self.template(chunk_images), target))


@pytest.fixture(scope="session")
def cube_factory(tmp_path_factory: pytest.TempPathFactory, _synth_template: Path) -> CubeFactory:
    """The session's cube factory; module-scoped fixtures copy from it (``.copy(target)``)."""
    return CubeFactory(_synth_template, tmp_path_factory.mktemp("cubes"))


@pytest.fixture
def make_cube(tmp_path: Path, cube_factory: CubeFactory) -> Callable[..., Path]:
    """``make_cube(chunk_images=32, name="cube.zarr")``: a cube of the synthetic archive
    (the one ``archive`` copies) at ``tmp_path / name``, the test's own to change."""

    def make(chunk_images: int | None = 32, name: str = "cube.zarr") -> Path:
        return cube_factory.copy(tmp_path / name, chunk_images)

    return make


@pytest.fixture
def cube(make_cube: Callable[..., Path]) -> Path:
    """A cube of the 90-image synthetic archive in chunks of 32 images, at
    ``tmp_path / "cube.zarr"``; a module needing other chunks overrides this with
    ``make_cube(chunk_images=...)``."""
    return make_cube()


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    """Raw THEMIS files of two stations: fsmi 05:00 (30 frames) and 06:00 (30, the 2024
    layout), gill 05:00 (20); 32-pixel frames.  Modules needing others override it."""
    folder = tmp_path / "raw"
    folder.mkdir()
    write_cdf(folder, "fsmi", "2011-01-06T05:00:00", 30, size=32, seed=1)
    write_cdf(folder, "fsmi", "2011-01-06T06:00:00", 30, size=32, seed=2, layout="2024")
    write_cdf(folder, "gill", "2011-01-06T05:00:00", 20, size=32, seed=3)
    return folder


@pytest.fixture
def runner() -> CliRunner:
    """Runs the typer app in-process."""
    return CliRunner()


@pytest.fixture
def small_lightgbm(monkeypatch: pytest.MonkeyPatch) -> None:
    """LightGBM's registry entry with one small candidate (the recorded grid's keys) and
    one thread, for the test that asks for it.

    The recorded grid grows up to 300 rounds of trees per class, seconds a fit on the
    synthetic cube's 1001 logits, and OpenMP's threads fight for a busy test machine's
    cores over a few dozen rows (9 s a fit against 1.4 s with one thread measured on two
    shared cores).  The trees do not depend on the thread count (deterministic=True);
    what the tests check (the protocol, the search, storage) does not depend on the size
    of the trees.  Leaves of 5 rows, not LightGBM's 20, so that a few dozen rows grow
    trees that use what the rows hold (a planted column among them).
    """
    import dataclasses

    import oathcube.classifiers as classifiers

    recorded = classifiers.CLASSIFIERS["lightgbm"]
    small = dataclasses.replace(
        recorded,
        grid={"num_leaves": (7,), "n_estimators": (30,)},
        build=lambda alpha: recorded.build(alpha).set_params(
            model__n_jobs=1, model__min_child_samples=5
        ),
    )
    monkeypatch.setitem(classifiers.CLASSIFIERS, "lightgbm", small)


@pytest.fixture(scope="session")
def real_text_archive(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Path:
    """The real OATH v1.1 CSVs with 5,824 tiny stand-in PNGs and synthetic Logits.

    As in the real archive, the h5 rows are in sorted-filename (picNum) order.
    """
    root = tmp_path_factory.mktemp("real") / "oath_v1.1"
    (root / "classifications").mkdir(parents=True)
    (root / "images" / "cropped_scaled").mkdir(parents=True)
    (root / "features").mkdir()
    for name in ("classifications.csv", "train_test_split.csv"):
        shutil.copy(REAL_OATH / name, root / "classifications" / name)
    shutil.copy(REAL_OATH / "files_origin.csv", root / "images" / "files_origin.csv")
    table = parse_classifications((REAL_OATH / "classifications.csv").read_bytes(), "csv")
    rng = np.random.default_rng(7)
    for p in table["pic_num"]:
        iio.imwrite(
            root / "images" / "cropped_scaled" / f"{p:05d}.png",
            rng.integers(0, 255, (8, 8), dtype=np.uint8),
        )
    means = rng.normal(size=(6, 1001)).astype(np.float32)
    logits = means[table["class6"]] + rng.normal(scale=6, size=(len(table), 1001))
    logits = logits.astype(np.float32)
    names = np.array(
        [
            f"images/cropped_scaled_rotated/{p:05d}_{r:03d}.png".encode()
            for p, r in zip(table["pic_num"], table["rot_angle"], strict=True)
        ]
    )
    with h5py.File(root / "features" / "auroral_feat.h5", "w") as h5:
        h5["Logits"] = logits
        h5["filenames"] = names
    return root


@pytest.fixture(scope="session")
def s3_env() -> Iterator[dict[str, str]]:
    """moto's S3 server on a free port of 127.0.0.1, and the environment pointing at it.

    A bucket ``cubes`` exists.  The standard AWS variables are set for the rest of the
    session, so that processes started afterwards (dask workers) find the server too.
    """
    server_module = pytest.importorskip("moto.server")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    s3fs.S3FileSystem().mkdir("cubes")
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


def run_oathcube(args: list[str], kill_at: str | None = None, timeout: float = 120) -> int:
    """Run ``oathcube ARGS`` in its own process, killed with SIGKILL at the named kill point
    ``kill_at`` (:mod:`oathcube.faults`); return its exit status (0 or -SIGKILL)."""
    env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    if kill_at:
        env[KILL_ENV] = kill_at
    proc = subprocess.run(
        [sys.executable, "-m", "oathcube.cli", *args],
        env=env,
        start_new_session=True,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"oathcube {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc.returncode


@pytest.fixture(scope="session")
def demo_cube(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cube ``oathcube demo`` makes (its own code, a smaller archive: 240 images of
    64 px), with its classified fsmi night of 360 frames; read it, never write to it."""
    from oathcube.demo import run_demo

    work = tmp_path_factory.mktemp("demo") / "demo"
    run_demo(work, n=240, size=64, scheduler="synchronous")
    return work / "oath.zarr"
