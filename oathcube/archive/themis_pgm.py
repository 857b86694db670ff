"""UCalgary THEMIS ASI one-minute PGM files (``YYYYMMDD_HHMM_<site>_themisNN_full.pgm[.gz]``).

Layout (checked on the two real Gillam files in ``shared/data/themis``): a file is a plain
concatenation of binary PGM (``P5``) images, usually 20 (one every 3 s).  Each image has its
own header::

    P5
    #"Site unique ID" gill                      <- metadata as '#"Key" value' comments
    #"Image request start" 2014-03-10 06:05:00.058114 UTC
    ...
    256 256
    65535
    <256*256 big-endian uint16 pixels, row by row>

The first frame's header carries the full site/imager description (~60 comment lines);
later frames carry only the per-exposure lines.  Times are each frame's ``Image request
start`` (UTC, microseconds); the station is ``Site unique ID`` (first frame), which must
agree with the file name.

Why not ``themis-imager-readfile``: version 1.4.1 pins ``numpy<2``, which conflicts with
pandas 3 and the rest of this stack, so the format is parsed here with numpy alone (a
regular expression per header and ``numpy.frombuffer`` per frame).  Gzip is recognised by
its magic bytes, not by the name.

Frames are returned exactly as stored (``uint16``, row 0 = first row in the file, no flip):
that is already the cube's orientation, the UCalgary skymaps' (see
:mod:`oathcube.archive.orientation` for the check on the real Gillam minutes).
A truncated or corrupt file (cut gzip stream, header cut short, last raster short, frames
of different sizes, a frame without its time) raises :class:`~oathcube.errors.IngestError`
naming the file and the frame.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from pathlib import Path

import numpy as np

from oathcube.archive.blocks import FrameBlock
from oathcube.errors import IngestError

__all__ = ["read_pgm", "parse_pgm_stream", "station_from_pgm_name", "PGM_NAME_RE"]

#: ``YYYYMMDD_HHMM_<site>_<imager>_<mode>.pgm[.gz]``, e.g. ``20140310_0600_gill_themis19_full``.
PGM_NAME_RE = re.compile(
    r"^(?P<date>\d{8})_(?P<hhmm>\d{4})_(?P<site>[a-z0-9]+)_(?P<imager>[a-z]+\d+)_(?P<mode>\w+?)"
    r"\.pgm(?:\.gz)?$",
    re.IGNORECASE,
)

# One PGM header: magic, then width/height/maxval separated by whitespace and/or comment
# lines, then exactly one whitespace byte before the raster (Netpbm rules).
_SEP = rb"(?:\s|#[^\n]*\n)+"
_HEADER_RE = re.compile(rb"P5(" + _SEP + rb")(\d+)(" + _SEP + rb")(\d+)(" + _SEP + rb")(\d+)\s")
_COMMENT_RE = re.compile(rb"#([^\n]*)\n")
_META_RE = re.compile(r'^"(?P<key>[^"]+)"\s*(?P<value>.*)$')

_TIME_KEY = "Image request start"
_SITE_KEY = "Site unique ID"


def station_from_pgm_name(name: str) -> str | None:
    """Station code in a UCalgary PGM file name, or None if the name is not one."""
    m = PGM_NAME_RE.match(Path(name).name)
    return m.group("site").lower() if m else None


def read_pgm(path: str | os.PathLike[str]) -> FrameBlock:
    """Read every frame of one UCalgary THEMIS PGM file (plain or gzip).

    Parameters
    ----------
    path
        A ``YYYYMMDD_HHMM_<site>_themisNN_full.pgm`` or ``.pgm.gz`` file.

    Returns
    -------
    FrameBlock
        ``raw=True``, ``uint16`` frames ``(n, y, x)`` in the file's pixel order; times from
        each frame's ``Image request start``.

    Raises
    ------
    IngestError
        The file cannot be read or decompressed, or its frames are cut short or malformed.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IngestError(f"cannot read file: {exc.strerror or exc}", path=path) from exc
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise IngestError(
                f"gzip stream is corrupt or cut short ({type(exc).__name__}: {exc})",
                path=path,
                expected="a complete .pgm.gz file",
            ) from exc
    metas, frames = parse_pgm_stream(data, path)

    station = None
    if _SITE_KEY in metas[0]:
        station = metas[0][_SITE_KEY].strip().lower()
    named = station_from_pgm_name(path.name)
    if station and named and station != named:
        raise IngestError(
            f"file name says station {named!r} but the frames say {station!r}",
            path=path,
            expected="name and metadata of the same station",
        )
    station = station or named
    if not station:
        raise IngestError(
            "no station: no 'Site unique ID' comment and the name is not a THEMIS PGM name",
            path=path,
            expected="YYYYMMDD_HHMM_<site>_themisNN_full.pgm",
        )

    time = np.empty(len(metas), dtype="datetime64[ns]")
    for i, meta in enumerate(metas):
        time[i] = _frame_time(meta, i, path)
    if not (np.diff(time) > np.timedelta64(0, "ns")).all():
        raise IngestError(
            "frame times are not strictly increasing", path=path, expected="one frame per time"
        )
    return FrameBlock(station=station, time=time, frames=frames, source=str(path), raw=True)


def parse_pgm_stream(data: bytes, path: str | os.PathLike[str]) -> tuple[list[dict], np.ndarray]:
    """Split concatenated 16-bit PGM images into metadata and a frame stack.

    Parameters
    ----------
    data
        The decompressed file content.
    path
        Used in error messages only.

    Returns
    -------
    metas : list of dict
        Per frame, the ``#"Key" value`` comments as ``{key: value}`` (later keys win).
    frames : numpy.ndarray
        ``(n, y, x)`` native-endian ``uint16``.

    Raises
    ------
    IngestError
        No frame, a header that does not parse, a raster cut short, 8-bit frames, or
        frames of different sizes.
    """
    metas: list[dict] = []
    rasters: list[np.ndarray] = []
    pos, end = 0, len(data)
    while pos < end:
        if not data[pos:].strip():
            break  # trailing whitespace after the last raster is harmless
        frame_no = len(rasters) + 1
        m = _HEADER_RE.match(data, pos)
        if m is None:
            if data[pos : pos + 2] == b"P5":
                what = "header does not parse (cut short?)"
            else:
                what = "no 'P5' magic (not a PGM, or garbage between frames)"
            raise IngestError(
                f"frame {frame_no} at byte {pos}: {what}",
                path=path,
                expected="'P5', width, height, maxval",
            )
        width, height, maxval = int(m.group(2)), int(m.group(4)), int(m.group(6))
        if maxval < 256 or maxval > 65535:
            raise IngestError(
                f"frame {frame_no} has maxval {maxval}",
                path=path,
                expected="16-bit frames (maxval 256..65535)",
            )
        if rasters and (height, width) != rasters[0].shape:
            raise IngestError(
                f"frame {frame_no} is {width}x{height}, frame 1 is "
                f"{rasters[0].shape[1]}x{rasters[0].shape[0]}",
                path=path,
                expected="frames of one size",
            )
        start = m.end()
        nbytes = 2 * width * height
        if start + nbytes > end:
            raise IngestError(
                f"frame {frame_no} is cut short: {end - start} of {nbytes} raster bytes",
                path=path,
                expected="a complete file",
            )
        # PGM stores 16-bit samples most significant byte first.
        raster = np.frombuffer(data, dtype=">u2", count=width * height, offset=start)
        rasters.append(raster.reshape(height, width))
        header = b"".join(m.group(g) for g in (1, 3, 5))
        metas.append(_parse_comments(header))
        pos = start + nbytes
    if not rasters:
        raise IngestError("no PGM frame in file", path=path, expected="binary PGM (P5) frames")
    frames = np.stack(rasters).astype(np.uint16)  # one copy, to native byte order
    return metas, frames


def _parse_comments(header: bytes) -> dict[str, str]:
    meta: dict[str, str] = {}
    for raw in _COMMENT_RE.findall(header):
        # Metadata is ASCII; latin-1 never fails, so an odd byte cannot stop a read.
        text = raw.decode("latin-1").strip()
        m = _META_RE.match(text)
        if m:
            meta[m.group("key")] = m.group("value").strip()
    return meta


def _frame_time(meta: dict[str, str], index: int, path: Path) -> np.datetime64:
    value = meta.get(_TIME_KEY)
    if value is None:
        raise IngestError(
            f"frame {index + 1} has no {_TIME_KEY!r} comment",
            path=path,
            expected='#"Image request start" YYYY-MM-DD HH:MM:SS.ffffff UTC',
        )
    text = value.strip()
    if text.upper().endswith("UTC"):
        text = text[:-3].strip()
    try:
        return np.datetime64(text.replace(" ", "T"), "ns")
    except ValueError as exc:
        raise IngestError(
            f"frame {index + 1}: cannot parse {_TIME_KEY!r} value {value!r}",
            path=path,
            expected="YYYY-MM-DD HH:MM:SS.ffffff UTC",
        ) from exc
