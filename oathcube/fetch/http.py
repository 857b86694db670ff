"""Downloads that a half file can never pass for a whole one: requests + urllib3 retries.

Why requests with urllib3's :class:`~urllib3.util.Retry` (and not pooch or fsspec's HTTP
filesystem): oathcube needs control of every byte that reaches the disk.  A download is
resumed with a ``Range`` request and appended only when the server answers ``206`` for
exactly the bytes asked for; redirects are followed one at a time so that each target's
scheme is checked; a body is never read past its announced length nor past a cap; names
taken from directory listings are checked before any path is built.  requests exposes each
of these steps, urllib3 retries connection errors and 5xx answers with backoff, and both
are already in every scientific Python environment.

The rules of a download (:meth:`Fetcher.download`):

- the file is written to ``NAME.part`` in its destination folder and renamed to ``NAME``
  (atomic) only once it has passed one verification step (:func:`verify_download`): its
  size equals what the server announced; where a checksum is known, its SHA-256 matches;
  where its kind can be checked by its name, it is whole (a CDF opens and every record
  reads, a gzip stream decompresses to its end, a tar lists to its end, PGM rasters are
  as long as their headers say, an HDF5 file's datasets read, an IDL save file reads);
  and whatever check the caller
  adds (a checksum list that lists the file it is for, a tarball that holds what it
  should).  A body that ends early without a length (a server that closes the
  connection) is caught there;
- what is refused after it arrived whole is moved aside to ``NAME.refused-<n>`` (kept for
  the user to look at, never under a name a rerun trusts), and a rerun downloads it again;
  a body refused for its size is deleted (it is the run's own temporary file);
- a ``.part`` left by an interrupted run (even ``kill -9``) is resumed with
  ``Range: bytes=N-`` and ``If-Range`` only when ``NAME.part.json`` beside it holds the
  URL and the validator (a strong ``ETag`` or ``Last-Modified``) that its bytes came
  with; without one, or when the server answers with another version (``200``, or a
  ``206`` with another validator or length), it starts again from zero, so that an old
  prefix is never spliced onto a changed file;
- two processes fetching the same file take turns on an ``fcntl`` lock of
  ``NAME.lock``: the second finds the file complete and downloads nothing;
- ``404``/``410`` on every base URL means the file is not there (reported, not fatal);
  connection errors, timeouts and ``5xx`` are retried with backoff, then the next base
  URL is tried; when none can be reached the error names the URL and what to do offline.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import math
import os
import re
import sys
import tarfile
import threading
import time
import warnings
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from ..errors import FetchError, OathcubeError, OptionError

__all__ = [
    "Fetcher",
    "Download",
    "check_base_urls",
    "check_numbers",
    "listing_names",
    "safe_path",
    "set_aside",
    "sha256_of",
    "verify_download",
]

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
_CHUNK = 1 << 16
#: A single name of a path: no separators, no ``..``, nothing a shell or a file system
#: would read as something else.
_NAME = re.compile(r"[A-Za-z0-9_.+-]+")


class _NotFound(Exception):
    """The server says the file is not there (404/410)."""


class _Unreachable(Exception):
    """No answer, a timeout, a dropped connection or an error status, after retries."""


class _Refused(Exception):
    """The server sent something oathcube will not accept (size, checksum, redirect)."""


class _Dropped(Exception):
    """The body stopped before its end: resumable."""


class _Restart(Exception):
    """The ``.part`` on disk cannot be resumed (another version, no validator): from zero."""


#: Bounds of the numbers a user gives (``--timeout``, ``--retries``, ``--workers``):
#: beyond them a value is a typo, and ``nan``/``inf`` break the socket layer.
MAX_TIMEOUT = 3600.0
MAX_RETRIES = 100
MAX_WORKERS = 64


@dataclass
class Download:
    """What became of one wanted file.

    Attributes
    ----------
    rel
        Its path relative to the base URL (and to the output folder).
    path
        The local file, or None when no server has it.
    url
        Where it came from (None when it was already there or is missing).
    downloaded
        False when the file was already complete on disk.
    """

    rel: str
    path: Path | None
    url: str | None = None
    downloaded: bool = False


def check_base_urls(
    urls: Sequence[str] | None, default: str, parameter: str = "base_urls"
) -> list[str]:
    """The base URLs to try in order (``default`` when none are given); only http(s).

    ``parameter`` is the Python parameter that gave ``urls``, named in the error.

    Raises
    ------
    OptionError
        A URL that is not ``http://`` or ``https://`` with a host.
    """
    out = []
    for url in urls or [default]:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise OptionError(
                f"{url!r} is not an http(s) URL",
                parameter=parameter,
                expected="http://HOST/PATH or https://HOST/PATH; for files you already have, "
                "pass the files themselves",
            )
        out.append(url.rstrip("/") + "/")
    return out


def safe_path(root: Path, rel: str) -> Path:
    """``root/rel`` for a relative path made only of plain names; anything else is refused.

    Raises
    ------
    FetchError
        ``rel`` is absolute, has ``..`` or ``.``, a backslash, an empty part or a character
        outside ``[A-Za-z0-9_.+-]``; or the result would lie outside ``root``.
    """
    parts = rel.strip("/").split("/") if rel else []
    bad = not parts or rel.startswith("/")
    bad = bad or any(p in (".", "..") or not _NAME.fullmatch(p) for p in parts)
    target = root.joinpath(*parts) if not bad else root
    if bad or not target.resolve().is_relative_to(root.resolve()):
        raise FetchError(
            f"refused the name {rel!r}: it would leave the output folder",
            path=root,
            expected="plain file and folder names",
        )
    return target


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag.lower() == "a":
            self.hrefs.extend(v for k, v in attrs if k.lower() == "href" and v)


def listing_names(html: str, url: str) -> list[str]:
    """The entries of an HTML directory listing at ``url``: one plain name each.

    Every ``href`` is resolved against ``url``; only those that name a direct child of
    ``url`` on the same host are kept, so that parent links, sort links
    (``?C=N;O=D``), other hosts and names such as ``../../x`` or ``a%2F..%2Fb`` never
    become paths.  A trailing ``/`` (a folder) is dropped.
    """
    parser = _Links()
    parser.feed(html)
    base = urlsplit(url)
    names: list[str] = []
    for href in parser.hrefs:
        target = urlsplit(urljoin(url, href))
        if target.query or target.netloc != base.netloc or target.scheme != base.scheme:
            continue
        if not target.path.startswith(base.path) or target.path == base.path:
            continue
        name = unquote(target.path[len(base.path) :])
        name = name[:-1] if name.endswith("/") else name
        if not _NAME.fullmatch(name) or name in (".", ".."):
            log.debug("listing %s: ignored the entry %r", url, href)
            continue
        if name not in names:
            names.append(name)
    return names


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def check_numbers(timeout: float, retries: int, workers: int = 1) -> None:
    """Refuse a timeout, retry count or worker count that cannot be meant.

    Checked before any request (and before an ingest touches its cube): ``nan`` and
    ``inf`` pass a float option's parser but break the socket layer with a traceback.

    Raises
    ------
    OptionError
        ``timeout`` not finite or outside ``(0, MAX_TIMEOUT]``; ``retries`` outside
        ``[0, MAX_RETRIES]``; ``workers`` outside ``[1, MAX_WORKERS]``.
    """
    if not (math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT):
        raise OptionError(
            f"timeout {timeout:g}", parameter="timeout", expected=f"seconds in (0, {MAX_TIMEOUT:g}]"
        )
    if not 0 <= retries <= MAX_RETRIES:
        raise OptionError(f"{retries} retries", parameter="retries", expected=f"0 to {MAX_RETRIES}")
    if not 1 <= workers <= MAX_WORKERS:
        raise OptionError(f"{workers} workers", parameter="workers", expected=f"1 to {MAX_WORKERS}")


# --------------------------------------------------------------------------- verification
def verify_download(path: Path, name: str) -> None:
    """Check that a downloaded file is whole, by what its name says it is.

    The one format check every fetched file passes before it gets its name
    (:meth:`Fetcher.download`); ``path`` is the ``.part`` and ``name`` the final name.
    Whatever a name does not tell is passed as it is (its size was checked already).

    ========================  =====================================================
    ``*.cdf``                 opens with cdflib, its times decode and every record
                              of the image variable reads (block by block)
    ``*.pgm``, ``*.pgm.gz``   each raster is as long as its PGM header says
    ``*.tar``, ``*.tar.gz``,  the tar lists to its end (and the gzip stream
    ``*.tgz``                 decompresses to its end, its CRC checked)
    other ``*.gz``            decompresses to its end
    ``*.sav``                 reads as an IDL save file (scipy's ``readsav``)
    ``*.h5``                  opens with h5py and every dataset reads to its end
                              (a TREx RGB minute: 16 MB)
    ========================  =====================================================

    Parameters
    ----------
    path
        The file to check.
    name
        The name it is to get (the kind is told by it, not by ``path``'s ``.part``).

    Raises
    ------
    FetchError
        The file is cut short or corrupt; the message says where.
    """
    lower = name.lower()
    try:
        if lower.endswith(".cdf"):
            _check_cdf(path)
        elif lower.endswith((".pgm", ".pgm.gz")):
            _check_pgm(path)
        elif lower.endswith((".tar", ".tar.gz", ".tgz")):
            _check_tar(path, compressed=not lower.endswith(".tar"))
        elif lower.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                while fh.read(1 << 22):
                    pass
        elif lower.endswith(".sav"):
            _check_sav(path)
        elif lower.endswith(".h5"):
            _check_h5(path)
    except OathcubeError as err:
        raise FetchError(f"not whole (cut short or corrupt): {err.message}", path=name) from None
    except (EOFError, OSError, zlib.error, tarfile.TarError, ValueError) as err:
        raise FetchError(f"not whole (cut short or corrupt): {_reason(err)}", path=name) from None


def _check_cdf(path: Path) -> None:
    """Every record of a THEMIS CDF reads, in parts of a few blocks (bounded memory)."""
    from ..archive.themis_cdf import part_step, read_cdf, read_cdf_parts, scan_cdf

    n = scan_cdf(path).time.shape[0]
    step = part_step(path, 64)
    if step == 0:  # a layout that is only read whole (2024 files: one record)
        read_cdf(path)
        return
    for _ in read_cdf_parts(path, [(lo, min(lo + step, n)) for lo in range(0, n, step)]):
        pass


def _check_pgm(path: Path) -> None:
    """The rasters of a UCalgary PGM (plain or gzip) are as long as their headers say."""
    from ..archive.themis_pgm import parse_pgm_stream

    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)  # a minute is ~2.6 MB decompressed
    parse_pgm_stream(data, path)


def _check_tar(path: Path, compressed: bool) -> None:
    """List a tar to its end in one pass, then read what follows to the gzip trailer."""
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(gzip.open(path, "rb") if compressed else open(path, "rb"))
        # Stream mode: one pass, each member's data skipped by reading it (which is what
        # makes a body cut inside a member fail here rather than when it is unpacked).
        with tarfile.open(fileobj=raw, mode="r|") as tar:
            for _ in tar:
                pass
        while raw.read(1 << 22):  # the rest of the gzip stream: its CRC and length
            pass


def _check_h5(path: Path) -> None:
    """Every dataset of an HDF5 file (a TREx RGB minute) reads, one at a time."""
    import h5py

    def read(name: str, item: object) -> None:
        if isinstance(item, h5py.Dataset):
            _ = item[()]  # every chunk, decompressed: a cut or corrupt one raises

    try:
        with h5py.File(path, "r") as f:
            f.visititems(read)
    except (OSError, KeyError, RuntimeError) as err:
        raise FetchError(f"not an HDF5 file read to its end ({_reason(err)})") from None


def _check_sav(path: Path) -> None:
    """An IDL save file (a UCalgary skymap) reads to its end."""
    from scipy.io import readsav

    with warnings.catch_warnings():
        # Old skymaps make readsav warn that it cannot verify byte counts: not an error.
        warnings.simplefilter("ignore")
        try:
            readsav(str(path), verbose=False)
        except Exception as err:  # readsav raises anything from struct.error to ValueError
            raise FetchError(f"not an IDL save file read to its end ({_reason(err)})") from None


def set_aside(path: Path, dest: Path) -> Path:
    """Move a refused ``path`` to ``dest.refused-<n>`` (the first free ``n``); the new path.

    What was refused is kept for the user to look at, under a name that no rerun (and no
    ``ingest`` of the folder) takes for the file itself.
    """
    n = 1
    while True:
        target = dest.with_name(f"{dest.name}.refused-{n}")
        if not (target.exists() or target.is_symlink()):
            os.replace(path, target)
            return target
        n += 1


def _sidecar(part: Path) -> Path:
    """``NAME.part.json``: the URL and validator the bytes of ``NAME.part`` came with."""
    return part.with_name(part.name + ".json")


def _load_sidecar(path: Path) -> dict[str, Any] | None:
    """The saved validator of a ``.part``, or None when absent or unreadable."""
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _save_sidecar(path: Path, info: dict[str, Any]) -> None:
    """Write the sidecar atomically: a half-written one must never be read as valid."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)


def _validators(resp: Any) -> dict[str, str | None]:
    """The answer's ``ETag`` (strong only: a weak one cannot be used in If-Range) and
    ``Last-Modified``."""
    etag = resp.headers.get("etag")
    if etag and etag.startswith("W/"):
        etag = None
    return {"etag": etag or None, "last_modified": resp.headers.get("last-modified") or None}


def _if_range(saved: dict[str, Any]) -> str | None:
    """The value for ``If-Range``: the strong ETag, else Last-Modified, else None."""
    value = saved.get("etag") or saved.get("last_modified")
    return value if isinstance(value, str) and value else None


def _same_version(saved: dict[str, Any], got: dict[str, str | None]) -> bool:
    """Whether a ``206`` answer comes from the version the ``.part``'s bytes came from."""
    if saved.get("etag"):
        return got["etag"] == saved["etag"]
    return bool(saved.get("last_modified")) and got["last_modified"] == saved["last_modified"]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (``NAME.lock``) across processes and threads.

    The lock file is removed by its holder; a waiter that then finds its file unlinked
    (or replaced) takes a fresh one, so that two holders can never work at once.  Where
    ``fcntl`` is missing (Windows), callers fall back on unique ``.part`` names.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                continue  # the previous holder removed it: lock the new one
            try:
                yield
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            return
        finally:
            os.close(fd)  # closing releases the flock


@dataclass
class Fetcher:
    """Fetches paths relative to base URLs, trying the bases in order.

    Parameters
    ----------
    bases
        Base URLs (from :func:`check_base_urls`), tried in order for every file.
    timeout
        Seconds to connect and between two bytes of an answer.
    retries
        Retries after a connection error, a timeout, a ``5xx`` answer or a body cut
        short (each resumed where it stopped), with exponential backoff.
    backoff
        Backoff factor in seconds (0.5 gives waits of 0.5, 1, 2, ... seconds).
    workers
        Parallel downloads in :meth:`download_many`.
    progress
        Show a byte counter on stderr.
    offline_hint
        What the user can do without a network, appended to "cannot reach" errors.
    """

    bases: list[str]
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.5
    workers: int = 4
    progress: bool = False
    offline_hint: str = ""
    _local: threading.local = field(default_factory=threading.local, init=False, repr=False)
    _sessions: list[Any] = field(default_factory=list, init=False, repr=False)
    _bar: Any = field(default=None, init=False, repr=False)
    _bar_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        check_numbers(self.timeout, self.retries, self.workers)

    # ------------------------------------------------------------------ plumbing
    @property
    def session(self) -> Any:
        """This thread's ``requests.Session`` (sessions are not shared across threads)."""
        session = getattr(self._local, "session", None)
        if session is None:
            import requests
            from requests.adapters import HTTPAdapter
            from urllib3.util import Retry

            retry = Retry(
                total=self.retries,
                connect=self.retries,
                read=self.retries,
                status=self.retries,
                backoff_factor=self.backoff,
                backoff_max=30,
                status_forcelist=(429, 500, 502, 503, 504),
                allowed_methods=frozenset({"GET", "HEAD"}),
                raise_on_status=False,
                respect_retry_after_header=True,
            )
            session = requests.Session()
            adapter = HTTPAdapter(
                max_retries=retry, pool_connections=4, pool_maxsize=max(4, self.workers)
            )
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = "oathcube-fetch"
            self._local.session = session
            with self._bar_lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        """Close every thread's connection pool."""
        with self._bar_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()

    def _open(self, url: str, headers: dict[str, str]) -> tuple[Any, str]:
        """GET ``url`` (streamed), following http(s) redirects only; (response, final URL)."""
        import requests

        for _ in range(MAX_REDIRECTS + 1):
            try:
                resp = self.session.get(
                    url,
                    headers=headers,
                    stream=True,
                    timeout=self.timeout,
                    allow_redirects=False,
                )
            except requests.exceptions.RequestException as err:
                # urllib3 has retried; a timeout may come wrapped in a ConnectionError.
                reason = _reason(err)
                if isinstance(err, requests.exceptions.Timeout) or reason == "timed out":
                    reason = f"no answer within {self.timeout:g} s"
                raise _Unreachable(reason) from None
            if not resp.is_redirect:
                return resp, url
            target = urljoin(url, resp.headers["location"])
            resp.close()
            if urlsplit(target).scheme.lower() not in ("http", "https"):
                raise _Refused(f"redirect to {target!r} refused: only http(s) URLs are followed")
            log.debug("%s redirects to %s", url, target)
            url = target
        raise _Refused(f"more than {MAX_REDIRECTS} redirects")

    def _each_base(self, rel: str, attempt: Callable[[str], Any]) -> tuple[Any, str] | None:
        """``attempt(url)`` on each base in order: (result, url), or None if none has it."""
        unreachable: list[str] = []
        refused: list[str] = []
        found_missing = False
        for base in self.bases:
            url = urljoin(base, rel)
            try:
                return attempt(url), url
            except _NotFound:
                found_missing = True
            except _Unreachable as err:
                log.warning("cannot reach %s: %s", url, err)
                unreachable.append(f"{url} ({err})")
            except _Refused as err:
                log.warning("refused %s: %s", url, err)
                refused.append(f"{url}: {err}")
        if refused:
            raise FetchError("; ".join(refused), expected="a server that sends what it announces")
        if found_missing:
            return None
        hint = f"; {self.offline_hint}" if self.offline_hint else ""
        raise FetchError(f"cannot reach {'; nor '.join(unreachable)}{hint}")

    # ------------------------------------------------------------------ small files
    def text(self, rel: str, max_bytes: int = 8 << 20) -> tuple[str, str] | None:
        """A small text (a listing) from the first base that has it.

        Returns (text, the URL it came from after redirects), or None when every
        base answers 404.
        """
        got = self._each_base(rel, lambda url: self._read_small(url, max_bytes))
        return None if got is None else got[0]

    def listing(self, rel: str) -> list[str] | None:
        """The entry names of the folder ``rel`` (see :func:`listing_names`), or None."""
        rel = rel if rel.endswith("/") else rel + "/"
        got = self.text(rel)
        # hrefs are relative to where the listing came from, after any redirect
        return None if got is None else listing_names(got[0], got[1])

    def _read_small(self, url: str, max_bytes: int) -> tuple[str, str]:
        resp, final = self._open(url, {"Accept-Encoding": "identity"})
        with resp:
            _check_status(resp)
            body = bytearray()
            try:
                for chunk in resp.raw.stream(_CHUNK, decode_content=False):
                    body += chunk
                    if len(body) > max_bytes:
                        raise _Refused(f"more than {max_bytes} bytes")
            except _Refused:
                raise
            except Exception as err:
                raise _Unreachable(_reason(err)) from None
        return bytes(body).decode("utf-8", errors="replace"), final

    # ------------------------------------------------------------------ files
    def download(
        self,
        rel: str,
        root: Path,
        *,
        sha256: str | None = None,
        max_bytes: int,
        check: Callable[[Path], object] | None = None,
        by_name: bool = True,
    ) -> Download:
        """Fetch ``rel`` to ``root/rel`` unless it is there already (see the module doc).

        Parameters
        ----------
        rel
            Path relative to the base URLs and to ``root``.
        root
            The local tree that mirrors the server.
        sha256
            The expected SHA-256 (hex); a file already there is checked against it too.
        max_bytes
            The most bytes this kind of file may have; a larger answer is refused.
        check
            A further check of the file (raising :class:`~oathcube.errors.OathcubeError`),
            run after :func:`verify_download` on a new download and on a file already
            there; a new download that fails it is moved aside.
        by_name
            Check a new download's format by its name (:func:`verify_download`); False
            for a file whose name misleads (Aurora-FM's PyTorch zip is called ``.tar``)
            and that ``sha256`` or ``check`` pins to its bytes.

        Raises
        ------
        FetchError
            No base URL reachable, or what was sent is refused (too large, cut short,
            wrong checksum, refused by ``check``, redirect to a non-http URL, a name
            leaving ``root``); or a file already there fails ``sha256`` or ``check``.
        """
        dest = safe_path(root, rel)
        if dest.is_file():
            self._check_present(dest, sha256, check)
            return Download(rel, dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with _locked(dest.with_name(dest.name + ".lock")):
            if dest.is_file():  # another process finished it while we waited
                self._check_present(dest, sha256, check)
                return Download(rel, dest)
            got = self._each_base(
                rel, lambda url: self._to_part(url, dest, sha256, max_bytes, check, by_name)
            )
        if got is None:
            return Download(rel, None)
        return Download(rel, dest, got[1], True)

    def _check_present(
        self, dest: Path, sha256: str | None, check: Callable[[Path], object] | None
    ) -> None:
        # A file already under its name is not ours to move or delete: it may be the
        # user's own.  It is refused with what to do, and left where it is.
        if sha256 is not None:
            digest = sha256_of(dest)
            if digest != sha256.lower():
                raise FetchError(
                    f"already there but its SHA-256 is {digest}; move it away and fetch again",
                    path=dest,
                    expected=sha256.lower(),
                )
        if check is not None:
            try:
                check(dest)
            except OathcubeError as err:
                raise FetchError(
                    f"already there but refused ({err.message}); delete it (or move it away) "
                    "and fetch again",
                    path=dest,
                ) from None

    def _to_part(
        self,
        url: str,
        dest: Path,
        sha256: str | None,
        max_bytes: int,
        check: Callable[[Path], object] | None,
        by_name: bool = True,
    ) -> None:
        """Download ``url`` into ``dest.part`` (resuming), verify, rename to ``dest``."""
        part = dest.with_name(dest.name + ".part")
        if os.name == "nt":  # pragma: no cover - no fcntl lock: one .part per process
            part = dest.with_name(f"{dest.name}.{os.getpid()}.part")
        side = _sidecar(part)
        failures = restarts = 0
        while True:
            try:
                self._stream(url, part, side, max_bytes)
                break
            except _Restart as err:
                # The .part is gone now, so the next try asks for the whole file; more
                # than two restarts mean a server that keeps changing the file.
                restarts += 1
                if restarts > 2:
                    raise _Refused(f"{err}, {restarts} times") from None
                log.info("%s: %s; starting again", url, err)
            except _Dropped as err:
                failures += 1
                if failures > self.retries:
                    raise _Unreachable(f"{err}, {failures} times") from None
                log.info("%s: %s; resuming", url, err)
                time.sleep(self.backoff * 2 ** (failures - 1))
            except _Refused:
                _discard(part, side)  # the run's own temporary file, refused for its size
                raise
        side.unlink(missing_ok=True)  # whole: nothing is resumed from here on
        self._verify(part, dest, sha256, check, by_name)
        os.replace(part, dest)

    def _verify(
        self,
        part: Path,
        dest: Path,
        sha256: str | None,
        check: Callable[[Path], object] | None,
        by_name: bool = True,
    ) -> None:
        """The one step between a whole body and its name; what fails is moved aside."""
        try:
            if sha256 is not None:
                digest = sha256_of(part)
                if digest != sha256.lower():
                    raise FetchError(f"SHA-256 {digest} does not match {sha256.lower()}")
            if by_name:
                verify_download(part, dest.name)
            if check is not None:
                check(part)
        except OathcubeError as err:
            aside = set_aside(part, dest)
            raise _Refused(
                f"{err.message}; kept as {aside}, and a rerun downloads it again"
            ) from None

    def _stream(self, url: str, part: Path, side: Path, max_bytes: int) -> None:
        """One GET into ``part``, resumed where its sidecar allows (see the module doc)."""
        have = part.stat().st_size if part.exists() else 0
        saved = _load_sidecar(side) if have else None
        if have and (saved is None or saved.get("url") != url or _if_range(saved) is None):
            # Bytes whose version cannot be named may belong to another file: not resumed.
            log.info("%s: no validator for the %d bytes of %s; from zero", url, have, part)
            _discard(part, side)
            have, saved = 0, None
        headers = {"Accept-Encoding": "identity"}
        if have and saved is not None:
            headers["Range"] = f"bytes={have}-"
            # The server sends the rest only if the file is still the version the
            # prefix came from; otherwise the whole new file (200).
            headers["If-Range"] = str(_if_range(saved))
        resp, final = self._open(url, headers)
        with resp:
            if resp.status_code == 416 and have:
                _discard(part, side)
                raise _Restart("the partial file does not fit the server's")
            _check_status(resp)
            got = _validators(resp)
            total = _announced_total(resp, have)
            if resp.status_code == 206 and saved is not None:
                if not _same_version(saved, got) or saved.get("length") not in (None, total):
                    # A server that ignores If-Range, or answers for another version.
                    _discard(part, side)
                    raise _Restart("the file changed on the server since the partial download")
            if total is not None and total > max_bytes:
                raise _Refused(f"announces {total} bytes, more than the {max_bytes} allowed")
            if resp.status_code == 206 and have:
                mode = "ab"
            else:
                have, mode = 0, "wb"  # no resume: the whole file again
                # Saved before the first byte, so that a kill at any point leaves a .part
                # whose version is known.
                _save_sidecar(side, {"url": url, **got, "length": total})
            limit = total if total is not None else max_bytes
            self._bar_add(total - have if total is not None else None)
            written = have
            with open(part, mode) as fh:
                try:
                    for chunk in resp.raw.stream(_CHUNK, decode_content=False):
                        if written + len(chunk) > limit:
                            # More than announced (or than allowed): cut off, refused.
                            raise _Refused(f"sends more than the {limit} bytes announced")
                        fh.write(chunk)
                        written += len(chunk)
                        self._bar_update(len(chunk))
                except (_Refused, _Dropped):
                    raise
                except Exception as err:
                    fh.flush()
                    raise _Dropped(f"cut at byte {written} ({_reason(err)})") from None
                fh.flush()
                os.fsync(fh.fileno())
            if total is not None and written != total:
                raise _Dropped(f"cut at byte {written} of {total}")

    def download_many(
        self, rels: Iterable[str], root: Path, *, max_bytes: int, label: str = ""
    ) -> Iterator[Download]:
        """:meth:`download` each of ``rels`` with at most ``workers`` at once; in order.

        ``rels`` is consumed as the downloads go (at most ``2 * workers`` ahead), so that
        a long plan is never held whole in memory; results are yielded in the order of
        ``rels``.  The first error stops what has not started and is raised.
        """
        source = iter(rels)
        with self.progress_bar(label), ThreadPoolExecutor(self.workers) as pool:
            pending: deque[Any] = deque()
            try:
                for rel in source:
                    pending.append(pool.submit(self.download, rel, root, max_bytes=max_bytes))
                    while len(pending) >= 2 * self.workers:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:
                for future in pending:
                    future.cancel()  # an error (or a consumer that stopped) ends the rest

    # ------------------------------------------------------------------ progress
    @contextlib.contextmanager
    def progress_bar(self, label: str) -> Iterator[None]:
        """A byte counter on stderr for the downloads inside the block."""
        if not self.progress or self._bar is not None:
            yield
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=0, unit="B", unit_scale=True, unit_divisor=1024, desc=label, file=sys.stderr
        )
        try:
            yield
        finally:
            self._bar.close()
            self._bar = None

    def _bar_add(self, n: int | None) -> None:
        if self._bar is not None and n:
            with self._bar_lock:
                self._bar.total += n
                self._bar.refresh()

    def _bar_update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)


def _discard(part: Path, side: Path) -> None:
    """Delete the run's own temporary ``.part`` and its sidecar."""
    part.unlink(missing_ok=True)
    side.unlink(missing_ok=True)


def _check_status(resp: Any) -> None:
    if resp.status_code in (404, 410):
        raise _NotFound()
    if resp.status_code not in (200, 206):
        raise _Unreachable(f"HTTP {resp.status_code} {resp.reason or ''}".strip())


def _announced_total(resp: Any, have: int) -> int | None:
    """The whole file's size the answer announces, or None when it announces none."""
    if resp.status_code == 206:
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", resp.headers.get("content-range", ""))
        if not match or int(match.group(1)) != have:
            # A range other than the one asked for cannot be appended.
            raise _Refused(
                f"answers Range bytes={have}- with {resp.headers.get('content-range')!r}"
            )
        return int(match.group(3))
    length = resp.headers.get("content-length")
    return int(length) if length and length.isdigit() else None


def _reason(err: BaseException) -> str:
    """A short reason for a network error (requests nests urllib3's in several layers)."""
    text = str(err)
    for needle, short in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("Temporary failure in name resolution", "no DNS (no network?)"),
        ("timed out", "timed out"),
        ("Network is unreachable", "network unreachable"),
    ):
        if needle in text:
            return short
    return text.splitlines()[0][:200] if text else type(err).__name__
