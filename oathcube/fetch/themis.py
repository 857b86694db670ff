"""Raw THEMIS ASI files of one station: Berkeley CDF L1 hours, UCalgary PGM minutes, skymaps.

The plan (which hours or minutes, which camera folder, which skymap) is made as the
downloads go, never held whole: a Berkeley hour's path is a function of the hour
(:mod:`oathcube.fetch.sources`), a UCalgary minute's is found by listing its day's
camera folders one hour at a time, and the skymap valid at the start is the newest one
whose folder's date is not after it.  A range of more than ``max_files`` files is
refused before any request.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from ..datadir import data_dir
from ..errors import FetchError, OptionError
from . import sources as src
from .common import make_fetcher, out_dir
from .http import Fetcher, check_numbers

__all__ = [
    "ThemisRequest",
    "ThemisFetch",
    "fetch_themis",
    "check_plan",
    "MAX_FILES",
]

log = logging.getLogger(__name__)

#: The most THEMIS files (hours or minutes) one fetch plans unless told otherwise: more
#: than a year of Berkeley hours, a week of UCalgary minutes.
MAX_FILES = 10_000

# The most bytes each kind of file may have: a server that sends more is refused.
_MAX_CDF = 1 << 30  # one hour: up to 1,200 frames of 128 kB, compressed
_MAX_PGM = 32 << 20  # one minute: 20 frames of 128 kB
_MAX_SKYMAP = 128 << 20


@dataclass
class ThemisFetch:
    """What :func:`fetch_themis` found.

    Attributes
    ----------
    station
        The station code, in lower case.
    source
        ``berkeley`` or ``ucalgary``.
    root
        The local tree (it mirrors the server's layout).
    files
        The station's files for the asked time range, in time order, all complete.
    downloaded
        How many of ``files`` this run downloaded (the others were there already).
    missing
        Start times of hours (CDF) or minutes (PGM) that no server has.
    skymap
        The skymap valid at the start time, when asked for.
    step
        One file's span: an hour (CDF) or a minute (PGM).

    Examples
    --------
    >>> got = ThemisFetch(
    ...     "gill", "ucalgary", Path("themis"), step=timedelta(minutes=1),
    ...     missing=[datetime(2014, 3, 10, 6, m) for m in (1, 2, 3, 4)],
    ... )
    >>> got.missing_text()
    '2014-03-10 06:01 to 2014-03-10 06:04 (4 minutes)'
    """

    station: str
    source: str
    root: Path
    files: list[Path] = field(default_factory=list)
    downloaded: int = 0
    missing: list[datetime] = field(default_factory=list)
    skymap: Path | None = None
    step: timedelta = timedelta(hours=1)

    def missing_text(self) -> str:
        """The missing hours or minutes as ranges, e.g. ``2014-03-10 06:01 to 06:04 (4)``."""
        runs: list[list[datetime]] = []
        for t in sorted(self.missing):
            if runs and t - runs[-1][-1] == self.step:
                runs[-1].append(t)
            else:
                runs.append([t])
        unit = "hour" if self.step == timedelta(hours=1) else "minute"
        parts = []
        for run in runs:
            text = f"{run[0]:%Y-%m-%d %H:%M}"
            if len(run) > 1:
                text += f" to {run[-1]:%Y-%m-%d %H:%M}"
            parts.append(f"{text} ({len(run)} {unit}{'s' if len(run) > 1 else ''})")
        return ", ".join(parts)


def fetch_themis(
    station: str,
    *,
    start: str | datetime,
    end: str | datetime,
    source: str = "berkeley",
    out: str | os.PathLike[str] | None = None,
    base_urls: Sequence[str] | None = None,
    skymap: bool = False,
    skymap_base_urls: Sequence[str] | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    workers: int = 4,
    max_files: int = MAX_FILES,
    progress: bool = False,
) -> ThemisFetch:
    """Fetch one station's raw THEMIS ASI files that overlap ``[start, end)``.

    Parameters
    ----------
    station
        Station code (``gako``).
    start, end
        UTC times; every hour (``berkeley``, CDF L1) or minute (``ucalgary``, PGM)
        whose file overlaps the range is fetched.
    source
        ``berkeley``: ``thg/l1/asi/<site>/<YYYY>/<MM>/thg_l1_asf_<site>_<YYYYMMDDHH>_v01.cdf``
        below ``http://themis.ssl.berkeley.edu/data/themis`` (the UCLA mirror serves the
        same tree: give it as another ``base_urls``).  ``ucalgary``:
        ``stream0/<YYYY>/<MM>/<DD>/<site>_themisNN/ut<HH>/<YYYYMMDD>_<HHMM>_<site>_themisNN
        _full.pgm.gz`` below ``https://data.phys.ucalgary.ca/sort_by_project/THEMIS/asi``;
        the camera folder is found by listing the day's folder.
    out
        The local tree (default ``themis/<source>`` in the data folder).
    base_urls
        Servers to try in order, in place of the default.
    skymap
        Also fetch the newest UCalgary skymap valid at ``start``
        (``skymaps/<site>/<site>_<YYYYMMDD>/themis_skymap_<site>_<YYYYMMDD>-+_vNN.sav``).
    skymap_base_urls
        Where skymaps are (default: ``base_urls`` for ``ucalgary``, else UCalgary's).
    timeout, retries, workers
        See :class:`oathcube.fetch.http.Fetcher`.
    max_files
        The most hours or minutes the range may span (default :data:`MAX_FILES`): a
        longer range (a typo in a year, say) is refused before any request, as is a
        plan of more files than anyone would fetch by accident.
    progress
        Show a byte counter on stderr.

    Returns
    -------
    ThemisFetch
        The files (complete, in time order) and the hours or minutes no server has.

    Raises
    ------
    OptionError
        An unknown station or source, a time that is not one, an empty range, a range
        of more than ``max_files`` files, or a timeout, retry or worker count out of range.
    FetchError
        No server reachable, or a server sent something refused; or nothing at all
        exists for the station in the range.

    Examples
    --------
    >>> got = fetch_themis(
    ...     "gako", start="2011-01-06T17:00", end="2011-01-06T20:00"
    ... )  # doctest: +SKIP
    >>> len(got.files), got.missing_text()  # doctest: +SKIP
    (3, '')
    """
    site, t0, t1, step = _checked(station, start, end, source, timeout, retries, workers, max_files)
    default = src.BERKELEY_BASE if source == "berkeley" else src.UCALGARY_BASE
    root = out_dir(out, data_dir() / "themis" / source)
    hint = (
        "download the files yourself and pass them to `oathcube ingest FILES`, or give "
        "`base_urls` of a mirror"
    )
    fetcher = make_fetcher(
        base_urls,
        default,
        hint,
        timeout=timeout,
        retries=retries,
        workers=workers,
        progress=progress,
    )
    sky_fetcher = None
    if skymap:
        sky_default = (
            fetcher.bases if source == "ucalgary" and not skymap_base_urls else skymap_base_urls
        )
        sky_fetcher = make_fetcher(
            sky_default,
            src.UCALGARY_BASE,
            hint,
            timeout=timeout,
            retries=retries,
            workers=1,
            progress=False,
            parameter="skymap_base_urls",
        )
    result = ThemisFetch(site, source, root, step=step)
    label = f"{site} {source}"
    try:
        wanted: Iterator[src.Wanted]
        if source == "berkeley":
            wanted = (src.Wanted(src.berkeley_cdf(site, h), h) for h in src.hours(t0, t1))
            max_bytes = _MAX_CDF
        else:
            wanted = _ucalgary_wanted(fetcher, root, site, t0, t1, result.missing)
            max_bytes = _MAX_PGM
        # The plan is streamed: each wanted file's start is queued as its path is handed
        # to the downloads, which answer in the same order, so no list of the whole
        # range is ever built.
        starts: deque[datetime] = deque()

        def rels() -> Iterator[str]:
            for want in wanted:
                starts.append(want.start)
                yield want.rel

        for got in fetcher.download_many(rels(), root, max_bytes=max_bytes, label=label):
            start_of = starts.popleft()
            if got.path is None:
                result.missing.append(start_of)
            else:
                result.files.append(got.path)
                result.downloaded += got.downloaded
        if sky_fetcher is not None:
            result.skymap = _fetch_skymap(sky_fetcher, root, site, t0)
    finally:
        fetcher.close()
        if sky_fetcher is not None:
            sky_fetcher.close()
    result.missing.sort()
    if result.missing:
        log.warning("%s: not on any server: %s", label, result.missing_text())
    if not result.files:
        raise FetchError(
            f"no {source} file of station {site} between {t0:%Y-%m-%dT%H:%M} and "
            f"{t1:%Y-%m-%dT%H:%M} on {', '.join(fetcher.bases)}",
            expected="a station and time range with data",
        )
    log.info(
        "%s: %d files (%d downloaded) in %s", label, len(result.files), result.downloaded, root
    )
    return result


@dataclass(frozen=True)
class ThemisRequest:
    """One station's raw files for a time range, to fetch where missing and then ingest.

    What :func:`oathcube.ingest` takes as ``fetch=``: the arguments of
    :func:`fetch_themis`, checked when made (station, times, numbers), so that a typo
    fails before the cube is opened and before any request; :meth:`sources` fetches.

    Examples
    --------
    >>> ThemisRequest("gako", start="2011-03-10T05:00", end="2011-03-10T06:00").station
    'gako'
    >>> import oathcube
    >>> hour = ThemisRequest("gako", start="2011-03-10T05", end="2011-03-10T06")
    >>> oathcube.ingest([], "themis.zarr", fetch=hour)  # doctest: +SKIP
    """

    station: str
    _: KW_ONLY
    start: str | datetime
    end: str | datetime
    source: str = "berkeley"
    out: str | os.PathLike[str] | None = None
    base_urls: Sequence[str] | None = None
    skymap: bool = False
    skymap_base_urls: Sequence[str] | None = None
    timeout: float = 30.0
    retries: int = 3
    workers: int = 4
    max_files: int = MAX_FILES

    def __post_init__(self) -> None:
        site, *_ = _checked(
            self.station,
            self.start,
            self.end,
            self.source,
            self.timeout,
            self.retries,
            self.workers,
            self.max_files,
        )
        object.__setattr__(self, "station", site)

    def sources(self, *, progress: bool = False) -> list[Path]:
        """Fetch what is missing; the local files to ingest.

        What ``oathcube ingest --station S --start T0 --end T1`` does before it
        ingests: :func:`fetch_themis`, then the station's complete CDF or PGM files in
        time order, followed by the skymap when one was asked for.  Files already in
        ``out`` are not asked for again; hours or minutes that no server has are
        logged as a warning and left out.

        Raises
        ------
        FetchError
            As :func:`fetch_themis` does; in particular when no file at all exists for
            the station in the range.

        Examples
        --------
        >>> hour = ThemisRequest("gako", start="2011-03-10T05:00", end="2011-03-10T06:00")
        >>> paths = hour.sources()  # doctest: +SKIP
        """
        got = fetch_themis(
            self.station,
            start=self.start,
            end=self.end,
            source=self.source,
            out=self.out,
            base_urls=self.base_urls,
            skymap=self.skymap,
            skymap_base_urls=self.skymap_base_urls,
            timeout=self.timeout,
            retries=self.retries,
            workers=self.workers,
            max_files=self.max_files,
            progress=progress,
        )
        return [*got.files, *([got.skymap] if got.skymap is not None else [])]


def _checked(
    station: str,
    start: str | datetime,
    end: str | datetime,
    source: str,
    timeout: float,
    retries: int,
    workers: int,
    max_files: int,
) -> tuple[str, datetime, datetime, timedelta]:
    """Every option of a THEMIS fetch checked, before any request: site, times, one step."""
    site = src.check_station(station)
    t0 = src.parse_time(start, "start")
    t1 = src.parse_time(end, "end")
    if source not in src.SOURCES:
        raise OptionError(
            f"unknown source {source!r}", parameter="source", expected="berkeley or ucalgary"
        )
    check_numbers(timeout, retries, workers)
    step = timedelta(hours=1) if source == "berkeley" else timedelta(minutes=1)
    check_plan(src.count_steps(t0, t1, step), max_files, step, t0, t1)
    return site, t0, t1, step


def check_plan(n: int, max_files: int, step: timedelta, t0: datetime, t1: datetime) -> None:
    """Refuse a plan of more than ``max_files`` files before it is made.

    Parameters
    ----------
    n
        How many files (hours or minutes) the range ``[t0, t1)`` spans.
    max_files
        The most files allowed.
    step
        One file's span: an hour or a minute (named in the message).
    t0, t1
        The range, named in the message.

    Raises
    ------
    OptionError
        ``max_files`` is not positive, or ``n`` is above it; the message says how to
        raise the cap.

    Examples
    --------
    >>> t0, t1 = datetime(2011, 1, 6), datetime(2011, 1, 7)
    >>> check_plan(24, MAX_FILES, timedelta(hours=1), t0, t1)  # within the cap: nothing
    >>> try:
    ...     check_plan(24, 10, timedelta(hours=1), t0, t1)
    ... except OptionError as err:
    ...     print(err.message[:56])
    2011-01-06T00:00 to 2011-01-07T00:00 spans 24 hour files
    """
    if max_files < 1:
        raise OptionError(f"{max_files}", parameter="max_files", expected="1 or more files")
    if n > max_files:
        unit = "hour" if step == timedelta(hours=1) else "minute"
        raise OptionError(
            f"{t0:%Y-%m-%dT%H:%M} to {t1:%Y-%m-%dT%H:%M} spans {n:,} {unit} files, more "
            f"than the {max_files:,} planned at most; check `start`/`end`, or raise "
            f"`max_files` to {n} (`oathcube fetch themis --max-files {n}`)",
            parameter="end",
        )


def _ucalgary_wanted(
    fetcher: Fetcher,
    root: Path,
    site: str,
    t0: datetime,
    t1: datetime,
    missing: list[datetime],
) -> Iterator[src.Wanted]:
    """The PGM minutes to fetch, hour by hour in time order (found by listing folders).

    Minutes that no server has are appended to ``missing``.  Minutes already in the
    local tree need no request at all: only hours with a minute still missing locally
    are listed.  One hour is planned at a time, so that a long range costs no memory
    before its first request.
    """
    pattern = src.ucalgary_pgm_pattern(site)
    cameras = src.camera_pattern(site)
    day_cameras: tuple[datetime, list[str]] | None = None  # the current day's cameras
    minutes = src.minutes(t0, t1)
    for hour, group in itertools.groupby(minutes, key=lambda m: m.replace(minute=0)):
        wanted = list(group)  # at most 60
        found: dict[datetime, str] = {}
        day_dir = root / src.ucalgary_day(hour)
        for path in sorted(day_dir.glob(f"{site}_themis[0-9][0-9]/ut{hour:%H}/*")):
            m = pattern.fullmatch(path.name)
            if m:
                t = datetime.strptime(m.group(1), "%Y%m%d_%H%M")
                if t in wanted:
                    found[t] = path.relative_to(root).as_posix()
        if len(found) < len(wanted):
            day = hour.replace(hour=0)
            if day_cameras is None or day_cameras[0] != day:
                names = fetcher.listing(src.ucalgary_day(day)) or []
                day_cameras = (day, [n for n in names if cameras.fullmatch(n)])
                if not day_cameras[1]:
                    log.warning("no %s camera folder in %s", site, src.ucalgary_day(day))
            for camera in day_cameras[1]:
                folder = src.ucalgary_hour(hour, camera)
                for name in fetcher.listing(folder) or []:
                    m = pattern.fullmatch(name)
                    if not m or camera not in name:
                        continue
                    t = datetime.strptime(m.group(1), "%Y%m%d_%H%M")
                    if t in wanted and t not in found:
                        found[t] = folder + name
        missing.extend(t for t in wanted if t not in found)
        for t in sorted(found):
            yield src.Wanted(found[t], t)


def _fetch_skymap(fetcher: Fetcher, root: Path, site: str, t0: datetime) -> Path:
    """The newest skymap of ``site`` whose validity starts on or before ``t0``'s day."""
    folders = fetcher.listing(src.skymap_site(site))
    pattern = src.skymap_folder_pattern(site)
    dated = sorted(
        (m.group(1), name)
        for name in folders or []
        if (m := pattern.fullmatch(name)) and m.group(1) <= f"{t0:%Y%m%d}"
    )
    if not dated:
        raise FetchError(
            f"no skymap of {site} valid at {t0:%Y-%m-%d}",
            path=f"{fetcher.bases[0]}{src.skymap_site(site)}",
            expected=f"folders {site}_YYYYMMDD",
        )
    date, folder = dated[-1]
    rel_folder = f"{src.skymap_site(site)}{folder}/"
    file_pattern = src.skymap_file_pattern(site, date)
    files = sorted(
        (int(m.group(1)), name)
        for name in fetcher.listing(rel_folder) or []
        if (m := file_pattern.fullmatch(name))
    )
    if not files:
        raise FetchError(
            "no skymap file in the folder",
            path=f"{fetcher.bases[0]}{rel_folder}",
            expected=f"themis_skymap_{site}_{date}-+_vNN.sav",
        )
    got = fetcher.download(rel_folder + files[-1][1], root, max_bytes=_MAX_SKYMAP)
    if got.path is None:
        raise FetchError("listed but not there", path=f"{fetcher.bases[0]}{rel_folder}")
    return got.path
