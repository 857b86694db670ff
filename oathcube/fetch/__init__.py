"""Fetch what oathcube needs: the OATH tarball, the Inception-v4 checkpoint, THEMIS ASI files.

Each fetch writes into a local folder that mirrors the server's own layout (by default
in the user's data folder, :mod:`oathcube.datadir`), fetches only what is missing there,
and makes a file visible under its name only once it has passed one verification step:
complete, whole for its kind (a CDF reads to its last record, a gzip or tar to its end),
and, where known, matching its checksum (:mod:`oathcube.fetch.http`).  What is refused
is moved aside to ``NAME.refused-<n>``, so that a rerun fetches it again and never trusts
it.  URL layouts are in :mod:`oathcube.fetch.sources`.

- :func:`fetch_oath`: ``oath_v1.1_20181026.tgz`` checked against ``SHA256SUM_v1.1``;
  ``oathcube build`` takes the tarball as it is.
- :func:`fetch_checkpoint`: ``inception_v4_2016_09_09.tar.gz``, unpacked safely to
  ``inception_v4.ckpt`` with its SHA-256 recorded in ``inception_v4.json``; Inception-v4
  features then find it without ``--checkpoint``.
- :func:`fetch_themis`: Berkeley CDF L1 hours or UCalgary PGM minutes of one station,
  and optionally the skymap valid at the start time.  Hours and minutes that no server
  has are reported, not fatal.  A range of more than ``max_files`` files (default
  :data:`MAX_FILES`) is refused before any request, and the plan is made as the
  downloads go, never held whole.
- :class:`ThemisRequest`: the same, checked when made and fetched by
  :meth:`~ThemisRequest.sources` as the list of local files to ingest (what
  ``oathcube.ingest(..., fetch=...)`` and ``oathcube ingest --start/--end`` do first).

The modules, by job: :mod:`~oathcube.fetch.datasets` (the fixed, pinned downloads: the
OATH tarball, the checkpoint), :mod:`~oathcube.fetch.themis` (raw THEMIS files and
skymaps), :mod:`~oathcube.fetch.common` (the output folder and the fetcher every fetch
makes), :mod:`~oathcube.fetch.http` (verified, resumable downloads) and
:mod:`~oathcube.fetch.sources` (URL layouts).  No function here draws a progress bar
unless given ``progress=True``.
"""

from __future__ import annotations

from .datasets import CHECKPOINT_RECORD, fetch_checkpoint, fetch_oath, parse_sha256sums
from .http import check_numbers
from .themis import (
    MAX_FILES,
    ThemisFetch,
    ThemisRequest,
    check_plan,
    fetch_themis,
)

__all__ = [
    "ThemisFetch",
    "fetch_oath",
    "fetch_checkpoint",
    "fetch_themis",
    "ThemisRequest",
    "parse_sha256sums",
    "check_plan",
    "check_numbers",
    "CHECKPOINT_RECORD",
    "MAX_FILES",
]
