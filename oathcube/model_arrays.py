"""A fitted classifier as plain arrays, and its predictions computed from them.

:func:`to_arrays` turns what :func:`~oathcube.classifiers.fit_classifier` returns, for
every classifier of the registry, into an :class:`xarray.Dataset` of numbers and strings
(the arrays of :func:`~oathcube.cube.schema.model_specs` and
:func:`~oathcube.cube.schema.layer_specs`) whose attributes say what they are;
:func:`predict` computes classes and scores from that Dataset alone: NumPy for the
scikit-learn models, LightGBM's own ``Booster(model_str=...)`` for its trees.  Nothing is
pickled, ever: a stored model is read by anything that reads Zarr, and loading one runs
no code from the cube.

Every model holds ``classes`` (names, score order) and ``class_index`` (their
class6/class2 values); every scaled one (all but ridge and LightGBM) ``scaler_mean`` and
``scaler_scale``, applied as scikit-learn's ``StandardScaler`` does, in the dtype of the
features given.  Beside those:

========== ==================================== =========== ===============================
kind       arrays; attributes                   scores      class
========== ==================================== =========== ===============================
ridge      ``coef``, ``intercept``              decision    arg-max; two classes: d > 0
logistic   ``coef``, ``intercept``              probability arg-max of the decision
linear_svm ``coef``, ``intercept``              decision    as ridge
rbf_svm    ``support_vectors``, ``dual_coef``,  decision    libsvm's one-vs-one vote (ties:
           ``intercept`` (one per pair),        (one-vs-    the lowest class)
           ``n_support``; ``gamma``             rest)
knn        ``train_rows`` (scaled),             probability arg-max of the (weighted) votes
           ``train_class``; ``n_neighbors``,                (ties: the lowest class)
           ``weights``, ``metric``, ``p``
mlp        ``weights_<k>``, ``biases_<k>``;     probability arg-max; two classes: p > 0.5
           ``layers``, ``activation``,
           ``out_activation``
lightgbm   ``booster`` (its text model);        probability arg-max (ties: the first)
           ``n_features``
========== ==================================== =========== ===============================

Scores are what ``predict_proba`` returns (probability) or ``decision_function``
(decision; for two classes the one decision ``d`` becomes the columns ``-d, d``, as ridge
models have always been stored).  Classes are what the fitted object's ``predict``
returns: the SVM's come from libsvm's one-vs-one vote, not from its one-vs-rest scores,
and k-NN's follow scikit-learn's rules for ties and for a training row at distance 0.

**Exactness.**  LightGBM's predictions are its own, computed by LightGBM from a text
model that holds every threshold and leaf value: the same numbers as the fitted
``predict_proba`` (then, as every kind's scores, rounded to float32).  The
scikit-learn kinds are computed here in float64 (the scaler excepted, done as
scikit-learn does it), where scikit-learn sums in another order (BLAS blocks, libsvm's
loops) and, for ridge, logistic regression and the MLP fitted on float32 features, in
float32: their scores agree with scikit-learn's to :data:`SCORE_RTOL` relative and
:data:`SCORE_ATOL` absolute (the tests see at most 3e-7), and a row can be classed
otherwise only where its two best scores are that close, or, for k-NN, where two training
rows lie at the same distance across its ``n_neighbors``-th neighbour (duplicate or
rounded features; here the first stored row is the nearer).  The tests check every kind,
with two and six classes, for equal classes on every test row and scores within that
tolerance.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .classifiers import check_classifier, chosen_hyperparameters
from .cube.schema import layer_specs, model_specs
from .errors import ModelError

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "KINDS",
    "Kind",
    "SCORE_ATOL",
    "SCORE_RTOL",
    "ScoreKind",
    "check_model",
    "classifier_of",
    "n_features",
    "predict",
    "score_kind",
    "to_arrays",
]

#: Relative tolerance of the scores :func:`predict` computes against the fitted
#: object's own (float32 sums of scikit-learn's against float64 ones here).
SCORE_RTOL = 1e-5
#: Absolute tolerance of the same (probabilities near 0, decisions near 0).
SCORE_ATOL = 1e-6

#: What a model's scores are: ``decision_function`` values or ``predict_proba``.
ScoreKind = Literal["decision", "probability"]

#: Query rows times stored rows (support vectors, training rows) per block of a kernel or
#: distance matrix: 32 MiB of float64, whatever the size of the chunk classified.
_BLOCK_ELEMENTS = 2**22

_SCALER = ("scaler_mean", "scaler_scale")


# -- the numerical pieces, as scikit-learn computes them ------------------------------------


def _expit(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` without overflow (scipy's ``expit``, in NumPy)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row's maximum as scikit-learn's is."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _two_columns(p: np.ndarray) -> np.ndarray:
    """One probability per row of the second class -> the columns ``1 - p, p``."""
    return np.stack([1.0 - p, p], axis=1)


def _plus_minus(d: np.ndarray) -> np.ndarray:
    """One decision per row -> the columns ``-d, d``: a score per class, arg-max the class."""
    return np.concatenate([-d, d], axis=1)


def _blocks(n: int, per_row: int) -> Iterator[slice]:
    """Slices of ``n`` query rows, each small enough for a ``(rows, per_row)`` matrix."""
    step = max(1, _BLOCK_ELEMENTS // max(1, per_row))
    for start in range(0, n, step):
        yield slice(start, min(start + step, n))


def _squared_distances(a: np.ndarray, b: np.ndarray, b_norms: np.ndarray) -> np.ndarray:
    """Squared euclidean distances of the rows of ``a`` to those of ``b`` (float64).

    ``|a|^2 - 2 a.b + |b|^2``, cut at 0, as scikit-learn's k-NN computes them: the
    rounding of that sum is where its distances and these may differ.
    """
    d2 = np.einsum("ij,ij->i", a, a)[:, None] - 2.0 * (a @ b.T) + b_norms[None, :]
    return np.maximum(d2, 0.0, out=d2)


_HIDDEN: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda a: a,
    "logistic": _expit,
    "tanh": np.tanh,
    "relu": lambda a: np.maximum(a, 0.0),
}


# -- each kind: its arrays from the fitted object, and its predictions from the arrays -------


def _values(model: xr.Dataset, name: str) -> np.ndarray:
    return np.asarray(model[name].values)


def _export_linear(est: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    return {
        "coef": np.atleast_2d(est.coef_),
        "intercept": np.atleast_1d(est.intercept_),
    }, {}


def _decision(model: xr.Dataset, X: np.ndarray) -> np.ndarray:
    """``X @ coef.T + intercept``, one column per decision row."""
    d: np.ndarray = X.astype(np.float64) @ _values(model, "coef").T + _values(model, "intercept")
    return d


def _apply_ridge(model: xr.Dataset, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Ridge and LinearSVC: the arg-max of the decisions; with two classes the arg-max of
    # (-d, d), which is scikit-learn's d > 0 (d = 0 gives the first class in both).
    d = _decision(model, X)
    scores = _plus_minus(d) if d.shape[1] == 1 else d
    return np.argmax(scores, axis=1), scores


def _apply_logistic(model: xr.Dataset, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = _decision(model, X)
    if d.shape[1] == 1:
        # scikit-learn classes by the decision (d > 0), not by the probabilities.
        return (d[:, 0] > 0).astype(np.intp), _two_columns(_expit(d[:, 0]))
    return np.argmax(d, axis=1), _softmax(d)


def _export_rbf_svm(est: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    _require_params(est, kernel="rbf", decision_function_shape="ovr", break_ties=False)
    arrays = {
        "support_vectors": est.support_vectors_,
        "dual_coef": est.dual_coef_,
        "intercept": est.intercept_,
        "n_support": est.n_support_,
    }
    # _gamma is the number gamma="scale" became at fit time (1 / (n_features * X.var())).
    return arrays, {"gamma": float(est._gamma)}


def _apply_rbf_svm(model: xr.Dataset, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = X.astype(np.float64)
    vectors = _values(model, "support_vectors")
    dual, intercept = _values(model, "dual_coef"), _values(model, "intercept")
    n_sv = _values(model, "n_support").astype(np.intp)
    n_class = len(n_sv)
    if n_class == 2:
        # scikit-learn negates both for two classes; libsvm's own signs vote below.
        dual, intercept = -dual, -intercept
    starts = np.concatenate([[0], np.cumsum(n_sv)[:-1]])
    own = [slice(s, s + n) for s, n in zip(starts, n_sv, strict=True)]
    pairs = [(i, j) for i in range(n_class) for j in range(i + 1, n_class)]
    gamma = float(model.attrs["gamma"])
    norms = np.einsum("ij,ij->i", vectors, vectors)
    dec = np.empty((len(X), len(pairs)))
    for rows in _blocks(len(X), len(vectors)):
        kernel = np.exp(-gamma * _squared_distances(X[rows], vectors, norms))
        for p, (i, j) in enumerate(pairs):
            # libsvm: class i's vectors weigh with dual row j - 1, class j's with row i.
            dec[rows, p] = (
                kernel[:, own[i]] @ dual[j - 1, own[i]]
                + kernel[:, own[j]] @ dual[i, own[j]]
                + intercept[p]
            )
    votes = np.zeros((len(X), n_class), dtype=np.intp)
    for p, (i, j) in enumerate(pairs):
        first = dec[:, p] > 0
        votes[:, i] += first
        votes[:, j] += ~first
    # np.argmax takes the first maximum: libsvm's lowest class on a tie of votes.
    positions = np.argmax(votes, axis=1)
    if n_class == 2:
        return positions, _plus_minus(-dec)
    return positions, _ovr_decision(dec, n_class)


def _ovr_decision(dec: np.ndarray, n_class: int) -> np.ndarray:
    """scikit-learn's one-vs-rest ``decision_function`` of an SVC from its one-vs-one
    decisions (``sklearn.utils.multiclass._ovr_decision_function``, step for step)."""
    predictions, confidences = dec < 0, -dec
    votes = np.zeros((len(dec), n_class))
    sums = np.zeros((len(dec), n_class))
    k = 0
    for i in range(n_class):
        for j in range(i + 1, n_class):
            sums[:, i] -= confidences[:, k]
            sums[:, j] += confidences[:, k]
            votes[~predictions[:, k], i] += 1
            votes[predictions[:, k], j] += 1
            k += 1
    # The sums, squashed into (-1/3, 1/3), break ties of votes without changing them.
    out: np.ndarray = votes + sums / (3 * (np.abs(sums) + 1))
    return out


def _export_knn(est: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    if est.effective_metric_ != "euclidean" or getattr(est, "outputs_2d_", False):
        raise ModelError(
            f"a KNeighborsClassifier with metric {est.metric!r} (p={est.p})",
            expected="the euclidean metric (minkowski with p=2), one output",
        )
    if est.weights not in ("uniform", "distance"):
        raise ModelError(
            f"a KNeighborsClassifier with weights {est.weights!r}",
            expected="weights 'uniform' or 'distance'",
        )
    # _fit_X and _y are the rows (as scaled) and class positions the neighbours are
    # searched among; scikit-learn has no public name for them.
    arrays = {"train_rows": est._fit_X, "train_class": est._y}
    attrs = {
        "n_neighbors": int(est.n_neighbors),
        "weights": str(est.weights),
        "metric": str(est.metric),
        "p": est.p if est.p is None else float(est.p),
    }
    return arrays, attrs


def _nearest(d2: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` nearest training rows of each query row, nearest first.

    The order a full stable sort gives (as kneighbors returns them, the order the votes
    are summed in; of rows at one distance, the first stored), without sorting every
    distance: a partition finds the ``k`` smallest, and only those are sorted.  A row
    where another training row ties the ``k``-th distance is sorted whole, so that the
    first stored of the tied ones is taken, as before.
    """
    if k >= d2.shape[1]:
        return np.argsort(d2, axis=1, kind="stable")[:, :k]
    part = np.argpartition(d2, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(d2, part, axis=1).max(axis=1, keepdims=True)
    clear = (d2 <= kth).sum(axis=1) == k
    nearest = np.empty((len(d2), k), dtype=np.intp)
    # By index first, then a stable sort by distance: (distance, index) order.
    by_index = np.sort(part[clear], axis=1)
    order = np.argsort(np.take_along_axis(d2[clear], by_index, axis=1), axis=1, kind="stable")
    nearest[clear] = np.take_along_axis(by_index, order, axis=1)
    nearest[~clear] = np.argsort(d2[~clear], axis=1, kind="stable")[:, :k]
    return nearest


def _apply_knn(model: xr.Dataset, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = X.astype(np.float64)
    rows = _values(model, "train_rows").astype(np.float64)
    labels = _values(model, "train_class").astype(np.intp)
    k = int(model.attrs["n_neighbors"])
    by_distance = str(model.attrs["weights"]) == "distance"
    n_class = model.sizes["class"]
    norms = np.einsum("ij,ij->i", rows, rows)
    positions = np.empty(len(X), dtype=np.intp)
    scores = np.empty((len(X), n_class))
    for block in _blocks(len(X), max(len(rows), k * X.shape[1])):
        d2 = _squared_distances(X[block], rows, norms)
        nearest = _nearest(d2, k)
        vote = labels[nearest]
        if by_distance:
            # The neighbours' distances summed from their differences: a training row
            # equal to the query is at 0 exactly, which the expansion above may miss.
            diff = X[block][:, None, :] - rows[nearest]
            with np.errstate(divide="ignore"):
                weight = 1.0 / np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
            # A training row at distance 0 takes the whole vote (with any other there).
            exact = np.isinf(weight)
            hit = exact.any(axis=1)
            weight[hit] = exact[hit]
        else:
            weight = np.ones(vote.shape)
        n = len(vote)
        tally = np.zeros((n, n_class))
        for column in range(k):
            tally[np.arange(n), vote[:, column]] += weight[:, column]
        if by_distance:
            # scikit-learn's predict takes weighted_mode's sums (np.sum over each
            # class's weights, zeros elsewhere), predict_proba the running tally.
            modes = np.stack(
                [np.where(vote == c, weight, 0.0).sum(axis=1) for c in range(n_class)], axis=1
            )
            positions[block] = np.argmax(modes, axis=1)
        else:
            positions[block] = np.argmax(tally, axis=1)
        scores[block] = tally / tally.sum(axis=1, keepdims=True)
    return positions, scores


def _export_mlp(est: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    if est.activation not in _HIDDEN or est.out_activation_ not in ("softmax", "logistic"):
        raise ModelError(
            f"an MLPClassifier with activations {est.activation!r}, {est.out_activation_!r}",
            expected=f"hidden {', '.join(_HIDDEN)}; output softmax or logistic (one label)",
        )
    arrays: dict[str, Any] = {}
    for k, (weights, biases) in enumerate(zip(est.coefs_, est.intercepts_, strict=True)):
        arrays[f"weights_{k}"], arrays[f"biases_{k}"] = weights, biases
    attrs = {
        "layers": len(est.coefs_),
        "activation": str(est.activation),
        "out_activation": str(est.out_activation_),
    }
    return arrays, attrs


def _apply_mlp(model: xr.Dataset, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = X.astype(np.float64)
    layers = int(model.attrs["layers"])
    hidden = _HIDDEN[str(model.attrs["activation"])]
    for k in range(layers):
        a = a @ _values(model, f"weights_{k}") + _values(model, f"biases_{k}")
        if k < layers - 1:
            a = hidden(a)
    if str(model.attrs["out_activation"]) == "logistic":
        p = _expit(a[:, 0])
        # scikit-learn's LabelBinarizer: the second class above the threshold 0.5.
        return (p > 0.5).astype(np.intp), _two_columns(p)
    scores = _softmax(a)
    return np.argmax(scores, axis=1), scores


def _export_lightgbm(est: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    import lightgbm

    # All iterations (nothing stops early here), every number to the last bit.
    arrays = {"booster": np.array(est.booster_.model_to_string(), dtype=object)}
    attrs = {"n_features": int(est.n_features_in_), "lightgbm_version": lightgbm.__version__}
    return arrays, attrs


@functools.lru_cache(maxsize=4)
def _booster(text: str) -> tuple[Any, threading.Lock]:
    """LightGBM's booster of a text model, parsed once per model, not once per chunk, and
    the lock its predictions take.

    Parsing a 6.5 MB model took 23 ms, against 41 ms for predicting a 512-frame chunk
    with it; the key costs a hash of the text (2 ms).  The lock: classify predicts chunks
    on several threads, and LightGBM's predictor set-up writes to the shared booster
    (LightGBM issue 6142), so one model's predictions run one at a time.
    """
    import lightgbm

    return lightgbm.Booster(model_str=text), threading.Lock()


def _apply_lightgbm(model: xr.Dataset, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    booster, lock = _booster(str(model["booster"].values.item()))
    with lock:
        p = np.asarray(booster.predict(X))
    scores = _two_columns(p) if p.ndim == 1 else p
    return np.argmax(scores, axis=1), scores


@dataclass(frozen=True)
class Kind:
    """How one classifier of the registry is stored and applied.

    Attributes
    ----------
    scores
        ``probability`` or ``decision``: what :func:`predict` returns as scores.
    arrays
        The arrays it needs besides ``classes`` and ``class_index`` (an MLP's layers,
        ``weights_<k>`` and ``biases_<k>``, come from its ``layers`` attribute).
    attrs
        The attributes :func:`predict` reads.
    scaled
        Whether the features are standardised first (``scaler_mean``, ``scaler_scale``).
    rule
        The decision rule in words, stored as the model's ``decision_rule``.
    export, apply
        The fitted estimator -> ``(arrays, attributes)``; the model and (scaled)
        features -> ``(class positions, scores)``.
    """

    scores: ScoreKind
    arrays: tuple[str, ...]
    attrs: tuple[str, ...]
    scaled: bool
    rule: str
    export: Callable[[Any], tuple[dict[str, Any], dict[str, Any]]]
    apply: Callable[[xr.Dataset, np.ndarray], tuple[np.ndarray, np.ndarray]]


_X = "x = (features - scaler_mean) / scaler_scale"
_LINEAR_RULE = (
    "{x}scores = {f} @ coef.T + intercept; one decision row per class, or one row for "
    "two classes (positive = the second class)"
)

#: Every kind of the registry (:data:`~oathcube.classifiers.CLASSIFIERS`), by name.
KINDS: dict[str, Kind] = {
    "ridge": Kind(
        "decision",
        ("coef", "intercept"),
        (),
        False,
        _LINEAR_RULE.format(x="", f="features"),
        _export_linear,
        _apply_ridge,
    ),
    "logistic": Kind(
        "probability",
        ("coef", "intercept"),
        (),
        True,
        f"{_X}; d = x @ coef.T + intercept; scores = softmax(d), one row per class; for two "
        "classes one row, scores 1 - expit(d), expit(d); the class is the arg-max of d "
        "(two classes: d > 0 is the second)",
        _export_linear,
        _apply_logistic,
    ),
    "linear_svm": Kind(
        "decision",
        ("coef", "intercept"),
        (),
        True,
        _LINEAR_RULE.format(x=f"{_X}; ", f="x") + "; one-vs-rest",
        _export_linear,
        _apply_ridge,
    ),
    "rbf_svm": Kind(
        "decision",
        ("support_vectors", "dual_coef", "intercept", "n_support"),
        ("gamma",),
        True,
        f"{_X}; K = exp(-gamma |x - support_vectors|^2); support vectors grouped by class "
        "(n_support); for each pair of classes i < j the one-vs-one decision "
        "K[i's] @ dual_coef[j-1, i's] + K[j's] @ dual_coef[i, j's] + intercept[pair] "
        "votes for i when positive, else for j; the class has the most votes (ties: the "
        "lowest); scores are scikit-learn's one-vs-rest decision_function (votes plus "
        "the summed decisions squashed into (-1/3, 1/3)); for two classes "
        "d = K @ dual_coef[0] + intercept[0], scores -d, d, the second class when d >= 0",
        _export_rbf_svm,
        _apply_rbf_svm,
    ),
    "knn": Kind(
        "probability",
        ("train_rows", "train_class"),
        ("n_neighbors", "weights"),
        True,
        f"{_X}; the n_neighbors train_rows nearest to x (euclidean) vote for their "
        "train_class, each with weight 1 (weights uniform) or 1 / distance (weights "
        "distance; rows at distance 0 take the whole vote); scores are the shares of the "
        "votes; the class has the most (ties: the lowest)",
        _export_knn,
        _apply_knn,
    ),
    "mlp": Kind(
        "probability",
        (),
        ("layers", "activation", "out_activation"),
        True,
        f"{_X}; a = x, then a = activation(a @ weights_k + biases_k) for k < layers - 1 "
        "and out_activation at the last layer: softmax (scores, one per class) or, for "
        "two classes, logistic p (scores 1 - p, p; the second class when p > 0.5); the "
        "class is the arg-max",
        _export_mlp,
        _apply_mlp,
    ),
    "lightgbm": Kind(
        "probability",
        ("booster",),
        ("n_features",),
        False,
        "scores = lightgbm.Booster(model_str=booster).predict(features), unscaled: class "
        "probabilities (two classes: 1 - p, p); the class is the arg-max (ties: the first)",
        _export_lightgbm,
        _apply_lightgbm,
    ),
}


# -- the public functions -------------------------------------------------------------------


def _require_params(est: Any, **wanted: Any) -> None:
    """Refuse an estimator whose parameters :func:`predict` does not reproduce."""
    for key, value in wanted.items():
        if getattr(est, key) != value:
            raise ModelError(
                f"a {type(est).__name__} with {key}={getattr(est, key)!r}",
                expected=f"{key}={value!r}, as the registry fits it",
            )


def _steps(fitted: Any) -> tuple[Any, Any]:
    """``(scaler or None, model)`` of what :func:`fit_classifier` returned."""
    steps = getattr(fitted, "named_steps", None)
    if steps is None:
        return None, fitted
    return steps.get("scale"), steps["model"]


def to_arrays(name: str, fitted: Any, class_names: Sequence[str]) -> xr.Dataset:
    """A fitted classifier of the registry as plain arrays and attributes.

    Parameters
    ----------
    name
        Its name in :data:`~oathcube.classifiers.CLASSIFIERS`.
    fitted
        What :func:`~oathcube.classifiers.fit_classifier` returned for ``name``: the
        ``RidgeClassifier`` for ridge, else the pipeline (``scale``, where the
        classifier has one, then ``model``).
    class_names
        The target's class names, indexed by label value (``labels.class_names``).

    Returns
    -------
    xarray.Dataset
        The arrays of :data:`KINDS` ``[name]`` with ``classes`` and ``class_index``, each
        from its spec (numbers and strings only); attributes ``classifier``, ``model``
        (the class fitted), ``scaler``, ``sklearn_version`` (and ``lightgbm_version``),
        ``chosen`` (JSON of the hyperparameters the search chose), ``scores``,
        ``decision_rule`` and those the kind's predictions read.

    Raises
    ------
    OptionError
        ``name`` is not in the registry.
    ModelError
        ``fitted`` is not what the registry fits for ``name`` (another model, a scaler
        missing or extra, parameters :func:`predict` does not reproduce).
    """
    import sklearn
    import xarray as xr

    spec = check_classifier(name)
    kind = KINDS[name]
    scaler, est = _steps(fitted)
    cls = spec.model.rsplit(".", 1)[-1]
    if type(est).__name__ != cls or (scaler is not None) != kind.scaled:
        raise ModelError(
            f"a fitted {type(fitted).__name__} ({type(est).__name__}) as {name}",
            expected=f"{spec.model}{' after a StandardScaler' if kind.scaled else ''}",
        )
    arrays, extra = kind.export(est)
    if scaler is not None:
        n = int(scaler.n_features_in_)
        # StandardScaler leaves the mean or the scale out when told to: 0 and 1 are
        # what it then does.
        arrays["scaler_mean"] = np.zeros(n) if scaler.mean_ is None else scaler.mean_
        arrays["scaler_scale"] = np.ones(n) if scaler.scale_ is None else scaler.scale_
    labels = np.asarray(est.classes_)
    arrays["classes"] = [str(class_names[int(c)]) for c in labels]
    arrays["class_index"] = labels
    specs = model_specs(layers=int(extra.get("layers", 0)))
    variables = {key: specs[key].variable(value) for key, value in arrays.items()}
    attrs = {
        "classifier": name,
        "model": spec.model,
        "scaler": "sklearn.preprocessing.StandardScaler" if kind.scaled else "none",
        "sklearn_version": sklearn.__version__,
        "chosen": json.dumps(chosen_hyperparameters(name, fitted), sort_keys=True),
        "scores": kind.scores,
        "decision_rule": kind.rule,
        **extra,
    }
    return xr.Dataset(variables, attrs=attrs)


def classifier_of(model: xr.Dataset) -> str:
    """The registry name of a stored model (``ridge`` for one stored before the others)."""
    return str(model.attrs.get("classifier", "ridge"))


def check_model(model: xr.Dataset, where: str | None = None) -> str:
    """Return a stored model's kind, refusing one :func:`predict` cannot apply.

    Parameters
    ----------
    model
        A stored model (:func:`oathcube.model.load_model`, ``Cube.model``).
    where
        The model's place in the cube, named in the error.

    Raises
    ------
    ModelError
        The model's ``classifier`` is not a kind of :data:`KINDS` (a model of another
        oathcube), or an array or attribute its kind needs is missing: one line each.
    """
    name = classifier_of(model)
    if name not in KINDS:
        raise ModelError(
            f"a model of unknown classifier {name!r}",
            path=where,
            expected=f"one of {', '.join(KINDS)}",
        )
    kind = KINDS[name]
    needed_attrs = [a for a in kind.attrs if a not in model.attrs]
    arrays = ["classes", "class_index", *(_SCALER if kind.scaled else ()), *kind.arrays]
    if not needed_attrs and "layers" in kind.attrs:
        for k in range(int(model.attrs["layers"])):
            arrays += [s.name for s in layer_specs(k, int(model.attrs["layers"]))]
    missing = [a for a in arrays if a not in model.variables] + [
        f"attribute {a}" for a in needed_attrs
    ]
    if missing:
        raise ModelError(
            f"the {name} model lacks {', '.join(missing)}",
            path=where,
            expected="a model written whole by `oathcube train` (train it again)",
        )
    return name


def score_kind(model: xr.Dataset) -> ScoreKind:
    """``probability`` or ``decision``: what the scores of a stored model are."""
    return KINDS[check_model(model)].scores


def n_features(model: xr.Dataset) -> int:
    """The number of features per row a stored model was trained on."""
    if check_model(model) == "lightgbm":
        return int(model.attrs["n_features"])
    return int(model.sizes["feature"])


def _scale(model: xr.Dataset, X: np.ndarray) -> np.ndarray:
    """``(X - scaler_mean) / scaler_scale`` as StandardScaler computes it: in X's float
    dtype (float32 features stay float32), the mean and scale cast to it first."""
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    out = np.array(X, dtype=dtype)
    out -= _values(model, "scaler_mean").astype(dtype)
    out /= _values(model, "scaler_scale").astype(dtype)
    return out


def predict(model: xr.Dataset, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Classes and scores of a stored model for the feature rows ``X``.

    Parameters
    ----------
    model
        A stored model of any kind (:data:`KINDS`; one without ``classifier`` is ridge).
    X
        ``(row, feature)`` features, as the model was trained on (float32 from a cube).

    Returns
    -------
    index
        int8 ``(row,)``: the predicted class's class6/class2 value (``class_index``).
    scores
        float32 ``(row, class)`` in ``classes`` order: probabilities or decision values
        (:func:`score_kind`), within :data:`SCORE_RTOL`/:data:`SCORE_ATOL` of the
        fitted object's own.

    Raises
    ------
    ModelError
        The model cannot be applied (:func:`check_model`), or ``X`` has another number
        of columns than the model was trained on.
    """
    name = check_model(model)
    X = np.asarray(X)
    want = n_features(model)
    if X.ndim != 2 or X.shape[1] != want:
        raise ModelError(
            f"features have {X.shape[1] if X.ndim == 2 else X.shape} columns",
            path=model.attrs.get("features"),
            expected=f"{want} as the model was trained",
        )
    n_class = model.sizes["class"]
    if len(X) == 0:
        return np.empty(0, np.int8), np.empty((0, n_class), np.float32)
    kind = KINDS[name]
    positions, scores = kind.apply(model, _scale(model, X) if kind.scaled else X)
    index = _values(model, "class_index")[positions]
    return index.astype(np.int8), scores.astype(np.float32)
