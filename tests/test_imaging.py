"""Rotation as rotate.sh does it (ImageMagick -distort SRT), against the reference PNGs."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from oathcube.imaging import rotate_like_oath, sky_disc_mask, to_rgb


@pytest.mark.parametrize(("name", "angle"), [("allsky_synthetic", 37), ("allsky_dasc", 250)])
def test_rotation_matches_imagemagick(shared: Path, name: str, angle: int) -> None:
    folder = shared / "reference" / "images"
    image = iio.imread(folder / f"{name}.png")[..., 0]
    magick = iio.imread(folder / f"{name}_rot{angle}.png").astype(float)
    disc = sky_disc_mask(image.shape, margin=2)
    ours = rotate_like_oath(image, angle)
    assert ours.shape == image.shape and ours.dtype == np.uint8
    mad = float(np.abs(ours - magick)[disc].mean())
    wrong_way = float(np.abs(rotate_like_oath(image, -angle) - magick)[disc].mean())
    print(
        f"\n  {name} rotated {angle} deg: mean |ours - ImageMagick| over the sky disc "
        f"{mad:.3f} grey levels (the other direction: {wrong_way:.1f})",
        end="",
    )
    # Bilinear vs ImageMagick's EWA filter: under one grey level; the geometry is the same.
    assert mad < 1.0
    assert wrong_way > 10 * mad


def test_rotation_keeps_size_fills_black_and_turns_clockwise() -> None:
    image = np.zeros((64, 64), np.uint8)
    image[10, 32] = 255  # a dot straight above the centre
    turned = rotate_like_oath(image, 90)
    y, x = np.unravel_index(np.argmax(turned), turned.shape)
    assert abs(y - 31.5) < 2 and x > 50  # clockwise on screen: top -> right
    full = np.full((64, 64), 200, np.uint8)
    corners = rotate_like_oath(full, 45)
    assert corners[0, 0] == 0 and corners[32, 32] == 200
    np.testing.assert_array_equal(rotate_like_oath(image, 360), image)


def test_to_rgb_repeats_grey() -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgb = to_rgb(grey)
    assert rgb.shape == (3, 4, 3) and (rgb[..., 2] == grey).all()
