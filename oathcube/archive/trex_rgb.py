"""TREx RGB nominal one-minute HDF5 files (``YYYYMMDD_HHMM_<site>_rgb-NN_full.h5``).

Layout, as pyucalgarysrs 1.28 reads it (``data/read/_trex_rgb.py``,
``__rgb_readfile_worker_h5``; UCalgary's stream0 has held only HDF5 since the legacy PGM
and PNG files were reprocessed):

* ``data/images``: ``uint8`` ``(y, x, band, n)``, nominally ``(480, 553, 3, 20)``: red,
  green, blue counts, frames on the **last** axis;
* ``data/timestamp``: ``n`` strings ``YYYY-MM-DD HH:MM:SS.ffffff UTC``, which
  pyucalgarysrs uses only to pick frames between a start and an end time (its frame
  ``i`` is ``data/images[..., i]`` with the metadata of ``frame<i>``);
* ``metadata/file``: attributes of the file (``site_unique_id``, ``imager_unique_id``,
  ...);
* ``metadata/frame/frame<i>``: attributes of frame ``i``; its time is
  ``image_request_start_timestamp`` (or ``Image request start``), the time
  pyucalgarysrs returns.

oathcube reads the same: frames ``(n, y, x, 3)`` ``uint8`` (``data/images`` with its last
axis brought first, no flip: the cube's orientation, see
:mod:`oathcube.archive.orientation`; pyucalgarysrs flips them north-south), times from
each frame's ``image_request_start_timestamp`` to the microsecond, the station from
``site_unique_id`` checked against the name.  The frames are raw (``raw=True``): 8-bit
counts per band that no preparation has touched.  A file that h5py cannot open, a
missing dataset or frame, a count of times that is not the count of frames, or frames of
another shape or type is one :class:`~oathcube.errors.IngestError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import IngestError
from ..sites import station_code
from .blocks import FrameBlock
from .instruments import agreed_site, instrument_of_imager, parse_ucalgary_name, utc_stamp

__all__ = ["read_trex_rgb", "scan_trex_rgb", "RGB_TIME_KEYS"]

#: Frame attributes that hold the frame's time, in the order pyucalgarysrs tries them.
RGB_TIME_KEYS: tuple[str, ...] = ("image_request_start_timestamp", "Image request start")

_SITE_KEYS = ("site_unique_id", "Site unique ID")
_IMAGER_KEYS = ("imager_unique_id", "Imager unique ID")


def read_trex_rgb(path: str | os.PathLike[str]) -> FrameBlock:
    """Read every frame of one TREx RGB HDF5 file.

    Parameters
    ----------
    path
        A ``YYYYMMDD_HHMM_<site>_rgb-NN_full.h5`` file.

    Returns
    -------
    FrameBlock
        ``raw=True``, ``instrument="trex_rgb"``, ``uint8`` frames ``(n, y, x, 3)``.

    Raises
    ------
    IngestError
        The file cannot be read, or it is not laid out as above.
    """
    return _read(Path(path), frames=True)


def scan_trex_rgb(path: str | os.PathLike[str]) -> FrameBlock:
    """As :func:`read_trex_rgb`, but ``frames`` is a zero-size view of the right shape
    (``numpy.broadcast_to``): the images are not read, only times and shape."""
    return _read(Path(path), frames=False)


def _read(path: Path, *, frames: bool) -> FrameBlock:
    try:
        with h5py.File(path, "r") as f:
            return _block(f, path, frames)
    except IngestError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        # h5py says "unable to open file (truncated file ...)" and the like; one line.
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise IngestError(
            f"cannot read HDF5 file ({type(exc).__name__}: {text})",
            path=path,
            expected="a complete TREx RGB HDF5 file",
        ) from exc


def _block(f: h5py.File, path: Path, read_frames: bool) -> FrameBlock:
    images = f.get("data/images")
    if not isinstance(images, h5py.Dataset):
        raise IngestError(
            "no 'data/images' dataset",
            path=path,
            expected="a TREx RGB HDF5 file with data/images (y, x, 3, n)",
        )
    if images.ndim != 4 or images.shape[2] != 3 or images.dtype != np.uint8:
        raise IngestError(
            f"data/images is {images.dtype} of shape {images.shape}",
            path=path,
            expected="uint8 (y, x, 3, n)",
        )
    ny, nx, _, n = (int(v) for v in images.shape)
    if n == 0:
        raise IngestError("no frame in file", path=path, expected="data/images (y, x, 3, n>0)")
    stamps = f.get("data/timestamp")
    if isinstance(stamps, h5py.Dataset) and stamps.shape != (n,):
        raise IngestError(
            f"{n} frames but data/timestamp has shape {stamps.shape}",
            path=path,
            expected="one time per frame",
        )
    file_attrs = _attrs(f, "metadata/file")
    station = _checked_site(file_attrs, path)
    time = np.empty(n, dtype="datetime64[ns]")
    for i in range(n):
        time[i] = _frame_time(_attrs(f, f"metadata/frame/frame{i}", required=True), i, path)
    # Times in order, one per frame: FrameBlock checks that, for every reader.
    if read_frames:
        # (y, x, 3, n) -> (n, y, x, 3): one copy, frames first, no flip.
        stack = np.ascontiguousarray(np.moveaxis(images[()], 3, 0))
    else:
        stack = np.broadcast_to(np.uint8(0), (n, ny, nx, 3))
    return FrameBlock(
        station=station_code(station, "trex_rgb"),
        time=time,
        frames=stack,
        source=str(path),
        raw=True,
        instrument="trex_rgb",
    )


def _attrs(f: h5py.File, name: str, *, required: bool = False) -> dict[str, Any]:
    node = f.get(name)
    if node is None:
        if required:
            raise IngestError(
                f"no '{name}' group",
                path=f.filename,
                expected="metadata/frame/frame<i> for every frame i",
            )
        return {}
    return {k: _text(v) for k, v in node.attrs.items()}


def _text(value: Any) -> Any:
    """Attributes as text where they are text (h5py hands bytes for fixed-length strings)."""
    if isinstance(value, bytes | np.bytes_):
        return value.decode("latin-1")
    if isinstance(value, np.ndarray) and value.shape == (1,):
        return _text(value[0])
    return value


def _checked_site(attrs: dict[str, Any], path: Path) -> str:
    said = next((str(attrs[k]).strip().lower() for k in _SITE_KEYS if attrs.get(k)), None)
    imager = next((str(attrs[k]).strip().lower() for k in _IMAGER_KEYS if attrs.get(k)), None)
    name = parse_ucalgary_name(path.name)
    for who in (imager, name.imager if name else None):
        if who is not None and instrument_of_imager(who) != "trex_rgb":
            raise IngestError(
                f"imager {who!r} is not a TREx RGB imager",
                path=path,
                expected="rgb-NN (TREx RGB nominal HDF5)",
            )
    return agreed_site(
        said,
        name.site if name else None,
        path,
        said_by="the file says",
        missing="no 'site_unique_id' attribute and the name is not a TREx RGB name",
        expected="YYYYMMDD_HHMM_<site>_rgb-NN_full.h5",
    )


def _frame_time(attrs: dict[str, Any], index: int, path: Path) -> np.datetime64:
    value = next((attrs[k] for k in RGB_TIME_KEYS if k in attrs), None)
    if value is None:
        raise IngestError(
            f"frame {index + 1} has no 'image_request_start_timestamp' attribute",
            path=path,
            expected="YYYY-MM-DD HH:MM:SS.ffffff UTC in metadata/frame/frame<i>",
        )
    return utc_stamp(value, f"frame {index + 1}: image_request_start_timestamp", path)
