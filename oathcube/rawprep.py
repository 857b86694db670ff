"""The explicit preparation that turns raw 16-bit THEMIS frames into OATH-like 8-bit images.

What is known about OATH's own preparation
------------------------------------------
The OATH images (``images/cropped_scaled/NNNNN.png``) are described by the dataset page
only as "THEMIS ASI image, cropped and scaled"; ``files_origin.csv`` gives station and time
of each, and the tarball's scripts start from the finished PNGs.  **The crop (its radius
or elevation cut-off, its centre), the intensity scaling (per image or fixed, which limits),
any resampling and the orientation are not published.**  So no setting here can claim to
reproduce the paper's images; what this module guarantees is that the choice is explicit,
parameterised and written into the cube (:meth:`RawPreparation.attrs`), so that results can
be compared across choices and redone with another one.

Defaults and why
----------------
* ``crop_radius_fraction=0.875``: pixels farther than 0.875 x half the frame width from
  the frame centre (112 px for 256 px) are set to 0.  The Inception chain that follows
  (``central_crop(0.875)``) keeps rows/columns 16..239, whose inscribed circle has exactly
  this radius, so the crop removes only what the network would see in the corners; and on
  the real Gakona skymap the sky above 10 deg elevation covers the area of a 111.7 px
  circle, so the default is close to the common 10 deg cut that drops horizon glow, trees
  and buildings.  With a UCalgary skymap, ``min_elevation_deg`` cuts at a true elevation.
* ``scaling="percentile"`` with ``low_percentile=1``, ``high_percentile=99``, per frame, over
  the pixels inside the crop: raw counts sit on a CCD background that differs between
  imagers (about 2,200 to 3,500 counts in the two real files here) and gains differ, so
  fixed limits that suit one camera crush another.  The price is absolute brightness (a
  faint glow and a bright arc both span 0..255); ``scaling="fixed"`` with
  ``fixed_low``/``fixed_high`` counts keeps it for one imager.
* ``out_size=256``: THEMIS frames are 256x256 and the feature chain's crop indices assume
  256 px inputs, as the OATH PNGs are used.

Orientation
-----------
The readers hand over frames in the cube's one orientation, the UCalgary skymaps' (see
:mod:`oathcube.archive.orientation`: row 0 = the skymap's north edge, column 0 its east
edge; PGM rasters as stored, Berkeley CDF frames turned by 180 deg, checked with stars),
so a skymap's ``FULL_ELEVATION`` applies to them as read (``skymap_orientation="as_read"``,
the default); ``flip_north_south=False`` by default.  asilib flips frames and skymaps
north-south on load so that ``imshow(origin="lower")`` shows north up; a flip here is one
parameter away (``flip_north_south=True``, recorded in the attributes).  Class labels
(arc, diffuse, ...) do not change under a mirror image, and OATH's own training already
randomises rotation.  :func:`skymap_alignment` still tells how well a skymap of another
period or imager fits some frames.

Whatever moves pixels here (``skymap_orientation``, ``flip_north_south``, ``out_size``)
moves the skymaps stored with the station too (:meth:`RawPreparation.arrange_like_frames`,
:meth:`RawPreparation.frame_geometry`, :func:`oathcube.archive.skymap_fit.fit_to_frames`), so that
maps and keograms put every pixel where its sky is; the crop and the scaling move nothing.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from scipy import ndimage

from .errors import IngestError, OptionError
from .kernels import order_statistics, scale_and_mask

__all__ = [
    "AURORA_FM_RADIUS",
    "RawPreparation",
    "aurora_fm_disc",
    "SKYMAP_ORIENTATIONS",
    "load_skymap_elevation",
    "skymap_alignment",
]

#: How a skymap array is turned to match the frames: as read, mirrored, or rotated 180 deg.
SKYMAP_ORIENTATIONS: tuple[str, ...] = ("as_read", "flip_lr", "flip_ud", "rot180")

_FORMAT_VERSION = 1
# Frames per vectorised step of `apply`: bounds the float32 working copy (~17 MB).
_CHUNK = 64


def integer_percentiles(
    values: np.ndarray, qs: list[float], kept: np.ndarray | None = None
) -> list[np.ndarray]:
    """Per-row percentiles of unsigned integer rows, by counting instead of sorting.

    Gives exactly what ``np.percentile(values.reshape(rows, -1)[:, kept].astype(
    np.float32), qs, axis=1)`` gives (numpy's default, linear, method, with its
    interpolation formula), at a fraction of the cost for 16-bit frames: the two order
    statistics of each percentile are read off the histogram of each row
    (:func:`oathcube.kernels.order_statistics`), and the kept pixels are never copied.

    Parameters
    ----------
    values
        ``(rows, k)`` or ``(rows, y, x)`` ``uint8`` or ``uint16``.
    qs
        Percentiles, 0..100.
    kept
        Flat indices of the pixels of each row that count (at least one); None: all.

    Returns
    -------
    list of numpy.ndarray
        One float32 array of ``rows`` values per percentile.
    """
    values = values.reshape(values.shape[0], -1)
    if kept is None:
        kept = np.arange(values.shape[1])
    where = _percentile_ranks(int(kept.size), qs)
    ranks = np.array([r for below, above, _ in where for r in (below, above)])
    order = order_statistics(values, kept, ranks)
    return [_lerp(order[2 * j], order[2 * j + 1], gamma) for j, (_, _, gamma) in enumerate(where)]


def _percentile_ranks(k: int, qs: list[float]) -> list[tuple[int, int, Any]]:
    """numpy's linear method: the two ranks each percentile lies between, and where."""
    where = []
    for q in qs:
        virtual = (k - 1) * np.true_divide(q, 100)
        previous = np.floor(virtual)
        below = int(np.clip(previous, 0, k - 1))
        above = int(np.clip(previous + 1, 0, k - 1))
        where.append((below, above, virtual - previous))
    return where


def _lerp(a: np.ndarray, b: np.ndarray, gamma: Any) -> np.ndarray:
    """numpy's two-sided interpolation formula (its ``_lerp``), for the same last bit."""
    diff = b - a
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


def aurora_fm_disc(shape: tuple[int, int]) -> np.ndarray:
    """themisim's circular crop, in the cube's orientation (the CDF's turned by 180 deg).

    themisim keeps the pixels at most ``int(0.85 * 128)`` = 108 px from pixel
    (128, 128) of a 256 x 256 frame as the Berkeley CDF holds it; the cube holds
    THEMIS frames turned by 180 deg (:mod:`oathcube.archive.orientation`), where
    that pixel is (127, 127).  Other sizes scale the same way (half = size // 2).
    """
    ny, nx = shape
    radius = int(AURORA_FM_RADIUS * (min(ny, nx) // 2))
    yy, xx = np.ogrid[0:ny, 0:nx]
    cy, cx = ny - 1 - ny // 2, nx - 1 - nx // 2
    return np.asarray(np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) <= radius)


#: themisim's crop radius, a fraction of half the frame width.
AURORA_FM_RADIUS = 0.85


@dataclass(frozen=True)
class RawPreparation:
    """Parameters that turn ``uint16`` raw frames into ``uint8`` OATH-like images.

    Parameters
    ----------
    crop_radius_fraction
        Keep pixels within this fraction of half the frame width from the frame centre;
        the rest become 0.  None: no circular crop.  Ignored when ``min_elevation_deg``
        is set.
    min_elevation_deg
        Keep pixels at or above this elevation according to ``skymap`` (pixels the
        skymap leaves out, NaN, become 0 too).  None: use ``crop_radius_fraction``.
    skymap
        UCalgary skymap ``.sav`` file (``FULL_ELEVATION`` is used); needed with
        ``min_elevation_deg``.
    skymap_orientation
        One of :data:`SKYMAP_ORIENTATIONS`: how to turn the skymap to match the frames.
    scaling
        ``"percentile"`` (per frame, ``low_percentile``..``high_percentile`` of the kept
        pixels map to 0..255), ``"fixed"`` (``fixed_low``..``fixed_high`` counts), or
        ``"none"``: 8-bit counts kept as they are, the only choice for ``uint8`` frames
        with bands (TREx RGB, ``(n, y, x, 3)``), whose crop, flip and resize act on each
        band alone; the 16->8-bit scalings refuse them, and ``"none"`` refuses frames
        of more than 8 bits.
    low_percentile, high_percentile
        Percentiles (0..100) for ``scaling="percentile"``.
    fixed_low, fixed_high
        Raw counts for ``scaling="fixed"`` (required there).
    flip_north_south
        Reverse the row order after cropping and scaling (asilib's orientation); the
        station's stored skymaps are flipped alike.
    out_size
        Output frames are ``out_size x out_size`` (bilinear resampling if different).
    """

    crop_radius_fraction: float | None = 0.875
    min_elevation_deg: float | None = None
    skymap: str | None = None
    skymap_orientation: str = "as_read"
    scaling: str = "percentile"
    low_percentile: float = 1.0
    high_percentile: float = 99.0
    fixed_low: float | None = None
    fixed_high: float | None = None
    flip_north_south: bool = False
    out_size: int = 256

    def __post_init__(self) -> None:
        # Normalise a path-like skymap to str so that attrs() stays JSON-able.
        if self.skymap is not None and not isinstance(self.skymap, str):
            object.__setattr__(self, "skymap", os.fspath(self.skymap))
        if self.crop_radius_fraction is not None and not 0 < self.crop_radius_fraction <= 1.5:
            raise OptionError(
                f"crop_radius_fraction must be in (0, 1.5], not {self.crop_radius_fraction}"
            )
        if self.min_elevation_deg is not None:
            if not -10 <= self.min_elevation_deg < 90:
                raise OptionError(
                    f"min_elevation_deg must be in [-10, 90), not {self.min_elevation_deg}"
                )
            if self.skymap is None:
                raise OptionError("min_elevation_deg needs a skymap file")
        if self.skymap_orientation not in SKYMAP_ORIENTATIONS:
            raise OptionError(f"skymap_orientation must be one of {SKYMAP_ORIENTATIONS}")
        if self.scaling == "percentile":
            if not 0 <= self.low_percentile < self.high_percentile <= 100:
                raise OptionError("need 0 <= low_percentile < high_percentile <= 100")
        elif self.scaling == "fixed":
            if self.fixed_low is None or self.fixed_high is None:
                raise OptionError('scaling="fixed" needs fixed_low and fixed_high (raw counts)')
            if not self.fixed_low < self.fixed_high:
                raise OptionError("need fixed_low < fixed_high")
        elif self.scaling == "aurora_fm":
            # themisim's frame is one fixed recipe: its own crop, no flip, no resize.
            others = {
                "crop_radius_fraction": self.crop_radius_fraction,
                "min_elevation_deg": self.min_elevation_deg,
                "flip_north_south": self.flip_north_south or None,
            }
            given = [f"{k}={v!r}" for k, v in others.items() if v is not None]
            if given:
                raise OptionError(
                    f'scaling="aurora_fm" is themisim\'s whole recipe, crop included, and '
                    f"takes no {', '.join(given)}: use RawPreparation.aurora_fm()"
                )
        elif self.scaling != "none":
            raise OptionError(
                'scaling must be "percentile", "fixed", "none" or "aurora_fm", '
                f"not {self.scaling!r}"
            )
        if int(self.out_size) != self.out_size or self.out_size < 8:
            raise OptionError(f"out_size must be an integer >= 8, not {self.out_size}")

    @classmethod
    def aurora_fm(cls) -> RawPreparation:
        """The preparation whose frames are themisim's input to Aurora-FM, byte for byte.

        themisim's ``normalize_masked`` on each frame: subtract the 1st percentile of
        the whole frame, divide by the 99th percentile of the result when it is above
        0 (else stretch min..max, or zeros for a flat frame), clip to ``[0, 1]``, zero
        outside its disc (:func:`aurora_fm_disc`), and store ``uint8(value * 255)``,
        the byte its ``preprocess_frame`` hands to PIL.  All in float32 as there.
        Frames keep the cube's orientation; the extractor turns them by 180 deg to
        the CDF's (:mod:`oathcube.features.aurora_fm`).

        Examples
        --------
        >>> RawPreparation.aurora_fm().scaling
        'aurora_fm'
        """
        return cls(crop_radius_fraction=None, scaling="aurora_fm")

    # ------------------------------------------------------------------ geometry
    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """Boolean ``shape`` mask of the pixels kept (True) before scaling.

        Parameters
        ----------
        shape
            ``(y, x)`` of the raw frames.

        Returns
        -------
        numpy.ndarray
            ``bool`` array in the file's orientation (before any flip).

        Raises
        ------
        IngestError
            The skymap cannot be read or has another shape than the frames.
        """
        if self.min_elevation_deg is not None:
            assert self.skymap is not None  # checked in __post_init__
            elevation = _oriented(load_skymap_elevation(self.skymap), self.skymap_orientation)
            if elevation.shape != tuple(shape):
                raise IngestError(
                    f"skymap is {elevation.shape}, frames are {tuple(shape)}",
                    path=self.skymap,
                    expected="a skymap of the frames' size",
                )
            with np.errstate(invalid="ignore"):  # NaN (outside the lens) compares False
                return np.asarray(elevation >= self.min_elevation_deg)
        if self.scaling == "aurora_fm":
            return aurora_fm_disc((int(shape[0]), int(shape[1])))
        return _circle_mask(tuple(shape), self.crop_radius_fraction)

    def arrange_like_frames(self, array: np.ndarray) -> np.ndarray:
        """Put a skymap-oriented array's pixels where :meth:`apply` puts the frames' pixels.

        The array is turned by ``skymap_orientation`` (to fit the raw frames, as
        :meth:`mask` does) and then flipped north-south when the frames are.  Only the
        order of rows and columns changes, so this serves pixel centres ``(..., y, x)``
        and pixel corners ``(..., y + 1, x + 1)`` alike; a resize (``out_size``) is not
        done here (see :func:`oathcube.archive.skymap_fit.fit_to_frames`).

        Parameters
        ----------
        array
            ``(..., y, x)``: the last two axes are rows and columns.

        Returns
        -------
        numpy.ndarray
            A view of ``array``, rearranged.
        """
        turned = _oriented(np.asarray(array), self.skymap_orientation)
        return turned[..., ::-1, :] if self.flip_north_south else turned

    def frame_geometry(self, shape: tuple[int, int]) -> dict[str, Any]:
        """What the preparation does to pixel positions of raw frames of ``shape``.

        Two preparations with the same geometry put every raw pixel at the same place
        (scaling and crop do not move pixels); a skymap fitted to one fits the other.

        Parameters
        ----------
        shape
            ``(y, x)`` of the raw frames (or of a skymap made for them).

        Returns
        -------
        dict
            ``skymap_orientation``, ``flip_north_south``, ``source_shape`` and ``shape``
            (the stored frames' ``(y, x)``), JSON-able.
        """
        return {
            "skymap_orientation": self.skymap_orientation,
            "flip_north_south": bool(self.flip_north_south),
            "source_shape": [int(shape[0]), int(shape[1])],
            "shape": [int(self.out_size), int(self.out_size)],
        }

    def stored_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The pixels kept (True) by the crop, where :meth:`apply` stores them.

        :meth:`mask` is in the raw frames' order; this one is flipped as the frames are
        and, when ``out_size`` differs from ``shape``, resampled as they are (a stored
        pixel counts as kept when more than half of what it was made of was kept).

        Parameters
        ----------
        shape
            ``(y, x)`` of the raw frames.

        Returns
        -------
        numpy.ndarray
            ``bool`` ``(out_size, out_size)``.
        """
        keep = self.mask(shape)
        if self.flip_north_south:
            keep = keep[::-1, :]
        if tuple(keep.shape) == (self.out_size, self.out_size):
            return np.ascontiguousarray(keep)
        # The same zoom as apply() gives the frames.
        zoom = (self.out_size / keep.shape[0], self.out_size / keep.shape[1])
        share = ndimage.zoom(
            keep.astype(np.float32), zoom, order=1, grid_mode=True, mode="grid-constant"
        )
        return np.asarray(share > 0.5)

    # ------------------------------------------------------------------ the work
    def apply(self, frames: np.ndarray) -> np.ndarray:
        """Crop, scale, optionally flip and resize a stack of raw frames.

        Parameters
        ----------
        frames
            ``(n, y, x)`` (or one ``(y, x)`` frame) raw counts, normally ``uint16``; or
            ``(n, y, x, band)`` ``uint8`` (TREx RGB), with ``scaling="none"`` only.

        Returns
        -------
        numpy.ndarray
            ``(n, out_size, out_size[, band])`` ``uint8`` (``(out_size, out_size)`` for
            one frame); 0 outside the crop.

        Raises
        ------
        OptionError
            Frames this preparation cannot prepare (:meth:`refusal`), in one line.
        """
        frames = np.asarray(frames)
        single = frames.ndim == 2
        if single:
            frames = frames[None]
        if frames.ndim == 4:
            refusal = self.refusal(frames.dtype, frames.shape[3])
            if refusal:
                raise OptionError(refusal)
        elif frames.ndim != 3:
            raise OptionError(f"frames must be (n, y, x) or (n, y, x, band), not {frames.shape}")
        if frames.dtype.kind not in "uif":
            raise OptionError(f"frames must be numeric, not {frames.dtype}")
        if self.scaling == "none":
            refusal = self.refusal(frames.dtype, 1 if frames.ndim == 3 else frames.shape[3])
            if refusal:
                raise OptionError(refusal)
            out = self._geometry(frames)
            return out[0] if single else out
        n, ny, nx = frames.shape
        keep = self.mask((ny, nx))
        if self.scaling == "aurora_fm":
            out = self._aurora_fm(frames, keep)
            return out[0] if single else out
        out = np.zeros((n, self.out_size, self.out_size), dtype=np.uint8)
        # The compiled path: integer counts kept at their size (every THEMIS ingest).
        compiled = frames.dtype in (np.uint8, np.uint16) and (ny, nx) == (
            self.out_size,
            self.out_size,
        )
        for start in range(0, n, _CHUNK):
            counts = frames[start : start + _CHUNK]
            lo, hi = self._limits(counts, keep)
            span = hi - lo
            # A flat frame (span 0) maps to 0 rather than dividing by zero.
            scale = np.divide(255.0, span, out=np.zeros_like(span), where=span > 0)
            if compiled:
                block = scale_and_mask(counts, lo, scale, keep)
                if self.flip_north_south:
                    block = block[:, ::-1, :]
                out[start : start + block.shape[0]] = block
                continue
            # In place, in the order of the formula (chunk - lo) * scale: the float32
            # operations that scale_and_mask does, pixel by pixel.
            chunk = counts.astype(np.float32)
            np.subtract(chunk, lo[:, None, None], out=chunk)
            np.multiply(chunk, scale[:, None, None], out=chunk)
            np.clip(chunk, 0.0, 255.0, out=chunk)
            if (ny, nx) != (self.out_size, self.out_size):
                chunk[:, ~keep] = 0.0
                if self.flip_north_south:
                    chunk = chunk[:, ::-1, :]
                zoom = (1.0, self.out_size / ny, self.out_size / nx)
                chunk = ndimage.zoom(chunk, zoom, order=1, grid_mode=True, mode="grid-constant")
                np.clip(chunk, 0.0, 255.0, out=chunk)
                block = np.rint(chunk).astype(np.uint8)
            else:
                np.rint(chunk, out=chunk)
                block = chunk.astype(np.uint8)
                block *= keep  # rint(0) is 0: zeroing after rounding gives the same bytes
                if self.flip_north_south:
                    block = block[:, ::-1, :]
            out[start : start + block.shape[0]] = block
        return out[0] if single else out

    def _aurora_fm(self, frames: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """themisim's ``normalize_masked`` then ``uint8(x * 255)``, frame by frame, in float32."""
        n, ny, nx = frames.shape
        if (ny, nx) != (self.out_size, self.out_size):
            raise OptionError(
                f'scaling="aurora_fm" keeps the frames\' size, and these are {ny}x{nx}, '
                f"not out_size {self.out_size}"
            )
        out = np.zeros((n, ny, nx), dtype=np.uint8)
        integer = frames.dtype in (np.uint8, np.uint16)
        where = _percentile_ranks(ny * nx, [1.0, 99.0])
        ranks = np.array([r for below, above, _ in where for r in (below, above)])
        every = np.arange(ny * nx)
        for start in range(0, n, _CHUNK):
            counts = frames[start : start + _CHUNK]
            chunk = counts.astype(np.float32)
            if integer:
                # Order statistics by counting; float32 subtraction keeps their order,
                # so the 99th percentile of (x - p1) is read off the same two ranks.
                stats = order_statistics(counts, every, ranks)
                (_, _, g1), (_, _, g99) = where
                p1 = _lerp(stats[0], stats[1], g1).astype(np.float32)
                hi = _lerp(stats[2] - p1, stats[3] - p1, g99).astype(np.float32)
            else:
                flat = chunk.reshape(len(chunk), -1)
                p1 = np.percentile(flat, 1, axis=1).astype(np.float32)
                hi = np.percentile(flat - p1[:, None], 99, axis=1).astype(np.float32)
            np.subtract(chunk, p1[:, None, None], out=chunk)
            for i in np.flatnonzero(~(hi > 0)):
                # themisim's guard for a flat or dead frame: min..max, or zeros.
                low, span = float(chunk[i].min()), float(chunk[i].max() - chunk[i].min())
                chunk[i] = (chunk[i] - low) / span if span > 0 else 0.0
            good = hi > 0
            chunk[good] /= hi[good, None, None]
            np.clip(chunk, 0.0, 1.0, out=chunk)
            chunk *= np.float32(255)
            block = chunk.astype(np.uint8)  # truncates, as numpy's astype does there
            block *= keep
            out[start : start + len(block)] = block
        return out

    def refusal(self, dtype: Any, bands: int) -> str | None:
        """Why frames of ``dtype`` with ``bands`` bands cannot be prepared so (None: they can).

        ``uint8`` frames with bands (TREx RGB) take ``scaling="none"`` only: the
        16->8-bit scalings would treat three colours as one; ``"none"`` takes 8-bit
        frames only (it keeps counts as they are).
        """
        dtype = np.dtype(dtype)
        if bands != 1:
            if dtype != np.uint8:
                return f"frames with {bands} bands must be uint8, not {dtype}"
            if self.scaling != "none":
                return (
                    f"uint8 frames with {bands} bands (RGB) take no 16->8-bit scaling "
                    f'(scaling={self.scaling!r}): prepare them with scaling="none"'
                )
            return None
        if self.scaling == "none" and dtype != np.uint8:
            return f'scaling="none" keeps 8-bit counts, and these frames are {dtype}'
        return None

    def _geometry(self, frames: np.ndarray) -> np.ndarray:
        """Crop, flip and resize ``uint8`` ``(n, y, x[, band])`` frames, each band alone."""
        ny, nx = frames.shape[1:3]
        keep = self.mask((ny, nx))
        if frames.ndim == 4:
            keep = keep[:, :, None]
        resize = (ny, nx) != (self.out_size, self.out_size)
        out = np.zeros((frames.shape[0], self.out_size, self.out_size, *frames.shape[3:]), np.uint8)
        for start in range(0, frames.shape[0], _CHUNK):
            block = frames[start : start + _CHUNK] * keep  # uint8 * bool stays uint8
            if self.flip_north_south:
                block = block[:, ::-1]
            if resize:
                # The zoom that apply() gives 16-bit frames, band by band (zoom 1 on bands).
                zoom = (1.0, self.out_size / ny, self.out_size / nx, *([1.0] * (block.ndim - 3)))
                chunk = ndimage.zoom(
                    block.astype(np.float32), zoom, order=1, grid_mode=True, mode="grid-constant"
                )
                np.clip(chunk, 0.0, 255.0, out=chunk)
                block = np.rint(chunk).astype(np.uint8)
            out[start : start + block.shape[0]] = block
        return out

    def _limits(self, counts: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = counts.shape[0]
        if self.scaling == "fixed":
            lo = np.full(n, float(self.fixed_low), dtype=np.float32)  # type: ignore[arg-type]
            hi = np.full(n, float(self.fixed_high), dtype=np.float32)  # type: ignore[arg-type]
            return lo, hi
        qs = [self.low_percentile, self.high_percentile]
        if counts.dtype in (np.uint8, np.uint16):
            # (about a microsecond a frame: not worth a cache)
            kept = np.flatnonzero(keep) if keep.any() else None
            lo, hi = integer_percentiles(counts, qs, kept)
        else:
            chunk = counts.astype(np.float32)
            inside = chunk[:, keep] if keep.any() else chunk.reshape(n, -1)
            lo, hi = np.percentile(inside, qs, axis=1)
        return lo.astype(np.float32), hi.astype(np.float32)

    # ------------------------------------------------------------------ record
    def attrs(self) -> dict[str, Any]:
        """All parameters as plain JSON-able values, for the cube's attributes.

        Returns
        -------
        dict
            Every field (None stays None, i.e. JSON null), plus ``method``,
            ``format_version`` and ``orientation`` (a sentence saying how rows are stored).
        """
        out: dict[str, Any] = {
            "method": "oathcube.rawprep.RawPreparation",
            "format_version": _FORMAT_VERSION,
        }
        for key, value in asdict(self).items():
            if isinstance(value, np.generic):
                value = value.item()
            out[key] = value
        out["orientation"] = (
            "rows flipped north-south from the file order (asilib's orientation)"
            if self.flip_north_south
            else "as the readers give them (UCalgary skymap orientation: row 0 = north "
            "edge, column 0 = east edge), no flip"
        )
        if self.scaling == "none":
            # Only here: the record of every scaling preparation stays as it was.
            out["bands"] = (
                "8-bit counts kept unscaled; frames with bands (TREx RGB: red, green, "
                "blue) cropped, flipped and resized band by band"
            )
        return out

    @classmethod
    def from_record(cls, record: Any) -> RawPreparation:
        """Rebuild the preparation a station group records (its ``preparation`` attribute).

        Parameters
        ----------
        record
            The JSON text ingest writes, or the dict it holds.

        Raises
        ------
        ValueError, TypeError
            Not JSON, or not a :meth:`from_attrs` record (``OptionError`` is a ValueError).
        """
        return cls.from_attrs(record if isinstance(record, dict) else json.loads(str(record)))

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> RawPreparation:
        """Rebuild the preparation from :meth:`attrs` output (extra keys are ignored).

        Parameters
        ----------
        attrs
            A dict as written by :meth:`attrs`, e.g. after a JSON round trip.

        Returns
        -------
        RawPreparation
        """
        if (
            attrs.get("method", "oathcube.rawprep.RawPreparation")
            != "oathcube.rawprep.RawPreparation"
        ):
            raise OptionError(f"not a RawPreparation record: method={attrs.get('method')!r}")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in attrs.items() if k in names})


# ---------------------------------------------------------------------- skymaps
@functools.lru_cache(maxsize=8)
def load_skymap_elevation(path: str) -> np.ndarray:
    """``FULL_ELEVATION`` (degrees, NaN outside the lens) of a UCalgary skymap ``.sav``.

    Parameters
    ----------
    path
        IDL save file, e.g. ``themis_skymap_gako_20110305-+_vXX.sav``.

    Returns
    -------
    numpy.ndarray
        ``(y, x)`` ``float32`` as :func:`scipy.io.readsav` returns it (read-only; cached).

    Raises
    ------
    IngestError
        The file cannot be read or has no ``skymap.FULL_ELEVATION``.
    """
    from scipy.io import readsav

    try:
        with warnings.catch_warnings():
            # readsav warns that it cannot verify record sizes of these files; harmless.
            warnings.simplefilter("ignore", UserWarning)
            data = readsav(path)
        elevation = np.asarray(data["skymap"]["FULL_ELEVATION"][0], dtype=np.float32)
    except Exception as exc:
        text = " ".join(str(exc).split())
        raise IngestError(
            f"cannot read skymap elevation: {type(exc).__name__}: {text}",
            path=path,
            expected="an IDL save file with skymap.FULL_ELEVATION",
        ) from exc
    if elevation.ndim != 2:
        raise IngestError(f"FULL_ELEVATION has shape {elevation.shape}", path=path, expected="2-D")
    elevation.setflags(write=False)  # shared by the cache
    return elevation


def skymap_alignment(frames: np.ndarray, elevation: np.ndarray) -> dict[str, float]:
    """How well each skymap orientation fits the lit sky disc of some raw frames.

    The mean frame is thresholded a quarter of the way from its dark surroundings (2nd
    percentile) to the sky (median); the lit area is compared with the skymap's field of
    view (finite, elevation >= 0) by intersection over union.

    Parameters
    ----------
    frames
        ``(n, y, x)`` raw frames of the station, ideally a few minutes of night sky.
    elevation
        The skymap's elevation array as read (see :func:`load_skymap_elevation`).

    Returns
    -------
    dict
        ``{orientation: overlap in 0..1}`` for each of :data:`SKYMAP_ORIENTATIONS`;
        the largest is the orientation to use.
    """
    mean = np.asarray(frames, dtype=np.float64).reshape(-1, *np.shape(frames)[-2:]).mean(axis=0)
    dark, sky = np.percentile(mean, [2, 50])
    lit = mean > dark + 0.25 * (sky - dark)
    scores: dict[str, float] = {}
    for name in SKYMAP_ORIENTATIONS:
        turned = _oriented(np.asarray(elevation), name)
        if turned.shape != lit.shape:
            raise OptionError(f"skymap is {turned.shape}, frames are {lit.shape}")
        with np.errstate(invalid="ignore"):
            view = np.isfinite(turned) & (turned >= 0)
        union = np.logical_or(lit, view).sum()
        scores[name] = float(np.logical_and(lit, view).sum() / union) if union else 0.0
    return scores


def _oriented(array: np.ndarray, orientation: str) -> np.ndarray:
    """``array`` turned as ``orientation`` says, over its last two axes (rows, columns)."""
    if orientation == "flip_lr":
        return array[..., :, ::-1]
    if orientation == "flip_ud":
        return array[..., ::-1, :]
    if orientation == "rot180":
        return array[..., ::-1, ::-1]
    return array


@functools.lru_cache(maxsize=16)
def _circle_mask(shape: tuple[int, int], fraction: float | None) -> np.ndarray:
    ny, nx = shape
    if fraction is None:
        mask = np.ones(shape, dtype=bool)
    else:
        # Centre between the middle pixels; radius in pixels of the shorter side.
        yy, xx = np.ogrid[0:ny, 0:nx]
        radius = fraction * min(ny, nx) / 2.0
        mask = (yy - (ny - 1) / 2.0) ** 2 + (xx - (nx - 1) / 2.0) ** 2 <= radius**2
    mask.setflags(write=False)  # shared by the cache
    return mask
