"""The one place that knows what a cube holds: every variable's name, dims, dtype, chunks.

A cube is a Zarr v3 group.  Its root holds the labelled OATH images along the
``image`` dimension; ``stations/<code>`` groups hold raw archives along ``time``
(``stations/<code>/skymaps/<YYYYMMDDTHH>`` their skymaps); ``models/<name>`` groups
hold trained classifiers as plain arrays.  ``docs/cube.md`` describes the same schema
for people who open a cube without oathcube (``tests/test_schema.py`` checks that it
names every variable here).

Each variable is a :class:`VariableSpec`: a small frozen record of its name, dims,
dtype, fill value, chunking rule, attributes and encoding.  Writers ask for one (the
functions below: :func:`root_specs`, :func:`station_specs`, :func:`features_spec`,
:func:`prediction_specs`, :func:`labels_spec`, :func:`model_specs`,
:func:`layer_specs`, :func:`skymap_specs`) and hand it to
:meth:`oathcube.cube.store.Cube.create` (arrays written through zarr) or to
:meth:`VariableSpec.variable` (Datasets written through xarray), instead of spelling
dims, dtypes and attributes themselves.  Names are built
(:func:`features_name`, :func:`prediction_names`, :func:`station_group`, ...) and read
back (:func:`feature_sets`, :func:`prediction_models`, :func:`station_of`,
:func:`extractor_of`, :func:`model_of`) only here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from zarr.codecs import ZstdCodec

from .._version import __version__
from ..labels import CLASS2_NAMES, CLASS6_NAMES

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "TIME_ENCODING",
    "STATION_GROUP",
    "MODEL_GROUP",
    "SKYMAP_GROUP",
    "UNKNOWN_STATION",
    "TARGET_CHUNK_BYTES",
    "PIXEL_COMPRESSORS",
    "TIME_CHUNK",
    "STATUS",
    "BUILDING",
    "COMPLETE",
    "COMMITTED_ROWS",
    "PENDING",
    "Chunking",
    "VariableSpec",
    "images_per_chunk",
    "provenance",
    "root_specs",
    "station_specs",
    "station_attrs",
    "features_spec",
    "labels_spec",
    "prediction_specs",
    "model_specs",
    "layer_specs",
    "skymap_specs",
    "catalogue",
    "features_name",
    "prediction_names",
    "station_group",
    "model_group",
    "skymaps_group",
    "skymap_group",
    "variable_path",
    "feature_sets",
    "prediction_models",
    "station_of",
    "extractor_of",
    "model_of",
]

#: CF encoding of every time coordinate: integer microseconds (UCalgary PGM times
#: carry them), explicit units, UTC.
TIME_ENCODING: dict[str, Any] = {
    "units": "microseconds since 1970-01-01T00:00:00",
    "calendar": "proleptic_gregorian",
    "dtype": "int64",
}
UNKNOWN_STATION = "unknown"
STATION_GROUP = "stations"
MODEL_GROUP = "models"
#: Subgroup of a station that holds its skymaps.
SKYMAP_GROUP = "skymaps"

#: Compression of every ``pixels`` array: zstd at level 1, not zarr's default (3).  On the
#: real Gakona frames, prepared, it stores 0.14% more bytes (33,395 vs 33,348 a frame)
#: and compresses 2.3x faster (109 vs 254 us a frame on an EPYC Zen 4), which is most of
#: what ingest spends beside reading the raw files; decompressing is no slower.
PIXEL_COMPRESSORS = (ZstdCodec(level=1),)

#: Aim for chunks of a few tens of MB: big enough that dask's per-task overhead and
#: object-store latency vanish, small enough that a few per worker fit in memory.
TARGET_CHUNK_BYTES = 32 * 2**20

#: Rows per chunk of a station's ``time``: 512 KB of int64, so that reading a station's
#: whole time axis is a few objects even for a decade of 3-second frames.
TIME_CHUNK = 2**16

#: Attribute of a cube, a model or a skymap group: ``building`` while its writer works,
#: ``complete`` once it is whole (written last, the commit; see docs/cube.md).
STATUS = "oathcube_status"
BUILDING = "building"
COMPLETE = "complete"

#: Group attribute of a station: how many rows of its time-indexed arrays are committed.
#: Written last, in one metadata write, after the rows' values are durably in their
#: chunks; rows beyond it belong to a writer that has not committed (or was killed).
COMMITTED_ROWS = "oathcube_rows"

#: Group attribute: the append an ingest planned and has not committed (or None).
PENDING = "oathcube_pending"

#: How a variable is cut into chunks: ``rows`` along its first axis only (the rest
#: whole), ``whole`` as one chunk, ``auto`` as zarr chooses (small arrays written
#: through xarray).
Chunking = Literal["rows", "whole", "auto"]

#: Prefixes of the variables that are named after an extractor or a model.
_FEATURES = "features_"
_PREDICTED = "predicted_"
_SCORE = "score_"
_CLASS = "class_"


def images_per_chunk(image_shape: tuple[int, ...], n_images: int | None = None) -> int:
    """Number of images per chunk for frames of ``image_shape`` (uint8)."""
    per_image = math.prod(image_shape)
    size = max(1, TARGET_CHUNK_BYTES // per_image)
    if n_images is not None:
        size = min(size, max(1, n_images))
    return int(size)


def provenance(**extra: Any) -> dict[str, Any]:
    """Attributes that say who wrote a cube (or part of one), and when."""
    attrs: dict[str, Any] = {
        "oathcube_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    attrs.update({k: _plain(v) for k, v in extra.items()})
    return attrs


def _plain(value: Any) -> Any:
    """JSON-safe attribute value (numpy scalars and paths become plain types)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


# -- the variable spec --------------------------------------------------------------------


@dataclass(frozen=True)
class VariableSpec:
    """One variable of a cube: what every writer of it, and docs/cube.md, agree on.

    Parameters
    ----------
    name
        The variable's name in its group.
    dims
        Dimension names, first the one rows are appended or written along.
    dtype
        The dtype readers see: a numpy dtype name, ``"str"`` (zarr's variable-length
        UTF-8 strings; numpy ``object`` in memory) or ``"datetime64[ns]"`` (stored as
        :data:`TIME_ENCODING` says: int64 with CF ``units`` and ``calendar``).
    fill_value
        The stored fill value: what a chunk never written reads as.  For computed
        variables it means "not computed yet" (NaN features, -1 predictions).
    chunking
        ``rows``, ``whole`` or ``auto`` (see :data:`Chunking`).
    rows_per_chunk
        Rows per chunk where ``chunking`` is ``rows``; None: about
        :data:`TARGET_CHUNK_BYTES` of uint8 rows (:func:`images_per_chunk`), the rule of
        ``pixels``.
    rows_per_shard
        Rows per shard, for sharded arrays (a station's pixels when asked); None: none.
    attrs
        The variable's own attributes, in the order they are stored.
    provenance
        Whether the stored attributes start with :func:`provenance` (version and time
        of writing): computed variables record who computed them.
    compressors
        Zarr compressors; None: zarr's default.
    encoding
        Further xarray encoding (:data:`TIME_ENCODING` for times).
    """

    name: str
    dims: tuple[str, ...]
    dtype: str
    fill_value: Any = None
    chunking: Chunking = "auto"
    rows_per_chunk: int | None = None
    rows_per_shard: int | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict, hash=False)
    provenance: bool = False
    compressors: tuple[Any, ...] | None = None
    encoding: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # Read-only views: a spec is shared, and no writer may change it for the others.
        object.__setattr__(self, "dims", tuple(self.dims))
        object.__setattr__(self, "attrs", MappingProxyType(dict(self.attrs)))
        object.__setattr__(self, "encoding", MappingProxyType(dict(self.encoding)))

    @property
    def is_time(self) -> bool:
        """Whether the values are times, stored as CF-encoded integers."""
        return self.dtype.startswith("datetime64")

    @property
    def stored_dtype(self) -> Any:
        """The dtype zarr stores: ``str`` for strings, int64 for times, else ``dtype``."""
        if self.dtype == "str":
            return str
        if self.is_time:
            return str(self.encoding.get("dtype", TIME_ENCODING["dtype"]))
        return self.dtype

    @property
    def memory_dtype(self) -> np.dtype[Any]:
        """The numpy dtype of the values in memory (``object`` for strings)."""
        return np.dtype(object if self.dtype == "str" else self.dtype)

    def chunks(self, shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """Chunk shape for an array of ``shape`` (None: zarr's own choice)."""
        if self.chunking == "whole":
            return tuple(int(n) for n in shape)
        if self.chunking == "rows":
            rows = self.rows_per_chunk or images_per_chunk(tuple(shape[1:]))
            return (int(rows), *(int(n) for n in shape[1:]))
        return None

    def shards(self, shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """Shard shape for an array of ``shape`` (None: not sharded)."""
        if not self.rows_per_shard:
            return None
        return (int(self.rows_per_shard), *(int(n) for n in shape[1:]))

    def stored_attrs(self) -> dict[str, Any]:
        """The attributes as zarr stores them (with provenance, and CF units for times).

        Called when the array is created: provenance records that moment.
        """
        attrs = provenance(**self.attrs) if self.provenance else dict(self.attrs)
        if self.is_time:
            attrs["units"] = self.encoding.get("units", TIME_ENCODING["units"])
            attrs["calendar"] = self.encoding.get("calendar", TIME_ENCODING["calendar"])
        return attrs

    def with_rows(self, rows_per_chunk: int, rows_per_shard: int | None = None) -> VariableSpec:
        """The same variable chunked along its first axis by ``rows_per_chunk`` rows."""
        return replace(
            self, chunking="rows", rows_per_chunk=rows_per_chunk, rows_per_shard=rows_per_shard
        )

    def with_attrs(self, **attrs: Any) -> VariableSpec:
        """The same variable with ``attrs`` added after its own."""
        return replace(self, attrs={**self.attrs, **attrs})

    def xarray_encoding(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """The encoding xarray's ``to_zarr`` needs to store the variable as specified."""
        encoding: dict[str, Any] = dict(self.encoding)
        if self.is_time:
            encoding = {**TIME_ENCODING, **encoding}
        chunks = self.chunks(shape)
        if chunks is not None:
            encoding["chunks"] = chunks
        if self.compressors is not None:
            encoding["compressors"] = self.compressors
        return encoding

    def variable(self, values: Any) -> xr.Variable:
        """``values`` as an :class:`xarray.Variable` of this spec, to write with xarray.

        The values are cast to the spec's dtype (a dask array stays lazy); dims,
        attributes and encoding (chunks, compressors, CF times) come from the spec.
        Provenance, where the spec records it, is added now.
        """
        import xarray as xr

        data = values
        if not isinstance(data, np.ndarray) and not hasattr(data, "chunks"):
            data = np.asarray(data)  # lists, pandas Series: numpy (dask stays lazy)
        if data.dtype != self.memory_dtype:
            data = data.astype(self.memory_dtype)
        attrs = provenance(**self.attrs) if self.provenance else dict(self.attrs)
        return xr.Variable(self.dims, data, attrs, self.xarray_encoding(tuple(data.shape)))


# -- the variables of each group ----------------------------------------------------------


def root_specs(
    *,
    rows_per_chunk: int | None = None,
    bands: bool = False,
    split_source: str = "",
    feature_dim: str = "logit",
) -> dict[str, VariableSpec]:
    """The variables of the root group, the labelled images (``oathcube build``).

    Parameters
    ----------
    rows_per_chunk
        Images per chunk of ``pixels`` and ``features_published`` (the build's
        ``chunk_images``, else :func:`images_per_chunk` of the image shape).
    bands
        Whether ``pixels`` has a ``band`` dimension (some PNGs are RGB).
    split_source
        The ``source`` attribute of ``split``: how the permutations were obtained.
    feature_dim
        The feature dimension of ``features_published``.

    Returns
    -------
    dict
        Name -> spec, coordinates first: ``image``, ``station``, ``time``, ``y``,
        ``x``, ``pixels``, ``class6``, ``class2``, ``label``, ``rot_angle``, ``split``,
        ``features_published``.
    """
    image = ("image",)
    specs = [
        VariableSpec("image", image, "int32", 0, attrs={"long_name": "picNum of the OATH archive"}),
        VariableSpec(
            "station",
            image,
            "str",
            "",
            attrs={"long_name": "THEMIS ASI station code ('unknown' when not recorded)"},
        ),
        VariableSpec(
            "time",
            image,
            "datetime64[ns]",
            0,
            attrs={"long_name": "UTC time of the exposure", "standard_name": "time"},
            # The same instant as TIME_ENCODING's; xarray writes the build's template and
            # spells a midnight reference date without its time.
            encoding={**TIME_ENCODING, "units": "microseconds since 1970-01-01"},
        ),
        VariableSpec("y", ("y",), "int16", 0),
        VariableSpec("x", ("x",), "int16", 0),
        VariableSpec(
            "pixels",
            ("image", "y", "x", "band") if bands else ("image", "y", "x"),
            "uint8",
            0,
            chunking="rows",
            rows_per_chunk=rows_per_chunk,
            attrs={
                "long_name": "image pixels as decoded from the archive's PNGs (unrotated)",
                "units": "1",
                "orientation": "as stored in the PNG: row 0 at the top",
            },
            compressors=PIXEL_COMPRESSORS,
        ),
        VariableSpec(
            "class6",
            image,
            "int8",
            0,
            attrs={
                "long_name": "six-class label",
                "flag_values": list(range(len(CLASS6_NAMES))),
                "flag_meanings": " ".join(CLASS6_NAMES),
            },
        ),
        VariableSpec(
            "class2",
            image,
            "int8",
            0,
            attrs={
                "long_name": "two-class label",
                "flag_values": list(range(len(CLASS2_NAMES))),
                "flag_meanings": " ".join(CLASS2_NAMES),
            },
        ),
        VariableSpec(
            "label", image, "str", "", attrs={"long_name": "picType of classifications.csv"}
        ),
        VariableSpec(
            "rot_angle",
            image,
            "int16",
            0,
            attrs={
                "long_name": "rotAng: rotation applied before feature extraction",
                "units": "degree",
                "comment": "clockwise on screen, as rotate.sh",
            },
        ),
        VariableSpec(
            "split",
            ("fold", "rank"),
            "int32",
            0,
            attrs={
                "long_name": "train/test permutations of image positions (0-based)",
                "comment": "ridge.py protocol: the first round(0.7 * N) of each fold train",
                "source": split_source,
            },
        ),
        VariableSpec(
            features_name("published"),
            ("image", feature_dim),
            "float32",
            np.nan,
            chunking="rows",
            rows_per_chunk=rows_per_chunk,
            attrs={
                "long_name": "Inception-v4 Logits published in features/auroral_feat.h5",
                "source": "features/auroral_feat.h5 (rows matched to picNum by filename)",
            },
        ),
    ]
    return {s.name: s for s in specs}


def station_specs(
    *,
    orientation: str,
    raw_orientation: Any,
    rows_per_chunk: int | None = None,
    rows_per_shard: int | None = None,
    bands: bool = False,
) -> dict[str, VariableSpec]:
    """The variables of a station group ``stations/<code>`` (``oathcube ingest``).

    Parameters
    ----------
    orientation, raw_orientation
        What the ``pixels`` attributes say of the frames' orientation (the archive
        readers' sentences: the cube knows no archive format).
    rows_per_chunk
        Frames per chunk of ``pixels``; None: :func:`images_per_chunk` of the frame.
    rows_per_shard
        Frames per shard of ``pixels``; None: not sharded.
    bands
        Whether ``pixels`` has a ``band`` dimension (3: red, green, blue), as the root's
        has for RGB PNGs: the station's frames have bands (TREx RGB).

    Returns
    -------
    dict
        ``time`` and ``pixels``.  ``time`` grows by :data:`TIME_CHUNK` rows a chunk.
    """
    specs = [
        VariableSpec(
            "time",
            ("time",),
            "datetime64[ns]",
            0,
            chunking="rows",
            rows_per_chunk=TIME_CHUNK,
            attrs={"long_name": "UTC exposure time", "standard_name": "time"},
            encoding=TIME_ENCODING,
        ),
        VariableSpec(
            "pixels",
            ("time", "y", "x", "band") if bands else ("time", "y", "x"),
            "uint8",
            0,
            chunking="rows",
            rows_per_chunk=rows_per_chunk,
            rows_per_shard=rows_per_shard,
            attrs={
                "long_name": "prepared 8-bit frame",
                "units": "1",
                "orientation": orientation,
                "raw_orientation": raw_orientation,
            },
            compressors=PIXEL_COMPRESSORS,
        ),
    ]
    return {s.name: s for s in specs}


def station_attrs(code: str, preparation: str) -> dict[str, Any]:
    """The attributes a new station group starts with: nothing committed, no sources."""
    return provenance(
        station=code, preparation=preparation, sources=[], skipped=[], **{COMMITTED_ROWS: 0}
    )


def features_spec(
    extractor: str,
    *,
    dim: str,
    feature_dim: str,
    rows_per_chunk: int | None = None,
    settings: Mapping[str, Any] | None = None,
) -> VariableSpec:
    """``features_<extractor>``: float32 features of each row, NaN where not computed.

    Parameters
    ----------
    extractor
        The extractor's registry name.
    dim
        ``image`` (the labelled images) or ``time`` (a station).
    feature_dim
        The extractor's feature dimension (``feature``, ``logit``, ``prelogit``).
    rows_per_chunk
        Rows per chunk: those of one stored object of ``pixels``, so that one task
        reads one pixel chunk and writes one feature chunk.
    settings
        The extractor's attributes (settings and provenance), recorded after the
        writer's provenance and before ``long_name``.
    """
    return VariableSpec(
        features_name(extractor),
        (dim, feature_dim),
        "float32",
        np.nan,
        chunking="rows",
        rows_per_chunk=rows_per_chunk,
        attrs={**(settings or {}), "long_name": f"{extractor} features of pixels"},
        provenance=True,
    )


def labels_spec(dim: str) -> VariableSpec:
    """The string coordinate ``dim``: feature names, or a model's class names."""
    return VariableSpec(dim, (dim,), "str", "")


#: What a model's scores are, as the ``long_name`` of ``score_<model>`` says it.
_SCORE_NAMES = {"decision": "decision scores", "probability": "class probabilities"}


def prediction_specs(
    model: str,
    *,
    dim: str,
    rows_per_chunk: int | None = None,
    classes: Iterable[str] = (),
    class_index: Iterable[int] = (),
    score_kind: Literal["decision", "probability"] = "decision",
) -> tuple[VariableSpec, VariableSpec, VariableSpec]:
    """``predicted_<model>``, ``score_<model>`` and its class coordinate ``class_<model>``.

    Parameters
    ----------
    model
        The model's name.
    dim
        ``image`` or ``time``: the dimension of the features classified.
    rows_per_chunk
        Rows per chunk: those of the features.
    classes, class_index
        The model's class names (score order) and their class6/class2 values.
    score_kind
        What the model's scores are (:func:`oathcube.model_arrays.score_kind`):
        ``decision`` values (ridge, the SVMs) or class ``probability`` (logistic
        regression, k-NN, the MLP, LightGBM); recorded in the scores' ``scores``
        attribute and their ``long_name``.

    Returns
    -------
    tuple
        The class (int8, -1: not classified yet), the scores (float32, NaN) and the
        class-name coordinate.
    """
    pred_name, score_name, class_dim = prediction_names(model)
    classes = [str(c) for c in classes]
    predicted = VariableSpec(
        pred_name,
        (dim,),
        "int8",
        -1,
        chunking="rows",
        rows_per_chunk=rows_per_chunk,
        attrs={
            "long_name": f"class predicted by {model}",
            "flag_values": [int(i) for i in class_index],
            "flag_meanings": " ".join(classes),
            "missing": "-1: not classified yet",
        },
        provenance=True,
    )
    scores = VariableSpec(
        score_name,
        (dim, class_dim),
        "float32",
        np.nan,
        chunking="rows",
        rows_per_chunk=rows_per_chunk,
        attrs={
            "long_name": f"{_SCORE_NAMES[score_kind]} of {model}",
            "scores": score_kind,
        },
    )
    return predicted, scores, labels_spec(class_dim)


def model_specs(layers: int = 0) -> dict[str, VariableSpec]:
    """The arrays a trained model ``models/<name>`` may hold (written with xarray, whole).

    Which arrays a model holds depends on its classifier (``classifier`` attribute;
    :mod:`oathcube.model_arrays` says which): every model has ``classes`` (names, score
    order), ``class_index`` (their class6/class2 values) and ``train_image`` (the picNums
    it was fitted on); linear models ``coef(decision, feature)`` and
    ``intercept(decision)``; every scaled one ``scaler_mean`` and ``scaler_scale``
    (``feature``); the RBF SVM ``support_vectors(support, feature)``,
    ``dual_coef(dual, support)``, ``intercept`` (one per pair of classes) and
    ``n_support(class)``; k-NN its ``train_rows(train, feature)``, scaled, and their
    ``train_class(train)``; LightGBM ``booster``, its text model (a 0-d string).  An
    MLP's layers are :func:`layer_specs`, included for ``layers`` layers.
    """
    specs = [
        VariableSpec("coef", ("decision", "feature"), "float64", np.nan),
        VariableSpec("intercept", ("decision",), "float64", np.nan),
        VariableSpec("classes", ("class",), "str", ""),
        VariableSpec("class_index", ("class",), "int8", 0),
        VariableSpec("train_image", ("train",), "int32", 0),
        VariableSpec("scaler_mean", ("feature",), "float64", np.nan),
        VariableSpec("scaler_scale", ("feature",), "float64", np.nan),
        VariableSpec("support_vectors", ("support", "feature"), "float64", np.nan),
        VariableSpec("dual_coef", ("dual", "support"), "float64", np.nan),
        VariableSpec("n_support", ("class",), "int32", 0),
        VariableSpec("train_rows", ("train", "feature"), "float64", np.nan),
        VariableSpec("train_class", ("train",), "int8", 0),
        VariableSpec("booster", (), "str", ""),
    ]
    for k in range(layers):
        specs.extend(layer_specs(k, layers))
    return {s.name: s for s in specs}


def layer_specs(layer: int, n_layers: int) -> tuple[VariableSpec, VariableSpec]:
    """``weights_<k>(in, out)`` and ``biases_<k>(out)``: layer ``k`` of a stored MLP.

    Parameters
    ----------
    layer
        ``k``, from 0 (the layer that takes the features).
    n_layers
        The MLP's weight layers (its hidden layers and the output layer).

    Returns
    -------
    tuple
        The two specs.  Each layer has its own dims: ``in`` is ``feature`` for layer 0
        and ``units_<k>`` after it, ``out`` is ``units_<k+1>``, or ``output`` (one per
        class, or one for two classes) for the last layer.
    """
    into = "feature" if layer == 0 else f"units_{layer}"
    out = "output" if layer == n_layers - 1 else f"units_{layer + 1}"
    return _layer_specs(str(layer), into, out)


def _layer_specs(k: str, into: str, out: str) -> tuple[VariableSpec, VariableSpec]:
    return (
        VariableSpec(f"weights_{k}", (into, out), "float64", np.nan),
        VariableSpec(f"biases_{k}", (out,), "float64", np.nan),
    )


def skymap_specs() -> dict[str, VariableSpec]:
    """The arrays of a skymap group ``stations/<code>/skymaps/<YYYYMMDDTHH>`` (each whole).

    float32, NaN outside the lens; in the frames' orientation (docs/cube.md).
    """

    def whole(name: str, dims: tuple[str, ...], units: str, long_name: str) -> VariableSpec:
        attrs = {"units": units, "long_name": long_name}
        return VariableSpec(name, dims, "float32", np.nan, chunking="whole", attrs=attrs)

    corners = ("altitude", "y_corner", "x_corner")
    specs = [
        whole("altitude", ("altitude",), "km", "emission altitude"),
        whole("elevation", ("y", "x"), "degree", "elevation of the pixel centre above the horizon"),
        whole("azimuth", ("y", "x"), "degree", "azimuth of the pixel centre, east of north"),
        whole("latitude", corners, "degrees_north", "geographic latitude of pixel corners"),
        whole("longitude", corners, "degrees_east", "longitude of pixel corners (0..360)"),
    ]
    return {s.name: s for s in specs}


def catalogue() -> dict[str, tuple[VariableSpec, ...]]:
    """Every variable a cube may hold, by group (``<name>``, ``<model>``: any name).

    What docs/cube.md documents, section by section; the keys are the group paths
    as the document writes them.
    """
    computed = (
        features_spec("<name>", dim="image", feature_dim="feature"),
        labels_spec("feature"),
        *prediction_specs("<model>", dim="image"),
    )
    station = station_specs(orientation="", raw_orientation="")
    return {
        "": (*root_specs().values(), *computed),
        station_group("<code>"): (*station.values(), *computed),
        skymap_group("<code>", "<YYYYMMDDTHH>"): tuple(skymap_specs().values()),
        model_group("<name>"): (
            *model_specs().values(),
            *_layer_specs("<k>", "units_<k>", "units_<k+1>"),
        ),
    }


# -- names: built here, and read back here ------------------------------------------------


def features_name(extractor: str) -> str:
    """The variable of the features of ``extractor``, e.g. ``features_handcrafted``."""
    return f"{_FEATURES}{extractor}"


def prediction_names(model: str) -> tuple[str, str, str]:
    """Return the variable names ``(class, score, class-dimension)`` a model writes."""
    return f"{_PREDICTED}{model}", f"{_SCORE}{model}", f"{_CLASS}{model}"


def station_group(code: str) -> str:
    """Return the group path of a station archive, e.g. ``stations/fsmi``."""
    return f"{STATION_GROUP}/{code}"


def model_group(name: str) -> str:
    """Return the group path of a trained model, e.g. ``models/handcrafted_class6``."""
    return f"{MODEL_GROUP}/{name}"


def skymaps_group(code: str) -> str:
    """The group that holds a station's skymaps, e.g. ``stations/gako/skymaps``."""
    return f"{station_group(code)}/{SKYMAP_GROUP}"


def skymap_group(code: str, name: str) -> str:
    """The group of one skymap of a station, e.g. ``stations/gako/skymaps/20110305T08``."""
    return f"{skymaps_group(code)}/{name}"


def variable_path(group: str | None, name: str) -> str:
    """The path of variable ``name`` of ``group`` below the root (``group/name``)."""
    return f"{group}/{name}" if group else name


def extractor_of(name: str) -> str | None:
    """The extractor whose features variable ``name`` is (None for any other variable)."""
    rest = str(name).removeprefix(_FEATURES)
    return rest if rest != name and rest else None


def model_of(name: str) -> str | None:
    """The model whose prediction, score or class coordinate ``name`` is (else None)."""
    for prefix in (_PREDICTED, _SCORE, _CLASS):
        rest = str(name).removeprefix(prefix)
        if rest != name and rest:
            return rest
    return None


def feature_sets(names: Iterable[Any]) -> list[str]:
    """The extractors whose features are among the variable ``names`` (sorted).

    ``feature_sets(ds.data_vars)`` says which features a group holds (``published``
    among them where the archive's are).
    """
    return sorted({e for e in map(extractor_of, map(str, names)) if e is not None})


def prediction_models(names: Iterable[Any]) -> list[str]:
    """The models whose predictions (``predicted_<model>``) are among ``names`` (sorted)."""
    out = set()
    for name in map(str, names):
        rest = name.removeprefix(_PREDICTED)
        if rest != name and rest:
            out.add(rest)
    return sorted(out)


def station_of(group: str | None) -> str | None:
    """The station code of a group path (``stations/fsmi`` and below), else None."""
    if not group:
        return None
    parts = str(group).strip("/").split("/")
    if len(parts) >= 2 and parts[0] == STATION_GROUP and parts[1]:
        return parts[1]
    return None
