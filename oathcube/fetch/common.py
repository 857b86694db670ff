"""What every fetch shares: the folder it writes to and the :class:`Fetcher` it downloads with."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import OptionError
from .http import Fetcher, check_base_urls

__all__ = ["out_dir", "make_fetcher"]


def out_dir(out: str | os.PathLike[str] | None, default: Path) -> Path:
    """The local folder a fetch writes to: ``out``, or ``default`` when it is None.

    Raises
    ------
    OptionError
        ``out`` exists and is not a folder.
    """
    root = Path(out).expanduser() if out is not None else default
    if root.exists() and not root.is_dir():
        # Named by its path: the same folder is ``out`` of a fetch and ``fetch_dir`` of
        # an ingest, whose own output is a cube.
        raise OptionError(
            "not a folder", path=root, expected="a folder to download into", parameter="out"
        )
    return root


def make_fetcher(
    base_urls: Sequence[str] | None,
    default: str,
    hint: str,
    *,
    timeout: float,
    retries: int,
    workers: int,
    progress: bool,
    parameter: str = "base_urls",
) -> Fetcher:
    """A :class:`Fetcher` of ``base_urls`` (checked), or of ``default`` when none is given.

    ``hint`` says what the user can do without a network; it ends every "cannot reach"
    error.  ``parameter`` is the Python parameter that gave ``base_urls``.
    """
    return Fetcher(
        check_base_urls(base_urls, default, parameter),
        timeout=timeout,
        retries=retries,
        workers=workers,
        progress=progress,
        offline_hint=hint,
    )
