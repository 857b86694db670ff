"""The fixed, pinned downloads: the OATH tarball and the Inception-v4 and Aurora-FM checkpoints.

Each is one published file at one URL (or a mirror of it), verified before it gets its
name: the OATH tarball against the SHA-256 its server publishes beside it, the
checkpoint tarball member by member before only ``inception_v4.ckpt`` is unpacked, with
both SHA-256 recorded in ``inception_v4.json`` (no checksum is published for it), and
Aurora-FM's file against the size and SHA-256 pinned in :mod:`oathcube.fetch.sources`.
"""

from __future__ import annotations

import json
import logging
import os
import tarfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from ..datadir import CHECKPOINT_NAME, aurora_fm_dir, checkpoint_dir, data_dir
from ..errors import FetchError
from ..outputs import replacing
from . import sources as src
from .common import make_fetcher, out_dir
from .http import Fetcher, check_base_urls, set_aside, sha256_of

__all__ = [
    "fetch_oath",
    "fetch_checkpoint",
    "fetch_aurora_fm",
    "parse_sha256sums",
    "CHECKPOINT_RECORD",
]

log = logging.getLogger(__name__)

#: The JSON file written beside the unpacked checkpoint: where it came from, its SHA-256.
CHECKPOINT_RECORD = "inception_v4.json"

# The most bytes each kind of file may have: a server that sends more is refused.
_MAX_SUMS = 1 << 20
_MAX_OATH = 4 << 30  # the published tarball is ~500 MB
_MAX_CHECKPOINT_TGZ = 1 << 30  # the published tarball is ~160 MB


def parse_sha256sums(text: str, name: str, where: str) -> str:
    """The hex SHA-256 that a ``sha256sum``-style file gives for ``name``.

    Parameters
    ----------
    text
        The sums file's text: lines ``<hex digest>  <name>`` (``*<name>`` in binary mode;
        a name may carry a folder, only its last part is compared).
    name
        The file whose digest is wanted.
    where
        Where ``text`` came from, named in errors.

    Returns
    -------
    str
        64 lower-case hex digits.

    Raises
    ------
    FetchError
        ``name`` is not listed, or listed with something that is not a SHA-256.

    Examples
    --------
    >>> sums = "3F" * 32 + "  oath_v1.1_20181026.tgz\\n"
    >>> parse_sha256sums(sums, "oath_v1.1_20181026.tgz", "SHA256SUM_v1.1")[:8]
    '3f3f3f3f'
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
    progress: bool = False,
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
    timeout, retries
        See :class:`oathcube.fetch.http.Fetcher`.
    progress
        Show a byte counter on stderr.

    Returns
    -------
    Path
        The verified tarball, ready for :func:`oathcube.build` (``oathcube build``).

    Raises
    ------
    OptionError
        ``out`` is not a folder, a base URL is not http(s), or ``timeout`` or
        ``retries`` is out of range.
    FetchError
        No server reachable; the sums file does not list the tarball; the tarball is on
        no server, or its SHA-256 is not the listed one.

    Examples
    --------
    >>> tarball = fetch_oath()  # doctest: +SKIP
    >>> tarball.name  # doctest: +SKIP
    'oath_v1.1_20181026.tgz'
    """
    root = out_dir(out, data_dir() / "oath")
    fetcher = make_fetcher(
        base_urls,
        src.OATH_BASE,
        f"download {src.OATH_TARBALL} yourself and pass it to `oathcube build`, or give "
        "`base_urls` of a mirror",
        timeout=timeout,
        retries=retries,
        workers=1,
        progress=progress,
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
    progress: bool = False,
) -> Path:
    """Fetch the TF-slim ``inception_v4_2016_09_09.tar.gz`` and unpack ``inception_v4.ckpt``.

    The tarball is checked before it gets its name: it lists to its end, no member has
    an absolute path or ``..``, none is a link or device, and one is ``inception_v4.ckpt``
    (a tarball that fails is moved aside, so that a rerun fetches it again).  Only the
    checkpoint is unpacked (with :mod:`tarfile`'s ``data`` filter as well), under a
    temporary name, and both SHA-256 are recorded in ``inception_v4.json`` beside it (no
    checksum is published for this tarball).  A checkpoint already there with its record
    is checked against the record and returned without a request.

    Parameters
    ----------
    out
        Folder to write to (default: ``inception_v4/`` in the data folder, where
        Inception-v4 features look when no checkpoint is given).
    base_urls
        Where the tarball is (default ``http://download.tensorflow.org/models``).
    timeout, retries
        See :class:`oathcube.fetch.http.Fetcher`.
    progress
        Show a byte counter on stderr.

    Returns
    -------
    Path
        ``inception_v4.ckpt``.

    Raises
    ------
    OptionError
        ``out`` is not a folder, a base URL is not http(s), or ``timeout`` or
        ``retries`` is out of range.
    FetchError
        No server reachable; the tarball is on no server, will not list or unpack, or
        holds something refused; a checkpoint already there is not the one recorded.

    Examples
    --------
    >>> ckpt = fetch_checkpoint()  # doctest: +SKIP
    >>> ckpt.name  # doctest: +SKIP
    'inception_v4.ckpt'
    """
    root = out_dir(out, checkpoint_dir())
    ckpt = root / CHECKPOINT_NAME
    record = root / CHECKPOINT_RECORD
    if ckpt.is_file() and record.is_file():
        _check_recorded(ckpt, record)
        log.info("%s is already there", ckpt)
        return ckpt
    fetcher = make_fetcher(
        base_urls,
        src.CHECKPOINT_BASE,
        f"download {src.CHECKPOINT_TARBALL} yourself, unpack it, and give PATH/"
        f"{CHECKPOINT_NAME} as the features' checkpoint (`oathcube features --checkpoint`), "
        "or set OATHCUBE_INCEPTION_V4_CHECKPOINT",
        timeout=timeout,
        retries=retries,
        workers=1,
        progress=progress,
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


# --------------------------------------------------------------------------- Aurora-FM
def _aurora_fm_source() -> str:
    """Where Aurora-FM's file comes from, for messages (read at call time: tests pin others)."""
    return (
        f"{src.AURORA_FM_FILE} of Hugging Face's {src.AURORA_FM_REPO} "
        f"({src.AURORA_FM_LICENSE}, {src.AURORA_FM_BASE}/{src.AURORA_FM_FILE})"
    )


def _aurora_fm_hint() -> str:
    """What the user can do without a server: the end of every "cannot reach" error."""
    return (
        f"it is {_aurora_fm_source()}: download it yourself and give its path with "
        "`--checkpoint`, or set OATHCUBE_AURORA_FM_CHECKPOINT, or give `base_urls` of a mirror"
    )


def _check_pinned(path: Path) -> None:
    """Refuse a file that is not Aurora-FM's as pinned: its size first, then its SHA-256.

    Raises
    ------
    FetchError
        The message says what was expected and what was found.
    """
    size, pinned = path.stat().st_size, src.AURORA_FM_SHA256.lower()
    if size != src.AURORA_FM_SIZE:
        raise FetchError(
            f"{src.AURORA_FM_FILE} has {size:,} bytes, not the pinned {src.AURORA_FM_SIZE:,}"
        )
    digest = sha256_of(path)
    if digest != pinned:
        raise FetchError(f"{src.AURORA_FM_FILE} has SHA-256 {digest}, not the pinned {pinned}")


def fetch_aurora_fm(
    out: str | os.PathLike[str] | None = None,
    *,
    base_urls: Sequence[str] | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    progress: bool = False,
) -> Path:
    """Fetch Aurora-FM's weights, ``aurora-fm-no-finetune.tar``, verified as pinned.

    The file of Hugging Face's ``Jwjohnson314/Aurora-FM`` (CC-BY-4.0; 45,965,389 bytes),
    a PyTorch zip-format ``state_dict`` despite its ``.tar``: it is used as it is, never
    unpacked.  It gets its name only once its size and SHA-256 equal those pinned in
    :mod:`oathcube.fetch.sources`; a server that sends more bytes is cut off as soon as
    it does, and a whole file that differs is moved aside to ``NAME.refused-<n>`` (a
    rerun downloads it again).  An interrupted download is resumed where it stopped.
    A file already there is checked (size, then SHA-256) and returned without any
    request; one that no longer matches is refused and left as it is.

    Parameters
    ----------
    out
        Folder to write to (default: ``aurora_fm/`` in the data folder, where
        :func:`oathcube.datadir.fetched_aurora_fm` finds it).
    base_urls
        Where the file is, tried in order (default
        ``https://huggingface.co/Jwjohnson314/Aurora-FM/resolve/main``; redirects to
        http(s) URLs are followed).
    timeout, retries
        See :class:`oathcube.fetch.http.Fetcher`.
    progress
        Show a byte counter on stderr.

    Returns
    -------
    Path
        The verified ``aurora-fm-no-finetune.tar``.

    Raises
    ------
    OptionError
        ``out`` is not a folder, a base URL is not http(s), or ``timeout`` or
        ``retries`` is out of range.
    FetchError
        No server reachable (the message says where the file comes from, to download
        it by hand); the file is on no server, or what was sent has another size or
        SHA-256 than the pinned ones; a file already there no longer matches them.

    Examples
    --------
    >>> weights = fetch_aurora_fm()  # doctest: +SKIP
    >>> weights.name  # doctest: +SKIP
    'aurora-fm-no-finetune.tar'
    """
    root = out_dir(out, aurora_fm_dir())
    # The options are checked before anything is looked at or asked for.
    fetcher = Fetcher(
        check_base_urls(base_urls, src.AURORA_FM_BASE),
        timeout=timeout,
        retries=retries,
        workers=1,
        progress=progress,
        offline_hint=_aurora_fm_hint(),
    )
    dest = root / src.AURORA_FM_FILE
    try:
        if dest.is_file():
            # Not this run's file (the user's, perhaps): checked, never moved or deleted.
            try:
                _check_pinned(dest)
            except FetchError as err:
                raise FetchError(
                    f"already there, but {err.message}; it is left as it is: move it away "
                    "and rerun to fetch it again",
                    path=dest,
                ) from None
            log.info("%s is already there (size and SHA-256 as pinned)", dest)
            return dest
        with fetcher.progress_bar(src.AURORA_FM_FILE):
            got = fetcher.download(
                src.AURORA_FM_FILE,
                root,
                max_bytes=src.AURORA_FM_SIZE,
                check=_check_pinned,
                # A PyTorch zip under a .tar name: its pinned bytes say more than a format.
                by_name=False,
            )
    finally:
        fetcher.close()
    if got.path is None:
        raise FetchError(
            f"{src.AURORA_FM_FILE} is not on any of {', '.join(fetcher.bases)}; "
            + _aurora_fm_hint()
        )
    log.info(
        "%s: %d bytes, SHA-256 %s, as pinned", got.path, src.AURORA_FM_SIZE, src.AURORA_FM_SHA256
    )
    return got.path
