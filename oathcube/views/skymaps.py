"""Which stored skymap a view draws with, fitted to the station's frames.

Skymaps sit in ``stations/<code>/skymaps/<YYYYMMDDTHH>`` (written by
:mod:`oathcube.ingestion.skymaps`).  :func:`skymap_for` picks the one valid at a time
(or the nearest, with a note), and fits a group written before ``frame_geometry`` was
recorded on reading (:mod:`oathcube.archive.skymap_fit`), so older cubes draw their sky
in the right place too.

Views work per imager: a station is one imager at one site (``gill``, ``gill_rego``), and
its skymaps are that imager's.  A skymap group of another imager than the station's
(one an older oathcube stored under the site's name: a TREx NIR skymap beside THEMIS
frames, both 256 x 256) is left out, with a warning; the group's ``instrument``, or for
older groups its ``imager`` (``nir-216``), says whose it is.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import xarray as xr

from ..archive.instruments import INSTRUMENTS, instrument_of_imager
from ..archive.skymap_fit import (
    FITTED,
    FITTED_RAW,
    fit_arrays,
    is_identity,
    raw_frames,
    stored_preparation,
)
from ..cube.schema import COMPLETE, skymap_group, skymaps_group, station_group, variable_path
from ..cube.store import Cube, CubeLike
from ..errors import CubeError

__all__ = ["station_skymaps", "skymap_for"]

log = logging.getLogger(__name__)


def station_skymaps(cube: CubeLike, station: str) -> list[dict[str, Any]]:
    """The complete skymaps of a station, oldest first, with their effective validity.

    Returns
    -------
    list of dict
        ``name``, ``valid_from`` and ``valid_until`` (``datetime64[s]``; ``valid_until``
        is the file's own end, else the next skymap's start, else None), ``group`` and
        ``instrument`` (the skymap's imager; None where unknown).  Skymaps of another
        imager than the station's are left out (with a warning).
    """
    opened = Cube.open(cube)
    parent = skymaps_group(station)
    if not opened.has(parent):
        return []
    # Stations written before the attribute hold THEMIS frames; image folders any imager's.
    held = str(opened.group(station_group(station)).attrs.get("instrument") or "themis")
    out: list[dict[str, Any]] = []
    for name, group in sorted(opened.group(parent).groups()):
        if opened.status_of(skymap_group(station, name)) != COMPLETE:
            continue  # a killed ingest's leftover: not there for readers
        attrs = group.attrs
        whose = _instrument_of(attrs)
        if whose is not None and held != "images" and whose != held:
            log.warning(
                "warning: skymap %s of station %s is a %s skymap, the station's frames are "
                "%s: left out (store it with its own imager's station)",
                name,
                station,
                INSTRUMENTS[whose].title,
                INSTRUMENTS[held].title if held in INSTRUMENTS else held,
            )
            continue
        until = str(attrs.get("valid_until") or "").rstrip("Z")
        out.append(
            {
                "name": name,
                "group": skymap_group(station, name),
                "valid_from": np.datetime64(str(attrs["valid_from"]).rstrip("Z"), "s"),
                "valid_until": np.datetime64(until, "s") if until else None,
                "instrument": whose,
            }
        )
    out.sort(key=lambda d: d["valid_from"])
    for here, after in zip(out, out[1:], strict=False):
        if here["valid_until"] is None or here["valid_until"] > after["valid_from"]:
            here["valid_until"] = after["valid_from"]
    return out


def _instrument_of(attrs: Any) -> str | None:
    """A stored skymap's imager: its ``instrument``, else its ``imager``'s, else None."""
    recorded = str(attrs.get("instrument") or "")
    if recorded in INSTRUMENTS:
        return recorded
    return instrument_of_imager(str(attrs.get("imager") or ""))


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
                expected="`oathcube ingest SKYMAP.sav` first, or `skymap` none",
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
    path = station_group(station)
    node = cube.group(path)
    frames = variable_path(path, "pixels")
    pixels = tuple(cube.array(frames).shape) if cube.has(frames) else None
    prep = stored_preparation(node.attrs, pixels, cube.where(path))
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
    if prep is None or is_identity(prep.frame_geometry(shape)):
        return ds
    seen = raw_frames(node.attrs, station)
    if seen is not None and not seen[0]:
        return ds  # image folders: stored as read, prepared by none
    if shape != (prep.out_size, prep.out_size) and (seen is None or seen[1] != shape):
        return ds  # not known to be the raw frames' skymap: the views refuse its size
    names = ("elevation", "azimuth", "latitude", "longitude")
    arrays = fit_arrays({n: ds[n].values for n in names}, prep)
    fitted = xr.Dataset(
        {n: (ds[n].dims, arrays[n], dict(ds[n].attrs)) for n in names},
        coords={"altitude": ds["altitude"]},
        attrs=dict(ds.attrs),
    )
    fitted.attrs.update(
        frame_geometry=json.dumps(prep.frame_geometry(shape), sort_keys=True),
        orientation=FITTED,
        raw_orientation=FITTED_RAW,
    )
    return fitted
