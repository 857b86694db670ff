"""UCalgary THEMIS skymaps: IDL save files that give every pixel a direction and a place.

A skymap file (``themis_skymap_<site>_<YYYYMMDD>-+_v<NN>.sav``, read with
:func:`scipy.io.readsav`) holds one structure ``skymap`` with, among others:

* ``FULL_ELEVATION``, ``FULL_AZIMUTH`` ``(256, 256)``: degrees, NaN outside the lens;
* ``FULL_MAP_ALTITUDE`` ``(3,)`` in metres (90, 110 and 150 km) and
  ``FULL_MAP_LATITUDE``/``FULL_MAP_LONGITUDE`` ``(3, 257, 257)``: geographic coordinates
  of the pixel **corners** at each emission altitude (longitude 0..360 deg east);
* ``SITE_MAP_LATITUDE``/``LONGITUDE``/``ALTITUDE``, ``SITE_UID``, ``IMAGER_UID``;
* ``GENERATION_INFO``: among others ``VALID_INTERVAL_START`` (``YYYYMMDDHH``) and
  ``VALID_INTERVAL_STOP`` (``+`` = until the next skymap of the site).

The name's ``YYYYMMDD-+`` says the same: valid from that date until the next skymap.
Arrays are returned as read: that is the cube's orientation
(:mod:`oathcube.archive.orientation`).  A file that is not such a skymap raises
:class:`~oathcube.errors.ArchiveError` naming the file, in one line.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oathcube.errors import ArchiveError

__all__ = ["Skymap", "read_skymap", "ideal_skymap", "is_skymap_name", "SKYMAP_NAME_RE"]

#: ``themis_skymap_<site>_<YYYYMMDD>-<stop>_v<NN>.sav`` (stop ``+`` or a date).
SKYMAP_NAME_RE = re.compile(
    r"^(?P<project>[a-z0-9]+)_skymap_(?P<site>[a-z0-9]+)_(?P<start>\d{8})-(?P<stop>\+|\d{8})"
    r"_v(?P<version>[0-9a-z]+)\.sav$",
    re.IGNORECASE,
)


def is_skymap_name(path: str | os.PathLike[str]) -> bool:
    """Whether a file name is a skymap's: any ``*.sav`` (IDL save) file."""
    return Path(path).name.lower().endswith(".sav")


@dataclass(frozen=True)
class Skymap:
    """One skymap, its arrays in the cube's orientation.

    Attributes
    ----------
    station
        Lower-case site code (``SITE_UID``), e.g. ``"gako"``.
    valid_from
        ``datetime64[s]``: start of validity (``VALID_INTERVAL_START``, else the name's date).
    valid_until
        ``datetime64[s]`` or None (``+``: until the next skymap of the station).
    elevation, azimuth
        ``(y, x)`` float32 degrees, NaN outside the field of view.
    altitude_km
        ``(altitude,)`` float32 emission altitudes in km.
    latitude, longitude
        ``(altitude, y + 1, x + 1)`` float32 degrees of the pixel corners (longitude
        0..360 east, as in the file).
    site_latitude, site_longitude, site_altitude_m
        Where the imager stands.
    source, sha256
        The file and its checksum.
    info
        Everything else worth keeping, JSON-able: imager, project, generation info.
    """

    station: str
    valid_from: np.datetime64
    valid_until: np.datetime64 | None
    elevation: np.ndarray
    azimuth: np.ndarray
    altitude_km: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    site_latitude: float
    site_longitude: float
    site_altitude_m: float
    source: str
    sha256: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The group name under ``stations/<code>/skymaps``: ``YYYYMMDDTHH`` of valid_from."""
        return str(np.datetime_as_string(self.valid_from, unit="h")).replace("-", "")


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1").strip()
    return str(value).strip()


def _plain(value: Any) -> Any:
    """A readsav value as JSON-able Python (bytes -> str, arrays -> lists)."""
    if isinstance(value, bytes):
        return _text(value)
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.dtype == object else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _stamp(text: str) -> np.datetime64 | None:
    """``YYYYMMDDHH`` or ``YYYYMMDD`` as datetime64[s]; None for ``+`` or anything else."""
    text = text.strip()
    if re.fullmatch(r"\d{10}", text):
        return np.datetime64(f"{text[:4]}-{text[4:6]}-{text[6:8]}T{text[8:10]}:00", "s")
    if re.fullmatch(r"\d{8}", text):
        return np.datetime64(f"{text[:4]}-{text[4:6]}-{text[6:8]}T00:00", "s")
    return None


def read_skymap(path: str | os.PathLike[str]) -> Skymap:
    """Read one UCalgary skymap ``.sav`` file.

    Parameters
    ----------
    path
        e.g. ``themis_skymap_gako_20110305-+_vXX.sav``.

    Returns
    -------
    Skymap

    Raises
    ------
    ArchiveError
        The file cannot be read as an IDL save file, has no ``skymap`` structure, lacks
        a field, has arrays of inconsistent shapes, or its site/date disagree with its name.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArchiveError(f"cannot read skymap: {exc.strerror or exc}", path=path) from None
    from scipy.io import readsav

    try:
        with warnings.catch_warnings():
            # Skymaps of 2007-2012 make readsav warn that it cannot verify byte counts;
            # the arrays read are whole (pyucalgarysrs silences the same warning).
            warnings.simplefilter("ignore")
            saved = readsav(str(path), python_dict=True)
    except Exception as exc:  # readsav raises anything from struct.error to ValueError
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise ArchiveError(
            f"cannot read as an IDL save file: {text}",
            path=path,
            expected="a UCalgary skymap .sav file",
        ) from None
    if "skymap" not in saved:
        raise ArchiveError(
            f"no 'skymap' structure (found {', '.join(sorted(saved)) or 'nothing'})",
            path=path,
            expected="a UCalgary skymap .sav file",
        )
    rec = saved["skymap"]
    # Field names are upper case in the file; scipy may also give lower-case titles.
    fields = {n.lower(): n for n in (getattr(getattr(rec, "dtype", None), "names", None) or ())}

    def get(name: str) -> Any:
        if name not in fields:
            raise ArchiveError(
                f"skymap has no {name.upper()}", path=path, expected="a UCalgary skymap"
            )
        try:
            return rec[fields[name]][0]
        except (IndexError, TypeError) as exc:
            raise ArchiveError(f"skymap field {name.upper()} is empty", path=path) from exc

    def grid(name: str, ndim: int) -> np.ndarray:
        value = get(name)
        array = np.asarray(value, dtype=np.float32)
        if array.ndim != ndim:
            raise ArchiveError(
                f"{name.upper()} has shape {array.shape}", path=path, expected=f"{ndim}-D"
            )
        return np.ascontiguousarray(array)

    elevation = grid("full_elevation", 2)
    azimuth = grid("full_azimuth", 2)
    latitude = grid("full_map_latitude", 3)
    longitude = grid("full_map_longitude", 3)
    altitude_m = np.atleast_1d(np.asarray(get("full_map_altitude"), dtype=np.float64))
    ny, nx = elevation.shape
    corners = (altitude_m.size, ny + 1, nx + 1)
    if azimuth.shape != elevation.shape or latitude.shape != corners or longitude.shape != corners:
        raise ArchiveError(
            f"arrays disagree: elevation {elevation.shape}, azimuth {azimuth.shape}, "
            f"latitude {latitude.shape}, longitude {longitude.shape}",
            path=path,
            expected=f"azimuth {elevation.shape} and lat/lon {corners}",
        )
    with np.errstate(invalid="ignore"):
        if not np.isfinite(elevation).any() or np.nanmax(elevation) > 90.01:
            raise ArchiveError(
                "FULL_ELEVATION has no valid value in 0..90", path=path, expected="degrees"
            )
    station = _text(get("site_uid")).lower()
    if not re.fullmatch(r"[a-z0-9]+", station):
        raise ArchiveError(f"SITE_UID is {station!r}", path=path, expected="a station code")

    named = SKYMAP_NAME_RE.match(path.name)
    if named and named.group("site").lower() != station:
        raise ArchiveError(
            f"file name says station {named.group('site')!r} but SITE_UID is {station!r}",
            path=path,
            expected="name and content of one station",
        )
    info: dict[str, Any] = {
        "imager": _text(get("imager_uid")) if "imager_uid" in fields else "",
        "project": _text(get("project_uid")) if "project_uid" in fields else "",
    }
    start: np.datetime64 | None = None
    stop_text = ""
    if "generation_info" in fields:
        gen = get("generation_info")
        for key in gen.dtype.names or ():
            info[f"generation_{key.lower()}"] = _plain(gen[key][0])
        start = _stamp(str(info.get("generation_valid_interval_start", "")))
        stop_text = str(info.get("generation_valid_interval_stop", ""))
    name_start = _stamp(named.group("start")) if named else None
    if start is None:
        start = name_start
        stop_text = named.group("stop") if named else stop_text
    if start is None:
        raise ArchiveError(
            "no start of validity: neither VALID_INTERVAL_START nor a dated file name",
            path=path,
            expected="themis_skymap_<site>_<YYYYMMDD>-+_v<NN>.sav",
        )
    if name_start is not None and start.astype("datetime64[D]") != name_start.astype(
        "datetime64[D]"
    ):
        raise ArchiveError(
            f"file name says valid from {name_start.astype('datetime64[D]')} but "
            f"VALID_INTERVAL_START says {start}",
            path=path,
            expected="name and content of one skymap",
        )
    until = _stamp(stop_text)
    return Skymap(
        station=station,
        valid_from=start,
        valid_until=until,
        elevation=elevation,
        azimuth=azimuth,
        altitude_km=(altitude_m / 1000.0).astype(np.float32),
        latitude=latitude,
        longitude=longitude,
        site_latitude=float(np.asarray(get("site_map_latitude"))),
        site_longitude=float(np.asarray(get("site_map_longitude"))),
        site_altitude_m=float(np.asarray(get("site_map_altitude"))),
        source=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        info=info,
    )


def ideal_skymap(
    station: str,
    site_latitude: float,
    site_longitude: float,
    *,
    size: int = 256,
    rotation_deg: float = 0.0,
    valid_from: str = "2000-01-01T00",
    altitudes_km: tuple[float, ...] = (90.0, 110.0, 150.0),
    fov_fraction: float = 0.96,
) -> Skymap:
    """A SYNTHETIC skymap: an ideal equidistant fisheye centred in the frame.

    For synthetic station archives (tests, the demo), which have no real skymap: zenith
    at the frame centre, zenith angle proportional to the distance from it (90 deg at
    ``fov_fraction`` of half the frame), north up and east left (the cube's orientation)
    turned by ``rotation_deg`` (azimuth of the top edge, east of north).  Latitude and
    longitude of the pixel corners follow from a spherical Earth (radius 6371 km).

    Returns
    -------
    Skymap
        ``info["synthetic"]`` is 1 and ``source`` says ``synthetic``.
    """
    earth = 6371.0

    def directions(offset: float, n: int) -> tuple[np.ndarray, np.ndarray]:
        centre = (size - 1) / 2.0
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float64) + offset
        up, right = centre - yy, xx - centre
        zen = 90.0 * np.hypot(up, right) / (fov_fraction * size / 2.0)
        # East is left in the cube's orientation: the eastward component is -right.
        az = (np.degrees(np.arctan2(-right, up)) + rotation_deg) % 360.0
        el = np.where(zen <= 90.0, 90.0 - zen, np.nan)
        return el, az

    el, az = directions(0.0, size)
    cel, caz = directions(-0.5, size + 1)
    lat1, lon1 = np.radians(site_latitude), np.radians(site_longitude)
    lats, lons = [], []
    for h in altitudes_km:
        e = np.radians(cel)
        with np.errstate(invalid="ignore"):
            delta = np.pi / 2 - e - np.arcsin(earth * np.cos(e) / (earth + h))
            a = np.radians(caz)
            lat2 = np.arcsin(
                np.sin(lat1) * np.cos(delta) + np.cos(lat1) * np.sin(delta) * np.cos(a)
            )
            lon2 = lon1 + np.arctan2(
                np.sin(a) * np.sin(delta) * np.cos(lat1),
                np.cos(delta) - np.sin(lat1) * np.sin(lat2),
            )
            low = ~(cel >= 0.0)
        lats.append(np.where(low, np.nan, np.degrees(lat2)))
        lons.append(np.where(low, np.nan, np.degrees(lon2) % 360.0))
    latitude = np.asarray(lats, dtype=np.float32)
    longitude = np.asarray(lons, dtype=np.float32)
    digest = hashlib.sha256()
    for array in (el, az, latitude, longitude):
        digest.update(np.ascontiguousarray(array).tobytes())
    start = _stamp(valid_from.replace("-", "").replace("T", "")[:10])
    if start is None:
        raise ArchiveError(f"valid_from {valid_from!r}", expected="YYYY-MM-DDTHH")
    return Skymap(
        station=station.lower(),
        valid_from=start,
        valid_until=None,
        elevation=el.astype(np.float32),
        azimuth=np.where(np.isfinite(el), az, np.nan).astype(np.float32),
        altitude_km=np.asarray(altitudes_km, dtype=np.float32),
        latitude=latitude,
        longitude=longitude,
        site_latitude=float(site_latitude),
        site_longitude=float(site_longitude) % 360.0,
        site_altitude_m=0.0,
        source="synthetic",
        sha256=digest.hexdigest(),
        info={"synthetic": 1, "imager": "synthetic", "project": "synthetic"},
    )
