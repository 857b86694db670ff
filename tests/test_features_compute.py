"""Features over a cube with dask: every scheduler gives the same array; runs resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import oathcube.features as registry
from oathcube import compute_features, evaluate
from oathcube.cli import app
from oathcube.errors import FeatureError
from oathcube.features import FEATURE_TOLERANCE, InceptionV4Settings


class CountingExtractor:
    """A cheap, deterministic extractor that can be told to fail on its n-th call."""

    name = "counting"
    dim = "feature"
    n_features = 3
    calls = 0
    fail_on: int | None = None

    def __init__(self, **options: object) -> None:
        pass

    def feature_labels(self) -> list[str]:
        return ["mean", "max", "angle"]

    def attrs(self) -> dict[str, object]:
        return {"recipe": "counting-1"}

    def __call__(self, pixels: np.ndarray, rot_angle: np.ndarray) -> np.ndarray:
        type(self).calls += 1
        if type(self).calls == type(self).fail_on:
            raise KeyboardInterrupt
        flat = pixels.reshape(len(pixels), -1).astype(np.float32)
        return np.stack([flat.mean(1), flat.max(1), rot_angle.astype(np.float32)], axis=1)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> type[CountingExtractor]:
    monkeypatch.setitem(registry.REGISTRY, "counting", f"{__name__}:CountingExtractor")
    monkeypatch.setattr(registry, "_CACHE", {})
    CountingExtractor.calls, CountingExtractor.fail_on = 0, None
    return CountingExtractor


@pytest.fixture
def cube(make_cube) -> Path:
    """The synthetic archive's cube in chunks of 16 images (six chunks, the last short)."""
    return make_cube(chunk_images=16)


def test_interrupted_run_resumes_to_the_same_array(cube: Path, counting) -> None:
    counting.fail_on = 3
    with pytest.raises(KeyboardInterrupt):
        compute_features(cube, "counting", scheduler="synchronous", progress=False)
    partial = xr.open_zarr(cube, consolidated=False).features_counting.values
    per_chunk = [np.isfinite(partial[i : i + 16]) for i in range(0, 90, 16)]
    assert sorted(int(c.all()) for c in per_chunk) == [0, 0, 0, 0, 1, 1]  # two chunks kept
    assert all(c.all() or not c.any() for c in per_chunk)  # and none half-written
    counting.fail_on, counting.calls = None, 0
    compute_features(cube, "counting", scheduler="synchronous", progress=False)
    assert counting.calls == 4  # only the 4 missing chunks of 6 were computed
    ds = xr.open_zarr(cube, consolidated=False)
    pixels = ds.pixels.values.reshape(90, -1).astype(np.float32)
    np.testing.assert_allclose(ds.features_counting.values[:, 0], pixels.mean(1), rtol=1e-6)
    np.testing.assert_array_equal(ds.features_counting.values[:, 2], ds.rot_angle.values)
    assert list(ds.feature.values) == ["mean", "max", "angle"]


def test_other_settings_are_refused(cube: Path, counting, monkeypatch) -> None:
    compute_features(cube, "counting", scheduler="synchronous", progress=False)
    monkeypatch.setattr(CountingExtractor, "attrs", lambda self: {"recipe": "counting-2"})
    with pytest.raises(FeatureError, match="recipe"):
        compute_features(cube, "counting", scheduler="synchronous", progress=False)
    compute_features(cube, "counting", scheduler="synchronous", progress=False, overwrite=True)


@pytest.mark.slow
def test_handcrafted_equal_on_threads_processes_and_distributed(make_cube) -> None:
    from distributed import LocalCluster

    results = {}
    for scheduler in ("threads", "processes", "cluster"):
        cube = make_cube(chunk_images=16, name=f"{scheduler}.zarr")
        if scheduler == "cluster":
            with LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster:
                compute_features(
                    cube, "handcrafted", scheduler=cluster.scheduler_address, progress=False
                )
        else:
            compute_features(cube, "handcrafted", scheduler=scheduler, progress=False)
        results[scheduler] = xr.open_zarr(cube, consolidated=False).features_handcrafted.values
    assert np.isfinite(results["threads"]).all()
    # Across schedulers the promise is a tolerance, not bits (see FEATURE_TOLERANCE).
    atol = FEATURE_TOLERANCE * float(np.abs(results["threads"]).max())
    np.testing.assert_allclose(results["processes"], results["threads"], rtol=0, atol=atol)
    np.testing.assert_allclose(results["cluster"], results["threads"], rtol=0, atol=atol)


@pytest.mark.slow
def test_build_with_handcrafted_features_then_evaluate(
    archive: Path, tmp_path: Path, runner
) -> None:
    cube = tmp_path / "hc.zarr"
    out = runner.invoke(app, ["build", str(archive), "-o", str(cube), "--features", "handcrafted"])
    assert out.exit_code == 0, out.output
    ds = xr.open_zarr(cube)
    assert ds.features_handcrafted.dims == ("image", "feature")
    result = evaluate(str(cube), features="handcrafted")
    assert 0.0 < result.accuracy_mean <= 1.0
    assert result.confusion_matrix.sum() == 90 - round(0.7 * 90)


@pytest.mark.slow
def test_inception_random_weights_threads_equal_distributed(make_cube, runner) -> None:
    from distributed import LocalCluster

    rows = (0, 16)  # two chunks of 8 are enough to compare schedulers
    threaded = make_cube(chunk_images=8, name="t.zarr")
    out = runner.invoke(
        app,
        [
            "features",
            str(threaded),
            "--extractor",
            "inception_v4",
            "--random-weights",
            "--batch-size",
            "8",
        ],
    )
    assert out.exit_code == 0, out.output
    a = xr.open_zarr(threaded).features_inception_v4
    assert a.dims == ("image", "logit") and a.shape == (90, 1001) and a.dtype == np.float32
    assert a.attrs["random_weights"] == 1 and "RANDOM" in a.attrs["warning"]
    assert a.attrs["layer"] == "Logits" and a.attrs["precision"] == "fp32"
    clustered = make_cube(chunk_images=8, name="c.zarr")
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        compute_features(
            clustered,
            InceptionV4Settings(random_weights=True, batch_size=8),
            scheduler=cluster.scheduler_address,
            rows=rows,
            progress=False,
        )
    b = xr.open_zarr(clustered, consolidated=False).features_inception_v4.values
    # 1-thread workers sum in another order than the threaded run's 2-thread pool: the
    # README promises agreement within FEATURE_TOLERANCE of the largest value, not bits.
    scale = float(np.abs(a.values[:16]).max())
    np.testing.assert_allclose(b[:16], a.values[:16], rtol=0, atol=FEATURE_TOLERANCE * scale)
    assert np.isnan(b[16:]).all()  # rows outside the range were left for later
    # The same settings on the same machine and scheduler give the same bits.
    again = make_cube(chunk_images=8, name="again.zarr")
    compute_features(
        again, InceptionV4Settings(random_weights=True, batch_size=8), rows=rows, progress=False
    )
    c = xr.open_zarr(again, consolidated=False).features_inception_v4.values
    np.testing.assert_array_equal(c[:16], a.values[:16])


def test_inception_without_checkpoint_says_where_it_comes_from(
    make_cube, runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OATHCUBE_INCEPTION_V4_CHECKPOINT", raising=False)
    cube = make_cube(chunk_images=None, name="c.zarr")
    out = runner.invoke(app, ["features", str(cube), "--extractor", "inception_v4"])
    assert out.exit_code == 1
    assert "inception_v4_2016_09_09.tar.gz" in out.output and "--checkpoint" in out.output
    assert "features_inception_v4" not in xr.open_zarr(cube)
