"""Typed extractor settings: one frozen dataclass per extractor.

A settings object is what a caller says about an extractor; it is checked when
it is made (each error names the Python parameter, and the CLI flag beside it),
carried by :class:`~oathcube.features.FeatureSpec`, and recorded on the feature
variable.  ``attrs()`` gives the JSON-able record and ``from_attrs()`` rebuilds
the settings from it, from the attributes of a feature variable, or from a
model's ``feature_settings`` (extra keys are ignored, missing ones default), as
:class:`oathcube.rawprep.RawPreparation` does.

Fields listed in ``LOCAL`` do not change feature values (where the checkpoint
is, batch size, threads, precision, engine, int8 calibration): ``classify``
takes them from the caller and every other field from the model's record.

Nothing here imports TensorFlow, OpenVINO or the cube.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, ClassVar, TypeAlias, TypeVar

from ..errors import FeatureError

__all__ = [
    "CALIBRATION_SIZE",
    "DEFAULT_ENGINE",
    "ENGINES",
    "LAYERS",
    "PRECISIONS",
    "SETTINGS",
    "AuroraFMSettings",
    "ExtractorSettings",
    "HandcraftedSettings",
    "InceptionV4Settings",
    "settings_class",
    "with_local",
]

#: Engines in the order of preference (see :mod:`oathcube.features.engines`).
ENGINES: tuple[str, ...] = ("openvino", "tensorflow")

#: The engine used when none is named.
DEFAULT_ENGINE = "openvino"

#: Every precision some engine offers.
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8")

#: Selectable Inception-v4 layers: endpoint -> (cube dimension name, length).
LAYERS: dict[str, tuple[str, int]] = {
    "Logits": ("logit", 1001),
    "PreLogitsFlatten": ("prelogit", 1536),
}

#: Frames of the cube that calibrate int8 quantisation (NNCF's default is 300;
#: 128 evenly spaced frames take about a minute on two cores).
CALIBRATION_SIZE = 128


def _ints(name: str, values: Any) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise FeatureError(
            f"{name}={values!r}", parameter=name, expected="a sequence of integers"
        ) from None
    if not out:
        raise FeatureError(f"{name}=()", parameter=name, expected="at least one value")
    return out


@dataclass(frozen=True)
class HandcraftedSettings:
    """Settings of :class:`~oathcube.features.handcrafted.HandcraftedExtractor`.

    Parameters
    ----------
    rotate
        Rotate each frame by its ``rot_angle`` first, as the paper's chain does.
    hist_bins
        Bins of the grey-level histogram (must divide 256).
    n_annuli
        Concentric annuli of the radial profile.
    glcm_levels
        Grey levels the co-occurrence matrices are quantised to (2..255).
    glcm_distances
        Pixel distances of the co-occurrence matrices.
    lbp_radii
        Radii (pixels) of the local binary patterns.
    star_thresholds
        Top-hat heights (grey levels) above which a local peak counts as a star.

    Examples
    --------
    >>> s = HandcraftedSettings(hist_bins=8)
    >>> HandcraftedSettings.from_attrs(s.attrs()) == s
    True
    """

    extractor: ClassVar[str] = "handcrafted"
    #: Fields that do not change feature values: none.
    LOCAL: ClassVar[frozenset[str]] = frozenset()

    rotate: bool = True
    hist_bins: int = 16
    n_annuli: int = 8
    glcm_levels: int = 32
    glcm_distances: tuple[int, ...] = (1, 3)
    lbp_radii: tuple[int, ...] = (1, 2)
    star_thresholds: tuple[int, ...] = (10, 20, 40)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "rotate", bool(int(self.rotate)))
        for name in ("hist_bins", "n_annuli", "glcm_levels"):
            set_(self, name, int(getattr(self, name)))
        set_(self, "glcm_distances", _ints("glcm_distances", self.glcm_distances))
        set_(self, "lbp_radii", _ints("lbp_radii", self.lbp_radii))
        set_(self, "star_thresholds", _ints("star_thresholds", self.star_thresholds))
        if self.hist_bins < 1 or 256 % self.hist_bins:
            raise FeatureError(
                f"hist_bins={self.hist_bins}", parameter="hist_bins", expected="a divisor of 256"
            )
        if not 2 <= self.glcm_levels <= 255:
            raise FeatureError(
                f"glcm_levels={self.glcm_levels}", parameter="glcm_levels", expected="2..255"
            )
        if self.n_annuli < 1:
            raise FeatureError(
                f"n_annuli={self.n_annuli}", parameter="n_annuli", expected="1 or more"
            )

    def attrs(self) -> dict[str, Any]:
        """The settings as recorded on ``features_handcrafted`` (JSON-able)."""
        return {
            "extractor": self.extractor,
            "rotate": int(self.rotate),
            "hist_bins": self.hist_bins,
            "n_annuli": self.n_annuli,
            "glcm_levels": self.glcm_levels,
            "glcm_distances": list(self.glcm_distances),
            "lbp_radii": list(self.lbp_radii),
            "star_thresholds": list(self.star_thresholds),
        }

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> HandcraftedSettings:
        """Rebuild from :meth:`attrs`, a feature variable's attributes or a model's record."""
        _check_extractor(cls.extractor, attrs)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in attrs.items() if k in names})


@dataclass(frozen=True)
class InceptionV4Settings:
    """Settings of :class:`~oathcube.features.inception_v4.InceptionV4Extractor`.

    Parameters
    ----------
    checkpoint
        The released ``inception_v4.ckpt``; default ``$OATHCUBE_INCEPTION_V4_CHECKPOINT``,
        else the one ``oathcube fetch checkpoint`` put in the data folder.
    layer
        ``"Logits"`` (1001, the OATH features) or ``"PreLogitsFlatten"`` (1536).
    precision
        ``"fp32"``, ``"bf16"`` or ``"int8"`` (OpenVINO only: calibrated on frames
        of the cube the features are computed in).
    batch_size
        Images per network call.
    random_weights
        Deterministic random weights instead of a checkpoint (tests, benchmarks).
    threads
        Threads of the network (default: the worker's thread budget).
    engine
        ``"openvino"`` or ``"tensorflow"`` (None: the default engine); speed only.
    calibration_group
        For ``int8``: the group of the cube whose frames calibrate the
        quantisation (``stations/<code>``; None: the group being computed).
    calibration_size
        For ``int8``: how many frames, spread evenly over the group's rows.
    """

    extractor: ClassVar[str] = "inception_v4"
    #: Fields that do not change feature values (beyond round-off).
    LOCAL: ClassVar[frozenset[str]] = frozenset(
        {
            "checkpoint",
            "precision",
            "batch_size",
            "threads",
            "engine",
            "calibration_group",
            "calibration_size",
        }
    )

    checkpoint: str | None = None
    layer: str = "Logits"
    precision: str = "fp32"
    batch_size: int = 32
    random_weights: bool = False
    threads: int | None = None
    engine: str | None = None
    calibration_group: str | None = None
    calibration_size: int = CALIBRATION_SIZE

    def __post_init__(self) -> None:
        if self.layer not in LAYERS:
            raise FeatureError(
                f"unknown Inception-v4 layer {self.layer!r}",
                parameter="layer",
                expected=f"one of {', '.join(LAYERS)}",
            )
        _check_network(self)

    @property
    def resolved_engine(self) -> str:
        """The engine that runs the network (the default when none is named)."""
        return self.engine or DEFAULT_ENGINE

    def attrs(self) -> dict[str, Any]:
        """The settings as recorded on ``features_inception_v4`` (JSON-able).

        Where the checkpoint is, the thread count and the calibration group are
        not recorded here (the feature variable records the checkpoint's path and
        hash, and the calibration's rows, itself).
        """
        return _network_attrs(self, layer=self.layer)

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> InceptionV4Settings:
        """Rebuild from :meth:`attrs`, a feature variable's attributes or a model's record.

        The checkpoint's bytes are recorded as a hash, so where the checkpoint is
        stays the caller's to say; keys this class does not know are ignored.
        """
        return cls(**_network_fields(cls.extractor, attrs, "layer"))


@dataclass(frozen=True)
class AuroraFMSettings:
    """Settings of :class:`~oathcube.features.aurora_fm.AuroraFMExtractor`.

    Parameters
    ----------
    checkpoint
        ``aurora-fm-no-finetune.tar`` (Johnson et al. 2021's SimCLR ResNet-18);
        default ``$OATHCUBE_AURORA_FM_CHECKPOINT``, else the one ``oathcube fetch
        aurora-fm`` put in the data folder.
    precision
        ``"fp32"``, ``"bf16"`` or ``"int8"`` (OpenVINO only: calibrated on frames
        of the cube the features are computed in), under the rules of Inception-v4.
    batch_size
        Images per network call.
    random_weights
        Deterministic random weights instead of a checkpoint (tests, benchmarks).
    threads
        Threads of the network (default: the worker's thread budget).
    engine
        ``"openvino"`` or ``"tensorflow"`` (None: the default engine); speed only.
    calibration_group
        For ``int8``: the group whose frames calibrate the quantisation (None: the
        group being computed).
    calibration_size
        For ``int8``: how many frames, spread evenly over the group's rows.

    Examples
    --------
    >>> s = AuroraFMSettings(batch_size=16)
    >>> AuroraFMSettings.from_attrs(s.attrs()) == AuroraFMSettings(batch_size=16, engine="openvino")
    True
    """

    extractor: ClassVar[str] = "aurora_fm"
    #: Fields that do not change feature values (beyond round-off).
    LOCAL: ClassVar[frozenset[str]] = InceptionV4Settings.LOCAL

    checkpoint: str | None = None
    precision: str = "fp32"
    batch_size: int = 32
    random_weights: bool = False
    threads: int | None = None
    engine: str | None = None
    calibration_group: str | None = None
    calibration_size: int = CALIBRATION_SIZE

    def __post_init__(self) -> None:
        _check_network(self)

    @property
    def resolved_engine(self) -> str:
        """The engine that runs the network (the default when none is named)."""
        return self.engine or DEFAULT_ENGINE

    def attrs(self) -> dict[str, Any]:
        """The settings as recorded on ``features_aurora_fm`` (JSON-able).

        As for Inception-v4, the checkpoint is recorded by its path and SHA-256 on
        the feature variable itself, not here.
        """
        return _network_attrs(self)

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> AuroraFMSettings:
        """Rebuild from :meth:`attrs`, a feature variable's attributes or a model's record."""
        return cls(**_network_fields(cls.extractor, attrs))


#: Settings of the extractors oathcube ships.
ExtractorSettings: TypeAlias = HandcraftedSettings | InceptionV4Settings | AuroraFMSettings

#: extractor name -> its settings class.
SETTINGS: dict[str, type[ExtractorSettings]] = {
    "handcrafted": HandcraftedSettings,
    "inception_v4": InceptionV4Settings,
    "aurora_fm": AuroraFMSettings,
}


def _check_extractor(name: str, attrs: dict[str, Any]) -> None:
    recorded = attrs.get("extractor", name)
    if recorded != name:
        raise FeatureError(
            f"settings of extractor {recorded!r} given to {name}", expected=f"a {name} record"
        )


#: The recorded fields every network extractor's settings share.
_NETWORK_FIELDS = ("precision", "engine", "random_weights", "batch_size", "calibration_size")


def _network_attrs(settings: Any, **own: Any) -> dict[str, Any]:
    """A network extractor's record: its own fields, then the shared ones."""
    out: dict[str, Any] = {
        "extractor": settings.extractor,
        **own,
        "precision": settings.precision,
        "engine": settings.resolved_engine,
        "random_weights": int(settings.random_weights),
        "batch_size": settings.batch_size,
    }
    if settings.precision == "int8":
        out["calibration_size"] = settings.calibration_size
    return out


def _network_fields(extractor: str, attrs: dict[str, Any], *own: str) -> dict[str, Any]:
    """The fields of a network extractor's settings found in a record (unknown keys ignored)."""
    _check_extractor(extractor, attrs)
    names = {*_NETWORK_FIELDS, *own}
    return {k: v for k, v in attrs.items() if k in names and v is not None}


def _check_network(settings: Any) -> None:
    """Check and normalise the fields every network extractor's settings share.

    Precision, engine, batch size, threads and int8 calibration size mean the same
    for Inception-v4 and Aurora-FM, and are refused in the same words.
    """
    set_ = object.__setattr__
    if settings.checkpoint is not None:
        set_(settings, "checkpoint", str(settings.checkpoint) or None)
    if settings.precision not in PRECISIONS:
        raise FeatureError(
            f"unknown precision {settings.precision!r}",
            parameter="precision",
            expected=" or ".join(PRECISIONS),
        )
    if settings.engine is not None and settings.engine not in ENGINES:
        raise FeatureError(
            f"unknown engine {settings.engine!r}",
            parameter="engine",
            expected=" or ".join(ENGINES),
        )
    if int(settings.batch_size) < 1:
        raise FeatureError(
            f"batch size {settings.batch_size}",
            parameter="batch_size",
            expected="a batch size of 1 or more",
        )
    set_(settings, "batch_size", int(settings.batch_size))
    set_(settings, "random_weights", bool(int(settings.random_weights)))
    if settings.threads is not None:
        if int(settings.threads) < 1:
            raise FeatureError(
                f"{settings.threads} threads", parameter="threads", expected="1 or more"
            )
        set_(settings, "threads", int(settings.threads))
    if int(settings.calibration_size) < 1:
        raise FeatureError(
            f"{settings.calibration_size} calibration frames",
            parameter="calibration_size",
            expected="1 or more",
        )
    set_(settings, "calibration_size", int(settings.calibration_size))


_Settings = TypeVar("_Settings", HandcraftedSettings, InceptionV4Settings, AuroraFMSettings)


def settings_for(extractor: str, settings: Any, kind: type[_Settings]) -> _Settings:
    """``settings`` checked to be ``kind`` (a new default one for None): what an extractor takes.

    Raises
    ------
    FeatureError
        Settings of another extractor, or something else.
    """
    settings = kind() if settings is None else settings
    if not isinstance(settings, kind):
        raise FeatureError(
            f"{type(settings).__name__} given to the {extractor} extractor",
            parameter="settings",
            expected=kind.__name__,
        )
    return settings


def settings_class(name: str) -> type[ExtractorSettings] | None:
    """The settings class of extractor ``name`` (None for one registered without)."""
    return SETTINGS.get(name)


def with_local(recorded: Any, local: Any) -> Any:
    """``recorded`` settings with the ``LOCAL`` fields (checkpoint, precision, ...) of ``local``.

    Raises
    ------
    FeatureError
        ``local`` is settings of another extractor.
    """
    if local is None:
        return recorded
    if type(local) is not type(recorded):
        raise FeatureError(
            f"{type(local).__name__} given for features of {recorded.extractor}",
            parameter="features",
            expected=f"{type(recorded).__name__}",
        )
    mine = asdict(local)
    return replace(recorded, **{k: mine[k] for k in type(local).LOCAL})
