"""Feature extractors: a name -> a class with one small interface, and its settings.

An extractor turns a batch of cube pixels (uint8, ``(n, y, x)`` or
``(n, y, x, band)``) and their rotation angles into a float32 matrix
``(n, n_features)``.  The cube stores the result as
``features_<name>(image, <dim>)`` with the extractor's attributes.

Settings travel with features: a :class:`FeatureSpec` says what an extractor
will compute (its dimension, length, labels and the attributes recorded on the
variable) *before* anything is built, so that options are checked and settings
compared before the first write; and an extractor is rebuilt from the
attributes of features it made (:func:`spec_from_attrs`), which is how
``classify`` applies a model to new frames with the model's own settings.

Extractors themselves are built once per worker process (:meth:`FeatureSpec.build`),
never per task, because building one may be expensive (Inception-v4 loads 46 M
weights).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import FeatureError

__all__ = [
    "FeatureExtractor",
    "FeatureSpec",
    "FEATURE_TOLERANCE",
    "IGNORED_SETTINGS",
    "REGISTRY",
    "extractor_class",
    "extractor_names",
    "feature_spec",
    "get_extractor",
    "spec_from_attrs",
    "value_settings",
    "variable_name",
]


@runtime_checkable
class FeatureExtractor(Protocol):
    """What every feature extractor offers.

    Attributes
    ----------
    name
        Registry name; the cube variable is ``features_<name>``.
    dim
        Name of the feature dimension in the cube (``"logit"``, ``"feature"``).
    n_features
        Length of one feature vector.

    Notes
    -----
    Two optional class methods make an extractor cheaper to plan with:
    ``describe(**options) -> FeatureSpec`` (what it would compute, without building
    it; otherwise an instance is built to find out) and
    ``options_from_attrs(attrs) -> dict`` (the constructor options that reproduce
    recorded features; otherwise none).  A class attribute ``threaded = True``
    says that the constructor takes a ``threads`` budget.
    """

    name: str
    dim: str
    n_features: int

    def feature_labels(self) -> list[str] | None:
        """Names of the features (a coordinate along ``dim``), or None."""
        ...

    def attrs(self) -> dict[str, Any]:
        """Attributes recorded on the cube variable (provenance, settings)."""
        ...

    def __call__(self, pixels: np.ndarray, rot_angle: np.ndarray) -> np.ndarray:
        """Return float32 features ``(n, n_features)`` for ``n`` images."""
        ...


#: name -> "module:class"; imported lazily so that nothing imports TensorFlow
#: unless an Inception feature is asked for.
REGISTRY: dict[str, str] = {
    "handcrafted": "oathcube.features.handcrafted:HandcraftedExtractor",
    "inception_v4": "oathcube.features.inception_v4:InceptionV4Extractor",
}

#: Attributes of a feature variable that do not change its values: provenance, and
#: settings of speed (or of round-off only), ignored when a run resumes and when a
#: model checks that features were made the way its training features were.
IGNORED_SETTINGS = frozenset(
    {
        "created",
        "oathcube_version",
        "long_name",
        "description",
        "checkpoint",
        "batch_size",
        "threads",
        "precision",
        "preprocessing",
        "engine",
        "engine_version",
        "int8_calibration",
    }
)

#: What oathcube promises about float features computed twice.  With the same settings,
#: scheduler and thread count on one machine: the same bits.  Across schedulers, thread
#: counts, engines (fp32) or CPUs, where the kernels sum in another order: every value within
#: ``FEATURE_TOLERANCE`` times the largest absolute value of the features compared.
FEATURE_TOLERANCE = 1e-5

_CACHE: dict[tuple[str, tuple[tuple[str, Any], ...]], FeatureExtractor] = {}
_CACHE_LOCK = threading.Lock()


def extractor_names() -> list[str]:
    """Return the names of the registered extractors."""
    return sorted(REGISTRY)


def variable_name(name: str) -> str:
    """Return the cube variable that holds the features called ``name``."""
    return f"features_{name}"


def value_settings(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes of a feature variable that change its values."""
    return {str(k): v for k, v in attrs.items() if k not in IGNORED_SETTINGS}


def extractor_class(name: str) -> type:
    """Return the class registered as ``name`` (imports its module)."""
    if name not in REGISTRY:
        raise FeatureError(
            f"unknown feature extractor {name!r}", expected=f"one of {', '.join(extractor_names())}"
        )
    module_name, class_name = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def get_extractor(name: str, **options: Any) -> FeatureExtractor:
    """Return the extractor ``name`` built with ``options``, cached per process.

    Parameters
    ----------
    name
        A key of :data:`REGISTRY`.
    **options
        Passed to the extractor's constructor (checkpoint path, layer, ...).

    Raises
    ------
    FeatureError
        If ``name`` is not registered.
    """
    key = (name, tuple(sorted(options.items())))
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = extractor_class(name)(**options)
        return _CACHE[key]


@dataclass(frozen=True)
class FeatureSpec:
    """What an extractor computes, known before it is built or run.

    Parameters
    ----------
    name
        Registry name.
    dim
        Feature dimension of the cube variable.
    n_features
        Length of one feature vector.
    attrs
        Attributes the variable records (settings and provenance).
    options
        Constructor options (value settings and local ones such as the checkpoint).
    labels
        Feature names along ``dim``, or None.
    threaded
        Whether the constructor takes a ``threads`` budget.
    """

    name: str
    dim: str
    n_features: int
    attrs: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] | None = None
    threaded: bool = False

    @property
    def variable(self) -> str:
        """The cube variable, ``features_<name>``."""
        return variable_name(self.name)

    def settings(self) -> dict[str, Any]:
        """The recorded settings that change feature values."""
        return value_settings(self.attrs)

    def differences(self, attrs: Mapping[str, Any]) -> list[str]:
        """Value settings in which recorded ``attrs`` differ from this spec's."""
        mine, theirs = self.settings(), value_settings(attrs)
        return sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))

    def build(self, threads: int | None = None) -> FeatureExtractor:
        """The extractor itself, built once per process (and per thread budget)."""
        options = dict(self.options)
        if self.threaded and threads is not None:
            options.setdefault("threads", threads)
        return get_extractor(self.name, **options)


def feature_spec(name: str, **options: Any) -> FeatureSpec:
    """Check ``options`` for extractor ``name`` and say what it would compute.

    Nothing expensive is built: Inception-v4 validates its options, finds and
    hashes the checkpoint, and stops before TensorFlow.

    Raises
    ------
    FeatureError
        An unknown extractor, or an option it refuses.
    """
    cls = extractor_class(name)
    describe = getattr(cls, "describe", None)
    if describe is not None:
        spec = describe(**options)
        if not isinstance(spec, FeatureSpec):
            raise FeatureError(f"{name}.describe returned {type(spec).__name__}")
        return spec
    try:
        extractor = cls(**options)
    except TypeError as err:
        raise FeatureError(
            f"extractor {name!r}: {err}", expected="its documented options"
        ) from None
    labels = extractor.feature_labels()
    return FeatureSpec(
        name=name,
        dim=extractor.dim,
        n_features=int(extractor.n_features),
        attrs={"extractor": name, **extractor.attrs()},
        options=dict(options),
        labels=None if labels is None else tuple(labels),
        threaded=bool(getattr(cls, "threaded", False)),
    )


def spec_from_attrs(name: str, attrs: Mapping[str, Any], **local: Any) -> FeatureSpec:
    """The spec that reproduces features recorded with ``attrs``, plus local options.

    Parameters
    ----------
    name
        The extractor that made the features.
    attrs
        The feature variable's attributes (or a model's ``feature_settings``).
    **local
        Options that do not change values and are not recorded as such: where
        the checkpoint is, batch size, precision, threads.
    """
    cls = extractor_class(name)
    from_attrs = getattr(cls, "options_from_attrs", None)
    options = dict(from_attrs(dict(attrs))) if from_attrs is not None else {}
    options.update({k: v for k, v in local.items() if v is not None})
    return feature_spec(name, **options)
