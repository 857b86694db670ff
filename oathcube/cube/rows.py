"""Row operations of a cube: create from a spec, write, read, commit, repair.

:class:`CubeRows` holds the methods of :class:`~oathcube.cube.store.Cube` that work
on rows of arrays (its base class: the Cube is the one door every stage writes and
reads through).  Paths are below the cube's root (``pixels``,
``stations/fsmi/features_handcrafted``; :func:`~oathcube.cube.schema.variable_path`
builds one); groups are ``None`` (the root) or a group path.  Arrays are created from
a :class:`~oathcube.cube.schema.VariableSpec`, so that dims, dtypes, fills, chunks and
attributes are the schema's; the zarr work is done by :mod:`oathcube.cube.nodes`
(typed look-ups, reads that name a damaged chunk) and :mod:`oathcube.cube.commit`
(committed rows), which nothing outside :mod:`oathcube.cube` imports.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from ..errors import CubeError
from .commit import committed_rows, repair_rows, row_arrays
from .nodes import WRITE_CONFIG, array_at, attr_list, dims_of, read_checked, rows_per_object
from .schema import (
    BUILDING,
    COMMITTED_ROWS,
    COMPLETE,
    PENDING,
    STATUS,
    TIME_ENCODING,
    VariableSpec,
    labels_spec,
)

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["CubeRows", "decode_times"]


def decode_times(array: zarr.Array, stop: int, start: int = 0) -> np.ndarray:
    """Stored times ``start:stop`` of a ``time`` array as ``datetime64[ns]`` (its CF units)."""
    if stop <= start:
        return np.array([], dtype="datetime64[ns]")
    from xarray.coding.times import decode_cf_datetime

    units = str(array.attrs.get("units", TIME_ENCODING["units"]))
    calendar = str(array.attrs.get("calendar", TIME_ENCODING["calendar"]))
    decoded = decode_cf_datetime(np.asarray(array[start:stop]), units, calendar)
    return np.asarray(decoded, dtype="datetime64[ns]")


class CubeRows:
    """The row operations of a :class:`~oathcube.cube.store.Cube` (its base class).

    The Cube provides the store (``root``, ``group``, ``array``, ``location``, the
    mode check); these methods are what every stage does with rows.
    """

    location: str

    # -- provided by Cube (declared for type checkers; Cube overrides each) ----------------

    @property
    def root(self) -> zarr.Group:  # pragma: no cover - Cube's
        raise NotImplementedError

    def group(self, path: str | None = None) -> zarr.Group:  # pragma: no cover - Cube's
        raise NotImplementedError

    def array(self, path: str) -> zarr.Array:  # pragma: no cover - Cube's
        raise NotImplementedError

    def where(self, group: str | None = None) -> str:  # pragma: no cover - Cube's
        raise NotImplementedError

    def refresh(self) -> None:  # pragma: no cover - Cube's
        raise NotImplementedError

    def require_writable(self) -> None:  # pragma: no cover - Cube's
        raise NotImplementedError

    # -- what an array is ------------------------------------------------------------------

    def dims(self, path: str) -> tuple[str, ...]:
        """Dimension names of the array at ``path`` (empty when it has none)."""
        return dims_of(self.array(path))

    def rows_per_chunk(self, path: str) -> int:
        """Rows of the array at ``path`` in one stored object (a shard, else a chunk).

        Writers go by whole objects, so that no two tasks write one; arrays that follow
        a station's pixels row by row (features, predictions) take this as their chunk.
        """
        return rows_per_object(self.array(path))

    def attr_list(self, path: str | None, key: str) -> list[str]:
        """A list-valued attribute (``sources``, ``skipped``) of a group or array; [] if absent."""
        if not path:
            return attr_list(self.root, key)
        if path not in self.root:
            raise CubeError(f"no group or array {path!r}", path=self.location)
        return attr_list(self.root[path], key)

    # -- committed rows ----------------------------------------------------------------------

    def committed_rows(self, group: str | None = None) -> int:
        """Rows of ``group`` a writer committed (``oathcube_rows``; else all of ``pixels``)."""
        return committed_rows(self.group(group))

    def repair_rows(self, group: str | None, dim: str = "time") -> int:
        """Give every ``dim``-indexed array of ``group`` exactly the committed length.

        Rows a writer never committed (a killed ingest) are dropped, arrays shorter than
        it (features, predictions from before the last append) are extended with their
        fill value ("not computed yet"), and an ingest's unfinished plan is given up.
        Returns the committed length.
        """
        self.require_writable()
        return repair_rows(self.group(group), dim)

    def extend_rows(self, group: str | None, n_rows: int, dim: str = "time") -> None:
        """Give every ``dim``-indexed array of ``group`` ``n_rows`` rows (new ones: fill)."""
        self.require_writable()
        for array in row_arrays(self.group(group), dim):
            if array.shape[0] != n_rows:
                array.resize((n_rows, *array.shape[1:]))

    def resize(self, path: str, n_rows: int) -> None:
        """Give the array at ``path`` ``n_rows`` rows (new rows read as its fill value)."""
        self.require_writable()
        array = self.array(path)
        if array.shape[0] != n_rows:
            array.resize((n_rows, *array.shape[1:]))

    def pending(self, group: str | None) -> Any:
        """The append an ingest planned in ``group`` and has not committed (or None)."""
        return self.group(group).attrs.get(PENDING)

    def plan_rows(self, group: str | None, plan: Any) -> None:
        """Record the append a writer is about to make (read back by :meth:`pending`)."""
        self.require_writable()
        self.group(group).attrs[PENDING] = plan

    def commit_rows(self, group: str | None, n_rows: int, **attrs: Any) -> None:
        """Commit ``n_rows`` rows of ``group``, with ``attrs``, in one metadata write.

        Called after the rows' values are durably in their chunks; it also clears the
        plan (:meth:`plan_rows`) those rows belonged to.
        """
        self.require_writable()
        self.group(group).attrs.update({COMMITTED_ROWS: n_rows, **attrs, PENDING: None})

    # -- status of a group -------------------------------------------------------------------

    def status_of(self, group: str | None = None) -> str | None:
        """``oathcube_status`` of ``group`` (``building``, ``complete``; None if unset)."""
        value = self.group(group).attrs.get(STATUS)
        return None if value is None else str(value)

    def mark_building(self, group: str | None = None) -> None:
        """Mark ``group`` ``building``: readers skip it until :meth:`mark_complete`."""
        self.require_writable()
        self.group(group).attrs[STATUS] = BUILDING

    def mark_complete(self, group: str | None = None) -> None:
        """Mark ``group`` ``complete``: the commit of a model or skymap, written last."""
        self.require_writable()
        self.group(group).attrs[STATUS] = COMPLETE

    # -- creating ----------------------------------------------------------------------------

    def create_group(
        self, path: str, attrs: dict[str, Any] | None = None, *, overwrite: bool = False
    ) -> zarr.Group:
        """Create the group ``path`` with ``attrs`` (``overwrite``: replace one there)."""
        self.require_writable()
        return self.root.create_group(path, attributes=attrs or {}, overwrite=overwrite)

    def create(
        self,
        spec: VariableSpec,
        shape: tuple[int, ...],
        *,
        group: str | None = None,
        overwrite: bool = False,
    ) -> zarr.Array:
        """Create the array ``spec`` describes in ``group``, of ``shape``.

        Dims, dtype, fill value, chunks (and shards), compressors and attributes are
        the spec's; the array writes every chunk, even one equal to the fill value, so
        that a chunk missing from the store always means damage.

        Parameters
        ----------
        spec
            The variable (:mod:`oathcube.cube.schema`).
        shape
            Its shape: rows first, then the rest (features, classes, frame size).
        group
            ``None`` (the root) or a group path.
        overwrite
            Replace an array of that name (and its chunks).

        Raises
        ------
        CubeError
            ``shape`` has another number of dimensions than the spec.
        """
        self.require_writable()
        shape = tuple(int(n) for n in shape)
        if len(shape) != len(spec.dims):
            raise CubeError(
                f"{spec.name} of shape {shape}",
                path=self.where(group),
                expected=f"{len(spec.dims)} dimensions ({', '.join(spec.dims)})",
            )
        extra: dict[str, Any] = {}
        if spec.fill_value is not None:
            extra["fill_value"] = spec.fill_value
        if spec.compressors is not None:
            extra["compressors"] = spec.compressors
        return self.group(group).create_array(
            name=spec.name,
            shape=shape,
            chunks=spec.chunks(shape) or "auto",
            shards=spec.shards(shape),
            dtype=spec.stored_dtype,
            dimension_names=list(spec.dims),
            attributes=spec.stored_attrs(),
            overwrite=overwrite,
            config=WRITE_CONFIG,
            **extra,
        )

    def write_labels(self, group: str | None, dim: str, labels: Sequence[str]) -> None:
        """Write (replace) the string coordinate ``dim`` of ``group``: feature or class names."""
        coord = self.create(labels_spec(dim), (len(labels),), group=group, overwrite=True)
        coord[:] = np.asarray(labels, dtype=object)

    def write_dataset(
        self, ds: xr.Dataset, group: str | None = None, *, compute: bool = True
    ) -> Any:
        """Write ``ds`` as the group ``group`` (replacing it), every chunk stored.

        For groups written whole through xarray (the labelled images' template, a
        model); build its variables with :meth:`~oathcube.cube.schema.VariableSpec.variable`.
        ``compute=False`` writes the metadata and small variables and returns what
        xarray returns for the rest (regions are filled with :meth:`write_rows`).
        """
        self.require_writable()
        # Every chunk written, even one equal to the fill value: a missing one is damage.
        options: dict[str, Any] = {
            "group": group,
            "mode": "w",
            "zarr_format": 3,
            "consolidated": False,
            "write_empty_chunks": True,
        }
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
            if compute:
                out: Any = ds.to_zarr(self.root.store, compute=True, **options)
            else:
                out = ds.to_zarr(self.root.store, compute=False, **options)
        if not group:
            self.refresh()  # the root group's metadata was replaced
        return out

    # -- writing and reading rows ------------------------------------------------------------

    def write_rows(self, path: str, start: int, block: np.ndarray) -> int:
        """Write ``block`` into the array at ``path`` from row ``start``; return its rows.

        Writers write whole stored objects (:meth:`rows_per_chunk`), so that no two
        tasks write one.
        """
        self.require_writable()
        block = np.asarray(block)
        self.array(path)[start : start + block.shape[0]] = block
        return int(block.shape[0])

    def read_rows(self, path: str, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` of the array at ``path``; a chunk that cannot be decoded is named.

        A chunk missing from the store reads as the fill value ("not computed yet" for
        features and predictions); data that must be whole go through
        :meth:`read_checked`.

        Raises
        ------
        CubeError
            A chunk in the range is damaged (truncated, corrupt): the error names it.
        """
        return read_checked(self.array(path), slice(start, stop), where=self.location, whole=False)

    def read_checked(
        self, path: str, selection: Any = slice(None), *, whole: bool = True
    ) -> np.ndarray:
        """An orthogonal selection of the array at ``path``, refusing a missing or damaged chunk.

        Parameters
        ----------
        path
            The array below the root.
        selection
            One entry per leading axis: a slice, an integer, or integer positions.
        whole
            Refuse a chunk missing from the store (pixels, labels, the split: every
            chunk of those is written).  False for arrays whose fill value means "not
            written yet": then only undecodable chunks fail.

        Raises
        ------
        CubeError
            A touched chunk is missing (``whole``) or cannot be decoded.
        """
        return read_checked(self.array(path), selection, where=self.location, whole=whole)

    def read_times(self, group: str | None, stop: int | None = None, start: int = 0) -> np.ndarray:
        """Times ``start:stop`` of ``group``'s ``time`` (default: its committed rows), decoded.

        Returns ``datetime64[ns]`` whatever CF units the array records.
        """
        node = self.group(group)
        end = committed_rows(node) if stop is None else stop
        return decode_times(array_at(node, "time"), end, start)
