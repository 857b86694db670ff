"""Skymaps per imager: read like pyucalgarysrs reads them, stored with their imager's station.

UCalgary publishes a skymap series per imager (``themis_``, ``rego_``, ``nir_``,
``blue_``, ``rgb_skymap_<site>_<date>-+_vNN.sav``).  oathcube reads each, records its
imager, and stores it with the station of that imager (``gill`` for THEMIS, ``gill_rego``
for REGO); views of a station use its own imager's skymaps, so keograms of two imagers
at one site line up in time and latitude.

No REGO or TREx skymap file is at hand: the tests write them with
:func:`oathcube.archive.skymap.write_skymap` (an IDL save writer of UCalgary's layout),
from synthetic skymaps of each imager's size and from the real Gakona THEMIS skymap
re-keyed as a REGO and a TREx NIR one (its arrays and generation info, another
``IMAGER_UID`` and file name).  pyucalgarysrs 1.28 (the test extra) reads every such
file, and its arrays equal oathcube's under the stated relation: flipped north-south,
and REGO's on both axes, as it flips the same imager's frames.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pyucalgarysrs
import xarray as xr
import zarr

from oathcube import keogram, sky_map
from oathcube.archive.orientation import from_pyucalgarysrs
from oathcube.archive.skymap import (
    SKYMAP_PREFIXES,
    Skymap,
    ideal_skymap,
    read_skymap,
    skymap_name,
    write_skymap,
)
from oathcube.cube.store import Cube
from oathcube.errors import ArchiveError, IngestError
from oathcube.ingestion.skymaps import (
    check_skymap_stations,
    ingest_skymaps,
    store_skymaps,
    take_skymaps,
)
from oathcube.sites import station_code
from oathcube.views.skymaps import skymap_for, station_skymaps

READERS = pyucalgarysrs.PyUCalgarySRS().data.readers
REAL = "themis_skymap_gako_20110305-+_vXX.sav"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "two_imagers_keogram.py"

#: oathcube's (y, x) skymap arrays from pyucalgarysrs's, stated per instrument.
RELATION = {
    "themis": lambda pyu: pyu[..., ::-1, :],
    "rego": lambda pyu: pyu[..., ::-1, ::-1],
    "trex_nir": lambda pyu: pyu[..., ::-1, :],
    "trex_blue": lambda pyu: pyu[..., ::-1, :],
    "trex_rgb": lambda pyu: pyu[..., ::-1, :],
}
IMAGERS = {
    "themis": "themis19",
    "rego": "rego-652",
    "trex_nir": "nir-216",
    "trex_blue": "blue-814",
    "trex_rgb": "rgb-04",
}


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("two_imagers_keogram", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _pyu(path: Path) -> Any:
    (skymap,) = READERS.read_skymap(str(path), quiet=True).data
    return skymap


def _check_equal(ours: Skymap, pyu: Any, instrument: str) -> None:
    """Every array and value pyucalgarysrs reads, against oathcube's."""
    turn = RELATION[instrument]
    np.testing.assert_array_equal(ours.elevation, turn(pyu.full_elevation))
    np.testing.assert_array_equal(ours.azimuth, turn(pyu.full_azimuth))
    np.testing.assert_array_equal(ours.latitude, turn(pyu.full_map_latitude))
    np.testing.assert_array_equal(ours.longitude, turn(pyu.full_map_longitude))
    np.testing.assert_array_equal(ours.altitude_km * 1000, pyu.full_map_altitude)
    # The skymaps relate as the same imager's frames do (orientation.from_pyucalgarysrs).
    frame_like = from_pyucalgarysrs(instrument, pyu.full_elevation[:, :, None])[0]
    np.testing.assert_array_equal(ours.elevation, frame_like)
    assert ours.site == pyu.site_uid and ours.info["imager"] == pyu.imager_uid
    assert ours.site_latitude == float(pyu.site_map_latitude)
    assert ours.site_longitude == float(pyu.site_map_longitude)
    assert ours.site_altitude_m == float(pyu.site_map_altitude)
    start = np.datetime64(pyu.generation_info.valid_interval_start, "D")
    assert ours.valid_from.astype("datetime64[D]") == start
    assert ours.valid_until is None and pyu.generation_info.valid_interval_stop is None


# --------------------------------------------------------------------------- reading
@pytest.mark.parametrize("instrument", sorted(SKYMAP_PREFIXES))
def test_every_imagers_skymap_equals_pyucalgarysrs(tmp_path: Path, instrument: str) -> None:
    sky = ideal_skymap("gill", 56.38, 265.36, instrument=instrument, rotation_deg=17.0)
    sky = dataclasses.replace(sky, info={**sky.info, "imager": IMAGERS[instrument]})
    path = write_skymap(sky, tmp_path)
    prefix = SKYMAP_PREFIXES[instrument]
    assert path.name == f"{prefix}_skymap_gill_20000101-+_v01.sav"
    ours = read_skymap(path)
    assert ours.instrument == instrument and ours.station == station_code("gill", instrument)
    assert ours.elevation.shape == {"rego": (512, 512), "trex_rgb": (480, 553)}.get(
        instrument, (256, 256)
    )
    for name in ("elevation", "azimuth", "latitude", "longitude", "altitude_km"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(sky, name))
    assert ours.info["synthetic"] == 1 and ours.valid_from == sky.valid_from
    _check_equal(ours, _pyu(path), instrument)
    # The same skymap, the same bytes.
    again = write_skymap(sky, tmp_path / "again.sav")
    assert hashlib.sha256(again.read_bytes()).hexdigest() == ours.sha256


def test_real_themis_skymap_equals_pyucalgarysrs(shared: Path) -> None:
    path = shared / "data" / "themis" / REAL
    ours = read_skymap(path)
    assert ours.instrument == "themis" and ours.station == "gako"
    _check_equal(ours, _pyu(path), "themis")


@pytest.mark.parametrize(("instrument", "imager"), [("rego", "rego-652"), ("trex_nir", "nir-216")])
def test_real_skymap_rekeyed_as_another_imager(
    tmp_path: Path, shared: Path, instrument: str, imager: str
) -> None:
    # The real Gakona structure (arrays, site, generation info) under another imager's
    # IMAGER_UID and file name: what a REGO or TREx NIR skymap of Gakona would be.
    real = read_skymap(shared / "data" / "themis" / REAL)
    keyed = dataclasses.replace(real, instrument=instrument, info={**real.info, "imager": imager})
    path = write_skymap(keyed, tmp_path)
    assert path.name == f"{SKYMAP_PREFIXES[instrument]}_skymap_gako_20110305-+_v01.sav"
    ours = read_skymap(path)
    assert ours.instrument == instrument and ours.station == f"gako_{instrument}"
    assert ours.valid_from == np.datetime64("2011-03-05T08:00")  # VALID_INTERVAL_START
    assert ours.info["generation_author"] == "Neil" and "synthetic" not in ours.info
    for name in ("elevation", "azimuth", "latitude", "longitude", "altitude_km"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(real, name))
    pyu = _pyu(path)
    _check_equal(ours, pyu, instrument)
    if instrument == "rego":  # pyucalgarysrs turns a REGO skymap on both axes by its name
        np.testing.assert_array_equal(pyu.full_elevation, real.elevation[::-1, ::-1])


def test_a_skymap_names_its_imager_once(tmp_path: Path, shared: Path) -> None:
    data = (shared / "data" / "themis" / REAL).read_bytes()
    renamed = tmp_path / "rego_skymap_gako_20110305-+_vXX.sav"
    renamed.write_bytes(data)
    with pytest.raises(ArchiveError, match="says a REGO skymap but IMAGER_UID is 'themis20'") as e:
        read_skymap(renamed)
    assert "\n" not in str(e.value) and str(renamed) in str(e.value)
    spect = tmp_path / "spect_skymap_gako_20110305-+_v01.sav"
    spect.write_bytes(data)
    with pytest.raises(ArchiveError, match="'spect' skymap: not of an imager oathcube reads"):
        read_skymap(spect)
    # A name that is not UCalgary's: the IMAGER_UID says the imager, or nothing does.
    loose = tmp_path / "gako.sav"
    loose.write_bytes(data)
    assert read_skymap(loose).instrument == "themis"
    odd = ideal_skymap("gako", 62.41, 214.84, size=16)
    write_skymap(odd, tmp_path / "odd.sav")
    assert read_skymap(tmp_path / "odd.sav").instrument == "themis"  # its IMAGER_UID: themis0
    # A download that kept the URL's %2B reads as +.
    plus = tmp_path / "themis_skymap_gako_20110305-%2B_vXX.sav"
    plus.write_bytes(data)
    assert read_skymap(plus).valid_until is None


def test_ideal_skymaps_per_imager() -> None:
    rego = ideal_skymap("gill_rego", 56.38, 265.36)
    assert rego.instrument == "rego" and rego.station == "gill_rego" and rego.site == "gill"
    assert rego.elevation.shape == (512, 512) and rego.latitude.shape == (3, 513, 513)
    assert skymap_name("rego", "gill", rego.valid_from) == "rego_skymap_gill_20000101-+_v01.sav"
    rgb = ideal_skymap("gill", 56.38, 265.36, instrument="trex_rgb")
    assert rgb.elevation.shape == (480, 553)
    zen = np.unravel_index(np.nanargmax(rgb.elevation), rgb.elevation.shape)
    assert zen == (239, 276) and np.nanmax(rgb.elevation) > 89.5
    with pytest.raises(ArchiveError, match="no skymap for instrument 'rego' at 'gill_trex_nir'"):
        ideal_skymap("gill_trex_nir", 56.38, 265.36, instrument="rego")


# --------------------------------------------------------------------------- storing
@pytest.fixture(scope="module")
def two_imagers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The script's synthetic scene, small: THEMIS and REGO minutes of Gillam, 06 UT."""
    folder = tmp_path_factory.mktemp("two")
    return _script().build_cube(folder, minutes=4, frames_per_minute=3)


def _copy(cube: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(cube, tmp_path / "cube.zarr"))


def test_each_skymap_goes_to_its_imagers_station(two_imagers: Path) -> None:
    assert Cube.open(two_imagers).stations() == ["gill", "gill_rego"]
    for station, instrument, shape in (("gill", "themis", 256), ("gill_rego", "rego", 512)):
        (entry,) = station_skymaps(two_imagers, station)
        assert entry["name"] == "20140101T00" and entry["instrument"] == instrument
        group = zarr.open_group(str(two_imagers / f"stations/{station}/skymaps/20140101T00"))
        attrs = group.attrs
        assert attrs["instrument"] == instrument and attrs["station"] == station
        assert attrs["site"] == "gill"
        assert json.loads(attrs["frame_geometry"])["source_shape"] == [shape, shape]
        # Both stations' frames are stored at 256 px: REGO's skymap resized with them.
        assert group["elevation"].shape == (256, 256)


def test_a_rego_skymap_never_lands_in_the_themis_station(two_imagers: Path, tmp_path: Path) -> None:
    cube = _copy(two_imagers, tmp_path)
    later = ideal_skymap("gill", 56.38, 265.36, instrument="rego", valid_from="2014-02-01T00")
    path = write_skymap(later, tmp_path)
    assert ingest_skymaps([path], cube) == {"gill_rego": 1}
    assert [e["name"] for e in station_skymaps(cube, "gill")] == ["20140101T00"]
    assert [e["name"] for e in station_skymaps(cube, "gill_rego")] == [
        "20140101T00",
        "20140201T00",
    ]
    # Asked for the THEMIS station: refused, in one line, before anything is read further.
    with pytest.raises(IngestError, match=r"skymap is of station 'gill_rego' \(the REGO at gill"):
        take_skymaps([path], "gill")
    # A REGO skymap for a site whose REGO frames are not in the cube.
    elsewhere = write_skymap(ideal_skymap("gako_rego", 62.41, 214.84), tmp_path)
    with pytest.raises(IngestError, match="station 'gako_rego' has no frames in this cube"):
        ingest_skymaps([elsewhere], cube)


def test_a_skymap_without_its_imagers_frames_is_refused_before_writing(two_imagers: Path) -> None:
    # For an ingest of THEMIS frames with a REGO skymap: refused before the frames land.
    rego = ideal_skymap("gill_rego", 56.38, 265.36)
    with pytest.raises(IngestError, match="station 'gill_rego' gets no frames") as info:
        check_skymap_stations([rego], ["gill"], None)
    assert "its frames go to gill" in str(info.value) and "\n" not in str(info.value)
    check_skymap_stations([rego], ["gill", "gill_rego"], None)
    check_skymap_stations([rego], ["gill"], Cube.open(str(two_imagers)))  # REGO frames there


def test_the_size_check_against_raw_frames_stays(two_imagers: Path, tmp_path: Path) -> None:
    cube = _copy(two_imagers, tmp_path)
    small = ideal_skymap("gill_rego", 56.38, 265.36, size=256, valid_from="2014-03-01T00")
    with pytest.raises(IngestError, match=r"skymap is \(256, 256\), the station's raw frames"):
        store_skymaps([small], cube)
    assert [e["name"] for e in station_skymaps(cube, "gill_rego")] == ["20140101T00"]


def test_a_station_of_another_imager_refuses_the_skymap(two_imagers: Path, tmp_path: Path) -> None:
    cube = _copy(two_imagers, tmp_path)
    group = zarr.open_group(str(cube / "stations/gill"), mode="r+")
    group.attrs["instrument"] = "trex_nir"  # as if gill held TREx NIR frames
    later = ideal_skymap("gill", 56.38, 265.36, valid_from="2014-02-01T00")
    with pytest.raises(IngestError, match="a THEMIS skymap for station 'gill', which holds TREx"):
        store_skymaps([later], Cube.open(str(cube)))


def test_views_leave_out_another_imagers_skymap(
    two_imagers: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A cube written before skymaps went per imager may hold a TREx NIR skymap (256 x 256,
    # like THEMIS frames) under the site's THEMIS station: views leave it out.
    cube = _copy(two_imagers, tmp_path)
    group = zarr.open_group(str(cube / "stations/gill/skymaps/20140101T00"), mode="r+")
    del group.attrs["instrument"]
    group.attrs["imager"] = "nir-216"
    with caplog.at_level(logging.WARNING):
        assert skymap_for(cube, "gill") is None
    assert "a TREx NIR skymap, the station's frames are THEMIS: left out" in caplog.text
    assert keogram(cube, "gill").attrs["skymap"] == ""  # the centre column


# --------------------------------------------------------------------------- views
def _arc(keo: xr.DataArray) -> np.ndarray:
    """Per frame, the latitude of the arc: the centroid of the keogram above half its top."""
    values = keo.values.astype(float)
    lat = keo["latitude"].values.astype(float)
    weight = np.clip(values - values.max(axis=1, keepdims=True) / 2, 0, None)
    return (weight * lat).sum(axis=1) / weight.sum(axis=1)


def test_keograms_of_two_imagers_line_up(two_imagers: Path) -> None:
    script = _script()
    themis, rego = keogram(two_imagers, "gill"), keogram(two_imagers, "gill_rego")
    for keo, station in ((themis, "gill"), (rego, "gill_rego")):
        assert keo.attrs["station"] == station and keo.attrs["skymap"] == "20140101T00"
        assert keo.attrs["skymap_note"] == "SYNTHETIC" and keo.dims == ("time", "latitude")
    # Time: the same hour, the same minutes, frames 3 s apart in both.
    t_themis, t_rego = themis["time"].values, rego["time"].values
    for t in (t_themis, t_rego):
        assert t.astype("datetime64[h]").tolist() == [script.HOUR.astype("datetime64[h]")] * t.size
    np.testing.assert_array_equal(
        np.unique(t_themis.astype("datetime64[m]")), np.unique(t_rego.astype("datetime64[m]"))
    )
    assert abs(t_themis[0] - t_rego[0]) < np.timedelta64(1, "s")
    assert abs(t_themis[-1] - t_rego[-1]) < np.timedelta64(1, "s")
    # Latitude: one zenith, the site's, and ranges that overlap as the lenses say.
    zenith = [float(k["latitude"][int(np.argmax(k["elevation"].values))]) for k in (themis, rego)]
    assert abs(zenith[0] - zenith[1]) < 0.02 and abs(zenith[0] - script.LATITUDE) < 0.02
    for keo, station in ((themis, "gill"), (rego, "gill_rego")):
        sky = skymap_for(two_imagers, station)
        assert sky is not None
        lat = sky["latitude"].sel(altitude=110).values
        centre = (lat[:-1, :-1] + lat[1:, :-1] + lat[:-1, 1:] + lat[1:, 1:]) / 4
        seen = centre[sky["elevation"].values >= 10]
        lo, hi = float(keo["latitude"].min()), float(keo["latitude"].max())
        assert abs(lo - seen.min()) < 0.3 and abs(hi - seen.max()) < 0.3, (station, lo, hi)
    lo = max(float(themis["latitude"].min()), float(rego["latitude"].min()))
    hi = min(float(themis["latitude"].max()), float(rego["latitude"].max()))
    assert lo < script.LATITUDE - 3.5 and hi > script.LATITUDE + 3.5
    # The arc: where the scene put it, in both keograms, frame by frame.
    truth_themis, truth_rego = script.arc_latitude(t_themis), script.arc_latitude(t_rego)
    assert np.abs(_arc(themis) - truth_themis).max() < 0.1  # measured: 0.03 deg
    assert np.abs(_arc(rego) - truth_rego).max() < 0.1  # measured: 0.04 deg
    assert np.abs(_arc(themis) - _arc(rego)).max() < 0.1


def test_the_map_view_works_per_imager(two_imagers: Path) -> None:
    # Each station's map puts the arc where the scene has it at that time.
    script = _script()
    for station in ("gill", "gill_rego"):
        ds = sky_map(two_imagers, station, time="2014-03-10T06:20:03")
        assert ds.attrs["station"] == station and ds.attrs["skymap"] == "20140101T00"
        lat = ds["latitude"].values.astype(float)
        centre = (lat[:-1, :-1] + lat[1:, :-1] + lat[:-1, 1:] + lat[1:, 1:]) / 4
        value = np.nan_to_num(ds["value"].values.astype(float))
        weight = np.clip(value - value.max() / 2, 0, None)
        arc = float((weight * centre).sum() / weight.sum())
        truth = float(script.arc_latitude(np.datetime64(ds.attrs["first_time"])))
        assert abs(arc - truth) < 0.1, (station, arc, truth)


def test_the_script_draws_both_keograms(two_imagers: Path, tmp_path: Path) -> None:
    import imageio.v3 as iio

    out = _script().draw(two_imagers, tmp_path / "two.png")
    image = iio.imread(out)
    assert image.shape[:2] == (2 * 572, 1210)  # two 11 x 5.2 in panels at 110 dpi, stacked


def test_an_ingest_refuses_a_skymap_whose_imager_gets_no_frames_before_writing(
    tmp_path: Path,
) -> None:
    # THEMIS frames with a REGO skymap of the same site: the skymap's station would be
    # gill_rego, which this ingest gives no frames; refused before the THEMIS frames land.
    from oathcube import ingest
    from oathcube.rawprep import RawPreparation
    from oathcube.synthetic.ucalgary import write_ucalgary_pgm

    raw = tmp_path / "raw"
    raw.mkdir()
    write_ucalgary_pgm(raw, "themis", "gill", "2014-03-10T06:00", 3)
    sky = write_skymap(ideal_skymap("gill_rego", 56.38, 265.36), raw)
    cube = tmp_path / "cube.zarr"
    with pytest.raises(IngestError, match="station 'gill_rego' gets no frames") as err:
        ingest([raw], cube, preparation=RawPreparation(out_size=32))
    assert err.value.path == str(sky) and not cube.exists()
