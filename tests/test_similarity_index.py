"""The approximate index (``oathcube index``): recall, exact re-ranking, filters, staleness,
a killed build, the command line."""

from __future__ import annotations

import importlib.util
import logging
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import run_oathcube

from oathcube import classify, compute_features, ingest, similar, train
from oathcube.cli import app
from oathcube.errors import OptionError
from oathcube.rawprep import RawPreparation
from oathcube.similarity_index import build_index, list_indexes
from oathcube.synthetic.themis import write_cdf

faiss = pytest.importorskip("faiss")

ROWS, STATIONS, DIM = 24_000, 3, 64


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # The suite shares its cores: faiss would take them all.
    faiss.omp_set_num_threads(1)


def _bench() -> Any:
    """scripts/bench_similar.py, whose synthetic cube of clustered features this uses."""
    path = Path(__file__).parents[1] / "scripts" / "bench_similar.py"
    spec = importlib.util.spec_from_file_location("bench_similar", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def clustered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], Any]:
    """24 000 frames of 64-D clustered features in 3 stations, indexed."""
    bench = _bench()
    cube = tmp_path_factory.mktemp("index") / "cube.zarr"
    codes = bench.make_cube(cube, ROWS, STATIONS, DIM, 1024)
    build_index(cube, "aurora_fm")
    return cube, codes, bench


def _queries(bench: Any, codes: list[str], n: int, seed: int = 5) -> list[tuple[str, Any]]:
    rng = np.random.default_rng(seed)
    per = ROWS // STATIONS
    return [
        (codes[int(rng.integers(len(codes)))], bench.START + bench.CADENCE * int(rng.integers(per)))
        for _ in range(n)
    ]


def _pairs(table: pd.DataFrame) -> set[tuple[str, int]]:
    return set(zip(table["station"], table["row"], strict=True))


def test_recall_at_10_is_at_least_0_95(clustered: tuple[Path, list[str], Any]) -> None:
    cube, codes, bench = clustered
    recalls = []
    for code, when in _queries(bench, codes, 20):
        exact = similar(cube, station=code, time=when, k=10, use_index=False)
        got = similar(cube, station=code, time=when, k=10, use_index=True)
        assert got.attrs["index"] and not exact.attrs["index"]
        recalls.append(len(_pairs(exact) & _pairs(got)) / len(exact))
        # every hit is a true hit, scored exactly: a hit the exact search also has
        # has its exact score
        both = exact.merge(got, on=["station", "row"], suffixes=("_e", "_i"))
        np.testing.assert_allclose(both["score_e"], both["score_i"], atol=1e-6, rtol=0)
    assert np.mean(recalls) >= 0.95, recalls


def test_with_every_list_probed_the_index_equals_the_exact_search(
    clustered: tuple[Path, list[str], Any], tmp_path: Path
) -> None:
    cube, codes, bench = clustered
    # a flat index sees every frame: the re-ranked answer is the exact one, in order
    build_index(cube, "aurora_fm", factory="Flat", overwrite=True)
    try:
        for code, when in _queries(bench, codes, 4, seed=9):
            for x in (0.0, 30.0, 600.0):
                exact = similar(cube, station=code, time=when, k=15, exclude_seconds=x)
                got = similar(
                    cube, station=code, time=when, k=15, exclude_seconds=x, use_index=True
                )
                pd.testing.assert_frame_equal(
                    got.drop(columns="score"), exact.drop(columns="score")
                )
                np.testing.assert_allclose(got["score"], exact["score"], atol=1e-6, rtol=0)
    finally:
        build_index(cube, "aurora_fm", overwrite=True)


@pytest.mark.parametrize(
    "filters",
    [
        {"stations": ["s01"]},
        {"start": "2011-01-01T01:00:00", "end": "2011-01-01T01:10:00"},
        {"stations": ["s00", "s02"], "start": "2011-01-01T05:00:00"},
    ],
)
def test_filters_never_return_fewer_hits_than_exact(
    clustered: tuple[Path, list[str], Any], filters: dict[str, Any]
) -> None:
    cube, codes, bench = clustered
    recalls = []
    for code, when in _queries(bench, codes, 5, seed=11):
        for k in (10, 60):
            exact = similar(cube, station=code, time=when, k=k, use_index=False, **filters)
            got = similar(cube, station=code, time=when, k=k, use_index=True, **filters)
            assert len(got) == len(exact)  # escalated, or searched exactly, until k are found
            recalls.append(len(_pairs(exact) & _pairs(got)) / max(1, len(exact)))
    assert np.mean(recalls) >= 0.95, recalls


def test_auto_uses_the_index_only_for_many_frames(
    clustered: tuple[Path, list[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    cube, codes, bench = clustered
    (code, when), *_ = _queries(bench, codes, 1)
    assert not similar(cube, station=code, time=when, k=5).attrs["index"]  # 24 000 frames
    monkeypatch.setattr("oathcube.similarity.AUTO_ROWS", 1000)
    assert similar(cube, station=code, time=when, k=5).attrs["index"]


@pytest.fixture(scope="module")
def computed(tmp_path_factory: pytest.TempPathFactory, cube_factory: Any) -> Path:
    """A station of 40 frames with handcrafted features, classified."""
    base = tmp_path_factory.mktemp("stale")
    raw = base / "raw"
    raw.mkdir()
    write_cdf(raw, "fsmi", "2011-01-06T05:00:00", 40, size=32, seed=1)
    cube = cube_factory.copy(base / "cube.zarr")
    ingest([raw], cube, preparation=RawPreparation(out_size=32), chunk_frames=8)
    compute_features(cube, "handcrafted", station="fsmi", scheduler="synchronous")
    compute_features(cube, "handcrafted", scheduler="synchronous")  # the labelled images
    classify(cube, train(cube, "handcrafted"), scheduler="synchronous")
    return cube


QUERY: dict[str, Any] = {
    "station": "fsmi",
    "time": "2011-01-06T05:00:30",
    "k": 5,
    "exclude_seconds": 0.0,
}


def test_a_stale_index_is_refused_or_ignored_with_a_warning(
    computed: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    import shutil

    monkeypatch.setattr("oathcube.similarity.AUTO_ROWS", 0)  # 40 frames: index them

    cube = Path(shutil.copytree(computed, tmp_path / "cube.zarr"))
    build_index(cube, "handcrafted")
    exact = similar(cube, **QUERY, use_index=False)
    assert similar(cube, **QUERY, use_index=True).attrs["index"]
    compute_features(cube, "handcrafted", station="fsmi", overwrite=True, scheduler="synchronous")
    with caplog.at_level(logging.WARNING, logger="oathcube.similarity"):
        table = similar(cube, **QUERY, use_index=None)
    assert "stale" in caplog.text and "recomputed" in caplog.text
    assert not table.attrs["index"]
    pd.testing.assert_frame_equal(table, exact)
    with pytest.raises(OptionError, match="stale: features_handcrafted of fsmi were recomputed"):
        similar(cube, **QUERY, use_index=True)
    # frames appended since the build: stale too
    build_index(cube, "handcrafted", overwrite=True)
    raw = tmp_path / "more"
    raw.mkdir()
    write_cdf(raw, "fsmi", "2011-01-06T06:00:00", 10, size=32, seed=2)
    ingest([raw], cube, preparation=RawPreparation(out_size=32), chunk_frames=8)
    with pytest.raises(OptionError, match="fsmi has 50 rows, the index 40"):
        similar(cube, **QUERY, use_index=True)


def test_a_class_filter_equals_the_exact_search(computed: Path, tmp_path: Path) -> None:
    import shutil

    cube = Path(shutil.copytree(computed, tmp_path / "cube.zarr"))
    build_index(cube, "handcrafted")
    for klass in similar(cube, **QUERY)["class"].unique():
        exact = similar(cube, **{**QUERY, "k": 40}, klass=klass, use_index=False)
        got = similar(cube, **{**QUERY, "k": 40}, klass=klass, use_index=True)
        assert got.attrs["index"] and set(got["class"]) == {klass}
        pd.testing.assert_frame_equal(got.drop(columns="score"), exact.drop(columns="score"))
        np.testing.assert_allclose(got["score"], exact["score"], atol=1e-6, rtol=0)


def test_a_killed_index_build_leaves_no_index_and_a_rerun_builds_it(
    computed: Path, tmp_path: Path
) -> None:
    import shutil

    cube = Path(shutil.copytree(computed, tmp_path / "cube.zarr"))
    args = ["index", str(cube), "--features", "handcrafted"]
    assert run_oathcube(args, kill_at="index.arrays_written") == -signal.SIGKILL
    assert list_indexes(cube) == []  # written but never marked complete: not listed
    with pytest.raises(OptionError, match="no index of features_handcrafted"):
        similar(cube, **QUERY, use_index=True)
    assert not similar(cube, **QUERY).attrs["index"]
    assert run_oathcube(args) == 0
    assert list_indexes(cube) == ["handcrafted"]
    assert similar(cube, **QUERY, use_index=True).attrs["index"]
    # a killed rebuild leaves the old index or none, never a partial one
    assert run_oathcube([*args, "--overwrite"], kill_at="index.arrays_written") == -signal.SIGKILL
    assert list_indexes(cube) in ([], ["handcrafted"])


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["index", "{cube}", "--features", "handcrafted"], "an index of handcrafted exists"),
        (["index", "{cube}", "--features", "aurora_fm"], "no station group has features_aurora_fm"),
        (["index", "{cube}", "--features", "handcrafted", "--overwrite", "--nprobe", "0"], "0"),
        (
            ["index", "{cube}", "--features", "handcrafted", "--overwrite", "--factory", "Nope"],
            "faiss factory 'Nope'",
        ),
        (
            ["similar", "{cube}", "--station", "fsmi", "--time", "2011-01-06T05:00:30", "--index",
             "--features", "inception_v4"],
            "features_inception_v4",
        ),
    ],
)  # fmt: skip
def test_bad_values_are_one_line(
    computed: Path, tmp_path: Path, runner: Any, args: list[str], said: str
) -> None:
    import shutil

    cube = Path(shutil.copytree(computed, tmp_path / "cube.zarr"))
    build_index(cube, "handcrafted")
    out = runner.invoke(app, [a.format(cube=cube) if a == "{cube}" else a for a in args])
    assert out.exit_code == 1, out.output
    lines = [line for line in out.output.splitlines() if line.startswith("oathcube: error:")]
    assert len(lines) == 1, out.output
    assert said in lines[0], out.output
    assert "Traceback" not in out.output


def test_index_and_similar_from_the_command_line(
    computed: Path, tmp_path: Path, runner: Any
) -> None:
    import shutil

    cube = Path(shutil.copytree(computed, tmp_path / "cube.zarr"))
    query = ["similar", str(cube), "--station", "fsmi", "--time", "2011-01-06T05:00:30"]
    out = runner.invoke(app, [*query, "--index"])
    assert out.exit_code == 1 and "no index of features_handcrafted" in out.output
    out = runner.invoke(app, ["index", str(cube), "--features", "handcrafted"])
    assert out.exit_code == 0, out.output
    assert "indexes/handcrafted" in out.output
    out = runner.invoke(app, [*query, "--index"])
    assert out.exit_code == 0, out.output
    assert "re-scored exactly" in out.output
    out = runner.invoke(app, [*query, "--exact"])
    assert out.exit_code == 0 and "(exact)" in out.output
