"""Archives into cubes: the labelled OATH build, raw station archives, their skymaps.

* :mod:`~oathcube.ingestion.labelled`: an OATH archive (folder or tarball) into a new
  cube's root group (:func:`build`);
* :mod:`~oathcube.ingestion.stations`: raw THEMIS files and image folders appended to
  ``stations/<code>`` groups along ``time`` (:func:`ingest`);
* :mod:`~oathcube.ingestion.skymaps`: UCalgary skymaps into
  ``stations/<code>/skymaps/<YYYYMMDDTHH>``, fitted to the station's frames.

Classifying and drawing never import this package: they read stations through the
:class:`~oathcube.cube.store.Cube` (a rule of ``tests/test_layout.py``).
"""

from __future__ import annotations

from .labelled import build
from .skymaps import ingest_skymaps
from .stations import ingest

__all__ = ["build", "ingest", "ingest_skymaps"]
