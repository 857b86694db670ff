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

import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np
import xarray as xr
import zarr
import zarr.errors

from ..errors import CubeError, CubeNotFoundError, ModelError, OptionError
from .commit import repair_rows
from .index import StationTimeIndex
from .location import (
    check_new_location,
    is_url,
    normalise_location,
    probe_store,
    url_fs,
    zarr_storage,
)
from .lock import lock_path, take_lock
from .nodes import array_at, group_at
from .rows import CubeRows, decode_times
from .schema import (
    COMPLETE,
    MODEL_GROUP,
    STATION_GROUP,
    STATUS,
    model_group,
    provenance,
    station_group,
)

__all__ = [
    "Cube",
    "CubeLike",
    "Mode",
    "decode_times",
    "open_cube",
    "open_station",
]

log = logging.getLogger(__name__)

Mode = Literal["r", "r+"]

#: What every library function accepts as a cube: a path, an fsspec URL, or a Cube.
CubeLike = Union[str, "os.PathLike[str]", "Cube"]
_MODES: tuple[str, ...] = ("r", "r+")


class Cube(CubeRows):
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

    def __init__(
        self,
        location: str,
        mode: Mode = "r",
        root: zarr.Group | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        if mode not in _MODES:
            raise OptionError(f"cube mode {mode!r}", expected="'r' or 'r+'")
        self.location = location
        self.mode: Mode = mode
        #: fsspec options of a cube at a URL (credentials, endpoint, ...), given once here
        #: and used by every access, in this process and in dask workers.
        self.storage_options: dict[str, Any] = dict(storage_options or {})
        self._root = root
        self._lock_depth = 0
        #: True for the cube a build is writing (status "building" is expected there).
        self.building = False

    # -- opening ----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        where: CubeLike,
        mode: Mode = "r",
        *,
        complete: bool = True,
        storage_options: dict[str, Any] | None = None,
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
        storage_options
            fsspec options for a cube at a URL (``{"anon": True}``, credentials, an
            endpoint); a Cube given as ``where`` keeps its own.

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
            if storage_options and storage_options != where.storage_options:
                raise OptionError(
                    "storage_options given with an opened Cube that has others",
                    path=where.location,
                    expected="storage_options given once, when the Cube is opened",
                )
            cube = (
                where
                if (mode == "r" or where.mode == "r+")
                else cls(where.location, mode, storage_options=where.storage_options)
            )
        else:
            cube = cls(normalise_location(where), mode, storage_options=storage_options)
        cube.root  # noqa: B018 -- opens the store now, so that a missing cube fails here
        if complete:
            cube.require_complete()
        return cube

    @classmethod
    def open_or_create(
        cls, where: CubeLike, *, storage_options: dict[str, Any] | None = None, **attrs: Any
    ) -> Cube:
        """Open a cube for writing, or create an empty one where there is nothing yet.

        Refuses, before writing anything, a location that holds something other
        than a cube (see :func:`check_new_location`).
        """
        try:
            return cls.open(where, "r+", storage_options=storage_options)
        except CubeNotFoundError:
            pass
        options = where.storage_options if isinstance(where, Cube) else storage_options
        cube = cls(check_new_location(where, options), "r+", storage_options=options)
        cube.ensure(**attrs)
        return cube

    def exists(self) -> bool:
        """Whether a cube is at this location yet (a writer may create it later)."""
        try:
            self.root  # noqa: B018 -- opening is the test
        except CubeNotFoundError:
            return False
        return True

    def ensure(self, **attrs: Any) -> zarr.Group:
        """The root group; where there is no cube yet, a new empty one with ``attrs``.

        Writers call this at their first commit (a station landing), so that a new
        cube appears only once it holds something committed.
        """
        if self.exists():
            return self.root
        self.require_writable()
        check_new_location(self.location, self.storage_options)
        self._root = zarr.open_group(
            self.location, mode="w-", zarr_format=3, **zarr_storage(self.storage_options)
        )
        self._root.attrs.update(provenance(**attrs))
        return self._root

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
        probe_store(self.location, self.storage_options)
        if not self.is_url and Path(self.location).is_file():
            raise CubeNotFoundError(
                "is a file, not a cube", path=self.location, expected="a cube folder"
            )
        try:
            node = zarr.open(
                self.location,
                mode=self.mode,
                use_consolidated=False,
                **zarr_storage(self.storage_options),
            )
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
        return (_reopen, (self.location, self.mode, self.storage_options))

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
        return str(self.root.attrs.get(STATUS, "unknown"))

    def require_complete(self) -> None:
        """Refuse a cube that oathcube did not write, or whose writer did not finish.

        The Cube a build is writing (from :func:`staging`) passes: its own steps
        (features as part of the build) write into it before it is complete.
        """
        if self.building:
            return
        status = self.root.attrs.get(STATUS)
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
        # One lookup, not a membership test and then the lookup: on an object store each
        # is a metadata request, and writers ask once per chunk.
        try:
            return group_at(self.root, path)
        except KeyError:
            raise CubeError(f"no group {path!r}", path=self.location) from None

    def array(self, path: str) -> zarr.Array:
        """The array at ``path`` below the root."""
        try:
            return array_at(self.root, path)
        except KeyError:
            raise CubeError(f"no array {path!r}", path=self.location) from None

    def _children(self, parent: str) -> list[str]:
        if parent not in self.root:
            return []
        return sorted(name for name, _ in group_at(self.root, parent).groups())

    def stations(self) -> list[str]:
        """Codes of the stations that have a ``stations/<code>`` group."""
        return self._children(STATION_GROUP)

    def models(self, *, complete: bool = True) -> list[str]:
        """Names of the models stored under ``models/`` (only whole ones by default).

        ``train`` marks a model complete after its last array is written; a model
        whose training was killed is not listed (``complete=False`` lists it too).
        """
        return [n for n, whole in self._model_states().items() if whole or not complete]

    def _model_states(self) -> dict[str, bool]:
        """Every stored model, and whether its training finished."""
        return {
            n: self.group(model_group(n)).attrs.get(STATUS, COMPLETE) == COMPLETE
            for n in self._children(MODEL_GROUP)
        }

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

    def times(self, station: str) -> np.ndarray:
        """Committed times (``datetime64[ns]``) of a station's frames, read from the store.

        Rows a writer has not committed are left out; the consolidated metadata plays
        no part (a writer's own rows since its last publish are included once committed).
        """
        return self.read_times(self.require_station(station))

    def check_chunks(self, path: str, rows: tuple[int, int] | None = None) -> None:
        """Refuse an array with a chunk missing from the store, naming the chunk.

        oathcube writes every chunk of the arrays it checks this way (pixels,
        labels, split, published features), so a missing one is damage: zarr
        would read it as fill values (zeros: a valid pixel, a valid class), and
        nothing may be computed or scored on those.

        Parameters
        ----------
        path
            The array, e.g. ``pixels`` or ``stations/fsmi/pixels``.
        rows
            Only the chunks that hold rows ``rows[0]:rows[1]`` along the first axis.
        """
        import itertools

        array = self.array(path)
        if array.size == 0 or array.ndim == 0:
            return
        # The stored objects are shards where the array is sharded, else chunks.
        objects = array.shards or array.chunks
        grid = [range(-(-n // c)) for n, c in zip(array.shape, objects, strict=True)]
        if rows is not None and grid:
            size = objects[0]
            grid[0] = range(rows[0] // size, -(-rows[1] // size))
        have = self.stored_chunks(path)
        for index in itertools.product(*grid):
            key = "/".join(map(str, index))
            if key not in have:
                raise CubeError(
                    f"chunk c/{key} of {path} is missing",
                    path=self.location,
                    expected="every chunk of the array: the cube is damaged; rebuild it, or "
                    "rerun the command that wrote this array",
                )

    def stored_chunks(self, path: str) -> set[str]:
        """Keys (``"3/0/0"``) of the chunks (or shards) of array ``path`` in the store.

        One listing, locally or at a URL: oathcube writes every chunk (even one equal
        to the fill value), so a key here means a chunk that was written whole.
        """
        fs, base = url_fs(self.location, self.storage_options)
        prefix = f"{base}/{path}/c"
        if not fs.exists(prefix):
            return set()
        return {f[len(prefix) + 1 :] for f in fs.find(prefix)}

    def read(self, path: str, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` of the array at ``path``, naming a chunk that cannot be read.

        Raises
        ------
        CubeError
            A chunk in the range is damaged (truncated, corrupt): the error names it.
        """
        return self.read_rows(path, start, stop)

    # -- xarray views -----------------------------------------------------------------

    def dataset(self, group: str | None = None, *, live: bool = False, **kwargs: Any) -> xr.Dataset:
        """The xarray Dataset of ``group`` (the root by default), lazily loaded.

        By default this is what every reader sees: the consolidated metadata, which
        each writer refreshes only at its commit points, so rows and variables that
        a running (or killed) writer has not committed are not in it.  ``live=True``
        reads the store itself, as a writer does.
        """
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*consolidated.*")
            try:
                if not live:
                    try:
                        return xr.open_zarr(
                            self.root.store, group=group, consolidated=True, **kwargs
                        )
                    except (KeyError, ValueError, zarr.errors.MetadataValidationError):
                        pass  # never consolidated (not written by this oathcube): read live
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
        states = self._model_states()
        if states.get(name) is False:
            raise ModelError(
                f"model {name!r} is incomplete: its training was interrupted",
                path=self.where(model_group(name)),
                expected="a finished `oathcube train` (run it again)",
            )
        whole = [n for n, done in states.items() if done]
        self._require("model", name, whole, ModelError, "(none: run oathcube train)")
        return self.dataset(model_group(name), live=True).load()

    # -- writing ----------------------------------------------------------------------

    @contextmanager
    def writing(self, command: str) -> Iterator[Cube]:
        """Hold the cube's writer lock while ``command`` writes into it.

        One writer at a time: a second command that writes into the same local
        cube fails at once, naming the first.  The lock is a file beside the cube
        (``.NAME.oathcube-writer.lock``) created exclusively; one
        left by a killed writer on this machine is taken over once its process is
        gone.  Re-entrant within one Cube (``classify`` computes features).  Cubes
        at URLs have no such lock: run one writer at a time there.
        """
        self.require_writable()
        if self._lock_depth or self.is_url:
            self._lock_depth += 1
            try:
                yield self
            finally:
                self._lock_depth -= 1
            return
        lock = lock_path(self.location)
        lock.parent.mkdir(parents=True, exist_ok=True)  # a new cube's folders, for the lock
        take_lock(lock, command, self.location)
        self._lock_depth = 1
        try:
            yield self
        finally:
            self._lock_depth = 0
            lock.unlink(missing_ok=True)

    def publish(self, **attrs: Any) -> None:
        """Set root attributes and consolidate the metadata of the whole hierarchy.

        Consolidation lets plain ``xr.open_zarr(cube)`` open without a warning; it
        is redone after every change so that it never hides a new variable.
        """
        self.require_writable()
        # Rows a killed writer extended but never committed must not become visible.
        for code in self.stations():
            repair_rows(self.group(station_group(code)))
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


#: Cubes unpickled in this process (a dask worker), by location, mode and storage
#: options: one open each.
_REOPENED: dict[tuple[str, str, str], Cube] = {}


def _reopen(location: str, mode: Mode, storage_options: dict[str, Any] | None = None) -> Cube:
    key = (location, mode, json.dumps(storage_options or {}, sort_keys=True, default=str))
    if key not in _REOPENED:
        _REOPENED[key] = Cube(location, mode, storage_options=storage_options)
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
