"""Times and time bins given by users: parsed and checked before any work starts."""

from __future__ import annotations

from typing import Any, overload

import numpy as np
import pandas as pd

from .errors import OptionError

__all__ = ["parse_time", "check_freq", "rows_between", "EARLIEST", "LATEST"]

#: The range of times every command accepts: what ``datetime64[ns]`` (the cube's time
#: type, and pandas') holds, 1677-09-21 to 2262-04-11.  A time outside it would wrap
#: around into another century when cast to nanoseconds (2300-01-01 became 1715).
EARLIEST = np.datetime64(pd.Timestamp.min.ceil("s").to_datetime64(), "ns")
LATEST = np.datetime64(pd.Timestamp.max.floor("s").to_datetime64(), "ns")


@overload
def parse_time(value: None, parameter: str) -> None: ...
@overload
def parse_time(value: Any, parameter: str) -> np.datetime64: ...
def parse_time(value: Any, parameter: str) -> np.datetime64 | None:
    """``value`` as a UTC ``datetime64[ns]`` (None stays None).

    Parameters
    ----------
    value
        An ISO 8601 string (``2011-01-06``, ``2011-01-06T17:00``), a datetime or a
        numpy/pandas time; a zone-aware time is converted to UTC.
    parameter
        The Python parameter it came from (``"start"``), named in the error; a
        command-line flag (``"--start"``) is taken as its parameter, for callers
        that still pass one.

    Raises
    ------
    OptionError
        ``value`` is not a time, or lies outside :data:`EARLIEST` .. :data:`LATEST`.
    """
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        stamp = pd.NaT
    if stamp is pd.NaT:
        raise OptionError(
            f"{value!r} is not a time",
            parameter=parameter,
            expected="an ISO 8601 UTC time such as 2011-01-06T17:00",
        )
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    # pandas keeps years beyond 1677-2262 at a coarser unit; compare before casting to ns.
    raw = stamp.to_datetime64()
    if not (EARLIEST.astype(raw.dtype) <= raw <= LATEST.astype(raw.dtype)):
        raise OptionError(
            f"{value!r} lies outside the times oathcube can hold",
            parameter=parameter,
            expected=f"a UTC time from {str(EARLIEST)[:10]} to {str(LATEST)[:10]}",
        )
    return np.datetime64(raw, "ns")


def check_freq(freq: str) -> str:
    """Refuse a bin width that pandas cannot resample with (before any work starts)."""
    try:
        offset = pd.tseries.frequencies.to_offset(freq)
    except (ValueError, TypeError):
        offset = None
    # Calendar offsets (month ends, years) are fine for resampling; only the sign matters.
    if offset is None or offset.n <= 0:
        raise OptionError(
            f"bin width {freq!r}",
            parameter="freq",
            expected="a positive pandas frequency such as 10min, 1h or 1D",
        )
    return freq


def rows_between(times: np.ndarray, start: Any = None, end: Any = None) -> tuple[int, int]:
    """Rows ``lo:hi`` of sorted ``times`` from ``start`` to ``end``, both inclusive.

    None on either side means from the first or up to the last row; ``hi <= lo``
    means no row is in the range.
    """
    lo = 0 if start is None else int(np.searchsorted(times, start, side="left"))
    hi = len(times) if end is None else int(np.searchsorted(times, end, side="right"))
    return lo, hi
