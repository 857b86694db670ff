"""Files people read (pictures, tables, movies): written whole or not at all.

Every output goes to a hidden temporary name beside its final one and is renamed into
place (atomic on one file system) only once complete, so that an interrupted run never
leaves a half-written picture or table under the name a reader opens, nor an earlier
good one damaged.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OptionError

__all__ = ["check_output", "replacing"]


@contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; rename it to ``path`` on success.

    Parameters
    ----------
    path
        The final file.  Its folder is created if missing.

    Yields
    ------
    pathlib.Path
        ``.<stem>.partial-<random><suffix>`` beside ``path`` (the suffix kept, for
        writers that choose a format by it).  If the block raises, that file, the
        run's own, is removed and ``path`` is left as it was.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.partial-{uuid.uuid4().hex[:8]}{final.suffix}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def check_output(
    path: str | os.PathLike[str], suffixes: tuple[str, ...], parameter: str = "out"
) -> Path:
    """The output file ``path``, refused before any work if its kind or place is wrong.

    Parameters
    ----------
    path
        The file to write.
    suffixes
        The suffixes (lower case, with the dot) that say which kind of file to write.
    parameter
        The Python parameter that named it (``"out"``), for the error; a flag
        (``"--out"``) is taken as its parameter, for callers that still pass one.

    Raises
    ------
    OptionError
        An unknown suffix, a folder, or a file where a parent folder should be.
    """
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise OptionError(
            f"{out}: unknown file kind {out.suffix or '(no suffix)'!r}",
            parameter=parameter,
            expected=" or ".join(suffixes),
        )
    if out.is_dir():
        raise OptionError(f"{out} is a folder", parameter=parameter, expected="a file name")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise OptionError(f"{parent} is not a folder", parameter=parameter)
    return out
