"""Typed lookups in a Zarr hierarchy, and reads that name a damaged chunk.

A leaf of :mod:`oathcube.cube`: zarr returns "an array or a group" for every key;
these helpers say which one the caller needs, and fail with a
:class:`~oathcube.errors.CubeError` that names the path otherwise.

:func:`read_checked` is the one read of data that must be whole (pixels, labels,
the split): oathcube writes every chunk of those, even one equal to the fill value,
so a chunk missing from the store is damage, and zarr would otherwise hand back
fill values (zeros: black frames, class 0) without a word.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from zarr.core.sync import sync

from ..errors import CubeError

if TYPE_CHECKING:
    from zarr.core.array_spec import ArrayConfigParams

__all__ = [
    "WRITE_CONFIG",
    "array_at",
    "group_at",
    "dims_of",
    "attr_list",
    "read_rows",
    "read_checked",
    "rows_per_object",
    "DECODE_ERRORS",
]

#: What zarr's codecs raise for a chunk that is cut short or corrupt (zstd: RuntimeError).
DECODE_ERRORS: tuple[type[BaseException], ...] = (RuntimeError, ValueError, OSError, EOFError)


def _fix(array: zarr.Array) -> str:
    """What a user does about a damaged chunk of ``array``: the writer of that array again."""
    path = array.path or ""
    name = path.rpartition("/")[2]
    computed = name.startswith(("features_", "predicted_", "score_"))
    if computed and name != "features_published":
        return (
            "every chunk intact: the cube is damaged; rerun the command that wrote this "
            "array with `overwrite`"
        )
    if path.startswith("stations/") and path.endswith("/pixels"):
        return (
            "every chunk intact: the cube is damaged; ingest the station's raw files again "
            "into a new cube (or restore the cube from a copy)"
        )
    if "/" not in path:  # the labelled images: `oathcube build` wrote every root array
        return (
            "every chunk intact: the cube is damaged; rebuild it with `oathcube build "
            "--overwrite` (or restore it from a copy)"
        )
    return "every chunk intact: the cube is damaged; restore it from a copy, or rebuild it"


#: How oathcube's writers open every array: each chunk is written, even one equal to the
#: fill value, so that a chunk missing from the store always means damage (see
#: :func:`read_checked`), never "all fill".  Given per array (zarr's ``config=``), as
#: xarray's zarr backend does, never set in zarr's global config: the user's process keeps
#: its own settings.
WRITE_CONFIG: ArrayConfigParams = {"write_empty_chunks": True}


def array_at(node: zarr.Group, path: str) -> zarr.Array:
    """The array at ``path`` below ``node``, opened to write every chunk (:data:`WRITE_CONFIG`).

    A typed lookup (zarr returns "an array or a group"); reads are unaffected.
    """
    item = node[path]
    if not isinstance(item, zarr.Array):
        raise CubeError(f"{path} is a group", path=str(node.store), expected="an array")
    return item.with_config(WRITE_CONFIG)


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


def rows_per_object(array: zarr.Array) -> int:
    """Rows of ``array`` in one stored object: a shard where it is sharded, else a chunk.

    Writers go by whole objects, so that no two tasks write one object and a shard is
    written once, not once for each of its chunks; arrays that follow a station's
    pixels row by row (features, predictions) take this as their chunk.
    """
    return int(array.shards[0] if array.shards else array.chunks[0])


def _object_shape(array: zarr.Array) -> tuple[int, ...]:
    """Shape of one stored object of ``array``: a shard where it is sharded, else a chunk."""
    return tuple(int(n) for n in (array.shards or array.chunks))


def _touched(selection: Any, length: int, size: int) -> list[int]:
    """Indices of the objects (of ``size`` along an axis of ``length``) a selection reads."""
    if isinstance(selection, slice):
        start, stop, step = selection.indices(length)
        if step == 1:  # no list of positions: a station may hold 1e9 rows
            return list(range(start // size, -(-stop // size))) if stop > start else []
        positions = np.arange(start, stop, step)
    else:
        positions = np.atleast_1d(np.asarray(selection, dtype=np.int64)) % max(length, 1)
    return sorted({int(p) // size for p in positions})


def _key(array: zarr.Array, index: tuple[int, ...]) -> str:
    """The store key of the object at grid position ``index`` (``c/3/0/0``)."""
    return str(array.metadata.encode_chunk_key(index))


def _label(array: zarr.Array) -> str:
    return array.path or str(array.store_path).rstrip("/").rpartition("/")[2] or "array"


def _missing(array: zarr.Array, keys: list[str]) -> list[str]:
    """The ``keys`` of ``array`` that are not in its store (one concurrent look-up each)."""
    base = array.store_path.path.strip("/")
    store = array.store

    async def look() -> list[bool]:
        return list(
            await asyncio.gather(*(store.exists(f"{base}/{k}" if base else k) for k in keys))
        )

    return [k for k, there in zip(keys, sync(look()), strict=True) if not there]


def _first_bad(array: zarr.Array, grid: list[list[int]]) -> str:
    """The key of the first object in ``grid`` that fails to decode on its own."""
    shape = _object_shape(array)
    for index in itertools.product(*grid):
        region = tuple(slice(i * s, (i + 1) * s) for i, s in zip(index, shape, strict=True))
        try:
            array[region]
        except DECODE_ERRORS:
            return _key(array, tuple(index))
    return _key(array, tuple(g[0] for g in grid))


def read_checked(
    array: zarr.Array, selection: Any = slice(None), *, where: str = "", whole: bool = True
) -> np.ndarray:
    """An orthogonal selection of ``array``, refusing a chunk that is missing or damaged.

    Only the stored objects (shards, else chunks) that the selection touches are
    looked up and read: a view of one hour never lists the archive.

    Parameters
    ----------
    array
        The Zarr array.
    selection
        One entry per leading axis: a slice, an integer, or integer positions
        (sorted or not); axes left out are read whole.
    where
        The cube's location, for the message.
    whole
        Refuse a chunk missing from the store.  False for arrays whose fill value
        means "not written yet" (predictions): then only undecodable chunks fail.

    Returns
    -------
    numpy.ndarray
        What ``array.get_orthogonal_selection(selection)`` returns.

    Raises
    ------
    CubeError
        A touched chunk is missing (``whole``) or cannot be decoded: one line that
        names the array, the chunk key and what to do.
    """
    if array.ndim == 0:
        try:
            return np.asarray(array[()])
        except DECODE_ERRORS as err:
            raise _damaged(array, "c", err, where) from None
    sel = selection if isinstance(selection, tuple) else (selection,)
    sel = sel + (slice(None),) * (array.ndim - len(sel))
    shape = _object_shape(array)
    grid = [_touched(s, n, c) for s, n, c in zip(sel, array.shape, shape, strict=True)]
    if whole and all(grid):
        keys = [_key(array, tuple(index)) for index in itertools.product(*grid)]
        gone = _missing(array, keys)
        if gone:
            more = f" (and {len(gone) - 1} more)" if len(gone) > 1 else ""
            raise CubeError(
                f"chunk {gone[0]}{more} of {_label(array)} is missing: it would read as "
                f"fill values ({array.fill_value}), not data",
                path=where or str(array.store),
                expected=_fix(array),
            )
    # An integer selects one position and drops the axis, as numpy does.
    squeeze = tuple(i for i, s in enumerate(sel) if isinstance(s, int | np.integer))
    fancy = tuple(np.array([int(s)]) if i in squeeze else s for i, s in enumerate(sel))
    try:
        out = np.asarray(array.get_orthogonal_selection(fancy))
    except DECODE_ERRORS as err:
        raise _damaged(array, _first_bad(array, grid), err, where) from None
    return out.squeeze(axis=squeeze) if squeeze else out


def _damaged(array: zarr.Array, key: str, err: BaseException, where: str) -> CubeError:
    first = str(err).splitlines()[0] if str(err) else ""
    return CubeError(
        f"chunk {key} of {_label(array)} cannot be read ({type(err).__name__}: {first})",
        path=where or str(array.store),
        expected=_fix(array),
    )


def read_rows(
    array: zarr.Array, start: int | None = None, stop: int | None = None, *, where: str = ""
) -> np.ndarray:
    """Rows ``start:stop`` of ``array``; a chunk that cannot be decoded is named in the error.

    Zarr reports a damaged chunk as whatever its codec raises (zstd says
    ``RuntimeError``); oathcube turns it into a :class:`CubeError` that names the
    array and the chunk, so that users know what to rebuild.  A chunk missing from
    the store reads as fill values here (features and predictions not computed yet);
    data that must be whole go through :func:`read_checked`.
    """
    return read_checked(array, slice(start, stop), where=where, whole=False)


def attr_list(node: zarr.Group | zarr.Array, key: str) -> list[str]:
    """A list-valued attribute (``sources``, ``skipped``) as strings; [] when absent."""
    value = node.attrs.get(key)
    return [str(v) for v in value] if isinstance(value, list) else []
