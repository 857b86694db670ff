"""Running lists of dask tasks on the scheduler a user names, with progress.

Schedulers: ``threads`` (default), ``processes``, ``synchronous``, or the address
of a ``dask.distributed`` scheduler (``tcp://host:8786``).  Local schedulers show
dask's progress bar; a distributed run shows ``distributed.progress`` and the
dashboard address.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import dask
from dask.delayed import Delayed
from dask.diagnostics import ProgressBar

__all__ = ["LOCAL_SCHEDULERS", "cores", "run_tasks"]

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")


def cores() -> int:
    """Cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_tasks(
    tasks: Sequence[Delayed],
    scheduler: str = "threads",
    *,
    num_workers: int | None = None,
    progress: bool = True,
    label: str = "",
) -> list[Any]:
    """Compute ``tasks`` on ``scheduler`` and return their results in order.

    Parameters
    ----------
    tasks
        Delayed objects; each should write its own output (region writes).
    scheduler
        ``threads``, ``processes``, ``synchronous`` or a ``tcp://`` address.
    num_workers
        Workers for local schedulers (default: the number of cores).
    progress
        Show a progress bar (stderr).
    label
        Printed before the bar so that users know what is running.
    """
    if not tasks:
        return []
    if label and progress:
        print(label, file=sys.stderr, flush=True)
    if scheduler in LOCAL_SCHEDULERS:
        kwargs: dict[str, Any] = {"scheduler": scheduler}
        if scheduler != "synchronous":
            kwargs["num_workers"] = num_workers or cores()
        if progress:
            with ProgressBar(out=sys.stderr, dt=0.5):
                return list(dask.compute(*tasks, **kwargs))
        return list(dask.compute(*tasks, **kwargs))
    from distributed import Client
    from distributed import progress as dprogress

    with Client(scheduler) as client:
        if progress:
            print(f"dask dashboard: {client.dashboard_link}", file=sys.stderr, flush=True)
        futures = client.compute(list(tasks))
        if progress:
            dprogress(futures)
        return list(client.gather(futures))
