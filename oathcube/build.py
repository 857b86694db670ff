"""``oathcube build``: archive -> cube (-> features), published only when complete."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .archive.oath import read_oath
from .cube.write import publish_metadata, staging, write_oath_cube
from .features.compute import compute_features

__all__ = ["build"]


def build(
    source: str | Path,
    cube: str | Path,
    *,
    overwrite: bool = False,
    features: Sequence[str] = (),
    scheduler: str = "threads",
    chunk_images: int | None = None,
    progress: bool = True,
    feature_options: dict[str, dict[str, Any]] | None = None,
) -> str:
    """Build a cube from an OATH archive (folder or ``.tgz``).

    Parameters
    ----------
    source
        The archive root (or a folder above it) or the tarball.
    cube
        Where the cube appears once complete (path or fsspec URL).
    overwrite
        Replace an existing cube (only once the new one is complete).
    features
        Extractors to run as part of the build (``handcrafted``, ``inception_v4``).
    scheduler
        ``threads``, ``processes``, ``synchronous`` or a ``tcp://`` address.
    chunk_images
        Images per chunk (default: about 32 MB of pixels per chunk).
    progress
        Show progress bars.
    feature_options
        Per extractor, options such as ``{"inception_v4": {"checkpoint": PATH}}``.

    Returns
    -------
    str
        The cube's path.

    Raises
    ------
    ArchiveError
        Bad archive content, naming the file and line or member.
    CubeError
        ``cube`` exists and ``overwrite`` is false.
    """
    tic = time.perf_counter()
    with staging(cube, overwrite) as store:
        # Check the target first: a long read must not end in "already exists".
        archive = read_oath(source)
        if progress:
            kind = "SYNTHETIC archive" if archive.synthetic else "archive"
            print(
                f"{kind} {archive.source}: {archive.n_images} images "
                f"{archive.image_shape}, split: {archive.split_source}",
                file=sys.stderr,
            )
        write_oath_cube(
            archive, store, scheduler=scheduler, chunk_images=chunk_images, progress=progress
        )
        for name in features:
            options = (feature_options or {}).get(name, {})
            compute_features(store, name, scheduler=scheduler, progress=progress, **options)
        publish_metadata(
            store, oathcube_status="complete", build_seconds=round(time.perf_counter() - tic, 1)
        )
    return str(cube)
