"""Cubes in object storage: every command against moto's S3 server on 127.0.0.1.

The endpoint and credentials come from the standard AWS environment variables
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...), which s3fs reads, so oathcube is
given nothing but ``s3://bucket/key`` URLs.  Every array is compared with the same
commands run on a local cube.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import oathcube
from oathcube import Cube, build, classify, compute_features, evaluate, ingest, timeline, train
from oathcube.cli import app
from oathcube.errors import ArchiveError, CubeError
from oathcube.rawprep import RawPreparation
from oathcube.synthetic.themis import write_cdf

PREP = RawPreparation(out_size=32)
ROOT = Path(__file__).resolve().parents[1]


def _arrays(cube: str | Path) -> dict[str, np.ndarray]:
    opened = Cube.open(cube)
    groups = [None, *[f"stations/{s}" for s in opened.stations()]]
    groups += [f"models/{m}" for m in opened.models()]
    return {
        f"{g or ''}/{name}": np.asarray(var.values)
        for g in groups
        for name, var in opened.dataset(g).variables.items()
    }


def _assert_same(a: str | Path, b: str | Path) -> None:
    got, want = _arrays(a), _arrays(b)
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        kind = value.dtype.kind
        same = (
            np.array_equal(got[name], value, equal_nan=True)
            if kind in "fcmM"
            else np.array_equal(got[name], value)
        )
        assert same, name


def _pipeline(archive: Path, raw: Path, cube: str) -> dict[str, object]:
    """build (+ features) -> evaluate -> train -> ingest -> classify -> timeline."""
    location = build(archive, cube, chunk_images=32, features=["handcrafted"], progress=False)
    result = evaluate(location, features="handcrafted")
    model = train(location, "handcrafted")
    ingest([raw], location, preparation=PREP, progress=False)
    done = classify(location, model, progress=False)
    counts = timeline(location, "fsmi", freq="30min", model=model)
    return {"accuracy": result.accuracy_mean, "done": done, "counts": counts}


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    folder = tmp_path / "raw"
    folder.mkdir()
    write_cdf(folder, "fsmi", "2011-01-06T05:00:00", 30, size=32, seed=1)
    write_cdf(folder, "fsmi", "2011-01-06T06:00:00", 30, size=32, seed=2)
    return folder


@pytest.mark.slow
def test_every_command_on_s3_equals_a_local_run(
    s3_env: dict[str, str], archive: Path, raw: Path, tmp_path: Path
) -> None:
    url = "s3://cubes/all.zarr"
    remote = _pipeline(archive, raw, url)
    local = _pipeline(archive, raw, str(tmp_path / "local.zarr"))
    assert remote["accuracy"] == local["accuracy"]
    assert remote["done"] == local["done"] == {"": 90, "stations/fsmi": 60}
    xr.testing.assert_identical(remote["counts"].drop_attrs(), local["counts"].drop_attrs())
    _assert_same(url, tmp_path / "local.zarr")

    # Plain xarray with explicit storage options, as a user without the variables would.
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": s3_env["AWS_ENDPOINT_URL"]},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # consolidated metadata: no warning
        ds = xr.open_zarr(url, storage_options=options)
        fsmi = xr.open_zarr(url, group="stations/fsmi", storage_options=options)
    assert ds.sizes["image"] == 90 and fsmi.sizes["time"] == 60
    assert "predicted_handcrafted_class6" in fsmi

    # The intake catalog, with the URL as its path.
    import intake

    shutil.copy(ROOT / "catalog.yaml", tmp_path / "catalog.yaml")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Shell command not executed")
        cat = intake.open_catalog(str(tmp_path / "catalog.yaml"))
        opened = cat(path=url).cube.to_dask()
    assert opened.sizes["image"] == 90


@pytest.mark.slow
def test_cli_on_s3_and_a_failed_overwrite_keeps_the_old_cube(
    s3_env: dict[str, str], archive: Path, runner
) -> None:
    url = "s3://cubes/cli.zarr"
    out = runner.invoke(app, ["build", str(archive), "-o", url, "--chunk-images", "32"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["features", url, "--extractor", "handcrafted"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["build", str(archive), "-o", url])
    assert out.exit_code == 1 and "already exists" in out.stderr
    (archive / "classifications" / "classifications.csv").write_text("garbage\n")
    with pytest.raises(ArchiveError):
        build(archive, url, overwrite=True, progress=False)
    ds = xr.open_zarr(url)
    assert ds.sizes["image"] == 90 and np.isfinite(ds.features_handcrafted.values).all()
    import s3fs

    assert not [p for p in s3fs.S3FileSystem().ls("cubes") if ".building-" in p]


@pytest.mark.slow
def test_features_on_s3_resume_after_an_interruption(
    s3_env: dict[str, str], archive: Path, make_cube
) -> None:
    url = build(archive, "s3://cubes/resume.zarr", chunk_images=16, progress=False)
    local = make_cube(chunk_images=16, name="local.zarr")
    compute_features(local, "handcrafted", progress=False)
    compute_features(url, "handcrafted", rows=(0, 40), progress=False)  # stopped early
    compute_features(url, "handcrafted", progress=False)  # the rest
    _assert_same(url, local)


def test_similar_and_its_index_on_s3_equal_a_local_run(
    s3_env: dict[str, str], archive: Path, raw: Path, tmp_path: Path
) -> None:
    """Issue 25, item 5: the search (exact, on the processes scheduler, and indexed) reads
    an S3 cube as it reads a local one, and the index is stored and read back there."""
    found = {}
    for where in ("s3://cubes/similar.zarr", str(tmp_path / "local.zarr")):
        build(archive, where, chunk_images=32, progress=False)
        ingest([raw], where, preparation=PREP, progress=False)
        compute_features(where, "handcrafted", station="fsmi", progress=False)
        oathcube.build_index(where, "handcrafted")
        when = Cube.open(where).read_times("stations/fsmi")[12]
        ask = {"station": "fsmi", "time": when, "k": 5, "exclude_seconds": 0.0}
        found[where] = (
            oathcube.similar(where, use_index=False, scheduler="processes", **ask),
            oathcube.similar(where, use_index=True, **ask),
        )
    (s3_exact, s3_indexed), (local_exact, local_indexed) = found.values()
    assert len(local_exact) == 5
    for got, want in ((s3_exact, local_exact), (s3_indexed, local_indexed)):
        assert got["time"].tolist() == want["time"].tolist()
        np.testing.assert_allclose(got["score"], want["score"], rtol=0, atol=1e-12)
    # 60 frames in one list: the index's candidates are every frame, so it is exact.
    assert s3_indexed["time"].tolist() == s3_exact["time"].tolist()


# ------------------------------------------------- an object store that cannot be used
# Issue 20, case 9: each is one line naming the URL and what to set, never a botocore
# traceback; case 7: a memory:// cube would die with the command that wrote it.


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oathcube.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _aws_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # No credentials from files or an instance's metadata service either.
    env.update(
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        AWS_CONFIG_FILE="/nonexistent",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_DEFAULT_REGION="us-east-1",
    )
    env.update(extra)
    return env


def _one_line(out: subprocess.CompletedProcess[str], *words: str) -> None:
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("oathcube: error: s3://"), line
    for word in words:
        assert word in line, line


def test_s3_without_credentials_is_one_line(s3_env: dict[str, str]) -> None:
    env = _aws_env(AWS_ENDPOINT_URL=s3_env["AWS_ENDPOINT_URL"])
    _one_line(_cli("info", "s3://cubes/x.zarr", env=env), "no credentials", "AWS_ACCESS_KEY_ID")


def test_s3_endpoint_with_nothing_listening_is_one_line() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = _aws_env(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    _one_line(_cli("info", "s3://cubes/x.zarr", env=env), "cannot reach", f"127.0.0.1:{port}")


def test_s3_missing_bucket_is_one_line_and_nothing_is_written(
    s3_env: dict[str, str], tmp_path: Path
) -> None:
    write_cdf(tmp_path, "fsmi", "2011-01-06T05:00:00", 4, size=32, seed=1)
    env = {**os.environ, **s3_env}
    cdf = str(next(tmp_path.glob("*.cdf")))
    out = _cli("ingest", cdf, "-o", "s3://nobucket/x.zarr", env=env)
    _one_line(out, "bucket 'nobucket' does not exist")
    _one_line(_cli("info", "s3://nobucket/x.zarr", env=env), "does not exist")
    import s3fs

    assert not s3fs.S3FileSystem().exists("nobucket")


def test_a_memory_cube_is_refused_by_the_command_line(tmp_path: Path, runner) -> None:
    write_cdf(tmp_path, "fsmi", "2011-01-06T05:00:00", 4, size=32, seed=1)
    out = runner.invoke(app, ["ingest", str(next(tmp_path.glob("*.cdf"))), "-o", "memory://m.zarr"])
    assert out.exit_code == 1
    assert "memory://m.zarr lives only as long as this command" in out.output


def test_storage_options_travel_with_the_cube_to_every_worker(
    s3_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    # Credentials given only as storage_options, not in the environment: the ingest's
    # worker processes (which inherit that environment) must get them with the Cube.
    import s3fs

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    s3fs.S3FileSystem.clear_instance_cache()
    # The file systems made here have no credentials: none may serve later tests.
    request.addfinalizer(s3fs.S3FileSystem.clear_instance_cache)
    write_cdf(tmp_path, "fsmi", "2011-01-06T05:00:00", 12, size=32, seed=1)
    options = {"key": "testing", "secret": "testing"}
    url = "s3://cubes/options.zarr"
    with pytest.raises(CubeError, match="no credentials"):
        Cube.open(url)
    written = ingest(
        sorted(tmp_path.glob("*.cdf")),
        url,
        preparation=PREP,
        chunk_frames=4,
        scheduler="processes",
        progress=False,
        storage_options=options,
    )
    assert written == {"fsmi": 12}
    station = Cube.open(url, storage_options=options).station("fsmi")
    assert station.sizes["time"] == 12 and int(station.pixels.max()) > 0
    # Every command's function takes them the same way (here: a view and a summary)
    keo = oathcube.keogram(url, "fsmi", skymap="none", storage_options=options)
    assert keo.sizes["time"] == 12
    assert url in oathcube.describe(url, storage_options=options)
