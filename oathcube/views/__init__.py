"""Views of classified station archives: keograms, captioned movies, maps, nightly statistics.

Each view reads one station group (and its skymaps, :mod:`oathcube.skymaps`) and the
predictions ``oathcube classify`` wrote beside the frames; none writes into the cube.
Pictures and files go to a temporary name first and are renamed into place when whole.

* :func:`~oathcube.views.keogram.keogram`: north-south slice through zenith per frame;
* :func:`~oathcube.views.movie.movie`: MP4/GIF, each frame captioned with time and class;
* :func:`~oathcube.views.maps.sky_map`: a frame or a mean on geographic coordinates;
* :func:`~oathcube.views.nights.night_statistics`: clear-sky fraction and aurora
  occurrence per night, cloudy and moonlit frames left out.
"""

from __future__ import annotations

from .keogram import keogram, plot_keogram, write_keogram
from .maps import plot_map, sky_map, write_map
from .movie import movie
from .nights import night_statistics, plot_nights, write_nights

__all__ = [
    "keogram",
    "plot_keogram",
    "write_keogram",
    "movie",
    "sky_map",
    "plot_map",
    "write_map",
    "night_statistics",
    "plot_nights",
    "write_nights",
]
