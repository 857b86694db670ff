"""The one place that knows what a cube holds: names, dims, dtypes, chunks, encodings.

A cube is a Zarr v3 group.  Its root holds the labelled OATH images along the
``image`` dimension; ``stations/<code>`` groups hold raw archives along ``time``;
``models/<name>`` groups hold trained classifiers as plain arrays.  ``docs/cube.md``
describes the same schema for people who open a cube without oathcube.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
from zarr.codecs import ZstdCodec

from .._version import __version__

__all__ = [
    "TIME_ENCODING",
    "STATION_GROUP",
    "MODEL_GROUP",
    "UNKNOWN_STATION",
    "TARGET_CHUNK_BYTES",
    "PIXEL_COMPRESSORS",
    "images_per_chunk",
    "provenance",
    "station_group",
    "model_group",
    "prediction_names",
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

#: Compression of every ``pixels`` array: zstd at level 1, not zarr's default (3).  On the
#: real Gakona frames, prepared, it stores 0.14% more bytes (33,395 vs 33,348 a frame)
#: and compresses 2.3x faster (109 vs 254 us a frame on an EPYC Zen 4), which is most of
#: what ingest spends beside reading the raw files; decompressing is no slower.
PIXEL_COMPRESSORS = (ZstdCodec(level=1),)
MODEL_GROUP = "models"

#: Aim for chunks of a few tens of MB: big enough that dask's per-task overhead and
#: object-store latency vanish, small enough that a few per worker fit in memory.
TARGET_CHUNK_BYTES = 32 * 2**20


def images_per_chunk(image_shape: tuple[int, ...], n_images: int | None = None) -> int:
    """Number of images per chunk for frames of ``image_shape`` (uint8)."""
    per_image = math.prod(image_shape)
    size = max(1, TARGET_CHUNK_BYTES // per_image)
    if n_images is not None:
        size = min(size, max(1, n_images))
    return int(size)


def station_group(code: str) -> str:
    """Return the group path of a station archive, e.g. ``stations/fsmi``."""
    return f"{STATION_GROUP}/{code}"


def model_group(name: str) -> str:
    """Return the group path of a trained model, e.g. ``models/handcrafted_class6``."""
    return f"{MODEL_GROUP}/{name}"


def prediction_names(model: str) -> tuple[str, str, str]:
    """Return the variable names ``(class, score, class-dimension)`` a model writes."""
    return f"predicted_{model}", f"score_{model}", f"class_{model}"


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
