"""The C allocator's settings that keep a long run's memory flat.

glibc's ``malloc`` raises its mmap threshold to the size of the largest mapped
block freed so far, up to 32 MiB.  After the first chunk of pixels is freed, the
blocks of several MB that every chunk needs (compressed chunks read and written
by zarr's threads, decoded arrays) are carved out of the per-thread heaps instead
of being mapped.  Freed among small live objects, they leave holes that the heap
cannot give back, and resident memory creeps up with the number of chunks.
Measured on a 2-core EPYC Zen 4, sampling resident memory as it ran: a threaded
classify of 100,800 frames crept from 472 to 521 MB as it went, and 30,720 frames of
handcrafted features from 240 to 300 MB (10,240 frames: 221 to 300 MB).

:func:`steady_allocator` fixes the threshold at 4 MiB, so every block of 4 MiB or
more is mapped and given back when freed, and sets the trim threshold to 16 MiB.
The second matters: fixing the mmap threshold alone also fixes the trim threshold
at 128 kB, and the heap of the per-frame temporaries is then given back and
faulted in again on every frame (feature extraction ran 30-40 % slower).  With
both, 10,240 frames of features stayed at 221-226 MB, in 58-63 s against the default's 59.

The settings are process-wide and glibc's own (``mallopt``): they are applied
once, only on glibc, and never where the user (or ``dask.distributed``'s nanny,
which sets ``MALLOC_TRIM_THRESHOLD_`` for its workers) has already chosen.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import threading

__all__ = ["KEEP_FREE", "LARGE_BLOCK", "steady_allocator"]

log = logging.getLogger(__name__)

#: Blocks of this many bytes or more are mapped, and given back when freed.
LARGE_BLOCK = 4 << 20
#: Free memory the top of a heap may keep before it is given back.
KEEP_FREE = 16 << 20

# mallopt parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Environment variables through which a user tunes glibc's malloc.
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")

_lock = threading.Lock()
_settled: bool | None = None


def steady_allocator() -> bool:
    """Set glibc's mmap and trim thresholds for long runs, once per process.

    Returns
    -------
    bool
        Whether this process runs with oathcube's settings: False on other C
        libraries, or where the environment already tunes malloc.
    """
    global _settled
    with _lock:
        if _settled is None:
            _settled = _settle()
        return _settled


def _settle() -> bool:
    chosen = [name for name in _USER_SETTINGS if name in os.environ]
    if chosen:
        log.debug("malloc left as %s sets it", ", ".join(chosen))
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # a static or unusual build: leave malloc alone
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # The trim threshold first: a fixed mmap threshold alone trims at 128 kB.
    return bool(mallopt(_M_TRIM_THRESHOLD, KEEP_FREE)) and bool(
        mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK)
    )
