"""UCalgary one-minute PGM files: THEMIS, REGO, TREx NIR and TREx Blueline.

One format, four imagers (the module keeps the name of its first one, which
:mod:`oathcube.fetch.http` and the tests import):

* THEMIS ``YYYYMMDD_HHMM_<site>_themisNN_full.pgm[.gz|.bz2]``: 256 x 256, every 3 s;
* REGO ``YYYYMMDD_HHMM_<site>_rego-NNN_6300.pgm[.gz]``: 512 x 512, 630.0 nm, every 3 s;
* TREx NIR ``YYYYMMDD_HHMM_<site>_nir-NNN_8446.pgm[.gz]``: 256 x 256, every 6 s;
* TREx Blueline ``YYYYMMDD_HHMM_<site>_blue-NNN_full.pgm[.gz]``.

Layout (checked on the two real Gillam THEMIS files in ``shared/data/themis``, and as
pyucalgarysrs 1.28's readers ``_themis.py``, ``_rego.py``, ``_trex_nir.py`` and
``_trex_blue.py`` parse it): a file is a plain concatenation of binary PGM (``P5``)
images, usually 20 a minute (10 for NIR).  Each image has its own header::

    P5
    #"Site unique ID" gill                      <- metadata as '#"Key" value' comments
    #"Imager unique ID" themis19
    #"Image request start" 2014-03-10 06:05:00.058114 UTC
    ...
    256 256
    65535
    <256*256 big-endian uint16 pixels, row by row>

The first frame's header carries the full site/imager description (~60 comment lines);
later frames carry only the per-exposure lines.  Times are each frame's ``Image request
start`` (UTC, microseconds), as pyucalgarysrs takes them; the station is ``Site unique
ID`` (first frame) and the instrument follows from ``Imager unique ID`` (``themis19``,
``rego-652``, ``nir-216``, ``blue-814``;
:func:`~oathcube.archive.instruments.instrument_of_imager`), each of which must agree
with the file name where both say it.

Why not ``themis-imager-readfile`` or pyucalgarysrs: the former pins ``numpy<2``; the
latter pulls in opencv-python and reads frame by frame with ``numpy.dstack``.  So the
format is parsed here with numpy alone (a regular expression per header and
``numpy.frombuffer`` per frame); pyucalgarysrs is the reference the tests compare with
(``tests/test_ucalgary_readers.py``).  Gzip and bzip2 are recognised by their magic
bytes, not by the name.

Frames are returned exactly as stored (``uint16``, row 0 = first row in the file, no
flip): that is the cube's orientation, the UCalgary skymaps' (see
:mod:`oathcube.archive.orientation`, which also gives how pyucalgarysrs's arrays relate:
it flips THEMIS, NIR and Blueline frames north-south and REGO frames on both axes).
Dark files (``..._dark.pgm.gz``) read like any other; the dispatcher
(:mod:`oathcube.archive.frames`) keeps them out of the sky.
A truncated or corrupt file (cut compressed stream, header cut short, last raster short,
frames of different sizes, a frame without its time) raises
:class:`~oathcube.errors.IngestError` naming the file and the frame.
"""

from __future__ import annotations

import bz2
import gzip
import os
import re
import zlib
from pathlib import Path

import numpy as np

from ..errors import IngestError
from ..sites import station_code
from .blocks import FrameBlock
from .instruments import agreed_site, instrument_of_imager, utc_stamp

__all__ = [
    "read_pgm",
    "parse_pgm_stream",
    "station_from_pgm_name",
    "imager_from_pgm_name",
    "PGM_NAME_RE",
    "PGM_INSTRUMENTS",
]

#: ``YYYYMMDD_HHMM[SS_ffffff]_<site>_<imager>_<rest>.pgm[.gz|.bz2]``, e.g.
#: ``20140310_0600_gill_themis19_full``, ``20180403_0600_gill_rego-652_6300``,
#: ``20240101_005115_825600_atha_blue-633_dark_full``.
PGM_NAME_RE = re.compile(
    r"^(?P<date>\d{8})_(?P<hhmm>\d{4}|\d{6}_\d{6})_(?P<site>[a-z0-9]+)_(?P<imager>[a-z]+-?\d+)"
    r"_(?P<mode>[^.]+?)\.pgm(?:\.gz|\.bz2)?$",
    re.IGNORECASE,
)

#: The instruments whose frames come in these PGM files.
PGM_INSTRUMENTS: tuple[str, ...] = ("themis", "rego", "trex_nir", "trex_blue")

# One PGM header: magic, then width/height/maxval separated by whitespace and/or comment
# lines, then exactly one whitespace byte before the raster (Netpbm rules).
_SEP = rb"(?:\s|#[^\n]*\n)+"
_HEADER_RE = re.compile(rb"P5(" + _SEP + rb")(\d+)(" + _SEP + rb")(\d+)(" + _SEP + rb")(\d+)\s")
_COMMENT_RE = re.compile(rb"#([^\n]*)\n")
_META_RE = re.compile(r'^"(?P<key>[^"]+)"\s*(?P<value>.*)$')

_TIME_KEY = "Image request start"
_SITE_KEY = "Site unique ID"
_IMAGER_KEY = "Imager unique ID"


def station_from_pgm_name(name: str) -> str | None:
    """Station code in a UCalgary PGM file name, or None if the name is not one."""
    m = PGM_NAME_RE.match(Path(name).name)
    return m.group("site").lower() if m else None


def imager_from_pgm_name(name: str) -> str | None:
    """Imager in a UCalgary PGM file name (``themis19``, ``rego-652``), or None."""
    m = PGM_NAME_RE.match(Path(name).name)
    return m.group("imager").lower() if m else None


def read_pgm(path: str | os.PathLike[str]) -> FrameBlock:
    """Read every frame of one UCalgary PGM file (THEMIS, REGO, TREx NIR or Blueline).

    Parameters
    ----------
    path
        A ``.pgm``, ``.pgm.gz`` or ``.pgm.bz2`` file, e.g.
        ``20180403_0600_gill_rego-652_6300.pgm.gz``.

    Returns
    -------
    FrameBlock
        ``raw=True``, ``uint16`` frames ``(n, y, x)`` in the file's pixel order; times from
        each frame's ``Image request start``; ``instrument`` from ``Imager unique ID``
        (else the file name).

    Raises
    ------
    IngestError
        The file cannot be read or decompressed, its frames are cut short or malformed,
        or its name and metadata disagree on the station or the imager.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IngestError(f"cannot read file: {exc.strerror or exc}", path=path) from exc
    data = _decompressed(data, path)
    metas, frames = parse_pgm_stream(data, path)

    station = None
    if _SITE_KEY in metas[0]:
        station = metas[0][_SITE_KEY].strip().lower()
    station = agreed_site(
        station,
        station_from_pgm_name(path.name),
        path,
        said_by="the frames say",
        missing="no 'Site unique ID' comment and the name is not a UCalgary PGM name",
        expected="YYYYMMDD_HHMM_<site>_<imager>_<mode>.pgm, e.g. ..._gill_themis19_full.pgm",
    )
    instrument = _instrument(metas, path)

    time = np.empty(len(metas), dtype="datetime64[ns]")
    for i, meta in enumerate(metas):
        time[i] = _frame_time(meta, i, path)
    if not (np.diff(time) > np.timedelta64(0, "ns")).all():
        raise IngestError(
            "frame times are not strictly increasing", path=path, expected="one frame per time"
        )
    return FrameBlock(
        # One imager a station: REGO or TREx frames of a site never join its THEMIS ones.
        station=station_code(station, instrument),
        time=time,
        frames=frames,
        source=str(path),
        raw=True,
        instrument=instrument,
    )


def _decompressed(data: bytes, path: Path) -> bytes:
    """The PGM bytes of a plain, gzip or bzip2 file (told by its magic bytes)."""
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise IngestError(
                f"gzip stream is corrupt or cut short ({type(exc).__name__}: {exc})",
                path=path,
                expected="a complete .pgm.gz file",
            ) from exc
    if data[:3] == b"BZh":
        try:
            return bz2.decompress(data)
        except (EOFError, OSError, ValueError) as exc:
            raise IngestError(
                f"bzip2 stream is corrupt or cut short ({type(exc).__name__}: {exc})",
                path=path,
                expected="a complete .pgm.bz2 file",
            ) from exc
    return data


def _instrument(metas: list[dict], path: Path) -> str:
    """The instrument of a PGM file: its ``Imager unique ID``, checked against its name."""
    said = next((m[_IMAGER_KEY].strip().lower() for m in metas if m.get(_IMAGER_KEY)), None)
    named = imager_from_pgm_name(path.name)
    for imager in (said, named):
        if imager is not None and instrument_of_imager(imager) not in PGM_INSTRUMENTS:
            raise IngestError(
                f"imager {imager!r} is not one whose PGM frames oathcube reads",
                path=path,
                expected="themisNN, rego-NNN, nir-NNN or blue-NNN (THEMIS, REGO, TREx "
                "NIR, TREx Blueline)",
            )
    if said and named and instrument_of_imager(said) != instrument_of_imager(named):
        raise IngestError(
            f"file name says imager {named!r} but the frames say {said!r}",
            path=path,
            expected="name and metadata of the same instrument",
        )
    imager = said or named
    if imager is None:
        raise IngestError(
            "no imager: no 'Imager unique ID' comment and the name is not a UCalgary PGM name",
            path=path,
            expected="YYYYMMDD_HHMM_<site>_<imager>_<mode>.pgm, e.g. ..._gill_rego-652_6300.pgm",
        )
    return str(instrument_of_imager(imager))  # one of PGM_INSTRUMENTS, checked above


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
    return utc_stamp(value, f"frame {index + 1}: {_TIME_KEY!r}", path)
