"""Raw station archives into the cube: ``stations/<code>`` groups along ``time``.

``stations/<code>`` groups hold one station each along a monotonic ``time``
dimension: ``pixels(time, y, x)`` (8-bit, prepared as :mod:`oathcube.rawprep`
records in the attributes); features and predictions come later
(:mod:`oathcube.classification`), along the same ``time``.

The commit protocol of an append (one per source, in time order):

1. every array indexed by ``time`` is extended, ``pixels`` first, and the new
   frames and times are written into their chunks (each chunk write is atomic:
   a whole chunk object or none);
2. the group attribute ``oathcube_rows`` (the committed length) and ``sources``
   are updated in one metadata write: the commit;
3. the consolidated metadata, which is what plain ``xarray.open_zarr`` reads, is
   refreshed: readers see the new frames only from here on.

A writer killed at any point leaves rows beyond ``oathcube_rows`` that no reader
sees; the next ingest (or feature run) drops them before it writes, and appends
the frames again, so that a rerun ends with the arrays of an uninterrupted run.
Every source is read, checked against the others and against the station
(times, shapes, preparation) before the first write.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import zarr
from tqdm.auto import tqdm
from xarray.coding.times import decode_cf_datetime

from .archive.frames import FrameBlock, iter_frame_blocks
from .cube.commit import COMMITTED_ROWS, committed_rows, repair_rows, row_arrays
from .cube.nodes import array_at, attr_list
from .cube.schema import TIME_ENCODING, images_per_chunk, provenance, station_group
from .cube.store import Cube, CubeLike, check_new_location, normalise_location
from .errors import CubeNotFoundError, IngestError, OptionError
from .faults import kill_point
from .rawprep import RawPreparation

__all__ = ["ingest", "station_times", "PREPARED_CACHE_BYTES"]

log = logging.getLogger(__name__)

#: Frames kept in memory between the checking pass and the writing pass, so that a
#: typical ingest reads each file once; sources beyond it are read again.
PREPARED_CACHE_BYTES = 1 << 30

_TIME_UNITS = "microseconds since 1970-01-01"
_TIME_CHUNK = 2**16


@dataclass(frozen=True)
class _Prepared:
    """A source's frames of one station, prepared to uint8 (raw counts dropped)."""

    station: str
    time: np.ndarray
    source: str
    pixels: np.ndarray


@dataclass
class _Source:
    """What the checking pass learned of one source's frames of one station."""

    source: str
    station: str
    times: list[np.ndarray]
    shape: tuple[int, ...]

    @property
    def first(self) -> np.datetime64:
        return self.times[0][0]

    @property
    def last(self) -> np.datetime64:
        return self.times[-1][-1]

    def all_times(self) -> np.ndarray:
        return np.concatenate(self.times)


def _prepare(block: FrameBlock, prep: RawPreparation) -> _Prepared:
    pixels = prep.apply(block.frames) if block.raw else block.frames
    return _Prepared(block.station, block.time, str(block.source), pixels)


def _decode_times(array: zarr.Array, stop: int, start: int = 0) -> np.ndarray:
    """Stored times ``start:stop`` as ``datetime64[ns]`` (CF units of the array)."""
    if stop <= start:
        return np.array([], dtype="datetime64[ns]")
    units = str(array.attrs.get("units", _TIME_UNITS))
    calendar = str(array.attrs.get("calendar", "proleptic_gregorian"))
    decoded = decode_cf_datetime(np.asarray(array[start:stop]), units, calendar)
    return np.asarray(decoded, dtype="datetime64[ns]")


def _encode_times(times: np.ndarray) -> np.ndarray:
    return times.astype("datetime64[us]").astype(np.int64)


def station_times(cube: CubeLike, station: str) -> np.ndarray:
    """Committed times (``datetime64[ns]``) of a station's frames, read from the store."""
    node = Cube.open(cube, complete=False).group(station_group(station))
    return _decode_times(array_at(node, "time"), committed_rows(node))


def _check_against_station(cube: Cube, code: str, entries: list[_Source], prep_attrs: str) -> None:
    """Refuse, before any write, sources that do not fit the station already stored."""
    path = station_group(code)
    if path not in cube.root:
        return
    node = cube.group(path)
    if "pixels" not in node or "time" not in node:
        return  # a group a killed ingest left without arrays: nothing committed yet
    stored_prep = node.attrs.get("preparation")
    stored_shape = array_at(node, "pixels").shape[1:]
    n = committed_rows(node)
    last = _decode_times(array_at(node, "time"), n, max(0, n - 1))
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
                stored = _decode_times(array_at(node, "time"), n)
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
    cube: Cube, code: str, shape: tuple[int, ...], prep_attrs: str, chunk_frames: int | None
) -> zarr.Group:
    """The station's group, repaired to its committed length, or a new empty one.

    A group that a killed ingest created without (all of) its arrays gets them now.
    """
    path = station_group(code)
    if path in cube.root:
        node = cube.group(path)
    else:
        node = cube.root.create_group(
            path,
            attributes=provenance(
                station=code,
                preparation=prep_attrs,
                sources=[],
                skipped=[],
                **{COMMITTED_ROWS: 0},
            ),
        )
        kill_point("ingest.group_created")
    if "time" not in node:
        node.create_array(
            "time",
            shape=(0,),
            chunks=(_TIME_CHUNK,),
            dtype="int64",
            fill_value=0,
            dimension_names=["time"],
            attributes={
                "long_name": "UTC exposure time",
                "standard_name": "time",
                "units": _TIME_UNITS,
                "calendar": TIME_ENCODING["calendar"],
            },
        )
        kill_point("ingest.time_created")
    if "pixels" not in node:
        size = chunk_frames or images_per_chunk(shape)
        node.create_array(
            "pixels",
            shape=(0, *shape),
            chunks=(size, *shape),
            dtype="uint8",
            fill_value=0,
            dimension_names=["time", "y", "x"],
            attributes={
                "long_name": "prepared 8-bit frame",
                "units": "1",
                "orientation": "as stored in the source file: row 0 = first row stored",
            },
        )
    repair_rows(node)
    return node


def _append(node: zarr.Group, block: _Prepared) -> int:
    """Append ``block``'s frames after the committed ones, then commit; return frames added."""
    n = committed_rows(node)
    times, pixels = block.time, block.pixels
    if n:
        last = _decode_times(array_at(node, "time"), n, n - 1)[0]
        keep = times > last  # frames already committed (a rerun) are not written again
        times, pixels = times[keep], pixels[keep]
    if times.size == 0:
        return 0
    end = n + times.size
    frames = array_at(node, "pixels")
    frames.resize((end, *frames.shape[1:]))
    kill_point("ingest.pixels_resized")
    frames[n:end] = pixels
    kill_point("ingest.pixels_written")
    stamps = array_at(node, "time")
    stamps.resize((end,))
    stamps[n:end] = _encode_times(times)
    kill_point("ingest.times_written")
    for array in row_arrays(node, "time"):
        if array.shape[0] != end:  # features, predictions: new rows are "not computed"
            array.resize((end, *array.shape[1:]))
    kill_point("ingest.rows_extended")
    node.attrs.update({COMMITTED_ROWS: end, "sources": [*attr_list(node, "sources"), block.source]})
    kill_point("ingest.committed")
    return int(times.size)


def ingest(
    sources: Sequence[str | os.PathLike[str]],
    cube: CubeLike,
    *,
    preparation: RawPreparation | None = None,
    skip_bad: bool = False,
    station: str | None = None,
    times_csv: str | os.PathLike[str] | None = None,
    chunk_frames: int | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Append raw THEMIS frames (CDF, PGM, image folders) to station groups of ``cube``.

    Every source is read, prepared and checked (against the others and against
    the station already stored) before anything is written, so a bad file or an
    overlap stops the ingest with nothing written (or, with ``skip_bad``, a file
    that cannot be read is left out and listed in the station's ``skipped``
    attribute).  Sources are then appended in time order, each committed on its
    own (see the module documentation); frames already in the cube are skipped,
    so an interrupted ingest can simply be rerun.

    Parameters
    ----------
    sources
        Files and folders (see :func:`oathcube.archive.frames.iter_frame_blocks`).
    cube
        Path, URL or :class:`~oathcube.cube.store.Cube` (created if missing; a
        location that holds anything else is refused before reading starts).
    preparation
        How 16-bit frames become 8-bit images (default :class:`RawPreparation()`).
    skip_bad
        Leave out unreadable files instead of stopping.
    station, times_csv
        For image folders whose names carry no station or time.
    chunk_frames
        Frames per chunk of a new station group (default: about 32 MB).  Appends
        fill the last, partial chunk and write new chunks; full chunks are never
        rewritten.
    progress
        Show a per-file progress bar.

    Returns
    -------
    dict
        Frames appended per station.
    """
    if chunk_frames is not None and chunk_frames < 1:
        raise OptionError(f"{chunk_frames} frames per chunk", expected="1 or more")
    if not sources:
        raise OptionError("no sources given", expected="CDF or PGM files, or folders of frames")
    target_location = normalise_location(str(cube))
    for source in sources:
        where = normalise_location(source)
        if where == target_location or target_location.startswith(where + os.sep):
            raise OptionError(
                "the cube would be written into its own source",
                path=str(cube),
                expected="an output path other than (and outside) the sources",
            )
        if where.startswith(target_location + os.sep):
            raise OptionError(
                "a source lies inside the cube",
                path=str(source),
                expected="sources outside the cube",
            )
    # The target is checked before anything is read: an existing cube must be complete
    # and writable; a new one must go where nothing else is.
    try:
        existing: Cube | None = Cube.open(cube, "r+")
    except CubeNotFoundError:
        existing = None
        check_new_location(str(cube))
    prep = preparation or RawPreparation()
    prep_attrs = json.dumps(prep.attrs(), sort_keys=True)
    reader = iter_frame_blocks(sources, skip_bad=skip_bad, station=station, times_csv=times_csv)
    seen: dict[tuple[str, str], _Source] = {}
    cache: dict[tuple[str, str], list[_Prepared]] = {}
    too_big: set[tuple[str, str]] = set()
    cached_bytes = 0

    def keep(key: tuple[str, str], prepared: _Prepared) -> None:
        nonlocal cached_bytes
        if key in too_big:
            return
        if cached_bytes + prepared.pixels.nbytes > PREPARED_CACHE_BYTES:
            too_big.add(key)
            cached_bytes -= sum(p.pixels.nbytes for p in cache.pop(key, []))
            return
        cache.setdefault(key, []).append(prepared)
        cached_bytes += prepared.pixels.nbytes

    # One block is prepared (16 -> 8 bit) on a second thread while the next is read
    # and decompressed (zlib and numpy release the GIL); at most two in memory.
    in_flight: tuple[tuple[str, str], Future[_Prepared]] | None = None
    with ThreadPoolExecutor(max_workers=1) as pool:
        for block in tqdm(
            reader, desc="reading", unit="block", disable=not progress, file=sys.stderr
        ):
            key = (str(block.source), block.station)
            future = pool.submit(_prepare, block, prep)
            if in_flight is not None:
                prepared = in_flight[1].result()
                _note(seen, in_flight[0], prepared)
                keep(in_flight[0], prepared)
            in_flight = (key, future)
        if in_flight is not None:
            prepared = in_flight[1].result()
            _note(seen, in_flight[0], prepared)
            keep(in_flight[0], prepared)
    skipped = reader.skipped_as_attrs()
    if not seen:
        raise IngestError(
            "no frames found",
            path=", ".join(map(str, sources)),
            expected="CDF L1, PGM files or folders of PNG/JPEG frames",
        )
    order = sorted(seen, key=lambda k: seen[k].first)
    by_station: dict[str, list[_Source]] = {}
    for key in order:
        by_station.setdefault(key[1], []).append(seen[key])
    for code, entries in by_station.items():
        _check_sources(entries)
        if existing is not None:
            _check_against_station(existing, code, entries, prep_attrs)
    for code, entries in by_station.items():
        shapes = {e.shape for e in entries}
        if len(shapes) > 1:
            raise IngestError(
                f"frames of shapes {sorted(shapes)}",
                path=", ".join(e.source for e in entries),
                expected=f"one frame shape per station ({code})",
            )

    # Everything is checked: from here on, the cube is written.
    target = existing or Cube.open_or_create(
        str(cube), title="THEMIS ASI station archives", oathcube_status="complete"
    )
    with target.writing("ingest"):
        written: dict[str, int] = {}
        bar = tqdm(
            total=len(order), desc="appending", unit="source", disable=not progress, file=sys.stderr
        )
        nodes: dict[str, zarr.Group] = {}
        for key in order:
            src, code = key
            if code not in nodes:
                nodes[code] = _station_node(target, code, seen[key].shape, prep_attrs, chunk_frames)
            blocks = cache.pop(key, None)
            if blocks is None:
                blocks = [
                    _prepare(b, prep)
                    for b in iter_frame_blocks([src], station=station, times_csv=times_csv)
                    if b.station == code
                ]
            for prepared in blocks:
                written[code] = written.get(code, 0) + _append(nodes[code], prepared)
            target.publish()  # plain xarray readers see the committed frames from here on
            bar.update(1)
        bar.close()
        for code in written:
            node = nodes[code]
            node.attrs["skipped"] = [*attr_list(node, "skipped"), *skipped]
        if skipped:
            root = target.root
            root.attrs["ingest_skipped"] = [*attr_list(root, "ingest_skipped"), *skipped]
        target.publish()
    return written


def _note(seen: dict[tuple[str, str], _Source], key: tuple[str, str], block: _Prepared) -> None:
    entry = seen.get(key)
    if entry is None:
        seen[key] = _Source(block.source, block.station, [block.time], block.pixels.shape[1:])
        return
    if block.pixels.shape[1:] != entry.shape:
        raise IngestError(
            f"frames of shape {block.pixels.shape[1:]}",
            path=block.source,
            expected=f"{entry.shape} like the source's other frames",
        )
    entry.times.append(block.time)
