"""The all-sky imagers oathcube reads, and what their UCalgary file names say.

One name per instrument, carried by every :class:`~oathcube.archive.blocks.FrameBlock`
and recorded as a station's ``instrument`` attribute:

============  ==========================  ======================================  =========
name          imager (``Imager unique     files                                   frames
              ID``, name's 4th field)
============  ==========================  ======================================  =========
``themis``    ``themisNN``                Berkeley CDF L1; UCalgary PGM           256 x 256
                                          ``YYYYMMDD_HHMM_<site>_themisNN_full``  uint16, 3 s
``rego``      ``rego-NNN``                PGM ``..._<site>_rego-NNN_6300``        512 x 512
                                          (630.0 nm)                              uint16, 3 s
``trex_nir``  ``nir-NNN``                 PGM ``..._<site>_nir-NNN_8446``         256 x 256
                                          (844.6 nm)                              uint16, 6 s
``trex_blue`` ``blue-NNN``                PGM ``..._<site>_blue-NNN_full``        uint16
                                          (427.8 nm)
``trex_rgb``  ``rgb-NN``                  HDF5 ``..._<site>_rgb-NN_full.h5``      480 x 553
                                          (nominal, stream0)                      x 3 uint8,
                                                                                  3 s
``images``    (none)                      folders of prepared PNG/JPEG frames     uint8
============  ==========================  ======================================  =========

The names follow UCalgary's data tree (``<YYYYMMDD>_<HHMM>_<site>_<imager>_<rest>``, or
``<YYYYMMDD>_<HHMMSS>_<microseconds>_<site>_<imager>_<rest>`` for files of single
exposures such as the Blueline darks), as pyucalgarysrs 1.28's test data list them:
``20180403_0600_gill_rego-652_6300.pgm.gz``, ``20220307_0600_gill_nir-216_8446.pgm.gz``,
``20220101_2329_gill_nir-216_8446_dark.pgm.gz``, ``20220308_0600_gill_blue-814_full.pgm.gz``,
``20240101_005115_825600_atha_blue-633_dark_full.pgm``,
``20210205_0600_gill_rgb-04_full.h5``.  A ``dark`` field in the name
(``..._8446_dark.pgm.gz``, ``..._dark_full.pgm``) marks dark frames: the camera with its
shutter closed, not sky (:func:`is_dark_name`).

The sizes and cadences are the nominal ones, for documentation and the synthetic files;
readers take whatever size a file holds, as pyucalgarysrs does.  A leaf of
:mod:`oathcube.archive`, like :mod:`.blocks`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import IngestError

__all__ = [
    "agreed_site",
    "utc_stamp",
    "INSTRUMENTS",
    "Instrument",
    "UCalgaryName",
    "UCALGARY_NAME_RE",
    "instrument_of_imager",
    "is_dark_name",
    "parse_ucalgary_name",
]


@dataclass(frozen=True)
class Instrument:
    """What oathcube knows of one kind of all-sky imager.

    Attributes
    ----------
    name
        The instrument's name in oathcube (``FrameBlock.instrument``, the station's
        ``instrument`` attribute).
    title
        How people call it (``THEMIS``, ``TREx NIR``; ``image-folder``), in messages.
    imager_prefix
        Start of its ``Imager unique ID`` (``themis19``, ``rego-652``); None for image
        folders.
    bands
        1 (greyscale counts) or 3 (red, green, blue).
    raw_dtype
        The counts a raw frame holds as read: ``uint16`` (PGM, CDF) or ``uint8`` (the
        TREx RGB HDF5 files hold 8 bits per band).
    shape, cadence_s, wavelength_nm
        Nominal frame size ``(y, x)``, seconds between frames, and filter wavelength;
        None where not fixed or not known.
    """

    name: str
    title: str
    imager_prefix: str | None
    bands: int = 1
    raw_dtype: str = "uint16"
    shape: tuple[int, int] | None = None
    cadence_s: float | None = None
    wavelength_nm: float | None = None

    @property
    def dtype(self) -> np.dtype:
        """:attr:`raw_dtype` as a numpy dtype."""
        return np.dtype(self.raw_dtype)


#: Every instrument by name, in the order the table above gives.
INSTRUMENTS: dict[str, Instrument] = {
    i.name: i
    for i in (
        Instrument("themis", "THEMIS", "themis", shape=(256, 256), cadence_s=3.0),
        Instrument("rego", "REGO", "rego-", shape=(512, 512), cadence_s=3.0, wavelength_nm=630.0),
        Instrument(
            "trex_nir", "TREx NIR", "nir-", shape=(256, 256), cadence_s=6.0, wavelength_nm=844.6
        ),
        Instrument("trex_blue", "TREx Blueline", "blue-", wavelength_nm=427.8),
        Instrument(
            "trex_rgb",
            "TREx RGB",
            "rgb-",
            bands=3,
            raw_dtype="uint8",
            shape=(480, 553),
            cadence_s=3.0,
        ),
        Instrument("images", "image-folder", None, raw_dtype="uint8"),
    )
}

#: ``<YYYYMMDD>_<HHMM>[_<SS...>]_<site>_<imager>[_<rest>].<pgm[.gz|.bz2]|h5>``.
UCALGARY_NAME_RE = re.compile(
    r"^(?P<date>\d{8})_(?P<time>\d{4}|\d{6}_\d{6})_(?P<site>[a-z0-9]+)_"
    r"(?P<imager>[a-z]+-?\d+)(?:_(?P<rest>[^.]*))?\.(?P<ext>pgm(?:\.gz|\.bz2)?|h5)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class UCalgaryName:
    """What a UCalgary file name says (see :func:`parse_ucalgary_name`)."""

    site: str
    imager: str
    instrument: str | None
    dark: bool
    extension: str


def instrument_of_imager(imager: str) -> str | None:
    """The instrument of an ``Imager unique ID`` (``rego-652`` -> ``rego``), or None."""
    text = imager.strip().lower()
    for inst in INSTRUMENTS.values():
        prefix = inst.imager_prefix
        if prefix is None or not text.startswith(prefix):
            continue
        tail = text[len(prefix) :]
        if tail.isdigit():  # themis19, rego-652: not "themisx" nor "rgb-full"
            return inst.name
    return None


def is_dark_name(name: str) -> bool:
    """Whether a file name marks dark frames: a ``dark`` field between underscores.

    ``20220101_2329_gill_nir-216_8446_dark.pgm.gz`` and
    ``20240101_005115_825600_atha_blue-633_dark_full.pgm`` are dark files;
    ``20220307_0600_gill_nir-216_8446.pgm.gz`` is not.
    """
    stem = Path(name).name.lower().split(".", 1)[0]
    return "dark" in stem.split("_")[1:]


def parse_ucalgary_name(name: str) -> UCalgaryName | None:
    """Site, imager, instrument and darkness of a UCalgary file name; None if not one.

    ``instrument`` is None for an imager oathcube does not read (a spectrograph, SMILE).
    """
    m = UCALGARY_NAME_RE.match(Path(name).name)
    if m is None:
        return None
    return UCalgaryName(
        site=m.group("site").lower(),
        imager=m.group("imager").lower(),
        instrument=instrument_of_imager(m.group("imager")),
        dark=is_dark_name(name),
        extension=m.group("ext").lower(),
    )


def utc_stamp(value: str, what: str, path: str | Path) -> np.datetime64:
    """A UCalgary time stamp (``2021-01-01 06:00:00.123456 UTC``) as ``datetime64[ns]``.

    Raises
    ------
    IngestError
        ``value`` is not such a stamp; ``what`` says which frame and field it was.
    """
    text = str(value).strip()
    if text.upper().endswith("UTC"):
        text = text[:-3].strip()
    try:
        return np.datetime64(text.replace(" ", "T"), "ns")
    except ValueError as exc:
        raise IngestError(
            f"{what}: cannot parse {value!r}",
            path=str(path),
            expected="YYYY-MM-DD HH:MM:SS.ffffff UTC",
        ) from exc


def agreed_site(
    said: str | None,
    named: str | None,
    path: str | Path,
    *,
    said_by: str,
    missing: str,
    expected: str,
) -> str:
    """The site a UCalgary file is of: what its metadata say, else what its name says.

    Raises
    ------
    IngestError
        The two disagree, or neither says (``missing`` says why, ``expected`` what name).
    """
    if said and named and said != named:
        raise IngestError(
            f"file name says station {named!r} but {said_by} {said!r}",
            path=str(path),
            expected="name and metadata of the same station",
        )
    site = said or named
    if not site:
        raise IngestError(f"no station: {missing}", path=str(path), expected=expected)
    return site
