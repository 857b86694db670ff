"""One writer at a time: the writer lock beside a local cube.

A leaf of :mod:`oathcube.cube`: :meth:`oathcube.cube.store.Cube.writing` holds the
lock while a command writes.  The lock is a hidden sibling of the cube,
``.NAME.oathcube-writer.lock`` (zarr would take a file inside the cube for a node),
created exclusively and holding the writer's pid, host and command; one left by a
killed writer on the same machine is taken over once its process is gone.  Cubes at
URLs have no lock.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

from ..errors import CubeError

__all__ = ["LOCK_SUFFIX", "lock_path", "take_lock"]

log = logging.getLogger(__name__)

#: The writer lock of a local cube is a hidden sibling, ``.NAME.oathcube-writer.lock``.
LOCK_SUFFIX = ".oathcube-writer.lock"


def lock_path(location: str) -> Path:
    """The writer lock of the local cube at ``location``."""
    target = Path(location)
    return target.parent / f".{target.name}{LOCK_SUFFIX}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def take_lock(lock: Path, command: str, location: str) -> None:
    """Create ``lock`` exclusively; take over one whose writer is gone; else refuse.

    Raises
    ------
    CubeError
        Another live writer holds the lock: the message names its command, pid and host.
    """
    me = {"pid": os.getpid(), "host": socket.gethostname(), "command": command}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                other = json.loads(lock.read_text() or "{}")
            except (OSError, ValueError):
                other = {}
            pid = int(other.get("pid", 0) or 0)
            if other.get("host") == me["host"] and pid and not _pid_alive(pid):
                log.warning(
                    "taking over the writer lock of %s (pid %d), which is gone", location, pid
                )
                lock.unlink(missing_ok=True)
                continue
            raise CubeError(
                f"another oathcube command ({other.get('command', '?')}, pid {pid or '?'} on "
                f"{other.get('host', '?')}) is writing to this cube",
                path=location,
                expected=f"one writer at a time: wait for it (or delete {lock} if it is gone)",
            ) from None
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        return
    raise CubeError("cannot take the writer lock", path=str(lock))
