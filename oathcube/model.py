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
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from .classifiers import RIDGE_ALPHA, check_classifier, fit_classifier, ridge_classifier
from .cube.schema import (
    BUILDING,
    STATUS,
    extractor_of,
    feature_sets,
    features_name,
    model_group,
    model_specs,
    provenance,
)
from .cube.store import Cube, CubeLike
from .errors import CubeError, ModelError, OptionError
from .faults import kill_point
from .features import spec_from_attrs, value_settings
from .labels import TARGETS, TRAIN_FRACTION, class_names

__all__ = [
    "Evaluation",
    "evaluate",
    "train",
    "load_model",
    "list_models",
    "decision_scores",
    "feature_matrix",
    "check_alpha",
    "check_target",
    "model_spec",
]


@dataclass
class Evaluation:
    """The result of ridge.py's protocol on a cube, with ridge or another classifier.

    ``confusion_matrix``, ``per_class`` (precision, recall, support), ``aurora_tpr``
    and ``macro_f1`` are the last fold's, as ridge.py's matrix is; ``fold_accuracies``,
    ``fold_macro_f1`` and ``chosen`` have one entry per fold.  ``alpha`` is ridge's
    (None for another classifier); ``chosen`` holds, per fold, the hyperparameters the
    search on that fold's training rows chose (empty for ridge, which searches nothing).
    """

    features: str
    target: str
    alpha: float | None
    class_names: list[str]
    fold_accuracies: list[float]
    confusion_matrix: np.ndarray
    per_class: dict[str, dict[str, float]]
    n_train: int
    n_test: int
    aurora_tpr: float | None = None
    n_folds: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    classifier: str = "ridge"
    chosen: list[dict[str, Any]] = field(default_factory=list)
    fold_macro_f1: list[float] = field(default_factory=list)
    macro_f1: float = float("nan")

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
            "classifier": self.classifier,
            "alpha": self.alpha,
            "accuracy_mean": self.accuracy_mean,
            "accuracy_std": self.accuracy_std,
            "fold_accuracies": list(self.fold_accuracies),
            "confusion_matrix": self.confusion_matrix.tolist(),
            "class_names": self.class_names,
            "per_class": self.per_class,
            "macro_f1": self.macro_f1,
            "fold_macro_f1": list(self.fold_macro_f1),
            "chosen": [dict(c) for c in self.chosen],
            "n_train": self.n_train,
            "n_test": self.n_test,
            "n_folds": self.n_folds,
        }
        if self.aurora_tpr is not None:
            out["aurora_true_positive_rate"] = self.aurora_tpr
        out.update(self.extra)
        return out


def _features_variable(ds: xr.Dataset, features: str) -> str:
    var = features if extractor_of(features) else features_name(features)
    if var not in ds:
        have = feature_sets(ds.data_vars)
        raise CubeError(
            f"no features called {features!r}",
            expected=f"one of {', '.join(have) or '(none)'}"
            " (compute them with `oathcube features`)",
        )
    return var


def feature_matrix(
    ds: xr.Dataset, features: str, cube: Cube | None = None
) -> tuple[np.ndarray, str]:
    """Return the float32 ``(image, feature)`` matrix of ``features`` and its variable name.

    Parameters
    ----------
    ds
        The labelled images.
    features
        ``published`` or an extractor name.
    cube
        The Cube ``ds`` came from: the matrix is then read from its store, and a
        damaged chunk (or a missing one of the published features) is named in the error.

    Raises
    ------
    CubeError
        The variable is missing, has unwritten (NaN) rows (an unfinished run), or
        a damaged chunk.
    """
    var = _features_variable(ds, features)
    # build writes every chunk of the published features: one missing is damage. A
    # computed chunk not in the store is one not computed yet (NaN), refused below.
    raw = (
        ds[var].values
        if cube is None
        else cube.read_checked(var, whole=var == features_name("published"))
    )
    values = np.asarray(raw, dtype=np.float32)
    missing = ~np.isfinite(values).all(axis=1)
    if missing.any():
        raise CubeError(
            f"{var} is incomplete: {int(missing.sum())} of {len(values)} rows not computed",
            path=None if cube is None else cube.location,
            expected="a finished `oathcube features` run (rerun it to resume)",
        )
    return values, var


def check_target(target: str) -> str:
    """Refuse a target other than ``class6`` or ``class2`` (before any work starts)."""
    if target not in TARGETS:
        raise OptionError(
            f"unknown target {target!r}", parameter="target", expected="class6 or class2"
        )
    return target


def check_alpha(alpha: float) -> float:
    """Refuse a ridge alpha that is negative, NaN or infinite (before any work starts)."""
    if not (isinstance(alpha, int | float) and math.isfinite(alpha) and alpha >= 0):
        raise OptionError(
            f"alpha {alpha}",
            parameter="alpha",
            expected="a finite number of 0 or more (ridge.py: 0.03)",
        )
    return float(alpha)


def _labels(ds: xr.Dataset, name: str, cube: Cube | None) -> np.ndarray:
    """Labels or the split as int64, read through the chunk check when the cube is known.

    Nothing is scored or trained on a chunk missing from the store (it would read as
    class 0 or image 0) or one cut short (a codec traceback otherwise).
    """
    if name not in ds:
        raise CubeError(
            f"the cube has no {name!r}",
            path=None if cube is None else cube.location,
            expected="a cube built from an OATH archive (oathcube build)",
        )
    if cube is None:
        return np.asarray(ds[name].values).astype(np.int64)
    rows = tuple(slice(0, n) for n in ds[name].shape)
    return cube.read_checked(name, rows).astype(np.int64)


def _target(ds: xr.Dataset, target: str, cube: Cube | None) -> tuple[np.ndarray, list[str]]:
    check_target(target)
    return _labels(ds, target, cube), list(class_names(target))


def _labelled(
    cube: CubeLike | xr.Dataset, storage_options: dict[str, Any] | None = None
) -> tuple[xr.Dataset, Cube | None]:
    if isinstance(cube, xr.Dataset):
        return cube, None
    opened = Cube.open(cube, storage_options=storage_options)
    return opened.labelled(), opened


def evaluate(
    cube: CubeLike | xr.Dataset,
    features: str = "published",
    *,
    target: str = "class6",
    alpha: float | None = None,
    classifier: str = "ridge",
    storage_options: dict[str, Any] | None = None,
) -> Evaluation:
    """Run ridge.py's protocol on the cube's ``features_<features>``.

    For each row of ``split`` the first ``round(0.7 * N)`` positions train and the rest
    test, whatever the classifier; the result holds each fold's test accuracy and
    macro-F1 and the last fold's confusion matrix, per-class scores and macro-F1.
    ``ridge`` is ridge.py's ``RidgeClassifier(alpha)`` and gives exactly ridge.py's
    numbers; another classifier of :data:`~oathcube.classifiers.CLASSIFIERS` chooses its
    hyperparameters in each fold by a search on that fold's training rows only
    (:func:`~oathcube.classifiers.fit_classifier`), recorded in ``Evaluation.chosen``.

    Parameters
    ----------
    cube
        A cube path, a :class:`~oathcube.cube.store.Cube`, or its labelled Dataset.
    features
        ``published`` (the archive's auroral_feat.h5) or an extractor name.
    target
        ``class6`` (six classes) or ``class2`` (aurora / no aurora).
    alpha
        Ridge regularisation (None: ridge.py's 0.03).  Ridge only: an ``alpha`` given
        with another classifier is refused, never ignored.
    classifier
        ``ridge`` (ridge.py's), ``logistic``, ``linear_svm``, ``rbf_svm``, ``knn`` or
        ``mlp``.
    storage_options
        fsspec options of a cube at a URL (credentials, an endpoint), as for
        :meth:`~oathcube.cube.store.Cube.open`; or pass a Cube that carries them.

    Raises
    ------
    OptionError
        An unknown target or classifier, a bad ``alpha``, or an ``alpha`` given with a
        classifier other than ridge (all before anything is read).
    CubeError
        The features, labels or split are missing or damaged, or a fold trains on one
        class only.
    """
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    check_target(target)
    spec = check_classifier(classifier, alpha)
    # alpha is ridge's alone: check_classifier refused one given with another classifier.
    ridge_alpha = None if spec.searched else check_alpha(RIDGE_ALPHA if alpha is None else alpha)
    fit_alpha = RIDGE_ALPHA if ridge_alpha is None else ridge_alpha
    ds, opened = _labelled(cube, storage_options)
    # Labels and the split first: they are small, and a damaged one stops before the
    # features are read.
    y, names = _target(ds, target, opened)
    split = _labels(ds, "split", opened)
    X, var = feature_matrix(ds, features, opened)
    n = len(y)
    ntrain = round(TRAIN_FRACTION * n)
    if ntrain < 2 or n - ntrain < 1:
        raise CubeError(
            f"{n} labelled image{'s' if n != 1 else ''}: ridge.py's protocol trains on "
            f"{ntrain} and tests on {n - ntrain}",
            path=None if opened is None else opened.location,
            expected="at least 4 labelled images",
        )
    if len(split) == 0:
        raise CubeError(
            "the split has no folds",
            path=None if opened is None else opened.location,
            member="split",
            expected="one row of image indices per fold (OATH has 5)",
        )
    accuracies: list[float] = []
    macro_f1: list[float] = []
    chosen: list[dict[str, Any]] = []
    for k, fold in enumerate(split):
        train_idx, test_idx = fold[:ntrain], fold[ntrain:]
        if np.unique(y[train_idx]).size < 2:
            raise CubeError(
                f"fold {k} trains on one class only",
                path=None if opened is None else opened.location,
                member="split",
                expected=f"training images of at least two {target} classes",
            )
        # The classifier (and a search of its hyperparameters) sees the training rows
        # only; the test rows are predicted once, by the model fitted on them.
        clf, params = fit_classifier(classifier, X[train_idx], y[train_idx], fit_alpha)
        pred = clf.predict(X[test_idx])
        accuracies.append(float(np.mean(pred == y[test_idx])))
        # Over the classes in the fold's test truth or predictions.
        macro_f1.append(float(f1_score(y[test_idx], pred, average="macro", zero_division=0)))
        if spec.searched:
            chosen.append(params)
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
        alpha=ridge_alpha,
        class_names=names,
        fold_accuracies=accuracies,
        confusion_matrix=cm,
        per_class=per_class,
        n_train=ntrain,
        n_test=n - ntrain,
        aurora_tpr=tpr,
        n_folds=len(accuracies),
        classifier=classifier,
        chosen=chosen,
        fold_macro_f1=macro_f1,
        macro_f1=macro_f1[-1],
    )


def train(
    cube: CubeLike,
    features: str,
    *,
    target: str = "class6",
    alpha: float = 0.03,
    name: str | None = None,
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> str:
    """Fit a ridge classifier on every labelled image and store it in the cube.

    The model lives in ``models/<name>`` as arrays: ``coef(decision, feature)``,
    ``intercept(decision)``, ``classes(class)`` (names) and ``train_image`` (the
    picNums it saw); attributes record the features variable and its settings,
    alpha, the target and provenance.  Returns the model name.  An existing model
    of that name is replaced only with ``overwrite``; a model whose training was
    interrupted is replaced by the next run.  ``storage_options``: fsspec options of a
    cube at a URL, as for :meth:`~oathcube.cube.store.Cube.open`.
    """
    import sklearn

    check_target(target)
    alpha = check_alpha(alpha)
    cube = Cube.open(cube, "r+", storage_options=storage_options)
    ds = cube.labelled()
    _features_variable(ds, features)  # an unknown name is refused before anything is read
    y, names = _target(ds, target, cube)
    X, var = feature_matrix(ds, features, cube)
    if np.unique(y).size < 2:
        raise CubeError(
            f"every labelled image is of one {target} class",
            path=cube.location,
            expected="images of at least two classes to train on",
        )
    clf = ridge_classifier(alpha).fit(X, y)
    name = name or f"{extractor_of(var)}_{target}"
    if not name.replace("_", "").replace("-", "").isalnum():
        raise OptionError(
            f"model name {name!r}", parameter="name", expected="letters, digits, _ or -"
        )
    spec = model_specs()
    model = xr.Dataset(
        {
            "coef": spec["coef"].variable(np.atleast_2d(clf.coef_)),
            "intercept": spec["intercept"].variable(np.atleast_1d(clf.intercept_)),
            "classes": spec["classes"].variable([names[c] for c in clf.classes_]),
            "class_index": spec["class_index"].variable(clf.classes_),
            "train_image": spec["train_image"].variable(ds["image"].values),
        },
        attrs=provenance(
            model="sklearn.linear_model.RidgeClassifier",
            sklearn_version=sklearn.__version__,
            features=var,
            feature_settings=json.dumps(value_settings(dict(ds[var].attrs)), sort_keys=True),
            target=target,
            alpha=alpha,
            n_train=len(y),
            training_accuracy=float(clf.score(X, y)),
            decision_rule="scores = features @ coef.T + intercept; one decision row per class, "
            "or one row for two classes (positive = the second class)",
        ),
    )
    path = model_group(name)
    with cube.writing("train"):
        if name in cube.models() and not overwrite:
            raise ModelError(
                f"model {name!r} exists",
                path=cube.where(path),
                expected="`overwrite` to replace it, or another `name`",
            )
        # The model is marked complete only after its last array is written: a
        # killed train leaves a model that is never listed nor applied.
        model.attrs[STATUS] = BUILDING
        cube.write_dataset(model, path)
        kill_point("train.arrays_written")
        cube.mark_complete(path)
        cube.publish()
    return name


def list_models(cube: CubeLike) -> list[str]:
    """Names of the models stored in the cube."""
    return Cube.open(cube, complete=False).models()


def load_model(cube: CubeLike, name: str) -> xr.Dataset:
    """Open the stored model ``name`` (arrays only, loaded into memory)."""
    return Cube.open(cube, complete=False).model(name)


def model_spec(model: xr.Dataset, local: Any = None) -> Any:
    """The feature extractor a stored model needs, rebuilt from its ``feature_settings``.

    Parameters
    ----------
    model
        A model from :func:`load_model`.
    local
        A settings object of the model's extractor whose ``LOCAL`` fields (where
        the checkpoint is, batch size, precision, engine, threads) are used;
        every field that changes values comes from the model's record.

    Returns
    -------
    FeatureSpec or None
        None for a model of the archive's published features (nothing to compute).
    """
    var = str(model.attrs["features"])
    extractor = extractor_of(var) or var
    if extractor == "published":
        return None
    settings = json.loads(model.attrs.get("feature_settings", "{}"))
    return spec_from_attrs(extractor, settings, local)


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
    now = value_settings(attrs)
    diff = [k for k in trained if trained[k] != now.get(k)]
    if diff:
        raise ModelError(
            f"features differ from the model's training features in {', '.join(diff)}",
            path=where,
            expected=json.dumps(trained),
        )
