"""What every benchmark prints first: the CPU it ran on (figures mean nothing without it).

The description itself is the package's (:func:`oathcube.parallel.cpu_description`), so
that ``oathcube benchmark`` and these scripts describe a machine alike.
"""

from __future__ import annotations

import resource

from oathcube.parallel import CPU_FLAGS as FLAGS
from oathcube.parallel import cpu_description

__all__ = ["FLAGS", "cpu_description", "peak_rss_mb"]


def peak_rss_mb() -> float:
    """Peak resident memory of this process (and its waited-for children), MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024
