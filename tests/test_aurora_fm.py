"""Aurora-FM features equal themisim's embedding and torchvision's ResNet-18.

The reference is themisim 0.2.0 itself (its ``preprocess_frame`` and its
``load_simclr``, which is torchvision's ``resnet18``) on the real Gakona CDF of
``../shared/data/themis``, with a checkpoint in Aurora-FM's exact format (a
``torch.save``d SimCLR state dict) holding RANDOM weights and random batch-norm
statistics, since the released weights cannot be downloaded here.  Tolerance:
every feature within 1e-4 of the largest absolute value (FEATURE_TOLERANCE is 1e-5
between oathcube's own engines; torch sums in yet another order).
"""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
import xarray as xr
from conftest import run_oathcube
from themisim.model import load_simclr
from themisim.preprocess import normalize_masked, preprocess_frame

from oathcube import (
    AuroraFMSettings,
    classify,
    compute_features,
    evaluate,
    ingest,
    timeline,
    train,
)
from oathcube.archive.themis_cdf import read_cdf
from oathcube.cube.store import Cube
from oathcube.errors import CheckpointError, FeatureError
from oathcube.features import get_extractor
from oathcube.features.aurora_fm import AuroraFMExtractor, preprocess
from oathcube.features.resnet_net import random_encoder
from oathcube.rawprep import RawPreparation
from oathcube.synthetic.themis import write_cdf

CDF = "thg_l1_asf_gako_2011010617_v01.cdf"
TOLERANCE = 1e-4


def _simclr(seed: int) -> torch.nn.Module:
    """Aurora-FM's training wrapper (encoder + projector) with random weights and statistics."""
    torch.manual_seed(seed)
    encoder = torchvision.models.resnet18(weights=None)
    encoder.fc = torch.nn.Identity()
    model = torch.nn.Module()
    model.encoder = encoder
    model.projector = torch.nn.Sequential(
        torch.nn.Linear(512, 512, bias=False), torch.nn.ReLU(), torch.nn.Linear(512, 64, bias=False)
    )
    with torch.no_grad():
        for module in encoder.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                # No batch norm is an identity: a wrong folding or swapped buffer shows.
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.2)
                module.running_mean.normal_(0.0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return model


def _save(model: torch.nn.Module, path: Path) -> Path:
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save(_simclr(0), tmp_path_factory.mktemp("afm") / "aurora-fm-no-finetune.tar")


@pytest.fixture(scope="module")
def raw_frames(shared: Path) -> np.ndarray:
    """The real Gakona frames as the CDF holds them (cdflib, no turn)."""
    import cdflib

    return np.asarray(cdflib.CDF(str(shared / "data/themis" / CDF)).varget("thg_asf_gako"))


@pytest.fixture(scope="module")
def themisim_embedding(checkpoint: Path, raw_frames: np.ndarray) -> np.ndarray:
    """themisim's own pipeline: preprocess_frame, then load_simclr's encoder."""
    encoder = load_simclr(checkpoint, device="cpu")
    batch = torch.stack([preprocess_frame(frame) for frame in raw_frames])
    with torch.no_grad():
        return encoder(batch).numpy()


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_prepared_frames_are_themisim_bytes(shared: Path, raw_frames: np.ndarray) -> None:
    frames = read_cdf(shared / "data/themis" / CDF).frames  # the cube's orientation
    stored = RawPreparation.aurora_fm().apply(frames)
    for i, raw in enumerate(raw_frames):
        expected = (normalize_masked(raw) * 255).astype(np.uint8)
        np.testing.assert_array_equal(stored[i][::-1, ::-1], expected, err_msg=f"frame {i}")


def test_network_input_is_themisim_input(shared: Path, raw_frames: np.ndarray) -> None:
    frames = read_cdf(shared / "data/themis" / CDF).frames
    got = preprocess(RawPreparation.aurora_fm().apply(frames))
    assert got.shape == (len(raw_frames), 224, 224, 1) and got.dtype == np.float32
    for i, raw in enumerate(raw_frames):
        want = preprocess_frame(raw).numpy()
        assert not want[0].any() and not want[2].any()  # red and blue are zero
        np.testing.assert_array_equal(got[i, :, :, 0], want[1], err_msg=f"frame {i}")


@pytest.mark.parametrize("engine", ["openvino", "tensorflow"])
def test_network_equals_torchvision_resnet18(engine: str, checkpoint: Path) -> None:
    model = _simclr(0).encoder.eval()
    rng = np.random.default_rng(1)
    green = rng.random((5, 224, 224, 1), dtype=np.float32)
    rgb = np.zeros((5, 3, 224, 224), np.float32)
    rgb[:, 1] = green[..., 0]
    with torch.no_grad():
        want = model(torch.from_numpy(rgb)).numpy()
    extractor = get_extractor(
        "aurora_fm", AuroraFMSettings(checkpoint=str(checkpoint), engine=engine)
    )
    got = extractor.network(green)
    assert got.shape == (5, 512)
    print(f"aurora_fm {engine} network vs torchvision: {_relative(got, want):.2e}")
    assert _relative(got, want) < TOLERANCE


@pytest.mark.parametrize("engine", ["openvino", "tensorflow"])
def test_station_features_equal_themisim(
    engine: str, shared: Path, tmp_path: Path, checkpoint: Path, themisim_embedding: np.ndarray
) -> None:
    cube = tmp_path / "cube.zarr"
    ingest([shared / "data/themis" / CDF], cube, preparation=RawPreparation.aurora_fm())
    settings = AuroraFMSettings(checkpoint=str(checkpoint), engine=engine, batch_size=8)
    var = compute_features(cube, settings, station="gako", scheduler="synchronous")
    feats = xr.open_zarr(cube, group="stations/gako")[var]
    assert feats.dims == ("time", "embedding") and feats.shape == (23, 512)
    assert feats.attrs["checkpoint_sha256"] and feats.attrs["engine"] == engine
    error = _relative(feats.values, themisim_embedding)
    print(f"aurora_fm {engine} vs themisim: max |diff| / max |ref| = {error:.2e}")
    assert error < TOLERANCE


def test_a_station_prepared_otherwise_is_warned(
    shared: Path, tmp_path: Path, checkpoint: Path
) -> None:
    cube = tmp_path / "cube.zarr"
    ingest([shared / "data/themis" / CDF], cube)
    with pytest.warns(UserWarning, match="not themisim's"):
        compute_features(
            cube,
            AuroraFMSettings(checkpoint=str(checkpoint)),
            station="gako",
            scheduler="synchronous",
        )


def test_labelled_images_input() -> None:
    """OATH PNG bytes stand where themisim's byte stands, turned 180 deg, rotAng unused."""
    png = np.random.default_rng(2).integers(0, 256, (3, 256, 256), dtype=np.uint8)
    got = preprocess(png)
    transform = torchvision.transforms.Compose(
        [torchvision.transforms.Resize(224), torchvision.transforms.ToTensor()]
    )
    from PIL import Image

    for i, image in enumerate(png):
        rgb = np.zeros((256, 256, 3), np.uint8)
        rgb[:, :, 1] = image[::-1, ::-1]
        want = transform(Image.fromarray(rgb)).numpy()[1]
        np.testing.assert_array_equal(got[i, :, :, 0], want)


def test_bands_are_refused() -> None:
    with pytest.raises(FeatureError, match="one-band uint8"):
        preprocess(np.zeros((2, 64, 64, 3), np.uint8))


# --------------------------------------------------------------------------- the checkpoint


def test_foreign_checkpoints_are_one_line(tmp_path: Path) -> None:
    model = _simclr(1)
    state = model.state_dict()
    cases = {
        "missing": {k: v for k, v in state.items() if k != "encoder.layer3.1.bn2.running_var"},
        "shape": {**state, "encoder.layer2.0.conv1.weight": torch.zeros(128, 64, 5, 5)},
        "extra": {**state, "encoder.fc.weight": torch.zeros(1000, 512)},
    }
    for name, content in cases.items():
        path = tmp_path / f"{name}.tar"
        torch.save(content, path)
        with pytest.raises(CheckpointError) as err:
            AuroraFMExtractor(AuroraFMSettings(checkpoint=str(path)))
        text = str(err.value)
        assert "\n" not in text and path.name in text, text
    inception_like = tmp_path / "inception_v4.ckpt"
    inception_like.write_bytes(b"\x00" * 4096)
    with pytest.raises(CheckpointError, match="inception_v4.ckpt"):
        AuroraFMExtractor(AuroraFMSettings(checkpoint=str(inception_like)))


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused_unrun(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    state = dict(_simclr(2).state_dict())
    state["encoder.bn1.weight"] = _Payload(marker)  # type: ignore[assignment]
    path = tmp_path / "evil.tar"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="system"):
        AuroraFMExtractor(AuroraFMSettings(checkpoint=str(path)))
    assert not marker.exists()


def test_no_checkpoint_says_how_to_fetch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OATHCUBE_AURORA_FM_CHECKPOINT", raising=False)
    with pytest.raises(CheckpointError, match="oathcube fetch aurora-fm"):
        AuroraFMExtractor.describe(AuroraFMSettings())


def test_bf16_rules_are_inception_v4s(monkeypatch: pytest.MonkeyPatch) -> None:
    import oathcube.features.engines as engines

    monkeypatch.setattr(engines, "cpu_flags", lambda: {"avx2", "fma"})
    with pytest.raises(FeatureError, match="avx512_bf16"):
        AuroraFMExtractor.describe(AuroraFMSettings(precision="bf16", random_weights=True))
    with pytest.warns(UserWarning, match="slower than fp32"):
        AuroraFMExtractor.describe(
            AuroraFMSettings(precision="bf16", engine="tensorflow", random_weights=True)
        )


def test_random_weights_are_marked() -> None:
    spec = AuroraFMExtractor.describe(AuroraFMSettings(random_weights=True))
    assert "RANDOM" in spec.attrs["warning"] and spec.n_features == 512
    assert set(random_encoder()) == set(random_encoder(1))


# --------------------------------------------------------------------------- settings travel


@pytest.fixture
def trained(make_cube, tmp_path: Path, checkpoint: Path) -> Path:
    """A synthetic OATH cube with a model trained on aurora_fm features, and a station."""
    cube = make_cube()
    raw = tmp_path / "raw"
    raw.mkdir()
    write_cdf(raw, "fsmi", "2011-01-06T05:00:00", 24, size=256, seed=1)
    ingest([raw], cube, preparation=RawPreparation.aurora_fm())
    compute_features(cube, AuroraFMSettings(checkpoint=str(checkpoint)), scheduler="synchronous")
    train(cube, "aurora_fm", name="afm")
    return cube


def test_a_model_carries_its_settings_to_a_new_station(
    trained: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Only where the checkpoint is: the data folder's variable, nothing on the call.
    monkeypatch.setenv("OATHCUBE_AURORA_FM_CHECKPOINT", str(checkpoint))
    done = classify(trained, "afm", station="fsmi", scheduler="synchronous")
    assert done == {"stations/fsmi": 24}
    opened = Cube.open(trained)
    computed = opened.dataset("stations/fsmi")["features_aurora_fm"].attrs
    labelled = opened.dataset()["features_aurora_fm"].attrs
    assert computed["checkpoint_sha256"] == labelled["checkpoint_sha256"] != ""
    assert "predicted_afm" in opened.dataset("stations/fsmi")
    # ... and the rest of the chain takes them like any other features.
    assert 0 <= evaluate(trained, "aurora_fm").accuracy_mean <= 1
    counts = timeline(trained, "fsmi", freq="1min", model="afm")
    assert int(counts["n_frames"].sum()) == 24 == int(counts["count"].sum())
    # Other weights at that place: refused before anything is computed.
    other = _save(_simclr(5), tmp_path / "other.tar")
    monkeypatch.setenv("OATHCUBE_AURORA_FM_CHECKPOINT", str(other))
    with pytest.raises(Exception, match="checkpoint_sha256"):
        classify(trained, "afm", station="fsmi", scheduler="synchronous")


# --------------------------------------------------------------------------- kill -9


@pytest.mark.slow
def test_features_killed_then_resumed(tmp_path: Path, checkpoint: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    write_cdf(raw, "fsmi", "2011-01-06T05:00:00", 40, size=256, seed=4)
    cubes = []
    for name in ("killed", "whole"):
        cube = tmp_path / f"{name}.zarr"
        args = ["ingest", str(raw), "-o", str(cube), "--prep", "aurora_fm", "--chunk-frames", "8"]
        assert run_oathcube(args) == 0
        cubes.append(cube)
    options = ["--extractor", "aurora_fm", "--checkpoint", str(checkpoint)]
    options += ["--station", "fsmi", "--scheduler", "synchronous"]
    killed, whole = cubes
    point = "features.chunk_written:2"
    assert run_oathcube(["features", str(killed), *options], kill_at=point) == -signal.SIGKILL
    assert run_oathcube(["features", str(killed), *options]) == 0
    assert run_oathcube(["features", str(whole), *options]) == 0
    a = xr.open_zarr(killed, group="stations/fsmi")["features_aurora_fm"].values
    b = xr.open_zarr(whole, group="stations/fsmi")["features_aurora_fm"].values
    np.testing.assert_array_equal(a, b)


def test_cli_says_what_is_missing_in_one_line(
    runner, make_cube, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oathcube.cli import app

    monkeypatch.delenv("OATHCUBE_AURORA_FM_CHECKPOINT", raising=False)
    cube = str(make_cube())
    result = runner.invoke(app, ["features", cube, "--extractor", "aurora_fm"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "oathcube fetch aurora-fm" in lines[0], result.output
    result = runner.invoke(
        app, ["features", cube, "--extractor", "aurora_fm", "--layer", "PreLogitsFlatten"]
    )
    assert result.exit_code == 1 and "--layer" in result.output
    assert "features_aurora_fm" not in Cube.open(cube).dataset()
