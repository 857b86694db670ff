"""Inception-v4 features equal TF-slim's: preprocessing, checkpoint loading, every endpoint.

The proof runs on ``../shared/reference``: ``make_random_checkpoint.py`` writes a
checkpoint under the released variable names, and ``slim_reference_outputs.npz``
holds what the original slim graph computed from it.  ``pytest -s`` prints the
maximum differences.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from oathcube.errors import CheckpointError, FeatureError
from oathcube.features import FeatureExtractor, get_extractor
from oathcube.features.engines import ENGINES, engine_installed
from oathcube.features.inception_v4 import (
    CHECKPOINT_ENV,
    InceptionV4Extractor,
    bf16_native,
    preprocess,
    resize_bilinear_tf1,
)
from oathcube.features.settings import InceptionV4Settings
from oathcube.imaging import sky_disc_mask

#: Agreement the reference README promises for a correct float32 implementation.
TOLERANCE = {
    "Conv2d_1a_3x3": 1e-3,
    "Mixed_5b": 1e-3,
    "Mixed_7d": 1e-3,
    "PreLogitsFlatten": 1e-4,
    "Logits": 1e-4,
}


@pytest.fixture(scope="session")
def reference(shared: Path) -> dict[str, np.ndarray]:
    """The slim outputs, plus the ``_rot`` PNGs they were computed from (uint8, n x 256 x 256)."""
    folder = shared / "reference"
    if not (folder / "slim_reference_outputs.npz").is_file():
        pytest.skip(f"{folder} lacks slim_reference_outputs.npz")
    with np.load(folder / "slim_reference_outputs.npz") as npz:
        out = {k: npz[k] for k in npz.files}
    out["pixels"] = np.stack([iio.imread(folder / "images" / f) for f in out["files"]])
    return out


@pytest.fixture(scope="session")
def random_checkpoint(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The reference random checkpoint (V2), written once per session (~5 s, 185 MB)."""
    prefix = tmp_path_factory.mktemp("ckpt") / "model.ckpt"
    subprocess.run(
        [sys.executable, str(shared / "reference" / "make_random_checkpoint.py"), str(prefix)],
        check=True,
        capture_output=True,
    )
    return str(prefix)


@pytest.fixture(scope="session")
def checkpoint_values(random_checkpoint: str) -> dict[str, np.ndarray]:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(random_checkpoint)
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}


def _write_v1(path: Path, values: dict[str, np.ndarray]) -> str:
    """A single-file V1 checkpoint, the format of the released inception_v4.ckpt."""
    import tensorflow as tf

    names = sorted(values)
    tf.raw_ops.Save(filename=str(path), tensor_names=names, data=[values[n] for n in names])
    return str(path)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(
            e,
            marks=pytest.mark.skipif(not engine_installed(e), reason=f"{e} is not installed"),
        )
        for e in ENGINES
    ],
)
def extractor(random_checkpoint: str, request: pytest.FixtureRequest) -> InceptionV4Extractor:
    """The extractor on every installed engine (see tests/test_engines.py for the engines)."""
    return get_extractor(
        "inception_v4", InceptionV4Settings(checkpoint=random_checkpoint, engine=request.param)
    )


def _report(label: str, diff: float, tol: float) -> None:
    print(f"\n  {label:<40s} max |diff| = {diff:.3g}  (tolerance {tol:g})", end="")


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


# --------------------------------------------------------------------------- preprocessing


def test_preprocessing_matches_slim(reference: dict[str, np.ndarray]) -> None:
    grey = preprocess(reference["pixels"])
    rgb = preprocess(np.repeat(reference["pixels"][..., None], 3, axis=3), np.zeros(2))
    for label, x in (("preprocess greyscale", grey), ("preprocess RGB, rot_angle 0", rgb)):
        assert x.shape == (2, 299, 299, 3) and x.dtype == np.float32
        diff = float(np.abs(x - reference["input"]).max())
        _report(label, diff, 1e-5)
        assert diff <= 1e-5


@pytest.mark.slow
def test_resize_is_tf1_resize_bilinear() -> None:
    import tensorflow as tf

    rng = np.random.default_rng(5)
    for shape in [(2, 224, 224, 3), (1, 300, 17, 1), (1, 5, 299, 2)]:
        images = rng.uniform(0, 1, shape).astype(np.float32)
        expected = tf.compat.v1.image.resize_bilinear(images, [299, 299]).numpy()
        np.testing.assert_allclose(resize_bilinear_tf1(images), expected, rtol=0, atol=1e-6)


def test_rotation_by_rot_angle_matches_rotate_sh(shared: Path) -> None:
    """Our rotation of the unrotated PNGs agrees with ImageMagick's in direction and centre."""
    folder = shared / "reference" / "images"
    disc = sky_disc_mask((299, 299), margin=4)
    for name, angle in (("allsky_synthetic", 37), ("allsky_dasc", 250)):
        ours = preprocess(iio.imread(folder / f"{name}.png")[None], np.array([angle]))[0, ..., 0]
        magick = preprocess(iio.imread(folder / f"{name}_rot{angle}.png")[None])[0, ..., 0]
        unrotated = preprocess(iio.imread(folder / f"{name}.png")[None])[0, ..., 0]
        err = float(np.abs(ours - magick)[disc].mean())
        base = float(np.abs(unrotated - magick)[disc].mean())
        print(f"\n  {name} rotated {angle}: mean |diff| over the sky disc {err:.4f}", end="")
        print(f" (unrotated: {base:.4f})", end="")
        # Resampling differs (bilinear vs ImageMagick's EWA); the geometry must not.
        assert err < 0.25 * base


def test_bad_pixels_and_angles() -> None:
    with pytest.raises(FeatureError, match="uint8"):
        preprocess(np.zeros((1, 256, 256), np.float32))
    with pytest.raises(FeatureError, match="rotation angles"):
        preprocess(np.zeros((2, 256, 256), np.uint8), np.zeros(3))
    with pytest.raises(FeatureError, match="image 1 "):
        preprocess(np.zeros((2, 256, 256), np.uint8), np.array([0.0, np.nan]))


# --------------------------------------------------------------------------- the network


@pytest.mark.slow
def test_network_variables_are_the_released_checkpoints(shared: Path) -> None:
    from oathcube.features.inception_net import BN_EPSILON, build_inception_v4

    manifest = json.loads((shared / "reference" / "inception_v4_slim_variables.json").read_text())
    expected = {v["name"]: tuple(v["shape"]) for v in manifest["variables"]}
    net = build_inception_v4(["Logits"])
    assert net.required_variables() == expected
    assert len(expected) == manifest["num_variables"] == 608
    assert BN_EPSILON == manifest["batch_norm"]["epsilon"]
    # The network reads everything except the auxiliary head.
    assert set(expected) - set(net.variables) == {n for n in expected if "/AuxLogits/" in n}


@pytest.mark.slow
@pytest.mark.parametrize("fold", [True, False], ids=["folded-bn", "plain-keras"])
def test_endpoints_match_slim(
    reference: dict[str, np.ndarray], checkpoint_values: dict[str, np.ndarray], fold: bool
) -> None:
    from oathcube.features.inception_net import build_inception_v4

    net = build_inception_v4(TOLERANCE, fold_batch_norm=fold)
    net.load(checkpoint_values)
    out = net.predict(reference["input"])
    for name, tol in TOLERANCE.items():
        assert out[name].shape == reference[name].shape
        diff = float(np.abs(out[name] - reference[name]).max())
        _report(f"{name} ({'folded BN' if fold else 'plain Keras'})", diff, tol)
        assert diff <= tol, name


# --------------------------------------------------------------------------- the extractor


@pytest.mark.slow
def test_extractor_matches_slim_logits(
    extractor: InceptionV4Extractor, reference: dict[str, np.ndarray]
) -> None:
    assert isinstance(extractor, FeatureExtractor)
    assert (extractor.name, extractor.dim, extractor.n_features) == ("inception_v4", "logit", 1001)
    assert extractor.feature_labels() is None
    for label, pixels in (
        ("extractor Logits, greyscale", reference["pixels"]),
        ("extractor Logits, RGB", np.repeat(reference["pixels"][..., None], 3, axis=3)),
    ):
        features = extractor(pixels, np.zeros(2, np.int16))
        assert features.shape == (2, 1001) and features.dtype == np.float32
        diff = float(np.abs(features - reference["Logits"]).max())
        _report(f"{label} ({extractor.engine_name})", diff, 1e-4)
        assert diff <= 1e-4


@pytest.mark.slow
def test_extractor_is_thread_safe(
    extractor: InceptionV4Extractor, reference: dict[str, np.ndarray]
) -> None:
    results: list[np.ndarray] = []

    def work() -> None:
        results.append(extractor(reference["pixels"], np.zeros(2)))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3
    for r in results:
        np.testing.assert_allclose(r, reference["Logits"], rtol=0, atol=1e-4)


@pytest.mark.slow
def test_extractor_attrs(extractor: InceptionV4Extractor, random_checkpoint: str) -> None:
    import oathcube

    digest = hashlib.sha256()
    for suffix in (".index", ".data-00000-of-00001"):
        digest.update(Path(random_checkpoint + suffix).read_bytes())
    attrs = extractor.attrs()
    assert attrs["checkpoint_sha256"] == digest.hexdigest()
    assert attrs["checkpoint"] == str(Path(random_checkpoint).resolve())
    assert attrs["layer"] == "Logits" and attrs["precision"] == "fp32"
    assert attrs["oathcube_version"] == oathcube.__version__
    assert "half_pixel_centers=False" in attrs["preprocessing"]
    assert attrs["random_weights"] == 0 and "warning" not in attrs
    json.dumps(attrs)  # the cube stores them as JSON


@pytest.mark.slow
def test_v1_checkpoint_and_prelogits(
    tmp_path: Path, checkpoint_values: dict[str, np.ndarray], reference: dict[str, np.ndarray]
) -> None:
    """The released checkpoint is one V1 file; a global_step in it is ignored."""
    path = _write_v1(
        tmp_path / "inception_v4.ckpt", {**checkpoint_values, "global_step": np.int64(0)}
    )
    ex = InceptionV4Extractor(InceptionV4Settings(path, layer="PreLogitsFlatten", batch_size=1))
    assert (ex.dim, ex.n_features) == ("prelogit", 1536)
    diff = float(np.abs(ex(reference["pixels"], None) - reference["PreLogitsFlatten"]).max())
    _report("extractor PreLogitsFlatten, V1 checkpoint", diff, 1e-4)
    assert diff <= 1e-4
    assert ex.attrs()["checkpoint_sha256"] == hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.mark.slow
def test_missing_and_misshaped_variables_are_named(
    tmp_path: Path, checkpoint_values: dict[str, np.ndarray]
) -> None:
    missing = "InceptionV4/Mixed_6c/Branch_2/Conv2d_0d_7x1/weights"
    misshaped = "InceptionV4/Logits/Logits/biases"
    aux_missing = "InceptionV4/AuxLogits/Aux_logits/weights"
    values = {k: v for k, v in checkpoint_values.items() if k not in (missing, aux_missing)}
    values[misshaped] = np.zeros(1000, np.float32)
    values["global_step"] = np.int64(7)
    path = _write_v1(tmp_path / "broken.ckpt", values)
    with pytest.raises(CheckpointError) as err:
        InceptionV4Extractor(InceptionV4Settings(path))
    text = str(err.value)
    print(f"\n  {text[:300]}...")
    assert missing in text and aux_missing in text
    assert f"{misshaped} has shape [1000], expected [1001]" in text
    assert "global_step" not in text and str(path) in text


def test_checkpoint_files_in_a_fixed_order(tmp_path: Path) -> None:
    from oathcube.features.inception_net import checkpoint_files, checkpoint_sha256

    for name in ("m.ckpt.index", "m.ckpt.data-00001-of-00002", "m.ckpt.data-00000-of-00002"):
        (tmp_path / name).write_bytes(name.encode())
    (tmp_path / "m.ckpt.meta").write_bytes(b"ignored")
    (tmp_path / "inception_v4.ckpt").write_bytes(b"v1")
    expected = [tmp_path / n for n in ("m.ckpt.index", "m.ckpt.data-00000-of-00002",
                                       "m.ckpt.data-00001-of-00002")]  # fmt: skip
    for given in ("m.ckpt", "m.ckpt.index", "m.ckpt.data-00001-of-00002"):
        assert checkpoint_files(tmp_path / given) == expected
    assert checkpoint_files(tmp_path / "inception_v4.ckpt") == [tmp_path / "inception_v4.ckpt"]
    joined = b"".join(p.read_bytes() for p in expected)
    assert checkpoint_sha256(tmp_path / "m.ckpt") == hashlib.sha256(joined).hexdigest()
    with pytest.raises(CheckpointError, match="no checkpoint here"):
        checkpoint_files(tmp_path / "other.ckpt")


def test_no_checkpoint_says_where_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CHECKPOINT_ENV, raising=False)
    with pytest.raises(CheckpointError) as err:
        InceptionV4Extractor()
    text = str(err.value)
    for needed in ("inception_v4.ckpt", "inception_v4_2016_09_09.tar.gz", "`checkpoint`"):
        assert needed in text
    assert CHECKPOINT_ENV in text and "download.tensorflow.org" in text


def test_checkpoint_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CHECKPOINT_ENV, str(tmp_path / "nowhere.ckpt"))
    with pytest.raises(CheckpointError, match="nowhere.ckpt"):
        InceptionV4Extractor()


def test_bad_options() -> None:
    with pytest.raises(FeatureError, match="layer"):
        InceptionV4Extractor(InceptionV4Settings(random_weights=True, layer="Mixed_7d"))
    with pytest.raises(FeatureError, match="precision"):
        InceptionV4Extractor(InceptionV4Settings(random_weights=True, precision="fp16"))


def test_bf16_where_not_native_is_emulated_or_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import oathcube.features.engines as mod  # where the bf16 rule of every network lives

    monkeypatch.setattr(mod, "cpu_flags", lambda: {"avx2", "fma"})
    monkeypatch.delenv(CHECKPOINT_ENV, raising=False)
    if engine_installed("tensorflow"):
        # TensorFlow emulates bf16 (slowly): warned, then the missing checkpoint stops it.
        with pytest.warns(UserWarning, match="slower than fp32"), pytest.raises(CheckpointError):
            InceptionV4Extractor(InceptionV4Settings(precision="bf16", engine="tensorflow"))
    if engine_installed("openvino"):
        # OpenVINO would run fp32 under a bf16 label: refused before anything is built.
        with pytest.raises(FeatureError, match="avx512_bf16"):
            InceptionV4Extractor(InceptionV4Settings(precision="bf16", engine="openvino"))


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_bf16_agrees_with_fp32(
    random_checkpoint: str, reference: dict[str, np.ndarray], engine: str
) -> None:
    if not engine_installed(engine):
        pytest.skip(f"{engine} is not installed")
    if not bf16_native():  # refused (openvino), or emulated far slower (tensorflow)
        if engine == "openvino":
            with pytest.raises(FeatureError, match="avx512_bf16"):
                InceptionV4Extractor(
                    InceptionV4Settings(random_checkpoint, precision="bf16", engine=engine)
                )
        else:
            with pytest.warns(UserWarning, match="bf16"):
                InceptionV4Extractor(
                    InceptionV4Settings(random_checkpoint, precision="bf16", engine=engine)
                )
        return
    ex = InceptionV4Extractor(
        InceptionV4Settings(random_checkpoint, precision="bf16", engine=engine)
    )
    cosine = _cosine(ex(reference["pixels"], None), reference["Logits"])
    print(f"\n  bf16 ({engine}) vs slim fp32 Logits: per-image cosine {cosine.round(6)}", end="")
    assert ex.attrs()["precision"] == "bf16"
    assert (cosine >= 0.999).all()


@pytest.mark.slow
def test_random_weights_are_marked_and_deterministic(reference: dict[str, np.ndarray]) -> None:
    from oathcube.features.inception_net import random_variables

    ex = InceptionV4Extractor(InceptionV4Settings(random_weights=True))
    attrs = ex.attrs()
    assert attrs["random_weights"] == 1 and "RANDOM" in attrs["warning"]
    assert attrs["checkpoint_sha256"] == ""
    features = ex(reference["pixels"], np.array([10, 20]))
    assert np.isfinite(features).all() and features.std() > 0
    shapes = {"a/weights": (3, 3, 3, 8), "a/BatchNorm/beta": (8,)}
    first, second = random_variables(shapes), random_variables(shapes)
    assert all(np.array_equal(first[k], second[k]) for k in shapes)
