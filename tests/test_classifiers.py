"""Classifiers beyond ridge under ridge.py's protocol: the registry, the search on
training rows only, ridge untouched, and one-line refusals."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from sklearn.linear_model import RidgeClassifier

import oathcube.model as model_module
from oathcube import evaluate
from oathcube.classifiers import CLASSIFIERS, check_classifier, fit_classifier
from oathcube.cli import app
from oathcube.errors import OptionError
from oathcube.labels import TRAIN_FRACTION

SEARCHED = [name for name, spec in CLASSIFIERS.items() if spec.searched]


@pytest.fixture(scope="module")
def cube(cube_factory) -> Path:
    """The session's 90-image synthetic cube, read only (evaluate never writes)."""
    return cube_factory.template(None)


@pytest.fixture(scope="module")
def labelled(cube: Path) -> xr.Dataset:
    """The cube's labelled images in memory, for Datasets with planted features."""
    with xr.open_zarr(cube) as ds:
        return ds[["class6", "split", "features_published"]].load()


def test_registry_names() -> None:
    assert list(CLASSIFIERS) == [
        "ridge",
        "logistic",
        "linear_svm",
        "rbf_svm",
        "knn",
        "mlp",
        "lightgbm",
    ]
    assert not CLASSIFIERS["ridge"].searched and CLASSIFIERS["ridge"].grid == {}
    for name in SEARCHED:
        grid = CLASSIFIERS[name].grid
        assert grid and all(len(values) >= 2 for values in grid.values()), name
        assert check_classifier(name) is CLASSIFIERS[name]
    # Trees take the features unscaled, grown the same on any machine and thread count.
    lightgbm = CLASSIFIERS["lightgbm"]
    assert lightgbm.grid == {"num_leaves": (15, 31), "n_estimators": (100, 300)}
    pipeline = lightgbm.build(0.03)
    assert list(pipeline.named_steps) == ["model"]
    params = pipeline.named_steps["model"].get_params()
    assert params["random_state"] == 0 and params["deterministic"] and params["force_row_wise"]


@pytest.mark.usefixtures("small_lightgbm")
@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_each_classifier_runs_the_protocol(cube: Path, name: str) -> None:
    result = evaluate(cube, classifier=name)
    assert result.classifier == name and result.n_folds == 5
    assert len(result.fold_accuracies) == 5
    assert all(0.0 <= a <= 1.0 for a in result.fold_accuracies)
    assert result.confusion_matrix.shape == (6, 6)
    assert result.confusion_matrix.sum() == result.n_test
    assert result.fold_accuracies[-1] == np.trace(result.confusion_matrix) / result.n_test
    assert len(result.fold_macro_f1) == 5 and result.macro_f1 == result.fold_macro_f1[-1]
    assert 0.0 <= result.macro_f1 <= 1.0
    assert set(result.per_class) == set(result.class_names)
    if name == "ridge":
        assert result.chosen == [] and result.alpha == 0.03
    else:
        assert result.alpha is None and len(result.chosen) == 5
        grid = CLASSIFIERS[name].grid
        for params in result.chosen:
            assert set(params) == set(grid)
            # JSON-ready values from the recorded grid (tuples come back as lists)
            assert all(json.loads(json.dumps(v)) == v for v in params.values())
            assert all(
                any(json.loads(json.dumps(c)) == v for c in grid[key]) for key, v in params.items()
            )
    as_dict = json.loads(json.dumps(result.to_dict()))
    assert as_dict["classifier"] == name and as_dict["chosen"] == result.chosen


def _ridge_by_hand(
    ds: xr.Dataset, alpha: float, target: str = "class6"
) -> tuple[list[float], np.ndarray]:
    X = ds["features_published"].values.astype(np.float32)
    y = ds[target].values.astype(np.int64)
    ntrain = round(TRAIN_FRACTION * len(y))
    accuracies = []
    for fold in ds["split"].values:
        train_idx, test_idx = fold[:ntrain], fold[ntrain:]
        pred = RidgeClassifier(alpha=alpha).fit(X[train_idx], y[train_idx]).predict(X[test_idx])
        accuracies.append(float(np.mean(pred == y[test_idx])))
    return accuracies, pred


@pytest.mark.parametrize("alpha", [None, 0.03, 2.5])
def test_ridge_is_unchanged(cube: Path, labelled: xr.Dataset, alpha: float | None) -> None:
    expected, _ = _ridge_by_hand(labelled, 0.03 if alpha is None else alpha)
    result = evaluate(cube, alpha=alpha)
    assert result.fold_accuracies == expected  # exactly, not approximately
    assert result.classifier == "ridge" and result.chosen == []
    assert evaluate(cube, alpha=alpha, classifier="ridge").ridge_text() == result.ridge_text()
    fitted, chosen = fit_classifier("ridge", np.eye(4), np.array([0, 1, 0, 1]), 0.5)
    assert isinstance(fitted, RidgeClassifier) and fitted.alpha == 0.5 and chosen == {}


def _planted(labelled: xr.Dataset, fold: int, leak: bool) -> xr.Dataset:
    """One fold of the split, with an extra feature column that is the label on the
    fold's test rows (``leak``) or other noise there; the training rows are the same."""
    y = labelled["class6"].values
    row = labelled["split"].values[fold]
    test_idx = row[round(TRAIN_FRACTION * len(y)) :]
    extra = np.random.default_rng(7).normal(2.5, 1.5, len(y))
    if leak:
        extra[test_idx] = y[test_idx]
    else:
        extra[test_idx] = np.random.default_rng(8).normal(2.5, 1.5, len(test_idx))
    X = np.concatenate([labelled["features_published"].values, extra[:, None]], axis=1)
    return xr.Dataset(
        {
            "class6": labelled["class6"],
            "split": labelled["split"].isel(fold=slice(fold, fold + 1)),
            "features_planted": (("image", "planted"), X.astype(np.float32)),
        }
    )


def _fingerprint(fitted: Any, probe: np.ndarray) -> dict[str, Any]:
    """What a fitted model is, as far as a comparison can tell: its scaler, its
    predictions and decision values on fixed rows, its coefficients where it has them."""
    out: dict[str, Any] = {"predict": fitted.predict(probe)}
    if hasattr(fitted, "named_steps"):
        scaler = fitted.named_steps.get("scale")
        if scaler is not None:
            out["mean"], out["scale"] = scaler.mean_, scaler.scale_
        fitted = fitted.named_steps["model"]
    if hasattr(fitted, "booster_"):
        out["trees"] = fitted.booster_.model_to_string()
    for attr in ("coef_", "intercept_", "dual_coef_", "support_", "_fit_X"):
        if hasattr(fitted, attr):
            out[attr] = getattr(fitted, attr)
    if hasattr(fitted, "coefs_"):
        out["coefs_"] = list(fitted.coefs_)
    return out


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    try:
        np.testing.assert_equal(a, b)
    except AssertionError:
        return False
    return True


@pytest.mark.usefixtures("small_lightgbm")
@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_the_search_never_sees_test_rows(
    labelled: xr.Dataset, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # Changing only the test rows (to a column that gives their label away) changes
    # nothing in what is chosen or fitted: the scaler, the search and the model see the
    # training rows of the fold alone.
    fits: list[tuple[np.ndarray, Any, dict[str, Any]]] = []
    real: Callable[..., Any] = fit_classifier

    def spy(name: str, X_train: np.ndarray, y_train: np.ndarray, alpha: float) -> Any:
        fitted, chosen = real(name, X_train, y_train, alpha)
        fits.append((X_train.copy(), fitted, chosen))
        return fitted, chosen

    monkeypatch.setattr(model_module, "fit_classifier", spy)
    probe = np.random.default_rng(9).normal(0.0, 2.0, (20, labelled.sizes["logit"] + 1))
    for fold in (0, 3):
        leaky, clean = _planted(labelled, fold, True), _planted(labelled, fold, False)
        assert not np.array_equal(leaky["features_planted"], clean["features_planted"])
        fits.clear()
        with_leak = evaluate(leaky, "planted", classifier=name)
        without = evaluate(clean, "planted", classifier=name)
        assert with_leak.chosen == without.chosen
        (X_leak, fit_leak, chosen_leak), (X_clean, fit_clean, chosen_clean) = fits
        ntrain = round(TRAIN_FRACTION * labelled.sizes["image"])
        train_idx = labelled["split"].values[fold][:ntrain]
        np.testing.assert_array_equal(X_leak, leaky["features_planted"].values[train_idx])
        np.testing.assert_array_equal(X_leak, X_clean)
        assert chosen_leak == chosen_clean
        a, b = _fingerprint(fit_leak, probe), _fingerprint(fit_clean, probe)
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_equal(a[key], b[key], err_msg=key)
        # The control: had the fit seen the fold's test rows, the model would differ.
        rows = labelled["split"].values[fold]
        y = labelled["class6"].values
        seen = [
            _fingerprint(real(name, ds["features_planted"].values[rows], y[rows], 0.03)[0], probe)
            for ds in (leaky, clean)
        ]
        assert not _same(*seen)


@pytest.mark.usefixtures("small_lightgbm")
def test_same_rows_same_choice_and_model(labelled: xr.Dataset) -> None:
    X = labelled["features_published"].values.astype(np.float32)
    y = labelled["class6"].values.astype(np.int64)
    for name in SEARCHED:
        first, chosen = fit_classifier(name, X[:60], y[:60])
        again, chosen_again = fit_classifier(name, X[:60], y[:60])
        assert chosen == chosen_again, name
        np.testing.assert_array_equal(first.predict(X[60:]), again.predict(X[60:]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"classifier": "xgboost"}, "classifier: unknown classifier 'xgboost' "
         r"\(expected one of ridge, logistic, linear_svm, rbf_svm, knn, mlp, lightgbm\)"),
        ({"classifier": "knn", "alpha": 0.5}, "alpha: `alpha` 0.5 with `classifier` 'knn'"),
        ({"classifier": "mlp", "alpha": 0.03}, "alpha: `alpha` 0.03 with `classifier` 'mlp'"),
    ],
)  # fmt: skip
def test_refusals_are_one_line_before_any_work(kwargs: dict[str, Any], match: str) -> None:
    # The cube does not exist: the options are refused before anything is opened.
    with pytest.raises(OptionError, match=match) as err:
        evaluate("no/such/cube.zarr", **kwargs)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--classifier", "nope"], "oathcube: error: --classifier: unknown classifier 'nope'"),
        (
            ["--classifier", "knn", "--alpha", "0.5"],
            "oathcube: error: --alpha: --alpha 0.5 with --classifier 'knn'",
        ),
    ],
)
def test_cli_refusals(cube: Path, runner, args: list[str], expected: str) -> None:
    out = runner.invoke(app, ["evaluate", str(cube), *args])
    assert out.exit_code == 1
    assert out.output.startswith(expected) and out.output.count("\n") == 1, out.output


def test_cli_prints_the_choices_and_macro_f1(cube: Path, runner) -> None:
    result = evaluate(cube, classifier="knn")
    out = runner.invoke(app, ["evaluate", str(cube), "--classifier", "knn"])
    assert out.exit_code == 0, out.output
    assert out.output.startswith(result.ridge_text() + "\n")
    assert f"macro-F1 (last fold): {result.macro_f1:.3f}" in out.output
    for k, params in enumerate(result.chosen):
        shown = ", ".join(f"{key}={value}" for key, value in params.items())
        assert f"  fold {k}: {shown}\n" in out.output
    as_json = json.loads(
        runner.invoke(app, ["evaluate", str(cube), "--classifier", "knn", "--json"]).output
    )
    assert as_json["classifier"] == "knn" and as_json["alpha"] is None
    assert as_json["chosen"] == result.chosen and as_json["macro_f1"] == result.macro_f1
    ridge = runner.invoke(app, ["evaluate", str(cube)]).output
    assert "macro-F1" not in ridge and "hyperparameters" not in ridge


def test_too_few_rows_for_a_search_is_one_line() -> None:
    X = np.random.default_rng(0).normal(size=(20, 5))
    y = np.arange(20) % 2
    with pytest.raises(
        OptionError, match=r"20 training images are too few for knn's search \(expected at least 24"
    ) as err:
        fit_classifier("knn", X, y)
    assert "\n" not in str(err.value) and err.value.parameter == "classifier"
    fit_classifier("knn", np.concatenate([X, X[:4]]), np.concatenate([y, y[:4]]))
