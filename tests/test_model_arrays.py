"""Models as arrays (oathcube.model_arrays): every kind of the registry is stored without a
pickle, and the predictions computed from its arrays are the fitted object's own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import zarr

from oathcube import classify, compute_features, ingest, train
from oathcube.classifiers import CLASSIFIERS, fit_classifier
from oathcube.cube.schema import model_specs, prediction_names, station_group
from oathcube.cube.store import Cube
from oathcube.errors import ModelError, OptionError
from oathcube.labels import class_names
from oathcube.model import decision_scores, load_model
from oathcube.model_arrays import (
    KINDS,
    SCORE_ATOL,
    SCORE_RTOL,
    check_model,
    n_features,
    predict,
    score_kind,
    to_arrays,
)
from oathcube.rawprep import RawPreparation
from oathcube.synthetic.themis import write_cdf

KIND_NAMES = list(CLASSIFIERS)


def _data(n_class: int, n: int = 360, d: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 rows of ``n_class`` overlapping clusters, features of unequal scales and
    offsets (so that the scaler matters), labels 0..n_class-1."""
    rng = np.random.default_rng(seed + n_class)
    y = np.arange(n) % n_class
    rng.shuffle(y)
    centres = rng.normal(0.0, 1.0, (n_class, d))
    X = (centres[y] + rng.normal(0.0, 1.3, (n, d))) * rng.uniform(0.5, 20.0, d)
    return (X + rng.normal(0.0, 5.0, d)).astype(np.float32), y


def _reference(fitted: Any, X: np.ndarray, kind: str) -> np.ndarray:
    """The fitted object's scores: predict_proba, or decision_function (-d, d for two)."""
    if KINDS[kind].scores == "probability":
        return np.asarray(fitted.predict_proba(X))
    d = np.asarray(fitted.decision_function(X))
    return np.stack([-d, d], axis=1) if d.ndim == 1 else d


def _assert_same(model: xr.Dataset, fitted: Any, X: np.ndarray, kind: str) -> None:
    index, scores = predict(model, X)
    assert index.dtype == np.int8 and scores.dtype == np.float32
    np.testing.assert_array_equal(index, fitted.predict(X))
    np.testing.assert_allclose(
        scores, _reference(fitted, X, kind), rtol=SCORE_RTOL, atol=SCORE_ATOL
    )


# -- the arrays, against the fitted object ------------------------------------------------------


def test_every_classifier_of_the_registry_has_a_kind() -> None:
    assert list(KINDS) == list(CLASSIFIERS)


@pytest.mark.usefixtures("small_lightgbm")
@pytest.mark.parametrize("n_class", [6, 2])
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_predictions_from_the_arrays_are_the_fitted_objects(kind: str, n_class: int) -> None:
    X, y = _data(n_class)
    fitted, chosen = fit_classifier(kind, X[:240], y[:240])
    names = class_names("class6" if n_class == 6 else "class2")
    model = to_arrays(kind, fitted, names)
    _assert_same(model, fitted, X[240:], kind)
    assert model.attrs["classifier"] == kind and json.loads(model.attrs["chosen"]) == chosen
    assert model.attrs["scores"] == score_kind(model) == KINDS[kind].scores
    assert model["classes"].values.tolist() == list(names)
    assert n_features(model) == X.shape[1]
    # Every array is numbers or strings, each of its spec's dims and dtype.
    specs = model_specs(layers=int(model.attrs.get("layers", 0)))
    for name, variable in model.variables.items():
        spec = specs[str(name)]
        assert variable.dims == spec.dims and variable.dtype == spec.memory_dtype, name
        assert variable.dtype.kind in "fiuO", name
        if variable.dtype.kind == "O":
            assert all(isinstance(v, str) for v in variable.values.ravel()), name


@pytest.mark.parametrize("n_class", [6, 2])
@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("n_neighbors", [5, 15])
def test_knn_follows_scikit_learns_rules(n_class: int, weights: str, n_neighbors: int) -> None:
    # Both weightings and both neighbourhoods of the grid, on new rows and on the training
    # rows themselves: there every query is at distance 0 from a training row, which then
    # takes the whole vote (two identical rows of different classes share it, and the
    # tie goes to the lower class).
    X, y = _data(n_class, d=12)
    X[1], y[0], y[1] = X[0], 0, 1
    fitted = (
        CLASSIFIERS["knn"]
        .build(0.0)
        .set_params(model__weights=weights, model__n_neighbors=n_neighbors)
        .fit(X[:240], y[:240])
    )
    model = to_arrays("knn", fitted, class_names("class6"))
    _assert_same(model, fitted, X[240:], "knn")
    _assert_same(model, fitted, X[:240], "knn")
    if weights == "distance":
        assert predict(model, X[:2])[0].tolist() == [0, 0]


def test_the_svm_classes_by_its_vote_not_by_its_scores() -> None:
    # libsvm's one-vs-one vote and the arg-max of the one-vs-rest scores disagree on a few
    # rows; predict gives the vote, as SVC.predict does.
    X, y = _data(6, n=600, d=8, seed=4)
    fitted, _ = fit_classifier("rbf_svm", X[:300], y[:300])
    model = to_arrays("rbf_svm", fitted, class_names("class6"))
    index, scores = predict(model, X[300:])
    np.testing.assert_array_equal(index, fitted.predict(X[300:]))
    disagree = index != np.argmax(scores, axis=1)
    assert disagree.any(), "no row tells the vote from the scores: pick other data"


def test_a_legacy_ridge_model_and_the_old_name_give_the_same() -> None:
    X, y = _data(6)
    fitted, _ = fit_classifier("ridge", X[:240], y[:240])
    model = to_arrays("ridge", fitted, class_names("class6"))
    legacy = model.copy()
    legacy.attrs = {k: v for k, v in model.attrs.items() if k != "classifier"}
    for a, b in zip(predict(model, X), predict(legacy, X), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(predict(model, X), decision_scores(model, X), strict=True):
        np.testing.assert_array_equal(a, b)


# -- refusals, in one line -------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_models() -> dict[str, xr.Dataset]:
    X, y = _data(6, n=120)
    names = class_names("class6")
    return {
        kind: to_arrays(kind, fit_classifier(kind, X, y)[0], names)
        for kind in ("ridge", "rbf_svm", "mlp")
    }


@pytest.mark.parametrize(
    ("kind", "drop", "match"),
    [
        ("ridge", "intercept", "the ridge model lacks intercept"),
        ("rbf_svm", "support_vectors", "the rbf_svm model lacks support_vectors"),
        ("mlp", "weights_1", "the mlp model lacks weights_1"),
        ("mlp", "scaler_scale", "the mlp model lacks scaler_scale"),
    ],
)
def test_a_model_missing_an_array_is_refused(
    small_models: dict[str, xr.Dataset], kind: str, drop: str, match: str
) -> None:
    broken = small_models[kind].drop_vars(drop)
    with pytest.raises(ModelError, match=match) as err:
        predict(broken, np.zeros((3, 16), np.float32))
    assert "\n" not in str(err.value)


def test_a_model_of_unknown_kind_or_missing_attribute_is_refused(
    small_models: dict[str, xr.Dataset],
) -> None:
    other = small_models["ridge"].assign_attrs(classifier="xgboost")
    with pytest.raises(ModelError, match="unknown classifier 'xgboost'") as err:
        check_model(other, "models/m")
    assert "\n" not in str(err.value) and str(err.value).startswith("models/m")
    mlp = small_models["mlp"].copy()
    del mlp.attrs["layers"]
    with pytest.raises(ModelError, match="the mlp model lacks attribute layers"):
        predict(mlp, np.zeros((3, 16), np.float32))


def test_features_of_another_width_are_refused(small_models: dict[str, xr.Dataset]) -> None:
    with pytest.raises(ModelError, match="features have 15 columns.*16 as the model was trained"):
        predict(small_models["rbf_svm"], np.zeros((3, 15), np.float32))
    index, scores = predict(small_models["rbf_svm"], np.zeros((0, 16), np.float32))
    assert index.shape == (0,) and scores.shape == (0, 6)


def test_a_fitted_object_of_another_kind_is_refused(small_models: dict[str, xr.Dataset]) -> None:
    X, y = _data(2, n=120)
    fitted, _ = fit_classifier("logistic", X, y)
    with pytest.raises(ModelError, match="as linear_svm.*sklearn.svm.LinearSVC"):
        to_arrays("linear_svm", fitted, class_names("class2"))
    with pytest.raises(OptionError, match="unknown classifier 'xgboost'"):
        to_arrays("xgboost", fitted, class_names("class2"))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"classifier": "knn", "alpha": 0.5}, "alpha: `alpha` 0.5 with `classifier` 'knn'"),
        ({"classifier": "lightgbm", "alpha": 0.03}, "alpha: `alpha` 0.03 with `classifier`"),
        ({"classifier": "xgboost"}, "classifier: unknown classifier 'xgboost'"),
    ],
)
def test_train_refuses_before_opening_the_cube(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(OptionError, match=match) as err:
        train("no/such/cube.zarr", "handcrafted", **kwargs)
    assert "\n" not in str(err.value)


# -- through a cube: train, then classify the labelled images and a station ----------------------


@pytest.fixture(scope="module")
def template(cube_factory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 90-image cube with handcrafted features, and station fsmi (30 frames) with its
    features: read only, copied by each test."""
    base = tmp_path_factory.mktemp("model-arrays")
    cube = cube_factory.copy(base / "cube.zarr")
    raw = base / "raw"
    raw.mkdir()
    write_cdf(raw, "fsmi", "2011-01-06T05:00:00", 30, size=32, seed=1)
    ingest([raw], cube, preparation=RawPreparation(out_size=32), progress=False)
    for station in (None, "fsmi"):
        compute_features(
            cube, "handcrafted", station=station, progress=False, scheduler="synchronous"
        )
    return cube


@pytest.fixture
def cube(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "cube.zarr"))


def _allowed_metadata(meta: dict[str, Any]) -> bool:
    """Whether an array's zarr.json holds plain numbers or UTF-8 strings, no pickle."""
    text = json.dumps(meta)
    codecs = {c["name"] for c in meta["codecs"]}
    return (
        "pickle" not in text.lower()
        and meta["data_type"] in ("float64", "int8", "int32", "string")
        and codecs <= {"bytes", "zstd", "vlen-utf8"}
    )


@pytest.mark.usefixtures("small_lightgbm")
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_the_classify_check_of_each_stored_kind(cube: Path, kind: str) -> None:
    name = train(cube, "handcrafted", classifier=kind)
    assert name == "handcrafted_class6" + ("" if kind == "ridge" else f"_{kind}")
    done = classify(cube, name, progress=False, scheduler="synchronous")
    assert done == {"": 90, station_group("fsmi"): 30}

    # The same classifier fitted again on the same rows, with the same seeds.
    labelled = xr.open_zarr(cube)
    X = labelled["features_handcrafted"].values
    y = labelled["class6"].values.astype(np.int64)
    fitted, chosen = fit_classifier(kind, X, y)
    pred, score, _ = prediction_names(name)
    station = xr.open_zarr(cube, group=station_group("fsmi"))
    for ds, rows in ((labelled, X), (station, station["features_handcrafted"].values)):
        np.testing.assert_array_equal(ds[pred].values, fitted.predict(rows))
        np.testing.assert_allclose(
            ds[score].values, _reference(fitted, rows, kind), rtol=SCORE_RTOL, atol=SCORE_ATOL
        )
        assert ds[score].attrs["scores"] == KINDS[kind].scores

    model = load_model(cube, name)
    assert json.loads(model.attrs["chosen"]) == chosen
    assert model.attrs["training_accuracy"] == pytest.approx(fitted.score(X, y))
    assert ("alpha" in model.attrs) == (kind == "ridge")
    if kind == "lightgbm":
        # The text model, whole, through the cube: the refitted trees to the last byte.
        assert model["booster"].values.item() == fitted[-1].booster_.model_to_string()

    # Nothing pickled: every array is numbers or UTF-8 strings, stored as its spec says.
    specs = model_specs(layers=int(model.attrs.get("layers", 0)))
    group = Path(cube) / "models" / name
    arrays = [p.parent for p in group.glob("*/zarr.json")]
    assert {a.name for a in arrays} == set(model.variables)
    for array in arrays:
        meta = json.loads((array / "zarr.json").read_text())
        assert _allowed_metadata(meta), (array.name, meta["data_type"], meta["codecs"])
        spec = specs[array.name]
        assert tuple(meta.get("dimension_names") or ()) == spec.dims, array.name
        assert meta["data_type"] == ("string" if spec.dtype == "str" else spec.dtype), array.name


def test_classify_refuses_a_broken_or_unknown_model_before_any_work(cube: Path) -> None:
    name = train(cube, "handcrafted", classifier="rbf_svm")
    shutil.rmtree(Path(cube) / "models" / name / "dual_coef")
    with pytest.raises(ModelError, match="the rbf_svm model lacks dual_coef") as err:
        classify(cube, name, progress=False, scheduler="synchronous")
    assert "\n" not in str(err.value)
    assert prediction_names(name)[0] not in xr.open_zarr(cube).variables

    other = train(cube, "handcrafted", classifier="knn")
    attrs = zarr.open_group(cube, mode="r+", use_consolidated=False)[f"models/{other}"].attrs
    attrs["classifier"] = "xgboost"
    for call in (
        lambda: classify(cube, other, progress=False, scheduler="synchronous"),
        lambda: load_model(cube, other),
    ):
        with pytest.raises(ModelError, match="unknown classifier 'xgboost'"):
            call()


def test_a_text_model_of_megabytes_round_trips_through_a_cube(tmp_path: Path) -> None:
    # Printable ASCII drawn at random: 6 MB that zstd cannot shrink, and newlines.
    codes = np.random.default_rng(0).integers(32, 127, 6_000_000, dtype=np.uint8)
    codes[::80] = ord("\n")
    text = codes.tobytes().decode("ascii")
    cube = Cube.open_or_create(tmp_path / "strings.zarr", title="strings")
    spec = model_specs()["booster"]
    cube.write_dataset(xr.Dataset({"booster": spec.variable(np.array(text, dtype=object))}), "m")
    back = cube.dataset("m", live=True)["booster"].values.item()
    assert back == text


def test_the_nearest_neighbours_are_those_of_a_full_stable_sort() -> None:
    """k-NN partitions its distances and sorts only the nearest: on matrices full of ties
    (and without), the neighbours and their order are a full stable sort's."""
    from oathcube.model_arrays import _nearest

    rng = np.random.default_rng(0)
    for trial in range(300):
        n, m = int(rng.integers(1, 30)), int(rng.integers(1, 50))
        k = int(rng.integers(1, 20))
        d2 = rng.random((n, m)) if trial % 3 == 0 else rng.integers(0, 5, (n, m)).astype(float)
        want = np.argsort(d2, axis=1, kind="stable")[:, :k]
        assert np.array_equal(_nearest(d2, k), want), (trial, n, m, k)
