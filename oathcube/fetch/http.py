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
  (atomic) only once complete: its size equals what the server announced and, where a
  checksum is known, its SHA-256 matches; a file that fails is deleted (it is the run's
  own temporary file) and refused with an error;
- a ``.part`` left by an interrupted run (even ``kill -9``) is resumed with
  ``Range: bytes=N-``; a server that answers ``200`` instead restarts it from zero;
- two processes fetching the same file take turns on an ``fcntl`` lock of
  ``NAME.lock``: the second finds the file complete and downloads nothing;
- ``404``/``410`` on every base URL means the file is not there (reported, not fatal);
  connection errors, timeouts and ``5xx`` are retried with backoff, then the next base
  URL is tried; when none can be reached the error names the URL and what to do offline.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from ..errors import FetchError, OptionError

__all__ = [
    "Fetcher",
    "Download",
    "check_base_urls",
    "listing_names",
    "safe_path",
    "sha256_of",
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
    urls: Sequence[str] | None, default: str, option: str = "--base-url"
) -> list[str]:
    """The base URLs to try in order (``default`` when none are given); only http(s).

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
                path=option,
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
    progress: bool = True
    offline_hint: str = ""
    _local: threading.local = field(default_factory=threading.local, init=False, repr=False)
    _sessions: list[Any] = field(default_factory=list, init=False, repr=False)
    _bar: Any = field(default=None, init=False, repr=False)
    _bar_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise OptionError(f"timeout {self.timeout}", path="--timeout", expected="> 0 seconds")
        if self.retries < 0:
            raise OptionError(f"{self.retries} retries", path="--retries", expected="0 or more")
        if self.workers < 1:
            raise OptionError(f"{self.workers} workers", path="--workers", expected="1 or more")

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

        Raises
        ------
        FetchError
            No base URL reachable, or what was sent is refused (too large, wrong
            checksum, redirect to a non-http URL, a name leaving ``root``).
        """
        dest = safe_path(root, rel)
        if dest.is_file():
            self._check_present(dest, sha256)
            return Download(rel, dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with _locked(dest.with_name(dest.name + ".lock")):
            if dest.is_file():  # another process finished it while we waited
                self._check_present(dest, sha256)
                return Download(rel, dest)
            got = self._each_base(rel, lambda url: self._to_part(url, dest, sha256, max_bytes))
        if got is None:
            return Download(rel, None)
        return Download(rel, dest, got[1], True)

    def _check_present(self, dest: Path, sha256: str | None) -> None:
        if sha256 is None:
            return
        digest = sha256_of(dest)
        if digest != sha256.lower():
            # Not ours to delete: it was there before this run.
            raise FetchError(
                f"already there but its SHA-256 is {digest}; move it away and fetch again",
                path=dest,
                expected=sha256.lower(),
            )

    def _to_part(self, url: str, dest: Path, sha256: str | None, max_bytes: int) -> None:
        """Download ``url`` into ``dest.part`` (resuming), verify, rename to ``dest``."""
        part = dest.with_name(dest.name + ".part")
        if os.name == "nt":  # pragma: no cover - no fcntl lock: one .part per process
            part = dest.with_name(f"{dest.name}.{os.getpid()}.part")
        validator: str | None = None
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                validator = self._stream(url, part, max_bytes, validator)
                break
            except _Dropped as err:
                last = err
                log.info("%s: %s; resuming", url, err)
            except _Refused:
                part.unlink(missing_ok=True)
                raise
        else:
            raise _Unreachable(f"{last}, {self.retries + 1} times")
        if sha256 is not None:
            digest = sha256_of(part)
            if digest != sha256.lower():
                part.unlink()  # the run's own temporary file: nothing of it is kept
                raise _Refused(f"SHA-256 {digest} does not match {sha256.lower()}")
        os.replace(part, dest)

    def _stream(self, url: str, part: Path, max_bytes: int, validator: str | None) -> str | None:
        """One GET into ``part``; returns the server's validator (ETag or Last-Modified)."""
        have = part.stat().st_size if part.exists() else 0
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
            if validator:
                headers["If-Range"] = validator
        resp, final = self._open(url, headers)
        with resp:
            if resp.status_code == 416 and have:
                part.unlink()  # not a prefix of the file any more: start again
                raise _Dropped("the partial file does not fit the server's; restarting")
            _check_status(resp)
            new_validator = resp.headers.get("etag") or resp.headers.get("last-modified")
            total = _announced_total(resp, have)
            if total is not None and total > max_bytes:
                raise _Refused(f"announces {total} bytes, more than the {max_bytes} allowed")
            if resp.status_code == 206:
                mode = "ab"
            else:
                have, mode = 0, "wb"  # no resume: the whole file again
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
        return new_validator

    def download_many(
        self, rels: Sequence[str], root: Path, *, max_bytes: int, label: str = ""
    ) -> list[Download]:
        """:meth:`download` each of ``rels`` with at most ``workers`` at once, in order."""
        if not rels:
            return []
        with self.progress_bar(label), ThreadPoolExecutor(self.workers) as pool:
            futures = [pool.submit(self.download, r, root, max_bytes=max_bytes) for r in rels]
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()  # the first error stops what has not started
                raise

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
