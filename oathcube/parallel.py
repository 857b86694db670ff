"""Where dask tasks run, how many threads each may use, and how progress is shown; and
the machine they run on (:func:`cpu_description`, for timings).

Schedulers: ``threads`` (default), ``processes``, ``synchronous``, or the address of
a ``dask.distributed`` scheduler (``tcp://host:8786``).  With no scheduler named
(``None``), a ``distributed.Client`` the user already has is used, else threads.
A ``tcp://`` address reuses a Client already connected to it.  Local schedulers
show a bar counted in images (tasks return how many they wrote: images done and
images/s); a distributed run shows ``distributed.progress`` and the dashboard.

The thread budget of numeric libraries (TensorFlow's intra-op pool) is decided
here and nowhere else: see :func:`thread_budget`.

A scheduler address is reached before any work starts: :func:`check_scheduler`
refuses an address where nothing answers within :data:`CONNECT_TIMEOUT`
seconds, and :func:`connected` holds one ``distributed.Client`` for a whole
command, so that a command that writes (``features --overwrite`` empties its
variable) is connected before its first write and never fails half way for
want of a scheduler.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from .errors import OptionError
from .memory import exhaustion_as_error, fit_address_space, steady_allocator

__all__ = [
    "CONNECT_TIMEOUT",
    "CPU_FLAGS",
    "LOCAL_SCHEDULERS",
    "check_scheduler",
    "connected",
    "cores",
    "cpu_description",
    "run_tasks",
    "thread_budget",
    "worker_thread_budget",
]

log = logging.getLogger(__name__)

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")
_ADDRESS = re.compile(r"^(tcp|tls|inproc)://[^\s/]+$")
_HOST_PORT = re.compile(r"^(?:tcp|tls)://(\[[^\]]+\]|[^:]+):(\d+)$")

#: Seconds to wait for a dask scheduler to answer before a command gives up.
#: A scheduler on a LAN answers in milliseconds; dask's own default is 30 s.
CONNECT_TIMEOUT = 5.0

_UNREACHABLE = "a running dask scheduler's address, or `scheduler` threads"

#: Addresses that answered in this process: a command checks its scheduler at each
#: step (the CLI, the library function, connected()); one connection test suffices.
_ANSWERED: set[str] = set()


def check_scheduler(scheduler: str | None) -> str | None:
    """Validate a scheduler before any work starts; return it unchanged.

    A ``tcp://`` or ``tls://`` address must answer: a TCP connection is opened
    and closed (no dask import), so that a dead address is refused in at most
    :data:`CONNECT_TIMEOUT` seconds, before a command writes anything.  Under
    ``ulimit -v`` the process's threads are also sized to the limit here, the
    first thing every command does (:func:`oathcube.memory.fit_address_space`).

    Raises
    ------
    OptionError
        Neither a local scheduler's name nor an address, or nothing answers there.
    """
    fit_address_space()
    if scheduler is None or scheduler in LOCAL_SCHEDULERS:
        return scheduler
    if not _ADDRESS.match(scheduler):
        raise OptionError(
            f"unknown scheduler {scheduler!r}",
            parameter="scheduler",
            expected="threads, processes, synchronous or tcp://HOST:PORT of a dask scheduler",
        )
    where = _HOST_PORT.match(scheduler)
    if where is None:  # inproc://, or an address without a port: dask's to judge
        return scheduler
    if scheduler in _ANSWERED or _user_client(scheduler) is not None:
        return scheduler
    host, port = where.group(1).strip("[]"), int(where.group(2))
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as err:  # refused, unreachable, unknown host, or timed out
        reason = err.strerror or type(err).__name__
        raise OptionError(
            f"no dask scheduler answers at {scheduler} ({reason})",
            parameter="scheduler",
            expected=_UNREACHABLE,
        ) from None
    _ANSWERED.add(scheduler)
    return scheduler


def _client(scheduler: str) -> Any:
    """A new ``distributed.Client`` of ``scheduler``, or one line on failure.

    The Client is made on a daemon thread, waited for at most twice
    :data:`CONNECT_TIMEOUT`: a server that accepts the connection and never
    answers (not a dask scheduler) kept ``Client(address, timeout=1)`` waiting for
    over 10 minutes (distributed 2026.8.0); the abandoned thread
    then ends with the process.
    """
    from distributed import Client

    made: dict[str, Any] = {}

    def make() -> None:
        try:
            made["client"] = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except BaseException as err:  # handed to the waiting thread
            made["error"] = err

    thread = threading.Thread(target=make, name="oathcube-connect", daemon=True)
    thread.start()
    thread.join(2 * CONNECT_TIMEOUT)
    err = made.get("error")
    if "client" in made:
        return made["client"]
    if err is not None and not isinstance(err, (OSError, TimeoutError)):
        raise err
    reason = type(err).__name__ if err is not None else "no answer"
    raise OptionError(
        f"no dask scheduler answers at {scheduler} within {2 * CONNECT_TIMEOUT:g} s ({reason})",
        parameter="scheduler",
        expected=_UNREACHABLE,
    )


@contextmanager
def connected(scheduler: str | None) -> Iterator[str | None]:
    """Check ``scheduler`` and, for an address, hold one Client while the block runs.

    The Client is this process's default while the block runs, so that every
    :func:`run_tasks` inside it reuses it (and a nested :func:`connected`
    opens none); it is closed at the end.  Local schedulers and a Client the
    caller already has are left as they are.

    Raises
    ------
    OptionError
        A bad name, or no dask scheduler answers at the address.
    """
    check_scheduler(scheduler)
    if scheduler is None or scheduler in LOCAL_SCHEDULERS or _user_client(scheduler):
        yield scheduler
        return
    client = _client(scheduler)
    try:
        yield scheduler
    finally:
        client.close()


def cores() -> int:
    """Cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


#: The CPU flags that decide which kernels, engines and precisions are fast.
CPU_FLAGS = (
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
    """CPU model, family/model numbers, usable cores and which of :data:`CPU_FLAGS` it has.

    What timings are reported with (the benchmark, ``scripts/bench_*.py``): a time means
    nothing without the machine that measured it.
    """
    import platform

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
    numbers = ", ".join(f"{k} {v}" for k, v in ids.items())
    have = ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in CPU_FLAGS)
    return f"{model} ({numbers}); {cores()} cores; flags: {have}"


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
    progress: bool = False,
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
    # Out of memory, or of address space for a thread, is one line that says what to lower.
    lower = "fewer images per chunk, `scheduler` synchronous (no thread pool)"
    if client is None and scheduler in LOCAL_SCHEDULERS:
        import dask

        kwargs: dict[str, Any] = {"scheduler": scheduler}
        if scheduler != "synchronous":
            kwargs["num_workers"] = num_workers or cores()
        with ExitStack() as stack:
            stack.enter_context(exhaustion_as_error(label or "the work", lower))
            if progress:
                stack.enter_context(_local_bar(total, unit))
            return list(dask.compute(*tasks, **kwargs))
    from distributed import progress as dprogress

    with ExitStack() as stack:
        stack.enter_context(exhaustion_as_error(label or "the work", lower))
        if client is None:
            assert scheduler is not None  # None became threads above
            client = stack.enter_context(_client(scheduler))
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
