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
    n_folds: int = 0
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


def _ridge(alpha: float) -> Any:
    # scikit-learn is imported only by the stages that fit or score models.
    from sklearn.linear_model import RidgeClassifier

    return RidgeClassifier(alpha=alpha)


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
    alpha: float = 0.03,
    storage_options: dict[str, Any] | None = None,
) -> Evaluation:
    """Run ridge.py's protocol on the cube's ``features_<features>``.

    Parameters
    ----------
    cube
        A cube path, a :class:`~oathcube.cube.store.Cube`, or its labelled Dataset.
    features
        ``published`` (the archive's auroral_feat.h5) or an extractor name.
    target
        ``class6`` (six classes) or ``class2`` (aurora / no aurora).
    alpha
        Ridge regularisation (ridge.py uses 0.03).
    storage_options
        fsspec options of a cube at a URL (credentials, an endpoint), as for
        :meth:`~oathcube.cube.store.Cube.open`; or pass a Cube that carries them.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    check_target(target)
    alpha = check_alpha(alpha)
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
    accuracies: list[float] = []
    for k, fold in enumerate(split):
        train_idx, test_idx = fold[:ntrain], fold[ntrain:]
        if np.unique(y[train_idx]).size < 2:
            raise CubeError(
                f"fold {k} trains on one class only",
                path=None if opened is None else opened.location,
                member="split",
                expected=f"training images of at least two {target} classes",
            )
        clf = _ridge(alpha)
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
        n_folds=len(accuracies),
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
    clf = _ridge(alpha).fit(X, y)
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
