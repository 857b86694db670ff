"""Feature extractors: a name -> a class with one small interface, and its settings.

An extractor turns a batch of cube pixels (uint8, ``(n, y, x)`` or
``(n, y, x, band)``) and their rotation angles into a float32 matrix
``(n, n_features)``.  The cube stores the result as
``features_<name>(image, <dim>)`` with the extractor's attributes.

Settings travel with features: a :class:`FeatureSpec` says what an extractor
will compute (its dimension, length, labels and the attributes recorded on the
variable) *before* anything is built, so that options are checked and settings
compared before the first write.  What a caller says about an extractor is one
frozen settings object per extractor (:mod:`oathcube.features.settings`), carried
by the spec; an extractor is rebuilt from the attributes of features it made
(:func:`spec_from_attrs`, ``Settings.from_attrs``), which is how
``classify`` applies a model to new frames with the model's own settings.

Extractors themselves are built once per worker process (:meth:`FeatureSpec.build`),
never per task, because building one may be expensive (Inception-v4 loads 46 M
weights).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import FeatureError
from .settings import (
    AuroraFMSettings,
    ExtractorSettings,
    HandcraftedSettings,
    InceptionV4Settings,
    settings_class,
    with_local,
)

__all__ = [
    "AuroraFMSettings",
    "Calibration",
    "ExtractorSettings",
    "FeatureExtractor",
    "HandcraftedSettings",
    "InceptionV4Settings",
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
    An extractor with a settings class (:data:`oathcube.features.settings.SETTINGS`)
    is built as ``cls(settings, calibration=...)``; one registered without, as
    ``cls()``.  An optional class method ``describe(settings) -> FeatureSpec`` says
    what it would compute without building it (otherwise an instance is built to
    find out).  A class attribute ``threaded = True`` says that its settings hold
    a ``threads`` budget.
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


@dataclass(frozen=True)
class Calibration:
    """Frames that calibrate int8 quantisation, read from the cube by the computation.

    Parameters
    ----------
    pixels
        uint8 frames.
    rot_angle
        Their rotation angles (0 where the group has none).
    record
        What ``int8_calibration`` records: cube, group, rows, SHA-256 of the frames.
    """

    pixels: np.ndarray = field(repr=False)
    rot_angle: np.ndarray = field(repr=False)
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        """The frames' hash (what an extractor is cached by)."""
        return str(self.record.get("sha256", ""))


#: name -> "module:class"; imported lazily so that nothing imports TensorFlow
#: unless an Inception feature is asked for.
REGISTRY: dict[str, str] = {
    "handcrafted": "oathcube.features.handcrafted:HandcraftedExtractor",
    "inception_v4": "oathcube.features.inception_v4:InceptionV4Extractor",
    "aurora_fm": "oathcube.features.aurora_fm:AuroraFMExtractor",
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
        "calibration_size",
    }
)

#: What oathcube promises about float features computed twice.  With the same settings,
#: scheduler and thread count on one machine: the same bits.  Across schedulers, thread
#: counts, engines (fp32) or CPUs, where the kernels sum in another order: every value within
#: ``FEATURE_TOLERANCE`` times the largest absolute value of the features compared.
FEATURE_TOLERANCE = 1e-5

_CACHE: dict[tuple[str, Any, str], FeatureExtractor] = {}
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


def get_extractor(
    name: str, settings: Any = None, *, calibration: Calibration | None = None
) -> FeatureExtractor:
    """Return the extractor ``name`` built with ``settings``, cached per process.

    Parameters
    ----------
    name
        A key of :data:`REGISTRY`.
    settings
        Its settings object (:mod:`oathcube.features.settings`; default: the
        defaults), or None for an extractor registered without a settings class.
    calibration
        The int8 calibration frames, when the settings ask for int8.

    Raises
    ------
    FeatureError
        If ``name`` is not registered.
    """
    cls = extractor_class(name)
    if settings is None and settings_class(name) is not None:
        settings = settings_class(name)()  # type: ignore[misc]
    key = (name, settings, calibration.sha256 if calibration is not None else "")
    with _CACHE_LOCK:
        if key not in _CACHE:
            if settings is None:
                _CACHE[key] = cls()
            elif calibration is not None:
                _CACHE[key] = cls(settings, calibration=calibration)
            else:
                _CACHE[key] = cls(settings)
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
    settings
        The extractor's settings object (:mod:`oathcube.features.settings`), or
        None for an extractor registered without one.
    labels
        Feature names along ``dim``, or None.
    threaded
        Whether the settings hold a ``threads`` budget.
    calibration
        The int8 calibration frames once the computation has read them from its
        cube (:meth:`calibrated`); None before, and for other precisions.
    """

    name: str
    dim: str
    n_features: int
    attrs: dict[str, Any]
    settings: Any = None
    labels: tuple[str, ...] | None = None
    threaded: bool = False
    calibration: Calibration | None = field(default=None, repr=False, compare=False)

    @property
    def variable(self) -> str:
        """The cube variable, ``features_<name>``."""
        return variable_name(self.name)

    @property
    def needs_calibration(self) -> bool:
        """True for int8 settings whose calibration frames are not read yet."""
        return getattr(self.settings, "precision", None) == "int8" and self.calibration is None

    def calibrated(self, calibration: Calibration) -> FeatureSpec:
        """This spec with int8 calibration frames, recorded as ``int8_calibration``."""
        attrs = {**self.attrs, "int8_calibration": dict(calibration.record)}
        return replace(self, attrs=attrs, calibration=calibration)

    def settings_record(self) -> dict[str, Any]:
        """The recorded settings that change feature values."""
        return value_settings(self.attrs)

    def differences(self, attrs: Mapping[str, Any]) -> list[str]:
        """Value settings in which recorded ``attrs`` differ from this spec's."""
        mine, theirs = self.settings_record(), value_settings(attrs)
        return sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))

    def build(self, threads: int | None = None) -> FeatureExtractor:
        """The extractor itself, built once per process (and per thread budget)."""
        settings = self.settings
        if self.threaded and threads is not None and settings.threads is None:
            settings = replace(settings, threads=threads)
        return get_extractor(self.name, settings, calibration=self.calibration)


def _settings_of(name: str, options: Mapping[str, Any]) -> Any:
    cls = settings_class(name)
    if cls is None:
        if options:
            raise FeatureError(
                f"extractor {name!r} takes no settings", expected="no options", parameter="features"
            )
        return None
    try:
        return cls(**options)
    except TypeError as err:
        raise FeatureError(
            f"extractor {name!r}: {err}",
            parameter="features",
            expected=f"fields of {cls.__name__}: " + ", ".join(f.name for f in fields(cls)),
        ) from None


def feature_spec(what: str | FeatureSpec | Any, **options: Any) -> FeatureSpec:
    """Check settings and say what the extractor would compute.

    Parameters
    ----------
    what
        A :class:`FeatureSpec` (returned as it is), a settings object
        (:class:`~oathcube.features.settings.HandcraftedSettings`,
        :class:`~oathcube.features.settings.InceptionV4Settings`), or an
        extractor's name (its default settings, or those made of ``options``).
    **options
        Fields of the extractor's settings class, only with a name.

    Nothing expensive is built: Inception-v4 finds and hashes the checkpoint and
    stops before TensorFlow.

    Raises
    ------
    FeatureError
        An unknown extractor, or a setting it refuses.
    """
    if isinstance(what, FeatureSpec):
        if options:
            raise FeatureError("options given with a FeatureSpec", parameter="features")
        return what
    if isinstance(what, str):
        name, settings = what, _settings_of(what, options)
    else:
        if options:
            raise FeatureError("options given with a settings object", parameter="features")
        recorded = getattr(what, "extractor", None)
        if not isinstance(recorded, str) or settings_class(recorded) is not type(what):
            raise FeatureError(
                f"{type(what).__name__} is not an extractor's settings",
                parameter="features",
                expected="an extractor name, a FeatureSpec or a settings object",
            )
        name, settings = recorded, what
    cls = extractor_class(name)
    describe = getattr(cls, "describe", None)
    if describe is not None:
        spec = describe(settings)
        if not isinstance(spec, FeatureSpec):
            raise FeatureError(f"{name}.describe returned {type(spec).__name__}")
        return spec
    extractor = cls() if settings is None else cls(settings)
    labels = extractor.feature_labels()
    return FeatureSpec(
        name=name,
        dim=extractor.dim,
        n_features=int(extractor.n_features),
        attrs={"extractor": name, **extractor.attrs()},
        settings=settings,
        labels=None if labels is None else tuple(labels),
        threaded=bool(getattr(cls, "threaded", False)),
    )


def spec_from_attrs(name: str, attrs: Mapping[str, Any], local: Any = None) -> FeatureSpec:
    """The spec that reproduces features recorded with ``attrs``.

    Parameters
    ----------
    name
        The extractor that made the features.
    attrs
        The feature variable's attributes (or a model's ``feature_settings``).
    local
        A settings object whose ``LOCAL`` fields (where the checkpoint is, batch
        size, precision, engine, threads) replace the defaults; every other field
        comes from ``attrs``.
    """
    cls = settings_class(name)
    if cls is None:
        extractor_class(name)  # an unknown name is named
        return feature_spec(name)
    return feature_spec(with_local(cls.from_attrs(dict(attrs)), local))
