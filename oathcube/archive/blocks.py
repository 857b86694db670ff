"""The one type every raw reader yields: a run of frames of one station from one source.

A leaf of :mod:`oathcube.archive` (beside :mod:`.instruments`): the readers
(:mod:`.themis_cdf`, :mod:`.themis_pgm`, :mod:`.trex_rgb`, :mod:`.folder`) and the
dispatcher (:mod:`.frames`) import it, and it imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import IngestError
from .instruments import INSTRUMENTS

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
        ``(n, y, x)``, or ``(n, y, x, band)`` for an instrument with bands (TREx RGB:
        red, green, blue, in the file's band order).  Raw frames hold the instrument's
        counts as read, in its :attr:`~oathcube.archive.instruments.Instrument.raw_dtype`:
        ``uint16`` for THEMIS, REGO, TREx NIR and Blueline, ``uint8`` per band for TREx
        RGB.  Frames that are not raw are ``uint8`` prepared images.  Pixel order is the
        cube's one orientation (:mod:`oathcube.archive.orientation`).
    source
        Path of the file the frames came from, as given to the reader (for an image
        folder, the folder), so that the source can be named in messages and read again.
    raw
        Whether ``frames`` are the camera's counts as read (no crop, no scaling, no
        resampling), which a recorded preparation (:mod:`oathcube.rawprep`) must turn
        into images before the classifiers see them.  ``uint8`` RGB counts are raw too.
    instrument
        The imager (a key of :data:`~oathcube.archive.instruments.INSTRUMENTS`:
        ``themis``, ``rego``, ``trex_nir``, ``trex_blue``, ``trex_rgb``, ``images``).
        Left empty, it is ``themis`` for raw frames (the readers that came before the
        other instruments) and ``images`` for prepared ones (image folders).

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
    instrument: str = ""

    def __post_init__(self) -> None:
        time, frames = self.time, self.frames
        if not self.instrument:
            object.__setattr__(self, "instrument", "themis" if self.raw else "images")
        inst = INSTRUMENTS.get(self.instrument)
        if inst is None:
            raise IngestError(
                f"unknown instrument {self.instrument!r}",
                path=self.source,
                expected=", ".join(INSTRUMENTS),
            )
        if not isinstance(time, np.ndarray) or time.dtype != np.dtype("datetime64[ns]"):
            raise IngestError(
                f"times have dtype {getattr(time, 'dtype', type(time))}",
                path=self.source,
                expected="datetime64[ns]",
            )
        if time.ndim != 1:
            raise IngestError(f"times have shape {time.shape}", path=self.source, expected="1-D")
        want_shape = "(n, y, x)" if inst.bands == 1 else f"(n, y, x, {inst.bands})"
        if (
            not isinstance(frames, np.ndarray)
            or frames.ndim != (3 if inst.bands == 1 else 4)
            or (inst.bands > 1 and frames.shape[3] != inst.bands)
        ):
            raise IngestError(
                f"{inst.title} frames have shape {getattr(frames, 'shape', None)}",
                path=self.source,
                expected=want_shape,
            )
        if frames.shape[0] != time.shape[0]:
            raise IngestError(
                f"{frames.shape[0]} frames but {time.shape[0]} times",
                path=self.source,
                expected="one time per frame",
            )
        want = inst.dtype if self.raw else np.dtype(np.uint8)
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

    @property
    def bands(self) -> int:
        """Bands per pixel: 1, or 3 for RGB frames ``(n, y, x, 3)``."""
        return int(self.frames.shape[3]) if self.frames.ndim == 4 else 1
