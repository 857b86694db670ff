"""Where dask tasks run, how many threads each may use, and how progress is shown.

Schedulers: ``threads`` (default), ``processes``, ``synchronous``, or the address of
a ``dask.distributed`` scheduler (``tcp://host:8786``).  With no scheduler named
(``None``), a ``distributed.Client`` the user already has is used, else threads.
A ``tcp://`` address reuses a Client already connected to it.  Local schedulers
show a bar counted in images (tasks return how many they wrote: images done and
images/s); a distributed run shows ``distributed.progress`` and the dashboard.

The thread budget of numeric libraries (TensorFlow's intra-op pool) is decided
here and nowhere else: see :func:`thread_budget`.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from .errors import OptionError
from .memory import steady_allocator

__all__ = [
    "LOCAL_SCHEDULERS",
    "check_scheduler",
    "cores",
    "run_tasks",
    "thread_budget",
    "worker_thread_budget",
]

log = logging.getLogger(__name__)

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")
_ADDRESS = re.compile(r"^(tcp|tls|inproc)://[^\s/]+$")


def check_scheduler(scheduler: str | None) -> str | None:
    """Validate a scheduler name before any work starts; return it unchanged.

    Raises
    ------
    OptionError
        Neither a local scheduler's name nor a ``tcp://HOST:PORT`` address.
    """
    if scheduler is None or scheduler in LOCAL_SCHEDULERS or _ADDRESS.match(scheduler):
        return scheduler
    raise OptionError(
        f"unknown scheduler {scheduler!r}",
        path="--scheduler",
        expected="threads, processes, synchronous or tcp://HOST:PORT of a dask scheduler",
    )


def cores() -> int:
    """Cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _user_client(scheduler: str | None) -> Any:
    """The ``distributed.Client`` to reuse for ``scheduler``, or None.

    Only looked for when distributed is already imported: a user with a Client
    has imported it, and everyone else does not pay for the import.
    """
    if "distributed" not in sys.modules or scheduler in LOCAL_SCHEDULERS:
        return None
    from distributed import default_client

    try:
        client = default_client()
    except ValueError:  # no Client in this process
        return None
    if scheduler is None or client.scheduler.address == scheduler:
        return client
    return None


def thread_budget(scheduler: str | None, workers: int | None = None) -> int | None:
    """Threads one worker's numeric library may use, decided on the driver.

    ``threads`` and ``synchronous``: None, which extractors read as all usable
    cores (the network runs one batch at a time under a lock, while other dask
    threads read and preprocess).
    ``processes``: each of ``workers`` processes gets its share, so that all
    together never run more threads than cores.  A distributed cluster (or a
    reused Client): None on the driver, and each worker's own ``nthreads`` by
    :func:`worker_thread_budget`.
    """
    if scheduler == "processes":
        return max(1, cores() // (workers or cores()))
    return None


def worker_thread_budget(budget: int | None) -> int | None:
    """On a ``dask.distributed`` worker, its ``nthreads`` when the driver left it open.

    A worker owns ``nthreads`` cores of its machine; letting TensorFlow take every
    core of the machine in every worker would put more threads than cores to work.
    """
    if budget is not None or "distributed" not in sys.modules:
        return budget
    # Only a distributed worker has imported distributed and runs tasks in a Worker.
    from distributed import get_worker

    try:
        return int(get_worker().state.nthreads)
    except ValueError:  # not running on a distributed worker
        return None


def run_tasks(
    tasks: Sequence[Any],
    scheduler: str | None = "threads",
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
        ``threads``, ``processes``, ``synchronous``, a ``tcp://`` address, or None
        (the user's Client if there is one, else threads).
    num_workers
        Workers for local schedulers (default: the number of cores).
    progress
        Show a progress bar (stderr).
    label
        Logged before the bar so that users know what is running.
    total, unit
        When tasks return item counts (ints), the number of items all tasks
        together write: the bar then counts items and shows items per second.
    """
    check_scheduler(scheduler)
    if not tasks:
        return []
    # Tasks on threads run in this process: keep its memory flat over many chunks.
    steady_allocator()
    if label:
        log.info(label)
    client = _user_client(scheduler)
    if client is None and scheduler is None:
        scheduler = "threads"
    if client is None and scheduler in LOCAL_SCHEDULERS:
        import dask

        kwargs: dict[str, Any] = {"scheduler": scheduler}
        if scheduler != "synchronous":
            kwargs["num_workers"] = num_workers or cores()
        with ExitStack() as stack:
            if progress:
                stack.enter_context(_local_bar(total, unit))
            return list(dask.compute(*tasks, **kwargs))
    from distributed import Client
    from distributed import progress as dprogress

    with ExitStack() as stack:
        if client is None:
            client = stack.enter_context(Client(scheduler))
        if progress:
            log.info("dask dashboard: %s", client.dashboard_link)
        futures = client.compute(list(tasks))
        if progress:
            dprogress(futures)
        return list(client.gather(futures))


def _local_bar(total: int | None, unit: str) -> Any:
    """A dask callback that shows progress on stderr: items and items/s when counted."""
    from dask.callbacks import Callback
    from dask.diagnostics import ProgressBar

    if not total:
        return ProgressBar(out=sys.stderr, dt=0.5)
    from tqdm.auto import tqdm

    class ItemBar(Callback):
        """A tqdm bar fed by tasks that return how many items (images) they wrote."""

        def __init__(self) -> None:
            super().__init__()
            self.bar = tqdm(total=total, unit=unit, file=sys.stderr, smoothing=0.1)

        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            if type(result) is int:  # loaders return arrays; only writers return counts
                self.bar.update(result)

        def _finish(self, dsk: Any, state: Any, errored: bool) -> None:
            self.bar.close()

    return ItemBar()
