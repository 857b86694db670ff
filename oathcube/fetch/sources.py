"""Where things are on the servers: URL layouts of OATH, the checkpoints and the imagers.

Pure functions of names and times; nothing here touches the network.  Each layout
gives paths *relative to a base URL*, so that the same relative path names the file
on the default server, on a mirror (``--base-url``) and in the local tree that mirrors
the server (the output folder), which is how a rerun knows what it already has.

UCalgary's data tree (https://data.phys.ucalgary.ca/sort_by_project) holds every imager
in one layout, below one base URL per instrument (:data:`UCALGARY_LAYOUTS`)::

    <base>/stream0/<YYYY>/<MM>/<DD>/<site>_<imager>/ut<HH>/
        <YYYYMMDD>_<HHMM>_<site>_<imager>_<mode>.<ext>
    <base>/<skymaps>/<site>/<site>_<YYYYMMDD>/<prefix>_skymap_<site>_<YYYYMMDD>-+_v<NN>.sav

=============  ==================  ============  ==========================
instrument     base, below the     skymap        one minute's sky file
               tree                folder
=============  ==================  ============  ==========================
``themis``     ``THEMIS/asi``      ``skymaps``   ``..._themisNN_full.pgm.gz``
``rego``       ``GO-Canada/REGO``  ``skymap``    ``..._rego-NNN_6300.pgm.gz``
``trex_nir``   ``TREx/NIR``        ``skymaps``   ``..._nir-NNN_8446.pgm.gz``
``trex_blue``  ``TREx/blueline``   ``skymaps``   ``..._blue-NNN_full.pgm.gz``
``trex_rgb``   ``TREx/RGB``        ``skymaps``   ``..._rgb-NN_full.h5``
=============  ==================  ============  ==========================

The imager's folder (``gill_rego-652``) carries its unit number, which changes when a
camera is swapped, so it is found by listing the day's folder, as for THEMIS.  Dark
files lie beside the sky files in the same hour folder (``..._6300_dark.pgm.gz``,
``..._8446_dark.pgm.gz``, ``<YYYYMMDD>_<HHMMSS>_<us>_<site>_blue-NNN_dark_full.pgm``):
the patterns here match sky files only.  Where the facts come from: the paths that
pyucalgarysrs's ``tools/build_test_data.py`` downloads its test files from
(``<data tree>/<path>/<yyyy>/<mm>/<dd>/<site>_<device>/ut<hh>/<filename>``, and its
skymaps' ``GO-Canada/REGO/skymap/atha/atha_20140718``, ``TREx/NIR/skymaps/...``), and
asilib's ``asi/rego.py`` and ``asi/trex.py`` (stream0 and skymap base URLs, the
Blueline ``skymaps/`` folder); the sites of each array are asilib's
``data/asi_locations.csv``.  UCalgary publishes no checksums of these files: each is
verified by its format (:func:`oathcube.fetch.http.verify_download`).

Aurora-FM's weights (CC-BY-4.0) are one file of the Hugging Face repository
``Jwjohnson314/Aurora-FM``: ``<base>/aurora-fm-no-finetune.tar`` below
:data:`AURORA_FM_BASE`, which answers with a redirect to Hugging Face's CDN.  Its size
and SHA-256 are pinned here (:data:`AURORA_FM_SIZE`, :data:`AURORA_FM_SHA256`): what
differs from them never gets the file's name.  Despite its name it is a PyTorch
zip-format ``state_dict``, used as it is (never unpacked).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..archive.instruments import INSTRUMENTS, is_dark_name
from ..datadir import AURORA_FM_NAME
from ..errors import OptionError
from ..sites import STATIONS, station_code
from ..times import parse_time as parse_time_ns

__all__ = [
    "OATH_BASE",
    "OATH_TARBALL",
    "OATH_SUMS",
    "CHECKPOINT_BASE",
    "CHECKPOINT_TARBALL",
    "AURORA_FM_REPO",
    "AURORA_FM_BASE",
    "AURORA_FM_FILE",
    "AURORA_FM_SIZE",
    "AURORA_FM_SHA256",
    "AURORA_FM_LICENSE",
    "BERKELEY_BASE",
    "UCALGARY_BASE",
    "UCALGARY_TREE",
    "UCALGARY_LAYOUTS",
    "ImagerLayout",
    "IMAGERS",
    "SOURCES",
    "STATIONS",
    "check_instrument",
    "check_station",
    "parse_time",
    "count_steps",
    "hours",
    "minutes",
    "berkeley_cdf",
    "ucalgary_day",
    "ucalgary_hour",
    "ucalgary_pgm_pattern",
    "ucalgary_file_pattern",
    "camera_pattern",
    "skymap_site",
    "skymap_folder_pattern",
    "skymap_file_pattern",
    "is_sky_name",
    "Wanted",
]

OATH_BASE = "http://tid.uio.no/plasma/oath"
OATH_TARBALL = "oath_v1.1_20181026.tgz"
OATH_SUMS = "SHA256SUM_v1.1"
CHECKPOINT_BASE = "http://download.tensorflow.org/models"
CHECKPOINT_TARBALL = "inception_v4_2016_09_09.tar.gz"
#: Aurora-FM's Hugging Face repository (its model card names the license).
AURORA_FM_REPO = "Jwjohnson314/Aurora-FM"
#: Where the Aurora-FM file is: ``<base>/aurora-fm-no-finetune.tar`` (a redirect to the CDN).
AURORA_FM_BASE = f"https://huggingface.co/{AURORA_FM_REPO}/resolve/main"
#: The Aurora-FM file, the same name on the server and on disk: a PyTorch zip-format
#: ``state_dict`` despite its ``.tar``, used as it is.
AURORA_FM_FILE = AURORA_FM_NAME
#: Its size in bytes: a smaller file is refused, a larger answer cut off as soon as it is.
AURORA_FM_SIZE = 45_965_389
#: Its SHA-256 (hex): nothing else gets its name.
AURORA_FM_SHA256 = "f9c97e906bee7a34f0727377f8b3194086080fa9573390db44daab4ce2c64e33"
AURORA_FM_LICENSE = "CC-BY-4.0"
BERKELEY_BASE = "http://themis.ssl.berkeley.edu/data/themis"
#: UCalgary's open data tree, every project below it.
UCALGARY_TREE = "https://data.phys.ucalgary.ca/sort_by_project"
#: UCalgary's THEMIS ASI tree: ``stream0/`` (one-minute PGMs) and ``skymaps/`` below it.
UCALGARY_BASE = f"{UCALGARY_TREE}/THEMIS/asi"
SOURCES = ("berkeley", "ucalgary")

#: REGO sites (asilib 0.30's ``data/asi_locations.csv``).
REGO_SITES = (
    "atha",
    "fsim",
    "fsmi",
    "gill",
    "kakt",
    "luck",
    "lyrn",
    "rank",
    "resu",
    "sach",
    "talo",
)
#: TREx sites, the same for NIR, Blueline and RGB (asilib 0.30's ``asi_locations.csv``).
TREX_SITES = ("atha", "fsmi", "gill", "luck", "pina", "rabb")


@dataclass(frozen=True)
class ImagerLayout:
    """One instrument's folders and names in UCalgary's data tree (see the module doc).

    Attributes
    ----------
    instrument
        Its name in oathcube (:data:`oathcube.archive.instruments.INSTRUMENTS`).
    base
        The default base URL: ``stream0/`` and the skymap folder are below it.
    skymaps
        The skymap folder's name below ``base`` (``skymap`` for REGO, else ``skymaps``).
    skymap_prefix
        First field of its skymap files' names (``rego`` in ``rego_skymap_gill_...``).
    imager
        Regular expression of its ``Imager unique ID`` (``rego-\\d+``): the folder
        ``<site>_<imager>`` and the file names carry it.
    mode
        Regular expression of what follows ``<imager>_`` in a sky file's name.
    sites
        The site codes it runs at; another code is refused before any request.
    max_bytes
        The most bytes one file (a minute) may have: a server that sends more is refused.
    stream
        The folder of raw one-minute files below ``base``.
    """

    instrument: str
    base: str
    skymaps: str
    skymap_prefix: str
    imager: str
    mode: str
    sites: tuple[str, ...]
    max_bytes: int
    stream: str = "stream0"

    @property
    def title(self) -> str:
        """How people call the instrument (``REGO``, ``TREx NIR``)."""
        return INSTRUMENTS[self.instrument].title


_PGM = r"\.pgm(?:\.gz)?"
#: Every instrument's layout in UCalgary's data tree, by oathcube's instrument name.
UCALGARY_LAYOUTS: dict[str, ImagerLayout] = {
    layout.instrument: layout
    for layout in (
        # a THEMIS minute: 20 frames of 128 kB, compressed
        ImagerLayout("themis", UCALGARY_BASE, "skymaps", "themis", r"themis\d\d",
                     "full" + _PGM, STATIONS, 32 << 20),
        # a REGO minute: 20 frames of 512 x 512 x 2 bytes (10 MB), compressed
        ImagerLayout("rego", f"{UCALGARY_TREE}/GO-Canada/REGO", "skymap", "rego", r"rego-\d+",
                     "6300" + _PGM, REGO_SITES, 64 << 20),
        ImagerLayout("trex_nir", f"{UCALGARY_TREE}/TREx/NIR", "skymaps", "nir", r"nir-\d+",
                     "8446" + _PGM, TREX_SITES, 64 << 20),
        ImagerLayout("trex_blue", f"{UCALGARY_TREE}/TREx/blueline", "skymaps", "blue",
                     r"blue-\d+", "full" + _PGM, TREX_SITES, 64 << 20),
        # a RGB minute: 20 frames of 480 x 553 x 3 bytes (16 MB), HDF5 compressed
        ImagerLayout("trex_rgb", f"{UCALGARY_TREE}/TREx/RGB", "skymaps", "rgb", r"rgb-\d+",
                     r"full\.h5", TREX_SITES, 64 << 20),
    )
}  # fmt: skip
#: The instruments a fetch takes, in the order of :data:`UCALGARY_LAYOUTS`.
IMAGERS: tuple[str, ...] = tuple(UCALGARY_LAYOUTS)


@dataclass(frozen=True)
class Wanted:
    """One file to fetch: its path relative to the base URL, and when it starts."""

    rel: str
    start: datetime


def check_instrument(instrument: str) -> ImagerLayout:
    """The layout of ``instrument`` (``themis``, ``rego``, ...); another name is refused.

    Raises
    ------
    OptionError
        ``instrument`` is not one of :data:`IMAGERS`.
    """
    layout = UCALGARY_LAYOUTS.get(str(instrument).strip().lower())
    if layout is None:
        raise OptionError(
            f"unknown instrument {instrument!r}",
            parameter="instrument",
            expected="one of " + ", ".join(IMAGERS),
        )
    return layout


def check_station(station: str, instrument: str = "themis") -> str:
    """The site code in lower case; an unknown code is refused before any request.

    ``station`` is the site (``gill``), or the cube's station of the instrument's frames
    (``gill_rego``, :func:`oathcube.sites.station_code`); the site is returned.

    Raises
    ------
    OptionError
        ``station`` is not a site of ``instrument`` (nor its station), or is the station
        of another instrument.

    Examples
    --------
    >>> check_station("GILL"), check_station("gill_rego", "rego")
    ('gill', 'gill')
    """
    layout = check_instrument(instrument)
    code = station.strip().lower()
    site, _, suffix = code.partition("_")
    if suffix and code == station_code(site, layout.instrument):
        code = site
    elif suffix in UCALGARY_LAYOUTS and suffix != layout.instrument:
        raise OptionError(
            f"station {station!r} holds {UCALGARY_LAYOUTS[suffix].title} frames, not "
            f"{layout.title}",
            parameter="station",
            expected=f'the site {site!r} with `instrument` "{suffix}"',
        )
    if code not in layout.sites:
        what = "THEMIS ASI station" if layout.instrument == "themis" else f"{layout.title} site"
        raise OptionError(
            f"unknown {what} {station!r}",
            parameter="station",
            expected="one of " + ", ".join(layout.sites),
        )
    return code


def parse_time(text: str | datetime, parameter: str) -> datetime:
    """A naive UTC :class:`~datetime.datetime` from what :func:`oathcube.times.parse_time` takes.

    The one time parser of every command (ISO text such as ``2011-01-06T17:00``,
    ``2011-01-06 17``, ``2011-01-06``; a zone is converted to UTC, none means UTC), with
    its range check; here as a ``datetime`` for the URL layouts.  ``parameter`` is the
    Python parameter it came from (``"start"``), named in the error.

    Raises
    ------
    OptionError
        ``text`` is not a time, or one that :func:`oathcube.times.parse_time` refuses.
    """
    stamp = parse_time_ns(text, parameter)
    assert stamp is not None  # only None gives None
    # datetime64[ns] -> microseconds -> datetime (file starts are whole minutes anyway)
    return stamp.astype("datetime64[us]").astype(datetime)


def _first_step(start: datetime, end: datetime, step: timedelta) -> datetime:
    """The start of the first ``step``-long file that overlaps ``[start, end)``."""
    if end <= start:
        raise OptionError(f"`end` {end:%Y-%m-%dT%H:%M:%S} is not after `start`", parameter="end")
    # Files start on whole steps (hours, minutes) from the hour.
    t = start.replace(minute=0, second=0, microsecond=0)
    return t + ((start - t) // step) * step


def count_steps(start: datetime, end: datetime, step: timedelta) -> int:
    """How many ``step``-long files overlap ``[start, end)``, without listing them.

    What a plan is checked against before it is made (a cap on planned work).
    """
    first = _first_step(start, end, step)
    return -(-(end - first) // step)  # ceil


def _steps(start: datetime, end: datetime, step: timedelta) -> Iterator[datetime]:
    """Starts of the ``step``-long files that overlap ``[start, end)``, one at a time."""
    t = _first_step(start, end, step)
    while t < end:
        yield t
        t += step


def hours(start: datetime, end: datetime) -> Iterator[datetime]:
    """The whole hours whose files overlap ``[start, end)``, generated as needed."""
    return _steps(start, end, timedelta(hours=1))


def minutes(start: datetime, end: datetime) -> Iterator[datetime]:
    """The whole minutes whose files overlap ``[start, end)``, generated as needed."""
    return _steps(start, end, timedelta(minutes=1))


def berkeley_cdf(site: str, hour: datetime) -> str:
    """``thg/l1/asi/<site>/<YYYY>/<MM>/thg_l1_asf_<site>_<YYYYMMDDHH>_v01.cdf``."""
    return f"thg/l1/asi/{site}/{hour:%Y/%m}/thg_l1_asf_{site}_{hour:%Y%m%d%H}_v01.cdf"


def ucalgary_day(day: datetime, instrument: str = "themis") -> str:
    """The day's folder of one-minute files, listed to find the camera folders."""
    return f"{check_instrument(instrument).stream}/{day:%Y/%m/%d}/"


def ucalgary_hour(day: datetime, camera: str, instrument: str = "themis") -> str:
    """``stream0/<YYYY>/<MM>/<DD>/<site>_<imager>/ut<HH>/``: one hour of one camera."""
    return f"{ucalgary_day(day, instrument)}{camera}/ut{day:%H}/"


def camera_pattern(site: str, instrument: str = "themis") -> re.Pattern[str]:
    """Names of a site's camera folders in a day's listing (``gill_themis19``,
    ``gill_rego-652``): ``<site>_<imager>``, the imager's unit number included."""
    return re.compile(rf"{re.escape(site)}_{check_instrument(instrument).imager}")


def ucalgary_file_pattern(site: str, instrument: str = "themis") -> re.Pattern[str]:
    """One-minute sky file names; group 1 is ``YYYYMMDD_HHMM``, group 2 the imager.

    ``20140310_0600_gill_themis19_full.pgm.gz``, ``20180403_0600_gill_rego-652_6300.pgm.gz``,
    ``20210205_0600_gill_rgb-04_full.h5`` (PGMs gzipped or plain).  Dark files never
    match (:func:`is_sky_name`).
    """
    layout = check_instrument(instrument)
    return re.compile(rf"(\d{{8}}_\d{{4}})_{re.escape(site)}_({layout.imager})_{layout.mode}")


def ucalgary_pgm_pattern(site: str) -> re.Pattern[str]:
    """THEMIS one-minute PGM names; group 1 is ``YYYYMMDD_HHMM`` (``.pgm.gz`` or ``.pgm``)."""
    return ucalgary_file_pattern(site, "themis")


def is_sky_name(name: str, pattern: re.Pattern[str]) -> re.Match[str] | None:
    """``pattern``'s match of a sky file's name; None for another name or a dark file."""
    m = pattern.fullmatch(name)
    return None if m is None or is_dark_name(name) else m


def skymap_site(site: str, instrument: str = "themis") -> str:
    """The folder that lists a site's skymaps: ``skymaps/<site>/`` (REGO: ``skymap/``)."""
    return f"{check_instrument(instrument).skymaps}/{site}/"


def skymap_folder_pattern(site: str) -> re.Pattern[str]:
    """``<site>_<YYYYMMDD>`` folders; group 1 is the date from which a skymap is valid."""
    return re.compile(rf"{re.escape(site)}_(\d{{8}})")


def skymap_file_pattern(site: str, date: str, instrument: str = "themis") -> re.Pattern[str]:
    """``<prefix>_skymap_<site>_<YYYYMMDD>-+_vNN.sav`` (``themis``, ``rego``, ``nir``,
    ``blue``, ``rgb``); group 1 is the version number."""
    prefix = check_instrument(instrument).skymap_prefix
    return re.compile(rf"{prefix}_skymap_{re.escape(site)}_{date}-\+_v(\d+)\.sav")
