"""Fetching REGO and TREx files from a fake UCalgary data tree on a loopback server.

The tree is laid out as UCalgary's (``oathcube.fetch.sources``): per instrument,
``<base>/stream0/<YYYY>/<MM>/<DD>/<site>_<imager>/ut<HH>/`` of one-minute files written by
:mod:`oathcube.synthetic.ucalgary` in each imager's format (SYNTHETIC frames), with dark
files beside them, another site's camera folder, and a REGO skymap (SYNTHETIC, written by
:func:`oathcube.archive.skymap.write_skymap`) below ``skymap/`` (REGO's folder name).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from http_server import FaultyServer

import oathcube
from oathcube.cli import app
from oathcube.errors import FetchError, OptionError
from oathcube.fetch import AsiRequest, ThemisFetch, fetch_asi, fetch_themis
from oathcube.fetch import sources as src
from oathcube.rawprep import RawPreparation
from oathcube.synthetic.ucalgary import write_trex_rgb_h5, write_ucalgary_pgm

TREE = "/sort_by_project"
REGO = f"{TREE}/GO-Canada/REGO"
NIR = f"{TREE}/TREx/NIR"
BLUE = f"{TREE}/TREx/blueline"
RGB = f"{TREE}/TREx/RGB"
REGO_HOUR = f"{REGO}/stream0/2018/04/03/gill_rego-652/ut06/"
NIR_HOUR = f"{NIR}/stream0/2022/03/07/gill_nir-216/ut06/"
BLUE_HOUR = f"{BLUE}/stream0/2022/03/08/gill_blue-814/ut06/"
RGB_HOUR = f"{RGB}/stream0/2021/02/05/gill_rgb-04/ut06/"
SHAPE = (24, 32)  # small SYNTHETIC frames: quick, and not square (a transposition shows)
N = 3
FAST = {"timeout": 3.0, "retries": 1, "progress": False}
PREP = RawPreparation(out_size=16)

#: instrument -> (base path, hour folder, start of the range, sky minutes on the server)
CASES = {
    "rego": (REGO, REGO_HOUR, "2018-04-03T06:00", ("0600", "0601", "0603")),
    "trex_nir": (NIR, NIR_HOUR, "2022-03-07T06:00", ("0600", "0601")),
    "trex_blue": (BLUE, BLUE_HOUR, "2022-03-08T06:00", ("0600", "0601")),
    "trex_rgb": (RGB, RGB_HOUR, "2021-02-05T06:00", ("0600", "0601")),
}


def _folder(root: Path, rel: str) -> Path:
    path = root / rel.strip("/")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _minute(day: str, hhmm: str) -> str:
    return f"{day}T{hhmm[:2]}:{hhmm[2:]}"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A UCalgary data tree: sky minutes, darks, another site, a REGO skymap."""
    from oathcube.archive.skymap import ideal_skymap, write_skymap

    root = tmp_path_factory.mktemp("ucalgary")
    for seed, (instrument, (_, hour, start, minutes)) in enumerate(CASES.items()):
        folder = _folder(root, hour)
        day = start[:10]
        for k, hhmm in enumerate(minutes):
            t = _minute(day, hhmm)
            if instrument == "trex_rgb":
                write_trex_rgb_h5(folder, "gill", t, N, shape=SHAPE, seed=seed * 10 + k)
            else:
                # one minute plain, the others gzipped, as the tree may hold both
                gz = k != 1 or instrument != "trex_nir"
                write_ucalgary_pgm(
                    folder, instrument, "gill", t, N, shape=SHAPE, seed=seed * 10 + k, gz=gz
                )
        if instrument != "trex_rgb":  # darks beside the sky files (one a minute's name)
            write_ucalgary_pgm(folder, instrument, "gill", f"{day}T06:00:15.8256", 1, dark=True)
            write_ucalgary_pgm(folder, instrument, "gill", f"{day}T06:01", 1, dark=True)
    # another site's camera in REGO's day, and a README: never listed as gill's
    other = _folder(root, f"{REGO}/stream0/2018/04/03/fsmi_rego-653/ut06/")
    write_ucalgary_pgm(other, "rego", "fsmi", "2018-04-03T06:02", N, shape=SHAPE)
    (root / REGO.strip("/") / "stream0/2018/04/03/README").write_text("not a camera")
    # REGO's skymaps: an older and the one valid in April 2018, and a later one
    for day in ("20150101", "20180101", "20190101"):
        sky = ideal_skymap(
            "gill", 56.35, 265.3, instrument="rego", size=SHAPE, valid_from=f"{day[:4]}-01-01T00"
        )
        write_skymap(sky, _folder(root, f"{REGO}/skymap/gill/gill_{day}/"))
    return root


@pytest.fixture
def server(tree: Path) -> Iterator[FaultyServer]:
    srv = FaultyServer(tree).start()
    try:
        yield srv
    finally:
        srv.stop()


def _files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _names(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


# --------------------------------------------------------------------------- layouts
def test_layouts_are_ucalgary_s_tree() -> None:
    t = datetime(2018, 4, 3, 6)
    assert src.UCALGARY_LAYOUTS["rego"].base == (
        "https://data.phys.ucalgary.ca/sort_by_project/GO-Canada/REGO"
    )
    assert src.ucalgary_hour(t, "gill_rego-652", "rego") == "stream0/2018/04/03/gill_rego-652/ut06/"
    assert src.skymap_site("gill", "rego") == "skymap/gill/"  # REGO's folder: singular
    assert src.skymap_site("gill", "trex_nir") == "skymaps/gill/"
    assert src.UCALGARY_LAYOUTS["trex_blue"].base.endswith("/TREx/blueline")
    sky = {
        "rego": "20180403_0600_gill_rego-652_6300.pgm.gz",
        "trex_nir": "20220307_0600_gill_nir-216_8446.pgm",
        "trex_blue": "20220308_0600_gill_blue-814_full.pgm.gz",
        "trex_rgb": "20210205_0600_gill_rgb-04_full.h5",
        "themis": "20140310_0600_gill_themis19_full.pgm.gz",
    }
    dark = {
        "rego": "20180403_0600_gill_rego-652_6300_dark.pgm.gz",
        "trex_nir": "20220101_2329_gill_nir-216_8446_dark.pgm.gz",
        "trex_blue": "20240101_005115_825600_gill_blue-633_dark_full.pgm",
    }
    for instrument, name in sky.items():
        pattern = src.ucalgary_file_pattern("gill", instrument)
        assert src.is_sky_name(name, pattern), name
        assert src.camera_pattern("gill", instrument).fullmatch(f"gill_{name.split('_')[3]}")
        for other, other_name in sky.items():  # each instrument's pattern is its own
            assert bool(src.is_sky_name(other_name, pattern)) == (other == instrument)
    for instrument, name in dark.items():
        assert not src.is_sky_name(name, src.ucalgary_file_pattern("gill", instrument)), name
    assert src.skymap_file_pattern("gill", "20180101", "rego").fullmatch(
        "rego_skymap_gill_20180101-+_v01.sav"
    )


# --------------------------------------------------------------------------- fetch
@pytest.mark.parametrize("instrument", list(CASES))
def test_fetch_gets_the_sky_minutes_not_the_darks_and_a_rerun_asks_nothing(
    server: FaultyServer, tree: Path, tmp_path: Path, instrument: str
) -> None:
    base, hour, start, minutes = CASES[instrument]
    end = start[:11] + "06:05"
    got = fetch_asi(
        "GILL", instrument=instrument, start=start, end=end, out=tmp_path,
        base_urls=[server.url + base], **FAST,
    )  # fmt: skip
    rel = hour.removeprefix(base + "/")
    sky = sorted(p.name for p in (tree / hour.strip("/")).iterdir() if "dark" not in p.name)
    assert got.files == [tmp_path / rel / name for name in sky]
    for path in got.files:  # byte for byte the server's
        assert path.read_bytes() == (tree / hour.strip("/") / path.name).read_bytes()
    assert _files_under(tmp_path) == [rel + name for name in sky]  # no dark, no .part
    assert got.downloaded == len(minutes) and got.instrument == instrument
    assert got.code == f"gill_{instrument}" and got.source == "ucalgary"
    day = datetime.fromisoformat(start).replace(minute=0)
    missing = [day.replace(minute=m) for m in range(5) if f"06{m:02d}" not in minutes]
    assert got.missing == missing
    assert not [p for p, _, _ in server.log if "dark" in p]  # never asked for
    # a rerun of the minutes there asks the server for nothing at all
    n = len(server.log)
    again = fetch_asi(
        "gill", instrument=instrument, start=start, end=start[:11] + "06:02", out=tmp_path,
        base_urls=[server.url + base], **FAST,
    )  # fmt: skip
    assert again.files == got.files[:2] and again.downloaded == 0
    assert len(server.log) == n


def test_missing_minutes_are_reported_and_another_site_is_not_taken(
    server: FaultyServer, tmp_path: Path
) -> None:
    got = fetch_asi(
        "gill", instrument="rego", start="2018-04-03T06:00", end="2018-04-03T06:04",
        out=tmp_path, base_urls=[server.url + REGO], **FAST,
    )  # fmt: skip
    assert got.missing_text() == "2018-04-03 06:02 (1 minute)"  # fsmi has 06:02, gill not
    assert _names(got.files) == [
        "20180403_0600_gill_rego-652_6300.pgm.gz",
        "20180403_0601_gill_rego-652_6300.pgm.gz",
        "20180403_0603_gill_rego-652_6300.pgm.gz",
    ]
    # a day the server has nothing of: one line naming instrument, site and range
    with pytest.raises(FetchError, match="no ucalgary REGO file of station gill between"):
        fetch_asi(
            "gill", instrument="rego", start="2018-04-04T06:00", end="2018-04-04T06:04",
            out=tmp_path, base_urls=[server.url + REGO], **FAST,
        )  # fmt: skip


def test_the_imager_s_skymap_valid_at_the_start(
    server: FaultyServer, tree: Path, tmp_path: Path
) -> None:
    got = fetch_asi(
        "gill", instrument="rego", start="2018-04-03T06:00", end="2018-04-03T06:01",
        out=tmp_path, base_urls=[server.url + REGO], skymap=True, **FAST,
    )  # fmt: skip
    name = "skymap/gill/gill_20180101/rego_skymap_gill_20180101-+_v01.sav"
    assert got.skymap == tmp_path / name
    assert got.skymap.read_bytes() == (tree / REGO.strip("/") / name).read_bytes()
    request = AsiRequest(
        "gill", instrument="rego", start="2018-04-03T06:00", end="2018-04-03T06:01",
        out=tmp_path, base_urls=[server.url + REGO], skymap=True, timeout=3.0, retries=1,
    )  # fmt: skip
    assert request.sources() == [*got.files, got.skymap]


def test_a_cut_hdf5_minute_is_refused_and_fetched_again(
    server: FaultyServer, tree: Path, tmp_path: Path
) -> None:
    path = RGB_HOUR + "20210205_0600_gill_rgb-04_full.h5"
    whole = (tree / path.strip("/")).read_bytes()
    server.faults["body"][path] = whole[: len(whole) // 2]
    kwargs = dict(
        instrument="trex_rgb", start="2021-02-05T06:00", end="2021-02-05T06:01", out=tmp_path,
        base_urls=[server.url + RGB], **FAST,
    )  # fmt: skip
    with pytest.raises(FetchError, match="not whole"):
        fetch_asi("gill", **kwargs)  # type: ignore[arg-type]
    rel = RGB_HOUR.removeprefix(RGB + "/")
    assert _files_under(tmp_path) == [rel + "20210205_0600_gill_rgb-04_full.h5.refused-1"]
    del server.faults["body"][path]
    got = fetch_asi("gill", **kwargs)  # type: ignore[arg-type]
    assert got.files[0].read_bytes() == whole


# --------------------------------------------------------------------------- options
def test_options_are_checked_before_any_request(server: FaultyServer, tmp_path: Path) -> None:
    good = dict(start="2018-04-03T06:00", end="2018-04-03T07:00", out=tmp_path, timeout=3.0)
    cases = [
        (dict(instrument="spectrograph"), "instrument", "unknown instrument 'spectrograph'"),
        (dict(instrument="rego", source="berkeley"), "source", "from UCalgary only"),
        (dict(instrument="rego", station="gako"), "station", "unknown REGO site 'gako'"),
        (dict(instrument="trex_nir", station="gill_rego"), "station", "holds REGO frames"),
        (dict(instrument="rego", max_files=10), "end", "spans 60 minute files"),
    ]
    for extra, parameter, text in cases:
        station = str(extra.pop("station", "gill"))
        with pytest.raises(OptionError, match=text) as info:
            fetch_asi(station, base_urls=[server.url + REGO], **good, **extra)  # type: ignore[arg-type]
        assert info.value.parameter == parameter and "\n" not in str(info.value)
        with pytest.raises(OptionError, match=text):  # the request too, when made
            AsiRequest(station, **good, **extra)  # type: ignore[arg-type]
    assert "fetch asi --instrument rego --max-files 60" in str(info.value)
    assert server.log == [] and _files_under(tmp_path) == []


def test_the_themis_names_are_the_same_objects_and_default_to_themis() -> None:
    assert fetch_themis is fetch_asi
    assert ThemisFetch is oathcube.AsiFetch and oathcube.fetch_themis is oathcube.fetch_asi
    hour = AsiRequest("gako", start="2011-03-10T05", end="2011-03-10T06")
    assert (hour.instrument, hour.source, hour.code) == ("themis", "berkeley", "gako")
    rego = AsiRequest("gill_rego", instrument="rego", start="2018-04-03T06", end="2018-04-03T07")
    assert (rego.station, rego.source, rego.code) == ("gill", "ucalgary", "gill_rego")


# --------------------------------------------------------------------------- ingest
def _station(cube: Path, code: str) -> xr.Dataset:
    return xr.open_zarr(cube, group=f"stations/{code}")


def test_cli_ingest_fetches_a_rego_station_equal_to_ingesting_the_files(
    server: FaultyServer, tree: Path, tmp_path: Path, runner
) -> None:
    fetched = tmp_path / "rego"
    cube = tmp_path / "fetched.zarr"
    args = [
        "ingest", "--instrument", "rego", "--station", "gill", "--start", "2018-04-03T06:00",
        "--end", "2018-04-03T06:05", "--base-url", server.url + REGO, "--fetch-dir",
        str(fetched), "-o", str(cube), "--prep", '{"out_size": 16}', "--scheduler",
        "synchronous", "--timeout", "3", "--skymap",
    ]  # fmt: skip
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert f"gill_rego: {3 * N} frames appended" in out.output
    opened = oathcube.Cube.open(cube)
    assert opened.stations() == ["gill_rego"]
    # REGO's own skymap (skymap/, rego_skymap_...) went to the REGO station
    assert list(opened.group("stations/gill_rego/skymaps").group_keys()) == ["20180101T00"]
    # the same files ingested directly (the server's own, darks and all)
    direct = tmp_path / "direct.zarr"
    oathcube.ingest([tree / REGO_HOUR.strip("/")], direct, preparation=PREP, progress=False)
    got, want = _station(cube, "gill_rego"), _station(direct, "gill_rego")
    np.testing.assert_array_equal(got.pixels.values, want.pixels.values)
    np.testing.assert_array_equal(got.time.values, want.time.values)
    assert got.attrs["instrument"] == "rego" and got.time.size == 3 * N
    # again: nothing fetched, nothing appended; the station's form of the name works too
    n = len(server.log)
    again = [a if a != "gill" else "gill_rego" for a in args if a not in ("--instrument", "rego")]
    out = runner.invoke(app, again)
    assert out.exit_code == 0, out.output
    assert not [p for p, _, _ in server.log[n:] if p.endswith((".gz", ".sav"))]
    assert _station(cube, "gill_rego").time.size == 3 * N


def test_ingest_a_trex_nir_request_from_python(server: FaultyServer, tmp_path: Path) -> None:
    request = oathcube.AsiRequest(
        "gill", instrument="trex_nir", start="2022-03-07T06:00", end="2022-03-07T06:02",
        out=tmp_path / "nir", base_urls=[server.url + NIR], timeout=3.0, retries=1,
    )  # fmt: skip
    written = oathcube.ingest([], tmp_path / "c.zarr", fetch=request, preparation=PREP)
    assert written == {"gill_trex_nir": 2 * N}
    assert _station(tmp_path / "c.zarr", "gill_trex_nir").attrs["instrument"] == "trex_nir"


def test_cli_bad_instrument_or_source_is_one_line(
    server: FaultyServer, tmp_path: Path, runner
) -> None:
    base = ["--station", "gill", "--start", "2018-04-03T06", "--end", "2018-04-03T07",
            "--base-url", server.url + REGO]  # fmt: skip
    cases = [
        (["fetch", "asi", *base, "--instrument", "nope", "-o", str(tmp_path / "f")],
         "--instrument: unknown instrument 'nope'"),
        (["fetch", "asi", *base, "--instrument", "rego", "--source", "berkeley",
          "-o", str(tmp_path / "f")], "--source: REGO files are fetched from UCalgary only"),
        (["ingest", *base, "--instrument", "nope", "-o", str(tmp_path / "c.zarr")],
         "--instrument: unknown instrument 'nope'"),
        (["ingest", "--instrument", "rego", "-o", str(tmp_path / "c.zarr")],
         "--station/--instrument"),
        (["ingest", *base[:1], "gill_rego", *base[2:], "--instrument", "trex_nir",
          "-o", str(tmp_path / "c.zarr")], "holds rego frames, not trex_nir"),
    ]  # fmt: skip
    for args, text in cases:
        out = runner.invoke(app, args)
        assert out.exit_code == 1, out.output
        errors = [line for line in out.output.splitlines() if line.startswith("oathcube: error")]
        assert len(errors) == 1 and text in errors[0], out.output
        assert "Traceback" not in out.output
    assert server.log == [] and not (tmp_path / "c.zarr").exists()


def test_cli_fetch_asi(server: FaultyServer, tmp_path: Path, runner) -> None:
    out = runner.invoke(
        app,
        ["fetch", "asi", "--instrument", "trex_blue", "--station", "gill", "--start",
         "2022-03-08T06:00", "--end", "2022-03-08T06:03", "--base-url", server.url + BLUE,
         "-o", str(tmp_path), "--timeout", "3"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "gill_trex_blue: 2 files (2 downloaded)" in out.output
    assert "not on the server: 2022-03-08 06:02 (1 minute)" in out.output
