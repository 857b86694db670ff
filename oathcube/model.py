"""Ridge classifiers on the cube: ridge.py's protocol, and models stored as arrays.

:func:`evaluate` is ``code/ridge.py`` of the OATH tarball restated on the cube
(``RidgeClassifier(alpha)``; for each row of ``split`` the first
``round(0.7 * N)`` positions train, the rest test; mean and population std of the
test accuracies; confusion matrix of the last fold).  It feeds scikit-learn the
same float32 rows in the same order as ridge.py does, so the printed numbers are
identical.  :func:`train` fits one classifier on every labelled image and keeps it
in the cube as plain arrays (no pickle): ``models/<name>`` with ``coef``,
``intercept`` and the class names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sklearn
import xarray as xr
from sklearn.linear_model import RidgeClassifier
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from .cube.read import _open_zarr, group_at, live_group, open_cube
from .cube.schema import (
    CLASS2_NAMES,
    CLASS6_NAMES,
    IGNORED_SETTINGS,
    MODEL_GROUP,
    model_group,
    provenance,
)
from .cube.write import publish_metadata
from .errors import CubeError, ModelError

__all__ = [
    "Evaluation",
    "evaluate",
    "train",
    "load_model",
    "list_models",
    "decision_scores",
    "feature_matrix",
]


@dataclass
class Evaluation:
    """The result of ridge.py's protocol on a cube."""

    features: str
    target: str
    alpha: float
    class_names: list[str]
    fold_accuracies: list[float]
    confusion_matrix: np.ndarray
    per_class: dict[str, dict[str, float]]
    n_train: int
    n_test: int
    aurora_tpr: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def accuracy_mean(self) -> float:
        """Mean test accuracy over the folds (what ridge.py prints first)."""
        return float(np.mean(self.fold_accuracies))

    @property
    def accuracy_std(self) -> float:
        """Population standard deviation of the fold accuracies (numpy's default)."""
        return float(np.std(self.fold_accuracies))

    def ridge_text(self) -> str:
        """Exactly what ridge.py prints: mean and std, then the last fold's matrix."""
        acc = np.array(self.fold_accuracies)
        return f"{np.mean(acc)} {np.std(acc)}\n{self.confusion_matrix}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (the ``--json`` output)."""
        out: dict[str, Any] = {
            "features": self.features,
            "target": self.target,
            "alpha": self.alpha,
            "accuracy_mean": self.accuracy_mean,
            "accuracy_std": self.accuracy_std,
            "fold_accuracies": list(self.fold_accuracies),
            "confusion_matrix": self.confusion_matrix.tolist(),
            "class_names": self.class_names,
            "per_class": self.per_class,
            "n_train": self.n_train,
            "n_test": self.n_test,
        }
        if self.aurora_tpr is not None:
            out["aurora_true_positive_rate"] = self.aurora_tpr
        out.update(self.extra)
        return out


def _features_variable(ds: xr.Dataset, features: str) -> str:
    var = features if features.startswith("features_") else f"features_{features}"
    if var not in ds:
        have = sorted(
            str(v).removeprefix("features_") for v in ds.data_vars if str(v).startswith("features_")
        )
        raise CubeError(
            f"no features called {features!r}",
            expected=f"one of {', '.join(have) or '(none)'}"
            " (compute them with `oathcube features`)",
        )
    return var


def feature_matrix(ds: xr.Dataset, features: str) -> tuple[np.ndarray, str]:
    """Return the float32 ``(image, feature)`` matrix of ``features`` and its variable name.

    Raises
    ------
    CubeError
        The variable is missing or has unwritten (NaN) rows: an unfinished run.
    """
    var = _features_variable(ds, features)
    values = np.asarray(ds[var].values, dtype=np.float32)
    missing = ~np.isfinite(values).all(axis=1)
    if missing.any():
        raise CubeError(
            f"{var} is incomplete: {int(missing.sum())} of {len(values)} rows not computed",
            expected="a finished `oathcube features` run (rerun it to resume)",
        )
    return values, var


def _target(ds: xr.Dataset, target: str) -> tuple[np.ndarray, list[str]]:
    if target not in ("class6", "class2"):
        raise ModelError(f"unknown target {target!r}", expected="class6 or class2")
    names = list(CLASS6_NAMES if target == "class6" else CLASS2_NAMES)
    return np.asarray(ds[target].values).astype(np.int64), names


def evaluate(
    cube: str | xr.Dataset,
    features: str = "published",
    target: str = "class6",
    alpha: float = 0.03,
) -> Evaluation:
    """Run ridge.py's protocol on the cube's ``features_<features>``.

    Parameters
    ----------
    cube
        A cube path or an opened cube.
    features
        ``published`` (the archive's auroral_feat.h5) or an extractor name.
    target
        ``class6`` (six classes) or ``class2`` (aurora / no aurora).
    alpha
        Ridge regularisation (ridge.py uses 0.03).
    """
    ds = open_cube(cube) if not isinstance(cube, xr.Dataset) else cube
    X, var = feature_matrix(ds, features)
    y, names = _target(ds, target)
    split = np.asarray(ds["split"].values).astype(np.int64)
    n = len(y)
    ntrain = round(0.7 * n)
    accuracies: list[float] = []
    for fold in split:
        train_idx, test_idx = fold[:ntrain], fold[ntrain:]
        clf = RidgeClassifier(alpha=alpha)
        clf.fit(X[train_idx], y[train_idx])
        pred = clf.predict(X[test_idx])
        accuracies.append(float(np.mean(pred == y[test_idx])))
    labels = list(range(len(names)))
    cm = confusion_matrix(y[test_idx], pred, labels=labels)
    precision, recall, _, support = precision_recall_fscore_support(
        y[test_idx], pred, labels=labels, zero_division=0
    )
    per_class = {
        names[k]: {
            "precision": float(precision[k]),
            "recall": float(recall[k]),
            "support": int(support[k]),
        }
        for k in labels
    }
    tpr = None
    if target == "class6":
        aurora = y[test_idx] <= 2
        tpr = float(np.mean(pred[aurora] <= 2)) if aurora.any() else float("nan")
    return Evaluation(
        features=var,
        target=target,
        alpha=alpha,
        class_names=names,
        fold_accuracies=accuracies,
        confusion_matrix=cm,
        per_class=per_class,
        n_train=ntrain,
        n_test=n - ntrain,
        aurora_tpr=tpr,
    )


def _settings(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if k not in IGNORED_SETTINGS}


def train(
    cube: str,
    features: str,
    target: str = "class6",
    alpha: float = 0.03,
    name: str | None = None,
) -> str:
    """Fit a ridge classifier on every labelled image and store it in the cube.

    The model lives in ``models/<name>`` as arrays: ``coef(decision, feature)``,
    ``intercept(decision)``, ``classes(class)`` (names) and ``train_image`` (the
    picNums it saw); attributes record the features variable and its settings,
    alpha, the target and provenance.  Returns the model name.
    """
    ds = open_cube(cube)
    X, var = feature_matrix(ds, features)
    y, names = _target(ds, target)
    clf = RidgeClassifier(alpha=alpha).fit(X, y)
    name = name or f"{var.removeprefix('features_')}_{target}"
    model = xr.Dataset(
        {
            "coef": (("decision", "feature"), np.atleast_2d(clf.coef_).astype(np.float64)),
            "intercept": ("decision", np.atleast_1d(clf.intercept_).astype(np.float64)),
            "classes": ("class", np.array([names[c] for c in clf.classes_], dtype=object)),
            "class_index": ("class", clf.classes_.astype(np.int8)),
            "train_image": ("train", ds["image"].values.astype(np.int32)),
        },
        attrs=provenance(
            model="sklearn.linear_model.RidgeClassifier",
            sklearn_version=sklearn.__version__,
            features=var,
            feature_settings=json.dumps(_settings(dict(ds[var].attrs)), sort_keys=True),
            target=target,
            alpha=alpha,
            n_train=len(y),
            training_accuracy=float(clf.score(X, y)),
            decision_rule="scores = features @ coef.T + intercept; one decision row per class, "
            "or one row for two classes (positive = the second class)",
        ),
    )
    model.to_zarr(cube, group=model_group(name), mode="w", zarr_format=3, consolidated=False)
    publish_metadata(cube)
    return name


def list_models(cube: str) -> list[str]:
    """Names of the models stored in the cube."""
    root = live_group(str(cube), "r")
    if MODEL_GROUP not in root:
        return []
    return sorted(name for name, _ in group_at(root, MODEL_GROUP).groups())


def load_model(cube: str, name: str) -> xr.Dataset:
    """Open the stored model ``name`` (arrays only, loaded into memory)."""
    models = list_models(cube)
    if name not in models:
        raise ModelError(
            f"no model {name!r} in the cube",
            path=cube,
            expected=f"one of {', '.join(models) or '(none: run oathcube train)'}",
        )
    return _open_zarr(cube, group=model_group(name), consolidated=False).load()


def decision_scores(model: xr.Dataset, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(class index, scores (n, class))`` of a stored model for features ``X``.

    For a two-class model the score columns are ``-d`` and ``d``, where ``d`` is
    scikit-learn's decision function (positive means the second class).
    """
    coef = model["coef"].values
    if X.shape[1] != coef.shape[1]:
        raise ModelError(
            f"features have {X.shape[1]} columns",
            path=model.attrs.get("features"),
            expected=f"{coef.shape[1]} as the model was trained",
        )
    d = X.astype(np.float64) @ coef.T + model["intercept"].values
    if coef.shape[0] == 1:
        scores = np.concatenate([-d, d], axis=1)
    else:
        scores = d
    index = model["class_index"].values[np.argmax(scores, axis=1)]
    return index.astype(np.int8), scores.astype(np.float32)


def check_feature_settings(model: xr.Dataset, attrs: dict[str, Any], where: str) -> None:
    """Refuse features computed with other settings than the model was trained on."""
    trained = json.loads(model.attrs.get("feature_settings", "{}"))
    now = _settings(attrs)
    diff = [k for k in trained if trained[k] != now.get(k)]
    if diff:
        raise ModelError(
            f"features differ from the model's training features in {', '.join(diff)}",
            path=where,
            expected=json.dumps(trained),
        )
