"""UCalgary skymaps of every imager: IDL save files that give every pixel a direction and a place.

UCalgary publishes one skymap series per imager and site (a file per mounting of the
camera); the file name's first field says the imager, as pyucalgarysrs 1.28's test data
name them (its reader tells REGO's apart by ``rego_skymap`` in the name):

==============  =============================================  ====================
``instrument``  file                                           pixels (nominal)
==============  =============================================  ====================
``themis``      ``themis_skymap_<site>_<YYYYMMDD>-+_v<NN>.sav``  256 x 256
``rego``        ``rego_skymap_<site>_<YYYYMMDD>-+_v<NN>.sav``    512 x 512
``trex_nir``    ``nir_skymap_<site>_<YYYYMMDD>-+_v<NN>.sav``     256 x 256
``trex_blue``   ``blue_skymap_<site>_<YYYYMMDD>-+_v<NN>.sav``    the frames' size
``trex_rgb``    ``rgb_skymap_<site>_<YYYYMMDD>-+_v<NN>.sav``     480 x 553
==============  =============================================  ====================

(``%2B`` for ``+``, as a download may leave it, is read too.)  Each holds one structure
``skymap`` (read with :func:`scipy.io.readsav`) with, among others:

* ``FULL_ELEVATION``, ``FULL_AZIMUTH`` ``(y, x)``: degrees, NaN outside the lens;
* ``FULL_MAP_ALTITUDE`` ``(3,)`` in metres (90, 110 and 150 km) and
  ``FULL_MAP_LATITUDE``/``FULL_MAP_LONGITUDE`` ``(3, y + 1, x + 1)``: geographic
  coordinates of the pixel **corners** at each emission altitude (longitude 0..360 deg east);
* ``SITE_MAP_LATITUDE``/``LONGITUDE``/``ALTITUDE``, ``SITE_UID``, ``IMAGER_UID``
  (``themis20``, ``rego-652``, ``nir-216``...), ``PROJECT_UID``;
* ``GENERATION_INFO``: among others ``VALID_INTERVAL_START`` (``YYYYMMDDHH``) and
  ``VALID_INTERVAL_STOP`` (``+`` = until the next skymap of the imager).

The name's ``YYYYMMDD-+`` says the same: valid from that date until the next skymap.
The imager (:attr:`Skymap.instrument`) is the name's first field and the
``IMAGER_UID``'s (:func:`~oathcube.archive.instruments.instrument_of_imager`); where
both say one, they must agree.  A skymap belongs to the station of its imager
(:attr:`Skymap.station`: ``gill`` for THEMIS, ``gill_rego`` for REGO,
:func:`oathcube.sites.station_code`).

Arrays are returned as read: that is the cube's orientation for every imager
(:mod:`oathcube.archive.orientation`).  pyucalgarysrs 1.28 turns skymaps as it turns
the same imager's frames: oathcube's arrays are its arrays flipped north-south
(``[::-1, :]``; lat/lon ``[:, ::-1, :]``), and for REGO flipped on both axes
(``[::-1, ::-1]``).  A file that is not such a skymap raises
:class:`~oathcube.errors.ArchiveError` naming the file, in one line.

:func:`write_skymap` writes a :class:`Skymap` as such an IDL save file (for synthetic
skymaps: tests, the demo), readable by :func:`read_skymap`, pyucalgarysrs and scipy.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArchiveError
from ..sites import site_of, station_code
from .instruments import INSTRUMENTS, instrument_of_imager

__all__ = [
    "Skymap",
    "read_skymap",
    "write_skymap",
    "ideal_skymap",
    "is_skymap_name",
    "skymap_name",
    "SKYMAP_NAME_RE",
    "SKYMAP_PREFIXES",
]

#: ``<imager>_skymap_<site>_<YYYYMMDD>-<stop>_v<NN>.sav`` (stop ``+``, ``%2B`` or a date).
SKYMAP_NAME_RE = re.compile(
    r"^(?P<project>[a-z0-9]+)_skymap_(?P<site>[a-z0-9]+)_(?P<start>\d{8})-"
    r"(?P<stop>\+|%2B|\d{8})_v(?P<version>[0-9a-z]+)\.sav$",
    re.IGNORECASE,
)

#: The first field of each instrument's skymap names.
SKYMAP_PREFIXES: dict[str, str] = {
    "themis": "themis",
    "rego": "rego",
    "trex_nir": "nir",
    "trex_blue": "blue",
    "trex_rgb": "rgb",
}
_BY_PREFIX = {prefix: inst for inst, prefix in SKYMAP_PREFIXES.items()}
_NAMES = "themis_, rego_, nir_, blue_ or rgb_skymap_<site>_<YYYYMMDD>-+_v<NN>.sav"


def is_skymap_name(path: str | os.PathLike[str]) -> bool:
    """Whether a file name is a skymap's: any ``*.sav`` (IDL save) file."""
    return Path(path).name.lower().endswith(".sav")


def skymap_name(
    instrument: str, site: str, valid_from: np.datetime64, valid_until: np.datetime64 | None = None
) -> str:
    """UCalgary's name of a skymap file: ``rego_skymap_gill_20140101-+_v01.sav``."""
    day = str(valid_from.astype("datetime64[D]")).replace("-", "")
    stop = "+" if valid_until is None else str(valid_until.astype("datetime64[D]")).replace("-", "")
    return f"{SKYMAP_PREFIXES[instrument]}_skymap_{site}_{day}-{stop}_v01.sav"


@dataclass(frozen=True)
class Skymap:
    """One skymap of one imager at one site, its arrays in the cube's orientation.

    Attributes
    ----------
    site
        Lower-case site code (``SITE_UID``), e.g. ``"gako"``.
    valid_from
        ``datetime64[s]``: start of validity (``VALID_INTERVAL_START``, else the name's date).
    valid_until
        ``datetime64[s]`` or None (``+``: until the next skymap of the imager).
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
    instrument
        The imager the skymap belongs to (``themis``, ``rego``, ``trex_nir``,
        ``trex_blue``, ``trex_rgb``): :data:`~oathcube.archive.instruments.INSTRUMENTS`.
    info
        Everything else worth keeping, JSON-able: imager, project, generation info.
    """

    site: str
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
    instrument: str = "themis"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def station(self) -> str:
        """The station of the imager's frames, where the skymap is stored: ``gill_rego``."""
        return station_code(self.site, self.instrument)

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
    """Read one UCalgary skymap ``.sav`` file of any imager oathcube reads.

    Parameters
    ----------
    path
        e.g. ``themis_skymap_gako_20110305-+_vXX.sav``, ``rego_skymap_gill_20141102-+_v01.sav``.

    Returns
    -------
    Skymap

    Raises
    ------
    ArchiveError
        The file cannot be read as an IDL save file, has no ``skymap`` structure, lacks
        a field, has arrays of inconsistent shapes, its site/date disagree with its name,
        or its imager is not one oathcube reads or disagrees with its name.
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
    instrument = _instrument(path, named, info["imager"])
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
            expected=_NAMES,
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
    if _SYNTHETIC in str(info.get("generation_code_used", "")):
        info["synthetic"] = 1  # written by write_skymap from a synthetic skymap
    return Skymap(
        site=station,
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
        instrument=instrument,
        info=info,
    )


def _instrument(path: Path, named: re.Match[str] | None, imager: str) -> str:
    """The imager of a skymap: its name's first field and its ``IMAGER_UID``, agreeing."""
    by_name = None
    if named is not None:
        prefix = named.group("project").lower()
        by_name = _BY_PREFIX.get(prefix)
        if by_name is None:
            raise ArchiveError(
                f"a {prefix!r} skymap: not of an imager oathcube reads",
                path=path,
                expected=_NAMES,
            )
    by_uid = instrument_of_imager(imager) if imager else None
    if by_name is not None and by_uid is not None and by_name != by_uid:
        raise ArchiveError(
            f"file name says a {INSTRUMENTS[by_name].title} skymap but IMAGER_UID is "
            f"{imager!r} ({INSTRUMENTS[by_uid].title})",
            path=path,
            expected="name and content of one imager",
        )
    found = by_name or by_uid
    if found is None:
        raise ArchiveError(
            f"cannot tell the imager: IMAGER_UID is {imager!r} and the name is not UCalgary's",
            path=path,
            expected=_NAMES,
        )
    return found


def ideal_skymap(
    site: str,
    site_latitude: float,
    site_longitude: float,
    *,
    instrument: str | None = None,
    size: int | tuple[int, int] | None = None,
    rotation_deg: float = 0.0,
    valid_from: str = "2000-01-01T00",
    altitudes_km: tuple[float, ...] = (90.0, 110.0, 150.0),
    fov_fraction: float = 0.96,
) -> Skymap:
    """A SYNTHETIC skymap: an ideal equidistant fisheye centred in the frame.

    For synthetic station archives (tests, the demo), which have no real skymap: zenith
    at the frame centre, zenith angle proportional to the distance from it (90 deg at
    ``fov_fraction`` of half the frame's shorter side), north up and east left (the
    cube's orientation) turned by ``rotation_deg`` (azimuth of the top edge, east of
    north).  Latitude and longitude of the pixel corners follow from a spherical Earth
    (radius 6371 km).

    Parameters
    ----------
    site
        Site code (``gill``), or a station code that names the imager too (``gill_rego``).
    instrument
        The imager (default: the one ``site`` names, else ``themis``).
    size
        Side, or ``(y, x)``; default the instrument's nominal frame size (REGO 512 x 512,
        TREx RGB 480 x 553), else 256 x 256.

    Returns
    -------
    Skymap
        ``info["synthetic"]`` is 1 and ``source`` says ``synthetic``.

    Raises
    ------
    ArchiveError
        An instrument without skymaps, or one other than ``site`` names; a bad ``valid_from``.
    """
    earth = 6371.0
    code = site.lower()
    base = site_of(code)
    implied = code[len(base) + 1 :] or None
    inst = instrument or implied or "themis"
    if inst not in SKYMAP_PREFIXES or (implied is not None and implied != inst):
        raise ArchiveError(
            f"no skymap for instrument {inst!r} at {site!r}",
            expected=f"one of {', '.join(SKYMAP_PREFIXES)}, at its own station",
        )
    if size is None:
        ny, nx = INSTRUMENTS[inst].shape or (256, 256)
    elif isinstance(size, int):
        ny = nx = size
    else:
        ny, nx = size
    radius = fov_fraction * min(ny, nx) / 2.0

    def directions(offset: float, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64) + offset
        up, right = (ny - 1) / 2.0 - yy, xx - (nx - 1) / 2.0
        zen = 90.0 * np.hypot(up, right) / radius
        # East is left in the cube's orientation: the eastward component is -right.
        az = (np.degrees(np.arctan2(-right, up)) + rotation_deg) % 360.0
        el = np.where(zen <= 90.0, 90.0 - zen, np.nan)
        return el, az

    el, az = directions(0.0, ny, nx)
    cel, caz = directions(-0.5, ny + 1, nx + 1)
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
        site=base,
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
        instrument=inst,
        info={"synthetic": 1, "imager": "synthetic", "project": "synthetic"},
    )


# --------------------------------------------------------------------------- writing
#: ``CODE_USED`` of a file written from a synthetic skymap (read back as synthetic).
_SYNTHETIC = "oathcube write_skymap (synthetic)"

#: IDL type codes of the numpy types a skymap holds (kind and size).
_IDL_CODES = {"u1": 1, "i2": 2, "i4": 3, "f4": 4, "f8": 5, "u2": 12}


def write_skymap(sky: Skymap, path: str | os.PathLike[str]) -> Path:
    """Write a skymap as a UCalgary IDL save file (uncompressed, format of IDL 8).

    The structure ``SKYMAP`` holds the fields :func:`read_skymap` and pyucalgarysrs
    1.28's reader use (``GENERATION_INFO`` with its thirteen fields, ``SITE_UID``,
    ``IMAGER_UID``, ``PROJECT_UID``, ``SITE_MAP_*``, ``FULL_ELEVATION``,
    ``FULL_AZIMUTH``, ``FULL_MAP_ALTITUDE`` in metres, ``FULL_MAP_LATITUDE`` and
    ``FULL_MAP_LONGITUDE``), the arrays as they are in ``sky`` (the file's orientation
    is the cube's).  Generation info a read skymap carries is written back; a synthetic
    one's says so (``CODE_USED``), and reads back as synthetic.  The same skymap gives
    the same bytes.

    Parameters
    ----------
    sky
        Any :class:`Skymap` (read, or from :func:`ideal_skymap`).
    path
        The file, or a folder to write it in under UCalgary's name (:func:`skymap_name`).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(path)
    if path.is_dir():
        path = path / skymap_name(sky.instrument, sky.site, sky.valid_from, sky.valid_until)
    start = sky.valid_from.astype("datetime64[s]").item()
    gen = {k.removeprefix("generation_"): v for k, v in sky.info.items() if "generation_" in k}
    synthetic = bool(sky.info.get("synthetic"))
    stop = "+" if sky.valid_until is None else str(sky.valid_until)[:13].replace("-", "")
    generation: dict[str, Any] = {
        "DATE_GENERATED": str(gen.get("date_generated", start.strftime("%a %b %d %H:%M:%S %Y"))),
        "AUTHOR": str(gen.get("author", "oathcube")),
        "VALID_INTERVAL_START": start.strftime("%Y%m%d%H"),
        "VALID_INTERVAL_STOP": stop.replace("T", ""),
        "DATE_TIME_USED": str(gen.get("date_time_used", start.strftime("%Y%m%d_UT%H"))),
        "DATA_LOC": str(gen.get("data_loc") or "(none)"),  # pyucalgarysrs wants bytes: not empty
        "CODE_USED": _SYNTHETIC if synthetic else str(gen.get("code_used", "write_skymap")),
        "OPTICAL_PROJECTION": np.asarray(gen.get("optical_projection", np.zeros((2, 9))), ">f8"),
        "OPTICAL_ORIENTATION": np.asarray(gen.get("optical_orientation", np.zeros(3)), ">f8"),
        "CCD_CENTER": np.asarray(gen.get("ccd_center", np.zeros(2)), ">f8"),
        "IMG_FLIP": np.asarray(gen.get("img_flip", np.zeros(2)), np.uint8),
        "PIXEL_ASPECT_RATIO": np.float64(gen.get("pixel_aspect_ratio", 1.0)),
        "BYTSCL_VALUES": np.asarray(gen.get("bytscl_values", [-1, -1]), ">i2"),
    }
    imager = str(sky.info.get("imager", ""))
    if instrument_of_imager(imager) != sky.instrument:
        imager = f"{INSTRUMENTS[sky.instrument].imager_prefix}0"  # themis0, rego-0
    project = str(sky.info.get("project", ""))
    if not project or project == "synthetic":
        project = {"themis": "themis", "rego": "rego"}.get(sky.instrument, "trex")
    fields: dict[str, Any] = {
        "GENERATION_INFO": generation,
        "SITE_UID": sky.site,
        "IMAGER_UID": imager,
        "PROJECT_UID": project,
        "IMAGER_UNIX_TIME": np.int32(0),
        "SITE_MAP_LATITUDE": np.float32(sky.site_latitude),
        "SITE_MAP_LONGITUDE": np.float32(sky.site_longitude),
        "SITE_MAP_ALTITUDE": np.float32(sky.site_altitude_m),
        "FULL_ELEVATION": np.asarray(sky.elevation, ">f4"),
        "FULL_AZIMUTH": np.asarray(sky.azimuth, ">f4"),
        "FULL_MAP_ALTITUDE": np.asarray(sky.altitude_km.astype(np.float64) * 1000.0, ">f4"),
        "FULL_MAP_LATITUDE": np.asarray(sky.latitude, ">f4"),
        "FULL_MAP_LONGITUDE": np.asarray(sky.longitude, ">f4"),
    }
    when = generation["DATE_GENERATED"]
    records = [
        (10, b"\0" * 1024 + _idl_name(when) + _idl_name("oathcube") + _idl_name("oathcube")),
        (14, _long(9) + _idl_name("oathcube") + _idl_name("python") + _idl_name("oathcube")),
        (2, _idl_variable("SKYMAP", fields)),
        (6, b""),
    ]
    out = [b"SR\x00\x04"]
    offset = 4
    for rectype, body in records:
        nxt = offset + 16 + len(body)
        out.append(_long(rectype) + struct.pack(">II", nxt % 2**32, nxt // 2**32) + _long(0))
        out.append(body)
        offset = nxt
    path.write_bytes(b"".join(out))
    return path


def _long(value: int) -> bytes:
    return struct.pack(">l", int(value))


def _pad4(raw: bytes) -> bytes:
    return raw + b"\0" * (-len(raw) % 4)


def _idl_name(text: str) -> bytes:
    """A name or header string: its length, then its bytes to a 4-byte boundary."""
    raw = text.encode("latin-1")
    return _long(len(raw)) + _pad4(raw)


def _idl_code(value: Any) -> int:
    if isinstance(value, str):
        return 7
    if isinstance(value, dict):
        return 8
    dtype = np.asarray(value).dtype
    return _IDL_CODES[f"{dtype.kind}{dtype.itemsize}"]


def _idl_array_desc(shape: tuple[int, ...], itemsize: int) -> bytes:
    """ARRSTART 8 descriptor; IDL lists dimensions fastest first (numpy's reversed)."""
    n = int(np.prod(shape))
    dims = [*reversed(shape)] + [1] * (8 - len(shape))
    head = [8, 0, n * itemsize, n, len(shape), 0, 0, 8]
    return b"".join(_long(v) for v in [*head, *dims])


def _idl_struct_desc(fields: dict[str, Any]) -> bytes:
    """STRUCTSTART 9: an anonymous structure's tags, their names, arrays, structures."""
    tags, names, arrays, structs = [], [], [], []
    offset = 0
    for name, value in fields.items():
        code = _idl_code(value)
        if code == 8:
            flags = 0x24  # an array of one structure
            arrays.append(_idl_array_desc((1,), 0))
            structs.append(_idl_struct_desc(value))
        elif code != 7 and np.ndim(value) > 0:
            flags = 0x04
            arrays.append(_idl_array_desc(np.shape(value), np.asarray(value).dtype.itemsize))
        else:
            flags = 0
        tags.append(_long(offset) + _long(code) + _long(flags))
        names.append(_idl_name(name.upper()))
        offset += 8 if code in (7, 8) or np.ndim(value) else np.asarray(value).dtype.itemsize
    head = _long(9) + _idl_name("") + _long(0) + _long(len(fields)) + _long(offset)
    return head + b"".join(tags + names + arrays + structs)


def _idl_data(value: Any) -> bytes:
    """One tag's (or variable's) data, as scipy's reader and IDL lay it out."""
    code = _idl_code(value)
    if code == 8:
        return b"".join(_idl_data(v) for v in value.values())
    if code == 7:
        raw = value.encode("latin-1")
        return _long(0) if not raw else _long(len(raw)) + _long(len(raw)) + _pad4(raw)
    array = np.asarray(value)
    if array.ndim == 0:
        if code == 1:
            return _long(1) + bytes([int(array)]) + b"\0\0\0"
        if code in (2, 3):
            return struct.pack(">i", int(array))
        if code == 12:
            return struct.pack(">I", int(array))
        return array.astype(array.dtype.newbyteorder(">")).tobytes()
    flat = array.reshape(-1)
    if code == 1:
        return _long(flat.size) + _pad4(flat.astype(np.uint8).tobytes())
    if code in (2, 12):  # 16-bit values each in 4 bytes
        wide = np.zeros(2 * flat.size, dtype=">i2" if code == 2 else ">u2")
        wide[1::2] = flat
        return wide.tobytes()
    return _pad4(flat.astype(flat.dtype.newbyteorder(">")).tobytes())


def _idl_variable(name: str, fields: dict[str, Any]) -> bytes:
    """A VARIABLE record's body: one structure (an array of one, as IDL saves it)."""
    typedesc = _long(8) + _long(0x24) + _idl_array_desc((1,), 0) + _idl_struct_desc(fields)
    return _idl_name(name) + typedesc + _long(7) + _idl_data(fields)
