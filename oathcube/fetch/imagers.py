"""Raw files of one all-sky imager at one site: THEMIS (Berkeley CDF hours or UCalgary
PGM minutes), REGO, TREx NIR, Blueline and RGB (UCalgary minutes), and their skymaps.

The plan (which hours or minutes, which camera folder, which skymap) is made as the
downloads go, never held whole: a Berkeley hour's path is a function of the hour
(:mod:`oathcube.fetch.sources`), a UCalgary minute's is found by listing its day's
camera folders one hour at a time (the folder ``<site>_<imager>`` carries the imager's
unit number), and the skymap valid at the start is the newest one whose folder's date
is not after it.  Dark files beside the sky files are never fetched.  A range of more
than ``max_files`` files is refused before any request.

:func:`fetch_asi`, :class:`AsiRequest` and :class:`AsiFetch` are also known by their
first names, :func:`fetch_themis` and :class:`ThemisFetch`
(the same objects): with ``instrument="themis"`` (the default) they do what they did.
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
from ..sites import station_code
from . import sources as src
from .common import make_fetcher, out_dir
from .http import Fetcher, check_numbers

__all__ = [
    "AsiRequest",
    "AsiFetch",
    "fetch_asi",
    "ThemisFetch",
    "fetch_themis",
    "check_plan",
    "MAX_FILES",
]

log = logging.getLogger(__name__)

#: The most files (hours or minutes) one fetch plans unless told otherwise: more than a
#: year of Berkeley hours, a week of UCalgary minutes.
MAX_FILES = 10_000

# The most bytes each kind of file may have: a server that sends more is refused.
_MAX_CDF = 1 << 30  # one hour: up to 1,200 frames of 128 kB, compressed
_MAX_SKYMAP = 128 << 20
_HOUR = timedelta(hours=1)
_MINUTE = timedelta(minutes=1)


@dataclass
class AsiFetch:
    """What :func:`fetch_asi` found (also known as ``ThemisFetch``).

    Attributes
    ----------
    station
        The site code, in lower case (``gill``).
    source
        ``berkeley`` or ``ucalgary``.
    root
        The local tree (it mirrors the server's layout).
    files
        The station's files for the asked time range, in time order, all complete.
    downloaded
        How many of ``files`` this run downloaded (the others were there already).
    missing
        Start times of hours (CDF) or minutes (PGM, HDF5) that no server has.
    skymap
        The skymap valid at the start time, when asked for.
    step
        One file's span: an hour (CDF) or a minute (UCalgary).
    instrument
        ``themis``, ``rego``, ``trex_nir``, ``trex_blue`` or ``trex_rgb``.

    Examples
    --------
    >>> got = AsiFetch(
    ...     "gill", "ucalgary", Path("themis"), step=timedelta(minutes=1),
    ...     missing=[datetime(2014, 3, 10, 6, m) for m in (1, 2, 3, 4)],
    ... )
    >>> got.missing_text()
    '2014-03-10 06:01 to 2014-03-10 06:04 (4 minutes)'
    >>> AsiFetch("gill", "ucalgary", Path("rego"), instrument="rego").code
    'gill_rego'
    """

    station: str
    source: str
    root: Path
    files: list[Path] = field(default_factory=list)
    downloaded: int = 0
    missing: list[datetime] = field(default_factory=list)
    skymap: Path | None = None
    step: timedelta = _HOUR
    instrument: str = "themis"

    @property
    def code(self) -> str:
        """The cube's station these frames go to: ``gill`` (THEMIS), ``gill_rego``."""
        return station_code(self.station, self.instrument)

    def missing_text(self) -> str:
        """The missing hours or minutes as ranges, e.g. ``2014-03-10 06:01 to 06:04 (4)``."""
        runs: list[list[datetime]] = []
        for t in sorted(self.missing):
            if runs and t - runs[-1][-1] == self.step:
                runs[-1].append(t)
            else:
                runs.append([t])
        unit = "hour" if self.step == _HOUR else "minute"
        parts = []
        for run in runs:
            text = f"{run[0]:%Y-%m-%d %H:%M}"
            if len(run) > 1:
                text += f" to {run[-1]:%Y-%m-%d %H:%M}"
            parts.append(f"{text} ({len(run)} {unit}{'s' if len(run) > 1 else ''})")
        return ", ".join(parts)


def fetch_asi(
    station: str,
    *,
    start: str | datetime,
    end: str | datetime,
    instrument: str = "themis",
    source: str | None = None,
    out: str | os.PathLike[str] | None = None,
    base_urls: Sequence[str] | None = None,
    skymap: bool = False,
    skymap_base_urls: Sequence[str] | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    workers: int = 4,
    max_files: int = MAX_FILES,
    progress: bool = False,
) -> AsiFetch:
    """Fetch one imager's raw files at one site that overlap ``[start, end)``.

    Also known as ``fetch_themis`` (the same function).

    Parameters
    ----------
    station
        Site code (``gako``, ``gill``); ``gill_rego`` (the cube's station of the
        instrument's frames) is taken too.
    start, end
        UTC times; every hour (``berkeley``, CDF L1) or minute (``ucalgary``) whose file
        overlaps the range is fetched.
    instrument
        ``themis`` (default), ``rego``, ``trex_nir``, ``trex_blue`` or ``trex_rgb``
        (:data:`oathcube.fetch.sources.UCALGARY_LAYOUTS`).
    source
        ``berkeley``: THEMIS only (the default for it),
        ``thg/l1/asi/<site>/<YYYY>/<MM>/thg_l1_asf_<site>_<YYYYMMDDHH>_v01.cdf`` below
        ``http://themis.ssl.berkeley.edu/data/themis`` (the UCLA mirror serves the same
        tree: give it as another ``base_urls``).  ``ucalgary`` (the default, and the only
        source, of the other instruments):
        ``stream0/<YYYY>/<MM>/<DD>/<site>_<imager>/ut<HH>/<YYYYMMDD>_<HHMM>_<site>_<imager>
        _<mode>.pgm.gz`` (RGB: ``..._full.h5``) below the instrument's base URL
        (``https://data.phys.ucalgary.ca/sort_by_project/THEMIS/asi``, ``.../GO-Canada/REGO``,
        ``.../TREx/NIR``, ``.../TREx/blueline``, ``.../TREx/RGB``); the camera folder
        (``gill_themis19``, ``gill_rego-652``) is found by listing the day's folder, and
        dark files in it are not fetched.
    out
        The local tree (default ``themis/<source>`` in the data folder; for the other
        instruments ``<instrument>/ucalgary``).
    base_urls
        Servers to try in order, in place of the default.
    skymap
        Also fetch the newest UCalgary skymap valid at ``start``
        (``skymaps/<site>/<site>_<YYYYMMDD>/<prefix>_skymap_<site>_<YYYYMMDD>-+_vNN.sav``,
        prefix ``themis``, ``nir``, ``blue`` or ``rgb``; REGO's below ``skymap/`` with
        prefix ``rego``).
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
    AsiFetch
        The files (complete, in time order) and the hours or minutes no server has.

    Raises
    ------
    OptionError
        An unknown instrument, station or source (``berkeley`` for an instrument other
        than THEMIS), a time that is not one, an empty range, a range of more than
        ``max_files`` files, or a timeout, retry or worker count out of range.
    FetchError
        No server reachable, or a server sent something refused; or nothing at all
        exists for the station in the range.

    Examples
    --------
    >>> got = fetch_asi(
    ...     "gako", start="2011-01-06T17:00", end="2011-01-06T20:00"
    ... )  # doctest: +SKIP
    >>> len(got.files), got.missing_text()  # doctest: +SKIP
    (3, '')
    >>> rego = fetch_asi(
    ...     "gill", instrument="rego", start="2018-04-03T06:00", end="2018-04-03T06:10"
    ... )  # doctest: +SKIP
    >>> rego.code, len(rego.files)  # doctest: +SKIP
    ('gill_rego', 10)
    """
    plan = _checked(station, start, end, instrument, source, timeout, retries, workers, max_files)
    layout, site, t0, t1 = plan.layout, plan.site, plan.t0, plan.t1
    source = plan.source
    default = src.BERKELEY_BASE if source == "berkeley" else layout.base
    folder = ("themis", source) if layout.instrument == "themis" else (layout.instrument, source)
    root = out_dir(out, data_dir().joinpath(*folder))
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
            layout.base,
            hint,
            timeout=timeout,
            retries=retries,
            workers=1,
            progress=False,
            parameter="skymap_base_urls",
        )
    result = AsiFetch(site, source, root, step=plan.step, instrument=layout.instrument)
    label = f"{site} {source}" if layout.instrument == "themis" else f"{result.code} {source}"
    try:
        wanted: Iterator[src.Wanted]
        if source == "berkeley":
            wanted = (src.Wanted(src.berkeley_cdf(site, h), h) for h in src.hours(t0, t1))
            max_bytes = _MAX_CDF
        else:
            wanted = _ucalgary_wanted(fetcher, root, site, t0, t1, result.missing, layout)
            max_bytes = layout.max_bytes
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
            result.skymap = _fetch_skymap(sky_fetcher, root, site, t0, layout.instrument)
    finally:
        fetcher.close()
        if sky_fetcher is not None:
            sky_fetcher.close()
    result.missing.sort()
    if result.missing:
        log.warning("%s: not on any server: %s", label, result.missing_text())
    if not result.files:
        what = source if layout.instrument == "themis" else f"{source} {layout.title}"
        raise FetchError(
            f"no {what} file of station {site} between {t0:%Y-%m-%dT%H:%M} and "
            f"{t1:%Y-%m-%dT%H:%M} on {', '.join(fetcher.bases)}",
            expected="a station and time range with data",
        )
    log.info(
        "%s: %d files (%d downloaded) in %s", label, len(result.files), result.downloaded, root
    )
    return result


@dataclass(frozen=True)
class AsiRequest:
    """One imager's raw files at one site for a time range, to fetch where missing and
    then ingest.

    What :func:`oathcube.ingest` takes as ``fetch=``: the arguments of
    :func:`fetch_asi`, checked when made (instrument, station, source, times, numbers),
    so that a typo fails before the cube is opened and before any request;
    :meth:`sources` fetches.  ``station`` becomes the site code and ``source`` the one
    used (``berkeley`` for THEMIS unless told, ``ucalgary`` for the others).

    Examples
    --------
    >>> AsiRequest("gako", start="2011-03-10T05:00", end="2011-03-10T06:00").station
    'gako'
    >>> rego = AsiRequest("gill", instrument="rego", start="2018-04-03T06", end="2018-04-03T07")
    >>> rego.source, rego.code
    ('ucalgary', 'gill_rego')
    >>> import oathcube
    >>> oathcube.ingest([], "rego.zarr", fetch=rego)  # doctest: +SKIP
    """

    station: str
    _: KW_ONLY
    start: str | datetime
    end: str | datetime
    instrument: str = "themis"
    source: str | None = None
    out: str | os.PathLike[str] | None = None
    base_urls: Sequence[str] | None = None
    skymap: bool = False
    skymap_base_urls: Sequence[str] | None = None
    timeout: float = 30.0
    retries: int = 3
    workers: int = 4
    max_files: int = MAX_FILES

    def __post_init__(self) -> None:
        plan = _checked(
            self.station,
            self.start,
            self.end,
            self.instrument,
            self.source,
            self.timeout,
            self.retries,
            self.workers,
            self.max_files,
        )
        object.__setattr__(self, "station", plan.site)
        object.__setattr__(self, "instrument", plan.layout.instrument)
        object.__setattr__(self, "source", plan.source)

    @property
    def code(self) -> str:
        """The cube's station the fetched frames go to: ``gako``, ``gill_rego``."""
        return station_code(self.station, self.instrument)

    def sources(self, *, progress: bool = False) -> list[Path]:
        """Fetch what is missing; the local files to ingest.

        What ``oathcube ingest --station S --start T0 --end T1`` (with ``--instrument``)
        does before it ingests: :func:`fetch_asi`, then the station's complete files in
        time order, followed by the skymap when one was asked for.  Files already in
        ``out`` are not asked for again; hours or minutes that no server has are
        logged as a warning and left out.

        Raises
        ------
        FetchError
            As :func:`fetch_asi` does; in particular when no file at all exists for
            the station in the range.

        Examples
        --------
        >>> hour = AsiRequest("gako", start="2011-03-10T05:00", end="2011-03-10T06:00")
        >>> paths = hour.sources()  # doctest: +SKIP
        """
        got = fetch_asi(
            self.station,
            start=self.start,
            end=self.end,
            instrument=self.instrument,
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


#: The first names, kept: the same objects.
fetch_themis = fetch_asi
ThemisFetch = AsiFetch


@dataclass(frozen=True)
class _Plan:
    """A fetch's options, checked: the layout, the site, the range, the source, one step."""

    layout: src.ImagerLayout
    site: str
    t0: datetime
    t1: datetime
    source: str
    step: timedelta


def _checked(
    station: str,
    start: str | datetime,
    end: str | datetime,
    instrument: str,
    source: str | None,
    timeout: float,
    retries: int,
    workers: int,
    max_files: int,
) -> _Plan:
    """Every option of a fetch checked, before any request."""
    layout = src.check_instrument(instrument)
    site = src.check_station(station, layout.instrument)
    t0 = src.parse_time(start, "start")
    t1 = src.parse_time(end, "end")
    if source is None:
        source = "berkeley" if layout.instrument == "themis" else "ucalgary"
    if source not in src.SOURCES:
        raise OptionError(
            f"unknown source {source!r}", parameter="source", expected="berkeley or ucalgary"
        )
    if source == "berkeley" and layout.instrument != "themis":
        raise OptionError(
            f"{layout.title} files are fetched from UCalgary only, not {source!r}",
            parameter="source",
            expected="ucalgary (or no `source`)",
        )
    check_numbers(timeout, retries, workers)
    step = _HOUR if source == "berkeley" else _MINUTE
    command = (
        "oathcube fetch themis"
        if layout.instrument == "themis"
        else f"oathcube fetch asi --instrument {layout.instrument}"
    )
    check_plan(src.count_steps(t0, t1, step), max_files, step, t0, t1, command=command)
    return _Plan(layout, site, t0, t1, source, step)


def check_plan(
    n: int,
    max_files: int,
    step: timedelta,
    t0: datetime,
    t1: datetime,
    *,
    command: str = "oathcube fetch themis",
) -> None:
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
    command
        The command the message shows with ``--max-files``.

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
        unit = "hour" if step == _HOUR else "minute"
        raise OptionError(
            f"{t0:%Y-%m-%dT%H:%M} to {t1:%Y-%m-%dT%H:%M} spans {n:,} {unit} files, more "
            f"than the {max_files:,} planned at most; check `start`/`end`, or raise "
            f"`max_files` to {n} (`{command} --max-files {n}`)",
            parameter="end",
        )


def _ucalgary_wanted(
    fetcher: Fetcher,
    root: Path,
    site: str,
    t0: datetime,
    t1: datetime,
    missing: list[datetime],
    layout: src.ImagerLayout,
) -> Iterator[src.Wanted]:
    """The minutes to fetch, hour by hour in time order (found by listing folders).

    Minutes that no server has are appended to ``missing``.  Minutes already in the
    local tree need no request at all: only hours with a minute still missing locally
    are listed.  One hour is planned at a time, so that a long range costs no memory
    before its first request.  Dark files never match the sky file pattern.
    """
    instrument = layout.instrument
    pattern = src.ucalgary_file_pattern(site, instrument)
    cameras = src.camera_pattern(site, instrument)
    day_cameras: tuple[datetime, list[str]] | None = None  # the current day's cameras
    minutes = src.minutes(t0, t1)
    for hour, group in itertools.groupby(minutes, key=lambda m: m.replace(minute=0)):
        wanted = list(group)  # at most 60
        found: dict[datetime, str] = {}
        day_dir = root / src.ucalgary_day(hour, instrument)
        for path in sorted(day_dir.glob(f"{site}_*/ut{hour:%H}/*")):
            m = src.is_sky_name(path.name, pattern)
            if m and cameras.fullmatch(path.parent.parent.name):
                t = datetime.strptime(m.group(1), "%Y%m%d_%H%M")
                if t in wanted:
                    found[t] = path.relative_to(root).as_posix()
        if len(found) < len(wanted):
            day = hour.replace(hour=0)
            if day_cameras is None or day_cameras[0] != day:
                names = fetcher.listing(src.ucalgary_day(day, instrument)) or []
                day_cameras = (day, [n for n in names if cameras.fullmatch(n)])
                if not day_cameras[1]:
                    log.warning(
                        "no %s camera folder in %s", site, src.ucalgary_day(day, instrument)
                    )
            for camera in day_cameras[1]:
                folder = src.ucalgary_hour(hour, camera, instrument)
                for name in fetcher.listing(folder) or []:
                    m = src.is_sky_name(name, pattern)
                    if not m or f"{site}_{m.group(2)}" != camera:
                        continue
                    t = datetime.strptime(m.group(1), "%Y%m%d_%H%M")
                    if t in wanted and t not in found:
                        found[t] = folder + name
        missing.extend(t for t in wanted if t not in found)
        for t in sorted(found):
            yield src.Wanted(found[t], t)


def _fetch_skymap(
    fetcher: Fetcher, root: Path, site: str, t0: datetime, instrument: str = "themis"
) -> Path:
    """The newest skymap of ``site`` whose validity starts on or before ``t0``'s day."""
    layout = src.check_instrument(instrument)
    prefix = layout.skymap_prefix
    folders = fetcher.listing(src.skymap_site(site, instrument))
    pattern = src.skymap_folder_pattern(site)
    dated = sorted(
        (m.group(1), name)
        for name in folders or []
        if (m := pattern.fullmatch(name)) and m.group(1) <= f"{t0:%Y%m%d}"
    )
    if not dated:
        raise FetchError(
            f"no {'' if layout.instrument == 'themis' else layout.title + ' '}skymap of {site} "
            f"valid at {t0:%Y-%m-%d}",
            path=f"{fetcher.bases[0]}{src.skymap_site(site, instrument)}",
            expected=f"folders {site}_YYYYMMDD",
        )
    date, folder = dated[-1]
    rel_folder = f"{src.skymap_site(site, instrument)}{folder}/"
    file_pattern = src.skymap_file_pattern(site, date, instrument)
    files = sorted(
        (int(m.group(1)), name)
        for name in fetcher.listing(rel_folder) or []
        if (m := file_pattern.fullmatch(name))
    )
    if not files:
        raise FetchError(
            "no skymap file in the folder",
            path=f"{fetcher.bases[0]}{rel_folder}",
            expected=f"{prefix}_skymap_{site}_{date}-+_vNN.sav",
        )
    got = fetcher.download(rel_folder + files[-1][1], root, max_bytes=_MAX_SKYMAP)
    if got.path is None:
        raise FetchError("listed but not there", path=f"{fetcher.bases[0]}{rel_folder}")
    return got.path
