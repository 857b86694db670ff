"""The :class:`Cube`: one object per opened cube, handed from stage to stage.

A cube is a Zarr v3 group at a local path or an fsspec URL.  :class:`Cube` is
opened once per command: it normalises the location once (``file:///abs`` is a
local path, ``s3://`` and ``memory://`` stay URLs, relative paths become
absolute so that worker processes in other folders find the same cube), checks
the mode and the status in one place, and hands out groups, arrays and xarray
Datasets of its one Zarr store.  Library functions take a path *or* a Cube and
call :meth:`Cube.open`, which returns a Cube it is given unchanged; nothing
re-opens a path it was handed.

A Cube pickles as its location and mode (not its open store), so dask tasks on
processes or on a ``dask.distributed`` cluster reopen it once in each worker.
"""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np
import xarray as xr
import zarr
import zarr.errors

from ..errors import CubeError, CubeExistsError, CubeNotFoundError, ModelError, OptionError
from .index import StationTimeIndex
from .schema import MODEL_GROUP, STATION_GROUP, model_group, provenance, station_group

__all__ = [
    "Cube",
    "CubeLike",
    "Mode",
    "normalise_location",
    "check_new_location",
    "is_url",
    "open_cube",
    "open_station",
    "staging",
    "array_at",
    "group_at",
    "dims_of",
    "attr_list",
    "read_rows",
]

Mode = Literal["r", "r+"]

#: What every library function accepts as a cube: a path, an fsspec URL, or a Cube.
CubeLike = Union[str, "os.PathLike[str]", "Cube"]
_MODES: tuple[str, ...] = ("r", "r+")

#: Status attribute of a cube whose writer finished (see docs/cube.md).
COMPLETE = "complete"


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


def check_new_location(where: str | os.PathLike[str]) -> str:
    """The normalised location, if a new cube may be created there; refuse otherwise.

    A regular file, a path below one, or a folder with content that is not a
    cube is refused: oathcube never writes into, or empties, what it did not make.
    """
    location = normalise_location(where)
    if is_url(location):
        return location
    path = Path(location)
    for parent in [path, *path.parents]:
        if parent.is_file():
            raise OptionError(
                "is a file" if parent == path else f"{parent} is a file",
                path=location,
                expected="a cube, or a path where a new one can be created",
            )
    if path.is_dir() and any(path.iterdir()) and not (path / "zarr.json").exists():
        raise CubeExistsError(
            "is a folder that is not a cube",
            path=location,
            expected="a cube, or a new path (oathcube never writes into other folders)",
        )
    return location


def array_at(node: zarr.Group, path: str) -> zarr.Array:
    """The array at ``path`` below ``node`` (a typed lookup: zarr returns array or group)."""
    item = node[path]
    if not isinstance(item, zarr.Array):
        raise CubeError(f"{path} is a group", path=str(node.store), expected="an array")
    return item


def group_at(node: zarr.Group, path: str) -> zarr.Group:
    """The group at ``path`` below ``node``."""
    item = node[path]
    if not isinstance(item, zarr.Group):
        raise CubeError(f"{path} is an array", path=str(node.store), expected="a group")
    return item


def dims_of(array: zarr.Array) -> tuple[str, ...]:
    """Dimension names of a Zarr v3 array (empty when it has none)."""
    names = getattr(array.metadata, "dimension_names", None) or ()
    return tuple(str(n) for n in names)


def read_rows(
    array: zarr.Array, start: int | None = None, stop: int | None = None, *, where: str = ""
) -> np.ndarray:
    """Rows ``start:stop`` of ``array``; a chunk that cannot be decoded is named in the error.

    Zarr reports a damaged chunk as whatever its codec raises (zstd says
    ``RuntimeError``); oathcube turns it into a :class:`CubeError` that names the
    array and the chunk, so that users know what to rebuild.
    """
    try:
        return np.asarray(array[start:stop])
    except (RuntimeError, ValueError, OSError, EOFError) as err:
        size = array.chunks[0] if array.ndim else 1
        lo = (start or 0) // size
        hi = (
            max(lo + 1, -(-(array.shape[0] if stop is None else stop) // size)) if array.ndim else 1
        )
        bad = lo
        for index in range(lo, hi):  # find the first chunk that fails on its own
            try:
                array[index * size : (index + 1) * size]
            except (RuntimeError, ValueError, OSError, EOFError):
                bad = index
                break
        key = "/".join(["c", str(bad), *["0"] * (array.ndim - 1)])
        raise CubeError(
            f"chunk {key} of {array.path} cannot be read ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''})",
            path=where or str(array.store),
            expected="an intact chunk: the cube is damaged; rebuild it, or rerun the "
            "command that wrote this array with --overwrite",
        ) from None


def attr_list(node: zarr.Group | zarr.Array, key: str) -> list[str]:
    """A list-valued attribute (``sources``, ``skipped``) as strings; [] when absent."""
    value = node.attrs.get(key)
    return [str(v) for v in value] if isinstance(value, list) else []


class Cube:
    """An opened cube: its location, mode and status, and its one Zarr store.

    Use :meth:`open` (an existing cube), :meth:`open_or_create` (ingest) or
    :func:`staging` (a new build) rather than the constructor.

    Parameters
    ----------
    location
        Normalised location (see :func:`normalise_location`).
    mode
        ``"r"`` (read only) or ``"r+"`` (read and write existing content).
    root
        The root group, when the caller has just opened or created it.

    Examples
    --------
    >>> cube = Cube.open("oath.zarr")                       # doctest: +SKIP
    >>> cube.labelled().sel(station="fsmi")                 # doctest: +SKIP
    >>> cube.stations(), cube.models()                      # doctest: +SKIP
    """

    def __init__(self, location: str, mode: Mode = "r", root: zarr.Group | None = None) -> None:
        if mode not in _MODES:
            raise OptionError(f"cube mode {mode!r}", expected="'r' or 'r+'")
        self.location = location
        self.mode: Mode = mode
        self._root = root

    # -- opening ----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        where: CubeLike,
        mode: Mode = "r",
        *,
        complete: bool = True,
    ) -> Cube:
        """Open the cube at ``where`` (or return ``where`` itself when it is a Cube).

        Parameters
        ----------
        where
            Path, fsspec URL, or an already opened Cube.
        mode
            ``"r"`` or ``"r+"``; a read-only Cube asked for ``"r+"`` is reopened
            writable at the same location.
        complete
            Refuse a cube whose writer did not finish (status other than complete).

        Raises
        ------
        CubeNotFoundError
            Nothing, or no Zarr group, at ``where``.
        CubeError
            A Zarr v2 store, a group oathcube did not write, or an unfinished cube.
        """
        if mode not in _MODES:
            raise OptionError(f"cube mode {mode!r}", expected="'r' or 'r+'")
        if isinstance(where, Cube):
            cube = where if (mode == "r" or where.mode == "r+") else cls(where.location, mode)
        else:
            cube = cls(normalise_location(where), mode)
        cube.root  # noqa: B018 -- opens the store now, so that a missing cube fails here
        if complete:
            cube.require_complete()
        return cube

    @classmethod
    def open_or_create(cls, where: CubeLike, **attrs: Any) -> Cube:
        """Open a cube for writing, or create an empty one where there is nothing yet.

        Refuses, before writing anything, a location that holds something other
        than a cube (see :func:`check_new_location`).
        """
        try:
            return cls.open(where, "r+")
        except CubeNotFoundError:
            pass
        location = check_new_location(where)
        root = zarr.open_group(location, mode="w-", zarr_format=3)
        root.attrs.update(provenance(**attrs))
        return cls(location, "r+", root)

    @property
    def root(self) -> zarr.Group:
        """The root group, read from the store itself (never from consolidated metadata).

        Consolidated metadata is what plain xarray users see (refreshed when a
        command finishes); oathcube's own reads and writes must see arrays
        created since.
        """
        if self._root is None:
            self._root = self._open_root()
        return self._root

    def refresh(self) -> None:
        """Forget the open root group (after something else rewrote its metadata)."""
        self._root = None

    def _open_root(self) -> zarr.Group:
        if not self.is_url and Path(self.location).is_file():
            raise CubeNotFoundError(
                "is a file, not a cube", path=self.location, expected="a cube folder"
            )
        try:
            node = zarr.open(self.location, mode=self.mode, use_consolidated=False)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeNotFoundError):
            raise CubeNotFoundError(
                "no cube here", path=self.location, expected="a cube written by oathcube"
            ) from None
        if isinstance(node, zarr.Array):
            raise CubeError(
                "is a Zarr array, not a group", path=self.location, expected="an oathcube cube"
            )
        if node.metadata.zarr_format != 3:
            raise CubeError(
                f"is a Zarr v{node.metadata.zarr_format} store",
                path=self.location,
                expected="a Zarr v3 cube written by oathcube",
            )
        return node

    def __reduce__(self) -> tuple[Any, ...]:
        # Tasks carry the location, not an open store; each worker process reopens it once.
        return (_reopen, (self.location, self.mode))

    def __repr__(self) -> str:
        return f"Cube({self.location!r}, mode={self.mode!r})"

    def __str__(self) -> str:
        return self.location

    def __fspath__(self) -> str:
        if is_url(self.location):
            raise TypeError(f"{self.location} is a URL, not a file system path")
        return self.location

    # -- status -----------------------------------------------------------------------

    @property
    def is_url(self) -> bool:
        """Whether the cube lives at a URL (no rename, no local size)."""
        return is_url(self.location)

    @property
    def status(self) -> str:
        """``oathcube_status`` of the root (``complete`` once a writer finished)."""
        return str(self.root.attrs.get("oathcube_status", "unknown"))

    def require_complete(self) -> None:
        """Refuse a cube that oathcube did not write, or whose writer did not finish."""
        status = self.root.attrs.get("oathcube_status")
        if status is None:
            raise CubeError(
                "has no oathcube_status attribute: not written by oathcube",
                path=self.location,
                expected="a cube written by oathcube build or ingest",
            )
        if status != COMPLETE:
            raise CubeError(
                f"cube is {status}, not complete",
                path=self.location,
                expected="a cube whose build finished",
            )

    def require_writable(self) -> None:
        """Refuse to write through a read-only Cube."""
        if self.mode != "r+":
            raise CubeError("opened read-only", path=self.location, expected="mode 'r+'")

    # -- nodes ------------------------------------------------------------------------

    def where(self, group: str | None = None) -> str:
        """``location`` or ``location/group``, for messages."""
        return f"{self.location}/{group}" if group else self.location

    def has(self, path: str) -> bool:
        """Whether a group or array exists at ``path`` below the root."""
        return path in self.root

    def group(self, path: str | None = None) -> zarr.Group:
        """The group at ``path`` (the root for None or ``""``)."""
        if not path:
            return self.root
        if path not in self.root:
            raise CubeError(f"no group {path!r}", path=self.location)
        return group_at(self.root, path)

    def array(self, path: str) -> zarr.Array:
        """The array at ``path`` below the root."""
        if path not in self.root:
            raise CubeError(f"no array {path!r}", path=self.location)
        return array_at(self.root, path)

    def _children(self, parent: str) -> list[str]:
        if parent not in self.root:
            return []
        return sorted(name for name, _ in group_at(self.root, parent).groups())

    def stations(self) -> list[str]:
        """Codes of the stations that have a ``stations/<code>`` group."""
        return self._children(STATION_GROUP)

    def models(self) -> list[str]:
        """Names of the models stored under ``models/``."""
        return self._children(MODEL_GROUP)

    def _require(
        self, kind: str, name: str, have: list[str], error: type[CubeError | ModelError], empty: str
    ) -> None:
        if name not in have:
            raise error(
                f"no {kind} {name!r} in the cube",
                path=self.location,
                expected=f"one of {', '.join(have) or empty}",
            )

    def require_station(self, code: str) -> str:
        """The group path of station ``code``; a CubeError lists the stations otherwise."""
        self._require("station", code, self.stations(), CubeError, "(none ingested)")
        return station_group(code)

    def read(self, path: str, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` of the array at ``path``, naming a chunk that cannot be read.

        Raises
        ------
        CubeError
            A chunk in the range is damaged (truncated, corrupt): the error names it.
        """
        return read_rows(self.array(path), start, stop, where=self.location)

    # -- xarray views -----------------------------------------------------------------

    def dataset(self, group: str | None = None, **kwargs: Any) -> xr.Dataset:
        """The xarray Dataset of ``group`` (the root by default), lazily loaded.

        Read from this Cube's store, never from consolidated metadata, so that
        variables written by the running command are seen.
        """
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*consolidated.*")
            try:
                return xr.open_zarr(self.root.store, group=group, consolidated=False, **kwargs)
            except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError) as err:
                raise CubeError(
                    f"cannot be read as a Dataset ({type(err).__name__}: {err})",
                    path=self.where(group),
                ) from None

    def labelled(self, **kwargs: Any) -> xr.Dataset:
        """The labelled images (root group), selectable by station *and* time.

        ``cube.labelled().sel(station="fsmi", time=slice("2011-01", "2011-02"))``
        works through :class:`~oathcube.cube.index.StationTimeIndex`.
        """
        ds = self.dataset(**kwargs)
        if "station" in ds.coords and "time" in ds.coords:
            ds = ds.set_xindex(["station", "time"], StationTimeIndex)
        return ds

    def station(self, code: str, **kwargs: Any) -> xr.Dataset:
        """One station archive (``stations/<code>``) along its monotonic ``time``."""
        return self.dataset(self.require_station(code), **kwargs)

    def model(self, name: str) -> xr.Dataset:
        """The stored model ``name`` (arrays only), loaded into memory."""
        self._require("model", name, self.models(), ModelError, "(none: run oathcube train)")
        return self.dataset(model_group(name)).load()

    # -- writing ----------------------------------------------------------------------

    def publish(self, **attrs: Any) -> None:
        """Set root attributes and consolidate the metadata of the whole hierarchy.

        Consolidation lets plain ``xr.open_zarr(cube)`` open without a warning; it
        is redone after every change so that it never hides a new variable.
        """
        self.require_writable()
        if attrs:
            self.root.attrs.update(attrs)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
            zarr.consolidate_metadata(self.root.store)

    def size_on_disk(self) -> int | None:
        """Bytes under a local cube folder (None for URLs)."""
        if self.is_url:
            return None
        return sum(f.stat().st_size for f in Path(self.location).rglob("*") if f.is_file())


#: Cubes unpickled in this process (a dask worker), by location and mode: one open each.
_REOPENED: dict[tuple[str, str], Cube] = {}


def _reopen(location: str, mode: Mode) -> Cube:
    key = (location, mode)
    if key not in _REOPENED:
        _REOPENED[key] = Cube(location, mode)
    return _REOPENED[key]


def open_cube(cube: CubeLike, *, chunks: Any = None) -> xr.Dataset:
    """Open a cube's labelled images, indexed by station and time.

    Parameters
    ----------
    cube
        Path, fsspec URL or :class:`Cube`.
    chunks
        Passed to :func:`xarray.open_zarr` (default: the cube's own chunks).

    Returns
    -------
    xarray.Dataset
        ``ds.sel(station="fsmi", time=slice("2011-01-01", "2011-02-01"))`` works.

    Raises
    ------
    CubeError
        No cube at ``cube``, or one that an interrupted build left incomplete.
    """
    kwargs = {} if chunks is None else {"chunks": chunks}
    return Cube.open(cube).labelled(**kwargs)


def open_station(cube: CubeLike, station: str) -> xr.Dataset:
    """Open one station archive (``stations/<code>``) with its monotonic ``time`` index."""
    return Cube.open(cube).station(station)


@contextmanager
def staging(where: str | os.PathLike[str], overwrite: bool) -> Iterator[Cube]:
    """Yield a new, empty, writable Cube; publish it at ``where`` when the block succeeds.

    Local cubes are written into a hidden sibling folder and renamed into place
    (atomic on one file system), so that an interrupted or failed build leaves
    nothing at ``where``.  At URLs (object stores have no rename) the cube is
    written in place and marked complete last, which :meth:`Cube.open` checks.

    Raises
    ------
    CubeExistsError
        Something is at ``where`` and ``overwrite`` is false.
    OptionError
        ``where`` lies below a regular file.
    """
    location = normalise_location(where)
    if is_url(location):
        import fsspec

        fs, path = fsspec.core.url_to_fs(location)
        if fs.exists(path) and not overwrite:
            raise CubeExistsError(
                "cube already exists", path=location, expected="--overwrite to replace it"
            )
        if fs.exists(path):
            fs.rm(path, recursive=True)
        yield Cube(location, "r+", zarr.open_group(location, mode="w", zarr_format=3))
        return
    target = Path(location)
    for parent in target.parents:
        if parent.exists() and not parent.is_dir():
            raise OptionError(
                f"{parent} is a file", path=location, expected="a path whose parents are folders"
            )
    if target.exists() and not overwrite:
        raise CubeExistsError(
            "cube already exists", path=location, expected="--overwrite to replace it"
        )
    if target.exists() and not (target / "zarr.json").exists():
        raise CubeExistsError(
            "is not a cube, and --overwrite replaces only cubes",
            path=location,
            expected="a new path, or an existing cube to replace",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.building-{uuid.uuid4().hex[:8]}"
    try:
        yield Cube(str(tmp), "r+", zarr.open_group(str(tmp), mode="w-", zarr_format=3))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        trash = target.parent / f".{target.name}.replaced-{uuid.uuid4().hex[:8]}"
        target.rename(trash)
        tmp.rename(target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        tmp.rename(target)
