"""Raw station archives into the cube: ``stations/<code>`` groups along ``time``.

``stations/<code>`` groups hold one station each along a monotonic ``time``
dimension: ``pixels(time, y, x)`` (8-bit, prepared as :mod:`oathcube.rawprep`
records in the attributes); features and predictions come later
(:mod:`oathcube.classification`).  New files append along ``time`` without
rewriting what is there (``Dataset.to_zarr(group=..., append_dim="time")``;
DataTree cannot append).
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
import xarray as xr
import zarr
from tqdm.auto import tqdm
from xarray.coding.times import decode_cf_datetime

from .archive.frames import FrameBlock, iter_frame_blocks
from .cube.schema import TIME_ENCODING, images_per_chunk, provenance, station_group
from .cube.store import (
    Cube,
    CubeLike,
    array_at,
    attr_list,
    check_new_location,
    group_at,
    normalise_location,
)
from .errors import CubeNotFoundError, IngestError, OptionError
from .rawprep import RawPreparation

__all__ = ["ingest", "station_times", "PREPARED_CACHE_BYTES"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Prepared:
    """A source's frames of one station, prepared to uint8 (raw counts dropped)."""

    station: str
    time: np.ndarray
    source: str
    pixels: np.ndarray


#: Prepared frames kept in memory between the checking pass and the writing pass, so
#: that a typical ingest reads each file once; sources beyond it are read again.
PREPARED_CACHE_BYTES = 1 << 30


def _prepare(block: FrameBlock, prep: RawPreparation) -> _Prepared:
    pixels = prep.apply(block.frames) if block.raw else block.frames
    return _Prepared(block.station, block.time, str(block.source), pixels)


def _last_time(node: zarr.Group) -> np.datetime64 | None:
    """The station's last frame time, read and decoded from one value of the store."""
    times = array_at(node, "time")
    if times.shape[0] == 0:
        return None
    units = str(times.attrs["units"])
    calendar = str(times.attrs.get("calendar", "proleptic_gregorian"))
    return decode_cf_datetime(np.asarray(times[-1:]), units, calendar)[0]


def _append_block(
    cube: Cube, block: _Prepared, prep_attrs: str, chunk_frames: int | None = None
) -> int:
    """Append ``block``'s frames after the station's last frame; return frames written."""
    group = station_group(block.station)
    root = cube.root
    times, pixels = block.time, block.pixels
    if group in root:
        node = group_at(root, group)
        last = _last_time(node)
        if node.attrs.get("preparation") not in (None, prep_attrs):
            raise IngestError(
                "frames prepared differently from the station's earlier frames",
                path=block.source,
                expected=str(node.attrs.get("preparation")),
            )
        stored = array_at(node, "pixels").shape[1:]
        if stored != pixels.shape[1:]:
            raise IngestError(
                f"frames of shape {pixels.shape[1:]}",
                path=block.source,
                expected=f"{stored} like the station's others",
            )
        if last is not None and times[0] <= last:
            # A rerun or an overlap: only then is the station's whole time axis read.
            keep = times > last
            already = np.isin(times[~keep], station_times(cube, block.station))
            if (~keep).any() and not already.all():
                raise IngestError(
                    f"frames from {times[0]} overlap the station's archive (ends {last})",
                    path=block.source,
                    expected="files ingested in time order; use a new cube to add earlier data",
                )
            times, pixels = times[keep], pixels[keep]
        if times.size == 0:
            return 0
    ds = xr.Dataset(
        {
            "pixels": (
                ("time", "y", "x"),
                pixels,
                {
                    "long_name": "prepared 8-bit frame",
                    "units": "1",
                    "orientation": "as stored in the source file: row 0 = first row stored",
                },
            )
        },
        coords={
            "time": ("time", times, {"long_name": "UTC exposure time", "standard_name": "time"})
        },
    )
    if group in root:
        # xarray rewrites the group's attributes on append: keep ours.
        kept = dict(group_at(root, group).attrs)
        ds.to_zarr(cube.root.store, group=group, append_dim="time", consolidated=False)
        cube.refresh()
        cube.group(group).attrs.update(kept)
    else:
        size = chunk_frames or images_per_chunk(pixels.shape[1:])
        ds.time.encoding.update({**TIME_ENCODING, "chunks": (2**16,)})
        ds.pixels.encoding["chunks"] = (size, *pixels.shape[1:])
        ds.attrs.update(
            provenance(station=block.station, preparation=prep_attrs, sources=[], skipped=[])
        )
        ds.to_zarr(cube.root.store, group=group, mode="w-", zarr_format=3, consolidated=False)
        cube.refresh()
    node = cube.group(group)
    node.attrs["sources"] = [*attr_list(node, "sources"), str(block.source)]
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

    Every source is read and prepared before anything is written, so a bad
    file stops the ingest with nothing written (or, with ``skip_bad``, is left
    out and listed in the station's ``skipped`` attribute).  Sources are then
    appended in time order; frames already in the cube are skipped, so an
    interrupted ingest can simply be rerun.

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
    for source in sources:
        if normalise_location(source) == normalise_location(str(cube)):
            raise OptionError(
                "the cube would be written into its own source",
                path=str(cube),
                expected="an output path other than the sources",
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
    first: dict[tuple[str, str], np.datetime64] = {}
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
            first[key] = min(first.get(key, block.time[0]), block.time[0])
            future = pool.submit(_prepare, block, prep)
            if in_flight is not None:
                keep(in_flight[0], in_flight[1].result())
            in_flight = (key, future)
        if in_flight is not None:
            keep(in_flight[0], in_flight[1].result())
    skipped = reader.skipped_as_attrs()
    if not first:
        raise IngestError(
            "no frames found",
            path=", ".join(map(str, sources)),
            expected="CDF L1, PGM files or folders of PNG/JPEG frames",
        )
    target = existing or Cube.open_or_create(
        str(cube), title="THEMIS ASI station archives", oathcube_status="complete"
    )
    written: dict[str, int] = {}
    order = sorted(first, key=first.__getitem__)
    bar = tqdm(
        total=len(order), desc="appending", unit="source", disable=not progress, file=sys.stderr
    )
    for key in order:
        src, code = key
        blocks = cache.pop(key, None)
        if blocks is None:
            blocks = [
                _prepare(b, prep)
                for b in iter_frame_blocks([src], station=station, times_csv=times_csv)
                if b.station == code
            ]
        for prepared in blocks:
            count = _append_block(target, prepared, prep_attrs, chunk_frames)
            written[code] = written.get(code, 0) + count
        bar.update(1)
    bar.close()
    root = target.root
    for code in written:
        node = target.group(station_group(code))
        node.attrs["skipped"] = [*attr_list(node, "skipped"), *skipped]
    if skipped:
        root.attrs["ingest_skipped"] = [*attr_list(root, "ingest_skipped"), *skipped]
    target.publish()
    return written


def station_times(cube: CubeLike, station: str) -> np.ndarray:
    """Times (datetime64[ns]) of a station's frames, read from the store itself."""
    opened = Cube.open(cube, complete=False)
    return opened.dataset(station_group(station))["time"].values
