"""Compute a feature variable over a cube, chunk by chunk, resumably, with dask.

Each task reads one chunk of ``pixels``, runs the extractor (built once per
worker process, see :func:`oathcube.features.get_extractor`) and writes its rows
of ``features_<name>`` by region.  The variable's fill value is NaN and no
extractor returns NaN, so a chunk is done exactly when its rows are finite: a
rerun after an interruption skips those chunks and ends with the same array
as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import warnings
from typing import Any

import numpy as np

from ..cube.schema import features_spec, station_group, variable_path
from ..cube.store import Cube, CubeLike
from ..errors import CubeError, FeatureError
from ..faults import kill_point
from ..memory import exhaustion_as_error
from ..parallel import (
    check_scheduler,
    connected,
    run_tasks,
    thread_budget,
    worker_thread_budget,
)
from . import Calibration, FeatureSpec, feature_spec
from .engines import calibration_rows
from .settings import CALIBRATION_SIZE, settings_class

__all__ = ["calibrate", "chunks_done", "compute_features", "read_calibration"]

log = logging.getLogger(__name__)

# What to lower when memory (or address space for a thread) runs out.
_LOWER = "`batch_size`, or `scheduler` synchronous (no thread pool)"


def chunks_done(cube: Cube, path: str) -> np.ndarray:
    """Boolean per chunk along axis 0 of the array at ``path``: every row written (finite)."""
    n, size = cube.array(path).shape[0], cube.rows_per_chunk(path)
    n_chunks = math.ceil(n / size) if n else 0
    done = np.zeros(n_chunks, dtype=bool)
    for i in range(n_chunks):
        block = cube.read_rows(path, i * size, (i + 1) * size)
        done[i] = bool(np.isfinite(block).all())
    return done


def _feature_chunk(
    cube: Cube,
    group: str | None,
    spec: FeatureSpec,
    threads: int | None,
    start: int,
    stop: int,
) -> int:
    pixels = cube.read_rows(variable_path(group, "pixels"), start, stop)
    if cube.has(variable_path(group, "rot_angle")):
        angles = cube.read_rows(variable_path(group, "rot_angle"), start, stop)
    else:
        angles = np.zeros(stop - start, dtype=np.int16)
    extractor = spec.build(worker_thread_budget(threads))
    values = np.asarray(extractor(pixels, angles), dtype=np.float32)
    want = (stop - start, spec.n_features)
    if values.shape != want or not np.isfinite(values).all():
        raise FeatureError(
            f"extractor {spec.name!r} returned {values.shape} with non-finite values"
            if values.shape == want
            else f"extractor {spec.name!r} returned shape {values.shape}",
            path=cube.location,
            member=f"{group or ''}/pixels[{start}:{stop}]",
            expected=f"finite float32 of shape {want}",
        )
    cube.write_rows(variable_path(group, spec.variable), start, values)
    kill_point("features.chunk_written")
    return stop - start


def _check_precision(
    cube: Cube,
    path: str,
    old: dict[str, Any],
    spec: FeatureSpec,
    n: int,
    rows: tuple[int, int] | None,
    where: str,
) -> None:
    """Refuse to add rows of another precision under the variable's recorded one.

    Precision changes values only by round-off, so it is not compared when a
    model checks its features (IGNORED_SETTINGS); but the variable records one
    precision for all its rows, and a resume in another would make that label
    wrong for some of them.  Complete variables in another precision are fine.
    """
    recorded, asked = old.get("precision"), spec.attrs.get("precision")
    if recorded is None or asked is None or recorded == asked:
        return
    size = cube.rows_per_chunk(path)
    lo, hi = rows or (0, n)
    done = chunks_done(cube, path)
    pending = min(n, hi) > cube.array(path).shape[0] or any(
        not done[i] for i in range(len(done)) if i * size < hi and (i + 1) * size > lo
    )
    if pending:
        raise FeatureError(
            f"{spec.variable} holds rows computed in precision {recorded}, and this run "
            f"would add rows in {asked} under that label",
            path=where,
            expected=f"`precision` {recorded!r} to resume, or `overwrite` to recompute in {asked}",
        )


def read_calibration(
    cube: Cube, group: str | None = None, size: int = CALIBRATION_SIZE
) -> Calibration:
    """The cube frames that calibrate int8 quantisation, and their record.

    Read once, here where the cube is held, and handed to the extractor with the
    spec (:meth:`~oathcube.features.FeatureSpec.calibrated`): no worker opens
    the cube to read them again.

    Parameters
    ----------
    cube
        The cube (already open; read only).
    group
        ``None`` or ``""``: the labelled images when the cube has them, else its
        first station; or a station group ``stations/<code>``.
    size
        Frames to use, spread evenly over the committed rows.

    Returns
    -------
    Calibration
        uint8 frames, their rotation angles (0 where the group has none), and
        what the features' ``int8_calibration`` attribute records: the cube,
        group, rows and the SHA-256 of the frames and angles.

    Raises
    ------
    FeatureError
        No such group, or no frames to calibrate on.
    """
    if group and not cube.has(group):
        raise FeatureError(
            "no such group to calibrate int8 quantisation on",
            path=cube.where(group),
            expected=f"stations of the cube: {', '.join(cube.stations()) or 'none'}",
        )
    if not group:
        if cube.has("pixels"):
            group = None
        elif cube.stations():
            group = station_group(cube.stations()[0])
    pixels = variable_path(group, "pixels")
    n = cube.committed_rows(group) if cube.has(pixels) else 0
    if n == 0:
        raise FeatureError(
            "no frames to calibrate int8 quantisation on",
            path=cube.where(group),
            expected="a cube with pixels (int8 calibrates on the cube's own frames)",
        )
    rows = calibration_rows(n, size)
    index = np.asarray(rows, dtype=np.int64)
    # Every chunk of pixels is written: a missing one is damage, never calibrated on.
    frames = cube.read_checked(pixels, index)
    if cube.has(variable_path(group, "rot_angle")):
        angles = cube.read_checked(variable_path(group, "rot_angle"), index).astype(np.float64)
    else:
        angles = np.zeros(len(rows))
    digest = hashlib.sha256(np.ascontiguousarray(frames).tobytes())
    digest.update(np.ascontiguousarray(angles, dtype="<f8").tobytes())
    record = {
        "cube": cube.location,
        "group": group or "",
        "rows": rows,
        "sha256": digest.hexdigest(),
    }
    return Calibration(frames, angles, record)


def calibrate(cube: Cube, spec: FeatureSpec, group: str | None = None) -> FeatureSpec:
    """``spec`` with its int8 calibration frames read from ``cube``, if it needs them.

    The group is the settings' ``calibration_group``, else ``group`` (the one
    computed).
    """
    if not spec.needs_calibration:
        return spec
    settings = spec.settings
    where = settings.calibration_group or group
    return spec.calibrated(read_calibration(cube, where, settings.calibration_size))


def compute_features(
    cube: CubeLike,
    features: Any,
    *,
    station: str | None = None,
    scheduler: str | None = None,
    progress: bool = False,
    overwrite: bool = False,
    rows: tuple[int, int] | None = None,
    storage_options: dict[str, Any] | None = None,
    **options: Any,
) -> str:
    """Add (or complete) ``features_<name>`` in a cube; return the variable name.

    Parameters
    ----------
    cube
        Path, URL or :class:`~oathcube.cube.store.Cube`.
    features
        What to compute: a :class:`~oathcube.features.FeatureSpec` already
        checked, a settings object
        (:class:`~oathcube.features.settings.HandcraftedSettings`,
        :class:`~oathcube.features.settings.InceptionV4Settings`), or a
        registered extractor's name (its default settings).
    station
        ``None`` for the labelled images (dimension ``image``), or a station's code
        (``fsmi``: its frames along ``time``, unrotated).
    scheduler
        ``threads``, ``processes``, ``synchronous``, a ``tcp://`` address, or None
        (a ``distributed.Client`` the caller has, else threads).
    progress
        Show a progress bar and a closing images/s line.
    overwrite
        Recompute every chunk, even when the variable exists with other settings.
    rows
        Only the chunks that overlap positions ``rows[0]:rows[1]`` (default: all).
    **options
        Deprecated (removed in the next release): settings fields with a name;
        pass a settings object instead.  ``calibration`` (another cube) is gone:
        int8 calibrates on frames of ``cube`` (the settings' ``calibration_group``,
        else the frames it computes on).
    storage_options
        fsspec options of a cube at a URL (credentials, an endpoint), as for
        :meth:`~oathcube.cube.store.Cube.open`; or pass a Cube that carries them.

    Raises
    ------
    CubeError, FeatureError
        No cube or pixels; an existing variable made with other settings; a bad
        option (all checked before anything is written or built).
    """
    check_scheduler(scheduler)
    if options:
        cls = settings_class(features) if isinstance(features, str) else None
        warnings.warn(
            "compute_features(cube, name, **options) is deprecated: pass a settings object, "
            f"{cls.__name__ if cls else 'SettingsClass'}"
            f"({', '.join(f'{k}=...' for k in options)})",
            DeprecationWarning,
            stacklevel=2,
        )
    spec = feature_spec(features, **options)
    cube = Cube.open(cube, "r+", storage_options=storage_options)
    group = None if station is None else cube.require_station(station)
    _warn_of_input(cube, spec, group)
    # int8 calibrates on frames of this cube, read once here (before the first write).
    spec = calibrate(cube, spec, group)
    # Connected before the first write: --overwrite empties the variable, and a
    # scheduler that never answers must not leave it empty (nor take 30 s to say so).
    with (
        exhaustion_as_error(f"computing {spec.variable}", _LOWER),
        connected(scheduler),
        cube.writing("features"),
    ):
        return _compute(cube, spec, group, scheduler, progress, overwrite, rows)


def _warn_of_input(cube: Cube, spec: FeatureSpec, group: str | None) -> None:
    """Say so when Aurora-FM features of a station will not be themisim's embedding.

    Aurora-FM equals themisim only on frames prepared as themisim prepares them
    (:meth:`oathcube.rawprep.RawPreparation.aurora_fm`); on a station prepared
    otherwise the features are well defined but of another stretch and crop.
    """
    if spec.name != "aurora_fm" or group is None:
        return
    from ..rawprep import RawPreparation

    try:
        scaling = RawPreparation.from_record(cube.group(group).attrs["preparation"]).scaling
    except (KeyError, ValueError, TypeError):  # none recorded, or unreadable: not themisim's
        scaling = None
    if scaling != "aurora_fm":
        warnings.warn(
            f"{spec.variable} of {group}: its frames were prepared with scaling {scaling!r}, "
            "not RawPreparation.aurora_fm(), so these are not themisim's Aurora-FM "
            "embedding (ingest with --prep aurora_fm for that)",
            UserWarning,
            stacklevel=3,
        )


def _compute(
    cube: Cube,
    spec: FeatureSpec,
    group: str | None,
    scheduler: str | None,
    progress: bool,
    overwrite: bool,
    rows: tuple[int, int] | None,
) -> str:
    pixels = variable_path(group, "pixels")
    if not cube.has(pixels):
        raise CubeError("no pixels to compute features from", path=cube.where(group))
    size = cube.rows_per_chunk(pixels)  # sharded pixels: one feature chunk per shard
    dim = (cube.dims(pixels) or ("image",))[0]
    # A station may hold rows that a killed ingest never committed: drop them first.
    n = cube.repair_rows(group) if dim == "time" else cube.array(pixels).shape[0]
    var = spec.variable
    path = variable_path(group, var)
    feature = features_spec(
        spec.name, dim=dim, feature_dim=spec.dim, rows_per_chunk=size, settings=spec.attrs
    )
    inputs = [p for p in (pixels, variable_path(group, "rot_angle")) if cube.has(p)]

    # Every input is checked before the first write: with --overwrite every chunk is
    # to do, and a missing chunk of pixels must be named before the old rows are gone.
    checked_early = overwrite and cube.has(path)
    if checked_early:
        lo, hi = rows or (0, n)
        first, last = lo - lo % size, min(n, hi)
        for name in inputs:
            if last > first:
                cube.check_chunks(name, rows=(first, last))

    if cube.has(path) and not overwrite:
        old = dict(cube.array(path).attrs)
        stored = feature.stored_attrs()
        changed = [k for k in spec.differences(old) if k in old and k in stored]
        if changed:
            raise FeatureError(
                f"{var} exists with other settings ({', '.join(changed)})",
                path=cube.where(group),
                expected="the same settings to resume, or `overwrite` to recompute",
            )
        _check_precision(cube, path, old, spec, n, rows, cube.where(group))
        if cube.array(path).shape[0] < n:  # a station grew since: extend, keep what is there
            cube.resize(path, n)
    else:
        cube.create(feature, (n, spec.n_features), group=group, overwrite=True)
        if spec.labels is not None and not cube.has(variable_path(group, spec.dim)):
            cube.write_labels(group, spec.dim, list(spec.labels))
        kill_point("features.created")

    done = chunks_done(cube, path)
    lo, hi = rows or (0, n)
    todo = [i for i in range(len(done)) if not done[i] and i * size < hi and (i + 1) * size > lo]
    if todo and not checked_early:  # (that check covered every row to do: not twice)
        # Nothing is computed on a chunk of pixels that is missing from the store.
        span = (todo[0] * size, min(n, (todo[-1] + 1) * size))
        for name in inputs:
            cube.check_chunks(name, rows=span)
    log.info(
        "%s: %d chunks to compute (%d of %d already done)",
        var,
        len(todo),
        len(done) - len(todo),
        len(done),
    )
    import dask

    budget = thread_budget(scheduler)
    tasks = [
        dask.delayed(_feature_chunk)(cube, group, spec, budget, i * size, min(n, (i + 1) * size))
        for i in todo
    ]
    tic = time.perf_counter()
    counts = run_tasks(
        tasks,
        scheduler,
        progress=progress,
        label=f"computing {var} ({scheduler or 'threads'})",
        total=sum(min(n, (i + 1) * size) - i * size for i in todo),
    )
    elapsed = time.perf_counter() - tic
    if counts:
        total = sum(counts)
        log.info("%s: %d images in %.1f s (%.1f images/s)", var, total, elapsed, total / elapsed)
    kill_point("features.before_publish")
    cube.publish()
    return var
