"""Views of a cube: keograms, captioned movies, maps, timelines, nightly statistics, figures.

Each view reads one station group (and its skymaps, :mod:`oathcube.views.skymaps`) and
the predictions ``oathcube classify`` wrote beside the frames, or the labelled images
and a model's evaluation; none writes into the cube.  Pictures and files go to a
temporary name first and are renamed into place when whole.  They all draw with one
figure kit (:mod:`oathcube.views.figures`: class colours, style, bare Agg figures).

* :func:`~oathcube.views.keograms.keogram`: north-south slice through zenith per frame;
* :func:`~oathcube.views.movies.movie`: MP4/GIF, each frame captioned with time and class;
* :func:`~oathcube.views.maps.sky_map`: a frame or a mean on geographic coordinates;
* :func:`~oathcube.views.nights.night_statistics`: clear-sky fraction and aurora
  occurrence per night, cloudy and moonlit frames left out;
* :func:`~oathcube.views.timelines.timeline`: class occurrence per time bin, and
  :func:`~oathcube.views.timelines.write_timeline` (CSV, NetCDF, PNG);
* :func:`~oathcube.views.confusion.plot_confusion` and
  :func:`~oathcube.views.montage.plot_montage`: an evaluation's confusion matrix and
  example frames per class;
* :func:`~oathcube.views.skymaps.skymap_for`: the skymap a view draws with.
"""

from __future__ import annotations

from .confusion import plot_confusion
from .keograms import keogram, plot_keogram, write_keogram
from .maps import plot_map, sky_map, write_map
from .montage import plot_montage
from .movies import movie
from .nights import night_statistics, plot_nights, write_nights
from .skymaps import skymap_for, station_skymaps
from .timelines import plot_timeline, timeline, write_timeline

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
    "timeline",
    "plot_timeline",
    "write_timeline",
    "plot_confusion",
    "plot_montage",
    "skymap_for",
    "station_skymaps",
]
