"""ridge.py's protocol on the cube equals ridge.py run on the archive files; models as arrays."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from sklearn.linear_model import RidgeClassifier
from sklearn.metrics import confusion_matrix

from oathcube import build, evaluate, train
from oathcube.cli import app
from oathcube.errors import CubeError, ModelError
from oathcube.model import decision_scores, load_model

#: Row sums of the confusion matrix that ridge.py prints on the OATH page (last fold).
PUBLISHED_ROW_SUMS = [246, 334, 414, 235, 190, 328]


def ridge_py(root: Path, target: str = "class6", alpha: float = 0.03) -> tuple[str, np.ndarray]:
    """ridge.py's protocol, straight from the archive files (h5py 3 / sklearn 1.2+ spelling)."""
    with h5py.File(root / "features" / "auroral_feat.h5", "r") as f:
        data = f["Logits"][()]
    labels = pd.read_csv(root / "classifications" / "classifications.csv", skiprows=18)
    y = labels[target].values
    split = np.loadtxt(root / "classifications" / "train_test_split.csv", delimiter=",").astype(int)
    ndata = len(y)
    ntrain = round(0.7 * ndata)
    acc = []
    for i in range(split.shape[0]):
        train_idx, test_idx = split[i, :ntrain], split[i, ntrain:]
        clf = RidgeClassifier(alpha=alpha)
        clf.fit(data[train_idx], y[train_idx])
        acc.append(clf.score(data[test_idx], y[test_idx]))
        pred = clf.predict(data[test_idx])
    cm = confusion_matrix(y[test_idx], pred)
    return f"{np.mean(acc)} {np.std(acc)}\n{cm}", cm


@pytest.fixture
def cube(make_cube) -> Path:
    """The synthetic archive's cube in build's own chunking."""
    return make_cube(chunk_images=None)


@pytest.mark.parametrize("target", ["class6", "class2"])
def test_evaluate_prints_exactly_what_ridge_py_prints(
    cube: Path, archive: Path, runner, target: str
) -> None:
    expected, cm = ridge_py(archive, target)
    result = evaluate(cube, target=target)
    assert result.ridge_text() == expected
    out = runner.invoke(app, ["evaluate", str(cube), "--target", target])
    assert out.exit_code == 0, out.output
    assert out.output.startswith(expected + "\n")
    as_json = json.loads(
        runner.invoke(app, ["evaluate", str(cube), "--target", target, "--json"]).output
    )
    assert {
        "accuracy_mean",
        "accuracy_std",
        "fold_accuracies",
        "confusion_matrix",
        "per_class",
    } <= set(as_json)
    assert as_json["confusion_matrix"] == cm.tolist()
    assert as_json["accuracy_mean"] == result.accuracy_mean


@pytest.mark.slow
def test_real_split_gives_the_published_row_sums(real_text_archive: Path, tmp_path: Path) -> None:
    cube = build(real_text_archive, tmp_path / "real.zarr", progress=False)
    result = evaluate(cube)
    expected, _ = ridge_py(real_text_archive)
    assert result.ridge_text() == expected
    assert result.confusion_matrix.sum(axis=1).tolist() == PUBLISHED_ROW_SUMS
    assert result.n_train == 4077 and result.n_test == 1747
    assert result.fold_accuracies[-1] == np.trace(result.confusion_matrix) / 1747


def test_per_class_and_aurora_rate(cube: Path) -> None:
    result = evaluate(cube)
    cm = result.confusion_matrix
    arc = result.per_class["arc"]
    assert arc["recall"] == pytest.approx(cm[0, 0] / cm[0].sum())
    assert arc["precision"] == pytest.approx(cm[0, 0] / cm[:, 0].sum())
    assert result.aurora_tpr == pytest.approx(cm[:3, :3].sum() / cm[:3].sum())


def test_missing_features_name_the_choices(cube: Path, runner) -> None:
    with pytest.raises(CubeError, match="published"):
        evaluate(cube, features="inception_v4")
    out = runner.invoke(app, ["evaluate", str(cube), "--features", "nope"])
    assert out.exit_code == 1 and "no features called 'nope'" in out.output


@pytest.mark.parametrize("target", ["class6", "class2"])
def test_trained_model_is_arrays_and_predicts_like_sklearn(cube: Path, target: str) -> None:
    name = train(cube, "published", target=target)
    assert name == f"published_{target}"
    group = zarr.open_group(str(cube), mode="r")[f"models/{name}"]
    kinds = {key: group[key].dtype for key in group.array_keys()}
    assert all(
        np.dtype(d).kind in "fiu" or str(d) in ("StringDType()", "str") or "String" in str(d)
        for d in kinds.values()
    ), kinds
    model = load_model(str(cube), name)
    ds = xr.open_zarr(cube)
    X = ds.features_published.values
    y = ds[target].values
    clf = RidgeClassifier(alpha=0.03).fit(X, y)
    index, scores = decision_scores(model, X)
    np.testing.assert_array_equal(index, clf.predict(X))
    assert scores.shape == (len(X), 6 if target == "class6" else 2)
    assert model.attrs["alpha"] == 0.03 and model.attrs["features"] == "features_published"
    assert model["train_image"].size == ds.sizes["image"]


def test_unknown_model_is_a_clear_error(cube: Path) -> None:
    with pytest.raises(ModelError, match="no model 'x'"):
        load_model(str(cube), "x")


def test_evaluate_plot_writes_the_confusion_matrix(cube: Path, runner, tmp_path: Path) -> None:
    png = tmp_path / "cm.png"
    out = runner.invoke(app, ["evaluate", str(cube), "--plot", str(png)])
    assert out.exit_code == 0, out.output
    assert f"confusion matrix plot: {png}" in out.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
