"""Skymaps: the reader, storage in station groups, choice by date, and the one orientation.

The orientation tests use the real files in ``../shared/data/themis`` and the sky itself:
catalogue stars for the Gakona CDF against the Gakona skymap, and the Moon's motion for
the Gillam PGM minutes (which have no skymap here).  Positions use low-precision
formulas (sidereal time, the Moon's main terms), good to a few tenths of a degree: a
pixel is about 0.7 deg near zenith.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

from oathcube.archive.orientation import ORIENTATION, RAW_ORIENTATION
from oathcube.archive.skymap import ideal_skymap, read_skymap
from oathcube.archive.themis_cdf import read_cdf
from oathcube.archive.themis_pgm import read_pgm
from oathcube.cli import app
from oathcube.errors import ArchiveError, CubeError, IngestError
from oathcube.faults import KILL_ENV
from oathcube.ingestion.skymaps import store_skymaps
from oathcube.ingestion.stations import ingest
from oathcube.views.skymaps import skymap_for, station_skymaps

SKYMAP = "themis_skymap_gako_20110305-+_vXX.sav"
CDF = "thg_l1_asf_gako_2011010617_v01.cdf"
PGM_0600 = "20140310_0600_gill_themis19_full.pgm.gz"
PGM_0605 = "20140310_0605_gill_themis19_full.pgm"

#: Bright stars, J2000 right ascension (hours) and declination (deg).
STARS = {
    "Polaris": (2.530, 89.264), "Capella": (5.278, 45.998), "Vega": (18.616, 38.784),
    "Deneb": (20.690, 45.280), "Arcturus": (14.261, 19.182), "Dubhe": (11.062, 61.751),
    "Merak": (11.031, 56.382), "Alioth": (12.900, 55.960), "Mizar": (13.399, 54.925),
    "Alkaid": (13.792, 49.313), "Phecda": (11.897, 53.695), "Regulus": (10.140, 11.967),
    "Pollux": (7.755, 28.026), "Castor": (7.577, 31.888), "Procyon": (7.655, 5.225),
    "Betelgeuse": (5.919, 7.407), "Aldebaran": (4.599, 16.509), "Altair": (19.846, 8.868),
    "Mirfak": (3.405, 49.861), "Schedar": (0.675, 56.537), "Caph": (0.153, 59.150),
    "Kochab": (14.845, 74.156), "Menkalinan": (5.992, 44.947), "Eltanin": (17.943, 51.489),
    "Algol": (3.136, 40.956), "Denebola": (11.818, 14.572), "Hamal": (2.120, 23.462),
    "Alpheratz": (0.140, 29.090),
}  # fmt: skip


@pytest.fixture(scope="module")
def themis(shared: Path) -> Path:
    return shared / "data" / "themis"


# --------------------------------------------------------------------------- sky positions
def _days(t: np.datetime64) -> float:
    return float((t - np.datetime64("2000-01-01T12:00")) / np.timedelta64(1, "s") / 86400.0)


def _lst_hours(t: np.datetime64, lon_east: float) -> float:
    return (18.697374558 + 24.06570982441908 * _days(t) + lon_east / 15.0) % 24.0


def _alt_az(ra_h: float, dec: float, lst: float, lat: float) -> tuple[float, float]:
    phi, h, d = np.radians(lat), np.radians((lst - ra_h) * 15.0), np.radians(dec)
    alt = np.arcsin(np.sin(phi) * np.sin(d) + np.cos(phi) * np.cos(d) * np.cos(h))
    az = np.arctan2(
        -np.cos(d) * np.sin(h), np.sin(d) * np.cos(phi) - np.cos(d) * np.sin(phi) * np.cos(h)
    )
    return float(np.degrees(alt)), float(np.degrees(az) % 360.0)


def _moon_alt_az(t: np.datetime64, lat: float, lon_east: float) -> tuple[float, float]:
    """Topocentric altitude and azimuth of the Moon (the Almanac's low-precision terms)."""
    T = _days(t) / 36525.0

    def s(x: float) -> float:
        return float(np.sin(np.radians(x)))

    def c(x: float) -> float:
        return float(np.cos(np.radians(x)))

    lam = (
        218.32 + 481267.881 * T + 6.29 * s(135.0 + 477198.87 * T) - 1.27 * s(259.3 - 413335.36 * T)
        + 0.66 * s(235.7 + 890534.22 * T) + 0.21 * s(269.9 + 954397.74 * T)
        - 0.19 * s(357.5 + 35999.05 * T) - 0.11 * s(186.5 + 966404.03 * T)
    )  # fmt: skip
    beta = (
        5.13 * s(93.3 + 483202.02 * T) + 0.28 * s(228.2 + 960400.89 * T)
        - 0.28 * s(318.3 + 6003.15 * T) - 0.17 * s(217.6 - 407332.21 * T)
    )  # fmt: skip
    par = 0.9508 + 0.0518 * c(135.0 + 477198.87 * T)
    eps = 23.439
    x = c(beta) * c(lam)
    y = c(eps) * c(beta) * s(lam) - s(eps) * s(beta)
    z = s(eps) * c(beta) * s(lam) + c(eps) * s(beta)
    ra = (np.degrees(np.arctan2(y, x)) % 360.0) / 15.0
    dec = float(np.degrees(np.arcsin(z)))
    alt, az = _alt_az(ra, dec, _lst_hours(t, lon_east), lat)
    return alt - par * float(np.cos(np.radians(alt))), az


def _point_sources(frame: np.ndarray, threshold: float) -> np.ndarray:
    res = frame - ndimage.median_filter(frame, 7)
    return np.argwhere((res == ndimage.maximum_filter(res, 5)) & (res > threshold))


# --------------------------------------------------------------------------- the reader
def test_read_real_skymap(themis: Path) -> None:
    sky = read_skymap(themis / SKYMAP)
    assert sky.station == "gako" and sky.info["imager"] == "themis20"
    assert sky.valid_from == np.datetime64("2011-03-05T08:00") and sky.valid_until is None
    assert sky.elevation.shape == sky.azimuth.shape == (256, 256)
    assert sky.latitude.shape == sky.longitude.shape == (3, 257, 257)
    np.testing.assert_array_equal(sky.altitude_km, [90.0, 110.0, 150.0])
    assert abs(sky.site_latitude - 62.41) < 1e-3 and abs(sky.site_longitude - 214.84) < 1e-3
    assert sky.name == "20110305T08" and len(sky.sha256) == 64
    zen = np.unravel_index(np.nanargmax(sky.elevation), sky.elevation.shape)
    assert np.nanmax(sky.elevation) > 89 and zen == (129, 124)
    # Corners at 110 km straddle the site: latitude falls from row 0 (north) to the last row.
    lat = sky.latitude[1]
    assert np.nanmax(lat[:40]) > 65 > sky.site_latitude > 60 > np.nanmin(lat[-40:])


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "cannot read as an IDL save file"),
        (b"SR\x00\x04garbage" * 40, "cannot read as an IDL save file"),
        (None, "cannot read as an IDL save file"),  # the real file cut in half
    ],
)
def test_bad_skymap_files_say_one_line(
    tmp_path: Path, themis: Path, content: bytes | None, match: str
) -> None:
    data = (themis / SKYMAP).read_bytes()
    bad = tmp_path / SKYMAP
    bad.write_bytes(data[: len(data) // 2] if content is None else content)
    with pytest.raises(ArchiveError, match=match) as info:
        read_skymap(bad)
    assert "\n" not in str(info.value) and str(bad) in str(info.value)


def test_skymap_name_must_agree_with_content(tmp_path: Path, themis: Path) -> None:
    other = tmp_path / "themis_skymap_gill_20110305-+_vXX.sav"
    other.write_bytes((themis / SKYMAP).read_bytes())
    with pytest.raises(ArchiveError, match="station 'gill' but SITE_UID is 'gako'"):
        read_skymap(other)
    later = tmp_path / "themis_skymap_gako_20120101-+_vXX.sav"
    later.write_bytes((themis / SKYMAP).read_bytes())
    with pytest.raises(ArchiveError, match="valid from 2012-01-01"):
        read_skymap(later)


# --------------------------------------------------------------------------- orientation
def test_skymap_orientation_numbers(themis: Path) -> None:
    """The stored skymap: north-ish at row 0, east at column 0 (the cube's convention)."""
    sky = read_skymap(themis / SKYMAP)
    r, c = 129, 124  # zenith
    az = sky.azimuth
    assert 15 < az[r - 80, c] < 30  # 80 px above zenith: ~23 deg (camera turned 22.6 deg)
    assert 195 < az[r + 80, c] < 210  # below: south
    assert 105 < az[r, c - 80] < 120  # left: east
    assert 285 < az[r, c + 80] < 300  # right: west


def test_cdf_frames_and_skymap_agree_pixel_for_pixel(themis: Path) -> None:
    """Catalogue stars land on point sources of the CDF frames as read, through the skymap."""
    sky = read_skymap(themis / SKYMAP)
    block = read_cdf(themis / CDF)
    t = block.time[len(block.time) // 2]
    lst = _lst_hours(t, sky.site_longitude)
    el, az = np.radians(sky.elevation.astype(float)), np.radians(sky.azimuth.astype(float))

    def matches(frames: np.ndarray) -> tuple[int, int, float]:
        points = _point_sources(frames.astype(float).mean(0), 60)
        dists = []
        for ra, dec in STARS.values():
            alt, a = _alt_az(ra, dec, lst, sky.site_latitude)
            if alt < 20:
                continue
            alt, a = np.radians(alt), np.radians(a)
            cos = np.sin(el) * np.sin(alt) + np.cos(el) * np.cos(alt) * np.cos(az - a)
            r, c = np.unravel_index(np.argmax(np.where(np.isfinite(cos), cos, -2)), cos.shape)
            dists.append(np.hypot(points[:, 0] - r, points[:, 1] - c).min())
        d = np.array(dists)
        return int((d <= 2.5).sum()), len(d), float(np.median(d))

    hits, total, median = matches(block.frames)  # as oathcube reads them (turned 180 deg)
    assert total >= 20 and hits >= total - 1 and median <= 1.5, (hits, total, median)
    for name, raw in [
        ("as in the file", block.frames[:, ::-1, ::-1]),
        ("mirrored", block.frames[:, :, ::-1]),
        ("flipped", block.frames[:, ::-1, :]),
    ]:
        hits, total, median = matches(raw)
        assert hits <= 5 and median > 4, (name, hits, total, median)


def test_pgm_frames_have_the_skymaps_handedness(themis: Path) -> None:
    """The Moon's motion between two Gillam minutes turns the way the skymap's sky does.

    The Gakona skymap gives the lens (radius against zenith angle; every THEMIS imager
    has the same optics); the Moon's position at 06:00 fixes the camera's rotation for
    either handedness, and only the skymap's handedness predicts where it is at 06:05.
    """
    sky = read_skymap(themis / SKYMAP)
    zr, zc = 129, 124
    yy, xx = np.mgrid[:256, :256]
    ok = np.isfinite(sky.elevation)
    zen, rad = 90 - sky.elevation[ok], np.hypot(yy - zr, xx - zc)[ok]
    grid = np.arange(0, 90)
    radius = [float(np.median(rad[np.abs(zen - z) < 0.5])) for z in grid]

    def lens(z: float) -> float:
        return float(np.interp(z, grid, radius))

    lat, lon = 56.38, 265.36  # Gillam
    centres, means = [], []
    for name in (PGM_0600, PGM_0605):
        block = read_pgm(themis / name)
        spots = []
        for frame in block.frames.astype(float):
            smooth = ndimage.gaussian_filter(frame, 1.5)
            r0, c0 = np.unravel_index(np.argmax(smooth[100:200, 170:250]), (100, 80))
            r0, c0 = r0 + 100, c0 + 170
            win = frame[r0 - 8 : r0 + 9, c0 - 8 : c0 + 9]
            w = np.clip(win - np.median(frame[r0 - 15 : r0 + 16, c0 - 15 : c0 + 16]), 0, None)
            w = np.clip(w - 0.5 * w.max(), 0, None)  # the Moon's core, above half maximum
            oy, ox = np.mgrid[-8:9, -8:9]
            spots.append((r0 + (w * oy).sum() / w.sum(), c0 + (w * ox).sum() / w.sum()))
        centres.append(np.mean(spots, axis=0))
        means.append(block.time[len(block.time) // 2])
        lit = ndimage.binary_fill_holes(block.frames.mean(0) > np.percentile(block.frames, 35))
        fov = np.argwhere(lit).mean(axis=0)
    observed = centres[1] - centres[0]
    (alt0, az0), (alt1, az1) = (_moon_alt_az(t, lat, lon) for t in means)
    assert 25 < alt0 < 32 and 255 < az0 < 264  # the Moon low in the west-south-west

    def predicted(hand: int) -> np.ndarray:
        dr, dc = centres[0] - fov
        turn = np.degrees(np.arctan2(-hand * dc, -dr)) - az0

        def pixel(alt: float, az: float) -> np.ndarray:
            r, q = lens(90 - alt), np.radians(az + turn)
            return np.array([fov[0] - r * np.cos(q), fov[1] - hand * r * np.sin(q)])

        return pixel(alt1, az1) - pixel(alt0, az0)

    same, mirrored = predicted(+1), predicted(-1)
    assert np.hypot(*(observed - same)) < 0.6, (observed, same)
    assert np.hypot(*(observed - mirrored)) > 2.0, (observed, mirrored)


# --------------------------------------------------------------------------- in the cube
def _arrays(cube: Path) -> dict[str, np.ndarray]:
    tree = xr.open_datatree(cube, engine="zarr")
    return {
        f"{node.path}/{name}": node[name].values
        for node in tree.subtree
        for name in node.data_vars
        if "skymaps" in node.path
    }


def test_ingest_takes_a_skymap_like_any_source(tmp_path: Path, themis: Path, runner) -> None:
    cube = tmp_path / "cube.zarr"
    result = runner.invoke(
        app, ["ingest", str(themis / SKYMAP), str(themis / CDF), "-o", str(cube)]
    )
    assert result.exit_code == 0, result.output
    ds = xr.open_zarr(cube, group="stations/gako/skymaps/20110305T08")
    assert ds["elevation"].dims == ("y", "x") and ds["latitude"].dims[0] == "altitude"
    assert ds.attrs["oathcube_status"] == "complete" and ds.attrs["orientation"] == ORIENTATION
    assert ds.attrs["valid_from"] == "2011-03-05T08:00:00Z" and ds.attrs["valid_until"] == ""
    assert json.loads(ds.attrs["generation"])["img_flip"] == [1, 0]
    sky = read_skymap(themis / SKYMAP)
    np.testing.assert_array_equal(ds["elevation"].values, sky.elevation)
    pixels = xr.open_zarr(cube, group="stations/gako")["pixels"]
    assert pixels.attrs["raw_orientation"] == RAW_ORIENTATION
    # The same file again changes nothing; a folder of skymaps alone is a source too.
    before = _arrays(cube)
    folder = tmp_path / "skymaps"
    folder.mkdir()
    (folder / SKYMAP).write_bytes((themis / SKYMAP).read_bytes())
    assert ingest([folder], cube, progress=False) == {}  # no frames appended
    after = _arrays(cube)
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])


def test_a_different_skymap_of_the_same_start_is_refused(tmp_path: Path, themis: Path) -> None:
    cube = tmp_path / "cube.zarr"
    ingest([themis / SKYMAP, themis / CDF], cube, progress=False)
    sky = read_skymap(themis / SKYMAP)
    other = dataclasses.replace(sky, elevation=sky.elevation + 0.5, sha256="0" * 64)
    with pytest.raises(IngestError, match="a different skymap of gako valid from"):
        store_skymaps([other], cube)


def test_a_skymap_needs_its_stations_frames(tmp_path: Path, themis: Path, runner) -> None:
    cube = tmp_path / "cube.zarr"
    result = runner.invoke(app, ["ingest", str(themis / SKYMAP), "-o", str(cube)])
    assert result.exit_code == 1 and "skymaps alone cannot start a cube" in result.output
    assert not cube.exists()
    ingest([themis / PGM_0605], cube, progress=False)  # gill frames only
    before = sorted(p.relative_to(cube) for p in cube.rglob("*"))
    with pytest.raises(IngestError, match="station 'gako' has no frames in this cube"):
        ingest([themis / SKYMAP], cube, progress=False)
    assert sorted(p.relative_to(cube) for p in cube.rglob("*")) == before


def test_the_skymap_is_chosen_by_date(
    tmp_path: Path, themis: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cube = tmp_path / "cube.zarr"
    ingest([themis / SKYMAP, themis / CDF], cube, progress=False)
    later = ideal_skymap("gako", 62.41, 214.84, valid_from="2013-09-01T00")
    store_skymaps([later], cube)
    have = station_skymaps(cube, "gako")
    assert [d["name"] for d in have] == ["20110305T08", "20130901T00"]
    assert have[0]["valid_until"] == np.datetime64("2013-09-01T00:00")
    assert skymap_for(cube, "gako", "2012-06-01").attrs["name"] == "20110305T08"
    assert skymap_for(cube, "gako", "2014-01-01").attrs["name"] == "20130901T00"
    assert (
        skymap_for(cube, "gako", "2010-01-01", choice="2011-03-05").attrs["name"] == "20110305T08"
    )
    assert skymap_for(cube, "gako", "2012-06-01", choice="none") is None
    assert "validity_note" not in skymap_for(cube, "gako", "2012-06-01").attrs
    # Frames older than every skymap: the nearest, said in a warning and on the result.
    with caplog.at_level(logging.WARNING, logger="oathcube"):
        early = skymap_for(cube, "gako", "2011-01-06T17:00")
    assert early.attrs["name"] == "20110305T08"
    assert early.attrs["validity_note"] == "valid from 2011-03-05, 57.6 days after these frames"
    assert "no skymap of gako is valid at 2011-01-06T17:00:00: using 20110305T08" in caplog.text
    with pytest.raises(CubeError, match="matches '2099'"):
        skymap_for(cube, "gako", None, choice="2099")


def test_a_killed_skymap_write_is_redone_identically(tmp_path: Path, themis: Path) -> None:
    whole, killed = tmp_path / "whole.zarr", tmp_path / "killed.zarr"
    ingest([themis / CDF, themis / SKYMAP], whole, progress=False)
    ingest([themis / CDF], killed, progress=False)
    args = [sys.executable, "-m", "oathcube.cli", "ingest", str(themis / SKYMAP), "-o", str(killed)]
    env = {**os.environ, KILL_ENV: "skymap.array_written:3"}
    proc = subprocess.run(args, env=env, start_new_session=True, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    group = killed / "stations/gako/skymaps/20110305T08"
    assert json.loads((group / "zarr.json").read_text())["attributes"]["oathcube_status"] == (
        "building"
    )
    assert station_skymaps(killed, "gako") == []  # readers do not see it
    env.pop(KILL_ENV)
    subprocess.run(args, env=env, start_new_session=True, check=True, capture_output=True)
    a, b = _arrays(whole), _arrays(killed)
    assert a.keys() == b.keys() and len(a) == 4  # elevation, azimuth, latitude, longitude
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
