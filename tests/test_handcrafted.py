"""Tests of the weight-free ``handcrafted`` feature extractor."""

from __future__ import annotations

import json

import numpy as np
import pytest

from oathcube.errors import FeatureError
from oathcube.features import FeatureExtractor, get_extractor
from oathcube.features.handcrafted import HandcraftedExtractor
from oathcube.features.settings import HandcraftedSettings
from oathcube.imaging import sky_disc_mask

SIZE = 128  # small frames keep the suite fast; the geometry scales with the frame


def _sky(kind: str, seed: int = 0, size: int = SIZE) -> np.ndarray:
    """A synthetic fisheye frame: a bright band, stars on a dark sky, or uniform grey."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    c = (size - 1) / 2
    img = np.full((size, size), 12.0)
    if kind == "band":
        dist = (yy - c) * np.cos(0.3) + (xx - c) * np.sin(0.3) - size / 12
        img += 150 * (np.abs(dist) < size / 20)
    elif kind == "stars":
        for _ in range(30):
            y, x = rng.uniform(12, size - 12, 2)
            img += rng.uniform(40, 120) * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 1.2)
    elif kind == "grey":
        img[:] = 110
    else:
        raise ValueError(kind)
    img += rng.normal(0, 2, img.shape)
    img[~sky_disc_mask((size, size))] = 0
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def ex() -> HandcraftedExtractor:
    return HandcraftedExtractor()


def test_protocol_and_registry(ex: HandcraftedExtractor) -> None:
    assert isinstance(ex, FeatureExtractor)
    assert isinstance(get_extractor("handcrafted"), HandcraftedExtractor)
    assert ex.name == "handcrafted" and ex.dim == "feature"
    labels = ex.feature_labels()
    assert 30 <= ex.n_features <= 150
    assert len(labels) == ex.n_features == len(set(labels))
    assert {"hist_03", "radial_05", "grad_coherence", "glcm_contrast_d1"} <= set(labels)


def test_attrs_are_json_provenance(ex: HandcraftedExtractor) -> None:
    attrs = ex.attrs()
    json.dumps(attrs)  # cube attributes must serialise
    assert attrs["recipe_version"] and attrs["oathcube_version"]
    assert attrs["glcm_distances"] == list(ex.glcm_distances)


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((2, SIZE, SIZE), np.uint8),  # all black: every ratio must stay finite
        np.full((1, SIZE, SIZE), 255, np.uint8),  # saturated
        np.random.default_rng(1).integers(0, 256, (3, SIZE, SIZE), dtype=np.uint8),
        np.random.default_rng(2).integers(0, 256, (2, 40, 56, 3), dtype=np.uint8),  # RGB, small
    ],
    ids=["black", "white", "noise", "rgb-nonsquare"],
)
def test_shape_dtype_finite(ex: HandcraftedExtractor, pixels: np.ndarray) -> None:
    out = ex(pixels, np.linspace(0, 300, len(pixels)))
    assert out.shape == (len(pixels), ex.n_features)
    assert out.dtype == np.float32
    assert np.isfinite(out).all()


def test_saturation_and_black(ex: HandcraftedExtractor) -> None:
    labels = ex.feature_labels()
    black = ex(np.zeros((1, SIZE, SIZE), np.uint8), [0.0])[0]
    white = ex(np.full((1, SIZE, SIZE), 255, np.uint8), [0.0])[0]
    assert black[labels.index("hist_00")] == pytest.approx(1.0)
    assert white[labels.index("saturated")] == pytest.approx(1.0)
    assert black[labels.index("saturated")] == 0.0


def test_empty_batch(ex: HandcraftedExtractor) -> None:
    assert ex(np.zeros((0, SIZE, SIZE), np.uint8), np.zeros(0)).shape == (0, ex.n_features)


def test_rgb_of_grey_equals_grey(ex: HandcraftedExtractor) -> None:
    grey = _sky("band")[None]
    rgb = np.repeat(grey[..., None], 3, axis=3)
    np.testing.assert_array_equal(ex(grey, [12.0]), ex(rgb, [12.0]))


def test_batch_equals_one_by_one(ex: HandcraftedExtractor) -> None:
    frames = np.stack([_sky(k, seed=i) for i, k in enumerate(["band", "stars", "grey", "band"])])
    angles = np.array([0.0, 29.0, 181.0, 333.0])
    batch = ex(frames, angles)
    singles = np.concatenate([ex(frames[i : i + 1], angles[i : i + 1]) for i in range(4)])
    np.testing.assert_array_equal(batch, singles)


@pytest.mark.parametrize("kind", ["band", "stars", "grey"])
def test_exact_quarter_turn_invariance(ex: HandcraftedExtractor, kind: str) -> None:
    # A 90 degree turn is lossless on the pixel grid, so the features must not move at all.
    img = _sky(kind, seed=3)
    a = ex(img[None], [0.0])[0]
    b = ex(np.rot90(img)[None], [0.0])[0]
    np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("kind", ["band", "stars", "grey"])
def test_rotation_angle_barely_matters(ex: HandcraftedExtractor, kind: str) -> None:
    # Arbitrary angles resample the frame, so allow small changes, in most entries.
    img = _sky(kind, seed=4)
    a = ex(img[None], [30.0])[0]
    b = ex(img[None], [75.0])[0]
    close = np.abs(a - b) <= 0.05 * np.maximum(np.abs(a), np.abs(b)) + 0.02
    assert close.mean() >= 0.9, [ex.feature_labels()[i] for i in np.flatnonzero(~close)]


def test_discriminates_simple_patterns(ex: HandcraftedExtractor) -> None:
    labels = ex.feature_labels()
    kinds = ["band", "stars", "grey"]
    feats = {k: ex(_sky(k, seed=5)[None], [17.0])[0] for k in kinds}
    # The three vectors are far apart compared with the seed-to-seed spread of one pattern.
    spread = max(np.linalg.norm(feats[k] - ex(_sky(k, seed=6)[None], [200.0])[0]) for k in kinds)
    for i, k1 in enumerate(kinds):
        for k2 in kinds[i + 1 :]:
            assert np.linalg.norm(feats[k1] - feats[k2]) > 3 * spread, (k1, k2)

    def f(kind: str, name: str) -> float:
        return float(feats[kind][labels.index(name)])

    assert (
        f("band", "grad_coherence")
        > 0.8
        > 0.3
        > max(f("stars", "grad_coherence"), f("grey", "grad_coherence"))
    )
    assert f("band", "elongation") > 0.5 > f("stars", "elongation")
    assert f("stars", "stars_t20") > np.log1p(15) and f("band", "stars_t20") < np.log1p(3)
    assert f("grey", "stars_t20") < np.log1p(3)
    assert f("grey", "p50") > 0.35 > f("band", "p50")


@pytest.mark.parametrize(
    ("pixels", "angles"),
    [
        (np.zeros((SIZE, SIZE), np.uint8), [0.0]),  # no batch axis
        (np.zeros((2, SIZE, SIZE), np.uint8), [0.0]),  # one angle for two frames
        (np.zeros((1, SIZE, SIZE), np.uint8), [np.nan]),
        (np.zeros((1, 8, 8), np.uint8), [0.0]),  # too small for a sky disc
    ],
    ids=["2d", "angle-count", "nan-angle", "tiny"],
)
def test_bad_input_raises(ex: HandcraftedExtractor, pixels: np.ndarray, angles: list) -> None:
    with pytest.raises(FeatureError):
        ex(pixels, np.asarray(angles))


def test_bad_settings_raise_naming_the_parameter() -> None:
    with pytest.raises(FeatureError, match="hist_bins"):
        HandcraftedSettings(hist_bins=10)
    for bad in ({"glcm_levels": 1}, {"n_annuli": 0}, {"lbp_radii": ()}):
        with pytest.raises(FeatureError, match=next(iter(bad))):
            HandcraftedSettings(**bad)  # type: ignore[arg-type]
    with pytest.raises(FeatureError, match="HandcraftedSettings"):
        HandcraftedExtractor("hist_bins=8")  # type: ignore[arg-type]
