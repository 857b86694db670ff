"""Feature extractors: a name -> a class with one small interface.

An extractor turns a batch of cube pixels (uint8, ``(n, y, x)`` or
``(n, y, x, band)``) and their rotation angles into a float32 matrix
``(n, n_features)``.  The cube stores the result as
``features_<name>(image, <dim>)``.  Extractors are built once per worker
process (see :func:`get_extractor`), never per task, because building one may
be expensive (Inception-v4 loads 46 M weights).
"""

from __future__ import annotations

import importlib
import inspect
import threading
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import FeatureError

__all__ = [
    "FeatureExtractor",
    "REGISTRY",
    "accepts_option",
    "extractor_class",
    "extractor_names",
    "get_extractor",
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

_CACHE: dict[tuple[str, tuple[tuple[str, Any], ...]], FeatureExtractor] = {}
_CACHE_LOCK = threading.Lock()


def extractor_names() -> list[str]:
    """Return the names of the registered extractors."""
    return sorted(REGISTRY)


def variable_name(name: str) -> str:
    """Return the cube variable that holds the features called ``name``."""
    return f"features_{name}"


def extractor_class(name: str) -> type:
    """Return the class registered as ``name`` (imports its module)."""
    if name not in REGISTRY:
        raise FeatureError(
            f"unknown feature extractor {name!r}", expected=f"one of {', '.join(extractor_names())}"
        )
    module_name, class_name = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def accepts_option(name: str, option: str) -> bool:
    """Whether extractor ``name``'s constructor takes the keyword ``option``."""
    return option in inspect.signature(extractor_class(name)).parameters


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
