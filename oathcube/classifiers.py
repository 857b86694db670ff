"""The classifiers :func:`~oathcube.model.evaluate` can run, one registry by name.

``ridge`` is ridge.py's ``RidgeClassifier(alpha)`` as it always was: no scaling, no
search, the one ``alpha`` given.  Every other classifier is a scikit-learn
:class:`~sklearn.pipeline.Pipeline` whose last step, ``model``, is the model, after a
:class:`~sklearn.preprocessing.StandardScaler` (step ``scale``) for all but LightGBM's
trees, which split on thresholds and need none.  Its hyperparameters are chosen from a
small grid recorded here (:attr:`Classifier.grid`) by
:class:`~sklearn.model_selection.GridSearchCV` (accuracy,
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
lightgbm   ``lightgbm.LGBMClassifier``, unscaled      ``num_leaves`` 15, 31;
           (gradient-boosted trees; 30 % of the       ``n_estimators`` 100, 300
           columns a tree, 63 bins, one thread)
========== ========================================== ==================================

The grids are small so that an evaluation of the five folds of OATH's 5,824 images
takes minutes, not hours, on a laptop (docs/oath.md gives the times measured).

LightGBM earned its place on the synthetic archive: with handcrafted features, ridge.py's
five folds gave it 0.969 +- 0.004, against 0.955 for logistic regression, 0.953 for the
MLP, 0.946 for ridge and 0.931 for k-NN.  scikit-learn and LightGBM are imported inside
the functions that build or fit a model, never when this module is imported.
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
    "check_rows",
    "chosen_hyperparameters",
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
        The class it fits, e.g. ``sklearn.svm.LinearSVC`` or ``lightgbm.LGBMClassifier``.
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


def _lightgbm(alpha: float) -> Any:
    from lightgbm import LGBMClassifier
    from sklearn.pipeline import Pipeline

    # No scaler: trees split on thresholds, which scaling only moves.  A Pipeline all
    # the same, so that the search names the grid as for the others (``model__...``).
    # deterministic and force_row_wise: the same rows give the same trees on any machine;
    # verbose=-1 keeps LightGBM's per-fit notes off the terminal.  Each tree sees 30 % of
    # the columns, binned in 63 levels: on the synthetic archive's 512 Aurora-FM
    # features one fit took 8.6 s against 92 s with LightGBM's defaults (all columns, 255
    # bins), at the same test accuracy (0.896 / 0.891 on fold 0; handcrafted: 0.967 /
    # 0.962).  One thread, as the other classifiers' BLAS: on two shared cores OpenMP's
    # threads spun against other work (9.2 s a fit against 1.4 s with one), and the
    # trees do not depend on it.
    model = LGBMClassifier(
        random_state=SEED,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
        colsample_bytree=0.3,
        max_bin=63,
        n_jobs=1,
    )
    return Pipeline([("model", model)])


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
        Classifier(
            "lightgbm",
            "lightgbm.LGBMClassifier",
            {"num_leaves": (15, 31), "n_estimators": (100, 300)},
            _lightgbm,
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


def check_rows(name: str, n_train: int) -> Classifier:
    """Return classifier ``name``, refusing ``n_train`` training rows too few for its search.

    Called by :func:`fit_classifier`, and by a caller that knows its training sizes
    before it fits anything (the benchmark checks every fold first).

    Raises
    ------
    OptionError
        ``name`` is not in the registry, or ``n_train`` rows leave a training part of
        the search smaller than :attr:`Classifier.min_rows`.
    """
    spec = check_classifier(name)
    if spec.searched and _search_rows(n_train) < spec.min_rows:
        need = next(
            n for n in range(n_train, 10 * spec.min_rows + 10) if _search_rows(n) >= spec.min_rows
        )
        raise OptionError(
            f"{n_train} training images are too few for {name}'s search",
            parameter="classifier",
            expected=f"at least {need} for its {SEARCH_FOLDS}-fold search, or another classifier",
        )
    return spec


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
        (``scale`` where the classifier has a scaler, then ``model``) refitted on all
        of ``X_train``.
    chosen
        The hyperparameters the search chose, by the model's parameter names with
        JSON-ready values (empty for ridge).

    Raises
    ------
    OptionError
        ``name`` is not in the registry, or too few rows are given for its search.
    """
    spec = check_rows(name, len(y_train))
    if not spec.searched:
        return spec.build(alpha).fit(X_train, y_train), {}
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
    return search.best_estimator_, chosen_hyperparameters(name, search.best_estimator_)


def chosen_hyperparameters(name: str, fitted: Any) -> dict[str, Any]:
    """The values of classifier ``name``'s grid in a model :func:`fit_classifier` fitted.

    Parameters
    ----------
    name
        A name of :data:`CLASSIFIERS`.
    fitted
        What :func:`fit_classifier` returned for it.

    Returns
    -------
    dict
        The model's parameter names of the grid (sorted) with JSON-ready values
        (tuples as lists); empty for ridge, which searches nothing.
    """
    spec = check_classifier(name)
    if not spec.searched:
        return {}
    params = fitted.get_params()
    return {key: _plain(params[f"model__{key}"]) for key in sorted(spec.grid)}
