"""The classifiers :func:`~oathcube.model.evaluate` can run, one registry by name.

``ridge`` is ridge.py's ``RidgeClassifier(alpha)`` as it always was: no scaling, no
search, the one ``alpha`` given.  Every other classifier is a scikit-learn
:class:`~sklearn.pipeline.Pipeline` of a :class:`~sklearn.preprocessing.StandardScaler`
and the model, whose hyperparameters are chosen from a small grid recorded here
(:attr:`Classifier.grid`) by :class:`~sklearn.model_selection.GridSearchCV` (accuracy,
``StratifiedKFold(3, shuffle=True, random_state=0)``), then refitted on all the rows it
was given.  :func:`fit_classifier` sees only the rows it is handed: ``evaluate`` hands it
a fold's training rows, so neither the scaler nor the search ever sees a test row.  Every
seed is fixed (``random_state=0``): the same rows give the same choice and the same model.

========== ========================================== ==================================
name       model (after the scaler)                   grid
========== ========================================== ==================================
ridge      ``RidgeClassifier(alpha)``, unscaled       none (``alpha``, default 0.03)
logistic   ``LogisticRegression`` (lbfgs: one         ``C`` 0.001, 0.01, 0.1
           multinomial model over the classes)
linear_svm ``LinearSVC`` (one-vs-rest, dual)          ``C`` 0.0001, 0.001, 0.01
rbf_svm    ``SVC(kernel="rbf", gamma="scale")``       ``C`` 1, 10
           (one-vs-one)
knn        ``KNeighborsClassifier``                   ``n_neighbors`` 5, 15;
                                                      ``weights`` uniform, distance
mlp        ``MLPClassifier`` (adam; early stopping    ``hidden_layer_sizes`` (64,),
           on 10 % of the rows it is fitted on)       (128,); ``alpha`` 1e-4, 1e-2
========== ========================================== ==================================

The grids are small so that an evaluation of the five folds of OATH's 5,824 images
takes minutes, not hours, on a laptop (docs/oath.md gives the times measured).

LightGBM is not in the registry: whether gradient-boosted trees earn a place beside
these is measured and decided separately.  scikit-learn is imported inside the
functions that build or fit a model, never when this module is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import OptionError

__all__ = [
    "Classifier",
    "CLASSIFIERS",
    "RIDGE_ALPHA",
    "SEARCH_FOLDS",
    "check_classifier",
    "fit_classifier",
    "ridge_classifier",
]

#: ridge.py's ridge regularisation, the default ``alpha``.
RIDGE_ALPHA = 0.03
#: Folds of the hyperparameter search, drawn from the training rows only.
SEARCH_FOLDS = 3
#: The one seed: the search's folds and every model that draws random numbers.
SEED = 0


@dataclass(frozen=True)
class Classifier:
    """One classifier of the registry.

    Attributes
    ----------
    name
        Its name in the registry (``--classifier``).
    model
        The scikit-learn class it fits, e.g. ``sklearn.svm.LinearSVC``.
    grid
        The hyperparameters searched, each with its candidate values, named as the
        model's own parameters (empty: nothing is searched).
    build
        ``build(alpha)`` returns the unfitted estimator; ``alpha`` is used by ridge only.
    min_rows
        The fewest rows each training part of the search must hold (k-NN: its largest
        ``n_neighbors``; the MLP: enough to keep two for early stopping).
    """

    name: str
    model: str
    grid: Mapping[str, tuple[Any, ...]]
    build: Callable[[float], Any]
    min_rows: int = 2

    @property
    def searched(self) -> bool:
        """Whether the hyperparameters are chosen by a search (all but ridge)."""
        return bool(self.grid)


def _scaled(model: Any) -> Any:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()), ("model", model)])


def ridge_classifier(alpha: float) -> Any:
    """ridge.py's classifier, unfitted: what ``evaluate`` and ``train`` both fit."""
    from sklearn.linear_model import RidgeClassifier

    return RidgeClassifier(alpha=alpha)


def _logistic(alpha: float) -> Any:
    from sklearn.linear_model import LogisticRegression

    # lbfgs fits one multinomial (softmax) model over all the classes.
    return _scaled(LogisticRegression(max_iter=2000, random_state=SEED))


def _linear_svm(alpha: float) -> Any:
    from sklearn.svm import LinearSVC

    return _scaled(LinearSVC(dual=True, max_iter=5000, random_state=SEED))


def _rbf_svm(alpha: float) -> Any:
    from sklearn.svm import SVC

    return _scaled(SVC(kernel="rbf", gamma="scale", random_state=SEED))


def _knn(alpha: float) -> Any:
    from sklearn.neighbors import KNeighborsClassifier

    return _scaled(KNeighborsClassifier())


def _mlp(alpha: float) -> Any:
    from sklearn.neural_network import MLPClassifier

    return _scaled(
        MLPClassifier(
            early_stopping=True,
            validation_fraction=0.1,
            n_iter_no_change=10,
            max_iter=500,
            random_state=SEED,
        )
    )


#: The registry: name -> :class:`Classifier`, in the order they are listed to users.
CLASSIFIERS: dict[str, Classifier] = {
    c.name: c
    for c in (
        Classifier("ridge", "sklearn.linear_model.RidgeClassifier", {}, ridge_classifier),
        Classifier(
            "logistic",
            "sklearn.linear_model.LogisticRegression",
            {"C": (0.001, 0.01, 0.1)},
            _logistic,
        ),
        Classifier(
            "linear_svm", "sklearn.svm.LinearSVC", {"C": (0.0001, 0.001, 0.01)}, _linear_svm
        ),
        Classifier("rbf_svm", "sklearn.svm.SVC", {"C": (1.0, 10.0)}, _rbf_svm),
        Classifier(
            "knn",
            "sklearn.neighbors.KNeighborsClassifier",
            {"n_neighbors": (5, 15), "weights": ("uniform", "distance")},
            _knn,
            min_rows=15,
        ),
        Classifier(
            "mlp",
            "sklearn.neural_network.MLPClassifier",
            {"hidden_layer_sizes": ((64,), (128,)), "alpha": (1e-4, 1e-2)},
            _mlp,
            min_rows=20,
        ),
    )
}


def check_classifier(name: str, alpha: float | None = None) -> Classifier:
    """Return the registry's classifier ``name``, refusing what it cannot take.

    Parameters
    ----------
    name
        A name of :data:`CLASSIFIERS`.
    alpha
        The ``alpha`` the caller was given explicitly (None: none was given).  Only
        ridge takes one; another classifier refuses it rather than ignore it.

    Raises
    ------
    OptionError
        ``name`` is not in the registry, or ``alpha`` was given with another classifier.
    """
    if name not in CLASSIFIERS:
        raise OptionError(
            f"unknown classifier {name!r}",
            parameter="classifier",
            expected=f"one of {', '.join(CLASSIFIERS)}",
        )
    if alpha is not None and name != "ridge":
        raise OptionError(
            f"`alpha` {alpha} with `classifier` {name!r}",
            parameter="alpha",
            expected=f"no `alpha`: it is ridge's alone, and {name} chooses its own "
            f"{', '.join(CLASSIFIERS[name].grid)} in each fold",
        )
    return CLASSIFIERS[name]


def _plain(value: Any) -> Any:
    """A chosen value as JSON writes it: tuples as lists, NumPy scalars as Python ones."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _search_rows(n: int) -> int:
    """Rows of the smallest training part of the search over ``n`` rows (one spare for
    the stratification's rounding)."""
    return n - -(-n // SEARCH_FOLDS) - 1


def fit_classifier(
    name: str,
    X_train: np.ndarray,
    y_train: np.ndarray,
    alpha: float = RIDGE_ALPHA,
    *,
    n_jobs: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Fit classifier ``name`` on the training rows given, searching its grid on them.

    Parameters
    ----------
    name
        A name of :data:`CLASSIFIERS`.
    X_train, y_train
        The training rows and their labels: the only rows the scaler, the search and
        the model see.
    alpha
        Ridge's regularisation (ridge only: ``RidgeClassifier(alpha)`` is fitted as is).
    n_jobs
        Processes of the search (scikit-learn's ``n_jobs``; the choice does not depend
        on it).

    Returns
    -------
    fitted
        The fitted estimator: ``RidgeClassifier`` for ridge, else the best pipeline
        refitted on all of ``X_train``.
    chosen
        The hyperparameters the search chose, by the model's parameter names with
        JSON-ready values (empty for ridge).

    Raises
    ------
    OptionError
        ``name`` is not in the registry, or too few rows are given for its search.
    """
    spec = check_classifier(name)
    if not spec.searched:
        return spec.build(alpha).fit(X_train, y_train), {}
    if _search_rows(len(y_train)) < spec.min_rows:
        need = next(
            n
            for n in range(len(y_train), 10 * spec.min_rows + 10)
            if _search_rows(n) >= spec.min_rows
        )
        raise OptionError(
            f"{len(y_train)} training images are too few for {name}'s search",
            parameter="classifier",
            expected=f"at least {need} for its {SEARCH_FOLDS}-fold search, or another classifier",
        )
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from threadpoolctl import threadpool_limits

    search = GridSearchCV(
        spec.build(alpha),
        {f"model__{key}": list(values) for key, values in spec.grid.items()},
        scoring="accuracy",
        cv=StratifiedKFold(SEARCH_FOLDS, shuffle=True, random_state=SEED),
        refit=True,
        n_jobs=n_jobs,
        error_score="raise",
    )
    # One BLAS thread: on the small matrices of these fits, OpenBLAS's threads contend
    # with scikit-learn's OpenMP ones (lbfgs ran 10-20x slower with two of each on two
    # cores), and the sums then do not depend on how many cores the machine has.
    with threadpool_limits(limits=1, user_api="blas"):
        search.fit(X_train, y_train)
    chosen = {
        key.removeprefix("model__"): _plain(value) for key, value in search.best_params_.items()
    }
    return search.best_estimator_, chosen
