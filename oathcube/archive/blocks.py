"""The one type every raw reader yields: a run of frames of one station from one source.

A leaf of :mod:`oathcube.archive`: the readers (:mod:`.themis_cdf`, :mod:`.themis_pgm`,
:mod:`.folder`) and the dispatcher (:mod:`.frames`) import it, and it imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import IngestError

__all__ = ["FrameBlock", "IMAGE_SUFFIXES"]

#: File name endings of image files that the folder reader takes.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class FrameBlock:
    """Frames of one station from one source, strictly increasing in time.

    Parameters
    ----------
    station
        Lower-case station code, e.g. ``"gako"``.
    time
        ``datetime64[ns]`` (UTC, timezone-naive), shape ``(n,)``, strictly increasing.
    frames
        ``(n, y, x)``: ``uint16`` raw counts when ``raw`` is true, ``uint8`` prepared
        images when it is false.  Pixel order is the file's (row 0 = first row stored).
    source
        Path of the file the frames came from, as given to the reader (for an image
        folder, the folder), so that the source can be named in messages and read again.
    raw
        Whether ``frames`` are raw 16-bit counts that still need :mod:`oathcube.rawprep`.

    Raises
    ------
    IngestError
        If the arrays break any of the rules above (a reader bug or an inconsistent file).
    """

    station: str
    time: np.ndarray
    frames: np.ndarray
    source: str
    raw: bool

    def __post_init__(self) -> None:
        time, frames = self.time, self.frames
        if not isinstance(time, np.ndarray) or time.dtype != np.dtype("datetime64[ns]"):
            raise IngestError(
                f"times have dtype {getattr(time, 'dtype', type(time))}",
                path=self.source,
                expected="datetime64[ns]",
            )
        if time.ndim != 1:
            raise IngestError(f"times have shape {time.shape}", path=self.source, expected="1-D")
        if not isinstance(frames, np.ndarray) or frames.ndim != 3:
            raise IngestError(
                f"frames have shape {getattr(frames, 'shape', None)}",
                path=self.source,
                expected="(n, y, x)",
            )
        if frames.shape[0] != time.shape[0]:
            raise IngestError(
                f"{frames.shape[0]} frames but {time.shape[0]} times",
                path=self.source,
                expected="one time per frame",
            )
        want = np.dtype(np.uint16) if self.raw else np.dtype(np.uint8)
        if frames.dtype != want:
            raise IngestError(
                f"frames have dtype {frames.dtype}", path=self.source, expected=str(want)
            )
        if np.isnat(time).any():
            raise IngestError("a frame has no time (NaT)", path=self.source)
        if time.size > 1 and not (np.diff(time) > np.timedelta64(0, "ns")).all():
            raise IngestError(
                "times are not strictly increasing", path=self.source, expected="one frame per time"
            )
        if not self.station or self.station != self.station.lower():
            raise IngestError(
                f"bad station code {self.station!r}", path=self.source, expected="lower case"
            )

    @property
    def n(self) -> int:
        """Number of frames."""
        return int(self.time.shape[0])
