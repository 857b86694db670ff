"""Image operations shared by the stages: rotation as OATH's rotate.sh does it.

``rotate.sh`` runs ImageMagick ``convert IN -background black -distort SRT ANGLE
+repage OUT``: a rotation by ANGLE degrees *clockwise on screen* about the image
centre, the same size, corners filled with black.  We reproduce the geometry
exactly (same centre, same direction, same size) with scikit-image's bilinear
resampling; ImageMagick resamples with an elliptical weighted average filter,
so single pixel values differ slightly (a resampling choice, reported in the
tests), while the rotation itself is the same.
"""

from __future__ import annotations

import numpy as np
from skimage.transform import rotate as _sk_rotate

__all__ = ["rotate_like_oath", "sky_disc_mask", "to_rgb"]


def rotate_like_oath(image: np.ndarray, angle: float) -> np.ndarray:
    """Rotate ``image`` clockwise on screen by ``angle`` degrees, as rotate.sh does.

    Parameters
    ----------
    image
        ``(y, x)`` or ``(y, x, band)`` array of any numeric dtype, row 0 at the top.
    angle
        Degrees, positive = clockwise on screen (ImageMagick's ``-distort SRT``).

    Returns
    -------
    numpy.ndarray
        Same shape and dtype; pixels that come from outside the frame are 0.
    """
    if angle % 360 == 0:
        return image.copy()
    # skimage turns counter-clockwise for positive angles, about ((cols-1)/2, (rows-1)/2),
    # which is ImageMagick's centre (w/2, h/2) in pixel-edge coordinates.
    out = _sk_rotate(
        image.astype(np.float64),
        -float(angle),
        resize=False,
        order=1,
        mode="constant",
        cval=0.0,
        preserve_range=True,
    )
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(image.dtype)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Return ``image`` as ``(y, x, 3)``: a greyscale frame is repeated into three bands."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return image[:, :, :3]
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    raise ValueError(f"cannot make an RGB image from shape {image.shape}")


def sky_disc_mask(shape: tuple[int, int], margin: float = 0.0) -> np.ndarray:
    """Boolean mask of the inscribed circle of a ``shape`` frame (the fisheye sky)."""
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    cy, cx = (ny - 1) / 2, (nx - 1) / 2
    radius = min(ny, nx) / 2 - margin
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
