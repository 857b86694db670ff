"""Writing into a cube's arrays: rows chunked along one axis, label coordinates, regions.

The zarr-level pieces under :class:`~oathcube.cube.store.Cube`'s row methods
(:meth:`~oathcube.cube.rows.CubeRows.create` creates arrays from a
:class:`~oathcube.cube.schema.VariableSpec`; stages call those, not this module).
Where a cube comes from and when it counts as complete is :mod:`oathcube.cube.store`'s
business; this module knows no archive format.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from ..faults import kill_point
from .nodes import WRITE_CONFIG

if TYPE_CHECKING:
    from .store import Cube

__all__ = ["create_rows", "write_labels", "write_region"]


def create_rows(
    node: zarr.Group,
    name: str,
    shape: tuple[int, ...],
    rows_per_chunk: int,
    dtype: str,
    fill_value: Any,
    dims: list[str],
    attrs: dict[str, Any] | None = None,
) -> zarr.Array:
    """Create (replace) an array chunked along its first axis only, with its dimension names.

    The fill value marks rows not written yet, which is how resumable runs find their work.
    """
    return node.create_array(
        name=name,
        shape=shape,
        chunks=(rows_per_chunk, *shape[1:]),
        dtype=dtype,
        fill_value=fill_value,
        dimension_names=dims,
        attributes=attrs or {},
        overwrite=True,
        config=WRITE_CONFIG,
    )


def write_labels(node: zarr.Group, dim: str, labels: Sequence[str]) -> None:
    """Write a string coordinate ``dim`` (class or feature names) into ``node``."""
    coord = node.create_array(
        name=dim,
        shape=(len(labels),),
        dtype=str,
        dimension_names=[dim],
        overwrite=True,
        config=WRITE_CONFIG,
    )
    coord[:] = np.asarray(labels, dtype=object)


def write_region(cube: Cube, name: str, start: int, block: np.ndarray) -> int:
    """Write ``block`` into array ``name`` of ``cube`` at ``start`` along axis 0.

    Returns the number of rows written (progress bars count them).
    """
    rows = cube.write_rows(name, start, block)
    kill_point("write.region")
    return rows
