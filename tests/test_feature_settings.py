"""Typed extractor settings: one frozen dataclass per extractor, carried by FeatureSpec.

The records below are what the code before the settings classes wrote (feature
variables' attributes, and a model's ``feature_settings``), captured from it: cubes and
models written then must still be read.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from oathcube import build, classify, compute_features, train
from oathcube.cli import _feature_options
from oathcube.errors import FeatureError
from oathcube.features import (
    FeatureSpec,
    HandcraftedSettings,
    InceptionV4Settings,
    feature_spec,
    spec_from_attrs,
)
from oathcube.features.settings import settings_class, with_local

_DESCRIPTION = (
    "rotation-invariant statistics over the sky disc: grey-level histogram, percentiles, "
    "radial profile, azimuthal harmonics, gradient and structure tensor, GLCM, uniform LBP, "
    "top-hat star counts, edge sharpness, moments"
)
#: features_handcrafted attributes as written before (rotate=False, hist_bins=8, (1, 2)).
OLD_HANDCRAFTED = {
    "extractor": "handcrafted",
    "recipe_version": "1",
    "oathcube_version": "0.1.0",
    "rotate": 0,
    "hist_bins": 8,
    "n_annuli": 8,
    "azimuth_rings": 2,
    "azimuth_sectors": 16,
    "glcm_levels": 32,
    "glcm_distances": [1, 2],
    "lbp_radii": [1, 2],
    "star_thresholds": [10, 20, 40],
    "star_noise_sigmas": 7.0,
    "saturation_level": 250,
    "description": _DESCRIPTION,
    "created": "2026-12-06T22:00:00Z",
    "long_name": "handcrafted features of pixels",
}
#: features_inception_v4 attributes as written before (int8 on OpenVINO, PreLogitsFlatten).
OLD_INCEPTION = {
    "extractor": "inception_v4",
    "model": "TF-slim inception_v4 (Szegedy et al. 2016), as used by Clausen & Nickisch (2018)",
    "checkpoint": "",
    "checkpoint_sha256": "",
    "layer": "PreLogitsFlatten",
    "precision": "int8",
    "engine": "openvino",
    "engine_version": "2025.1.0",
    "oathcube_version": "0.1.0",
    "preprocessing": "rotate_like_oath(rot_angle) -> RGB -> ...",
    "random_weights": 1,
    "warning": "features from RANDOM weights, not the released checkpoint",
    "int8_calibration": {"cube": "/c.zarr", "group": "", "rows": [0, 1, 2], "sha256": "ab"},
}
#: A model's feature_settings as written before (value settings only).
OLD_MODEL_INCEPTION = {
    "extractor": "inception_v4",
    "model": OLD_INCEPTION["model"],
    "checkpoint_sha256": "",
    "layer": "PreLogitsFlatten",
    "random_weights": 1,
    "warning": "features from RANDOM weights, not the released checkpoint",
}


def _through_json(record: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(record))


def test_from_attrs_reads_what_the_code_before_wrote() -> None:
    old = HandcraftedSettings.from_attrs(_through_json(OLD_HANDCRAFTED))
    assert old == HandcraftedSettings(rotate=False, hist_bins=8, glcm_distances=(1, 2))
    model_record = {k: v for k, v in OLD_HANDCRAFTED.items() if k not in ("created",)}
    assert HandcraftedSettings.from_attrs(model_record) == old
    inception = InceptionV4Settings.from_attrs(_through_json(OLD_INCEPTION))
    assert (inception.layer, inception.precision, inception.engine) == (
        "PreLogitsFlatten",
        "int8",
        "openvino",
    )
    assert inception.random_weights is True and inception.checkpoint is None
    model = InceptionV4Settings.from_attrs(_through_json(OLD_MODEL_INCEPTION))
    assert model == InceptionV4Settings(layer="PreLogitsFlatten", random_weights=True)
    with pytest.raises(FeatureError, match="handcrafted"):
        InceptionV4Settings.from_attrs(OLD_HANDCRAFTED)


@pytest.mark.parametrize(
    "settings",
    [
        HandcraftedSettings(),
        HandcraftedSettings(rotate=False, hist_bins=32, lbp_radii=(1, 3)),
        InceptionV4Settings(),
        InceptionV4Settings(layer="PreLogitsFlatten", precision="int8", calibration_size=9),
    ],
    ids=repr,
)
def test_settings_round_trip_through_their_attrs(settings: Any) -> None:
    cls = type(settings)
    rebuilt = cls.from_attrs(_through_json(settings.attrs()))
    expected = settings
    if isinstance(settings, InceptionV4Settings):
        # The engine that runs is recorded (the default when none is named).
        expected = dataclasses.replace(settings, engine=settings.resolved_engine)
    assert rebuilt == expected and hash(rebuilt) == hash(expected)
    assert settings_class(settings.extractor) is cls
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.layer = "x"


def test_settings_are_checked_when_made_and_errors_name_the_parameter() -> None:
    cases = [
        ({"precision": "fp16"}, "precision"),
        ({"layer": "Mixed_7d"}, "layer"),
        ({"batch_size": 0}, "batch_size"),
        ({"engine": "onnx"}, "engine"),
        ({"threads": 0}, "threads"),
        ({"calibration_size": 0}, "calibration_size"),
    ]
    for kwargs, parameter in cases:
        with pytest.raises(FeatureError) as err:
            InceptionV4Settings(**kwargs)
        assert err.value.parameter == parameter and err.value.path is None
        assert str(err.value).startswith(f"{parameter}: ")
    with pytest.raises(FeatureError) as err:
        HandcraftedSettings(hist_bins=10)
    assert err.value.parameter == "hist_bins"
    # Lists from JSON become tuples; 0/1 become booleans: equal settings compare equal.
    assert HandcraftedSettings(rotate=0, lbp_radii=[1, 2]) == HandcraftedSettings(rotate=False)


def test_feature_spec_takes_a_name_a_settings_object_or_a_spec() -> None:
    settings = HandcraftedSettings(hist_bins=8)
    spec = feature_spec(settings)
    assert isinstance(spec, FeatureSpec) and spec.settings == settings
    assert spec.attrs["hist_bins"] == 8 and spec.n_features == len(spec.labels or ())
    assert feature_spec(spec) is spec
    assert feature_spec("handcrafted", hist_bins=8) == spec
    assert feature_spec("handcrafted").settings == HandcraftedSettings()
    with pytest.raises(FeatureError, match="options given with a settings object"):
        feature_spec(settings, hist_bins=4)
    with pytest.raises(FeatureError, match="HandcraftedSettings"):
        feature_spec("handcrafted", bins=4)
    with pytest.raises(FeatureError, match="not an extractor's settings"):
        feature_spec({"hist_bins": 8})


def test_local_settings_come_from_the_caller_and_the_rest_from_the_record() -> None:
    mine = InceptionV4Settings(
        checkpoint="/here.ckpt", layer="Logits", precision="bf16", batch_size=4, engine="tensorflow"
    )
    recorded = InceptionV4Settings.from_attrs(OLD_MODEL_INCEPTION)
    merged = with_local(recorded, mine)
    assert merged.layer == "PreLogitsFlatten" and merged.random_weights  # the model's
    assert (merged.checkpoint, merged.precision, merged.batch_size, merged.engine) == (
        "/here.ckpt",
        "bf16",
        4,
        "tensorflow",
    )
    assert with_local(recorded, None) is recorded
    with pytest.raises(FeatureError, match="HandcraftedSettings"):
        with_local(recorded, HandcraftedSettings())
    spec = spec_from_attrs("inception_v4", OLD_MODEL_INCEPTION, InceptionV4Settings())
    assert spec.n_features == 1536 and spec.settings.layer == "PreLogitsFlatten"


def test_one_way_into_compute_build_and_classify(
    make_cube: Any, archive: Path, tmp_path: Path
) -> None:
    cube = make_cube(chunk_images=32)
    settings = HandcraftedSettings(hist_bins=8, lbp_radii=(1,))
    compute_features(cube, settings, progress=False, scheduler="synchronous")
    stored = xr.open_zarr(cube, consolidated=False).features_handcrafted
    assert HandcraftedSettings.from_attrs(dict(stored.attrs)) == settings
    assert np.isfinite(stored.values).all()
    model = train(cube, "handcrafted")
    # Handcrafted features have no local settings: the model's record is all there is.
    done = classify(cube, model, progress=False, scheduler="synchronous", features=settings)
    assert done == {"": 90}
    with pytest.raises(FeatureError, match="InceptionV4Settings given for features"):
        classify(cube, model, progress=False, features=InceptionV4Settings())
    built = build(
        archive, tmp_path / "b.zarr", features=[settings], progress=False, scheduler="synchronous"
    )
    again = xr.open_zarr(built).features_handcrafted
    np.testing.assert_array_equal(again.values, stored.values)


def test_old_keywords_still_work_for_one_release_with_a_warning(make_cube: Any) -> None:
    cube = make_cube(chunk_images=32)
    with pytest.warns(DeprecationWarning, match="HandcraftedSettings|settings object"):
        compute_features(cube, "handcrafted", progress=False, scheduler="synchronous", rotate=False)
    stored = xr.open_zarr(cube, consolidated=False).features_handcrafted
    assert stored.attrs["rotate"] == 0


def test_the_cli_builds_settings_directly() -> None:
    assert _feature_options("handcrafted", None, "Logits", "fp32", None, False) == "handcrafted"
    made = _feature_options("inception_v4", Path("/c.ckpt"), "PreLogitsFlatten", "int8", 8, True)
    assert made == InceptionV4Settings(
        checkpoint="/c.ckpt",
        layer="PreLogitsFlatten",
        precision="int8",
        batch_size=8,
        random_weights=True,
    )
