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
file's ``GENERATION_INFO``), ``orientation``, ``raw_orientation``, ``frame_geometry`` and
``oathcube_status``.

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

import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .archive.frames import IMAGE_SUFFIXES, iter_frame_blocks
from .archive.orientation import ORIENTATION, RAW_ORIENTATION
from .archive.skymap import Skymap, is_skymap_name, read_skymap
from .cube.commit import BUILDING, COMPLETE, STATUS
from .cube.nodes import WRITE_CONFIG, array_at
from .cube.schema import provenance, station_group
from .cube.store import Cube, CubeLike
from .errors import CubeError, IngestError, OathcubeError, OptionError
from .faults import kill_point
from .rawprep import RawPreparation

__all__ = [
    "SKYMAP_GROUP",
    "take_skymaps",
    "store_skymaps",
    "ingest_skymaps",
    "station_skymaps",
    "skymap_for",
    "fit_to_frames",
    "station_preparation",
]

log = logging.getLogger(__name__)

#: Names of frame files (the readers' kinds), to tell a folder of skymaps alone.
_FRAME_SUFFIXES = (".cdf", ".pgm", ".pgm.gz", *IMAGE_SUFFIXES)
#: Subgroup of a station that holds its skymaps.
SKYMAP_GROUP = "skymaps"
#: ``orientation`` and ``raw_orientation`` of a skymap fitted to prepared frames.
_FITTED = (
    "the station's stored frames', pixel for pixel: the file's arrays turned, flipped and "
    "resized as the station's preparation does to its frames (frame_geometry says how)"
)
_FITTED_RAW = "rearranged by the station's preparation (frame_geometry): raw skymap != stored"


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


def station_preparation(cube: Cube, station: str) -> RawPreparation | None:
    """The preparation that made a station's stored frames, or None (frames as read).

    None when the group records no preparation, or when its frames are not of the
    preparation's size: image folders (PNG/JPEG) are stored as read, although the
    preparation given to their ingest is recorded too.

    Raises
    ------
    CubeError
        The recorded preparation cannot be read back.
    """
    path = station_group(station)
    if path not in cube.root:
        return None
    text = cube.group(path).attrs.get("preparation")
    if not text:
        return None
    try:
        prep = RawPreparation.from_attrs(json.loads(str(text)))
    except (ValueError, TypeError) as exc:  # OptionError is a ValueError too
        raise CubeError(
            f"the station's preparation cannot be read back: {exc}",
            path=cube.where(path),
            expected="a RawPreparation record (oathcube ingest --prep)",
        ) from None
    node = cube.group(path)
    if "pixels" in node and tuple(array_at(node, "pixels").shape[1:]) != (
        prep.out_size,
        prep.out_size,
    ):
        return None
    return prep


def _directions(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Unit vectors ``(3, ...)`` of (latitude, longitude) or (elevation, azimuth), degrees."""
    a, b = np.radians(first.astype(np.float64)), np.radians(second.astype(np.float64))
    return np.stack([np.cos(a) * np.cos(b), np.cos(a) * np.sin(b), np.sin(a)])


def _angles(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Back from unit vectors (any length) to (latitude, longitude 0..360) in degrees."""
    x, y, z = vectors
    with np.errstate(invalid="ignore"):
        first = np.degrees(np.arctan2(z, np.hypot(x, y)))
        second = np.degrees(np.arctan2(y, x)) % 360.0
    return first.astype(np.float32), second.astype(np.float32)


def _resample(
    first: np.ndarray, second: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Directions ``(..., y, x)`` bilinearly interpolated at fractional ``rows``/``cols``.

    Directions are interpolated as unit vectors, not as angles: azimuth and longitude
    wrap at 360 and azimuth turns around at zenith, where averaging angles goes wrong.
    A sample that touches a pixel outside the field of view (NaN) is NaN itself.
    """
    from scipy import ndimage

    vectors = _directions(first, second)
    grid = np.meshgrid(rows, cols, indexing="ij")
    lead = vectors.shape[1:-2]
    out = np.empty((3, *lead, rows.size, cols.size))
    for index in np.ndindex(*lead):
        for k in range(3):
            out[(k, *index)] = ndimage.map_coordinates(
                vectors[(k, *index)], grid, order=1, mode="nearest"
            )
    return _angles(out)


def fit_to_frames(sky: Skymap, prep: RawPreparation | None) -> tuple[Skymap, dict[str, Any]]:
    """A skymap rearranged and resampled as ``prep`` rearranges and resamples frames.

    Parameters
    ----------
    sky
        A skymap as read (the readers' orientation, the raw frames' size).
    prep
        The station's preparation; None: frames stored as read (nothing to do).

    Returns
    -------
    (Skymap, dict)
        The skymap whose pixel ``[y, x]`` is the stored frames' pixel ``[y, x]``, and
        the geometry applied (:meth:`~oathcube.rawprep.RawPreparation.frame_geometry`;
        empty for ``prep`` None).

    Notes
    -----
    Turning and flipping reorder rows and columns only, for pixel centres and corners
    alike.  A resize follows :meth:`~oathcube.rawprep.RawPreparation.apply`'s zoom
    (``grid_mode``: the frame's outer edges stay where they are): stored pixel ``i``
    is centred at raw pixel ``(i + 0.5) * n / out - 0.5`` and stored corner ``k`` is
    raw corner ``k * n / out``; directions there are interpolated between neighbours.
    """
    if prep is None:
        return sky, {}
    arrays = _fit_arrays(
        {
            "elevation": sky.elevation,
            "azimuth": sky.azimuth,
            "latitude": sky.latitude,
            "longitude": sky.longitude,
        },
        prep,
    )
    fitted = dataclasses.replace(
        sky,
        elevation=arrays["elevation"],
        azimuth=arrays["azimuth"],
        latitude=arrays["latitude"],
        longitude=arrays["longitude"],
    )
    ny, nx = sky.elevation.shape
    return fitted, prep.frame_geometry((ny, nx))


def _fit_arrays(arrays: dict[str, np.ndarray], prep: RawPreparation) -> dict[str, np.ndarray]:
    """:func:`fit_to_frames` on the four arrays (elevation, azimuth, latitude, longitude)."""
    ny, nx = arrays["elevation"].shape
    out = {name: prep.arrange_like_frames(values) for name, values in arrays.items()}
    size = int(prep.out_size)
    if (ny, nx) != (size, size):
        centre_rows = (np.arange(size) + 0.5) * ny / size - 0.5
        centre_cols = (np.arange(size) + 0.5) * nx / size - 0.5
        out["elevation"], out["azimuth"] = _resample(
            out["elevation"], out["azimuth"], centre_rows, centre_cols
        )
        corner_rows = np.arange(size + 1) * ny / size
        corner_cols = np.arange(size + 1) * nx / size
        out["latitude"], out["longitude"] = _resample(
            out["latitude"], out["longitude"], corner_rows, corner_cols
        )
    return {name: np.ascontiguousarray(v, dtype=np.float32) for name, v in out.items()}


def _raw_frames(cube: Cube, station: str) -> tuple[bool, tuple[int, int]] | None:
    """Whether the station's first source holds raw frames, and their ``(y, x)``.

    Recorded by ingest on the station group (``raw_frames``); for groups written
    before that, read from the source itself (a scan: shape and times, no pixels);
    None when neither can be had.
    """
    node = cube.group(station_group(station))
    recorded = node.attrs.get("raw_frames")
    if isinstance(recorded, dict) and isinstance(recorded.get("shape"), list):
        if not recorded.get("raw"):
            return False, (0, 0)
        ny, nx = recorded["shape"]
        return True, (int(ny), int(nx))
    sources = node.attrs.get("sources")
    if not isinstance(sources, list) or not sources:
        return None
    try:
        block = next(iter(iter_frame_blocks([str(sources[0])], station=station, scan=True)))
    except (OathcubeError, OSError, StopIteration):
        return None  # moved, deleted or elsewhere: the caller decides what it can do
    ny, nx = block.frames.shape[1:]
    return bool(block.raw), (int(ny), int(nx))


def _fit_for_station(cube: Cube, sky: Skymap) -> tuple[Skymap, dict[str, Any]]:
    """``sky`` fitted to the station's stored frames, or refused when it cannot fit.

    Raises
    ------
    IngestError
        The skymap is of another size than the station's raw frames (another imager's),
        or it would need resizing and the raw frames' size cannot be read.
    """
    prep = station_preparation(cube, sky.station)
    if prep is None:
        return sky, {}
    shape = tuple(sky.elevation.shape)
    seen = _raw_frames(cube, sky.station)
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
    path = _skymap_path(sky.station, sky.name)
    moved = bool(geometry) and not _is_identity(geometry)
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
        orientation=_FITTED if moved else ORIENTATION,
        raw_orientation=_FITTED_RAW if moved else RAW_ORIENTATION["skymap"],
        frame_geometry=json.dumps(geometry, sort_keys=True),
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
            config=WRITE_CONFIG,
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
        A time the skymap should be valid at (None: the latest skymap).  When none is
        valid then, the nearest in time is used, with a warning logged and recorded.
    choice
        None: the skymap valid at ``time``; ``"none"``: no skymap (returns None); else a
        skymap's name or start date (``20110305``, ``2011-03-05``) to use whatever
        ``time`` is.

    Returns
    -------
    xarray.Dataset or None
        None when the station has no skymap (or ``choice="none"``).  Its arrays fit the
        station's stored frames pixel for pixel (:func:`fit_to_frames`); attribute
        ``name``, and ``validity_note`` (e.g. ``valid from 2011-03-05, 57.6 days after
        these frames``) when the skymap is not valid at ``time``.

    Raises
    ------
    CubeError
        ``choice`` names no stored skymap, or a stored skymap was fitted to frames
        prepared otherwise than the station's.
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
    t = None if time is None else np.datetime64(time, "s")
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
    elif t is None:
        pick = have[-1]
    else:
        valid = [d for d in have if _distance(d, t) == 0]
        # None valid then (frames older than the first skymap, say): the nearest in time
        # is the imager's best known geometry; the note below says so on every output.
        pick = valid[-1] if valid else min(have, key=lambda d: _distance(d, t))
    ds = _fitted(opened, station, opened.dataset(pick["group"], live=True).load())
    ds.attrs["name"] = pick["name"]
    note = "" if t is None else _validity_note(pick, t)
    if note:
        ds.attrs["validity_note"] = note
        if choice is None:
            log.warning(
                "warning: no skymap of %s is valid at %s: using %s, the nearest (%s); "
                "--skymap NAME picks another of: %s",
                station,
                t,
                pick["name"],
                note,
                names,
            )
    return ds


def _distance(entry: dict[str, Any], t: np.datetime64) -> np.timedelta64:
    """How far ``t`` is from a skymap's validity (0 inside it)."""
    if t < entry["valid_from"]:
        return entry["valid_from"] - t
    if entry["valid_until"] is not None and t >= entry["valid_until"]:
        return t - entry["valid_until"]
    return np.timedelta64(0, "s")


def _validity_note(entry: dict[str, Any], t: np.datetime64) -> str:
    """Empty when the skymap is valid at ``t``; else how far from ``t`` its validity is."""
    gap = _distance(entry, t)
    if gap == 0:
        return ""
    days = gap / np.timedelta64(1, "D")
    far = f"{days:.1f} days" if days >= 1 else f"{gap / np.timedelta64(1, 'h'):.1f} h"
    if t < entry["valid_from"]:
        return f"valid from {str(entry['valid_from'])[:10]}, {far} after these frames"
    return f"valid until {str(entry['valid_until'])[:10]}, {far} before these frames"


def _fitted(cube: Cube, station: str, ds: xr.Dataset) -> xr.Dataset:
    """A stored skymap group fitted to the station's frames (a no-op for new groups)."""
    prep = station_preparation(cube, station)
    ny, nx = ds["elevation"].shape
    shape = (int(ny), int(nx))
    recorded = ds.attrs.get("frame_geometry")
    if recorded is not None:
        stored = json.loads(str(recorded))
        if not stored:
            return ds  # the frames are stored as read (image folders): so is the skymap
        sy, sx = stored["source_shape"]
        expected = {} if prep is None else prep.frame_geometry((int(sy), int(sx)))
        if stored != expected:
            raise CubeError(
                f"skymap {ds.attrs.get('valid_from')} was fitted to frames prepared as "
                f"{stored}, the station's frames are prepared as {expected or 'read'}",
                path=cube.where(station_group(station)),
                expected="skymaps and frames of one preparation",
            )
        return ds
    # Written before frame_geometry was recorded: the file's arrays as read.
    if prep is None or _is_identity(prep.frame_geometry(shape)):
        return ds
    seen = _raw_frames(cube, station)
    if seen is not None and not seen[0]:
        return ds  # image folders: stored as read, prepared by none
    if shape != (prep.out_size, prep.out_size) and (seen is None or seen[1] != shape):
        return ds  # not known to be the raw frames' skymap: the views refuse its size
    names = ("elevation", "azimuth", "latitude", "longitude")
    arrays = _fit_arrays({n: ds[n].values for n in names}, prep)
    fitted = xr.Dataset(
        {n: (ds[n].dims, arrays[n], dict(ds[n].attrs)) for n in names},
        coords={"altitude": ds["altitude"]},
        attrs=dict(ds.attrs),
    )
    fitted.attrs.update(
        frame_geometry=json.dumps(prep.frame_geometry(shape), sort_keys=True),
        orientation=_FITTED,
        raw_orientation=_FITTED_RAW,
    )
    return fitted


def _is_identity(geometry: dict[str, Any]) -> bool:
    """Whether a frame geometry leaves every pixel where it was."""
    return (
        geometry["skymap_orientation"] == "as_read"
        and not geometry["flip_north_south"]
        and geometry["source_shape"] == geometry["shape"]
    )
