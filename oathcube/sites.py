"""The THEMIS ASI sites: their codes (the archives' keys) and where they are.

One table for every stage: synthetic archives place each station's night in UTC by its
longitude, ``oathcube nights`` places local midnight by it where a station has no
skymap, and ``oathcube fetch`` refuses codes that are not here.
"""

from __future__ import annotations

__all__ = ["STATION_LONGITUDES", "STATIONS"]

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
