"""Which rows of a station are committed: the commit protocol of appends, in one place.

A station group records how many rows of its ``time``-indexed arrays a writer
committed (the ``oathcube_rows`` attribute, written last).  Every writer first
brings the group back to that length (:func:`repair_rows`), and
:meth:`oathcube.cube.store.Cube.publish` does so before it consolidates the
metadata, so that plain xarray readers only ever see committed rows.
"""

from __future__ import annotations

import zarr

from .nodes import array_at

# The attribute names are the schema's; re-exported for the cube's own modules.
from .schema import BUILDING, COMMITTED_ROWS, COMPLETE, PENDING, STATUS

__all__ = [
    "BUILDING",
    "COMMITTED_ROWS",
    "COMPLETE",
    "PENDING",
    "STATUS",
    "committed_rows",
    "repair_rows",
    "row_arrays",
]


def row_arrays(node: zarr.Group, dim: str) -> list[zarr.Array]:
    """The arrays of ``node`` whose first dimension is ``dim`` (pixels, features, ...)."""
    out = []
    for _, array in node.arrays():
        names = getattr(array.metadata, "dimension_names", None) or ()
        if names and names[0] == dim:
            out.append(array)
    return out


def committed_rows(node: zarr.Group) -> int:
    """Rows of ``node`` that a writer committed (all of ``pixels`` where none is recorded)."""
    value = node.attrs.get(COMMITTED_ROWS)
    if isinstance(value, int | float):
        return int(value)
    return int(array_at(node, "pixels").shape[0]) if "pixels" in node else 0


def repair_rows(node: zarr.Group, dim: str = "time") -> int:
    """Give every ``dim``-indexed array of ``node`` exactly the committed length.

    Rows beyond the committed length were written by a writer that never committed
    (a killed ingest): they are dropped.  Arrays shorter than it (features or
    predictions from before the last append) are extended with their fill value,
    which means "not computed yet".  Returns the committed length.
    """
    n = committed_rows(node)
    for array in row_arrays(node, dim):
        if array.shape[0] != n:
            array.resize((n, *array.shape[1:]))
    if node.attrs.get(PENDING) is not None:
        node.attrs[PENDING] = None  # the plan those rows belonged to is given up
    return n
