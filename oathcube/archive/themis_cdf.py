"""Berkeley THEMIS ASI level-1 CDF files (``thg_l1_asf_<site>_<YYYYMMDDHH>_v01.cdf``).

One file holds up to an hour of full-resolution (256x256, 16-bit) frames of one station,
read here with :mod:`cdflib` (pure Python + numpy, no NASA CDF library).  Two layouts exist:

* classic (up to 2023): images in ``thg_asf_<site>`` as records, ``(N, 256, 256)``
  ``CDF_UINT2``; times in ``thg_asf_<site>_epoch`` (``CDF_EPOCH``, exposure start to the
  millisecond) and ``thg_asf_<site>_time`` (unix seconds, whole seconds in practice);
* 2024 on: ``thg_asf_<site>`` is one record ``(1, 256, 256, N)`` (frames on the last
  axis), the frames' times are in ``thg_asf_<site>_time``, and ``thg_asf_<site>_epoch``
  holds one start value that is no frame's time.

Between the two, whatever cdflib hands over is read: a record of 2-D dimensions is one
frame (classic); a record of 3-D dimensions holds ``k`` frames, on its last axis
``(y, x, k)`` or its first ``(k, y, x)``, in one record or many (frames counted record
after record), record-varying or not.  The frame axis is the one apart from two equal
(square frames); for frames that are not square, the one whose count matches the times.
The layout is told from the image variable's dimensions, never by the date in the name.

Times come from ``_epoch`` when it holds one value per frame (it keeps the milliseconds
that ``_time`` rounds away; the real Gakona file starts at 17:00:00.053), else from
``_time``; in a file of one frame packed into a record (3-D dimensions) a lone ``_epoch``
value cannot be told from the 2024 files' start value, and ``_time`` is taken where it
is.  A file whose frames and times disagree in count is refused in one line that names
both counts.

Records are read from their compressed blocks (:mod:`.cdf_records`: libdeflate, the GIL
released) in both layouts: in the classic one only the blocks of the records wanted; a
2024 record holds every frame of its hour in every row, so it is inflated whole however
few of its frames are wanted.  Files whose blocks that reader does not take (a compressed
file, a variable that is not record-varying) are read with cdflib.

Frames are returned as ``uint16`` counts **turned by 180 deg** (both axes reversed) into
the cube's orientation, the UCalgary skymaps' (see :mod:`oathcube.archive.orientation`,
which gives the star check): ``raw = frames[:, ::-1, ::-1]`` recovers the file's order.
See :mod:`oathcube.rawprep` for the 8-bit preparation.

Anything wrong with a file (not a CDF, truncated, compressed block cut short, no image
variable, frames and times that disagree in count, fill-value or repeated times) raises
:class:`~oathcube.errors.IngestError` that names the file and says what was wrong.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cdflib
import numpy as np

from oathcube.archive.blocks import FrameBlock
from oathcube.archive.cdf_records import (
    RecordIndex,
    declared_size,
    read_packed,
    read_records,
    record_index,
)
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
        A ``thg_l1_asf_<site>_<YYYYMMDDHH>_v01.cdf`` file, classic or 2024 layout, or
        any layout between (see the module's notes).
    rows
        ``(lo, hi)``: only the frames ``lo:hi`` in time order.  With records in time
        order (every real file seen), only the compressed blocks that hold those
        frames are read and decompressed, so that an ingest task that needs the tail of
        a classic hour file does not pay for the whole hour (a 2024 hour is one block:
        any of its frames costs the whole hour's inflating, not its copying).

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
        layout, time_var = _layout(cdf, names, image_var, path)
        time = _read_times(cdf, time_var, layout.n, path)
    finally:
        del cdf
    n = time.shape[0]
    order = np.argsort(time, kind="stable")
    time = time[order]
    if (np.diff(time) == np.timedelta64(0, "ns")).any():
        raise IngestError("two frames share one time", path=path, expected="one frame per time")
    frames = np.broadcast_to(np.uint16(0), (n, *layout.frame))
    return FrameBlock(station=station, time=time, frames=frames, source=str(path), raw=True)


def part_step(path: str | os.PathLike[str], want: int) -> int:
    """How many frames to read at a time from a file read in parts, or 0 for "whole".

    A multiple of the frames of one compressed block (the blocking factor, records per
    block, times the frames per record: 7 in the classic Berkeley files) near ``want``,
    so that parts that start at a multiple of it never decompress a block twice; 0 where
    :func:`read_cdf` cannot read only some records (records out of time order, files it
    reads with cdflib) or where one block holds every frame (the 2024 layout: one
    record), so that a reader that needs many parts of the file reads it once.

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
    path = Path(path)
    with _image_and_times(path) as (cdf, image_var, layout, time):
        if not layout.packed:
            if not (_increasing(time) and _records_are_rows(cdf, image_var, time.shape[0])):
                return 0
            block = max(1, int(getattr(cdf.varinq(image_var), "Block_Factor", 1) or 1))
            return block * max(1, want // block)
        if not _increasing(time):
            return 0
        index = _packed_index(cdf, image_var, path, layout)
    if index is None:
        return 0
    # Frames of the largest block: parts of whole blocks never inflate one twice.
    block = int((index.last - index.first).max() + 1) * layout.per_record
    if block >= layout.n:
        return 0
    return block * max(1, want // block)


@contextmanager
def _image_and_times(path: Path) -> Iterator[tuple[cdflib.CDF, str, _Layout, np.ndarray]]:
    """The open CDF, its image variable's name and layout and its times, for one block."""
    cdf, names = _open(path)
    try:
        _, image_var = _image_variable(names, path)
        layout, time_var = _layout(cdf, names, image_var, path)
        yield cdf, image_var, layout, _read_times(cdf, time_var, layout.n, path)
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
    layout, time_var = _layout(cdf, names, image_var, path)
    time = _read_times(cdf, time_var, layout.n, path)
    if rows is not None:
        _check_rows(rows, time.shape[0], path)
    in_order = _increasing(time)
    if layout.packed:
        return _read_packed_open(cdf, image_var, layout, time, path, rows, station)
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


def _read_packed_open(
    cdf: cdflib.CDF,
    image_var: str,
    layout: _Layout,
    time: np.ndarray,
    path: Path,
    rows: tuple[int, int] | None,
    station: str,
) -> FrameBlock:
    """The frames of a file whose records hold several frames each (the 2024 layout)."""
    in_order = _increasing(time)
    lo, hi = rows if rows is not None and in_order else (0, layout.n)
    index = _packed_index(cdf, image_var, path, layout)
    if index is not None:
        frames = _packed(path, index, image_var, layout, lo, hi)
    else:
        images = _get(cdf, image_var, path)
        assert images is not None  # _get raises on an empty variable unless allow_empty
        frames = _packed_stack(images, layout, image_var, path, lo, hi)
    time = time[lo:hi]
    if not in_order:
        time, frames = _in_time_order(time, frames, path)
        if rows is not None:
            time, frames = time[rows[0] : rows[1]], frames[rows[0] : rows[1]]
    return FrameBlock(station=station, time=time, frames=frames, source=str(path), raw=True)


@dataclass(frozen=True)
class _Layout:
    """How the image variable holds its frames, from its declared dimensions.

    ``frames_last`` is None for one ``(y, x)`` frame a record (the classic layout), else
    where a record of 3-D dimensions holds its ``per_record`` frames: its last axis
    (``(y, x, k)``, the 2024 layout) or its first (``(k, y, x)``).
    """

    records: int
    per_record: int
    frames_last: bool | None
    frame: tuple[int, int]

    @property
    def n(self) -> int:
        """Frames in the file."""
        return self.records * self.per_record

    @property
    def packed(self) -> bool:
        """Whether a record holds frames on an axis of its own (3-D dimensions)."""
        return self.frames_last is not None


def _layout(cdf: cdflib.CDF, names: list[str], image_var: str, path: Path) -> tuple[_Layout, str]:
    """The image variable's layout and the variable that holds one time per frame.

    From the variables' declared dimensions and record counts alone (nothing is read):
    ``_epoch`` where it holds one value per frame, else ``_time``; one IngestError that
    names both counts where neither does.
    """
    dims, records = _inquire(cdf, image_var, path)
    epoch_var, unix_var = f"{image_var}_epoch", f"{image_var}_time"
    counts: dict[str, int] = {}
    for name in (epoch_var, unix_var):
        if name in names:
            var_dims, var_records = _inquire(cdf, name, path)
            counts[name] = int(np.prod(var_dims, dtype=np.int64)) * var_records
    layout = _frames_in(dims, records, set(counts.values()), image_var, path)
    if layout.packed:
        _check_whole(path)
    if not any(counts.values()):
        raise IngestError(
            "no frame times",
            path=path,
            expected=f"records in {epoch_var} (CDF_EPOCH) or {unix_var} (unix seconds)",
        )
    n = layout.n
    one_packed = layout.packed and n == 1 and counts.get(unix_var) == 1
    if n and counts.get(epoch_var) == n and not one_packed:
        return layout, epoch_var
    if n and counts.get(unix_var) == n:
        return layout, unix_var
    said = " and ".join(f"{name} has {count}" for name, count in counts.items())
    raise IngestError(
        f"{image_var} holds {n} frame{'s' * (n != 1)} but {said} time values",
        path=path,
        expected=f"one time per frame, in {epoch_var} or else {unix_var}",
    )


def _check_whole(path: Path) -> None:
    """A file shorter than its global descriptor says is refused, though what is left may
    read: a 2024 file cut in its last variables (``_epoch``, never read) would read whole.

    (Files of the classic layout are not checked here: the same cut of their last
    variables, ``range_epoch`` and others never read, is not refused.)
    """
    try:
        size, declared = path.stat().st_size, declared_size(path)
    except OSError as exc:
        raise IngestError(f"cannot read: {_one_line(exc)}", path=path) from exc
    if declared is not None and size < declared:
        raise IngestError(
            f"the file ends at byte {size:,} but its header says {declared:,} (cut short?)",
            path=path,
            expected="a whole CDF file",
        )


def _frames_in(
    dims: list[int], records: int, time_counts: set[int], image_var: str, path: Path
) -> _Layout:
    """Where the frames lie in the image variable's records (see :class:`_Layout`)."""
    if len(dims) == 2 and min(dims) >= 2:
        return _Layout(records, 1, None, (dims[0], dims[1]))
    if len(dims) == 3:
        a, b, c = dims
        last, first = a == b and b >= 2, b == c and b >= 2  # square frames
        if last == first:  # a cube of values, or frames that are not square
            last = (records * c in time_counts or records * a not in time_counts) and min(a, b) >= 2
            first = not last and min(b, c) >= 2
        if last:
            return _Layout(records, c, True, (a, b))
        if first:
            return _Layout(records, a, False, (b, c))
    raise IngestError(
        f"{image_var} has dimensions {dims}",
        path=path,
        expected="(y, x) per record, or frames first or last: (k, y, x) or (y, x, k)",
    )


def _inquire(cdf: cdflib.CDF, name: str, path: Path) -> tuple[list[int], int]:
    """A variable's declared dimensions and its number of records (1 if not varying)."""
    try:
        info = cdf.varinq(name)
        return [int(d) for d in info.Dim_Sizes], max(0, int(info.Last_Rec) + 1)
    except Exception as exc:  # a damaged variable descriptor
        raise IngestError(f"cannot inquire {name}: {_one_line(exc)}", path=path) from exc


def _packed_index(
    cdf: cdflib.CDF, image_var: str, path: Path, layout: _Layout
) -> RecordIndex | None:
    """The blocks of 16-bit records of several frames each; else None (cdflib)."""
    try:
        index = record_index(cdf, image_var, path)
    except Exception:  # anything odd in the index records: cdflib reads it, or says why
        return None
    if index is None or len(index.shape) != 3 or int(index.last[-1]) + 1 != layout.records:
        return None
    if index.dtype.kind != "u" or index.dtype.itemsize != 2:
        return None
    return index


def _packed(
    path: Path, index: RecordIndex, image_var: str, layout: _Layout, lo: int, hi: int
) -> np.ndarray:
    """Frames ``lo:hi`` of records of several frames, block by block, named if damaged."""
    try:
        return read_packed(path, index, lo, hi, frames_last=bool(layout.frames_last))
    except (OSError, ValueError) as exc:
        raise IngestError(
            f"cannot read variable {image_var}: {_one_line(exc)} (truncated or corrupt file?)",
            path=path,
        ) from exc


def _packed_stack(
    images: np.ndarray, layout: _Layout, name: str, path: Path, lo: int, hi: int
) -> np.ndarray:
    """Frames ``lo:hi`` of what cdflib read of records of several frames each, as a
    C-contiguous ``(hi - lo, y, x)`` uint16 stack in the cube's orientation."""
    k, (ny, nx) = layout.per_record, layout.frame
    record = (ny, nx, k) if layout.frames_last else (k, ny, nx)
    if images.size != layout.records * k * ny * nx:
        raise IngestError(
            f"{name} holds {images.size} values, not the {layout.n} frames its "
            f"dimensions {list(record)} over {layout.records} records say",
            path=path,
            expected="a whole variable (truncated or corrupt file?)",
        )
    _check_counts(images, name, path)
    values = images.reshape(layout.records, *record)
    out = np.empty((hi - lo, ny, nx), dtype=np.uint16)
    for r in range(lo // k, -(-hi // k)):
        f0, f1 = max(lo, r * k), min(hi, (r + 1) * k)
        take = slice(f0 - r * k, f1 - r * k)
        if layout.frames_last:
            out[f0 - lo : f1 - lo] = cdf_to_cube(_frames_first(values[r][:, :, take]))
        else:
            out[f0 - lo : f1 - lo] = cdf_to_cube(values[r][take])
    return out


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
    with _image_and_times(path) as (cdf, image_var, layout, time):
        if layout.packed:
            index = _packed_index(cdf, image_var, path, layout)
        else:
            index = _frame_index(cdf, image_var, path, time.shape[0])
    del cdf  # the file's handle: parts are read by read_records, which opens it itself
    n = time.shape[0]
    if index is None or not _increasing(time):
        for rows in parts:
            yield read_cdf(path, rows=rows).frames
        return
    for lo, hi in parts:
        _check_rows((lo, hi), n, path)
        if layout.packed:
            yield _packed(path, index, image_var, layout, lo, hi)
        else:
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


def _read_times(cdf: cdflib.CDF, name: str, n: int, path: Path) -> np.ndarray:
    """The ``n`` frame times in variable ``name`` (``_epoch`` or ``_time``, chosen by
    :func:`_layout`), as ``datetime64[ns]``."""
    raw = _get(cdf, name, path, allow_empty=True)
    values = np.asarray(raw if raw is not None else []).ravel()
    if values.size != n:  # the variable's descriptor promised n (a damaged file)
        raise IngestError(
            f"{name} holds {values.size} values, not the {n} of its dimensions",
            path=path,
            expected="a whole variable (truncated or corrupt file?)",
        )
    if name.endswith("_epoch"):
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise IngestError(f"{name} holds NaN or infinite values", path=path)
        time = _epoch_times(values)
    else:
        seconds = np.asarray(values, dtype=np.float64)
        if not np.isfinite(seconds).all():
            raise IngestError(f"{name} holds NaN or infinite values", path=path)
        # Round to the microsecond: float64 unix seconds carry about that much.
        micro = np.round(seconds * 1e6).astype(np.int64)
        time = micro.astype("datetime64[us]").astype("datetime64[ns]")
    bad = (time < _EARLIEST) | (time >= _LATEST)  # (NaT compares False: FrameBlock names it)
    if bad.any():
        raise IngestError(
            f"{int(bad.sum())} of {time.size} times in {name} are fill values or out of range",
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
    """Bring classic-layout records (one frame each) to a C-contiguous ``(n, y, x)``
    uint16 stack (records of several frames: :func:`_packed_stack`)."""
    shape = images.shape
    if images.ndim == 2 and n == 1:
        # cdflib drops the record axis of a one-record variable.
        stack = images[None]
    elif images.ndim == 3 and shape[0] == n:
        stack = images  # classic: records are frames
    else:
        raise IngestError(f"{name} has shape {shape} for {n} times", path=path)
    if stack.shape[1] < 2 or stack.shape[2] < 2:
        raise IngestError(f"{name} frames are {stack.shape[1:]}", path=path, expected="2-D frames")
    _check_counts(stack, name, path)
    # Berkeley CDF frames are the UCalgary skymap's turned by 180 deg (measured with stars,
    # see oathcube.archive.orientation): one copy brings them into the cube's orientation.
    return cdf_to_cube(stack)


def _check_counts(values: np.ndarray, name: str, path: Path) -> None:
    """THEMIS stores CDF_UINT2; other integer types are taken only if nothing is lost."""
    if values.dtype != np.uint16:
        if values.dtype.kind not in "iu" or values.min() < 0 or values.max() > 65535:
            raise IngestError(
                f"{name} has type {values.dtype}", path=path, expected="16-bit unsigned counts"
            )


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
