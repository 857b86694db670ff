"""Typed lookups in a Zarr hierarchy, and reads that name a damaged chunk.

A leaf of :mod:`oathcube.cube`: zarr returns "an array or a group" for every key;
these helpers say which one the caller needs, and fail with a
:class:`~oathcube.errors.CubeError` that names the path otherwise.
"""

from __future__ import annotations

import numpy as np
import zarr

from ..errors import CubeError

__all__ = ["array_at", "group_at", "dims_of", "attr_list", "read_rows", "rows_per_object"]


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


def rows_per_object(array: zarr.Array) -> int:
    """Rows of ``array`` in one stored object: a shard where it is sharded, else a chunk.

    Writers go by whole objects, so that no two tasks write one object and a shard is
    written once, not once for each of its chunks; arrays that follow a station's
    pixels row by row (features, predictions) take this as their chunk.
    """
    return int(array.shards[0] if array.shards else array.chunks[0])


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
        size = rows_per_object(array) if array.ndim else 1
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
