"""One pixel orientation for every frame and skymap in a cube, and how each raw format maps to it.

The convention
--------------
oathcube stores frames and skymap arrays in **the orientation of the UCalgary skymap
files as** :func:`scipy.io.readsav` **returns them**: row 0 is the edge of the sky
towards which the skymap's ``FULL_AZIMUTH`` points near 0 deg (north, give or take the
camera's mounting angle: about 23 deg east of north at Gakona), column 0 the eastern
edge.  Drawn with row 0 at the top (matplotlib's default ``origin="upper"``), a frame
shows the sky as seen from the ground looking up: north up, east left.  Because skymaps
keep their own orientation, a skymap's ``elevation[y, x]`` is the elevation of frame
pixel ``[y, x]``, pixel for pixel, with nothing turned at use time.

How the raw formats relate (measured on the real files in ``shared/data/themis``)
-------------------------------------------------------------------------------
* **UCalgary skymap** (``themis_skymap_<site>_<date>-+_vXX.sav``): stored as read, no
  flip.  The Gakona skymap has azimuth 22.7 deg at 80 px above its zenith pixel
  (row 129, column 124), 202.5 deg at 80 px below it, 112.9 deg at 80 px to its left
  (column 44) and 292.3 deg at 80 px to its right.
* **Berkeley CDF L1** (``thg_l1_asf_<site>_<hour>_v01.cdf``): **rotated by 180 deg**
  (both axes reversed) on read.  In the Gakona hour 2011-01-06 17 UT, the 21 catalogue
  stars above 20 deg elevation fall within 2.5 px of a point source of the mean frame
  (median distance 1.0 px) when the skymap is applied to the CDF's frames turned by
  180 deg; as stored, mirrored left-right or mirrored top-bottom only 2 or 3 of the 21 do
  (median distances 5 to 8 px).  So the raw CDF's row 0 is the southern edge and its
  column 0 the western one.
* **UCalgary PGM** (``YYYYMMDD_HHMM_<site>_themisNN_full.pgm[.gz]``): stored **as in
  the file** (row 0 = first raster row).  The Gillam minutes of 2014-03-10 06:00 and
  06:05 UT have the handedness of the skymaps (east is 90 deg counter-clockwise from
  north on screen, row 0 at the top): the Moon (altitude 28 deg, azimuth 259 deg) moves
  by (-1.22, +1.08) px (rows, columns) between the two minutes; the skymap handedness
  predicts (-1.37, +1.31) px and the mirrored one (+1.84, +0.47) px.  North lies about
  4 deg from the top edge in those frames.  No Gillam skymap is at hand, so that its
  zenith and mounting angle are not checked here; the UCalgary tools make their
  skymaps from these PGM frames (the skymap's ``DATA_LOC`` names a PGM file).
* **UCalgary REGO, TREx NIR and TREx Blueline PGM**: the same format as the THEMIS PGM
  files, stored **as in the file** too.  No frame of these imagers is at hand to check
  against the sky; what holds them to the convention is that UCalgary's own tools
  treat frames and skymaps of each imager alike (pyucalgarysrs 1.28 flips REGO frames
  and REGO skymaps on both axes, and every other imager's frames and skymaps
  north-south), so a raster as stored and a skymap as ``readsav`` returns it agree
  pixel for pixel, as for THEMIS.
* **TREx RGB HDF5** (``YYYYMMDD_HHMM_<site>_rgb-NN_full.h5``): ``data/images`` is
  ``(y, x, band, n)``; stored as ``(n, y, x, band)`` with **no flip**
  (``stored[i] = data/images[:, :, :, i]``), for the same reason.

pyucalgarysrs 1.28
------------------
Its readers return ``(y, x, n)`` (``(y, x, band, n)`` for RGB) with rows turned for
``imshow(origin="lower")``, and its skymap reader turns the skymap arrays the same way
(checked on the real Gakona skymap: its ``full_elevation`` is ``readsav``'s
``FULL_ELEVATION[::-1, :]``).  So, per instrument (:data:`PYUCALGARYSRS`,
:func:`from_pyucalgarysrs`; ``tests/test_ucalgary_readers.py`` checks each exactly)::

    themis, trex_nir, trex_blue, trex_rgb:  oathcube[i] = pyucalgarysrs[::-1, :, ..., i]
    rego:                                   oathcube[i] = pyucalgarysrs[::-1, ::-1, ..., i]

and oathcube's skymaps are pyucalgarysrs's turned the same way.

Other tools: asilib flips THEMIS skymap arrays north-south on load (``skymap[::-1, :]``)
and flips the frames it reads the same way (its docstring: pixel (0, 0) is the
south-east corner), then draws with ``imshow(origin="lower")``: oathcube's arrays are
asilib's turned upside down (``oathcube = asilib[::-1, :]``), and both show north up,
east left on screen.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ORIENTATION",
    "PYUCALGARYSRS",
    "RAW_ORIENTATION",
    "cdf_to_cube",
    "from_pyucalgarysrs",
    "turned",
]

#: The sentence stored with pixels and skymaps (``orientation`` attribute).
ORIENTATION = (
    "UCalgary skymap orientation: row 0 = the skymap's north edge (azimuth near 0 deg, "
    "give or take the camera's mounting angle), column 0 = its east edge; drawn with row 0 "
    "at the top this is the sky seen from below (north up, east left); frames and skymaps "
    "agree pixel for pixel"
)

#: How the stored arrays relate to each raw format (``raw_orientation`` attribute): what
#: to apply to a stored array to get the file's own pixel order back.
RAW_ORIENTATION: dict[str, str] = {
    "cdf": "rotated 180 deg on read: raw CDF frame = stored[::-1, ::-1]",
    "pgm": "as in the file: raw PGM raster = stored",
    "h5": "as in the file, frames first: raw TREx RGB data/images[:, :, :, i] = stored[i]",
    "image": "as in the image file: PNG/JPEG = stored",
    "skymap": "as scipy.io.readsav returns the IDL arrays: raw skymap = stored",
}


#: How pyucalgarysrs 1.28's arrays relate to oathcube's, per instrument: the axes of
#: ``(y, x)`` that its reader flips (``np.flip``) and that oathcube does not.
_PYUCALGARYSRS_FLIPS: dict[str, tuple[int, ...]] = {
    "themis": (0,),
    "rego": (0, 1),
    "trex_nir": (0,),
    "trex_blue": (0,),
    "trex_rgb": (0,),
}

#: The same, as sentences for people (docs/sky.md shows them).
PYUCALGARYSRS: dict[str, str] = {
    inst: (
        "pyucalgarysrs flips north-south: oathcube[i] = pyucalgarysrs[::-1, :, ..., i]"
        if flips == (0,)
        else "pyucalgarysrs flips both axes: oathcube[i] = pyucalgarysrs[::-1, ::-1, ..., i]"
    )
    for inst, flips in _PYUCALGARYSRS_FLIPS.items()
}


def from_pyucalgarysrs(instrument: str, data: np.ndarray) -> np.ndarray:
    """pyucalgarysrs 1.28's frames of ``instrument`` in oathcube's order and orientation.

    Parameters
    ----------
    instrument
        ``themis``, ``rego``, ``trex_nir``, ``trex_blue`` or ``trex_rgb``.
    data
        ``Data.data`` of its reader: ``(y, x, n)``, or ``(y, x, band, n)`` for RGB.

    Returns
    -------
    numpy.ndarray
        ``(n, y, x)`` (``(n, y, x, band)``), C-contiguous: what oathcube's reader gives
        for the same files.

    Raises
    ------
    KeyError
        For an instrument pyucalgarysrs has no reader of here (``images``).
    """
    out = np.moveaxis(np.asarray(data), -1, 0)
    for axis in _PYUCALGARYSRS_FLIPS[instrument]:
        out = np.flip(out, axis=axis + 1)
    return np.ascontiguousarray(out)


def cdf_to_cube(stack: np.ndarray) -> np.ndarray:
    """Turn ``(n, y, x)`` frames of a Berkeley CDF by 180 deg into the cube orientation.

    Returns a C-contiguous ``uint16`` copy.
    """
    return np.ascontiguousarray(turned(stack), dtype=np.uint16)


def turned(stack: np.ndarray) -> np.ndarray:
    """A view of ``(n, y, x)`` CDF frames turned by 180 deg (no copy), for readers that
    copy the frames anyway and turn them in the same pass."""
    return stack[:, ::-1, ::-1]
