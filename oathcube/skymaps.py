"""Skymaps in the cube: ``stations/<code>/skymaps/<YYYYMMDDTHH>``, one group per skymap file.

Each group holds one UCalgary skymap (:mod:`oathcube.archive.skymap`) in the cube's
orientation (:mod:`oathcube.archive.orientation`: pixel ``[y, x]`` of ``elevation`` is
pixel ``[y, x]`` of the station's ``pixels``):

==================  ==============================  =======================================
variable            dims                            what
==================  ==============================  =======================================
``elevation``       y, x                            degrees above the horizon (NaN: no sky)
``azimuth``         y, x                            degrees east of north
``altitude``        altitude                        emission altitudes, km (90, 110, 150)
``latitude``        altitude, y_corner, x_corner    geographic latitude of pixel corners
``longitude``       altitude, y_corner, x_corner    degrees east, 0..360 as in the file
==================  ==============================  =======================================

Attributes: ``station``, ``valid_from`` and ``valid_until`` (ISO 8601 UTC; ``valid_until``
empty = until the next skymap of the station), ``site_latitude``, ``site_longitude``,
``site_altitude_m``, ``imager``, ``source``, ``source_sha256``, ``generation`` (JSON of the
file's ``GENERATION_INFO``), ``orientation``, ``raw_orientation`` and ``oathcube_status``.

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

import numpy as np
import xarray as xr

from .archive.frames import IMAGE_SUFFIXES
from .archive.orientation import ORIENTATION, RAW_ORIENTATION
from .archive.skymap import Skymap, is_skymap_name, read_skymap
from .cube.commit import BUILDING, COMPLETE, STATUS
from .cube.schema import provenance, station_group
from .cube.store import Cube, CubeLike
from .errors import CubeError, IngestError, OptionError
from .faults import kill_point

__all__ = [
    "SKYMAP_GROUP",
    "take_skymaps",
    "store_skymaps",
    "ingest_skymaps",
    "station_skymaps",
    "skymap_for",
]

log = logging.getLogger(__name__)

#: Names of frame files (the readers' kinds), to tell a folder of skymaps alone.
_FRAME_SUFFIXES = (".cdf", ".pgm", ".pgm.gz", *IMAGE_SUFFIXES)
#: Subgroup of a station that holds its skymaps.
SKYMAP_GROUP = "skymaps"


def _skymap_path(station: str, name: str) -> str:
    return f"{station_group(station)}/{SKYMAP_GROUP}/{name}"


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
        When given, a skymap of another station is an error.
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
                f"skymap is of station {sky.station!r}",
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
        path = _skymap_path(sky.station, sky.name)
        group = station_group(sky.station)
        if need_frames and (group not in cube.root or "pixels" not in cube.group(group)):
            raise IngestError(
                f"station {sky.station!r} has no frames in this cube",
                path=sky.source,
                expected="its frames ingested first, or with the skymap in one ingest",
            )
        if path in cube.root:
            attrs = cube.group(path).attrs
            if attrs.get(STATUS) == COMPLETE:
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


def _write(cube: Cube, sky: Skymap) -> None:
    """Write one skymap group: marked building, arrays, then complete (the commit)."""
    path = _skymap_path(sky.station, sky.name)
    attrs = provenance(
        station=sky.station,
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
        orientation=ORIENTATION,
        raw_orientation=RAW_ORIENTATION["skymap"],
        **{STATUS: BUILDING},
    )
    # A group a killed run left (never complete, checked before): replaced whole.
    node = cube.root.create_group(path, attributes=attrs, overwrite=True)
    kill_point("skymap.group_created")
    arrays: list[tuple[str, np.ndarray, list[str], dict[str, Any]]] = [
        (
            "altitude",
            sky.altitude_km,
            ["altitude"],
            {"units": "km", "long_name": "emission altitude"},
        ),
        (
            "elevation",
            sky.elevation,
            ["y", "x"],
            {"units": "degree", "long_name": "elevation of the pixel centre above the horizon"},
        ),
        (
            "azimuth",
            sky.azimuth,
            ["y", "x"],
            {"units": "degree", "long_name": "azimuth of the pixel centre, east of north"},
        ),
        (
            "latitude",
            sky.latitude,
            ["altitude", "y_corner", "x_corner"],
            {"units": "degrees_north", "long_name": "geographic latitude of pixel corners"},
        ),
        (
            "longitude",
            sky.longitude,
            ["altitude", "y_corner", "x_corner"],
            {"units": "degrees_east", "long_name": "longitude of pixel corners (0..360)"},
        ),
    ]
    for name, values, dims, array_attrs in arrays:
        array = node.create_array(
            name,
            shape=values.shape,
            chunks=values.shape,
            dtype="float32",
            fill_value=np.nan,
            dimension_names=dims,
            attributes=array_attrs,
        )
        array[...] = values
        kill_point("skymap.array_written")
    node.attrs[STATUS] = COMPLETE  # last: the commit
    kill_point("skymap.committed")
    log.info("%s: skymap valid from %s stored in %s", sky.station, sky.valid_from, cube.where(path))


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
        A different skymap with the same start of validity is stored, or a station has
        no frames in the cube (checked before anything is written).
    """
    target = Cube.open(cube, "r+")
    written = {s.station: 0 for s in skymaps}
    with target.writing("ingest"):
        for sky in _check_against_cube(target, list(skymaps)):
            _write(target, sky)
            written[sky.station] += 1
        target.publish()
    return written


def ingest_skymaps(sources: Sequence[str | os.PathLike[str]], cube: CubeLike) -> dict[str, int]:
    """Read skymap files (or folders of them) and store them in ``cube``.

    Equivalent to ``oathcube ingest`` given only skymaps.

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
    return store_skymaps(skymaps, cube)


def station_skymaps(cube: CubeLike, station: str) -> list[dict[str, Any]]:
    """The complete skymaps of a station, oldest first, with their effective validity.

    Returns
    -------
    list of dict
        ``name``, ``valid_from`` and ``valid_until`` (``datetime64[s]``; ``valid_until``
        is the file's own end, else the next skymap's start, else None) and ``group``.
    """
    opened = Cube.open(cube)
    parent = f"{station_group(station)}/{SKYMAP_GROUP}"
    if parent not in opened.root:
        return []
    out: list[dict[str, Any]] = []
    for name, group in sorted(opened.group(parent).groups()):
        attrs = group.attrs
        if attrs.get(STATUS) != COMPLETE:
            continue  # a killed ingest's leftover: not there for readers
        until = str(attrs.get("valid_until") or "").rstrip("Z")
        out.append(
            {
                "name": name,
                "group": f"{parent}/{name}",
                "valid_from": np.datetime64(str(attrs["valid_from"]).rstrip("Z"), "s"),
                "valid_until": np.datetime64(until, "s") if until else None,
            }
        )
    out.sort(key=lambda d: d["valid_from"])
    for here, after in zip(out, out[1:], strict=False):
        if here["valid_until"] is None or here["valid_until"] > after["valid_from"]:
            here["valid_until"] = after["valid_from"]
    return out


def skymap_for(
    cube: CubeLike, station: str, time: Any = None, choice: str | None = None
) -> xr.Dataset | None:
    """The skymap to use for a station's frames at ``time``, as a loaded Dataset.

    Parameters
    ----------
    cube
        Path, URL or Cube.
    station
        Station code.
    time
        A time the skymap must be valid at (None: the latest skymap).
    choice
        None: the skymap valid at ``time``; ``"none"``: no skymap (returns None); else a
        skymap's name or start date (``20110305``, ``2011-03-05``) to use whatever
        ``time`` is.

    Returns
    -------
    xarray.Dataset or None
        None when the station has no skymap (or ``choice="none"``).

    Raises
    ------
    CubeError
        Skymaps exist but none is valid at ``time``, or ``choice`` names none of them.
    """
    if choice is not None and choice.lower() == "none":
        return None
    opened = Cube.open(cube)
    have = station_skymaps(opened, station)
    if not have:
        if choice is not None:
            raise CubeError(
                f"station {station!r} has no skymap",
                path=opened.location,
                expected="`oathcube ingest SKYMAP.sav` first, or --skymap none",
            )
        return None
    names = ", ".join(f"{d['name']} (from {d['valid_from']})" for d in have)
    if choice is not None:
        key = choice.replace("-", "").replace(":", "")
        hits = [d for d in have if d["name"].startswith(key)]
        if len(hits) != 1:
            raise CubeError(
                f"{'no' if not hits else 'more than one'} skymap of {station} matches {choice!r}",
                path=opened.location,
                expected=f"one of {names}, or none",
            )
        pick = hits[0]
    elif time is None:
        pick = have[-1]
    else:
        t = np.datetime64(time, "s")
        valid = [
            d
            for d in have
            if d["valid_from"] <= t and (d["valid_until"] is None or t < d["valid_until"])
        ]
        if not valid:
            raise CubeError(
                f"no skymap of {station} is valid at {t}",
                path=opened.location,
                expected=f"a time within a skymap's validity ({names}); or name one with "
                "--skymap NAME to use it anyway, or --skymap none for the centre column",
            )
        pick = valid[-1]
    ds = opened.dataset(pick["group"], live=True).load()
    ds.attrs["name"] = pick["name"]
    return ds
