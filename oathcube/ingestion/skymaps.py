"""Skymaps in the cube: ``stations/<code>/skymaps/<YYYYMMDDTHH>``, one group per skymap file.

Each group holds one UCalgary skymap (:mod:`oathcube.archive.skymap`) of the station's
own imager: UCalgary publishes skymaps per imager, and a skymap goes to the station of
its imager at its site (:attr:`~oathcube.archive.skymap.Skymap.station`,
:func:`oathcube.sites.station_code`): ``rego_skymap_gill_...`` to ``stations/gill_rego``,
``themis_skymap_gill_...`` to ``stations/gill``, never one to the other's (and a station
that holds another imager's frames refuses it).  It is stored in the cube's orientation
(:mod:`oathcube.archive.orientation`: pixel ``[y, x]`` of ``elevation`` is pixel
``[y, x]`` of the station's ``pixels``):

==================  ==============================  =======================================
variable            dims                            what
==================  ==============================  =======================================
``elevation``       y, x                            degrees above the horizon (NaN: no sky)
``azimuth``         y, x                            degrees east of north
``altitude``        altitude                        emission altitudes, km (90, 110, 150)
``latitude``        altitude, y_corner, x_corner    geographic latitude of pixel corners
``longitude``       altitude, y_corner, x_corner    degrees east, 0..360 as in the file
==================  ==============================  =======================================

Attributes: ``station``, ``site``, ``instrument`` (the skymap's imager), ``valid_from`` and
``valid_until`` (ISO 8601 UTC; ``valid_until`` empty = until the next skymap of the
station), ``site_latitude``, ``site_longitude``, ``site_altitude_m``, ``imager``,
``source``, ``source_sha256``, ``generation`` (JSON of the file's ``GENERATION_INFO``),
``orientation``, ``raw_orientation``, ``frame_geometry`` and ``oathcube_status``.

Frames and skymaps agree whatever the preparation
-------------------------------------------------
The station's preparation (:class:`~oathcube.rawprep.RawPreparation`, recorded on the
station group) may turn the skymap to fit the raw frames (``skymap_orientation``), flip
the frames north-south and resize them (``out_size``).  A skymap is stored after the same
rearrangement and resampling (:func:`fit_to_frames`), so that pixel ``[y, x]`` of
``elevation`` is still pixel ``[y, x]`` of ``pixels``; ``frame_geometry`` (JSON of
:meth:`~oathcube.rawprep.RawPreparation.frame_geometry`) says what was done.  A group
written before that attribute existed holds the file's arrays as read: :func:`skymap_for`
fits it on reading, so older cubes draw their sky in the right place too.

Commit protocol: a group is created marked ``oathcube_status: building``, its arrays are
written, and ``complete`` is set last; readers (and :func:`skymap_for`) ignore groups that
are not complete, and the next ingest of the same file replaces such a group, so a rerun
after ``kill -9`` ends identical.  A complete group is never rewritten: the same file again
is a no-op, a different file with the same start of validity is refused before anything
is written.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..archive.frames import IMAGE_SUFFIXES
from ..archive.instruments import INSTRUMENTS
from ..archive.orientation import ORIENTATION, RAW_ORIENTATION
from ..archive.skymap import Skymap, is_skymap_name, read_skymap
from ..archive.skymap_fit import (
    FITTED,
    FITTED_RAW,
    fit_to_frames,
    is_identity,
    raw_frames,
    stored_preparation,
)
from ..cube.schema import (
    BUILDING,
    COMPLETE,
    STATUS,
    provenance,
    skymap_group,
    skymap_specs,
    station_group,
    variable_path,
)
from ..cube.store import Cube, CubeLike
from ..errors import CubeError, IngestError, OptionError
from ..faults import kill_point
from ..rawprep import RawPreparation

__all__ = ["take_skymaps", "check_skymap_stations", "store_skymaps", "ingest_skymaps"]

log = logging.getLogger(__name__)

#: Names of frame files (the readers' kinds), to tell a folder of skymaps alone.
_FRAME_SUFFIXES = (".cdf", ".pgm", ".pgm.gz", ".pgm.bz2", ".h5", *IMAGE_SUFFIXES)


def take_skymaps(
    sources: Sequence[str | os.PathLike[str]],
    station: str | None = None,
    cube: CubeLike | None = None,
) -> tuple[list[str | os.PathLike[str]], list[Skymap]]:
    """Split skymap ``.sav`` files off an ingest's sources, and read and check them now.

    Parameters
    ----------
    sources
        What ``oathcube ingest`` was given: files and folders.  A ``.sav`` file is a
        skymap; a folder's ``*.sav`` files (at any depth) are skymaps too, and a folder
        that holds nothing but skymaps is not passed on to the frame readers.
    station
        When given, a skymap of another station is an error (a skymap's station is
        its imager's: ``gill_rego`` for a REGO skymap of Gillam).
    cube
        When given and a cube is there, a skymap that differs from one stored with the
        same start of validity is refused now, before anything is written.

    Returns
    -------
    (frame_sources, skymaps)
        The sources left for the frame readers, and every skymap read.

    Raises
    ------
    ArchiveError
        A skymap file cannot be read (see :func:`~oathcube.archive.skymap.read_skymap`).
    IngestError
        A skymap of another station than ``station``, or two files of one station that
        start at the same time.
    """
    rest: list[str | os.PathLike[str]] = []
    files: list[Path] = []
    for src in sources:
        path = Path(src)
        if path.is_dir():
            # One walk of names (no stat per file): archive trees hold many files.
            found: list[Path] = []
            frames = False
            for dirpath, _, names in os.walk(path):
                for name in names:
                    if is_skymap_name(name):
                        found.append(Path(dirpath) / name)
                    elif not frames and name.lower().endswith(_FRAME_SUFFIXES):
                        frames = True
            files.extend(sorted(found))
            if frames or not found:
                rest.append(src)
        elif is_skymap_name(path):
            files.append(path)
        else:
            rest.append(src)
    skymaps = [read_skymap(p) for p in files]
    seen: dict[tuple[str, str], str] = {}
    for sky in skymaps:
        if station is not None and sky.station != station.lower():
            raise IngestError(
                f"skymap is of station {sky.station!r} (the {_title(sky)} at {sky.site})",
                path=sky.source,
                expected=f"station {station.lower()!r} as asked",
            )
        key = (sky.station, sky.name)
        if key in seen and Path(seen[key]).resolve() != Path(sky.source).resolve():
            raise IngestError(
                f"two skymaps of {sky.station} valid from {sky.valid_from}: also {seen[key]}",
                path=sky.source,
                expected="one skymap per station and start of validity",
            )
        seen[key] = sky.source
    unique = {(s.station, s.name): s for s in skymaps}
    chosen = [unique[k] for k in sorted(unique)]
    if cube is not None and chosen:
        try:
            existing = Cube.open(cube)
        except CubeError:
            existing = None  # no cube yet (or not one): the ingest itself says which
        if existing is not None:
            # Skymaps alone: their stations must have frames already (checked now).
            _check_against_cube(existing, chosen, say=False, need_frames=not rest)
        elif not rest:
            raise IngestError(
                "skymaps alone cannot start a cube",
                path=", ".join(s.source for s in chosen),
                expected="the station's frames first, or with the skymaps in one ingest",
            )
    return rest, chosen


def check_skymap_stations(
    skymaps: Sequence[Skymap], stations: Sequence[str], cube: Cube | None
) -> None:
    """Refuse, before anything is written, a skymap whose station gets no frames.

    For an ingest of frames and skymaps together: each skymap's station (its imager's:
    ``gill_rego`` for a REGO skymap) must be one the ingest's frames go to, or hold
    frames in ``cube`` already.  :func:`store_skymaps` checks the same, but only once
    the frames are written.

    Raises
    ------
    IngestError
        Naming the skymap, its station and the stations the frames go to.
    """
    have = set(stations)
    for sky in skymaps:
        if sky.station in have:
            continue
        if cube is not None and cube.has(variable_path(station_group(sky.station), "pixels")):
            continue
        raise IngestError(
            f"a {_title(sky)} skymap of {sky.site}: station {sky.station!r} gets no frames "
            f"from this ingest (its frames go to {', '.join(sorted(have)) or 'none'}) and "
            "has none in the cube",
            path=sky.source,
            expected=f"the {_title(sky)} frames of {sky.site} with it, or ingested first",
        )


def _check_against_cube(
    cube: Cube, skymaps: list[Skymap], say: bool = True, need_frames: bool = True
) -> list[Skymap]:
    """The skymaps still to write; refuse one that differs from a complete stored one.

    With ``need_frames``, also refuse a skymap of a station without frames in the cube:
    every stage treats a station group as a run of frames, so none is made for a
    skymap alone.
    """
    todo = []
    for sky in skymaps:
        path = skymap_group(sky.station, sky.name)
        group = station_group(sky.station)
        if need_frames and not cube.has(variable_path(group, "pixels")):
            raise IngestError(
                f"station {sky.station!r} has no frames in this cube",
                path=sky.source,
                expected="its frames ingested first, or with the skymap in one ingest",
            )
        if cube.has(path) and cube.status_of(path) == COMPLETE:
            attrs = cube.group(path).attrs
            if attrs.get("source_sha256") == sky.sha256:
                if say:
                    log.info("%s: skymap %s already stored", sky.station, sky.name)
                continue
            raise IngestError(
                f"a different skymap of {sky.station} valid from {sky.valid_from} is "
                f"stored ({attrs.get('source')}, sha256 {attrs.get('source_sha256')})",
                path=sky.source,
                expected="the same file, or a new cube (stored skymaps are never replaced)",
            )
        todo.append(sky)
    return todo


def station_preparation(cube: Cube, station: str) -> RawPreparation | None:
    """The preparation that made a station's stored frames (see :func:`stored_preparation`)."""
    path = station_group(station)
    if not cube.has(path):
        return None
    pixels = variable_path(path, "pixels")
    shape = tuple(cube.array(pixels).shape) if cube.has(pixels) else None
    return stored_preparation(cube.group(path).attrs, shape, cube.where(path))


def _fit_for_station(cube: Cube, sky: Skymap) -> tuple[Skymap, dict[str, Any]]:
    """``sky`` fitted to the station's stored frames, or refused when it cannot fit.

    Raises
    ------
    IngestError
        The station's frames are another imager's (its ``instrument``), the skymap is
        of another size than the station's raw frames, or it would need resizing and
        the raw frames' size cannot be read.
    """
    attrs = cube.group(station_group(sky.station)).attrs
    # Stations written before the attribute hold THEMIS frames; image folders take the
    # skymap of the imager that took them, whichever it was.
    held = str(attrs.get("instrument") or "themis")
    if held not in ("images", sky.instrument):
        raise IngestError(
            f"a {_title(sky)} skymap for station {sky.station!r}, which holds "
            f"{INSTRUMENTS[held].title if held in INSTRUMENTS else held} frames",
            path=sky.source,
            expected="a skymap of the imager that took the station's frames",
        )
    prep = station_preparation(cube, sky.station)
    if prep is None:
        return sky, {}
    shape = tuple(sky.elevation.shape)
    seen = raw_frames(attrs, sky.station)
    if seen is not None and not seen[0]:
        return sky, {}  # image folders: their frames are stored as read, prepared by none
    if seen is not None and seen[1] != shape:
        raise IngestError(
            f"skymap is {shape}, the station's raw frames are {seen[1]}",
            path=sky.source,
            expected="a skymap of the imager that took the station's frames",
        )
    if seen is None and shape != (prep.out_size, prep.out_size):
        raise IngestError(
            f"skymap is {shape} and the station's frames are stored at {prep.out_size} px, "
            "but its raw frames cannot be read here to check that the skymap is theirs",
            path=sky.source,
            expected="the station's first source where the ingest found it",
        )
    return fit_to_frames(sky, prep)


def _write(cube: Cube, sky: Skymap, geometry: dict[str, Any]) -> None:
    """Write one skymap group: marked building, arrays, then complete (the commit).

    ``sky`` is already fitted to the station's frames as ``geometry`` says
    (:func:`_fit_for_station`).
    """
    path = skymap_group(sky.station, sky.name)
    moved = bool(geometry) and not is_identity(geometry)
    attrs = provenance(
        station=sky.station,
        site=sky.site,
        instrument=sky.instrument,
        valid_from=str(sky.valid_from) + "Z",
        valid_until="" if sky.valid_until is None else str(sky.valid_until) + "Z",
        site_latitude=sky.site_latitude,
        site_longitude=sky.site_longitude,
        site_altitude_m=sky.site_altitude_m,
        imager=str(sky.info.get("imager", "")),
        source=Path(sky.source).name if sky.source != "synthetic" else "synthetic",
        source_sha256=sky.sha256,
        generation=json.dumps(
            {k.removeprefix("generation_"): v for k, v in sky.info.items() if "generation" in k}
        ),
        synthetic=int(sky.info.get("synthetic", 0)),
        orientation=FITTED if moved else ORIENTATION,
        raw_orientation=FITTED_RAW if moved else RAW_ORIENTATION["skymap"],
        frame_geometry=json.dumps(geometry, sort_keys=True),
        **{STATUS: BUILDING},
    )
    # A group a killed run left (never complete, checked before): replaced whole.
    cube.create_group(path, attrs, overwrite=True)
    kill_point("skymap.group_created")
    values = {
        "altitude": sky.altitude_km,
        "elevation": sky.elevation,
        "azimuth": sky.azimuth,
        "latitude": sky.latitude,
        "longitude": sky.longitude,
    }
    for name, spec in skymap_specs().items():
        cube.create(spec, values[name].shape, group=path)
        cube.write_rows(variable_path(path, name), 0, values[name])
        kill_point("skymap.array_written")
    cube.mark_complete(path)  # last: the commit
    kill_point("skymap.committed")
    log.info("%s: skymap valid from %s stored in %s", sky.station, sky.valid_from, cube.where(path))


def _title(sky: Skymap) -> str:
    """How people call the skymap's imager: ``REGO``, ``TREx NIR``."""
    return INSTRUMENTS[sky.instrument].title if sky.instrument in INSTRUMENTS else sky.instrument


def store_skymaps(skymaps: Sequence[Skymap], cube: CubeLike) -> dict[str, int]:
    """Write skymaps read by :func:`take_skymaps` into their station groups.

    Parameters
    ----------
    skymaps
        Skymaps, already read and checked.
    cube
        Path, URL or Cube holding the stations' frames.

    Returns
    -------
    dict
        Skymaps written per station (0 where every one was there already).

    Raises
    ------
    IngestError
        A different skymap with the same start of validity is stored, a station has
        no frames in the cube, or a skymap does not fit the station's raw frames (all
        checked before anything is written).
    """
    target = Cube.open(cube, "r+")
    written = {s.station: 0 for s in skymaps}
    with target.writing("ingest"):
        # Every skymap fitted (or refused) before the first is written.
        todo = [_fit_for_station(target, s) for s in _check_against_cube(target, list(skymaps))]
        for sky, geometry in todo:
            _write(target, sky, geometry)
            written[sky.station] += 1
        target.publish()
    return written


def ingest_skymaps(
    sources: Sequence[str | os.PathLike[str]],
    cube: CubeLike,
    *,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, int]:
    """Read skymap files (or folders of them) and store them in ``cube``.

    Equivalent to ``oathcube ingest`` given only skymaps.

    Parameters
    ----------
    sources
        Skymap ``.sav`` files, or folders of them.
    cube
        Path, URL or Cube holding the stations' frames.
    storage_options
        fsspec options of a cube at a URL (credentials, an endpoint), as for
        :meth:`~oathcube.cube.store.Cube.open`; or pass a Cube that carries them.

    Raises
    ------
    OptionError
        A source that is not a skymap.
    """
    rest, skymaps = take_skymaps(sources)
    if rest or not skymaps:
        raise OptionError(
            f"not skymap files: {', '.join(map(str, rest)) or '(none given)'}",
            expected="UCalgary skymap .sav files",
        )
    return store_skymaps(skymaps, Cube.open(cube, "r+", storage_options=storage_options))
