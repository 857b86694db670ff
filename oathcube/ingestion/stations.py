"""Raw station archives into the cube: ``stations/<code>`` groups along ``time``.

``stations/<code>`` groups hold one station each along a monotonic ``time``
dimension: ``pixels(time, y, x)`` (8-bit, prepared as :mod:`oathcube.rawprep`
records in the attributes; ``pixels(time, y, x, band)`` for TREx RGB); features and
predictions come later (:mod:`oathcube.classification`), along the same ``time``.

An ingest is a dask graph over its sources, in four steps:

1. **scan** every source cheaply (a CDF's times and frame shape, without its
   frames) and check them all, against each other and against the station already
   stored, so that every error comes before the first write;
2. **plan**: record the append (``oathcube_pending``: rows, sources, preparation),
   extend every ``time``-indexed array and write the new times;
3. **tasks** that each read, prepare and write whole chunks of ``pixels`` (no two
   tasks write one chunk), on threads, processes or a ``dask.distributed`` cluster,
   each worker reading its sources by path itself;
4. **commit**: ``oathcube_rows`` (the committed length) and ``sources`` in one
   metadata write, then the consolidated metadata that readers see.

Readers see the new frames only after step 4.  A run killed before it is resumed
chunk by chunk: a rerun with the same sources finds its plan and writes only the
chunks that are not in the store yet; any other writer first cuts the arrays back
to ``oathcube_rows``.  Either way the arrays end as an uninterrupted run leaves them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..archive.frames import FrameBlock, iter_frame_blocks, source_kind
from ..archive.instruments import INSTRUMENTS
from ..archive.orientation import ORIENTATION, RAW_ORIENTATION
from ..archive.themis_cdf import part_step, read_cdf, read_cdf_parts
from ..cube.location import check_new_location, normalise_location, refuse_nesting
from ..cube.schema import (
    COMPLETE,
    PENDING,
    STATUS,
    images_per_chunk,
    station_attrs,
    station_group,
    station_specs,
    variable_path,
)
from ..cube.staging import StationStage
from ..cube.store import Cube, CubeLike
from ..errors import CubeNotFoundError, IngestError, OptionError
from ..faults import kill_point
from ..fetch.imagers import AsiRequest
from ..parallel import check_scheduler, connected, cores, run_tasks
from ..rawprep import RawPreparation
from .skymaps import check_skymap_stations, store_skymaps, take_skymaps

__all__ = ["ingest", "check_layout", "open_target", "PENDING", "ROWS_PER_TASK"]

log = logging.getLogger(__name__)

#: Frames one task writes at most (whole chunks): about two hour files.  A task holds one
#: chunk of prepared frames and READ_FRAMES raw ones at a time, whatever its size; this
#: bounds what it holds of sources read whole (PGM minutes, image folders, CDFs in the
#: 2024 layout).  A CDF straddling two tasks costs nothing extra in the classic layout
#: (each task reads only its records); a 2024-layout hour (one compressed record) is
#: inflated by each task that holds rows of it.  Ending tasks where no source goes on
#: instead was measured slower for both layouts (bench_scale 4,800 frames, EPYC Zen 4,
#: 2 cores: classic 2,212 -> 1,466 fr/s, 2024 943 -> 867): fewer, longer tasks balance
#: worse than the re-reads cost.
ROWS_PER_TASK = 2400

#: Raw frames read, prepared and placed at a time (256 x 256 x 16 bit: 8 MB).
READ_FRAMES = 64

#: Tasks a station's new rows are cut into per core, where chunks allow.
TASKS_PER_CORE = 8

#: Frames per chunk of sharded pixels unless told: small chunks read cheaply one by one
#: (a frame costs a 2.5 MB range request, not 20 MB), the shard makes them few objects.
SHARDED_CHUNK_FRAMES = 64

#: Root attributes of a cube that ingest creates (at its first station's landing).
_CUBE_ATTRS: dict[str, Any] = {"title": "all-sky imager station archives", STATUS: COMPLETE}


@dataclass
class _Source:
    """What the scan learned of one source's frames of one station."""

    source: str
    station: str
    times: list[np.ndarray]
    shape: tuple[int, ...]
    #: ``(y, x)`` of the frames as read, where they are raw (prepared on ingest); None for
    #: frames stored as read (image folders).
    raw_shape: tuple[int, int] | None = None
    #: The imager (``FrameBlock.instrument``), recorded as the station's ``instrument``.
    instrument: str = "themis"

    @property
    def first(self) -> np.datetime64:
        return self.times[0][0]

    @property
    def last(self) -> np.datetime64:
        return self.times[-1][-1]

    def all_times(self) -> np.ndarray:
        return np.concatenate(self.times)


def _encode_times(times: np.ndarray) -> np.ndarray:
    return times.astype("datetime64[us]").astype(np.int64)


def _stored_instrument(attrs: Any) -> str:
    """The instrument of a station group, from its attributes.

    Stations ingested before the ``instrument`` attribute hold THEMIS frames (the only
    raw readers then) or image-folder frames, which ``raw_frames`` tells apart; a group
    with neither attribute counts as THEMIS.
    """
    named = attrs.get("instrument")
    if named:
        return str(named)
    raw_frames = attrs.get("raw_frames")
    if isinstance(raw_frames, dict) and raw_frames.get("raw") is False:
        return "images"
    return "themis"


def _check_instruments(code: str, entries: list[_Source], stored: str | None = None) -> None:
    """Refuse, before any write, frames of two instruments for one station group.

    ``stored``: the instrument of the station already in the cube, if any.  The readers
    send each imager's frames to its own station (:func:`oathcube.sites.station_code`:
    ``gill``, ``gill_trex_nir``), so this catches what names cannot tell apart: an image
    folder (or ``station=``) pointing frames at a station of another imager, whose frames
    may well have the same size.
    """
    have = stored or entries[0].instrument
    for entry in entries:
        if entry.instrument == have:
            continue
        new, old = INSTRUMENTS[entry.instrument].title, INSTRUMENTS[have].title
        if stored:
            what = f"{new} frames, but station {code!r} holds {old} frames"
        else:
            what = f"{old} and {new} frames for one station {code!r}"
        raise IngestError(
            f"{what}: a station holds one imager's frames",
            path=entry.source,
            expected=f"{old} frames only for {code!r} in this cube",
        )


def _check_bands(block: FrameBlock, prep: RawPreparation) -> None:
    """Refuse, before any write, raw frames that ``prep`` cannot prepare.

    TREx RGB frames (``uint8``, three bands) keep their bands (``pixels(time, y, x,
    band)``) and take ``scaling="none"`` only; the 16->8-bit scalings refuse them, and
    ``"none"`` refuses 16-bit frames.
    """
    if not block.raw:
        return
    refusal = prep.refusal(block.frames.dtype, block.bands)
    if refusal:
        raise IngestError(
            f"{INSTRUMENTS[block.instrument].title} frames: {refusal}",
            path=block.source,
            expected=(
                'a preparation with scaling="none" (--prep \'{"scaling": "none"}\')'
                if block.bands != 1
                else 'a 16->8-bit scaling ("percentile" or "fixed") for 16-bit frames'
            ),
        )


def _check_against_station(cube: Cube, code: str, entries: list[_Source], prep_attrs: str) -> None:
    """Refuse, before any write, sources that do not fit the station already stored."""
    path = station_group(code)
    if not cube.has(path):
        return
    pixels, time = variable_path(path, "pixels"), variable_path(path, "time")
    if not (cube.has(pixels) and cube.has(time)):
        return  # a group a killed ingest left without arrays: nothing committed yet
    _check_instruments(code, entries, _stored_instrument(cube.group(path).attrs))
    stored_prep = cube.group(path).attrs.get("preparation")
    stored_shape = cube.array(pixels).shape[1:]
    n = cube.committed_rows(path)
    last = cube.read_times(path, n, max(0, n - 1))
    stored: np.ndarray | None = None
    for entry in entries:
        if stored_prep not in (None, prep_attrs):
            raise IngestError(
                "frames prepared differently from the station's earlier frames",
                path=entry.source,
                expected=str(stored_prep),
            )
        if entry.shape != stored_shape:
            raise IngestError(
                f"frames of shape {entry.shape}",
                path=entry.source,
                expected=f"{stored_shape} like the station's others",
            )
        if last.size and entry.first <= last[0]:
            # A rerun or an overlap: only then is the station's time axis read.
            if stored is None:
                stored = cube.read_times(path, n)
            times = entry.all_times()
            old = times[times <= last[0]]
            if not np.isin(old, stored).all():
                raise IngestError(
                    f"frames from {entry.first} overlap the station's archive (ends {last[0]})",
                    path=entry.source,
                    expected="files ingested in time order; use a new cube to add earlier data",
                )


def _check_sources(entries: list[_Source]) -> None:
    """Refuse sources of one station whose times overlap each other (before any write)."""
    for before, after in zip(entries, entries[1:], strict=False):
        if after.first <= before.last:
            raise IngestError(
                f"frames from {after.first} overlap {before.source} (which ends {before.last})",
                path=after.source,
                expected="sources whose times do not overlap",
            )


def _station_node(
    cube: Cube,
    code: str,
    shape: tuple[int, ...],
    prep_attrs: str,
    chunk_frames: int | None,
    shard_frames: int | None = None,
) -> str:
    """The station's group path, the group made (empty) where there is none yet.

    A group that a killed ingest created without (all of) its arrays gets them now.
    """
    path = station_group(code)
    if not cube.has(path):
        cube.create_group(path, station_attrs(code, prep_attrs))
        kill_point("ingest.group_created")
    if shard_frames:
        size = chunk_frames or math.gcd(SHARDED_CHUNK_FRAMES, shard_frames)
    else:
        size = chunk_frames or images_per_chunk(shape)
    specs = station_specs(
        orientation=ORIENTATION,
        raw_orientation=RAW_ORIENTATION,
        rows_per_chunk=size,
        rows_per_shard=shard_frames,
        bands=len(shape) == 3,
    )
    if not cube.has(variable_path(path, "time")):
        cube.create(specs["time"], (0,), group=path)
        kill_point("ingest.time_created")
    if not cube.has(variable_path(path, "pixels")):
        cube.create(specs["pixels"], (0, *shape), group=path)
    return path


@dataclass(frozen=True)
class _Piece:
    """Frames ``lo:hi`` of a source's new frames, bound for rows ``row:row + hi - lo``.

    ``old`` frames of the source (those up to the station's last committed time)
    come before its new ones in time order.
    """

    source: str
    station: str
    lo: int
    hi: int
    row: int
    old: int = 0


@dataclass(frozen=True)
class _Task:
    """Rows ``start:stop`` of a station's pixels (whole chunks), from ``pieces``."""

    group: str
    start: int
    stop: int
    committed: int
    pieces: tuple[_Piece, ...]

    @property
    def new_rows(self) -> int:
        return sum(p.hi - p.lo for p in self.pieces)


def _read_new_frames(
    piece: _Piece, after: np.datetime64 | None, times_csv: str | None, station: str | None
) -> tuple[np.ndarray, bool]:
    """The new frames ``lo:hi`` of a source (those after ``after``), and whether raw."""
    if source_kind(piece.source) == "cdf":
        # Only the records this piece needs: the chunks that share an hour file each
        # decompress their part alone.
        rows = (piece.old + piece.lo, piece.old + piece.hi)
        return read_cdf(piece.source, rows=rows).frames, True
    blocks = [
        b
        for b in iter_frame_blocks([piece.source], station=station, times_csv=times_csv)
        if b.station == piece.station and str(b.source) == piece.source
    ]
    times = np.concatenate([b.time for b in blocks])
    frames = np.concatenate([b.frames for b in blocks]) if len(blocks) > 1 else blocks[0].frames
    if after is not None:
        frames = frames[times > after]
    return frames[piece.lo : piece.hi], blocks[0].raw


def _write_task(
    cube: Cube,
    task: _Task,
    prep: RawPreparation,
    after: np.datetime64 | None,
    times_csv: str | None,
    station: str | None,
) -> int:
    """Read, prepare and write the whole chunks of one task; return the new frames.

    ``after`` is the station's last committed time: frames up to it are not new.
    The task goes one chunk at a time, reading only the frames of that chunk, so
    that its memory is one chunk's frames however many chunks it writes.
    """
    path = variable_path(task.group, "pixels")
    size = cube.rows_per_chunk(path)
    frame = tuple(cube.array(path).shape[1:])
    # One buffer for every chunk of the task: a fresh 30 MB array per chunk would cost
    # the kernel's page faults (zeroed pages) again each time.
    buffer = np.empty((min(size, task.stop - task.start), *frame), dtype=np.uint8)
    # Sources read whole (PGM minutes, image folders, CDFs that cannot be read in parts)
    # are read once per task and sliced.
    held: dict[_Piece, tuple[np.ndarray, bool]] = {}
    steps: dict[str, int] = {}  # frames per part read of each CDF (0: read whole)
    for start in range(task.start, task.stop, size):
        stop = min(start + size, task.stop)
        rows = buffer[: stop - start]
        filled = 0
        if start < task.committed:  # the head of a partly filled chunk: keep its rows
            rows[: task.committed - start] = cube.read_rows(path, start, task.committed)
            filled = task.committed - start
        for whole in task.pieces:
            for part in _pieces_within([whole], start, stop):
                if source_kind(part.source) == "cdf" and part.source not in steps:
                    steps[part.source] = part_step(part.source, READ_FRAMES)
                if steps.get(part.source):
                    # A few frames at a time, whole compressed blocks: raw frames stay in
                    # cache from decompression to preparation, no large array is made.
                    # The file is opened, timed and indexed once for all of them.
                    bits = list(_parts(part, steps[part.source]))
                    spans = [(bit.old + bit.lo, bit.old + bit.hi) for bit in bits]
                    for bit, frames in zip(bits, read_cdf_parts(part.source, spans), strict=True):
                        filled += _place(rows, bit.row - start, frames, True, prep)
                    continue
                if whole not in held:
                    held[whole] = _read_new_frames(whole, after, times_csv, station)
                every, raw = held[whole]
                frames = every[part.lo - whole.lo : part.hi - whole.lo]
                filled += _place(rows, part.row - start, frames, raw, prep)
        if filled != stop - start:  # a planning bug, never a file's fault: say so loudly
            raise AssertionError(f"rows {start}:{stop} of {task.group}: {filled} filled")
        cube.write_rows(path, start, rows)
    kill_point("ingest.chunk_written")
    return task.new_rows


def _parts(piece: _Piece, step: int) -> Iterator[_Piece]:
    """``piece`` cut where the file's record number is a multiple of ``step``."""
    lo = piece.lo
    while lo < piece.hi:
        # Records old + lo ...: the next multiple of step in the file's numbering.
        hi = min(piece.hi, ((piece.old + lo) // step + 1) * step - piece.old)
        yield _Piece(piece.source, piece.station, lo, hi, piece.row + lo - piece.lo, piece.old)
        lo = hi


def _place(rows: np.ndarray, at: int, frames: np.ndarray, raw: bool, prep: RawPreparation) -> int:
    """Put ``frames`` (prepared if raw) into ``rows[at:]``; return how many."""
    rows[at : at + len(frames)] = prep.apply(frames) if raw else frames
    return len(frames)


def _pieces_within(pieces: Sequence[_Piece], start: int, stop: int) -> list[_Piece]:
    """The parts of ``pieces`` that fall in rows ``start:stop``."""
    cut = []
    for piece in pieces:
        lo_row = max(piece.row, start)
        hi_row = min(piece.row + piece.hi - piece.lo, stop)
        if lo_row < hi_row:
            lo = piece.lo + lo_row - piece.row
            cut.append(
                _Piece(piece.source, piece.station, lo, lo + hi_row - lo_row, lo_row, piece.old)
            )
    return cut


def _plan_tasks(
    group: str, committed: int, chunk: int, entries: list[_Source], news: list[np.ndarray]
) -> list[_Task]:
    """Cut a station's new rows into tasks of whole chunks (ROWS_PER_TASK at most)."""
    pieces: list[_Piece] = []
    row = committed
    for entry, new in zip(entries, news, strict=True):
        if new.size:
            old = sum(t.size for t in entry.times) - int(new.size)
            pieces.append(_Piece(entry.source, entry.station, 0, int(new.size), row, old))
            row += int(new.size)
    end = row
    if end == committed:
        return []
    # About eight tasks a core, none larger than ROWS_PER_TASK: threads that finish
    # at different times then wait for each other for an eighth of a core's share at
    # most (two tasks a core lost a tenth of a 10,000-frame ingest to the last task).
    spread = -(-(end - committed) // (TASKS_PER_CORE * cores()))
    per_task = max(chunk, min(ROWS_PER_TASK // chunk, -(-spread // chunk)) * chunk)
    first = committed // chunk * chunk
    tasks = []
    for start in range(first, end, per_task):
        stop = min(start + per_task, end)
        cut = tuple(_pieces_within(pieces, start, stop))
        tasks.append(_Task(group, start, stop, committed, cut))
    return tasks


def check_layout(chunk_frames: int | None, shard_frames: int | None) -> None:
    """Refuse frames per chunk or per shard that no station could be laid out with.

    Raises
    ------
    OptionError
        A chunk below one frame, or a shard that is not a positive multiple of it.
    """
    if chunk_frames is not None and chunk_frames < 1:
        raise OptionError(
            f"{chunk_frames} frames per chunk", parameter="chunk_frames", expected="1 or more"
        )
    if shard_frames is not None and (
        shard_frames < 1 or (chunk_frames and shard_frames % chunk_frames)
    ):
        raise OptionError(
            f"{shard_frames} frames per shard",
            parameter="shard_frames",
            expected=f"a positive multiple of the {chunk_frames or 'chunk'} frames per chunk",
        )


def open_target(cube: CubeLike) -> Cube | None:
    """The cube an ingest appends to, or None where a new one is to be made.

    Checked before anything is read (or fetched): an existing cube must be complete
    and writable; a new one must go where nothing else is.

    Raises
    ------
    CubeError
        The cube is incomplete, read-only or no cube; or the new location is taken.
    """
    try:
        return Cube.open(cube, "r+")
    except CubeNotFoundError:
        if isinstance(cube, Cube):
            check_new_location(cube.location, cube.storage_options)
        else:
            check_new_location(cube)
        return None


def ingest(
    sources: Sequence[str | os.PathLike[str]],
    cube: CubeLike,
    *,
    fetch: AsiRequest | None = None,
    preparation: RawPreparation | None = None,
    skip_bad: bool = False,
    station: str | None = None,
    times_csv: str | os.PathLike[str] | None = None,
    chunk_frames: int | None = None,
    shard_frames: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, int]:
    """Append all-sky frames (THEMIS CDF and PGM, REGO and TREx PGM, image folders) to ``cube``.

    Every source is scanned and checked (against the others and against the
    station already stored) before anything is written, so a bad file or an
    overlap stops the ingest with nothing written (or, with ``skip_bad``, a file
    that cannot be read is left out and listed in the station's ``skipped``
    attribute).  Then tasks read, prepare and write whole chunks in parallel, and
    the append is committed at the end (see the module documentation); frames
    already in the cube are skipped, and a killed run resumes chunk by chunk.

    Parameters
    ----------
    sources
        Files and folders (see :func:`oathcube.archive.frames.iter_frame_blocks`).
    cube
        Path, URL or :class:`~oathcube.cube.store.Cube` (created if missing; a
        location that holds anything else is refused before reading starts).
    fetch
        One station's raw files for a time range (:class:`~oathcube.fetch.AsiRequest`),
        fetched where missing once the cube has been checked, then ingested with
        ``sources``: what ``oathcube ingest --station S --start T0 --end T1`` does.
    preparation
        How 16-bit frames become 8-bit images (default :class:`RawPreparation()`).
    skip_bad
        Leave out unreadable files instead of stopping.
    station, times_csv
        For image folders whose names carry no station or time.
    chunk_frames
        Frames per chunk of a new station group (default: about 32 MB; with shards,
        64).
    shard_frames
        Frames per shard of a new station group's pixels (Zarr v3 sharding; default:
        none).  Fewer objects on an object store (4,096-frame shards of 64-frame chunks:
        879 objects per station-year instead of 7,032) at the cost of rewriting the
        last, partly filled shard on each append; tasks write whole shards.
    scheduler
        ``threads``, ``processes``, ``synchronous``, a ``tcp://`` address, or None
        (a ``distributed.Client`` the caller has, else threads).
    progress
        Show progress bars.
    storage_options
        fsspec options of a cube at a URL (credentials, an endpoint); or pass a
        :class:`~oathcube.cube.store.Cube` that carries them.

    Returns
    -------
    dict
        Frames appended per station.
    """
    check_scheduler(scheduler)
    check_layout(chunk_frames, shard_frames)
    if not sources and fetch is None:
        raise OptionError(
            "no sources given", expected="CDF or PGM files, folders of frames, or fetch="
        )
    # One Cube for the whole ingest (it need not exist yet): it carries the location,
    # normalised once, and the storage options to every step and every dask worker.
    if not isinstance(cube, Cube):
        cube = Cube(normalise_location(cube), "r+", storage_options=storage_options)
    elif storage_options and storage_options != cube.storage_options:
        raise OptionError(
            "storage_options given with a Cube that has others",
            path=cube.location,
            expected="storage_options given once",
        )
    target_location = cube.location
    for source in sources:
        refuse_nesting(source, target_location, "source")
    # The cube is checked once, before anything is fetched or read.
    existing = open_target(cube)
    if fetch is not None:
        sources = [*sources, *fetch.sources(progress=progress)]
    # Skymaps (.sav) go their own way: read and checked now, stored with the frames.
    sources, skymaps = take_skymaps(sources, station, existing or cube)
    if skymaps and not sources:
        store_skymaps(skymaps, existing or cube)
        return {}  # no frames: the log says which skymaps were stored
    prep = preparation or RawPreparation()
    prep_attrs = json.dumps(prep.attrs(), sort_keys=True)
    csv = None if times_csv is None else os.fspath(times_csv)

    # 1. scan: stations, times and shapes of every source; nothing prepared, nothing kept.
    reader = iter_frame_blocks(
        sources, skip_bad=skip_bad, station=station, times_csv=csv, scan=True
    )
    seen: dict[tuple[str, str], _Source] = {}
    for block in tqdm(reader, desc="scanning", unit="block", disable=not progress, file=sys.stderr):
        _note(seen, block, prep)
    skipped = reader.skipped_as_attrs()
    if not seen:
        raise IngestError(
            "no frames found",
            path=", ".join(map(str, sources)),
            expected="THEMIS CDF L1, UCalgary PGM or HDF5 files, or folders of PNG/JPEG frames",
        )
    by_station: dict[str, list[_Source]] = {}
    for key in sorted(seen, key=lambda k: seen[k].first):
        by_station.setdefault(key[1], []).append(seen[key])
    for code, entries in by_station.items():
        _check_instruments(code, entries)  # first: mixed imagers also mix shapes and times
        shapes = {e.shape for e in entries}
        if len(shapes) > 1:
            raise IngestError(
                f"frames of shapes {sorted(shapes)}",
                path=", ".join(e.source for e in entries),
                expected=f"one frame shape per station ({code})",
            )
        _check_sources(entries)
        if existing is not None:
            _check_against_station(existing, code, entries, prep_attrs)
    # A skymap goes to its imager's station, which must get frames here or have some.
    check_skymap_stations(skymaps, list(by_station), existing)

    # Everything is checked: from here on, the cube is written.  A new cube is created
    # only when its first station lands (StationStage.land), so that a first ingest that
    # fails or is killed leaves no cube of uncommitted frames.
    target = existing or cube
    written: dict[str, int] = {}
    # Connected (to an address) before the first write; the one Client serves every station.
    with connected(scheduler), target.writing("ingest"):
        for code, entries in by_station.items():
            stage = StationStage(target, code)
            if stage.committed():
                # A killed run committed this new station but did not move it into the
                # cube: finish that first, then check the sources against it as usual.
                stage.land(**_CUBE_ATTRS)
                _check_against_station(target, code, entries, prep_attrs)
            written[code] = _ingest_station(
                target,
                code,
                entries,
                prep,
                prep_attrs,
                (chunk_frames, shard_frames),
                csv,
                station,
                scheduler,
                progress,
            )
        for code in written:
            g = station_group(code)
            target.group(g).attrs["skipped"] = [*target.attr_list(g, "skipped"), *skipped]
        if skipped:
            listed = [*target.attr_list(None, "ingest_skipped"), *skipped]
            target.root.attrs["ingest_skipped"] = listed
        if skymaps:
            store_skymaps(skymaps, target)
        target.publish()
    return written


def _ingest_station(
    cube: Cube,
    code: str,
    entries: list[_Source],
    prep: RawPreparation,
    prep_attrs: str,
    layout: tuple[int | None, int | None],
    times_csv: str | None,
    station: str | None,
    scheduler: str | None,
    progress: bool,
) -> int:
    """Plan, write and commit one station's new frames; return how many.

    ``layout``: frames per chunk and per shard of a new station's pixels.
    """
    group = station_group(code)
    everything = [e.all_times() for e in entries]
    stage: StationStage | None = None
    into = cube  # where the rows are written: the cube, or a new station's stage
    if not (cube.exists() and cube.has(group)):
        stage = StationStage(cube, code)
        fresh = _plan(0, sum(int(t.size) for t in everything), entries, prep_attrs, layout)
        if stage.exists() and stage.pending() != fresh:
            stage.discard()  # another plan's uncommitted frames: not this run's to resume
        into = stage.open()
    _station_node(into, code, entries[0].shape, prep_attrs, *layout)
    attrs = into.group(group).attrs
    if "raw_frames" not in attrs:
        # What the skymaps stored with this station must fit (skymaps.py): the cube holds
        # only the prepared frames.
        raw = entries[0].raw_shape
        attrs["raw_frames"] = {"raw": raw is not None, "shape": list(raw or ())}
    if "instrument" not in attrs:
        # Checked against the station's frames before any write (_check_against_station).
        attrs["instrument"] = entries[0].instrument
    pending = into.pending(group)
    committed = into.committed_rows(group)
    last = into.read_times(group, committed, max(0, committed - 1))
    after = last[0] if last.size else None
    news = [t if after is None else t[t > after] for t in everything]
    end = committed + sum(int(t.size) for t in news)
    plan = _plan(committed, end, entries, prep_attrs, layout)
    resuming = pending == plan
    if not resuming:
        into.repair_rows(group)  # a different (or no) plan: drop any uncommitted rows first
    if end == committed:
        return 0  # (a new station always has frames: the scan found them)
    chunk = into.rows_per_chunk(variable_path(group, "pixels"))
    if not resuming:
        into.plan_rows(group, plan)
        into.extend_rows(group, end)  # new feature/prediction rows: "not computed"
        into.write_rows(
            variable_path(group, "time"), committed, _encode_times(np.concatenate(news))
        )
        kill_point("ingest.planned")
    tasks = _plan_tasks(group, committed, chunk, entries, news)
    if resuming:  # chunks a killed run wrote are whole in the store: keep them
        stored = into.stored_chunks(variable_path(group, "pixels"))
        rest = "/0" * len(entries[0].shape)  # the chunk key's frame axes: y, x[, band]
        tasks = [
            t
            for t in tasks
            if t.start < committed
            or not all(f"{i}{rest}" in stored for i in range(t.start // chunk, -(-t.stop // chunk)))
        ]
    import dask

    try:
        run_tasks(
            [dask.delayed(_write_task)(into, t, prep, after, times_csv, station) for t in tasks],
            scheduler,
            progress=progress,
            label=f"{code}: {end - committed} new frames in {len(tasks)} tasks",
            total=sum(t.new_rows for t in tasks),
            unit="frame",
        )
    except BaseException:
        if stage is not None:  # say where the uncommitted frames are, and that they are not data
            log.warning(
                "%s: not in the cube; its uncommitted frames are kept at %s for a rerun of "
                "this command to resume (any other ingest of %s drops them)",
                code,
                stage.location,
                code,
            )
        raise
    into.commit_rows(group, end, sources=[*into.attr_list(group, "sources"), *plan["sources"]])
    kill_point("ingest.committed")
    if stage is not None:
        stage.land(**_CUBE_ATTRS)
    return end - committed


def _plan(
    start: int,
    end: int,
    entries: list[_Source],
    prep_attrs: str,
    layout: tuple[int | None, int | None],
) -> dict[str, Any]:
    """The append an ingest records (``oathcube_pending``) before it writes rows start:end.

    A rerun resumes only the very same plan: rows, sources, preparation and layout.
    """
    return {
        "start": start,
        "end": end,
        "sources": [e.source for e in entries],
        "preparation": prep_attrs,
        "layout": list(layout),
    }


def _note(seen: dict[tuple[str, str], _Source], block: FrameBlock, prep: RawPreparation) -> None:
    """Add what the scan learned of ``block`` to ``seen``.

    The shape noted is the shape stored: raw frames become ``prep.out_size`` squares,
    of three bands for TREx RGB.  Raw frames that ``prep`` cannot prepare are refused
    here, at the scan, before any write.
    """
    _check_bands(block, prep)
    key = (str(block.source), block.station)
    bands = (block.bands,) if block.bands != 1 else ()
    shape = (prep.out_size, prep.out_size, *bands) if block.raw else block.frames.shape[1:]
    entry = seen.get(key)
    if entry is None:
        raw = (int(block.frames.shape[1]), int(block.frames.shape[2])) if block.raw else None
        seen[key] = _Source(
            str(block.source), block.station, [block.time], shape, raw, block.instrument
        )
        return
    if shape != entry.shape:
        raise IngestError(
            f"frames of shape {shape}",
            path=block.source,
            expected=f"{entry.shape} like the source's other frames",
        )
    entry.times.append(block.time)
