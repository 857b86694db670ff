"""What every benchmark prints first: the CPU it ran on (figures mean nothing without it)."""

from __future__ import annotations

import os
import platform
import resource

#: The CPU flags that decide which kernels, engines and precisions are fast.
FLAGS = (
    "avx2",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "avx_vnni",
    "amx_bf16",
    "amx_int8",
    "amx_tile",
)


def cpu_description() -> str:
    """CPU model, family/model numbers, core count and which of :data:`FLAGS` it has."""
    model, flags, ids = platform.processor() or "unknown CPU", set(), {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", "unknown CPU"):
                    model = value.strip()
                elif key in ("cpu family", "model") and key not in ids:
                    ids[key] = value.strip()
                elif key == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    numbers = ", ".join(f"{k} {v}" for k, v in ids.items())
    have = ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in FLAGS)
    return f"{model} ({numbers}); {cores} cores; flags: {have}"


def peak_rss_mb() -> float:
    """Peak resident memory of this process (and its waited-for children), MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024
