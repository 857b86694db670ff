"""Fault injection: real ``oathcube`` processes killed with SIGKILL, then rerun.

Each case runs one command in a new process group with ``OATHCUBE_KILL_AT`` naming a
point of its commit protocol (:mod:`oathcube.faults`): right after a metadata change,
after a chunk is written, before or after a commit.  The process kills its whole
group with SIGKILL there.  The test then checks what a plain xarray reader sees
(only committed data), reruns the same command to the end, and compares every array
of the cube with an uninterrupted run.  Seeded cases kill at a random moment from
outside instead, wherever the process happens to be (a chunk write included).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from conftest import run_oathcube

from oathcube import Cube, build, classify, compute_features, ingest, train
from oathcube.cli import app
from oathcube.errors import ArchiveError, CubeError, IngestError, ModelError, OptionError
from oathcube.faults import KILL_ENV
from oathcube.rawprep import RawPreparation
from oathcube.synthetic.themis import write_cdf

pytestmark = pytest.mark.slow  # real processes killed and rerun: minutes

PREP = '{"out_size": 32}'
CHUNK = 16


def _arrays(cube: Path) -> dict[str, np.ndarray]:
    """Every array of every group, as oathcube's readers see them (values only)."""
    opened = Cube.open(cube)
    groups = [None, *[f"stations/{s}" for s in opened.stations()]]
    groups += [f"models/{m}" for m in opened.models()]
    out: dict[str, np.ndarray] = {}
    for group in groups:
        ds = opened.dataset(group)
        for name, var in ds.variables.items():
            out[f"{group or ''}/{name}"] = np.asarray(var.values)
    return out


def _assert_same(cube: Path, reference: Path) -> None:
    got, want = _arrays(cube), _arrays(reference)
    assert sorted(got) == sorted(want)
    for name in want:
        a, b = got[name], want[name]
        equal = (
            np.array_equal(a, b, equal_nan=True) if a.dtype.kind in "fcmM" else np.array_equal(a, b)
        )
        assert equal, f"{name} differs from the uninterrupted run"


def _readable(cube: Path) -> None:
    """A plain xarray reader opens every group of a killed cube consistently."""
    if not (cube / "zarr.json").exists():
        return
    xr.open_zarr(cube).load()
    root = zarr.open_group(str(cube), mode="r")
    if "stations" in root:
        for name, _ in root["stations"].groups():  # type: ignore[union-attr]
            xr.open_zarr(cube, group=f"stations/{name}").load()


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three hour files of one station (two sources in time order, then a third)."""
    folder = tmp_path_factory.mktemp("raw")
    write_cdf(folder, "fsmi", "2011-01-06T05:00:00", 20, size=32, seed=1)
    write_cdf(folder, "fsmi", "2011-01-06T06:00:00", 20, size=32, seed=2)
    write_cdf(folder, "fsmi", "2011-01-06T07:00:00", 20, size=32, seed=3)
    return folder


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, cube_factory, raw: Path) -> dict[str, Path]:
    """Uninterrupted runs of every command, one cube after each."""
    base = tmp_path_factory.mktemp("reference")
    out: dict[str, Path] = {}
    out["build"] = cube_factory.template(CHUNK)  # only read: every test copies it first
    features = cube_factory.copy(base / "features.zarr", CHUNK)
    compute_features(features, "handcrafted", scheduler="synchronous", progress=False)
    out["features"] = features
    trained = cube_factory.copy(base / "train.zarr", CHUNK)
    compute_features(trained, "handcrafted", scheduler="synchronous", progress=False)
    train(trained, "handcrafted")
    out["train"] = trained
    ingested = cube_factory.copy(base / "ingest.zarr", CHUNK)
    ingest(
        sorted(raw.iterdir()),
        ingested,
        preparation=RawPreparation(out_size=32),
        chunk_frames=8,
        progress=False,
    )
    out["ingest"] = ingested
    return out


def _copy(cube: Path, to: Path) -> Path:
    return Path(shutil.copytree(cube, to))


BUILD_POINTS = ["build.template_written", "write.region:3", "build.before_publish"]


@pytest.mark.parametrize("point", BUILD_POINTS)
def test_build_killed(point: str, archive: Path, tmp_path: Path, reference) -> None:
    cube = tmp_path / "cube.zarr"
    args = ["build", str(archive), "-o", str(cube), "--chunk-images", str(CHUNK)]
    assert run_oathcube(args, kill_at=point) == -signal.SIGKILL
    assert not cube.exists()  # nothing at the target until the build is whole
    assert run_oathcube(args) == 0
    _assert_same(cube, reference["build"])


def test_overwrite_killed_keeps_the_old_cube(archive: Path, tmp_path: Path, reference) -> None:
    cube = _copy(reference["build"], tmp_path / "cube.zarr")
    args = ["build", str(archive), "-o", str(cube), "--overwrite", "--chunk-images", "8"]
    assert run_oathcube(args, kill_at="write.region:2") == -signal.SIGKILL
    _assert_same(cube, reference["build"])  # the old cube, untouched


FEATURE_POINTS = ["features.created", "features.chunk_written:3", "features.before_publish"]


@pytest.mark.parametrize("point", FEATURE_POINTS)
def test_features_killed(point: str, tmp_path: Path, reference) -> None:
    cube = _copy(reference["build"], tmp_path / "cube.zarr")
    args = ["features", str(cube), "--extractor", "handcrafted", "--scheduler", "synchronous"]
    assert run_oathcube(args, kill_at=point) == -signal.SIGKILL
    _readable(cube)
    assert "features_handcrafted" not in xr.open_zarr(cube)  # not published before it is whole
    assert run_oathcube(args) == 0
    _assert_same(cube, reference["features"])


INGEST_POINTS = [
    "ingest.stage_created",
    "ingest.group_created",
    "ingest.time_created",
    "ingest.planned",
    "ingest.chunk_written",
    "ingest.chunk_written:2",
    "ingest.committed",
    "ingest.before_land",
    "ingest.landed",
]


@pytest.mark.parametrize("point", INGEST_POINTS)
def test_ingest_killed(point: str, tmp_path: Path, raw: Path, reference) -> None:
    cube = _copy(reference["build"], tmp_path / "cube.zarr")
    files = [str(f) for f in sorted(raw.iterdir())]
    args = ["ingest", *files, "-o", str(cube), "--prep", PREP, "--chunk-frames", "8"]
    assert run_oathcube(args, kill_at=point) == -signal.SIGKILL
    _readable(cube)  # a plain reader sees committed frames only, consistently
    # A new station appears with all its frames, or not at all: to oathcube (which reads
    # the store itself) and to plain xarray (which reads the consolidated metadata).
    if "fsmi" in Cube.open(cube).stations():
        assert Cube.open(cube).station("fsmi").sizes["time"] == 60
    if "stations/fsmi" in zarr.open_group(str(cube), mode="r"):
        assert xr.open_zarr(cube, group="stations/fsmi").sizes["time"] == 60
    assert run_oathcube(args) == 0
    _assert_same(cube, reference["ingest"])


def test_ingest_killed_then_features_repair_the_station(
    tmp_path: Path, raw: Path, reference
) -> None:
    cube = _copy(reference["ingest"], tmp_path / "cube.zarr")
    later = tmp_path / "later"
    later.mkdir()
    write_cdf(later, "fsmi", "2011-01-06T08:00:00", 20, size=32, seed=4)
    args = ["ingest", str(next(later.iterdir())), "-o", str(cube), "--prep", PREP]
    assert run_oathcube(args, kill_at="ingest.planned") == -signal.SIGKILL
    # a feature run drops the uncommitted rows instead of computing on them
    compute_features(cube, "handcrafted", station="fsmi", scheduler="synchronous", progress=False)
    fsmi = xr.open_zarr(cube, group="stations/fsmi")
    assert fsmi.sizes["time"] == 60 and np.isfinite(fsmi.features_handcrafted.values).all()


CLASSIFY_POINTS = [
    "classify.scores_created",
    "classify.predictions_created",
    "classify.scores_written",
    "classify.predictions_written",
]


@pytest.fixture(scope="module")
def classified(reference, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("classified")
    cube = _copy(reference["ingest"], base / "cube.zarr")
    compute_features(cube, "handcrafted", scheduler="synchronous", progress=False)
    train(cube, "handcrafted")
    ready = _copy(cube, base / "ready.zarr")
    classify(cube, "handcrafted_class6", scheduler="synchronous", progress=False)
    return ready, cube


@pytest.mark.parametrize("point", CLASSIFY_POINTS)
def test_classify_killed(point: str, tmp_path: Path, classified) -> None:
    ready, done = classified
    cube = _copy(ready, tmp_path / "cube.zarr")
    args = ["classify", str(cube), "--model", "handcrafted_class6", "--scheduler", "synchronous"]
    assert run_oathcube(args, kill_at=point) == -signal.SIGKILL
    _readable(cube)
    assert run_oathcube(args) == 0
    _assert_same(cube, done)


def test_train_killed(tmp_path: Path, reference) -> None:
    cube = _copy(reference["features"], tmp_path / "cube.zarr")
    args = ["train", str(cube), "--features", "handcrafted"]
    assert run_oathcube(args, kill_at="train.arrays_written") == -signal.SIGKILL
    assert Cube.open(cube).models() == []  # an interrupted model is never listed
    with pytest.raises(ModelError, match="interrupted"):
        Cube.open(cube).model("handcrafted_class6")
    assert run_oathcube(args) == 0
    _assert_same(cube, reference["train"])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ingest_killed_at_a_random_moment(seed: int, tmp_path: Path, raw: Path, reference) -> None:
    cube = _copy(reference["build"], tmp_path / "cube.zarr")
    files = [str(f) for f in sorted(raw.iterdir())]
    args = ["ingest", *files, "-o", str(cube), "--prep", PREP, "--chunk-frames", "8"]
    env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    proc = subprocess.Popen(
        [sys.executable, "-m", "oathcube.cli", *args],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Somewhere between start-up and the end of the writes (about 2-4 s on 2 cores).
    time.sleep(random.Random(seed).uniform(1.5, 4.0))
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it finished first: the rerun must then change nothing
    proc.wait(timeout=60)
    _readable(cube)
    assert run_oathcube(args) == 0
    _assert_same(cube, reference["ingest"])


# ------------------------------------------------------------------ races and mistakes


def test_two_builds_racing_for_one_target(archive: Path, tmp_path: Path, reference) -> None:
    cube = tmp_path / "cube.zarr"
    args = ["-m", "oathcube.cli", "build", str(archive), "-o", str(cube)]
    procs = [
        subprocess.Popen([sys.executable, *args], stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    loser = next(err for code, err in results if code == 1)
    assert "oathcube: error:" in loser and ("already exists" in loser or "another" in loser)
    assert xr.open_zarr(cube).sizes["image"] == 90


def test_a_second_writer_is_refused_while_one_writes(tmp_path: Path, reference) -> None:
    cube = Cube.open(_copy(reference["build"], tmp_path / "cube.zarr"), "r+")
    with cube.writing("features"), pytest.raises(CubeError, match="another oathcube command"):
        compute_features(str(cube), "handcrafted", scheduler="synchronous", progress=False)


def test_train_never_replaces_a_model_without_overwrite(tmp_path: Path, reference) -> None:
    cube = _copy(reference["train"], tmp_path / "cube.zarr")
    with pytest.raises(ModelError, match="exists"):
        train(cube, "handcrafted")
    train(cube, "handcrafted", overwrite=True)


@pytest.mark.parametrize("array", ["class6", "split", "pixels", "features_published"])
def test_a_missing_chunk_is_named_before_anything_is_scored(
    array: str, tmp_path: Path, reference, runner
) -> None:
    cube = _copy(reference["build"], tmp_path / "cube.zarr")
    chunk = sorted((cube / array / "c").rglob("*"))[-1]
    chunk.unlink()
    command = (
        ["features", str(cube), "--extractor", "handcrafted", "--scheduler", "synchronous"]
        if array == "pixels"
        else ["evaluate", str(cube)]
    )
    out = runner.invoke(app, command)
    assert out.exit_code == 1
    assert f"of {array} is missing" in out.output
    if array == "pixels":
        assert "features_handcrafted" not in xr.open_zarr(cube)


def test_building_cube_is_not_written_by_others(tmp_path: Path, reference) -> None:
    cube = _copy(reference["build"], tmp_path / "cube.zarr")
    zarr.open_group(str(cube), mode="r+").attrs["oathcube_status"] = "building"
    with pytest.raises(CubeError, match="not complete"):
        compute_features(cube, "handcrafted", progress=False)
    source = tmp_path / "frames"
    source.mkdir()
    with pytest.raises(CubeError, match="not complete"):
        ingest([source], cube, progress=False)


def test_build_refuses_targets_it_would_damage(archive: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in archive.rglob("*"))
    with pytest.raises(OptionError, match="own source"):
        build(archive, archive, overwrite=True)
    with pytest.raises(OptionError, match="own source"):
        build(archive, archive / "cube.zarr")
    inside = Path(shutil.copytree(archive, tmp_path / "big.zarr" / "oath"))
    with pytest.raises(OptionError, match="inside the cube"):
        build(inside, tmp_path / "big.zarr", overwrite=True)
    assert sorted(p.name for p in archive.rglob("*")) == before


def test_overlapping_sources_are_refused_before_anything_is_written(
    tmp_path: Path, raw: Path, reference
) -> None:
    cube = _copy(reference["build"], tmp_path / "cube.zarr")
    overlap = tmp_path / "overlap"
    overlap.mkdir()
    write_cdf(overlap, "fsmi", "2011-01-06T05:00:30", 20, size=32, seed=9)
    before = _arrays(cube)
    with pytest.raises(IngestError, match="overlap"):
        ingest([*sorted(raw.iterdir()), *overlap.iterdir()], cube, progress=False)
    assert Cube.open(cube).stations() == [] and sorted(_arrays(cube)) == sorted(before)


def test_overwrite_at_a_url_keeps_the_old_cube_when_the_new_build_fails(
    archive: Path, tmp_path: Path
) -> None:
    url = "memory://faults/cube.zarr"
    build(archive, url, progress=False)
    (archive / "classifications" / "classifications.csv").write_text("garbage\n")
    with pytest.raises(ArchiveError):
        build(archive, url, overwrite=True, progress=False)
    assert xr.open_zarr(url).sizes["image"] == 90  # the old cube, whole
    import fsspec

    fs = fsspec.filesystem("memory")
    assert not [p for p in fs.ls("/faults") if ".building-" in p]  # the failed one is gone


def test_features_overwrite_with_a_bad_scheduler_keeps_the_features(
    tmp_path: Path, reference, runner
) -> None:
    cube = _copy(reference["features"], tmp_path / "cube.zarr")
    args = ["features", str(cube), "--extractor", "handcrafted", "--overwrite", "--scheduler", "x"]
    assert runner.invoke(app, args).exit_code == 1
    _assert_same(cube, reference["features"])


def test_a_file_url_is_the_path_it_names(archive: Path, tmp_path: Path, runner) -> None:
    target = tmp_path / "by_url.zarr"
    out = runner.invoke(app, ["build", str(archive), "-o", f"file://{target}"])
    assert out.exit_code == 0, out.output
    assert xr.open_zarr(target).sizes["image"] == 90
    assert str(target) in out.output and not Path("file:").exists()


@pytest.mark.parametrize("rows", [4, 6])
def test_evaluate_says_how_many_folds_it_averaged(
    rows: int, archive: Path, tmp_path: Path, runner
) -> None:
    split = archive / "classifications" / "train_test_split.csv"
    lines = split.read_text().splitlines()
    split.write_text("\n".join((lines * 2)[:rows]) + "\n")
    cube = build(archive, tmp_path / "cube.zarr", progress=False)
    out = runner.invoke(app, ["evaluate", cube])
    assert out.exit_code == 0, out.output
    assert f"{rows} folds (the rows of split)" in out.output
    assert xr.open_zarr(cube).attrs["n_folds"] == rows


def test_a_killed_ingest_resumes_chunk_by_chunk(tmp_path: Path, raw: Path, reference) -> None:
    cube = _copy(reference["build"], tmp_path / "cube.zarr")
    files = [str(f) for f in sorted(raw.iterdir())]
    args = ["ingest", *files, "-o", str(cube), "--prep", PREP, "--chunk-frames", "8"]
    # Tasks in order: 60 frames in 8 tasks of one chunk (TASKS_PER_CORE on any cores).
    args += ["--scheduler", "synchronous"]
    assert run_oathcube(args, kill_at="ingest.chunk_written:2") == -signal.SIGKILL
    # A new station is written beside the cube until its first commit lands.
    assert "stations/fsmi" not in zarr.open_group(str(cube), mode="r", use_consolidated=False)
    stage = zarr.open_group(str(tmp_path / ".cube.zarr.ingest-fsmi"), mode="r")
    node = stage["stations/fsmi"]
    assert node.attrs["oathcube_pending"]["end"] == 60 and node.attrs["oathcube_rows"] == 0
    # Six tasks are left: a rerun that would die at its seventh task runs to the end.
    assert run_oathcube(args, kill_at="ingest.chunk_written:7") == 0
    _assert_same(cube, reference["ingest"])


def test_a_killed_sharded_ingest_resumes_shard_by_shard(
    tmp_path: Path, raw: Path, reference
) -> None:
    # Shards of 16 frames in chunks of 4: tasks write whole shards, so a killed run
    # leaves whole shards only, and the rerun writes the missing ones.
    cube = _copy(reference["build"], tmp_path / "cube.zarr")
    files = [str(f) for f in sorted(raw.iterdir())]
    args = ["ingest", *files, "-o", str(cube), "--prep", PREP, "--chunk-frames", "4"]
    args += ["--shard-frames", "16", "--scheduler", "synchronous"]
    assert run_oathcube(args, kill_at="ingest.chunk_written:2") == -signal.SIGKILL
    stage = tmp_path / ".cube.zarr.ingest-fsmi"
    pixels = zarr.open_group(str(stage), mode="r")["stations/fsmi/pixels"]
    assert pixels.shards == (16, 32, 32) and pixels.chunks == (4, 32, 32)
    assert len(list((stage / "stations/fsmi/pixels/c").iterdir())) == 2  # two whole shards
    assert run_oathcube(args, kill_at="ingest.chunk_written:3") == 0
    _assert_same(cube, reference["ingest"])
    assert not stage.exists()  # landed: nothing is left beside the cube
    # 60 frames: four shard objects, not fifteen chunk objects
    assert len(list((cube / "stations/fsmi/pixels/c").iterdir())) == 4
