"""Fetch what oathcube needs: the OATH tarball, the checkpoints, all-sky imager files.

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
- :func:`fetch_aurora_fm`: ``aurora-fm-no-finetune.tar`` of Hugging Face's
  ``Jwjohnson314/Aurora-FM`` (CC-BY-4.0), a PyTorch ``state_dict`` kept as it is, named
  only once its size and SHA-256 equal the pinned ones (``aurora_fm/`` in the data
  folder, :func:`oathcube.datadir.fetched_aurora_fm`).
- :func:`fetch_asi`: one imager's raw files at one site (``instrument=``: ``themis``,
  ``rego``, ``trex_nir``, ``trex_blue``, ``trex_rgb``): THEMIS as Berkeley CDF L1 hours
  or UCalgary PGM minutes, the others as UCalgary minutes (PGM; RGB HDF5), and
  optionally the imager's skymap valid at the start time.  Hours and minutes that no
  server has are reported, not fatal; dark files are not fetched.  A range of more than
  ``max_files`` files (default :data:`MAX_FILES`) is refused before any request, and the
  plan is made as the downloads go, never held whole.
- :class:`AsiRequest`: the same, checked when made and fetched by
  :meth:`~AsiRequest.sources` as the list of local files to ingest (what
  ``oathcube.ingest(..., fetch=...)`` and ``oathcube ingest --start/--end`` do first).
- :func:`fetch_themis` and :class:`ThemisFetch`: the first names of :func:`fetch_asi` and
  :class:`AsiFetch` (the same objects), kept for code written before other imagers.

The modules, by job: :mod:`~oathcube.fetch.datasets` (the fixed, pinned downloads: the
OATH tarball, the checkpoints), :mod:`~oathcube.fetch.imagers` (raw imager files and
skymaps), :mod:`~oathcube.fetch.common`
(the output folder and the fetcher every fetch makes), :mod:`~oathcube.fetch.http`
(verified, resumable downloads) and :mod:`~oathcube.fetch.sources` (URL layouts).  No
function here draws a progress bar unless given ``progress=True``.
"""

from __future__ import annotations

from .datasets import (
    CHECKPOINT_RECORD,
    fetch_aurora_fm,
    fetch_checkpoint,
    fetch_oath,
    parse_sha256sums,
)
from .http import check_numbers
from .imagers import (
    MAX_FILES,
    AsiFetch,
    AsiRequest,
    ThemisFetch,
    check_plan,
    fetch_asi,
    fetch_themis,
)

__all__ = [
    "AsiFetch",
    "AsiRequest",
    "fetch_asi",
    "ThemisFetch",
    "fetch_oath",
    "fetch_checkpoint",
    "fetch_aurora_fm",
    "fetch_themis",
    "parse_sha256sums",
    "check_plan",
    "check_numbers",
    "CHECKPOINT_RECORD",
    "MAX_FILES",
]
