"""The allocator settings that keep long runs flat (oathcube.memory), in fresh processes."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import subprocess
import sys

import pytest

# In a fresh interpreter: free a 30 MB mapped block (glibc then raises its mmap
# threshold to 30 MB), optionally settle the allocator, then allocate 8 MB and see
# whether glibc mapped it (mallinfo2's hblkhd: bytes in mapped blocks).
_PROBE = r"""
import ctypes, json, sys
from oathcube.memory import steady_allocator

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
libc.mallinfo2.restype = MallInfo2
libc.free(libc.malloc(30 << 20))
settled = steady_allocator() if sys.argv[1] == "settle" else None
again = steady_allocator() if sys.argv[1] == "settle" else None
before = libc.mallinfo2().hblkhd
block = libc.malloc(8 << 20)
mapped = libc.mallinfo2().hblkhd - before
libc.free(block)
print(json.dumps({"settled": settled, "again": again, "mapped": mapped}))
"""


def _has_mallinfo2() -> bool:
    """glibc 2.33 and later: the probe reads mapped bytes with mallinfo2."""
    try:
        return hasattr(ctypes.CDLL(None), "mallinfo2")
    except OSError:
        return False


glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or not _has_mallinfo2(),
    reason="the settings are glibc's; the probe needs glibc >= 2.33",
)


def _probe(mode: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    clean.pop("GLIBC_TUNABLES", None)
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout)


@glibc
def test_large_blocks_are_mapped_once_the_allocator_is_settled() -> None:
    # glibc's default: after a 30 MB block was freed, 8 MB comes from the heap.
    assert _probe("default")["mapped"] == 0
    settled = _probe("settle")
    assert settled["settled"] is True and settled["again"] is True
    assert settled["mapped"] >= 8 << 20


@glibc
def test_a_users_malloc_settings_are_left_alone() -> None:
    # A user who maps only blocks of 64 MB or more keeps that: 8 MB stays in the heap.
    chosen = _probe("settle", MALLOC_MMAP_THRESHOLD_=str(64 << 20))
    assert chosen["settled"] is False
    assert chosen["mapped"] == 0
    # dask.distributed's nanny sets this one for its workers.
    assert _probe("settle", MALLOC_TRIM_THRESHOLD_="65536")["settled"] is False
