"""Records of one CDF variable read straight from its blocks, the GIL released for most of it.

cdflib reads a compressed variable in Python: each gzip block is inflated by
``gzip.decompress`` (header parsed in Python, the compressed bytes copied once more, the
CRC computed in a second pass), copied into one ``bytearray`` and then sliced again, all
with the GIL held, so that two threads of an ingest wait for each other for about half of
their reading.  This reader takes from cdflib's public API only what the variable is
(:meth:`cdflib.CDF.vdr_info`, :meth:`cdflib.CDF.cdf_info`) and reads the rest as the CDF
internal format lays it out (version 3):

* the variable's index records (VXR: ``RecordSize`` 8 bytes, ``RecordType`` 4 = 6,
  ``VXRnext`` 8, ``Nentries`` 4, ``NusedEntries`` 4, then ``Nentries`` first records,
  ``Nentries`` last records (4 bytes each) and ``Nentries`` offsets (8 bytes each); an
  offset may lead to another VXR, one level down);
* the data blocks they point to: a VVR (``RecordType`` 7, the values follow) or a CVVR
  (``RecordType`` 13, ``rfuA`` 4, ``cSize`` 8, then ``cSize`` bytes of gzip);

all integers big-endian.  Each gzip block is inflated by libdeflate (the ``deflate``
package: one call for the whole member, the CRC and the length checked, the GIL
released), 1.7-2.2x faster than zlib on THEMIS blocks (on a Zen 4, one thread: 254-332
against 550-556 us a frame), and one numpy copy byte-swaps, turns and places its frames.

Records of several frames each (the 2024 layout: the hour in one record, frames on its
last axis) are read by :func:`read_packed` from the same blocks, the frames moved first,
turned and byte-swapped in one copy, a strip of rows at a time.

:func:`record_index` returns None for anything else (another CDF version, a sparse,
non-varying or compressed-file variable, a value type not listed here), and
:mod:`.themis_cdf` reads those with cdflib.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import deflate
import numpy as np

from .orientation import turned

__all__ = ["RecordIndex", "declared_size", "record_index", "read_packed", "read_records"]

# CDF data type codes of fixed-size numbers, and their numpy kinds (byte order apart).
_TYPES = {1: "i1", 2: "i2", 4: "i4", 8: "i8", 11: "u1", 12: "u2", 14: "u4", 41: "i1", 51: "u1"}
# Encodings whose numbers are little-endian (CDF: VAX, DECSTATION, IBMPC, the ALPHAs,
# ARM_LITTLE); every other encoding is big-endian.
_LITTLE_ENDIAN = {3, 4, 6, 13, 14, 15, 16, 17}
_VXR, _VVR, _CVVR = 6, 7, 13
_GZIP_FRAME = 18  # bytes of a gzip member that are not data: 10 header, 8 trailer


@dataclass(frozen=True)
class RecordIndex:
    """Where the records of one variable lie: one entry per data block, in record order.

    Parameters
    ----------
    first, last
        First and last record (inclusive) of each block.
    offset
        File offset of each block (a VVR or a CVVR).
    dtype
        The values' type with the file's byte order.
    shape
        The shape of one record.
    """

    first: np.ndarray
    last: np.ndarray
    offset: np.ndarray
    dtype: np.dtype[Any]
    shape: tuple[int, ...]

    @property
    def record_bytes(self) -> int:
        """Bytes of one record."""
        return int(np.prod(self.shape)) * self.dtype.itemsize


def record_index(cdf: Any, name: str, path: str | Path) -> RecordIndex | None:
    """The blocks of variable ``name`` of an open cdflib CDF, or None if not readable here.

    Parameters
    ----------
    cdf
        A :class:`cdflib.CDF` of ``path``.
    name
        A record-varying zVariable or rVariable.
    path
        The same file, read here for the index records.

    Returns
    -------
    RecordIndex or None
        None where this reader does not take the variable (see the module's notes),
        or where its blocks do not cover records ``0 .. max_rec`` once each, in order.
    """
    info = cdf.cdf_info()
    if not str(info.Version).startswith("3.") or info.Compressed or info.Majority != "Row_major":
        return None
    vdr = cdf.vdr_info(name)
    kind = _TYPES.get(int(vdr.data_type))
    if kind is None or vdr.sparse or not vdr.record_vary or int(vdr.num_elements) != 1:
        return None
    order = "<" if int(info.Encoding) in _LITTLE_ENDIAN else ">"
    entries: list[tuple[int, int, int]] = []
    with open(path, "rb") as f:
        if not _walk(f, int(vdr.head_vxr), entries, depth=0):
            return None
    if not entries:
        return None
    first, last, offset = np.array(entries, dtype=np.int64).T
    # Blocks that tile records 0..max_rec in order; anything else goes to cdflib.
    if first[0] != 0 or last[-1] != int(vdr.max_rec) or (first[1:] != last[:-1] + 1).any():
        return None
    if (last < first).any():
        return None
    shape = tuple(int(d) for d in vdr.dim_sizes)
    return RecordIndex(first, last, offset, np.dtype(order + kind), shape)


def declared_size(path: str | Path) -> int | None:
    """The file's size as its global descriptor says (``eof``), or None if not found.

    A version 3 file that is not compressed whole starts with the magic numbers
    ``CDF30001 0000FFFF``, then its descriptor record (CDR: ``RecordSize`` 8,
    ``RecordType`` 4 = 1, ``GDRoffset`` 8, ...); the global descriptor (GDR:
    ``RecordSize`` 8, ``RecordType`` 4 = 2, ``rVDRhead``, ``zVDRhead``, ``ADRhead`` 8
    each, then ``eof`` 8) gives the offset where the file ends.  A file shorter than that
    was cut short, however well the records that are left read.
    """
    with open(path, "rb") as f:
        head = f.read(28)
        if len(head) < 28 or head[:8] != bytes.fromhex("cdf300010000ffff"):
            return None
        if int.from_bytes(head[16:20], "big") != 1:
            return None
        f.seek(int.from_bytes(head[20:28], "big"))
        gdr = f.read(44)
    if len(gdr) < 44 or int.from_bytes(gdr[8:12], "big") != 2:
        return None
    return int.from_bytes(gdr[36:44], "big")


def _walk(f: Any, at: int, entries: list[tuple[int, int, int]], depth: int) -> bool:
    """Append the (first, last, offset) of the data blocks under the VXR chain at ``at``."""
    seen = 0
    while at > 0:
        seen += 1
        if depth > 8 or seen > 1_000_000:  # a loop in a damaged file
            return False
        f.seek(at)
        head = f.read(28)
        if len(head) < 28 or int.from_bytes(head[8:12], "big") != _VXR:
            return False
        following = int.from_bytes(head[12:20], "big", signed=True)
        n = int.from_bytes(head[20:24], "big", signed=True)
        used = int.from_bytes(head[24:28], "big", signed=True)
        body = f.read(16 * n)
        if n < 0 or not 0 <= used <= n or len(body) < 16 * n:
            return False
        firsts = np.frombuffer(body, ">i4", used, 0)
        lasts = np.frombuffer(body, ">i4", used, 4 * n)
        offsets = np.frombuffer(body, ">i8", used, 8 * n)
        for a, b, o in zip(firsts.tolist(), lasts.tolist(), offsets.tolist(), strict=True):
            f.seek(o)
            kind = f.read(12)
            if len(kind) < 12:
                return False
            if int.from_bytes(kind[8:12], "big") == _VXR:
                if not _walk(f, o, entries, depth + 1):
                    return False
            else:
                entries.append((a, b, o))
        at = following
    return True


def read_records(path: str | Path, index: RecordIndex, lo: int, hi: int) -> np.ndarray:
    """Frames ``lo:hi`` of a variable of 2-D records, turned by 180 deg into the cube's
    orientation (:func:`.orientation.turned`) in the copy that byte-swaps and places each
    block's records, so that the turn costs nothing extra.

    Parameters
    ----------
    path
        The file of ``index``.
    index
        From :func:`record_index`.
    lo, hi
        Records ``lo`` (inclusive) to ``hi`` (exclusive), ``0 <= lo <= hi <= n``.

    Returns
    -------
    numpy.ndarray
        ``(hi - lo, *shape)`` in native byte order, C-contiguous.

    Raises
    ------
    ValueError
        A block is not where the index says, has another type, or cannot be inflated
        to its records (a truncated or damaged file); the message says which block.
    """
    out = np.empty((hi - lo, *index.shape), dtype=index.dtype.newbyteorder("="))
    if hi <= lo:
        return out
    start = int(np.searchsorted(index.last, lo, side="left"))
    stop = int(np.searchsorted(index.first, hi - 1, side="right"))
    size = index.record_bytes
    with open(path, "rb", buffering=0) as f:
        for block in range(start, stop):
            a, b = int(index.first[block]), int(index.last[block])
            data = _block(f, int(index.offset[block]), (b - a + 1) * size)
            values = np.frombuffer(data, dtype=index.dtype).reshape(b - a + 1, *index.shape)
            take = slice(max(lo, a) - a, min(hi - 1, b) - a + 1)
            put = slice(max(lo, a) - lo, min(hi - 1, b) - lo + 1)
            out[put] = turned(values[take])
    return out


def read_packed(
    path: str | Path, index: RecordIndex, lo: int, hi: int, *, frames_last: bool
) -> np.ndarray:
    """Frames ``lo:hi`` of a variable whose records each hold ``k`` frames, on the last
    axis of a record (``(y, x, k)``, the 2024 layout) or on its first (``(k, y, x)``),
    counted record after record; turned by 180 deg into the cube's orientation in the
    one copy that byte-swaps, moves the frame axis first and places them.

    Only the blocks that hold records with frames ``lo:hi`` are read, each inflated
    whole (libdeflate, the GIL released), however few of its frames are wanted: with
    frames on the last axis every frame has a value in every row of its record.

    Parameters
    ----------
    path
        The file of ``index``.
    index
        From :func:`record_index`, of 3-D records (size-1 axes apart: ``(y, x, 1)`` is
        one frame a record).
    lo, hi
        Frames ``lo`` (inclusive) to ``hi`` (exclusive) in record order,
        ``0 <= lo <= hi <= records * k``.
    frames_last
        Whether the frames lie on the last axis of a record, else on the first.

    Returns
    -------
    numpy.ndarray
        ``(hi - lo, y, x)`` in native byte order, C-contiguous.

    Raises
    ------
    ValueError
        As :func:`read_records`.
    """
    dims = index.shape
    if len(dims) != 3:
        raise ValueError(f"records of shape {dims}: not frames on an axis of 3")
    k, ny, nx = (dims[2], dims[0], dims[1]) if frames_last else dims
    out = np.empty((hi - lo, ny, nx), dtype=index.dtype.newbyteorder("="))
    if hi <= lo:
        return out
    first_record, last_record = lo // k, (hi - 1) // k
    start = int(np.searchsorted(index.last, first_record, side="left"))
    stop = int(np.searchsorted(index.first, last_record, side="right"))
    size = index.record_bytes
    with open(path, "rb", buffering=0) as f:
        for block in range(start, stop):
            a, b = int(index.first[block]), int(index.last[block])
            data = _block(f, int(index.offset[block]), (b - a + 1) * size)
            values = np.frombuffer(data, dtype=index.dtype).reshape(b - a + 1, *dims)
            for record in range(max(a, first_record), min(b, last_record) + 1):
                f0, f1 = max(lo, record * k), min(hi, (record + 1) * k)
                into = out[f0 - lo : f1 - lo]
                take = slice(f0 - record * k, f1 - record * k)
                if frames_last:
                    _place_last(into, values[record - a][:, :, take])
                else:
                    into[...] = turned(values[record - a][take])
            del data, values  # the next block's bytes in place of these, not beside them
    return out


#: Rows of a frames-last record moved at a time, so that the ``k`` values of each pixel
#: of the rows stay in cache from the inflated record to the frames (1.2 MB for an hour
#: of 1,200 frames).  On a Zen 4 an hour placed warm took 0.05 s in strips of 2 rows,
#: 0.07 s in strips of 4 to 16 or tiles of 8-16 rows by 64-128 frames, 0.17 s in one copy.
_ROWS_AT_ONCE = 2


def _place_last(into: np.ndarray, record: np.ndarray) -> None:
    """``(y, x, k)`` values into ``(k, y, x)`` frames, turned by 180 deg, a strip at a time."""
    ny = record.shape[0]
    flipped = record[::-1, ::-1]  # the turn, as a view
    for y in range(0, ny, _ROWS_AT_ONCE):
        into[:, y : y + _ROWS_AT_ONCE] = flipped[y : y + _ROWS_AT_ONCE].transpose(2, 0, 1)


def _block(f: Any, offset: int, length: int) -> bytes | bytearray:
    """The values of the VVR or CVVR at ``offset``: exactly ``length`` bytes."""
    f.seek(offset)
    head = f.read(12)
    if len(head) < 12:
        raise ValueError(f"block at byte {offset}: the file ends inside its header")
    record_size = int.from_bytes(head[:8], "big")
    kind = int.from_bytes(head[8:12], "big")
    if kind == _VVR:
        data = f.read(length)
    elif kind == _CVVR:
        sizes = f.read(12)
        compressed = int.from_bytes(sizes[4:12], "big") if len(sizes) == 12 else -1
        if compressed < 0 or compressed > record_size:
            raise ValueError(f"compressed block at byte {offset}: bad size {compressed}")
        packed = f.read(compressed)
        if len(packed) < compressed:
            raise ValueError(f"compressed block at byte {offset}: the file ends inside it")
        # libdeflate sizes its output by the member's trailer (ISIZE, the length modulo
        # 2**32): it must be the block's, or a damaged trailer could ask for gigabytes.
        trailer = int.from_bytes(packed[-4:], "little")
        if len(packed) < _GZIP_FRAME or trailer != length % (1 << 32):
            raise ValueError(
                f"compressed block at byte {offset}: its gzip trailer does not give "
                f"the {length} bytes of its records"
            )
        try:
            data = deflate.gzip_decompress(packed)
        except deflate.DeflateError as exc:
            raise ValueError(
                f"compressed block at byte {offset}: not valid gzip ({exc}: bad data or CRC)"
            ) from exc
    else:
        raise ValueError(f"block at byte {offset} has record type {kind}, not a VVR or CVVR")
    if len(data) != length:
        raise ValueError(f"block at byte {offset} holds {len(data)} bytes, not {length}")
    return data
