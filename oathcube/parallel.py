"""Running lists of dask tasks on the scheduler a user names, with progress.

Schedulers: ``threads`` (default), ``processes``, ``synchronous``, or the address
of a ``dask.distributed`` scheduler (``tcp://host:8786``).  Local schedulers show a
bar counted in images (tasks return how many they wrote: images done and images/s),
or dask's own progress bar; a distributed run shows ``distributed.progress`` and the
dashboard address.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import dask
from dask.callbacks import Callback
from dask.delayed import Delayed
from dask.diagnostics import ProgressBar
from tqdm.auto import tqdm

__all__ = ["LOCAL_SCHEDULERS", "cores", "run_tasks"]

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")


def cores() -> int:
    """Cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _ItemBar(Callback):
    """A tqdm bar fed by tasks that return how many items (images) they wrote."""

    def __init__(self, total: int, unit: str) -> None:
        super().__init__()
        self.bar = tqdm(total=total, unit=unit, file=sys.stderr, smoothing=0.1)

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        if type(result) is int:  # loaders return arrays; only writers return counts
            self.bar.update(result)

    def _finish(self, dsk: Any, state: Any, errored: bool) -> None:
        self.bar.close()


def run_tasks(
    tasks: Sequence[Delayed],
    scheduler: str = "threads",
    *,
    num_workers: int | None = None,
    progress: bool = True,
    label: str = "",
    total: int | None = None,
    unit: str = "img",
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
    total, unit
        When tasks return item counts (ints), the number of items all tasks
        together write: the bar then counts items and shows items per second.
    """
    if not tasks:
        return []
    if label and progress:
        print(label, file=sys.stderr, flush=True)
    if scheduler in LOCAL_SCHEDULERS:
        kwargs: dict[str, Any] = {"scheduler": scheduler}
        if scheduler != "synchronous":
            kwargs["num_workers"] = num_workers or cores()
        if not progress:
            return list(dask.compute(*tasks, **kwargs))
        bar = _ItemBar(total, unit) if total else ProgressBar(out=sys.stderr, dt=0.5)
        with bar:
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
