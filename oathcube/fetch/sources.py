"""Where things are on the servers: URL layouts of OATH, the checkpoint and THEMIS ASI.

Pure functions of names and times; nothing here touches the network.  Each layout
gives paths *relative to a base URL*, so that the same relative path names the file
on the default server, on a mirror (``--base-url``) and in the local tree that mirrors
the server (the output folder), which is how a rerun knows what it already has.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..errors import OptionError
from ..sites import STATIONS
from ..times import parse_time as parse_time_ns

__all__ = [
    "OATH_BASE",
    "OATH_TARBALL",
    "OATH_SUMS",
    "CHECKPOINT_BASE",
    "CHECKPOINT_TARBALL",
    "BERKELEY_BASE",
    "UCALGARY_BASE",
    "SOURCES",
    "STATIONS",
    "check_station",
    "parse_time",
    "count_steps",
    "hours",
    "minutes",
    "berkeley_cdf",
    "ucalgary_day",
    "ucalgary_hour",
    "ucalgary_pgm_pattern",
    "camera_pattern",
    "skymap_site",
    "skymap_folder_pattern",
    "skymap_file_pattern",
    "Wanted",
]

OATH_BASE = "http://tid.uio.no/plasma/oath"
OATH_TARBALL = "oath_v1.1_20181026.tgz"
OATH_SUMS = "SHA256SUM_v1.1"
CHECKPOINT_BASE = "http://download.tensorflow.org/models"
CHECKPOINT_TARBALL = "inception_v4_2016_09_09.tar.gz"
BERKELEY_BASE = "http://themis.ssl.berkeley.edu/data/themis"
#: UCalgary's THEMIS ASI tree: ``stream0/`` (one-minute PGMs) and ``skymaps/`` below it.
UCALGARY_BASE = "https://data.phys.ucalgary.ca/sort_by_project/THEMIS/asi"
SOURCES = ("berkeley", "ucalgary")


@dataclass(frozen=True)
class Wanted:
    """One file to fetch: its path relative to the base URL, and when it starts."""

    rel: str
    start: datetime


def check_station(station: str) -> str:
    """The station code in lower case; an unknown code is refused before any request."""
    code = station.strip().lower()
    if code not in STATIONS:
        raise OptionError(
            f"unknown THEMIS ASI station {station!r}",
            parameter="station",
            expected="one of " + ", ".join(STATIONS),
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


def ucalgary_day(day: datetime) -> str:
    """The day's folder of one-minute PGMs, listed to find the camera folders."""
    return f"stream0/{day:%Y/%m/%d}/"


def ucalgary_hour(day: datetime, camera: str) -> str:
    """``stream0/<YYYY>/<MM>/<DD>/<site>_themisNN/ut<HH>/``: one hour of one camera."""
    return f"stream0/{day:%Y/%m/%d}/{camera}/ut{day:%H}/"


def camera_pattern(site: str) -> re.Pattern[str]:
    """Names of a site's camera folders in a day's listing (``gill_themis19``)."""
    return re.compile(rf"{re.escape(site)}_themis\d\d")


def ucalgary_pgm_pattern(site: str) -> re.Pattern[str]:
    """One-minute PGM names; group 1 is ``YYYYMMDD_HHMM`` (``.pgm.gz`` or plain ``.pgm``)."""
    return re.compile(rf"(\d{{8}}_\d{{4}})_{re.escape(site)}_themis\d\d_full\.pgm(\.gz)?")


def skymap_site(site: str) -> str:
    """The folder that lists a site's skymaps: ``skymaps/<site>/``."""
    return f"skymaps/{site}/"


def skymap_folder_pattern(site: str) -> re.Pattern[str]:
    """``<site>_<YYYYMMDD>`` folders; group 1 is the date from which a skymap is valid."""
    return re.compile(rf"{re.escape(site)}_(\d{{8}})")


def skymap_file_pattern(site: str, date: str) -> re.Pattern[str]:
    """``themis_skymap_<site>_<YYYYMMDD>-+_vNN.sav``; group 1 is the version number."""
    return re.compile(rf"themis_skymap_{re.escape(site)}_{date}-\+_v(\d+)\.sav")
