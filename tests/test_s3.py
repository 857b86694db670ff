"""Cubes in object storage: every command against moto's S3 server on 127.0.0.1.

The endpoint and credentials come from the standard AWS environment variables
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...), which s3fs reads, so oathcube is
given nothing but ``s3://bucket/key`` URLs.  Every array is compared with the same
commands run on a local cube.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from themis_files import write_cdf

from oathcube import Cube, build, classify, compute_features, evaluate, ingest, timeline, train
from oathcube.cli import app
from oathcube.errors import ArchiveError
from oathcube.rawprep import RawPreparation

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
    counts = timeline(location, "fsmi", "30min", model=model)
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
    out = runner.invoke(app, ["features", url, "--model", "handcrafted"])
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
    s3_env: dict[str, str], archive: Path, tmp_path: Path
) -> None:
    url = build(archive, "s3://cubes/resume.zarr", chunk_images=16, progress=False)
    local = build(archive, tmp_path / "local.zarr", chunk_images=16, progress=False)
    compute_features(local, "handcrafted", progress=False)
    compute_features(url, "handcrafted", rows=(0, 40), progress=False)  # stopped early
    compute_features(url, "handcrafted", progress=False)  # the rest
    _assert_same(url, local)
