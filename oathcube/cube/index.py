"""An xarray index that selects a cube's labelled images by station *and* time.

Plain xarray refuses two indexes on one dimension, and a ``PandasMultiIndex``
refuses a slice on one of its levels, so ``ds.sel(station="fsmi", time=slice(a, b))``
over the single ``image`` dimension needs a custom :class:`xarray.Index`
(the documented extension API: ``from_variables``, ``sel``, ``isel``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from xarray.core.indexing import IndexSelResult

from ..times import parse_time

__all__ = ["StationTimeIndex"]


def _time_bounds(value: Any) -> tuple[np.datetime64, np.datetime64]:
    """Inclusive bounds of a time label; a string covers its whole resolution like pandas."""
    # The one checked parser first: a year beyond datetime64[ns] must not wrap around.
    stamp = parse_time(value, "time")
    if isinstance(value, str):
        try:
            period = pd.Period(value)
            end = parse_time(period.end_time, "time")
        except (ValueError, OverflowError):
            return stamp, stamp
        return parse_time(period.start_time, "time"), end
    return stamp, stamp


class StationTimeIndex(xr.Index):
    """Select images by station, time, or both, along one dimension.

    Station labels match exactly (a list matches any of them); time labels are
    a slice (inclusive, strings covering their resolution as in pandas) or one
    timestamp (exact match).  Unknown times (NaT) never match a time label.
    """

    def __init__(self, station: np.ndarray, time: np.ndarray, dim: str, names: tuple[str, str]):
        self.station = np.asarray(station, dtype=object)
        self.time = np.asarray(time, dtype="datetime64[ns]")
        self.dim = dim
        self.names = names

    @classmethod
    def from_variables(
        cls, variables: Mapping[Any, xr.Variable], *, options: Mapping[str, Any]
    ) -> StationTimeIndex:
        """Build from the ``station`` and ``time`` coordinates (in that order)."""
        if len(variables) != 2:
            raise ValueError("StationTimeIndex needs exactly two coordinates: station and time")
        (sname, svar), (tname, tvar) = variables.items()
        if np.issubdtype(svar.dtype, np.datetime64):
            (sname, svar), (tname, tvar) = (tname, tvar), (sname, svar)
        if svar.dims != tvar.dims or len(svar.dims) != 1:
            raise ValueError("station and time must share one dimension")
        return cls(svar.values, tvar.values, str(svar.dims[0]), (str(sname), str(tname)))

    def create_variables(
        self, variables: Mapping[Any, xr.Variable] | None = None
    ) -> dict[Any, xr.Variable]:
        """Return the station and time coordinates this index holds (after any subset)."""
        variables = variables or {}
        out: dict[Any, xr.Variable] = {}
        for name, values in zip(self.names, (self.station, self.time), strict=True):
            old = variables.get(name)
            attrs = old.attrs if old is not None else None
            encoding = old.encoding if old is not None else None
            out[name] = xr.Variable(self.dim, values, attrs, encoding)
        return out

    def sel(self, labels: dict[Any, Any], **kwargs: Any) -> IndexSelResult:
        """Positions matching every label given (station and/or time)."""
        if kwargs.get("method") is not None:
            raise ValueError("StationTimeIndex selects exact labels only (no method=)")
        mask = np.ones(self.station.shape, dtype=bool)
        sname, tname = self.names
        scalar = True
        if sname in labels:
            value = labels[sname]
            wanted = [value] if isinstance(value, str) else list(np.atleast_1d(value))
            mask &= np.isin(self.station, wanted)
            scalar = False
        if tname in labels:
            value = labels[tname]
            if isinstance(value, slice):
                lo = _time_bounds(value.start)[0] if value.start is not None else None
                hi = _time_bounds(value.stop)[1] if value.stop is not None else None
                if lo is not None:
                    mask &= self.time >= lo
                if hi is not None:
                    mask &= self.time <= hi
                mask &= ~np.isnat(self.time)
                scalar = False
            else:
                lo, hi = _time_bounds(value)
                mask &= (self.time >= lo) & (self.time <= hi)
        positions = np.flatnonzero(mask)
        if scalar and positions.size == 1:
            return IndexSelResult({self.dim: int(positions[0])})
        if positions.size == 0 and scalar:
            raise KeyError(f"no image at {labels}")
        return IndexSelResult({self.dim: positions})

    def isel(self, indexers: Mapping[Any, Any]) -> StationTimeIndex | None:
        """Subset the index; dropping the dimension drops the index."""
        key = indexers.get(self.dim)
        if key is None:
            return self
        if isinstance(key, xr.Variable):
            key = key.values
        if np.ndim(key) == 0 and not isinstance(key, slice):
            return None
        return StationTimeIndex(self.station[key], self.time[key], self.dim, self.names)

    def equals(self, other: xr.Index, **kwargs: Any) -> bool:
        """True when both index the same stations and times."""
        return (
            isinstance(other, StationTimeIndex)
            and np.array_equal(self.station, other.station)
            and np.array_equal(self.time, other.time, equal_nan=True)
        )

    def __repr__(self) -> str:
        return f"StationTimeIndex({self.names[0]}, {self.names[1]}; {self.station.size} items)"
