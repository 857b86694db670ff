"""Skymaps fitted to a station's stored frames: the same turn, flip and resize.

A station's preparation (:class:`~oathcube.rawprep.RawPreparation`, recorded on its
group) may turn the frames to the skymaps' orientation, flip them north-south and resize
them.  Its skymaps are stored after the same rearrangement and resampling
(:func:`fit_to_frames`), so that pixel ``[y, x]`` of ``elevation`` is pixel ``[y, x]`` of
``pixels``.  Writing (:mod:`oathcube.ingestion.skymaps`) and reading
(:mod:`oathcube.views.skymaps`) share what is here; it reads station attributes, never
a cube.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import CubeError, OathcubeError
from ..rawprep import RawPreparation
from .frames import iter_frame_blocks
from .skymap import Skymap

__all__ = [
    "FITTED",
    "FITTED_RAW",
    "fit_to_frames",
    "fit_arrays",
    "is_identity",
    "stored_preparation",
    "raw_frames",
]

#: ``orientation`` and ``raw_orientation`` of a skymap fitted to prepared frames.
FITTED = (
    "the station's stored frames', pixel for pixel: the file's arrays turned, flipped and "
    "resized as the station's preparation does to its frames (frame_geometry says how)"
)
FITTED_RAW = "rearranged by the station's preparation (frame_geometry): raw skymap != stored"


def stored_preparation(
    attrs: Mapping[str, Any], pixels_shape: tuple[int, ...] | None, where: str
) -> RawPreparation | None:
    """The preparation that made a station's stored frames, or None (frames as read).

    None when the group records no preparation, or when its frames are not of the
    preparation's size: image folders (PNG/JPEG) are stored as read, although the
    preparation given to their ingest is recorded too.

    Parameters
    ----------
    attrs
        The station group's attributes.
    pixels_shape
        Shape of its ``pixels`` (None: no frames yet).
    where
        The station group's location, for errors.

    Raises
    ------
    CubeError
        The recorded preparation cannot be read back.
    """
    text = attrs.get("preparation")
    if not text:
        return None
    try:
        prep = RawPreparation.from_record(text)
    except (ValueError, TypeError) as exc:  # OptionError is a ValueError too
        raise CubeError(
            f"the station's preparation cannot be read back: {exc}",
            path=where,
            expected="a RawPreparation record, as the ingest's `preparation`",
        ) from None
    if pixels_shape is not None and tuple(pixels_shape[1:]) != (prep.out_size, prep.out_size):
        return None
    return prep


def raw_frames(attrs: Mapping[str, Any], station: str) -> tuple[bool, tuple[int, int]] | None:
    """Whether the station's first source holds raw frames, and their ``(y, x)``.

    Recorded by ingest on the station group (``raw_frames``); for groups written
    before that, read from the source itself (a scan: shape and times, no pixels);
    None when neither can be had.
    """
    recorded = attrs.get("raw_frames")
    if isinstance(recorded, dict) and isinstance(recorded.get("shape"), list):
        if not recorded.get("raw"):
            return False, (0, 0)
        ny, nx = recorded["shape"]
        return True, (int(ny), int(nx))
    sources = attrs.get("sources")
    if not isinstance(sources, list) or not sources:
        return None
    try:
        block = next(iter(iter_frame_blocks([str(sources[0])], station=station, scan=True)))
    except (OathcubeError, OSError, StopIteration):
        return None  # moved, deleted or elsewhere: the caller decides what it can do
    ny, nx = block.frames.shape[1:]
    return bool(block.raw), (int(ny), int(nx))


def _directions(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Unit vectors ``(3, ...)`` of (latitude, longitude) or (elevation, azimuth), degrees."""
    a, b = np.radians(first.astype(np.float64)), np.radians(second.astype(np.float64))
    return np.stack([np.cos(a) * np.cos(b), np.cos(a) * np.sin(b), np.sin(a)])


def _angles(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Back from unit vectors (any length) to (latitude, longitude 0..360) in degrees."""
    x, y, z = vectors
    with np.errstate(invalid="ignore"):
        first = np.degrees(np.arctan2(z, np.hypot(x, y)))
        second = np.degrees(np.arctan2(y, x)) % 360.0
    return first.astype(np.float32), second.astype(np.float32)


def _resample(
    first: np.ndarray, second: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Directions ``(..., y, x)`` bilinearly interpolated at fractional ``rows``/``cols``.

    Directions are interpolated as unit vectors, not as angles: azimuth and longitude
    wrap at 360 and azimuth turns around at zenith, where averaging angles goes wrong.
    A sample that touches a pixel outside the field of view (NaN) is NaN itself.
    """
    from scipy import ndimage

    vectors = _directions(first, second)
    grid = np.meshgrid(rows, cols, indexing="ij")
    lead = vectors.shape[1:-2]
    out = np.empty((3, *lead, rows.size, cols.size))
    for index in np.ndindex(*lead):
        for k in range(3):
            out[(k, *index)] = ndimage.map_coordinates(
                vectors[(k, *index)], grid, order=1, mode="nearest"
            )
    return _angles(out)


def fit_to_frames(sky: Skymap, prep: RawPreparation | None) -> tuple[Skymap, dict[str, Any]]:
    """A skymap rearranged and resampled as ``prep`` rearranges and resamples frames.

    Parameters
    ----------
    sky
        A skymap as read (the readers' orientation, the raw frames' size).
    prep
        The station's preparation; None: frames stored as read (nothing to do).

    Returns
    -------
    (Skymap, dict)
        The skymap whose pixel ``[y, x]`` is the stored frames' pixel ``[y, x]``, and
        the geometry applied (:meth:`~oathcube.rawprep.RawPreparation.frame_geometry`;
        empty for ``prep`` None).

    Notes
    -----
    Turning and flipping reorder rows and columns only, for pixel centres and corners
    alike.  A resize follows :meth:`~oathcube.rawprep.RawPreparation.apply`'s zoom
    (``grid_mode``: the frame's outer edges stay where they are): stored pixel ``i``
    is centred at raw pixel ``(i + 0.5) * n / out - 0.5`` and stored corner ``k`` is
    raw corner ``k * n / out``; directions there are interpolated between neighbours.
    """
    if prep is None:
        return sky, {}
    arrays = fit_arrays(
        {
            "elevation": sky.elevation,
            "azimuth": sky.azimuth,
            "latitude": sky.latitude,
            "longitude": sky.longitude,
        },
        prep,
    )
    fitted = dataclasses.replace(
        sky,
        elevation=arrays["elevation"],
        azimuth=arrays["azimuth"],
        latitude=arrays["latitude"],
        longitude=arrays["longitude"],
    )
    ny, nx = sky.elevation.shape
    return fitted, prep.frame_geometry((ny, nx))


def fit_arrays(arrays: dict[str, np.ndarray], prep: RawPreparation) -> dict[str, np.ndarray]:
    """:func:`fit_to_frames` on the four arrays (elevation, azimuth, latitude, longitude)."""
    ny, nx = arrays["elevation"].shape
    out = {name: prep.arrange_like_frames(values) for name, values in arrays.items()}
    size = int(prep.out_size)
    if (ny, nx) != (size, size):
        centre_rows = (np.arange(size) + 0.5) * ny / size - 0.5
        centre_cols = (np.arange(size) + 0.5) * nx / size - 0.5
        out["elevation"], out["azimuth"] = _resample(
            out["elevation"], out["azimuth"], centre_rows, centre_cols
        )
        corner_rows = np.arange(size + 1) * ny / size
        corner_cols = np.arange(size + 1) * nx / size
        out["latitude"], out["longitude"] = _resample(
            out["latitude"], out["longitude"], corner_rows, corner_cols
        )
    return {name: np.ascontiguousarray(v, dtype=np.float32) for name, v in out.items()}


def is_identity(geometry: dict[str, Any]) -> bool:
    """Whether a frame geometry leaves every pixel where it was."""
    return (
        geometry["skymap_orientation"] == "as_read"
        and not geometry["flip_north_south"]
        and geometry["source_shape"] == geometry["shape"]
    )
