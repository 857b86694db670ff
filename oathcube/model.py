"""Classifiers on the cube: ridge.py's protocol, and models stored as arrays.

:func:`evaluate` is ``code/ridge.py`` of the OATH tarball restated on the cube
(``RidgeClassifier(alpha)``; for each row of ``split`` the first
``round(0.7 * N)`` positions train, the rest test; mean and population std of the
test accuracies; confusion matrix of the last fold).  It feeds scikit-learn the
same float32 rows in the same order as ridge.py does, so the printed numbers are
identical; any other classifier of the registry runs the same protocol.
:func:`train` fits one classifier of the registry on every labelled image and keeps it
in the cube as plain arrays (:mod:`oathcube.model_arrays`; never a pickle):
``models/<name>`` with, for ridge, ``coef``, ``intercept`` and the class names.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from .classifiers import RIDGE_ALPHA, check_classifier, fit_classifier
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
from .model_arrays import check_model, predict, to_arrays

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
    ``fold_macro_f1``, ``fold_aurora_tpr`` (class6 only), ``chosen``, ``fit_seconds``
    and ``predict_seconds`` have one entry per fold.  ``alpha`` is ridge's (None for
    another classifier); ``chosen`` holds, per fold, the hyperparameters the search on
    that fold's training rows chose (empty for ridge, which searches nothing).
    ``fit_seconds`` is the wall time of a fold's fit, its search included;
    ``predict_seconds`` that of predicting the fold's ``n_test`` test rows (both
    :func:`time.perf_counter`, on the machine that ran it).
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
    fold_aurora_tpr: list[float] = field(default_factory=list)
    fit_seconds: list[float] = field(default_factory=list)
    predict_seconds: list[float] = field(default_factory=list)

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
            "fit_seconds": list(self.fit_seconds),
            "predict_seconds": list(self.predict_seconds),
            "n_train": self.n_train,
            "n_test": self.n_test,
            "n_folds": self.n_folds,
        }
        if self.aurora_tpr is not None:
            out["aurora_true_positive_rate"] = self.aurora_tpr
            out["fold_aurora_true_positive_rate"] = list(self.fold_aurora_tpr)
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


@dataclass(frozen=True)
class FoldScore:
    """One fold's scores on its test rows, computed in one place (:func:`score_fold`) for
    :func:`evaluate` and for the benchmark's held-out stations."""

    accuracy: float
    macro_f1: float
    confusion_matrix: np.ndarray
    per_class: dict[str, dict[str, float]]
    aurora_tpr: float | None


def score_fold(y_true: np.ndarray, pred: np.ndarray, names: list[str], target: str) -> FoldScore:
    """Score one fold's predictions of its test rows.

    Parameters
    ----------
    y_true, pred
        The test rows' true and predicted class indices.
    names
        The target's class names, by class index.
    target
        ``class6`` or ``class2``: the aurora true-positive rate is class6's alone.

    Returns
    -------
    FoldScore
        The accuracy; the macro-F1 over the classes present in ``y_true`` or ``pred``
        (scikit-learn's ``f1_score`` without ``labels``: a class in neither counts
        neither for nor against); the confusion matrix and per-class precision, recall
        and support over every class of ``names``; and for class6 the 2-class aurora
        TPR, the share of aurora images (classes 0-2) predicted as one of the aurora
        classes (NaN when the test rows hold none), else None.
    """
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    labels = list(range(len(names)))
    precision, recall, _, support = precision_recall_fscore_support(
        y_true, pred, labels=labels, zero_division=0
    )
    tpr = None
    if target == "class6":
        aurora = y_true <= 2
        tpr = float(np.mean(pred[aurora] <= 2)) if aurora.any() else float("nan")
    return FoldScore(
        accuracy=float(np.mean(pred == y_true)),
        macro_f1=float(f1_score(y_true, pred, average="macro", zero_division=0)),
        confusion_matrix=confusion_matrix(y_true, pred, labels=labels),
        per_class={
            names[k]: {
                "precision": float(precision[k]),
                "recall": float(recall[k]),
                "support": int(support[k]),
            }
            for k in labels
        },
        aurora_tpr=tpr,
    )


def fit_predict(
    classifier: str,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    alpha: float = RIDGE_ALPHA,
) -> tuple[np.ndarray, dict[str, Any], float, float]:
    """Fit ``classifier`` on the training rows alone, then predict the test rows once.

    Parameters
    ----------
    classifier
        A name of :data:`~oathcube.classifiers.CLASSIFIERS`.
    X_train, y_train
        The only rows the scaler, the search and the model see.
    X_test
        The rows to predict.
    alpha
        Ridge's alpha (ridge only).

    Returns
    -------
    pred
        The predicted class of each test row.
    chosen
        The hyperparameters the search on the training rows chose (empty for ridge).
    fit_seconds, predict_seconds
        Wall time (:func:`time.perf_counter`) of the fit, its search included, and of
        the prediction of all of ``X_test``.
    """
    # Import the model's scikit-learn modules (and the search's) before the clock starts:
    # a first fold would otherwise time an import, a quarter of a second, not a fit.
    check_classifier(classifier).build(alpha)
    import sklearn.model_selection  # noqa: F401

    start = time.perf_counter()
    fitted, chosen = fit_classifier(classifier, X_train, y_train, alpha)
    fitted_at = time.perf_counter()
    pred = fitted.predict(X_test)
    return pred, chosen, fitted_at - start, time.perf_counter() - fitted_at


def check_split(split: np.ndarray, y: np.ndarray, target: str, where: str | None = None) -> int:
    """Return ridge.py's number of training positions, refusing a split it cannot run on.

    Parameters
    ----------
    split
        ``(fold, rank)`` image indices: the first ``round(0.7 * N)`` of a row train.
    y
        The labels of ``target``, one per labelled image (``N`` of them).
    target
        Named in the error of a fold whose training part holds one class.
    where
        The cube's location, named in errors.

    Raises
    ------
    CubeError
        Too few images for 70/30, no folds, or a fold that names an image that does not
        exist, leaks (an image at both a training and a test position), repeats an
        image, or trains on one class only: each says which fold.
    """
    n = len(y)
    ntrain = round(TRAIN_FRACTION * n)
    if ntrain < 2 or n - ntrain < 1:
        raise CubeError(
            f"{n} labelled image{'s' if n != 1 else ''}: ridge.py's protocol trains on "
            f"{ntrain} and tests on {n - ntrain}",
            path=where,
            expected="at least 4 labelled images",
        )
    if len(split) == 0:
        raise CubeError(
            "the split has no folds",
            path=where,
            member="split",
            expected="one row of image indices per fold (OATH has 5)",
        )
    for k, fold in enumerate(split):
        outside = fold[(fold < 0) | (fold >= n)]
        if outside.size:
            raise CubeError(
                f"fold {k} of the split names image index {outside[0]}",
                path=where,
                member="split",
                expected=f"indices 0 to {n - 1} of the {n} labelled images",
            )
        train_idx, test_idx = fold[:ntrain], fold[ntrain:]
        # A test image also trained on would inflate the score without a trace in it.
        both = np.intersect1d(train_idx, test_idx)
        if both.size:
            more = f" ({both.size} images in all)" if both.size > 1 else ""
            raise CubeError(
                f"fold {k} of the split leaks: image index {both[0]} is at a training and "
                f"a test position{more}",
                path=where,
                member="split",
                expected="each image at one position of a fold, training or test",
            )
        values, counts = np.unique(fold, return_counts=True)
        if (counts > 1).any():
            raise CubeError(
                f"fold {k} of the split repeats image index {values[counts > 1][0]}",
                path=where,
                member="split",
                expected="each image at one position of a fold, training or test",
            )
        if np.unique(y[train_idx]).size < 2:
            raise CubeError(
                f"fold {k} trains on one class only",
                path=where,
                member="split",
                expected=f"training images of at least two {target} classes",
            )
    return ntrain


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
    Each fold's fit (with its search) and prediction are timed (``fit_seconds``,
    ``predict_seconds``).

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
        The features, labels or split are missing or damaged, or a fold of the split
        leaks, repeats an image or trains on one class only (:func:`check_split`,
        before the features are read).
    """
    check_target(target)
    spec = check_classifier(classifier, alpha)
    # alpha is ridge's alone: check_classifier refused one given with another classifier.
    ridge_alpha = None if spec.searched else check_alpha(RIDGE_ALPHA if alpha is None else alpha)
    ds, opened = _labelled(cube, storage_options)
    where = None if opened is None else opened.location
    # Labels and the split first: they are small, and a damaged or leaking one stops
    # before the features are read.
    y, _ = _target(ds, target, opened)
    split = _labels(ds, "split", opened)
    check_split(split, y, target, where)
    X, var = feature_matrix(ds, features, opened)
    return evaluate_arrays(
        X,
        y,
        split,
        features=var,
        target=target,
        classifier=classifier,
        alpha=ridge_alpha,
        where=where,
    )


def evaluate_arrays(
    X: np.ndarray,
    y: np.ndarray,
    split: np.ndarray,
    *,
    features: str,
    target: str,
    classifier: str = "ridge",
    alpha: float | None = None,
    where: str | None = None,
) -> Evaluation:
    """ridge.py's protocol on arrays already read: the body of :func:`evaluate`.

    The benchmark reads each feature matrix once and runs every classifier on it here,
    so its oath protocol gives exactly :func:`evaluate`'s numbers.

    Parameters
    ----------
    X
        The float32 ``(image, feature)`` matrix (:func:`feature_matrix`).
    y
        The labels of ``target``, one per image.
    split
        ``(fold, rank)`` image indices; the first ``round(0.7 * N)`` of a row train.
    features
        The features variable's name, recorded in the result.
    target
        ``class6`` or ``class2``.
    classifier
        A name of :data:`~oathcube.classifiers.CLASSIFIERS`.
    alpha
        Ridge's alpha (None: ridge.py's 0.03; must be None for another classifier).
    where
        The cube's location, named in errors.

    Raises
    ------
    CubeError
        The split cannot be run honestly (:func:`check_split`).
    """
    spec = check_classifier(classifier, alpha)
    names = list(class_names(target))
    ntrain = check_split(split, y, target, where)
    fit_alpha = RIDGE_ALPHA if alpha is None else alpha
    folds: list[FoldScore] = []
    chosen: list[dict[str, Any]] = []
    fit_seconds: list[float] = []
    predict_seconds: list[float] = []
    for fold in split:
        train_idx, test_idx = fold[:ntrain], fold[ntrain:]
        # The classifier (and a search of its hyperparameters) sees the training rows
        # only; the test rows are predicted once, by the model fitted on them.
        pred, params, fit_s, predict_s = fit_predict(
            classifier, X[train_idx], y[train_idx], X[test_idx], fit_alpha
        )
        folds.append(score_fold(y[test_idx], pred, names, target))
        fit_seconds.append(fit_s)
        predict_seconds.append(predict_s)
        if spec.searched:
            chosen.append(params)
    last = folds[-1]
    return Evaluation(
        features=features,
        target=target,
        alpha=alpha,
        class_names=names,
        fold_accuracies=[f.accuracy for f in folds],
        confusion_matrix=last.confusion_matrix,
        per_class=last.per_class,
        n_train=ntrain,
        n_test=len(y) - ntrain,
        aurora_tpr=last.aurora_tpr,
        n_folds=len(folds),
        classifier=classifier,
        chosen=chosen,
        fold_macro_f1=[f.macro_f1 for f in folds],
        macro_f1=last.macro_f1,
        fold_aurora_tpr=[f.aurora_tpr for f in folds if f.aurora_tpr is not None],
        fit_seconds=fit_seconds,
        predict_seconds=predict_seconds,
    )


def train(
    cube: CubeLike,
    features: str,
    *,
    target: str = "class6",
    alpha: float | None = None,
    classifier: str = "ridge",
    name: str | None = None,
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> str:
    """Fit a classifier on every labelled image and store it in the cube as arrays.

    ``ridge`` is ridge.py's ``RidgeClassifier(alpha)``; another classifier of
    :data:`~oathcube.classifiers.CLASSIFIERS` chooses its hyperparameters by its search
    on all the labelled images (:func:`~oathcube.classifiers.fit_classifier`).  The model
    lives in ``models/<name>`` as arrays (:func:`oathcube.model_arrays.to_arrays`: for
    ridge ``coef(decision, feature)`` and ``intercept(decision)``), with ``classes``
    (names), ``class_index`` and ``train_image`` (the picNums it saw); attributes record
    the classifier, the hyperparameters chosen (``chosen``), what its scores are, the
    features variable and its settings, ``alpha`` (ridge), the target, the training
    accuracy and provenance.  Nothing is pickled.

    Parameters
    ----------
    cube
        Path, URL or :class:`~oathcube.cube.store.Cube`.
    features
        ``published`` or an extractor name.
    target
        ``class6`` or ``class2``.
    alpha
        Ridge's regularisation (None: ridge.py's 0.03).  Ridge only: an ``alpha`` given
        with another classifier is refused, never ignored.
    classifier
        A name of :data:`~oathcube.classifiers.CLASSIFIERS` (default ``ridge``).
    name
        The model's name; default ``<extractor>_<target>`` for ridge,
        ``<extractor>_<target>_<classifier>`` for another.
    overwrite
        Replace a model of that name (one whose training was interrupted is always
        replaced).
    storage_options
        fsspec options of a cube at a URL, as for :meth:`~oathcube.cube.store.Cube.open`.

    Returns
    -------
    str
        The model's name.

    Raises
    ------
    OptionError
        An unknown target or classifier, a bad ``alpha`` or one given with another
        classifier than ridge, a bad name (all before anything is read), or too few
        images for the classifier's search.
    CubeError
        The features or labels are missing, incomplete or damaged, or every image is of
        one class.
    ModelError
        A model of that name exists and ``overwrite`` is not given (checked before the
        fit, and again when the model is written).
    """
    check_target(target)
    spec = check_classifier(classifier, alpha)
    # alpha is ridge's alone: check_classifier refused one given with another classifier.
    ridge_alpha = None if spec.searched else check_alpha(RIDGE_ALPHA if alpha is None else alpha)
    cube = Cube.open(cube, "r+", storage_options=storage_options)
    ds = cube.labelled()
    # An unknown features name, a bad model name or an existing model are refused
    # before the features are read and the classifier (and its search) fitted.
    var = _features_variable(ds, features)
    suffix = "" if classifier == "ridge" else f"_{classifier}"
    name = name or f"{extractor_of(var)}_{target}{suffix}"
    if not name.replace("_", "").replace("-", "").isalnum():
        raise OptionError(
            f"model name {name!r}", parameter="name", expected="letters, digits, _ or -"
        )
    _refuse_existing(cube, name, overwrite)
    y, names = _target(ds, target, cube)
    X, var = feature_matrix(ds, features, cube)
    if np.unique(y).size < 2:
        raise CubeError(
            f"every labelled image is of one {target} class",
            path=cube.location,
            expected="images of at least two classes to train on",
        )
    fit_alpha = RIDGE_ALPHA if ridge_alpha is None else ridge_alpha
    fitted, _ = fit_classifier(classifier, X, y, fit_alpha)
    model = to_arrays(classifier, fitted, names)
    model["train_image"] = model_specs()["train_image"].variable(ds["image"].values)
    model.attrs = provenance(
        **model.attrs,
        features=var,
        feature_settings=json.dumps(value_settings(dict(ds[var].attrs)), sort_keys=True),
        target=target,
        **({} if ridge_alpha is None else {"alpha": ridge_alpha}),
        n_train=len(y),
        training_accuracy=float(fitted.score(X, y)),
    )
    path = model_group(name)
    with cube.writing("train"):
        _refuse_existing(cube, name, overwrite)
        # The model is marked complete only after its last array is written: a
        # killed train leaves a model that is never listed nor applied.
        model.attrs[STATUS] = BUILDING
        cube.write_dataset(model, path)
        kill_point("train.arrays_written")
        cube.mark_complete(path)
        cube.publish()
    return name


def _refuse_existing(cube: Cube, name: str, overwrite: bool) -> None:
    """Refuse to replace the complete model ``name`` without ``overwrite``."""
    if name in cube.models() and not overwrite:
        raise ModelError(
            f"model {name!r} exists",
            path=cube.where(model_group(name)),
            expected="`overwrite` to replace it, or another `name`",
        )


def list_models(cube: CubeLike) -> list[str]:
    """Names of the models stored in the cube."""
    return Cube.open(cube, complete=False).models()


def load_model(cube: CubeLike, name: str) -> xr.Dataset:
    """Open the stored model ``name`` (arrays only, loaded into memory).

    Raises
    ------
    ModelError
        No such model, one whose training was interrupted, or one that cannot be
        applied (:func:`oathcube.model_arrays.check_model`: an unknown classifier, an
        array missing).
    """
    opened = Cube.open(cube, complete=False)
    model = opened.model(name)
    check_model(model, opened.where(model_group(name)))
    return model


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

    The name ridge models were applied by, kept: it is
    :func:`oathcube.model_arrays.predict`, which applies every kind.  For a two-class
    ridge model the score columns are ``-d`` and ``d``, where ``d`` is scikit-learn's
    decision function (positive means the second class).
    """
    return predict(model, X)


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
