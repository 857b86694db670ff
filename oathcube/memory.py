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

Under an address-space limit (``ulimit -v``, ``RLIMIT_AS``) what counts is
virtual memory, not resident memory, and most of a run's virtual memory is
reserved, never touched: glibc gives each thread that allocates its own arena,
a 64 MiB reservation (up to 8 per core), and every thread reserves a stack of
``ulimit -s`` (8 MiB).  A threaded ``build`` of 5,824 frames on 2 cores runs 14
threads (dask's pool, zarr's asyncio pool and I/O thread, OpenBLAS, tqdm) and
peaked at 1.37 GB of address space for 0.33 GB resident, so ``ulimit -v 1000000``
failed with "can't start new thread" or an image that "cannot be decoded";
more cores mean more threads and more arenas.  :func:`fit_address_space`, only
where such a limit is set, caps the arenas at 2, gives the threads Python
starts a 1 MiB stack and zarr's pool 2 threads: the same build then peaks at
0.64 GB (measured on a 2-core EPYC Zen 4; it runs under ``ulimit -v 700000``, and
under 620000 stops with one line).  :func:`available_memory` and
:func:`check_fits` refuse work whose stated bound does not fit before anything
is written, and :func:`exhaustion_as_error` turns running out during the work
into one line.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import resource
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OptionError

__all__ = [
    "ARENAS_UNDER_LIMIT",
    "KEEP_FREE",
    "LARGE_BLOCK",
    "STACK_UNDER_LIMIT",
    "MemoryBoundError",
    "address_space_limit",
    "available_memory",
    "check_fits",
    "exhaustion_as_error",
    "fit_address_space",
    "human_bytes",
    "steady_allocator",
]

log = logging.getLogger(__name__)

#: Blocks of this many bytes or more are mapped, and given back when freed.
LARGE_BLOCK = 4 << 20
#: Free memory the top of a heap may keep before it is given back.
KEEP_FREE = 16 << 20

# mallopt parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

#: glibc arenas under an address-space limit: each reserves 64 MiB of it.
ARENAS_UNDER_LIMIT = 2
#: Stack of each thread Python starts under an address-space limit (default: ulimit -s).
#: 1 MiB is what Windows gives every thread, and ample for oathcube's threads, which
#: run NumPy and codecs, not deep recursion.
STACK_UNDER_LIMIT = 1 << 20
#: zarr's asyncio thread pool under an address-space limit (default: cores + 4).
ZARR_THREADS_UNDER_LIMIT = 2
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


class MemoryBoundError(OptionError, MemoryError):
    """Work that does not fit in the memory this process may use, or ran out of it.

    An :class:`~oathcube.errors.OptionError` (what to lower is an option) and a
    :class:`MemoryError`, so that ``except MemoryError`` still catches it.
    """


def human_bytes(n: float) -> str:
    """``n`` bytes as a short decimal figure ("1.2 GB", "340 MB")."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} B"


def address_space_limit() -> int | None:
    """The soft ``RLIMIT_AS`` in bytes (``ulimit -v``), or None when unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def _proc_bytes(path: str, field: str) -> int | None:
    """``field`` (given in kB) of a ``/proc`` file such as ``/proc/meminfo``, in bytes."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom() -> int | None:
    """memory.max - memory.current of this process's cgroup (v2), or None."""
    try:
        entry = Path("/proc/self/cgroup").read_text().splitlines()[0]
        base = Path("/sys/fs/cgroup") / entry.split(":", 2)[2].lstrip("/")
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((base / "memory.current").read_text())
    except (OSError, ValueError, IndexError):
        return None


def available_memory() -> tuple[int | None, str]:
    """Memory this process may still take, and what bounds it.

    The smallest of: the system's ``MemAvailable``, the headroom under this
    cgroup's ``memory.max``, and the address space left under ``ulimit -v``
    (the limit less this process's ``VmSize``).  ``(None, "")`` where none is known.
    """
    bounds: list[tuple[int, str]] = []
    avail = _proc_bytes("/proc/meminfo", "MemAvailable")
    if avail is not None:
        bounds.append((avail, "MemAvailable in /proc/meminfo"))
    headroom = _cgroup_headroom()
    if headroom is not None:
        bounds.append((max(0, headroom), "the cgroup's memory.max"))
    limit = address_space_limit()
    if limit is not None:
        used = _proc_bytes("/proc/self/status", "VmSize") or 0
        bounds.append((max(0, limit - used), f"ulimit -v {limit // 1024} (kB)"))
    if not bounds:
        return None, ""
    return min(bounds)


def check_fits(need: int, what: str, *, parameter: str, lower: str) -> None:
    """Refuse work that needs more memory than :func:`available_memory` says is left.

    Parameters
    ----------
    need
        The work's stated bound, in bytes.
    what
        The work, for the message ("drawing 100000x100000 frames on 2 threads").
    parameter
        The Python parameter to blame (``"size"``).
    lower
        What would fit instead ("```size``` 8600 or less"): parameters between
        backquotes, as the command line renders them as its flags.

    Raises
    ------
    MemoryBoundError
        ``need`` exceeds what is available.
    """
    avail, source = available_memory()
    if avail is None or need <= avail:
        return
    raise MemoryBoundError(
        f"{what} needs about {human_bytes(need)} of memory, and {human_bytes(avail)} "
        f"is available ({source})",
        parameter=parameter,
        expected=lower,
    )


_fitted: bool | None = None


def fit_address_space() -> bool:
    """Size this process's threads to an address-space limit, once, before they start.

    Does nothing without ``ulimit -v``: then reserved address space costs
    nothing.  Under a limit: at most :data:`ARENAS_UNDER_LIMIT` glibc arenas
    (threads share them; malloc contention costs little next to the codecs and
    NumPy they run), a :data:`STACK_UNDER_LIMIT` stack for every thread Python
    starts from now on, and :data:`ZARR_THREADS_UNDER_LIMIT` threads in zarr's
    pool.  Call it before the work opens a store or starts a pool: threads
    already running keep their stacks.

    Returns
    -------
    bool
        Whether a limit is set and the settings were applied.
    """
    global _fitted
    with _lock:
        if _fitted is None:
            _fitted = address_space_limit() is not None and _fit()
        return _fitted


def _fit() -> bool:
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        if "MALLOC_ARENA_MAX" not in os.environ:  # the user's choice stands
            try:
                mallopt = ctypes.CDLL(None).mallopt
                mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
                mallopt.restype = ctypes.c_int
                mallopt(_M_ARENA_MAX, ARENAS_UNDER_LIMIT)
            except (OSError, AttributeError):
                pass
    try:
        threading.stack_size(STACK_UNDER_LIMIT)
    except (ValueError, RuntimeError):  # a platform that refuses to size stacks
        pass
    import zarr

    if zarr.config.get("threading.max_workers", None) is None:
        zarr.config.set({"threading.max_workers": ZARR_THREADS_UNDER_LIMIT})
    log.debug(
        "address space limited: %d arenas, %d kB thread stacks",
        ARENAS_UNDER_LIMIT,
        STACK_UNDER_LIMIT // 1024,
    )
    return True


def _thread_start_failed(err: BaseException) -> bool:
    return isinstance(err, RuntimeError) and "can't start new thread" in str(err)


@contextmanager
def exhaustion_as_error(what: str, lower: str) -> Iterator[None]:
    """Turn running out of memory or threads during ``what`` into one line.

    Parameters
    ----------
    what
        The work ("writing pixels").
    lower
        What to lower or raise ("```chunk_images```, or ```scheduler``` synchronous"):
        parameters between backquotes.

    Raises
    ------
    MemoryBoundError
        For a :class:`MemoryError`, or a thread that could not start (which under
        ``ulimit -v`` means no address space was left for its stack).
    """
    try:
        yield
    except MemoryBoundError:
        raise
    except (MemoryError, RuntimeError) as err:
        if isinstance(err, RuntimeError) and not _thread_start_failed(err):
            raise
        limit = address_space_limit()
        bound = f" under ulimit -v {limit // 1024} (kB)" if limit is not None else ""
        short = "memory" if isinstance(err, MemoryError) else "memory for a new thread"
        raise MemoryBoundError(
            f"{what} ran out of {short}{bound}",
            expected=f"{lower}, or more memory",
        ) from None
