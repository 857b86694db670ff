"""Compiled (numba) kernels of the 16 -> 8-bit preparation of raw frames.

:mod:`oathcube.rawprep` defines the preparation with numpy; these kernels do the two
steps that dominate its cost, frame by frame in one pass each, with the GIL released (so
that the threads of a dask ingest prepare frames side by side):

* :func:`order_statistics`: the order statistics of the kept pixels of each frame, read
  off a histogram that is counted, walked and cleared per frame (a 16-bit histogram stays
  in cache; nothing is sorted);
* :func:`scale_and_mask`: ``rint(clip((x - lo) * scale, 0, 255))`` as ``uint8`` inside the
  mask, 0 outside, in the same float32 operations as the numpy code, so that the bytes
  are the same (tests compare them on many inputs).

Why numba: the numpy path makes several passes over float32 copies of each chunk and
holds the GIL between its calls; a fused pass is about five times cheaper (see
``scripts/bench_scale.py`` and the note of issue 11).  Compiled code is cached on disk
(``cache=True``) so that a process pays the compilation once; where the cache directory
cannot be written numba compiles in memory instead.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["order_statistics", "scale_and_mask"]


@numba.njit(nogil=True, cache=True)
def _order_statistics(
    frames: np.ndarray, kept: np.ndarray, ranks: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled; tested through order_statistics
    counts = np.zeros(65536, dtype=np.int64)
    for i in range(frames.shape[0]):
        row = frames[i]
        low = 65535
        high = 0
        for j in kept:
            value = row[j]
            counts[value] += 1
            low = min(low, value)
            high = max(high, value)
        # The smallest value whose cumulative count exceeds the rank is the order
        # statistic at that (0-based) rank: numpy's searchsorted(cum, rank, "right").
        total = 0
        k = 0
        for value in range(low, high + 1):
            total += counts[value]
            while k < ranks.shape[0] and total > ranks[k]:
                out[i, k] = value
                k += 1
            counts[value] = 0


@numba.njit(nogil=True, cache=True)
def _scale_and_mask(
    frames: np.ndarray, lo: np.ndarray, scale: np.ndarray, keep: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled; tested through scale_and_mask
    for i in range(frames.shape[0]):
        row = frames[i]
        dest = out[i]
        low = lo[i]
        factor = scale[i]
        for j in range(row.shape[0]):
            if keep[j]:
                # float32 throughout, as numpy's in-place (chunk - lo) * scale.
                value = (np.float32(row[j]) - low) * factor
                value = min(max(value, np.float32(0.0)), np.float32(255.0))
                dest[j] = np.uint8(np.rint(value))
            else:
                dest[j] = 0


def order_statistics(frames: np.ndarray, kept: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Order statistics of the kept pixels of each frame.

    Parameters
    ----------
    frames
        ``(n, y, x)`` ``uint8`` or ``uint16``.
    kept
        Flat indices (into ``y * x``) of the pixels counted, at least one.
    ranks
        0-based ranks, each in ``0 .. len(kept) - 1``, in any order.

    Returns
    -------
    numpy.ndarray
        ``(len(ranks), n)`` ``float32``: row ``k`` holds the value of rank ``ranks[k]``
        among the kept pixels of each frame, as ``np.sort(frame.ravel()[kept])[rank]``.
    """
    n = frames.shape[0]
    flat = np.ascontiguousarray(frames).reshape(n, -1)
    ranks = np.asarray(ranks, dtype=np.int64)
    order = np.argsort(ranks, kind="stable")
    found = np.empty((n, ranks.size), dtype=np.float32)
    _order_statistics(flat, np.asarray(kept, dtype=np.int64), ranks[order], found)
    out = np.empty((ranks.size, n), dtype=np.float32)
    out[order] = found.T
    return out


def scale_and_mask(
    frames: np.ndarray, lo: np.ndarray, scale: np.ndarray, keep: np.ndarray
) -> np.ndarray:
    """``uint8`` frames: ``rint(clip((x - lo) * scale, 0, 255))`` where kept, 0 elsewhere.

    Parameters
    ----------
    frames
        ``(n, y, x)`` ``uint8`` or ``uint16``.
    lo, scale
        ``(n,)`` ``float32``: each frame's offset and factor.
    keep
        ``(y, x)`` ``bool``: the pixels kept.

    Returns
    -------
    numpy.ndarray
        ``(n, y, x)`` ``uint8``.
    """
    n = frames.shape[0]
    out = np.empty(frames.shape, dtype=np.uint8)
    _scale_and_mask(
        np.ascontiguousarray(frames).reshape(n, -1),
        np.ascontiguousarray(lo, dtype=np.float32),
        np.ascontiguousarray(scale, dtype=np.float32),
        np.ascontiguousarray(keep, dtype=np.bool_).reshape(-1),
        out.reshape(n, -1),
    )
    return out
