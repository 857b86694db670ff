"""The THEMIS ASI sites: their codes (the archives' keys), where they are, and stations.

One table for every stage: synthetic archives place each station's night in UTC by its
longitude, ``oathcube nights`` places local midnight by it where a station has no
skymap, and ``oathcube fetch`` refuses codes that are not here.

A *station* of a cube is one imager at one site: a site runs several (THEMIS, REGO,
TREx NIR, Blueline, RGB), each with its own cadence, frame size and skymaps, and their
frames never share a time axis.  THEMIS frames (and image folders) go to the station
named after the site alone (``gill``: every cube written before other imagers were read
stays as it is); another imager's go to ``<site>_<instrument>`` (``gill_rego``,
``gill_trex_nir``): :func:`station_code`, and back with :func:`site_of`.
"""

from __future__ import annotations

__all__ = ["STATION_LONGITUDES", "STATIONS", "station_code", "site_of"]

#: THEMIS ASI station codes and their approximate geographic longitudes (degrees east);
#: the longitude places each station's local night in UTC.
STATION_LONGITUDES: dict[str, float] = {
    "atha": -113.3,
    "chbg": -74.2,
    "ekat": -110.7,
    "fsim": -121.4,
    "fsmi": -111.9,
    "fykn": -145.2,
    "gako": -145.2,
    "gbay": -60.4,
    "gill": -94.6,
    "inuv": -133.7,
    "kapu": -82.5,
    "kian": -160.0,
    "kuuj": -68.4,
    "mcgr": -155.6,
    "nrsq": -45.4,
    "pgeo": -122.8,
    "pina": -96.0,
    "rank": -92.1,
    "snap": -110.8,
    "snkq": -79.2,
    "talo": -93.8,
    "tpas": -101.3,
    "whit": -135.1,
    "yknf": -114.4,
}

#: The THEMIS ASI station codes, in alphabetical order.
STATIONS: tuple[str, ...] = tuple(sorted(STATION_LONGITUDES))


#: Instruments whose frames go to the station named after the site alone.
_SITE_ONLY = ("", "themis", "images")


def station_code(site: str, instrument: str) -> str:
    """The station one imager's frames at ``site`` go to: ``gill``, ``gill_rego``.

    Examples
    --------
    >>> station_code("gill", "themis"), station_code("gill", "trex_nir")
    ('gill', 'gill_trex_nir')
    """
    return site if instrument in _SITE_ONLY else f"{site}_{instrument}"


def site_of(station: str) -> str:
    """The site of a station code (site codes hold no ``_``).

    Examples
    --------
    >>> site_of("gill_rego"), site_of("gako")
    ('gill', 'gako')
    """
    return station.split("_", 1)[0]
