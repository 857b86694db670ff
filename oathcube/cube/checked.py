"""Datasets whose every read goes through the chunk check (:func:`~.nodes.read_checked`).

xarray reads a chunk missing from the store as fill values (zeros: black frames,
class 0) without a word.  :func:`checked` wraps a group's Dataset so that each read,
still lazy and of only the chunks selected, refuses a missing chunk of data that must
be whole (pixels, labels, the split) and names any chunk that cannot be decoded.
Views and timelines read stations through it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
import zarr
from xarray.backends import BackendArray
from xarray.core import indexing

from .nodes import array_at, read_checked
from .store import Cube

__all__ = ["WHOLE", "checked"]

#: Arrays whose every chunk is written (a missing one is damage, not "not computed yet").
WHOLE: tuple[str, ...] = ("pixels", "class6", "class2", "split", "rot_angle", "label")


class _CheckedArray(BackendArray):
    """A Zarr array that xarray indexes lazily, each read going through ``read_checked``."""

    def __init__(self, array: zarr.Array, where: str, whole: bool) -> None:
        self.array = array
        self.where = where
        self.whole = whole
        self.shape = tuple(int(n) for n in array.shape)
        self.dtype = np.dtype(array.dtype)

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        # Outer indexing is what Zarr's orthogonal selection does; xarray decomposes
        # anything else (negative steps, vectorised picks) into that plus numpy.
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._read
        )

    def _read(self, key: tuple[Any, ...]) -> np.ndarray:
        return read_checked(self.array, key, where=self.where, whole=self.whole)


def checked(ds: xr.Dataset, cube: Cube, group: str | None) -> xr.Dataset:
    """``ds`` (of ``cube``'s ``group``) with its stored variables read through the chunk check.

    Pixels and labels (:data:`WHOLE`) refuse a chunk missing from the store or one
    that cannot be decoded; other variables (predictions, scores, features, whose
    fill value means "not computed yet") refuse only an undecodable chunk.  Reads stay
    lazy: only the chunks a view selects are looked up and read.
    """
    node = cube.group(group)
    where = cube.where(group)
    out = ds.copy()
    for name, var in ds.data_vars.items():
        key = str(name)
        if key not in node or not var.dims:
            continue
        array = array_at(node, key)
        if (
            array.ndim != var.ndim
            or np.dtype(array.dtype) != var.dtype
            or any(a < v for a, v in zip(array.shape, var.shape, strict=True))
        ):
            # Not the stored values as they are (CF-decoded, or another array): leave
            # those to xarray's own read.
            continue
        lazy = indexing.LazilyIndexedArray(_CheckedArray(array, where, key in WHOLE))
        if tuple(array.shape) != var.shape:
            # The store may hold rows that no commit has published yet: not for readers.
            lazy = lazy[indexing.BasicIndexer(tuple(slice(0, n) for n in var.shape))]
        out[key] = xr.Variable(var.dims, lazy, var.attrs, var.encoding)
    return out
