"""Compute a feature variable over a cube, chunk by chunk, resumably, with dask.

Each task reads one chunk of ``pixels``, runs the extractor (built once per
worker process, see :func:`oathcube.features.get_extractor`) and writes its rows
of ``features_<name>`` by region.  The variable's fill value is NaN and no
extractor returns NaN, so a chunk is done exactly when its rows are finite: a
rerun after an interruption skips those chunks and ends with the same array
as an uninterrupted run.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import dask
import numpy as np
import zarr

from ..cube.read import array_at, dims_of, group_at, live_group
from ..cube.schema import IGNORED_SETTINGS, provenance
from ..cube.write import create_rows, publish_metadata, write_labels
from ..errors import CubeError, FeatureError
from ..parallel import LOCAL_SCHEDULERS, cores, run_tasks
from . import accepts_option, get_extractor, variable_name

__all__ = ["compute_features", "chunks_done"]


def _open(store: str, group: str | None) -> zarr.Group:
    root = live_group(store, "r+")
    if group:
        if group not in root:
            raise CubeError(f"no group {group!r}", path=store)
        return group_at(root, group)
    return root


def chunks_done(array: zarr.Array) -> np.ndarray:
    """Boolean per chunk along axis 0: every row written (finite)."""
    size = array.chunks[0]
    n_chunks = math.ceil(array.shape[0] / size) if array.shape[0] else 0
    done = np.zeros(n_chunks, dtype=bool)
    for i in range(n_chunks):
        block = array[i * size : (i + 1) * size]
        done[i] = bool(np.isfinite(block).all())
    return done


def _worker_threads(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """On a dask.distributed worker, give the extractor the worker's thread budget.

    A worker owns ``nthreads`` cores of its machine; letting TensorFlow take all the
    machine's cores in every worker would put more threads than cores to work.
    """
    if "threads" in options or not accepts_option(name, "threads"):
        return options
    try:
        from distributed import get_worker

        return {**options, "threads": get_worker().state.nthreads}
    except (ImportError, ValueError):  # not running on a distributed worker
        return options


def _feature_chunk(
    store: str,
    group: str | None,
    var: str,
    name: str,
    options: dict[str, Any],
    start: int,
    stop: int,
) -> int:
    node = _open(store, group)
    pixels = np.asarray(array_at(node, "pixels")[start:stop])
    if "rot_angle" in node:
        angles = np.asarray(array_at(node, "rot_angle")[start:stop])
    else:
        angles = np.zeros(stop - start, dtype=np.int16)
    extractor = get_extractor(name, **_worker_threads(name, options))
    values = np.asarray(extractor(pixels, angles), dtype=np.float32)
    if values.shape != (stop - start, extractor.n_features) or not np.isfinite(values).all():
        raise FeatureError(
            f"extractor {name!r} returned {values.shape} with non-finite values"
            if values.shape == (stop - start, extractor.n_features)
            else f"extractor {name!r} returned shape {values.shape}",
            path=store,
            member=f"{group or ''}/pixels[{start}:{stop}]",
            expected=f"finite float32 of shape {(stop - start, extractor.n_features)}",
        )
    array_at(node, var)[start:stop] = values
    return stop - start


def compute_features(
    cube: str,
    name: str,
    *,
    group: str | None = None,
    scheduler: str = "threads",
    progress: bool = True,
    overwrite: bool = False,
    rows: tuple[int, int] | None = None,
    **options: Any,
) -> str:
    """Add (or complete) ``features_<name>`` in a cube; return the variable name.

    Parameters
    ----------
    cube
        Path or URL of the cube.
    name
        A registered extractor (``handcrafted``, ``inception_v4``).
    group
        ``None`` for the labelled images (dimension ``image``), or a station
        group such as ``stations/fsmi`` (dimension ``time``; frames unrotated).
    scheduler
        ``threads``, ``processes``, ``synchronous`` or a ``tcp://`` address.
    progress
        Show dask's progress bar and a closing images/s line.
    overwrite
        Recompute every chunk, even when the variable exists with other settings.
    rows
        Only the chunks that overlap positions ``rows[0]:rows[1]`` (default: all).
    **options
        Passed to the extractor (``checkpoint``, ``layer``, ``precision``,
        ``batch_size``, ``random_weights``).

    Raises
    ------
    CubeError, FeatureError
        No cube or pixels; an existing variable made with other settings.
    """
    node = _open(cube, group)
    if "pixels" not in node:
        raise CubeError("no pixels to compute features from", path=cube, member=group)
    pixels = array_at(node, "pixels")
    n, size = pixels.shape[0], pixels.chunks[0]
    dim = (dims_of(pixels) or ("image",))[0]
    var = variable_name(name)

    workers = cores()
    if scheduler == "processes" and "threads" not in options and accepts_option(name, "threads"):
        # Each worker process gets its share of the cores: never more threads than cores.
        options = {**options, "threads": max(1, cores() // workers)}
    extractor = get_extractor(name, **options)
    attrs = provenance(**{"extractor": name, **extractor.attrs()})
    attrs["long_name"] = f"{name} features of pixels"

    if var in node and not overwrite:
        old = dict(array_at(node, var).attrs)
        changed = [
            k for k, v in attrs.items() if k not in IGNORED_SETTINGS and k in old and old[k] != v
        ]
        if changed:
            raise FeatureError(
                f"{var} exists with other settings ({', '.join(changed)})",
                path=cube,
                expected="the same settings to resume, or --overwrite to recompute",
            )
        array = array_at(node, var)
        if array.shape[0] < n:  # a station archive grew since: extend, keep what is there
            array.resize((n, array.shape[1]))
    else:
        featdim = extractor.dim
        array = create_rows(
            node, var, (n, extractor.n_features), size, "float32", np.nan, [dim, featdim], attrs
        )
        labels = extractor.feature_labels()
        if labels is not None and featdim not in node:
            write_labels(node, featdim, labels)

    done = chunks_done(array)
    lo, hi = rows or (0, n)
    todo = [i for i in range(len(done)) if not done[i] and i * size < hi and (i + 1) * size > lo]
    if progress:
        print(
            f"{var}: {len(todo)} chunks to compute ({len(done) - len(todo)} of {len(done)} "
            "already done)",
            file=sys.stderr,
            flush=True,
        )
    tasks = [
        dask.delayed(_feature_chunk)(
            cube, group, var, name, options, i * size, min(n, (i + 1) * size)
        )
        for i in todo
    ]
    tic = time.perf_counter()
    local = scheduler in LOCAL_SCHEDULERS
    counts = run_tasks(
        tasks,
        scheduler,
        num_workers=workers if local else None,
        progress=progress,
        label=f"computing {var} ({scheduler})",
        total=sum(min(n, (i + 1) * size) - i * size for i in todo),
    )
    elapsed = time.perf_counter() - tic
    if progress and counts:
        total = sum(counts)
        print(
            f"{var}: {total} images in {elapsed:.1f} s ({total / elapsed:.1f} images/s)",
            file=sys.stderr,
            flush=True,
        )
    publish_metadata(cube)
    return var
