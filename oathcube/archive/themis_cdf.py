"""Berkeley THEMIS ASI level-1 CDF files (``thg_l1_asf_<site>_<YYYYMMDDHH>_v01.cdf``).

One file holds up to an hour of full-resolution (256x256, 16-bit) frames of one station,
read here with :mod:`cdflib` (pure Python + numpy, no NASA CDF library).  Two layouts exist:

* classic (up to 2023): images in ``thg_asf_<site>`` as records, ``(N, 256, 256)``
  ``CDF_UINT2``; times in ``thg_asf_<site>_epoch`` (``CDF_EPOCH``, exposure start to the
  millisecond) and ``thg_asf_<site>_time`` (unix seconds, whole seconds in practice);
* 2024 on: ``thg_asf_<site>`` is one record ``(1, 256, 256, N)`` (frames on the last axis)
  and only ``thg_asf_<site>_time`` is there.

The layout is told apart by which axis matches the number of times, never by the date in
the name.  Times come from ``_epoch`` when it has records (it keeps the milliseconds that
``_time`` rounds away; the real Gakona file starts at 17:00:00.053), else from ``_time``.

Frames are returned as ``uint16`` counts **turned by 180 deg** (both axes reversed) into
the cube's orientation, the UCalgary skymaps' (see :mod:`oathcube.archive.orientation`,
which gives the star check): ``raw = frames[:, ::-1, ::-1]`` recovers the file's order.
See :mod:`oathcube.rawprep` for the 8-bit preparation.

Anything wrong with a file (not a CDF, truncated, compressed block cut short, no image
variable, frame/time count mismatch, fill-value or repeated times) raises
:class:`~oathcube.errors.IngestError` that names the file and says what was wrong.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import cdflib
import numpy as np

from oathcube.archive.blocks import FrameBlock
from oathcube.archive.cdf_records import RecordIndex, read_records, record_index
from oathcube.archive.orientation import cdf_to_cube
from oathcube.errors import IngestError

__all__ = [
    "CDF_NAME_RE",
    "part_step",
    "read_cdf",
    "read_cdf_parts",
    "scan_cdf",
    "station_from_cdf_name",
]

#: ``thg_l1_asf_<site>_<YYYYMMDDHH>_v<NN>.cdf``; the site group is the station code.
CDF_NAME_RE = re.compile(
    r"^thg_l1_asf_(?P<site>[a-z0-9]+)_(?P<hour>\d{10})_v\d+\.cdf$", re.IGNORECASE
)
_IMAGE_VAR_RE = re.compile(r"^thg_asf_(?P<site>[a-z0-9]+)$", re.IGNORECASE)

# Frames outside these years are fill values or garbage, not THEMIS data (2004: first GBO).
_EARLIEST = np.datetime64("2000-01-01", "ns")
_LATEST = np.datetime64("2100-01-01", "ns")
# CDF_EPOCH of 1970-01-01T00:00:00: milliseconds from 0000-01-01 (proleptic Gregorian).
_CDF_EPOCH_1970 = 62167219200000.0
# Milliseconds from 1970 that int64 nanoseconds hold (about 292 years either way).
_NS_RANGE_MS = float(np.iinfo(np.int64).max // 1_000_000)


def station_from_cdf_name(name: str) -> str | None:
    """Station code in a Berkeley L1 ASF file name, or None if the name is not one."""
    m = CDF_NAME_RE.match(Path(name).name)
    return m.group("site").lower() if m else None


def read_cdf(path: str | os.PathLike[str], rows: tuple[int, int] | None = None) -> FrameBlock:
    """Read the frames of one THEMIS ASI L1 CDF file: all of them, or rows ``lo:hi``.

    Parameters
    ----------
    path
        A ``thg_l1_asf_<site>_<YYYYMMDDHH>_v01.cdf`` file, classic or 2024 layout.
    rows
        ``(lo, hi)``: only the frames ``lo:hi`` in time order.  In the classic layout
        with records in time order (every real file seen), only the compressed blocks
        that hold those records are read and decompressed, so that an ingest task that
        needs the tail of an hour file does not pay for the whole hour.

    Returns
    -------
    FrameBlock
        ``raw=True``, ``uint16`` frames ``(n, y, x)`` in the cube's orientation (the
        file's turned by 180 deg), times
        ``datetime64[ns]`` UTC, station from the image variable's name.

    Raises
    ------
    IngestError
        The file cannot be opened as a CDF, is truncated or corrupt, lacks the image or
        time variables, or its frames and times disagree.
    """
    path = Path(path)
    cdf, names = _open(path)
    try:
        return _read_open(cdf, names, path, rows)
    finally:
        # cdflib keeps a file handle while the object lives; drop it now, not at GC time.
        del cdf


def _open(path: Path) -> tuple[cdflib.CDF, list[str]]:
    """The open CDF and the names of its variables; a file that is no CDF is named."""
    try:
        cdf = cdflib.CDF(str(path))
        info = cdf.cdf_info()
    except Exception as exc:  # cdflib raises OSError, ValueError, EOFError... on bad bytes
        raise IngestError(
            f"cannot open as CDF: {_one_line(exc)}", path=path, expected="a CDF file"
        ) from exc
    return cdf, list(info.zVariables) + list(info.rVariables)


def scan_cdf(path: str | os.PathLike[str]) -> FrameBlock:
    """The times and frame shape of a CDF file, without reading (or decompressing) frames.

    Returns a :class:`FrameBlock` whose ``frames`` is a read-only zero-size view
    (``numpy.broadcast_to``) of the right shape and dtype: what a plan needs
    (station, times, shape) at the cost of the time variable alone.

    Raises
    ------
    IngestError
        As :func:`read_cdf`, for everything but the frames' values.
    """
    path = Path(path)
    cdf, names = _open(path)
    try:
        station, image_var = _image_variable(names, path)
        time = _read_times(cdf, names, image_var, path)
        try:
            dims = [int(d) for d in cdf.varinq(image_var).Dim_Sizes]
        except Exception as exc:
            raise IngestError(f"cannot inquire {image_var}: {_one_line(exc)}", path=path) from exc
    finally:
        del cdf
    n = time.shape[0]
    if len(dims) == 3 and dims[2] == n:
        dims = dims[:2]  # 2024 layout: frames on the last axis of one record
    if len(dims) != 2 or min(dims) < 2:
        raise IngestError(
            f"{image_var} has dimensions {dims} for {n} times",
            path=path,
            expected=f"(y, x) per record, or (y, x, {n})",
        )
    order = np.argsort(time, kind="stable")
    time = time[order]
    if (np.diff(time) == np.timedelta64(0, "ns")).any():
        raise IngestError("two frames share one time", path=path, expected="one frame per time")
    frames = np.broadcast_to(np.uint16(0), (n, dims[0], dims[1]))
    return FrameBlock(station=station, time=time, frames=frames, source=str(path), raw=True)


def part_step(path: str | os.PathLike[str], want: int) -> int:
    """How many frames to read at a time from a file read in parts, or 0 for "whole".

    A multiple of the image variable's blocking factor (records per compressed block:
    7 in the Berkeley files) near ``want``, so that parts that start at a multiple of it
    never decompress a block twice; 0 where :func:`read_cdf` cannot read only some
    records (the 2024 layout, records out of time order), so that a reader that needs
    many parts of the file reads it once.

    Parameters
    ----------
    path
        A THEMIS ASI L1 CDF file.
    want
        Frames a part should hold about (at least one block).

    Raises
    ------
    IngestError
        As :func:`scan_cdf`.
    """
    with _image_and_times(Path(path)) as (cdf, image_var, time):
        if not (_increasing(time) and _records_are_rows(cdf, image_var, time.shape[0])):
            return 0
        block = max(1, int(getattr(cdf.varinq(image_var), "Block_Factor", 1) or 1))
    return block * max(1, want // block)


@contextmanager
def _image_and_times(path: Path) -> Iterator[tuple[cdflib.CDF, str, np.ndarray]]:
    """The open CDF, the name of its image variable and its times, for one block."""
    cdf, names = _open(path)
    try:
        _, image_var = _image_variable(names, path)
        yield cdf, image_var, _read_times(cdf, names, image_var, path)
    finally:
        # cdflib keeps a file handle while the object lives: drop ours on leaving.
        del cdf


def _image_variable(names: list[str], path: Path) -> tuple[str, str]:
    """The station and the name of the one ``thg_asf_<site>`` variable of a file."""
    image_vars = [n for n in names if _IMAGE_VAR_RE.match(n)]
    if len(image_vars) != 1:
        found = ", ".join(image_vars) if image_vars else "none"
        raise IngestError(
            f"image variable thg_asf_<site>: found {found}",
            path=path,
            expected="exactly one thg_asf_<site> variable (file truncated or not an ASF file?)",
        )
    image_var = image_vars[0]
    station = _IMAGE_VAR_RE.match(image_var).group("site").lower()  # type: ignore[union-attr]
    named = station_from_cdf_name(path.name)
    if named is not None and named != station:
        raise IngestError(
            f"file name says station {named!r} but the images are {image_var!r}",
            path=path,
            expected="name and variables of the same station",
        )
    return station, image_var


def _read_open(
    cdf: cdflib.CDF, names: list[str], path: Path, rows: tuple[int, int] | None = None
) -> FrameBlock:
    station, image_var = _image_variable(names, path)

    time = _read_times(cdf, names, image_var, path)
    if rows is not None:
        _check_rows(rows, time.shape[0], path)
    in_order = _increasing(time)
    index = _frame_index(cdf, image_var, path, time.shape[0])
    if index is not None:
        # The classic layout read block by block here (cdf_records), cdflib otherwise.
        lo, hi = rows if rows is not None and in_order else (0, time.shape[0])
        frames = _records(path, index, image_var, lo, hi)
        time = time[lo:hi]
        if not in_order:
            time, frames = _in_time_order(time, frames, path)
            if rows is not None:
                time, frames = time[rows[0] : rows[1]], frames[rows[0] : rows[1]]
    elif rows is not None and in_order and _records_are_rows(cdf, image_var, time.shape[0]):
        lo, hi = rows
        time = time[lo:hi]
        if hi == lo:
            frames = np.zeros((0, *cdf.varinq(image_var).Dim_Sizes), dtype=np.uint16)
        else:
            images = _get(cdf, image_var, path, records=(lo, hi - 1))
            assert images is not None
            frames = _to_frame_stack(images, hi - lo, image_var, path)
    else:
        images = _get(cdf, image_var, path)
        assert images is not None  # _get raises on an empty variable unless allow_empty
        frames = _to_frame_stack(images, time.shape[0], image_var, path)
        if not in_order:
            time, frames = _in_time_order(time, frames, path)
        if rows is not None:
            time, frames = time[rows[0] : rows[1]], frames[rows[0] : rows[1]]
    return FrameBlock(station=station, time=time, frames=frames, source=str(path), raw=True)


def read_cdf_parts(
    path: str | os.PathLike[str], parts: Sequence[tuple[int, int]]
) -> Iterator[np.ndarray]:
    """The frames of several row ranges of one file, as :func:`read_cdf` reads each.

    The file is opened, its times decoded and its blocks indexed once for all parts
    (a part read alone pays all three again: ~45-115 us a frame for 63-frame parts,
    against ~370 us to inflate and place them).  Files that :func:`read_cdf` reads
    whole or with cdflib are read part by part as it does.

    Parameters
    ----------
    path
        A THEMIS ASI L1 CDF file.
    parts
        ``(lo, hi)`` row ranges in time order, each within the file.

    Yields
    ------
    numpy.ndarray
        ``uint16`` frames ``(hi - lo, y, x)`` of each part, in the cube's orientation.

    Raises
    ------
    IngestError
        As :func:`read_cdf`.
    """
    path = Path(path)
    with _image_and_times(path) as (cdf, image_var, time):
        index = _frame_index(cdf, image_var, path, time.shape[0])
    del cdf  # the file's handle: parts are read by read_records, which opens it itself
    n = time.shape[0]
    if index is None or not _increasing(time):
        for rows in parts:
            yield read_cdf(path, rows=rows).frames
        return
    for lo, hi in parts:
        _check_rows((lo, hi), n, path)
        yield _records(path, index, image_var, lo, hi)


def _records(path: Path, index: RecordIndex, image_var: str, lo: int, hi: int) -> np.ndarray:
    """Records ``lo:hi`` read block by block; a damaged block is named in one line."""
    try:
        return read_records(path, index, lo, hi)
    except (OSError, ValueError) as exc:
        raise IngestError(
            f"cannot read variable {image_var}: {_one_line(exc)} (truncated or corrupt file?)",
            path=path,
        ) from exc


def _in_time_order(time: np.ndarray, frames: np.ndarray, path: Path) -> tuple[np.ndarray, ...]:
    """Out-of-order records put right; a repeated time cannot be told apart: refused."""
    order = np.argsort(time, kind="stable")
    time, frames = time[order], frames[order]
    if (np.diff(time) == np.timedelta64(0, "ns")).any():
        raise IngestError("two frames share one time", path=path, expected="one frame per time")
    return time, frames


def _frame_index(cdf: cdflib.CDF, image_var: str, path: Path, n: int) -> RecordIndex | None:
    """The blocks of 16-bit classic-layout frames, one record a frame; else None (cdflib)."""
    try:
        index = record_index(cdf, image_var, path)
    except Exception:  # anything odd in the index records: cdflib reads it, or says why
        return None
    if index is None or len(index.shape) != 2 or min(index.shape) < 2:
        return None
    if index.dtype.kind != "u" or index.dtype.itemsize != 2 or int(index.last[-1]) + 1 != n:
        return None
    return index


def _increasing(time: np.ndarray) -> bool:
    """Whether the times (in record order) strictly increase: records are in time order."""
    return bool((np.diff(time) > np.timedelta64(0, "ns")).all())


def _check_rows(rows: tuple[int, int], n: int, path: Path) -> None:
    """Rows ``lo:hi`` of a file of ``n`` frames, or one IngestError that names them."""
    if not 0 <= rows[0] <= rows[1] <= n:
        raise IngestError(f"rows {rows[0]}:{rows[1]} of {n}", path=path)


def _records_are_rows(cdf: cdflib.CDF, image_var: str, n: int) -> bool:
    """Whether the image variable holds one 2-D frame per record, ``n`` records: with
    times that increase (:func:`_increasing`), record ``i`` is the ``i``-th frame."""
    try:
        info = cdf.varinq(image_var)
    except Exception:
        return False  # the whole read that follows names what is wrong
    return len(info.Dim_Sizes) == 2 and int(info.Last_Rec) + 1 == n


def _read_times(cdf: cdflib.CDF, names: list[str], image_var: str, path: Path) -> np.ndarray:
    epoch_var, unix_var = f"{image_var}_epoch", f"{image_var}_time"
    time: np.ndarray | None = None
    where = ""
    if epoch_var in names:
        raw = _get(cdf, epoch_var, path, allow_empty=True)
        if raw is not None and np.size(raw) > 0:
            values = np.asarray(raw).ravel()
            if values.dtype.kind == "f" and not np.isfinite(values).all():
                raise IngestError(f"{epoch_var} holds NaN or infinite values", path=path)
            time = _epoch_times(values)
            where = epoch_var
    if time is None and unix_var in names:
        raw = _get(cdf, unix_var, path, allow_empty=True)
        if raw is not None and np.size(raw) > 0:
            seconds = np.asarray(raw, dtype=np.float64).ravel()
            if not np.isfinite(seconds).all():
                raise IngestError(f"{unix_var} holds NaN or infinite values", path=path)
            # Round to the microsecond: float64 unix seconds carry about that much.
            micro = np.round(seconds * 1e6).astype(np.int64)
            time = micro.astype("datetime64[us]").astype("datetime64[ns]")
            where = unix_var
    if time is None:
        raise IngestError(
            "no frame times",
            path=path,
            expected=f"records in {epoch_var} (CDF_EPOCH) or {unix_var} (unix seconds)",
        )
    bad = (time < _EARLIEST) | (time >= _LATEST)  # (NaT compares False: FrameBlock names it)
    if bad.any():
        raise IngestError(
            f"{int(bad.sum())} of {time.size} times in {where} are fill values or out of range",
            path=path,
            expected="times between 2000 and 2100",
        )
    return time


def _epoch_times(values: np.ndarray) -> np.ndarray:
    """``CDF_EPOCH`` values (milliseconds since 0000-01-01) as ``datetime64[ns]``.

    What ``cdflib.cdfepoch.to_datetime`` gives (whole milliseconds, the fraction cut off;
    the fill value -1e31 and the pad value 0 as NaT), tested equal on 42,000 values
    from 2000 to 2100, in whole-array arithmetic: cdflib breaks each value down in
    Python, which cost an ingest task a tenth of its time and held the GIL.  Times that
    ``datetime64[ns]`` cannot hold (before 1678, after 2261) are NaT too, not wrapped
    around into other years.
    """
    values = np.asarray(values, dtype=np.float64)
    outside = ~(np.abs(values - _CDF_EPOCH_1970) < _NS_RANGE_MS)  # (NaN and inf too)
    unset = (values == -1.0e31) | (values == 0.0) | outside
    since_1970 = np.floor(np.where(unset, _CDF_EPOCH_1970, values)) - _CDF_EPOCH_1970
    time = since_1970.astype(np.int64).astype("datetime64[ms]").astype("datetime64[ns]")
    time[unset] = np.datetime64("NaT")
    return time


def _get(
    cdf: cdflib.CDF,
    name: str,
    path: Path,
    *,
    allow_empty: bool = False,
    records: tuple[int, int] | None = None,
) -> np.ndarray | None:
    """``cdf.varget(name)`` with every failure turned into an IngestError naming the file.

    ``records``: the first and last record (inclusive) to read, else all of them.
    """
    try:
        if records is None:
            value = cdf.varget(name)
        else:
            value = cdf.varget(name, startrec=records[0], endrec=records[1])
    except Exception as exc:  # zlib/EOF errors on cut compressed blocks, index errors...
        raise IngestError(
            f"cannot read variable {name}: {_one_line(exc)} (truncated or corrupt file?)",
            path=path,
        ) from exc
    if value is None and not allow_empty:
        raise IngestError(f"variable {name} has no records", path=path)
    return None if value is None else np.asarray(value)


def _to_frame_stack(images: np.ndarray, n: int, name: str, path: Path) -> np.ndarray:
    """Bring either layout to a C-contiguous ``(n, y, x)`` uint16 stack."""
    shape = images.shape
    if images.ndim == 2 and n == 1:
        # cdflib drops the record axis of a one-record variable.
        stack = images[None]
    elif images.ndim == 3 and shape[0] == n:
        stack = images  # classic: records are frames
    elif images.ndim == 4 and shape[0] == 1 and shape[3] == n:
        stack = _frames_first(images[0])  # 2024: one record, frames on the last axis
    elif images.ndim == 3 and shape[2] == n:
        stack = _frames_first(images)  # 2024 layout written without a record axis
    else:
        raise IngestError(
            f"{name} has shape {shape} for {n} times",
            path=path,
            expected=f"({n}, y, x) or (1, y, x, {n})",
        )
    if stack.shape[1] < 2 or stack.shape[2] < 2:
        raise IngestError(f"{name} frames are {stack.shape[1:]}", path=path, expected="2-D frames")
    if stack.dtype != np.uint16:
        # THEMIS stores CDF_UINT2; accept other integer types only if nothing is lost.
        if stack.dtype.kind not in "iu" or stack.min() < 0 or stack.max() > 65535:
            raise IngestError(
                f"{name} has type {stack.dtype}", path=path, expected="16-bit unsigned counts"
            )
    # Berkeley CDF frames are the UCalgary skymap's turned by 180 deg (measured with stars,
    # see oathcube.archive.orientation): one copy brings them into the cube's orientation.
    return cdf_to_cube(stack)


def _frames_first(images: np.ndarray) -> np.ndarray:
    """``(y, x, n)`` to a C-contiguous ``(n, y, x)``.

    Copying a few rows at a time keeps source and destination in cache; it is about twice
    as fast as one ``ascontiguousarray(moveaxis(...))`` on an hour of frames.
    """
    ny, nx, n = images.shape
    out = np.empty((n, ny, nx), dtype=images.dtype)
    step = 4
    for y in range(0, ny, step):
        out[:, y : y + step, :] = images[y : y + step].transpose(2, 0, 1)
    return out


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
