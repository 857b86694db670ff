"""--precision bf16 is recorded only where bf16 runs (issue 20, case 7, first half).

OpenVINO's CPU plugin runs fp32 where the CPU has no native bfloat16, and the
features used to be labelled "bf16" all the same.  Now bf16 is refused there (one
line naming the flags and what to pass), and recorded where the CPU has them.  The
CPU capability probe (``/proc/cpuinfo``'s flags) is faked, so that these tests say
the same on any CPU: Intel with AMX, AMD Zen 4 with avx512_bf16, Zen 3 with AVX2 only.
The network itself is stubbed: what is checked is what the cube records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

import oathcube.features as registry
import oathcube.features.engines as engines
import oathcube.features.inception_v4 as inception
from oathcube import build
from oathcube.cli import app
from oathcube.errors import FeatureError
from oathcube.features.engines import check_inference_precision, engine_installed

ZEN3 = {"fpu", "sse4_2", "avx", "avx2", "fma"}  # no bf16 at all
ZEN4 = ZEN3 | {"avx512f", "avx512_bf16"}
SAPPHIRE_RAPIDS = ZEN3 | {"avx512f", "amx_tile", "amx_bf16"}

needs_openvino = pytest.mark.skipif(not engine_installed("openvino"), reason="no openvino")


class StubNetwork:
    """Stands in for a built Inception-v4 extractor: constant features, options kept."""

    dim = "logit"
    n_features = 1001
    built: list[Any] = []

    def __init__(self, settings: Any) -> None:
        type(self).built.append(settings)

    def __call__(self, pixels: np.ndarray, rot_angle: np.ndarray) -> np.ndarray:
        return np.ones((len(pixels), self.n_features), np.float32)


@pytest.fixture
def stub_network(monkeypatch: pytest.MonkeyPatch) -> type[StubNetwork]:
    StubNetwork.built = []

    def get_extractor(name: str, settings: Any = None, **kw: Any) -> StubNetwork:
        assert name == "inception_v4"
        return StubNetwork(settings)

    monkeypatch.setattr(registry, "get_extractor", get_extractor)
    return StubNetwork


def fake_cpu(monkeypatch: pytest.MonkeyPatch, flags: set[str]) -> None:
    # The bf16 rule of every network reads the flags where it lives, in engines.
    monkeypatch.setattr(engines, "cpu_flags", lambda: set(flags))


@pytest.fixture
def cube(archive: Path, tmp_path: Path) -> str:
    return build(archive, tmp_path / "c.zarr", progress=False)


FEATURES = ["--extractor", "inception_v4", "--random-weights", "--precision", "bf16"]


@needs_openvino
def test_bf16_without_native_bf16_is_refused_and_nothing_is_written(
    cube: str, runner: CliRunner, monkeypatch: pytest.MonkeyPatch, stub_network: Any
) -> None:
    fake_cpu(monkeypatch, ZEN3)
    out = runner.invoke(app, ["features", cube, *FEATURES, "--engine", "openvino"])
    assert out.exit_code == 1
    assert out.output.count("\n") == 1 and "Traceback" not in out.output
    line = out.output
    # The Python parameter is named as the command's flag.
    assert line.startswith("oathcube: error: --precision: precision bf16 needs a CPU with")
    assert "avx512_bf16" in line and "amx_bf16" in line and "--precision fp32" in line
    assert "features_inception_v4" not in zarr.open_group(cube, mode="r")
    assert stub_network.built == []  # no network was built, let alone run
    # build checks it before the cube exists.
    target = Path(cube).parent / "new.zarr"
    archive = Path(cube).parent / "oath"
    out = runner.invoke(
        app,
        ["build", str(archive), "-o", str(target), "--features", "inception_v4",
         "--random-weights", "--precision", "bf16"],
    )  # fmt: skip
    assert out.exit_code == 1 and "avx512_bf16" in out.output and not target.exists()


@needs_openvino
@pytest.mark.parametrize("flags", [ZEN4, SAPPHIRE_RAPIDS], ids=["avx512_bf16", "amx_bf16"])
def test_bf16_with_native_bf16_is_run_and_recorded_as_bf16(
    cube: str,
    runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
    stub_network: Any,
    flags: set[str],
) -> None:
    fake_cpu(monkeypatch, flags)
    out = runner.invoke(app, ["features", cube, *FEATURES, "--engine", "openvino"])
    assert out.exit_code == 0, out.output
    stored = zarr.open_array(cube, path="features_inception_v4", mode="r")
    assert stored.attrs["precision"] == "bf16" and stored.attrs["engine"] == "openvino"
    assert np.isfinite(stored[...]).all()
    assert {o.precision for o in stub_network.built} == {"bf16"}


@pytest.mark.skipif(not engine_installed("tensorflow"), reason="no tensorflow")
def test_tensorflow_emulates_bf16_so_its_label_is_true(
    cube: str, runner: CliRunner, monkeypatch: pytest.MonkeyPatch, stub_network: Any
) -> None:
    fake_cpu(monkeypatch, ZEN3)
    with pytest.warns(UserWarning, match="TensorFlow emulates bfloat16"):
        out = runner.invoke(app, ["features", cube, *FEATURES, "--engine", "tensorflow"])
    assert out.exit_code == 0, out.output
    stored = zarr.open_array(cube, path="features_inception_v4", mode="r")
    assert stored.attrs["precision"] == "bf16" and stored.attrs["engine"] == "tensorflow"


def test_the_probe_reads_the_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    for flags, native in ((ZEN3, False), (ZEN4, True), (SAPPHIRE_RAPIDS, True), (set(), False)):
        fake_cpu(monkeypatch, flags)
        assert inception.bf16_native() is native


def test_a_compiled_precision_other_than_the_label_is_refused() -> None:
    """Where the network runs (a dask worker on another CPU than the driver's)."""
    check_inference_precision("bf16", "bf16")
    check_inference_precision("fp32", "f32")
    check_inference_precision("int8", "f32")  # int8 is in the model, not the hint
    with pytest.raises(FeatureError, match="compiled the network for f32") as err:
        check_inference_precision("bf16", "f32")
    assert "\n" not in str(err.value) and "`precision` fp32" in str(err.value)
    with pytest.raises(FeatureError, match="precision fp32"):
        check_inference_precision("fp32", "bf16")


@needs_openvino
def test_a_resume_in_another_precision_is_refused(
    cube: str, runner: CliRunner, monkeypatch: pytest.MonkeyPatch, stub_network: Any
) -> None:
    """One variable records one precision: no bf16 rows under an fp32 label."""
    fake_cpu(monkeypatch, ZEN4)
    fp32 = ["features", cube, "--extractor", "inception_v4", "--random-weights"]
    assert runner.invoke(app, fp32).exit_code == 0
    # A complete variable: another precision has nothing to add, and the label stays true.
    assert runner.invoke(app, [*fp32, "--precision", "bf16"]).exit_code == 0
    array = zarr.open_array(cube, path="features_inception_v4", mode="r+")
    assert array.attrs["precision"] == "fp32"
    array[40:] = np.nan  # as a killed run leaves it
    before = array[...]
    out = runner.invoke(app, [*fp32, "--precision", "bf16"])
    assert out.exit_code == 1
    assert out.output.count("\n") == 1
    assert "holds rows computed in precision fp32" in out.output
    assert "--precision 'fp32' to resume" in out.output
    np.testing.assert_array_equal(array[...], before)
    assert runner.invoke(app, [*fp32, "--precision", "bf16", "--overwrite"]).exit_code == 0
    array = zarr.open_array(cube, path="features_inception_v4", mode="r")
    assert array.attrs["precision"] == "bf16" and np.isfinite(array[...]).all()
