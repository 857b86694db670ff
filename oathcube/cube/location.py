"""Where a cube is: its location spelled once, checked before anything is written.

A location is an absolute local path or an fsspec URL (``s3://``, ``gs://``,
``memory://``); :func:`normalise_location` gives the one spelling, so that dask
workers in other folders find the same cube.  :func:`check_new_location` and
:func:`refuse_nesting` refuse, before the first write, places where oathcube
would write into (or empty) what it did not make; :func:`probe_store` reaches an
object store once and says in one line what is wrong with it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import CubeError, CubeExistsError, OptionError

__all__ = [
    "is_url",
    "normalise_location",
    "probe_store",
    "refuse_files_on",
    "refuse_nesting",
    "check_new_location",
    "url_fs",
    "zarr_storage",
]


def is_url(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` is an fsspec URL other than ``file://``."""
    text = os.fspath(location)
    return "://" in text and not text.startswith("file://")


def normalise_location(where: str | os.PathLike[str]) -> str:
    """The one spelling of a cube's location: an absolute local path, or a URL.

    ``file:///abs/path`` becomes ``/abs/path``; other URLs (``s3://``,
    ``memory://``, ``gs://``) are kept, without a trailing slash; local paths are
    made absolute, because dask workers may run in another folder.
    """
    text = os.fspath(where)
    if not text:
        raise OptionError("empty cube location", expected="a path or an fsspec URL")
    if text.startswith("file://"):
        text = text.removeprefix("file://")
        if not text.startswith("/"):
            raise OptionError(
                f"file URL {os.fspath(where)!r} is not absolute", expected="file:///absolute/path"
            )
    if is_url(text):
        return text.rstrip("/")
    return os.path.abspath(os.path.expanduser(text))


def url_fs(location: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec file system of ``location`` and the path on it, with its storage options."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(location, **(storage_options or {}))
    return fs, str(path)


def zarr_storage(storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """``storage_options`` as zarr's open functions take them (none for a path)."""
    return {"storage_options": storage_options} if storage_options else {}


#: fsspec protocols whose first path component is a bucket (or container).
_BUCKETED = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss")


def probe_store(location: str, storage_options: dict[str, Any] | None = None) -> None:
    """Reach the object store of a URL ``location`` once, and say in one line what is wrong.

    Missing credentials, an endpoint where nothing listens, a bucket that does not
    exist or one the credentials may not read surface here, before anything is read
    or written, as a :class:`CubeError` that names the URL and what to set, instead
    of a botocore traceback (or an asyncio error) from deep inside a write.  Local
    paths and ``memory://`` need no probe.

    Raises
    ------
    CubeError
        The store cannot be reached or its bucket is missing.
    """
    if not is_url(location):
        return
    try:
        fs, path = url_fs(location, storage_options)
    except (ImportError, ValueError) as err:  # an unknown protocol, or its package missing
        raise OptionError(
            f"cannot open {location} ({type(err).__name__}: {err})",
            expected="a path, or a URL whose fsspec protocol is installed (s3://, gs://, ...)",
        ) from None
    protocol = location.split("://", 1)[0]
    if protocol not in _BUCKETED:
        return
    bucket = path.split("/", 1)[0]
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
    try:
        fs.info(bucket)
    except FileNotFoundError:
        raise CubeError(
            f"bucket {bucket!r} does not exist" + (f" at {endpoint}" if endpoint else ""),
            path=location,
            expected="an existing bucket (oathcube creates cubes, not buckets)",
        ) from None
    except PermissionError:
        raise CubeError(
            f"access to bucket {bucket!r} denied",
            path=location,
            expected="credentials that may list and write the bucket",
        ) from None
    except Exception as err:  # botocore's errors, without importing botocore
        name = type(err).__name__
        if "Credential" in name:
            raise CubeError(
                "no credentials for the object store",
                path=location,
                expected="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) set",
            ) from None
        first = (str(err).splitlines() or [""])[0]
        raise CubeError(
            f"cannot reach the object store ({name}: {first})",
            path=location,
            expected=f"a running endpoint: check AWS_ENDPOINT_URL ({endpoint or 'not set'}) "
            "and the network",
        ) from None


def refuse_files_on(path: Path, expected: str, *, itself: bool) -> None:
    """Refuse a local path that lies below a file (or, with ``itself``, is one)."""
    for step in [path, *path.parents] if itself else path.parents:
        if step.exists() and not step.is_dir():
            raise OptionError(
                "is a file" if step == path else f"{step} is a file",
                path=str(path),
                expected=expected,
            )


def refuse_nesting(source: str | os.PathLike[str], location: str, kind: str) -> None:
    """Refuse a local cube ``location`` that is, or lies inside, ``source``, or holds it.

    Parameters
    ----------
    source
        What the command reads (an archive, a folder of raw files, one file).
    location
        The normalised location of the cube it writes.
    kind
        How messages call the source (``"source"``, ``"source archive"``).

    Raises
    ------
    OptionError
        The cube would be written into its own source, or the source lies inside it.
    """
    if is_url(location) or is_url(os.fspath(source)):
        return
    out, src = Path(location).resolve(), Path(source).resolve()
    if out == src or src in out.parents:
        raise OptionError(
            f"the cube would be written into its own {kind}",
            path=location,
            expected=f"an output path outside the {kind}",
        )
    if out in src.parents:
        raise OptionError(
            f"the {kind} lies inside the cube",
            path=os.fspath(source),
            expected=f"a {kind} outside the cube",
        )


def check_new_location(
    where: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
) -> str:
    """The normalised location, if a new cube may be created there; refuse otherwise.

    A regular file, a path below one, or a folder with content that is not a
    cube is refused: oathcube never writes into, or empties, what it did not make.
    """
    location = normalise_location(where)
    if is_url(location):
        probe_store(location, storage_options)
        return location
    path = Path(location)
    refuse_files_on(path, "a cube, or a path where a new one can be created", itself=True)
    if path.is_dir() and any(path.iterdir()) and not (path / "zarr.json").exists():
        raise CubeExistsError(
            "is a folder that is not a cube",
            path=location,
            expected="a cube, or a new path (oathcube never writes into other folders)",
        )
    return location
