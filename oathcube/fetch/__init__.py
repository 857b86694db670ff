"""Fetch what oathcube needs: the OATH tarball, the Inception-v4 checkpoint, THEMIS ASI files.

Each fetch writes into a local folder that mirrors the server's own layout (by default
in the user's data folder, :mod:`oathcube.datadir`), fetches only what is missing there,
and makes a file visible under its name only once it has passed one verification step:
complete, whole for its kind (a CDF reads to its last record, a gzip or tar to its end),
and, where known, matching its checksum (:mod:`oathcube.fetch.http`).  What is refused
is moved aside to ``NAME.refused-<n>``, so that a rerun fetches it again and never trusts
it.  URL layouts are in :mod:`oathcube.fetch.sources`.

- :func:`fetch_oath`: ``oath_v1.1_20181026.tgz`` checked against ``SHA256SUM_v1.1``;
  ``oathcube build`` takes the tarball as it is.
- :func:`fetch_checkpoint`: ``inception_v4_2016_09_09.tar.gz``, unpacked safely to
  ``inception_v4.ckpt`` with its SHA-256 recorded in ``inception_v4.json``; Inception-v4
  features then find it without ``--checkpoint``.
- :func:`fetch_themis`: Berkeley CDF L1 hours or UCalgary PGM minutes of one station,
  and optionally the skymap valid at the start time.  Hours and minutes that no server
  has are reported, not fatal.  A range of more than ``max_files`` files (default
  :data:`MAX_FILES`) is refused before any request, and the plan is made as the
  downloads go, never held whole.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import tarfile
import zlib
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath

from ..datadir import CHECKPOINT_NAME, checkpoint_dir, data_dir
from ..errors import FetchError, OptionError
from ..outputs import replacing
from . import sources as src
from .http import Fetcher, check_base_urls, check_numbers, set_aside, sha256_of

__all__ = [
    "ThemisFetch",
    "fetch_oath",
    "fetch_checkpoint",
    "fetch_themis",
    "parse_sha256sums",
    "check_plan",
    "check_numbers",
    "CHECKPOINT_RECORD",
    "MAX_FILES",
]

log = logging.getLogger(__name__)

#: The JSON file written beside the unpacked checkpoint: where it came from, its SHA-256.
CHECKPOINT_RECORD = "inception_v4.json"

#: The most THEMIS files (hours or minutes) one fetch plans unless told otherwise: more
#: than a year of Berkeley hours, a week of UCalgary minutes.
MAX_FILES = 10_000

# The most bytes each kind of file may have: a server that sends more is refused.
_MAX_SUMS = 1 << 20
_MAX_OATH = 4 << 30  # the published tarball is ~500 MB
_MAX_CHECKPOINT_TGZ = 1 << 30  # the published tarball is ~160 MB
_MAX_CDF = 1 << 30  # one hour: up to 1,200 frames of 128 kB, compressed
_MAX_PGM = 32 << 20  # one minute: 20 frames of 128 kB
_MAX_SKYMAP = 128 << 20


def _options(
    base_urls: Sequence[str] | None,
    default: str,
    hint: str,
    timeout: float,
    retries: int,
    workers: int,
    progress: bool,
) -> Fetcher:
    return Fetcher(
        check_base_urls(base_urls, default),
        timeout=timeout,
        retries=retries,
        workers=workers,
        progress=progress,
        offline_hint=hint,
    )


def _out_dir(out: str | os.PathLike[str] | None, default: Path) -> Path:
    root = Path(out).expanduser() if out is not None else default
    if root.exists() and not root.is_dir():
        raise OptionError(f"{root} is not a folder", path="-o")
    return root


def parse_sha256sums(text: str, name: str, where: str) -> str:
    """The hex SHA-256 that a ``sha256sum``-style file gives for ``name``.

    Raises
    ------
    FetchError
        ``name`` is not listed, or listed with something that is not a SHA-256.
    """
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.strip().split()
        if len(parts) == 2 and parts[1].lstrip("*").split("/")[-1] == name:
            digest = parts[0].lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise FetchError(f"not a SHA-256: {parts[0]!r}", path=where, line=number)
            return digest
    raise FetchError(f"{name} is not listed", path=where, expected=f"a line 'SHA256  {name}'")


def fetch_oath(
    out: str | os.PathLike[str] | None = None,
    *,
    base_urls: Sequence[str] | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    progress: bool = True,
) -> Path:
    """Fetch ``oath_v1.1_20181026.tgz`` and ``SHA256SUM_v1.1``; verify the one by the other.

    A sums file that gives no SHA-256 for the tarball (an HTML login page, other names
    only) is refused before it gets its name.  A whole tarball whose SHA-256 differs from
    the sums file's is moved aside, and so is the sums file: which of the two is wrong
    cannot be told, and neither may stay where a rerun would trust it.  Both are kept as
    ``NAME.refused-<n>``.

    Parameters
    ----------
    out
        Folder to write to (default: ``oath/`` in the data folder).
    base_urls
        Where the two files are (default ``http://tid.uio.no/plasma/oath``), in order.
    timeout, retries, progress
        See :class:`oathcube.fetch.http.Fetcher`.

    Returns
    -------
    Path
        The verified tarball, ready for ``oathcube build``.
    """
    root = _out_dir(out, data_dir() / "oath")
    fetcher = _options(
        base_urls,
        src.OATH_BASE,
        f"download {src.OATH_TARBALL} yourself and pass it to `oathcube build`, or give "
        "--base-url of a mirror",
        timeout,
        retries,
        1,
        progress,
    )
    sums_path = root / src.OATH_SUMS
    mismatch: list[str] = []

    def lists_tarball(path: Path) -> None:
        # A sums file is only kept if it gives a SHA-256 for the tarball: an HTML login
        # page, a list of other names or a cut line is refused before it gets its name.
        parse_sha256sums(path.read_text(errors="replace"), src.OATH_TARBALL, src.OATH_SUMS)

    # The download also checks a tarball already there (the user's, perhaps): only a
    # freshly downloaded one that fails its sum makes the sums file suspect.
    fresh = not (root / src.OATH_TARBALL).is_file()

    def matches_sums(path: Path) -> None:
        digest = sha256_of(path)
        if digest != expected:
            if fresh:
                mismatch.append(digest)
            raise FetchError(f"its SHA-256 is {digest}, but {src.OATH_SUMS} says {expected}")

    try:
        sums = fetcher.download(src.OATH_SUMS, root, max_bytes=_MAX_SUMS, check=lists_tarball)
        if sums.path is None:
            raise FetchError(f"{src.OATH_SUMS} is not on any of {', '.join(fetcher.bases)}")
        expected = parse_sha256sums(
            sums.path.read_text(errors="replace"), src.OATH_TARBALL, str(sums.path)
        )
        with fetcher.progress_bar(src.OATH_TARBALL):
            try:
                got = fetcher.download(
                    src.OATH_TARBALL, root, max_bytes=_MAX_OATH, check=matches_sums
                )
            except FetchError as err:
                raise _distrust_sums(err, mismatch, sums_path, root) from None
    finally:
        fetcher.close()
    if got.path is None:
        raise FetchError(f"{src.OATH_TARBALL} is not on any of {', '.join(fetcher.bases)}")
    log.info("%s: SHA-256 %s, as %s says", got.path, expected, src.OATH_SUMS)
    return got.path


def _distrust_sums(err: FetchError, mismatch: list[str], sums: Path, root: Path) -> FetchError:
    """The error of a tarball that failed its sum, once the sums file is no longer trusted.

    A tarball and a sums file that disagree cannot tell which one is wrong, so neither
    stays where a rerun would trust it: the tarball was moved aside by the download, and
    the sums file is moved aside here (a rerun fetches both again).  A tarball already
    there (``mismatch`` empty: no download was checked) may be the user's: the message
    says what to move.
    """
    if not mismatch or not sums.is_file():
        return err
    aside = set_aside(sums, sums)
    return FetchError(
        f"{err.message}; {src.OATH_SUMS} moved aside to {aside.name} in {root} too, as the "
        "two disagree (a rerun fetches it again)",
        path=err.path,
    )


def fetch_checkpoint(
    out: str | os.PathLike[str] | None = None,
    *,
    base_urls: Sequence[str] | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    progress: bool = True,
) -> Path:
    """Fetch the TF-slim ``inception_v4_2016_09_09.tar.gz`` and unpack ``inception_v4.ckpt``.

    The tarball is checked before it gets its name: it lists to its end, no member has
    an absolute path or ``..``, none is a link or device, and one is ``inception_v4.ckpt``
    (a tarball that fails is moved aside, so that a rerun fetches it again).  Only the
    checkpoint is unpacked (with :mod:`tarfile`'s ``data`` filter as well), under a
    temporary name, and both SHA-256 are recorded in ``inception_v4.json`` beside it (no
    checksum is published for this tarball).

    Parameters
    ----------
    out
        Folder to write to (default: ``inception_v4/`` in the data folder, where
        Inception-v4 features look when no checkpoint is given).
    base_urls
        Where the tarball is (default ``http://download.tensorflow.org/models``).
    timeout, retries, progress
        See :class:`oathcube.fetch.http.Fetcher`.

    Returns
    -------
    Path
        ``inception_v4.ckpt``.
    """
    root = _out_dir(out, checkpoint_dir())
    ckpt = root / CHECKPOINT_NAME
    record = root / CHECKPOINT_RECORD
    if ckpt.is_file() and record.is_file():
        _check_recorded(ckpt, record)
        log.info("%s is already there", ckpt)
        return ckpt
    fetcher = _options(
        base_urls,
        src.CHECKPOINT_BASE,
        f"download {src.CHECKPOINT_TARBALL} yourself, unpack it, and pass --checkpoint "
        f"PATH/{CHECKPOINT_NAME} (or set OATHCUBE_INCEPTION_V4_CHECKPOINT)",
        timeout,
        retries,
        1,
        progress,
    )
    try:
        with fetcher.progress_bar(src.CHECKPOINT_TARBALL):
            # The members are checked before the tarball gets its name: one that will not
            # unpack is moved aside, never left where a rerun would take it and ask nothing.
            got = fetcher.download(
                src.CHECKPOINT_TARBALL,
                root,
                max_bytes=_MAX_CHECKPOINT_TGZ,
                check=_checkpoint_member,
            )
    finally:
        fetcher.close()
    if got.path is None:
        raise FetchError(f"{src.CHECKPOINT_TARBALL} is not on any of {', '.join(fetcher.bases)}")
    _unpack_checkpoint(got.path, ckpt)
    info = {
        "tarball": got.path.name,
        "url": got.url,
        "tarball_sha256": sha256_of(got.path),
        "checkpoint": CHECKPOINT_NAME,
        "checkpoint_sha256": sha256_of(ckpt),
    }
    with replacing(record) as tmp:
        tmp.write_text(json.dumps(info, indent=1) + "\n")
    log.info("%s: SHA-256 %s (recorded in %s)", ckpt, info["checkpoint_sha256"], record)
    return ckpt


def _check_recorded(ckpt: Path, record: Path) -> None:
    """Refuse a checkpoint whose bytes are no longer those recorded when it was fetched."""
    try:
        recorded = json.loads(record.read_text())["checkpoint_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        raise FetchError(
            "unreadable record", path=record, expected="JSON with checkpoint_sha256"
        ) from None
    digest = sha256_of(ckpt)
    if digest != recorded:
        raise FetchError(
            f"its SHA-256 is {digest}, not the {recorded} recorded when it was fetched; "
            "move it away and fetch again",
            path=ckpt,
        )


def _checkpoint_member(tgz: Path) -> tarfile.TarInfo:
    """The checkpoint member of ``tgz``, once every member has been checked.

    Raises
    ------
    FetchError
        The tarball does not list to its end, has a member outside the archive, a link
        or special file, or no ``inception_v4.ckpt``.
    """
    wanted = None
    try:
        with tarfile.open(tgz, "r:*") as tar:
            for member in tar.getmembers():
                name = PurePosixPath(member.name)
                if name.is_absolute() or ".." in name.parts:
                    raise FetchError(
                        "member outside the archive",
                        path=tgz,
                        member=member.name,
                        expected="relative member names",
                    )
                if not (member.isfile() or member.isdir()):
                    raise FetchError(
                        "link or special file in the tarball",
                        path=tgz,
                        member=member.name,
                        expected="regular files only",
                    )
                if member.isfile() and name.name == CHECKPOINT_NAME:
                    wanted = member
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise FetchError(f"cannot list the tarball ({err})", path=tgz) from None
    if wanted is None:
        raise FetchError(f"no {CHECKPOINT_NAME} in the tarball", path=tgz)
    return wanted


def _unpack_checkpoint(tgz: Path, ckpt: Path) -> None:
    """Check every member of ``tgz``, then unpack only ``inception_v4.ckpt`` to ``ckpt``."""
    if ckpt.is_file():
        return
    import shutil
    import tempfile

    wanted = _checkpoint_member(tgz)
    tmp_dir = Path(tempfile.mkdtemp(prefix=".unpack.", dir=ckpt.parent))
    try:
        with tarfile.open(tgz, "r:*") as tar:
            tar.extract(wanted, tmp_dir, filter="data")
        os.replace(tmp_dir / wanted.name, ckpt)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise FetchError(f"cannot unpack ({err}); delete it and fetch again", path=tgz) from None
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir)  # the run's own temporary folder


@dataclass
class ThemisFetch:
    """What :func:`fetch_themis` found.

    Attributes
    ----------
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
    start: str | datetime,
    end: str | datetime,
    *,
    source: str = "berkeley",
    out: str | os.PathLike[str] | None = None,
    base_urls: Sequence[str] | None = None,
    skymap: bool = False,
    skymap_base_urls: Sequence[str] | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    workers: int = 4,
    progress: bool = True,
    max_files: int = MAX_FILES,
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
    timeout, retries, workers, progress
        See :class:`oathcube.fetch.http.Fetcher`.
    max_files
        The most hours or minutes the range may span (default :data:`MAX_FILES`): a
        longer range (a typo in a year, say) is refused before any request, as is a
        plan of more files than anyone would fetch by accident.

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
    """
    site = src.check_station(station)
    t0 = src.parse_time(start, "--start")
    t1 = src.parse_time(end, "--end")
    if source not in src.SOURCES:
        raise OptionError(
            f"unknown source {source!r}", path="--source", expected="berkeley or ucalgary"
        )
    check_numbers(timeout, retries, workers)
    step = timedelta(hours=1) if source == "berkeley" else timedelta(minutes=1)
    check_plan(src.count_steps(t0, t1, step), max_files, step, t0, t1)
    default = src.BERKELEY_BASE if source == "berkeley" else src.UCALGARY_BASE
    root = _out_dir(out, data_dir() / "themis" / source)
    hint = (
        "download the files yourself and pass them to `oathcube ingest FILES`, or give "
        "--base-url of a mirror"
    )
    fetcher = _options(base_urls, default, hint, timeout, retries, workers, progress)
    sky_fetcher = None
    if skymap:
        sky_default = (
            fetcher.bases if source == "ucalgary" and not skymap_base_urls else skymap_base_urls
        )
        sky_fetcher = _options(sky_default, src.UCALGARY_BASE, hint, timeout, retries, 1, False)
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


def check_plan(n: int, max_files: int, step: timedelta, t0: datetime, t1: datetime) -> None:
    """Refuse a plan of more than ``max_files`` files before it is made.

    Raises
    ------
    OptionError
        ``max_files`` is not positive, or ``n`` is above it; the message says how to
        raise the cap.
    """
    if max_files < 1:
        raise OptionError(f"{max_files}", path="--max-files", expected="1 or more files")
    if n > max_files:
        unit = "hour" if step == timedelta(hours=1) else "minute"
        raise OptionError(
            f"{t0:%Y-%m-%dT%H:%M} to {t1:%Y-%m-%dT%H:%M} spans {n:,} {unit} files, more "
            f"than the {max_files:,} planned at most; check --start/--end, or raise the cap "
            f"with `oathcube fetch themis --max-files {n}`",
            path="--end",
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
