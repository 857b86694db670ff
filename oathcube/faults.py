"""Named kill points for fault-injection tests: a real ``kill -9`` at a chosen moment.

Every writer calls :func:`kill_point` right after each step of its commit protocol
(a metadata change, a chunk written, the commit itself).  Nothing happens unless
the environment variable ``OATHCUBE_KILL_AT`` is set to ``NAME`` or ``NAME:K``: the
K-th time (default the first) the process reaches the point ``NAME`` it sends
SIGKILL to its process group when it leads one (as a test starts it, so that
dask worker processes die with it), else to itself.  The tests in
``tests/test_faults.py`` kill real processes this way, rerun the command, and
compare every array with an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["KILL_ENV", "kill_point"]

KILL_ENV = "OATHCUBE_KILL_AT"

_hits: dict[str, int] = {}
_lock = threading.Lock()


def kill_point(name: str) -> None:
    """Die here, with SIGKILL, when ``OATHCUBE_KILL_AT`` names this point."""
    wanted = os.environ.get(KILL_ENV)
    if not wanted:
        return
    point, _, count = wanted.partition(":")
    if point != name:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        if _hits[name] < int(count or 1):
            return
    pid = os.getpid()
    if os.getpgid(0) == pid:
        os.killpg(pid, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
