"""Synthetic OATH archives, station nights and raw THEMIS files, for demos and tests.

Neither the OATH tarball nor THEMIS frames can be downloaded where oathcube is
developed and tested, so this package draws stand-ins, deterministic given a seed:

- :mod:`.sky`: :func:`render_sky`, one fisheye all-sky frame of one of the six OATH
  classes;
- :mod:`.oath`: :func:`synth`, a whole archive in exactly the published OATH v1.1
  layout, with its text files (:func:`write_split`, :func:`class_counts`) and stand-in
  features (:func:`synth_logits`);
- :mod:`.nights`: :func:`station_night`, a folder of frames of one station whose true
  class sequence is known, for the time-series demo;
- :mod:`.themis`: raw THEMIS ASI files in the real formats (Berkeley CDF, UCalgary PGM),
  for the tests and benchmarks of ingestion; imported only by name, so that drawing an
  archive does not load cdflib.
- :mod:`.ucalgary`: UCalgary PGM and TREx RGB HDF5 files as pyucalgarysrs reads them (tests).
"""

from __future__ import annotations

from ..labels import CLASS6_NAMES as CLASS_NAMES
from ..sites import STATION_LONGITUDES
from .nights import station_night
from .oath import (
    OATH_CLASS_COUNTS,
    check_synth_memory,
    check_synth_options,
    class_counts,
    synth,
    synth_logits,
    write_split,
)
from .sky import render_sky

__all__ = [
    "CLASS_NAMES",
    "OATH_CLASS_COUNTS",
    "STATION_LONGITUDES",
    "check_synth_memory",
    "check_synth_options",
    "class_counts",
    "render_sky",
    "station_night",
    "synth",
    "synth_logits",
    "write_split",
]
