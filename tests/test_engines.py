"""Every installed engine runs the network that equals TF-slim's; engines are a speed setting.

The equality proof is the one of ``test_inception_v4.py``, on the same reference
(``../shared/reference``: a random checkpoint under the released names and what the
original slim graph computed from it), repeated for every engine installed:
``Logits`` and ``PreLogitsFlatten`` within 1e-4.  ``pytest -s`` prints the
maximum differences.  int8 and bf16 are checked for agreement (cosine), not
equality.  Frames and cubes here are synthetic.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from oathcube import Cube, build
from oathcube.errors import FeatureError
from oathcube.features import (
    FEATURE_TOLERANCE,
    IGNORED_SETTINGS,
    InceptionV4Settings,
    feature_spec,
    spec_from_attrs,
    value_settings,
)
from oathcube.features import engines as engines_module
from oathcube.features.compute import read_calibration
from oathcube.features.engines import (
    DEFAULT_ENGINE,
    ENGINES,
    calibration_rows,
    engine_installed,
)
from oathcube.features.inception_v4 import bf16_native

#: What the reference README promises for a correct float32 network.
TOLERANCE = {"PreLogitsFlatten": 1e-4, "Logits": 1e-4}

INSTALLED = [
    pytest.param(
        e,
        marks=pytest.mark.skipif(
            not engine_installed(e), reason=f"engine {e} is not installed ({e} package missing)"
        ),
    )
    for e in ENGINES
]
needs_openvino = pytest.mark.skipif(
    not engine_installed("openvino"), reason="openvino is not installed"
)


@pytest.fixture(scope="session")
def reference(shared: Path) -> dict[str, np.ndarray]:
    path = shared / "reference" / "slim_reference_outputs.npz"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def values(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """The variables of the reference random checkpoint (written once, ~5 s)."""
    import tensorflow as tf

    prefix = tmp_path_factory.mktemp("ckpt") / "model.ckpt"
    subprocess.run(
        [sys.executable, str(shared / "reference" / "make_random_checkpoint.py"), str(prefix)],
        check=True,
        capture_output=True,
    )
    reader = tf.train.load_checkpoint(str(prefix))
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}


@pytest.fixture(scope="module")
def net(values: dict[str, np.ndarray]) -> Any:
    """The network with both endpoints, loaded from the reference random checkpoint."""
    from oathcube.features.inception_net import build_inception_v4

    network = build_inception_v4(list(TOLERANCE))
    network.load(values)
    return network


@pytest.fixture(scope="module")
def converted(net: Any) -> Any:
    """The network converted to OpenVINO once for the module (a few seconds)."""
    if not engine_installed("openvino"):
        pytest.skip("openvino is not installed")
    import openvino as ov

    return ov.convert_model(net.function().get_concrete_function())


def _engine(name: str, net: Any, layer: str, request: pytest.FixtureRequest, **kw: Any) -> Any:
    from oathcube.features.engines import OpenVINOEngine, TensorFlowEngine

    if name == "tensorflow":
        return TensorFlowEngine(net, layer)
    return OpenVINOEngine(request.getfixturevalue("converted"), layer, **kw)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.slow
@pytest.mark.parametrize("engine", INSTALLED)
def test_engine_matches_slim(
    engine: str, net: Any, reference: dict[str, np.ndarray], request: pytest.FixtureRequest
) -> None:
    for layer, tol in TOLERANCE.items():
        runner = _engine(engine, net, layer, request)
        assert runner.name == engine and runner.version
        out = np.empty_like(reference[layer])
        # Two batches of one: the async engine splits and reassembles them in order.
        runner.infer([reference["input"][:1], reference["input"][1:]], out)
        diff = float(np.abs(out - reference[layer]).max())
        print(
            f"\n  {engine:<10s} {layer:<16s} max |diff| = {diff:.3g}  (tolerance {tol:g})", end=""
        )
        assert diff <= tol, layer


@pytest.mark.slow
@needs_openvino
def test_openvino_agrees_with_tensorflow_within_the_promise(
    net: Any, reference: dict[str, np.ndarray], request: pytest.FixtureRequest
) -> None:
    """Switching engines changes features no more than FEATURE_TOLERANCE promises."""
    images = np.concatenate([reference["input"]] * 3)  # 6 images: more than one request each
    tf_out = _engine("tensorflow", net, "Logits", request).run(images)
    ov = _engine("openvino", net, "Logits", request, threads=2)
    assert ov.threads == 2 and 1 <= ov.jobs <= 2  # never more requests than threads
    ov_out = ov.run(images)
    scale = float(np.abs(tf_out).max())
    np.testing.assert_allclose(ov_out, tf_out, rtol=0, atol=FEATURE_TOLERANCE * scale)
    # The same engine and settings twice: the same bits.
    np.testing.assert_array_equal(ov.run(images), ov_out)
    assert ov.run(images[:0]).shape == (0, 1001)


@pytest.mark.slow
@needs_openvino
def test_openvino_bf16_agrees_with_fp32(converted: Any, reference: dict[str, np.ndarray]) -> None:
    from oathcube.features.engines import OpenVINOEngine

    if not bf16_native():
        pytest.skip("no native bf16 on this CPU: OpenVINO would run fp32")
    engine = OpenVINOEngine(converted, "Logits", "bf16")
    assert engine.inference_precision == "bf16"
    cosine = _cosine(engine.run(reference["input"]), reference["Logits"])
    print(f"\n  openvino bf16: per-image cosine to slim fp32 Logits {cosine.round(6)}", end="")
    assert (cosine >= 0.999).all()


@pytest.mark.slow
@needs_openvino
def test_openvino_int8_agrees_with_fp32(
    values: dict[str, np.ndarray], reference: dict[str, np.ndarray]
) -> None:
    """NNCF int8 through the engine, on the network up to Mixed_5b (seconds, not a minute).

    The whole network's int8 figures (Logits cosine, ridge accuracy) are measured by
    scripts/bench_int8.py: NNCF's bias correction of all 150 layers takes a minute here.
    """
    pytest.importorskip("nncf", reason="nncf is not installed")
    from oathcube.features.engines import OpenVINOEngine
    from oathcube.features.inception_net import build_inception_v4

    stem = build_inception_v4(["Mixed_5b"])
    stem.load(values)
    engine = OpenVINOEngine(stem.function(), "Mixed_5b", "int8", calibration=reference["input"])
    got = engine.run(reference["input"]).reshape(2, -1)
    cosine = _cosine(got, reference["Mixed_5b"].reshape(2, -1))
    print(f"\n  openvino int8: per-image cosine to slim fp32 Mixed_5b {cosine.round(6)}", end="")
    assert (cosine >= 0.999).all()


def test_unknown_missing_and_unfit_engines_are_one_line_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(FeatureError, match="unknown engine 'onnx'") as err:
        feature_spec("inception_v4", random_weights=True, engine="onnx")
    assert "\n" not in str(err.value)
    with pytest.raises(FeatureError, match="`engine` openvino for int8"):
        feature_spec("inception_v4", random_weights=True, engine="tensorflow", precision="int8")
    # int8 is described without frames: the computation reads them from its cube.
    if engine_installed("openvino") and engine_installed("nncf"):
        spec = feature_spec("inception_v4", random_weights=True, precision="int8")
        assert spec.needs_calibration and "int8_calibration" not in spec.attrs
    monkeypatch.setattr(engines_module, "engine_installed", lambda name: False)
    with pytest.raises(FeatureError) as err:
        feature_spec("inception_v4", random_weights=True, engine="openvino")
    text = str(err.value)
    assert "engine openvino is not installed" in text and "pip install openvino" in text
    assert "\n" not in text


def test_engine_is_recorded_but_is_a_speed_setting() -> None:
    specs = {
        e: feature_spec("inception_v4", random_weights=True, engine=e)
        for e in ENGINES
        if engine_installed(e)
    }
    assert feature_spec("inception_v4", random_weights=True).attrs["engine"] == DEFAULT_ENGINE
    for name, spec in specs.items():
        assert spec.attrs["engine"] == name and spec.attrs["engine_version"]
        assert spec.settings.resolved_engine == name
        # Features of one engine resume, and feed models of, any other.
        for other in specs.values():
            assert spec.differences(other.attrs) == []
        # A model's record does not pin the engine: the local choice (or default) holds.
        model_record = value_settings(json.loads(json.dumps(spec.attrs)))
        rebuilt = spec_from_attrs("inception_v4", model_record)
        assert rebuilt.settings.resolved_engine == DEFAULT_ENGINE
        mine = InceptionV4Settings(random_weights=True, engine="tensorflow")
        local = spec_from_attrs("inception_v4", model_record, mine)
        assert local.settings.resolved_engine == "tensorflow"
    assert {"engine", "engine_version", "int8_calibration"} <= IGNORED_SETTINGS


def test_a_model_accepts_features_of_another_engine() -> None:
    """classify compares a model's feature settings with the features' attributes."""
    from oathcube.features import value_settings
    from oathcube.model import check_feature_settings

    installed = [e for e in ENGINES if engine_installed(e)]
    for trained_on in installed:
        settings = value_settings(
            feature_spec("inception_v4", random_weights=True, engine=trained_on).attrs
        )
        assert "engine" not in settings and "engine_version" not in settings
        model = xr.Dataset(attrs={"feature_settings": json.dumps(settings)})
        for now in installed:
            attrs = feature_spec("inception_v4", random_weights=True, engine=now).attrs
            check_feature_settings(model, attrs, "here")  # no ModelError
            attrs["engine_version"] = "0.0"
            check_feature_settings(model, attrs, "here")


def test_calibration_rows_spread_evenly() -> None:
    assert calibration_rows(5, 128) == [0, 1, 2, 3, 4]
    rows = calibration_rows(1000, 4)
    assert rows == [0, 333, 666, 999]
    assert calibration_rows(0) == []


@needs_openvino
def test_int8_calibration_set_is_read_from_the_cube_and_recorded(
    archive: Path, tmp_path: Path, runner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("nncf", reason="nncf is not installed")
    cube = build(archive, tmp_path / "c.zarr", progress=False)
    opened = Cube.open(cube)
    calibration = read_calibration(opened, None, 8)
    record = calibration.record
    labelled = xr.open_zarr(cube)
    assert record["rows"] == calibration_rows(90, 8) and record["group"] == ""
    np.testing.assert_array_equal(calibration.pixels, labelled.pixels.values[record["rows"]])
    np.testing.assert_array_equal(calibration.rot_angle, labelled.rot_angle.values[record["rows"]])
    again = read_calibration(opened, "", 8).record
    assert again["sha256"] == record["sha256"] and len(record["sha256"]) == 64
    with pytest.raises(FeatureError, match="no such group"):
        read_calibration(opened, "stations/zzzz", 8)

    # The feature computation, which holds the cube, reads the frames once and hands
    # them to the extractor with the spec: captured here before any network is built.
    import oathcube.features.compute as compute
    from oathcube.cli import app

    seen: list[Any] = []

    def fake(cube: Any, spec: Any, *args: Any) -> str:
        seen.append(spec)
        return spec.variable

    monkeypatch.setattr(compute, "_compute", fake)
    args = ["features", cube, "--extractor", "inception_v4", "--random-weights"]
    out = runner.invoke(app, [*args, "--precision", "int8", "--engine", "openvino"])
    assert out.exit_code == 0, out.output
    settings = InceptionV4Settings(random_weights=True, precision="int8", calibration_size=8)
    compute.compute_features(cube, settings, progress=False)
    for spec, rows in zip(seen, (list(range(90)), calibration_rows(90, 8)), strict=True):
        calib = spec.attrs["int8_calibration"]
        assert calib["rows"] == rows and calib["cube"] == opened.location
        assert spec.calibration.record == calib and len(spec.calibration.pixels) == len(rows)
        assert spec.attrs["precision"] == "int8" and spec.attrs["engine"] == "openvino"
        json.dumps(spec.attrs)
    out = runner.invoke(app, [*args, "--precision", "int8", "--engine", "tensorflow"])
    assert out.exit_code == 1
    assert out.output.count("\n") == 1 and "--engine openvino for int8" in out.output


def test_every_command_takes_engine_and_checks_it_before_writing(
    archive: Path, tmp_path: Path, runner: Any
) -> None:
    from oathcube.cli import app

    target = tmp_path / "new.zarr"
    out = runner.invoke(
        app,
        ["build", str(archive), "-o", str(target), "--features", "inception_v4",
         "--random-weights", "--engine", "onnx"],
    )  # fmt: skip
    assert out.exit_code == 1 and "unknown engine 'onnx'" in out.output
    assert out.output.count("\n") == 1 and not target.exists()
    out = runner.invoke(
        app,
        ["build", str(archive), "-o", str(target), "--features", "inception_v4",
         "--random-weights", "--precision", "int8", "--engine", "tensorflow"],
    )  # fmt: skip
    assert out.exit_code == 1 and "--engine openvino for int8" in out.output
    assert not target.exists()
    cube = build(archive, tmp_path / "c.zarr", progress=False)
    out = runner.invoke(
        app,
        ["features", cube, "--extractor", "inception_v4", "--random-weights", "--engine", "onnx"],
    )
    assert out.exit_code == 1 and "unknown engine 'onnx'" in out.output
    assert "features_inception_v4" not in xr.open_zarr(cube)


def test_openvino_keeps_its_own_weights() -> None:
    """The compiled network must not read TensorFlow's variables, which the extractor frees.

    With OpenVINO's default ``share_weights=True`` it did: once their memory was reused
    (an int8 network built in the same process), Inception-v4 fp32 Logits came out as 1e37.
    """
    if not engine_installed("openvino"):
        pytest.skip("openvino is not installed")
    from oathcube.features.engines import OpenVINOEngine
    from oathcube.features.inception_net import build_inception_v4, random_variables

    net = build_inception_v4(["Logits"])
    net.load(random_variables(net.variables))
    engine = OpenVINOEngine(net.function(), "Logits")
    images = np.random.default_rng(0).uniform(-1, 1, (2, 299, 299, 3)).astype(np.float32)
    before = engine.run(images)
    for variable in net.model.weights:  # what reuse of the freed memory does
        variable.assign(np.full(variable.shape, 1e30, np.float32))
    np.testing.assert_array_equal(engine.run(images), before)
