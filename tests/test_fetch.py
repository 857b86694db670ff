"""Fetching: OATH tarball, checkpoint and THEMIS files from a loopback server with faults.

No test needs the network: ``tests/http_server.py`` serves, on 127.0.0.1, the real THEMIS
files of ``../shared/data/themis`` under their real names in the real Berkeley and
UCalgary folder layouts, a small SYNTHETIC archive in the OATH layout as
``oath_v1.1_20181026.tgz`` with its ``SHA256SUM_v1.1``, and a stand-in checkpoint
tarball; faults are switched on per path.  Client timeouts are a few seconds at most.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from http_server import FaultyServer, closed_port_url, etag_of

from oathcube.cli import app
from oathcube.errors import CheckpointError, FetchError, OptionError
from oathcube.fetch import fetch_checkpoint, fetch_oath, fetch_themis
from oathcube.fetch.http import Fetcher, listing_names, safe_path
from oathcube.synthetic.themis import write_cdf

CDF = "thg_l1_asf_gako_2011010617_v01.cdf"
PGM_0600 = "20140310_0600_gill_themis19_full.pgm.gz"
PGM_0605 = "20140310_0605_gill_themis19_full.pgm"
SKYMAP = "themis_skymap_gako_20110305-+_vXX.sav"
BERKELEY = "/data/themis"
CDF_PATH = f"{BERKELEY}/thg/l1/asi/gako/2011/01/{CDF}"
UCALGARY = "/sort_by_project/THEMIS/asi"
GILL_HOUR = f"{UCALGARY}/stream0/2014/03/10/gill_themis19/ut06/"
OATH = "/plasma/oath"
MODELS = "/models"
FAST = {"timeout": 3.0, "retries": 2, "progress": False}


def _link(target: Path, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def _tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path.read_bytes()


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory, shared: Path, _synth_template: Path) -> Path:
    """The servers' trees: real THEMIS files in the real layouts, OATH and model tarballs."""
    themis = shared / "data" / "themis"
    root = tmp_path_factory.mktemp("site")
    _link(themis / CDF, root / CDF_PATH.lstrip("/"))
    # a SYNTHETIC hour (oathcube.synthetic.themis) after the real skymap's start of validity
    (root / "data/themis/thg/l1/asi/gako/2011/03").mkdir()
    write_cdf(root / "data/themis/thg/l1/asi/gako/2011/03", "gako", "2011-03-10T05:00", 5)
    # the same tree under another path: a mirror
    _link(root / "data" / "themis", root / "mirror" / "themis")
    _link(themis / PGM_0600, root / GILL_HOUR.lstrip("/") / PGM_0600)
    _link(themis / PGM_0605, root / GILL_HOUR.lstrip("/") / PGM_0605)
    sky = root / UCALGARY.lstrip("/") / "skymaps" / "gako"
    _link(themis / SKYMAP, sky / "gako_20110305" / "themis_skymap_gako_20110305-+_v02.sav")
    for date in ("20090101", "20130101"):  # older and later skymaps (stand-ins: a fetched
        # .sav must read as an IDL save file, so each is the real one under another name)
        _link(themis / SKYMAP, sky / f"gako_{date}" / f"themis_skymap_gako_{date}-+_v01.sav")
    (sky / "gako_20110305" / "themis_skymap_gako_20110305-+_v01.sav").write_bytes(b"old")
    oath = root / OATH.lstrip("/")
    oath.mkdir(parents=True)
    with tarfile.open(oath / "oath_v1.1_20181026.tgz", "w:gz") as tar:
        tar.add(_synth_template, arcname="oath")
    digest = hashlib.sha256((oath / "oath_v1.1_20181026.tgz").read_bytes()).hexdigest()
    (oath / "SHA256SUM_v1.1").write_text(f"{digest}  oath_v1.1_20181026.tgz\n")
    models = root / MODELS.lstrip("/")
    models.mkdir()
    _tar(models / "inception_v4_2016_09_09.tar.gz", {"inception_v4.ckpt": b"CKPT" * 5000})
    return root


@pytest.fixture
def server(site: Path) -> Iterator[FaultyServer]:
    srv = FaultyServer(site).start()
    try:
        yield srv
    finally:
        srv.stop()


def _cdf_bytes(shared: Path) -> bytes:
    return (shared / "data" / "themis" / CDF).read_bytes()


def _files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- Berkeley
def test_berkeley_hours_missing_hours_are_reported(
    server: FaultyServer, shared: Path, tmp_path: Path
) -> None:
    out = tmp_path / "mirror"
    got = fetch_themis(
        "GAKO", start="2011-01-06T16:30", end="2011-01-06T18:10", out=out,
        base_urls=[server.url + BERKELEY], timeout=3.0, retries=2,
    )  # fmt: skip
    assert got.files == [out / CDF_PATH.removeprefix(BERKELEY + "/")]
    assert got.files[0].read_bytes() == _cdf_bytes(shared)
    assert got.missing == [datetime(2011, 1, 6, 16), datetime(2011, 1, 6, 18)]
    assert got.missing_text() == "2011-01-06 16:00 (1 hour), 2011-01-06 18:00 (1 hour)"
    assert got.downloaded == 1
    assert _files_under(out) == ["thg/l1/asi/gako/2011/01/" + CDF]  # no .part, no .lock
    # A rerun fetches only what is missing: the hour already there is not asked for again.
    n = len(server.requests_for(CDF_PATH))
    again = fetch_themis(
        "gako", start="2011-01-06T16:30", end="2011-01-06T18:10", out=out,
        base_urls=[server.url + BERKELEY], timeout=3.0, retries=2,
    )  # fmt: skip
    assert again.files == got.files and again.downloaded == 0
    assert len(server.requests_for(CDF_PATH)) == n


def test_nothing_on_the_server_is_an_error(server: FaultyServer, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="no berkeley file of station gako between"):
        fetch_themis(
            "gako", start="2012-01-06T16:00", end="2012-01-06T18:00", out=tmp_path,
            base_urls=[server.url + BERKELEY], **FAST,
        )  # fmt: skip


def test_dropped_connection_is_resumed(server: FaultyServer, shared: Path, tmp_path: Path) -> None:
    server.faults["drop"][CDF_PATH] = [1_000_000]
    got = fetch_themis(
        "gako", start="2011-01-06T17:00", end="2011-01-06T18:00", out=tmp_path,
        base_urls=[server.url + BERKELEY], timeout=3.0, retries=2,
    )  # fmt: skip
    assert got.files[0].read_bytes() == _cdf_bytes(shared)
    log = server.requests_for(CDF_PATH)
    assert log == [(CDF_PATH, None, 200), (CDF_PATH, "bytes=1000000-", 206)]


def _sidecar(part: Path, url: str, etag: str | None, length: int | None) -> None:
    """What a run writes beside its .part: the URL and validator its bytes came with."""
    info = {"url": url, "etag": etag, "last_modified": None, "length": length}
    (part.parent / (part.name + ".json")).write_text(json.dumps(info))


@pytest.mark.parametrize("sidecar", ["same version", "none", "another version"])
def test_a_part_left_by_a_killed_run_is_resumed_only_when_its_version_is_known(
    server: FaultyServer, shared: Path, tmp_path: Path, sidecar: str
) -> None:
    data = _cdf_bytes(shared)
    dest = tmp_path / CDF_PATH.removeprefix(BERKELEY + "/")
    dest.parent.mkdir(parents=True)
    part = dest.parent / (CDF + ".part")
    part.write_bytes(data[:700_000])
    url = server.url + CDF_PATH
    if sidecar == "same version":
        _sidecar(part, url, etag_of(data), len(data))
    elif sidecar == "another version":
        _sidecar(part, url, etag_of(b"the file before it changed"), len(data))
    fetch_themis(
        "gako", start="2011-01-06T17:00", end="2011-01-06T17:30", out=tmp_path,
        base_urls=[server.url + BERKELEY], timeout=3.0, retries=2,
    )  # fmt: skip
    assert dest.read_bytes() == data
    asked = server.requests_for(CDF_PATH)
    if sidecar == "same version":
        assert asked == [(CDF_PATH, "bytes=700000-", 206)]
        assert server.if_range == [(CDF_PATH, etag_of(data))]
    elif sidecar == "none":  # bytes of an unknown version are never resumed
        assert asked == [(CDF_PATH, None, 200)]
    else:  # If-Range names the old version: the server sends the whole new file
        assert asked == [(CDF_PATH, "bytes=700000-", 200)]
    assert _files_under(tmp_path) == ["thg/l1/asi/gako/2011/01/" + CDF]  # no .part, no .json


def _changed_cdf(tmp_path: Path) -> bytes:
    """Another version of the Gakona 17 UT file: same name, other (SYNTHETIC) frames."""
    import shutil

    folder = tmp_path / "changed"
    folder.mkdir()
    data = write_cdf(folder, "gako", "2011-01-06T17:00", 40, seed=9).read_bytes()
    shutil.rmtree(folder)  # only its bytes are wanted, served in place of the real file
    return data


@pytest.mark.parametrize("server_side", ["unchanged", "changed", "changed, If-Range ignored"])
def test_a_fetch_killed_with_sigkill_resumes_only_the_same_file(
    server: FaultyServer, shared: Path, tmp_path: Path, server_side: str
) -> None:
    # A real process, killed with SIGKILL in the middle of the body: the file is not
    # there under its name, only its .part and the validator it came with; the rerun
    # resumes it with If-Range, and where the file changed on the server meanwhile, the
    # result is the new file, never the old prefix spliced onto the new file's tail.
    import signal
    import time

    data = _cdf_bytes(shared)
    server.faults["trickle"][CDF_PATH] = (100_000, 0.05)  # ~1.2 s for the whole file
    dest = tmp_path / CDF_PATH.removeprefix(BERKELEY + "/")
    part = dest.parent / (CDF + ".part")
    args = [sys.executable, "-m", "oathcube.cli", "fetch", "themis", "--station", "gako"]
    args += ["--start", "2011-01-06T17:00", "--end", "2011-01-06T17:30", "-o", str(tmp_path)]
    args += ["--base-url", server.url + BERKELEY, "--timeout", "5"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (part.exists() and part.stat().st_size >= 300_000):
            assert proc.poll() is None, "the fetch ended before it could be killed"
            assert time.monotonic() < deadline, "no partial download within 60 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not dest.exists() and 0 < part.stat().st_size < len(data)
    kept = part.stat().st_size
    side = json.loads((part.parent / (part.name + ".json")).read_text())
    assert side["etag"] == etag_of(data) and side["length"] == len(data)
    del server.faults["trickle"][CDF_PATH]
    want = data
    if server_side != "unchanged":
        want = server.faults["body"][CDF_PATH] = _changed_cdf(tmp_path)
        assert len(want) > kept and want[:kept] != data[:kept]
    if server_side == "changed, If-Range ignored":
        server.faults["ignore_if_range"].add(CDF_PATH)
    n = len(server.log)
    fetch_themis(
        "gako", start="2011-01-06T17:00", end="2011-01-06T17:30", out=tmp_path,
        base_urls=[server.url + BERKELEY], timeout=3.0, retries=2,
    )  # fmt: skip
    assert dest.read_bytes() == want
    assert _files_under(tmp_path) == ["thg/l1/asi/gako/2011/01/" + CDF]
    asked = server.log[n:]
    assert server.if_range[n] == (CDF_PATH, etag_of(data))  # the version the prefix is of
    if server_side == "unchanged":
        assert asked == [(CDF_PATH, f"bytes={kept}-", 206)]
    elif server_side == "changed":
        assert asked == [(CDF_PATH, f"bytes={kept}-", 200)]
    else:  # a 206 with another ETag is not appended: the whole file again
        assert asked == [(CDF_PATH, f"bytes={kept}-", 206), (CDF_PATH, None, 200)]


def test_cli_a_body_cut_short_without_a_length_is_never_published(
    server: FaultyServer, shared: Path, tmp_path: Path, runner
) -> None:
    # No Content-Length, and the connection closed after 2,000,000 of 2,341,938 bytes:
    # the body just ends.  Only the CDF itself can tell that it is cut short.
    data = _cdf_bytes(shared)
    server.faults["no_length"].add(CDF_PATH)
    server.faults["drop"][CDF_PATH] = [2_000_000]
    args = ["fetch", "themis", "--station", "gako", "--start", "2011-01-06T17", "--end",
            "2011-01-06T18", "--base-url", server.url + BERKELEY, "-o", str(tmp_path),
            "--timeout", "3", "--retries", "0"]  # fmt: skip
    error = _error_line(runner.invoke(app, args))
    folder = "thg/l1/asi/gako/2011/01/"
    assert f"{CDF}: not whole" in error and f"{CDF}.refused-1" in error
    # nothing under its name: what came is kept aside, no .part or sidecar is left
    assert _files_under(tmp_path) == [folder + CDF + ".refused-1"]
    assert (tmp_path / folder / (CDF + ".refused-1")).read_bytes() == data[:2_000_000]
    # the rerun downloads it again, whole
    server.faults["no_length"].discard(CDF_PATH)
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "gako: 1 files (1 downloaded)" in out.output
    assert (tmp_path / folder / CDF).read_bytes() == data
    from oathcube.archive.themis_cdf import read_cdf

    assert read_cdf(tmp_path / folder / CDF).frames.shape == (23, 256, 256)


@pytest.mark.parametrize("name", ["pgm.gz", "pgm", "sav", "tar.gz"])
def test_each_kind_of_file_cut_short_is_refused(
    server: FaultyServer, shared: Path, site: Path, tmp_path: Path, name: str
) -> None:
    path = {
        "pgm.gz": GILL_HOUR + PGM_0600,
        "pgm": GILL_HOUR + PGM_0605,
        "sav": f"{UCALGARY}/skymaps/gako/gako_20110305/themis_skymap_gako_20110305-+_v02.sav",
        "tar.gz": f"{MODELS}/inception_v4_2016_09_09.tar.gz",
    }[name]
    data = (site / path.lstrip("/")).read_bytes()
    server.faults["no_length"].add(path)
    server.faults["drop"][path] = [len(data) - 1000]
    fetcher = Fetcher([server.url + "/"], **FAST)
    rel = path.lstrip("/")
    with pytest.raises(FetchError, match="not whole"):
        fetcher.download(rel, tmp_path, max_bytes=10**8)
    dest = tmp_path / rel
    assert _files_under(tmp_path) == [rel + ".refused-1"]
    # whole, the same file passes
    assert fetcher.download(rel, tmp_path, max_bytes=10**8).path == dest
    assert dest.read_bytes() == data


def test_a_server_that_ignores_range_restarts_the_file(
    server: FaultyServer, shared: Path, tmp_path: Path
) -> None:
    data = _cdf_bytes(shared)
    fetcher = Fetcher([server.url + BERKELEY + "/"], **FAST)
    dest = tmp_path / "thg/l1/asi/gako/2011/01" / CDF
    dest.parent.mkdir(parents=True)
    part = dest.parent / (CDF + ".part")
    part.write_bytes(b"X" * 2_500_000)  # longer than the file
    _sidecar(part, server.url + CDF_PATH, etag_of(data), None)
    got = fetcher.download(CDF_PATH.removeprefix(BERKELEY + "/"), tmp_path, max_bytes=10**8)
    assert got.path == dest and dest.read_bytes() == data
    assert [s for _, _, s in server.requests_for(CDF_PATH)] == [416, 200]


def test_5xx_is_retried(server: FaultyServer, shared: Path, tmp_path: Path) -> None:
    server.faults["status"][CDF_PATH] = [503, 502]
    got = fetch_themis(
        "gako", start="2011-01-06T17:00", end="2011-01-06T18:00", out=tmp_path,
        base_urls=[server.url + BERKELEY], timeout=3.0, retries=2,
    )  # fmt: skip
    assert got.files[0].read_bytes() == _cdf_bytes(shared)
    assert [s for _, _, s in server.requests_for(CDF_PATH)] == [503, 502, 200]


def test_redirect_is_followed_and_the_name_is_the_layouts(
    server: FaultyServer, shared: Path, tmp_path: Path
) -> None:
    server.faults["redirect"][CDF_PATH] = server.url + "/mirror/themis" + CDF_PATH[len(BERKELEY) :]
    got = fetch_themis(
        "gako", start="2011-01-06T17:00", end="2011-01-06T18:00", out=tmp_path,
        base_urls=[server.url + BERKELEY], timeout=3.0, retries=2,
    )  # fmt: skip
    assert got.files == [tmp_path / "thg/l1/asi/gako/2011/01" / CDF]
    assert got.files[0].read_bytes() == _cdf_bytes(shared)


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x.cdf"])
def test_redirect_to_a_non_http_url_is_refused(
    server: FaultyServer, tmp_path: Path, target: str
) -> None:
    server.faults["redirect"][CDF_PATH] = target
    with pytest.raises(FetchError, match="only http"):
        fetch_themis(
            "gako", start="2011-01-06T17:00", end="2011-01-06T18:00", out=tmp_path,
            base_urls=[server.url + BERKELEY], **FAST,
        )  # fmt: skip
    assert _files_under(tmp_path) == []


def test_slow_server_times_out_then_the_mirror_is_used(
    server: FaultyServer, shared: Path, tmp_path: Path
) -> None:
    server.faults["slow"][CDF_PATH] = 1.5
    fast = {"timeout": 0.3, "retries": 1, "progress": False}
    with pytest.raises(FetchError, match=r"cannot reach .*gako_2011010617_v01.cdf .no answer"):
        fetch_themis(
            "gako", start="2011-01-06T17:00", end="2011-01-06T18:00", out=tmp_path,
            base_urls=[server.url + BERKELEY], **fast,
        )  # fmt: skip
    got = fetch_themis(
        "gako", start="2011-01-06T17:00", end="2011-01-06T18:00", out=tmp_path,
        base_urls=[server.url + BERKELEY, server.url + "/mirror/themis"], **fast,
    )  # fmt: skip
    assert got.files[0].read_bytes() == _cdf_bytes(shared)


def test_two_fetches_of_one_file_at_once(
    server: FaultyServer, shared: Path, tmp_path: Path
) -> None:
    server.faults["slow"][CDF_PATH] = 0.3  # both are in flight at once
    results: list[object] = []

    def fetch() -> None:
        try:
            results.append(
                fetch_themis(
                    "gako",
                    start="2011-01-06T17:00",
                    end="2011-01-06T18:00",
                    out=tmp_path,
                    base_urls=[server.url + BERKELEY],
                    **FAST,
                )  # fmt: skip
            )
        except Exception as err:  # reported below
            results.append(err)

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert all(not isinstance(r, Exception) for r in results), results
    assert sum(r.downloaded for r in results) == 1  # type: ignore[attr-defined]
    assert len(server.requests_for(CDF_PATH)) == 1
    assert (tmp_path / "thg/l1/asi/gako/2011/01" / CDF).read_bytes() == _cdf_bytes(shared)
    assert _files_under(tmp_path) == ["thg/l1/asi/gako/2011/01/" + CDF]


def test_two_processes_fetching_one_file(
    server: FaultyServer, shared: Path, tmp_path: Path
) -> None:
    server.faults["slow"][CDF_PATH] = 1.0
    code = (
        "import sys; from oathcube.fetch import fetch_themis; "
        "r = fetch_themis('gako', start='2011-01-06T17:00', end='2011-01-06T18:00', "
        "out=sys.argv[1], base_urls=[sys.argv[2]], timeout=5, retries=1); print(r.downloaded)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path), server.url + BERKELEY],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert sorted(outs) == ["0", "1"]  # one downloaded, the other found it complete
    assert len(server.requests_for(CDF_PATH)) == 1
    assert (tmp_path / "thg/l1/asi/gako/2011/01" / CDF).read_bytes() == _cdf_bytes(shared)
    assert _files_under(tmp_path) == ["thg/l1/asi/gako/2011/01/" + CDF]


def test_body_larger_than_announced(server: FaultyServer, shared: Path, tmp_path: Path) -> None:
    data = _cdf_bytes(shared)
    rel = CDF_PATH.removeprefix(BERKELEY + "/")
    fetcher = Fetcher([server.url + BERKELEY + "/"], **FAST)
    # Content-Length says the file's size and junk follows: it is never read (cut off).
    server.faults["extra"][CDF_PATH] = b"JUNK" * 1000
    assert fetcher.download(rel, tmp_path / "a", max_bytes=10**8).path.read_bytes() == data
    # No length announced, and more than the most this kind of file may have: refused.
    server.faults["no_length"].add(CDF_PATH)
    with pytest.raises(FetchError, match=f"more than the {len(data)} bytes"):
        fetcher.download(rel, tmp_path / "b", max_bytes=len(data))
    assert _files_under(tmp_path / "b") == []
    # An announced length above the limit is refused before the body is read.
    server.faults["no_length"].discard(CDF_PATH)
    with pytest.raises(FetchError, match="announces"):
        fetcher.download(rel, tmp_path / "c", max_bytes=1000)
    assert _files_under(tmp_path / "c") == []


def test_unreachable_base_then_mirror(server: FaultyServer, shared: Path, tmp_path: Path) -> None:
    got = fetch_themis(
        "gako", start="2011-01-06T17:00", end="2011-01-06T18:00", out=tmp_path,
        base_urls=[closed_port_url() + "/data/themis", server.url + BERKELEY],
        timeout=2, retries=0, progress=False,
    )  # fmt: skip
    assert got.files[0].read_bytes() == _cdf_bytes(shared)


# --------------------------------------------------------------------------- UCalgary
def test_ucalgary_minutes_and_missing_minutes(
    server: FaultyServer, shared: Path, tmp_path: Path
) -> None:
    got = fetch_themis(
        "gill", start="2014-03-10T06:00", end="2014-03-10T06:06", source="ucalgary", out=tmp_path,
        base_urls=[server.url + UCALGARY], **FAST,
    )  # fmt: skip
    hour = tmp_path / "stream0/2014/03/10/gill_themis19/ut06"
    assert got.files == [hour / PGM_0600, hour / PGM_0605]
    assert (hour / PGM_0600).read_bytes() == (shared / "data/themis" / PGM_0600).read_bytes()
    assert got.missing_text() == "2014-03-10 06:01 to 2014-03-10 06:04 (4 minutes)"
    # a rerun of the same minutes asks the server for nothing at all
    n = len(server.log)
    fetch_themis(
        "gill", start="2014-03-10T06:00", end="2014-03-10T06:01", source="ucalgary", out=tmp_path,
        base_urls=[server.url + UCALGARY], **FAST,
    )  # fmt: skip
    assert len(server.log) == n


def test_listing_names_never_leave_the_output_folder(
    server: FaultyServer, shared: Path, tmp_path: Path
) -> None:
    day = f"{UCALGARY}/stream0/2014/03/10/"
    server.faults["listing_extra"][day] = [
        "../../x/",
        "/etc/",
        "gill_themis19%2F..%2F..%2Fx/",
        "http://evil.example/gill_themis20/",
        "gill_themis21/../../../x/",
        "..%2F..%2Fgill_themis22/",
    ]
    server.faults["listing_extra"][GILL_HOUR] = ["../../../../x.pgm.gz", "/etc/passwd"]
    out = tmp_path / "out"
    got = fetch_themis(
        "gill", start="2014-03-10T06:00", end="2014-03-10T06:06", source="ucalgary", out=out,
        base_urls=[server.url + UCALGARY], **FAST,
    )  # fmt: skip
    assert len(got.files) == 2
    assert _files_under(tmp_path) == [
        f"out/stream0/2014/03/10/gill_themis19/ut06/{PGM_0600}",
        f"out/stream0/2014/03/10/gill_themis19/ut06/{PGM_0605}",
    ]
    # the parser itself: only direct children, by name
    url = "http://h/a/b/"
    html = "".join(
        f'<a href="{h}">' for h in [*server.faults["listing_extra"][day], "ok/", "f.cdf"]
    )
    assert listing_names(html, url) == ["ok", "f.cdf"]
    for rel in ("../x", "/etc/passwd", "a/../../x", "a\\b", "", "a//b", "./a"):
        with pytest.raises(FetchError, match="leave the output folder"):
            safe_path(tmp_path, rel)


def test_skymap_newest_valid_at_start(server: FaultyServer, shared: Path, tmp_path: Path) -> None:
    kwargs = dict(out=tmp_path, base_urls=[server.url + BERKELEY], **FAST)
    sky = [server.url + UCALGARY]
    # 2011-01-06: the 2011-03-05 skymap is not valid yet; the 2009 one is.
    early = fetch_themis(
        "gako",
        start="2011-01-06T17:00",
        end="2011-01-06T18:00",
        skymap=True,
        skymap_base_urls=sky,
        **kwargs,
    )
    sky_dir = tmp_path / "skymaps/gako/gako_20090101"
    assert early.skymap == sky_dir / "themis_skymap_gako_20090101-+_v01.sav"
    # later: the newest folder up to the start, and its highest version
    from oathcube.fetch.imagers import _fetch_skymap

    fetcher = Fetcher([server.url + UCALGARY + "/"], **FAST)
    path = _fetch_skymap(fetcher, tmp_path, "gako", datetime(2012, 6, 1))
    assert path.name == "themis_skymap_gako_20110305-+_v02.sav"
    assert path.read_bytes() == (shared / "data/themis" / SKYMAP).read_bytes()


def test_a_request_s_sources_are_the_files_then_the_skymap(
    server: FaultyServer, shared: Path, tmp_path: Path
) -> None:
    from oathcube.fetch import AsiRequest

    kwargs = dict(out=tmp_path, base_urls=[server.url + BERKELEY], timeout=3.0, retries=2)
    paths = AsiRequest(
        "gako", start="2011-03-10T05:10", end="2011-03-10T05:20", skymap=True,
        skymap_base_urls=[server.url + UCALGARY], **kwargs,
    ).sources()  # fmt: skip
    sky = tmp_path / "skymaps/gako/gako_20110305/themis_skymap_gako_20110305-+_v02.sav"
    assert paths == [tmp_path / "thg/l1/asi/gako/2011/03/thg_l1_asf_gako_2011031005_v01.cdf", sky]
    # without a skymap: the files alone; nothing is asked for again
    n = len(server.log)
    assert AsiRequest(
        "gako", start="2011-03-10T05:10", end="2011-03-10T05:20", **kwargs
    ).sources() == paths[:1]  # fmt: skip
    assert not [p for p, _, _ in server.log[n:] if p.endswith(".cdf")]


def test_ingest_fetches_what_a_request_names_then_ingests_it(
    server: FaultyServer, tmp_path: Path
) -> None:
    import oathcube

    hour = oathcube.AsiRequest(
        "GAKO", start="2011-03-10T05:10", end="2011-03-10T05:20", out=tmp_path / "raw",
        base_urls=[server.url + BERKELEY], timeout=3.0, retries=2,
    )  # fmt: skip
    assert hour.station == "gako"
    written = oathcube.ingest([], tmp_path / "c.zarr", fetch=hour)
    assert sum(written.values()) > 0
    times = oathcube.Cube.open(tmp_path / "c.zarr").times("gako")
    assert times.size == sum(written.values())
    # A bad request fails when made, before any cube or request
    n = len(server.log)
    with pytest.raises(OptionError):
        oathcube.AsiRequest("gako", start="2011-03-10T06", end="2011-03-10T05")
    with pytest.raises(OptionError):
        oathcube.AsiRequest("zzzz", start="2011-03-10T05", end="2011-03-10T06")
    assert len(server.log) == n and not (tmp_path / "d.zarr").exists()


def test_library_calls_take_times_by_keyword_and_draw_no_bar() -> None:
    import inspect

    import oathcube.fetch as fetch
    from oathcube.fetch import AsiRequest

    for func in (fetch_themis, AsiRequest):
        params = inspect.signature(func).parameters
        assert params["start"].kind is inspect.Parameter.KEYWORD_ONLY, func
        assert params["end"].kind is inspect.Parameter.KEYWORD_ONLY, func
    with pytest.raises(TypeError):
        fetch_themis("gako", "2011-01-06T17:00", "2011-01-06T18:00")  # type: ignore[misc]
    for func in (fetch_oath, fetch_checkpoint, fetch_themis, Fetcher):
        assert inspect.signature(func).parameters["progress"].default is False, func
    # the package re-exports what its modules define
    for name in fetch.__all__:
        assert getattr(fetch, name) is not None, name


# --------------------------------------------------------------------------- OATH
def test_oath_tarball_verified_and_built(
    server: FaultyServer, site: Path, tmp_path: Path, runner
) -> None:
    path = fetch_oath(tmp_path / "dl", base_urls=[server.url + OATH], **FAST)
    assert path.name == "oath_v1.1_20181026.tgz"
    assert path.read_bytes() == (site / OATH.lstrip("/") / path.name).read_bytes()
    out = runner.invoke(app, ["build", str(path), "-o", str(tmp_path / "oath.zarr")])
    assert out.exit_code == 0, out.output
    # a rerun checks the file against the sum and downloads nothing
    n = len(server.log)
    assert fetch_oath(tmp_path / "dl", base_urls=[server.url + OATH], **FAST) == path
    assert len(server.log) == n


def test_oath_tarball_failing_its_checksum_is_refused(server: FaultyServer, tmp_path: Path) -> None:
    # Not even a gzip stream: the tarball is at fault, the sums file stays trusted.
    server.faults["body"][f"{OATH}/oath_v1.1_20181026.tgz"] = b"not the tarball" * 1000
    with pytest.raises(FetchError, match=r"not whole \(cut short or corrupt\): Not a gzipped file"):
        fetch_oath(tmp_path, base_urls=[server.url + OATH], **FAST)
    # what was refused is kept aside, never under the name a rerun trusts
    assert _files_under(tmp_path) == ["SHA256SUM_v1.1", "oath_v1.1_20181026.tgz.refused-1"]
    assert (tmp_path / "oath_v1.1_20181026.tgz.refused-1").read_bytes() == b"not the tarball" * 1000
    # a file already there that fails the sum is not ours: refused, and kept
    (tmp_path / "oath_v1.1_20181026.tgz").write_bytes(b"mine")
    with pytest.raises(FetchError, match="move it away"):
        fetch_oath(tmp_path, base_urls=[server.url + OATH], **FAST)
    assert (tmp_path / "oath_v1.1_20181026.tgz").read_bytes() == b"mine"
    # ... and the sums file, which no download contradicted, stays trusted where it is
    assert "SHA256SUM_v1.1" in _files_under(tmp_path)
    assert "SHA256SUM_v1.1.refused-1" not in _files_under(tmp_path)


def _error_line(out: Any) -> str:
    """The one ``oathcube: error:`` line of a CLI run that failed (and no traceback)."""
    assert out.exit_code == 1, out.output
    assert "Traceback" not in out.output
    errors = [line for line in out.output.splitlines() if line.startswith("oathcube: error: ")]
    assert len(errors) == 1, out.output
    return errors[0]


@pytest.mark.parametrize(
    "sums",
    [
        "<html><body><h1>Log in</h1><form action=/login></form></body></html>\n",
        "0" * 64 + "  oath_v1.0_20170101.tgz\n" + "1" * 64 + "  README\n",
        "0" * 64 + "  oath_v1.1_20181026.tgz\n",  # a well-formed but wrong sum
    ],
    ids=["html login page", "other names only", "wrong sum"],
)
def test_cli_a_refused_sums_file_is_not_kept_and_a_rerun_fetches_it_again(
    server: FaultyServer, site: Path, tmp_path: Path, runner, sums: str
) -> None:
    sums_path = f"{OATH}/SHA256SUM_v1.1"
    tarball = site / OATH.lstrip("/") / "oath_v1.1_20181026.tgz"
    server.faults["body"][sums_path] = sums.encode()
    args = ["fetch", "oath", "--base-url", server.url + OATH, "-o", str(tmp_path), "--retries", "0"]
    error = _error_line(runner.invoke(app, args))
    # Neither the refused sums file nor a tarball checked against it keeps its name.
    files = _files_under(tmp_path)
    assert "SHA256SUM_v1.1" not in files and "oath_v1.1_20181026.tgz" not in files
    assert (tmp_path / "SHA256SUM_v1.1.refused-1").read_text() == sums
    if sums.startswith("0" * 64 + "  oath_v1.1"):
        # The tarball was whole and is kept aside too: the two disagree, which is wrong
        # cannot be told, and the rerun fetches both again.
        assert files == ["SHA256SUM_v1.1.refused-1", "oath_v1.1_20181026.tgz.refused-1"]
        assert (tmp_path / "oath_v1.1_20181026.tgz.refused-1").read_bytes() == tarball.read_bytes()
        assert "SHA256SUM_v1.1 moved aside to SHA256SUM_v1.1.refused-1" in error
    else:  # refused before the tarball was asked for
        assert files == ["SHA256SUM_v1.1.refused-1"]
        assert "oath_v1.1_20181026.tgz is not listed" in error
        assert not server.requests_for(f"{OATH}/oath_v1.1_20181026.tgz")
    assert "a rerun downloads it again" in error
    # The server is put right: the rerun asks for the sums again, and the tarball passes.
    del server.faults["body"][sums_path]
    n = len(server.requests_for(sums_path))
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert len(server.requests_for(sums_path)) == n + 1
    assert (tmp_path / "oath_v1.1_20181026.tgz").read_bytes() == tarball.read_bytes()


# --------------------------------------------------------------------------- checkpoint
def test_checkpoint_fetched_unpacked_and_found(
    server: FaultyServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oathcube.features.inception_v4 import resolve_checkpoint

    monkeypatch.setenv("OATHCUBE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("OATHCUBE_INCEPTION_V4_CHECKPOINT", raising=False)
    with pytest.raises(CheckpointError, match="oathcube fetch checkpoint"):
        resolve_checkpoint(None)
    ckpt = fetch_checkpoint(base_urls=[server.url + MODELS], **FAST)
    assert ckpt == tmp_path / "data" / "inception_v4" / "inception_v4.ckpt"
    assert ckpt.read_bytes() == b"CKPT" * 5000
    record = json.loads((ckpt.parent / "inception_v4.json").read_text())
    assert record["checkpoint_sha256"] == hashlib.sha256(b"CKPT" * 5000).hexdigest()
    assert record["url"] == f"{server.url}{MODELS}/inception_v4_2016_09_09.tar.gz"
    assert resolve_checkpoint(None) == str(ckpt)
    assert resolve_checkpoint("/else/x.ckpt") == "/else/x.ckpt"  # given wins
    # a rerun asks nothing; a checkpoint changed since is refused, and kept
    n = len(server.log)
    assert fetch_checkpoint(base_urls=[server.url + MODELS], **FAST) == ckpt
    assert len(server.log) == n
    ckpt.write_bytes(b"changed")
    with pytest.raises(FetchError, match="recorded when it was fetched"):
        fetch_checkpoint(base_urls=[server.url + MODELS], **FAST)
    assert ckpt.read_bytes() == b"changed"


@pytest.mark.parametrize(
    ("members", "links", "message"),
    [
        ({"../inception_v4.ckpt": b"x"}, None, "outside the archive"),
        ({"/tmp/inception_v4.ckpt": b"x"}, None, "outside the archive"),
        ({"a": b"x"}, {"inception_v4.ckpt": "/etc/passwd"}, "link"),
        ({"README": b"x"}, None, "no inception_v4.ckpt"),
    ],
)
def test_checkpoint_tarball_members_are_checked(
    server: FaultyServer, site: Path, tmp_path: Path, members, links, message: str
) -> None:
    evil = tmp_path / "srv" / "inception_v4_2016_09_09.tar.gz"
    evil.parent.mkdir()
    server.faults["body"][f"{MODELS}/inception_v4_2016_09_09.tar.gz"] = _tar(evil, members, links)
    out = tmp_path / "out"
    with pytest.raises(FetchError, match=message):
        fetch_checkpoint(out, base_urls=[server.url + MODELS], **FAST)
    # refused before it got its name: kept aside, and nothing was unpacked
    assert _files_under(out) == ["inception_v4_2016_09_09.tar.gz.refused-1"]
    assert not (tmp_path / "inception_v4.ckpt").exists()


@pytest.mark.parametrize("fault", ["cut short", "link member", "no checkpoint"])
def test_cli_a_checkpoint_tarball_that_will_not_unpack_is_fetched_again(
    server: FaultyServer, site: Path, tmp_path: Path, runner, fault: str
) -> None:
    good = (site / MODELS.lstrip("/") / "inception_v4_2016_09_09.tar.gz").read_bytes()
    bad_tar = tmp_path / "bad.tar.gz"
    body = {
        "cut short": good[: len(good) // 2],
        "link member": _tar(bad_tar, {"a": b"x"}, {"inception_v4.ckpt": "a"}),
        "no checkpoint": _tar(bad_tar, {"README": b"x"}),
    }[fault]
    tgz_path = f"{MODELS}/inception_v4_2016_09_09.tar.gz"
    out_dir = tmp_path / "out"
    args = ["fetch", "checkpoint", "--base-url", server.url + MODELS, "-o", str(out_dir)]
    # cut short with no Content-Length: the body just ends, and only its end can tell
    server.faults["body"][tgz_path] = body
    server.faults["no_length"].add(tgz_path)
    error = _error_line(runner.invoke(app, [*args, "--retries", "0"]))
    assert "inception_v4_2016_09_09.tar.gz.refused-1" in error
    assert _files_under(out_dir) == ["inception_v4_2016_09_09.tar.gz.refused-1"]
    assert (out_dir / "inception_v4_2016_09_09.tar.gz.refused-1").read_bytes() == body
    # A rerun is not stuck: it asks again, and the good tarball unpacks.
    del server.faults["body"][tgz_path]
    server.faults["no_length"].discard(tgz_path)
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert len(server.requests_for(tgz_path)) == 2
    assert (out_dir / "inception_v4.ckpt").read_bytes() == b"CKPT" * 5000
    # A bad tarball under its name (left by an older oathcube) is refused with what to do.
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "inception_v4_2016_09_09.tar.gz").write_bytes(body)
    n = len(server.log)
    error = _error_line(runner.invoke(app, [*args[:-1], str(stale)]))
    assert "delete it (or move it away) and fetch again" in error
    assert str(stale / "inception_v4_2016_09_09.tar.gz") in error and len(server.log) == n


# --------------------------------------------------------------------------- options
def test_options_are_checked_before_any_request(server: FaultyServer, tmp_path: Path) -> None:
    good = dict(out=tmp_path, base_urls=[server.url + BERKELEY], **FAST)
    with pytest.raises(OptionError, match="station"):
        fetch_themis("nope", start="2011-01-06T17:00", end="2011-01-06T18:00", **good)
    with pytest.raises(OptionError, match="not after"):
        fetch_themis("gako", start="2011-01-06T17:00", end="2011-01-06T16:00", **good)
    with pytest.raises(OptionError, match="not a time"):
        fetch_themis("gako", start="yesterday", end="2011-01-06T16:00", **good)
    with pytest.raises(OptionError, match="source"):
        fetch_themis("gako", start="2011-01-06T17:00", end="2011-01-06T18:00", source="x", **good)
    with pytest.raises(OptionError, match="http"):
        fetch_themis(
            "gako", start="2011-01-06T17:00", end="2011-01-06T18:00", out=tmp_path,
            base_urls=[f"file://{tmp_path}"],
        )  # fmt: skip
    assert server.log == [] and _files_under(tmp_path) == []


def test_cli_a_range_of_more_files_than_the_cap_is_refused_before_any_request(
    server: FaultyServer, tmp_path: Path, runner
) -> None:
    import time

    base = ["fetch", "themis", "--station", "gako", "--start", "2011-01-06T17:00",
            "--base-url", server.url + BERKELEY, "-o", str(tmp_path)]  # fmt: skip
    t = time.monotonic()
    error = _error_line(runner.invoke(app, [*base, "--end", "2101-01-06T17:00"]))  # a typo
    assert "spans 788,928 hour files, more than the 10,000 planned at most" in error
    assert "--max-files 788928" in error
    # 50 years of UCalgary minutes: refused as fast, nothing planned in memory
    ucalgary = ["fetch", "themis", "--station", "gill", "--source", "ucalgary", "--start",
                "2000-01-01", "--end", "2050-01-01", "--base-url", server.url + UCALGARY,
                "-o", str(tmp_path)]  # fmt: skip
    assert "spans 26,298,720 minute files" in _error_line(runner.invoke(app, ucalgary))
    # ingest --start/--end fetches through the same cap, before its cube is made
    ingest = ["ingest", "--station", "gako", "--start", "2011-01-06T17", "--end", "2101-01-06",
              "--base-url", server.url + BERKELEY, "--fetch-dir", str(tmp_path / "f"),
              "-o", str(tmp_path / "c.zarr")]  # fmt: skip
    assert "--max-files" in _error_line(runner.invoke(app, ingest))
    assert time.monotonic() - t < 5
    # the cap is the user's to raise (to 1 at least)
    error = _error_line(
        runner.invoke(app, [*base, "--end", "2011-01-06T20:00", "--max-files", "2"])
    )
    assert "spans 3 hour files, more than the 2" in error
    assert "1 or more" in _error_line(
        runner.invoke(app, [*base, "--end", "2011-01-06T18:00", "--max-files", "0"])
    )
    assert server.log == [] and _files_under(tmp_path) == []
    out = runner.invoke(app, [*base, "--end", "2011-01-06T20:00", "--max-files", "3"])
    assert out.exit_code == 0, out.output
    assert "gako: 1 files (1 downloaded)" in out.output


def test_a_long_plan_is_streamed(tmp_path: Path) -> None:
    # 50 years of minutes with the cap raised: the old plan held ~26 million minutes
    # (gigabytes) before its first request; the streamed one asks at once, with a few MB.
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(FetchError, match="cannot reach"):
            fetch_themis(
                "gill", start="2000-01-01", end="2050-01-01", source="ucalgary", out=tmp_path,
                base_urls=[closed_port_url()], timeout=1, retries=0, progress=False,
                max_files=10**8,
            )  # fmt: skip
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20, f"{peak / 1e6:.0f} MB before the first request"


def test_download_many_keeps_only_a_few_downloads_ahead(server: FaultyServer, tmp_path: Path):
    handed: list[str] = []

    def rels() -> Iterator[str]:
        for i in range(1000):
            handed.append(f"x/{i}.cdf")
            yield handed[-1]

    fetcher = Fetcher([server.url + "/"], workers=2, **FAST)
    got = fetcher.download_many(rels(), tmp_path, max_bytes=1000)
    assert [next(got).path for _ in range(3)] == [None, None, None]  # 404: not there
    assert len(handed) <= 3 + 2 * 2  # not the whole plan
    got.close()


@pytest.mark.parametrize(
    ("option", "value"),
    [("--timeout", "nan"), ("--timeout", "inf"), ("--timeout", "-1"), ("--timeout", "0"),
     ("--retries", "-1"), ("--retries", "1000")],
)  # fmt: skip
def test_cli_timeout_and_retries_are_checked_by_every_fetching_command(
    server: FaultyServer, tmp_path: Path, runner, option: str, value: str
) -> None:
    commands = [
        ["fetch", "themis", "--station", "gako", "--start", "2011-01-06T17", "--end",
         "2011-01-06T18", "--base-url", server.url + BERKELEY, "-o", str(tmp_path / "t")],
        ["fetch", "oath", "--base-url", server.url + OATH, "-o", str(tmp_path / "o")],
        ["fetch", "checkpoint", "--base-url", server.url + MODELS, "-o", str(tmp_path / "c")],
        ["ingest", "--station", "gako", "--start", "2011-01-06T17", "--end", "2011-01-06T18",
         "--base-url", server.url + BERKELEY, "--fetch-dir", str(tmp_path / "i"),
         "-o", str(tmp_path / "i.zarr")],
    ]  # fmt: skip
    for args in commands:
        error = _error_line(runner.invoke(app, [*args, option, value]))
        assert error.startswith(f"oathcube: error: {option}: "), error
    assert server.log == [] and _files_under(tmp_path) == []


def test_cli_ingest_fetch_obeys_timeout_and_retries(
    server: FaultyServer, tmp_path: Path, runner
) -> None:
    import time

    server.faults["slow"][CDF_PATH] = 3.0  # a server that does not answer in time
    cube = tmp_path / "c.zarr"
    args = ["ingest", "--station", "gako", "--start", "2011-01-06T17", "--end", "2011-01-06T18",
            "--base-url", server.url + BERKELEY, "--fetch-dir", str(tmp_path / "themis"),
            "-o", str(cube), "--timeout", "0.3", "--retries", "0"]  # fmt: skip
    t = time.monotonic()
    error = _error_line(runner.invoke(app, args))
    assert time.monotonic() - t < 2.5  # not the default 30 s, nor 3 retries
    assert "no answer within 0.3 s" in error
    assert not cube.exists() and _files_under(tmp_path) == []


def test_times_go_through_the_one_checked_parser(server: FaultyServer, tmp_path: Path, runner):
    from oathcube.fetch import sources

    assert sources.parse_time("2011-01-06T17", "start") == datetime(2011, 1, 6, 17)
    assert sources.parse_time("2011-01-06 17:00Z", "start") == datetime(2011, 1, 6, 17)
    assert sources.parse_time("2011-01-06T19:00+02:00", "start") == datetime(2011, 1, 6, 17)
    # beyond what datetime64[ns] holds: refused in one line, not wrapped round
    args = ["fetch", "themis", "--station", "gako", "--start", "2011-01-06T17", "--end",
            "2300-01-01", "--base-url", server.url + BERKELEY, "-o", str(tmp_path)]  # fmt: skip
    assert "--end" in _error_line(runner.invoke(app, args))
    assert server.log == []


# --------------------------------------------------------------------------- command line
def test_no_network_is_one_line_naming_the_url(runner, tmp_path: Path) -> None:
    dead = closed_port_url()
    cases = [
        (["themis", "--station", "gako", "--start", "2011-01-06T17", "--end", "2011-01-06T18"],
         f"{dead}/thg/l1/asi/gako/2011/01/{CDF}", "oathcube ingest FILES"),
        (["oath"], f"{dead}/SHA256SUM_v1.1", "pass it to `oathcube build`"),
        (["checkpoint"], f"{dead}/inception_v4_2016_09_09.tar.gz", "--checkpoint"),
    ]  # fmt: skip
    for args, url, hint in cases:
        out = runner.invoke(
            app,
            ["fetch", *args, "--base-url", dead, "-o", str(tmp_path / "o"), "--retries", "0"],
        )
        assert out.exit_code == 1, out.output
        errors = [line for line in out.output.splitlines() if line.startswith("oathcube: error")]
        assert len(errors) == 1 and "Traceback" not in out.output
        assert f"cannot reach {url} (connection refused)" in errors[0] and hint in errors[0]


def test_cli_fetch_themis_then_ingest(server: FaultyServer, tmp_path: Path, runner) -> None:
    mirror = tmp_path / "mirror"
    out = runner.invoke(
        app,
        [
            "fetch", "themis", "--station", "gill", "--source", "ucalgary",
            "--start", "2014-03-10T06:00", "--end", "2014-03-10T06:06",
            "--base-url", server.url + UCALGARY, "-o", str(mirror), "--timeout", "3",
        ],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "gill: 2 files (2 downloaded)" in out.output
    assert "not on the server: 2014-03-10 06:01 to 2014-03-10 06:04 (4 minutes)" in out.output
    cube = str(tmp_path / "raw.zarr")
    out = runner.invoke(app, ["ingest", str(mirror), "-o", cube, "--scheduler", "synchronous"])
    assert out.exit_code == 0, out.output
    assert "gill: 40 frames appended" in out.output


def test_cli_ingest_needs_station_start_and_end(runner, tmp_path: Path) -> None:
    out = runner.invoke(app, ["ingest", "--start", "2011-01-06T17", "-o", str(tmp_path / "c")])
    assert out.exit_code == 1 and "all three together" in out.output
    (tmp_path / "file").write_text("x")
    out = runner.invoke(
        app,
        ["ingest", "--station", "gako", "--start", "2011-01-06T17", "--end", "2011-01-06T18",
         "-o", str(tmp_path / "file"), "--base-url", closed_port_url()],
    )  # fmt: skip
    assert out.exit_code == 1 and "cannot reach" not in out.output  # the cube is checked first
    out = runner.invoke(
        app,
        ["ingest", "--station", "gako", "--start", "2011-01-06T17", "--end", "2011-01-06T18",
         "-o", str(tmp_path / "new.zarr"), "--base-url", closed_port_url(),
         "--chunk-frames", "4", "--shard-frames", "10"],
    )  # fmt: skip
    # so are the cube's layout options: no download is tried with a layout refused later
    assert out.exit_code == 1 and "frames per shard" in out.output
    assert "cannot reach" not in out.output


def test_cli_ingest_fetches_frames_and_skymap(
    server: FaultyServer, shared: Path, tmp_path: Path, runner
) -> None:
    fetched = tmp_path / "themis"
    args = [
        "ingest", "--station", "gako", "--start", "2011-03-10T05:10", "--end", "2011-03-10T05:20",
        "--base-url", server.url + BERKELEY, "--fetch-dir", str(fetched), "--skymap",
        "--skymap-base-url", server.url + UCALGARY, "-o", str(tmp_path / "c.zarr"),
        "--scheduler", "synchronous",
    ]  # fmt: skip
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "gako: 5 frames appended" in out.output
    sky = fetched / "skymaps/gako/gako_20110305/themis_skymap_gako_20110305-+_v02.sav"
    assert sky.read_bytes() == (shared / "data/themis" / SKYMAP).read_bytes()
    # run again: nothing fetched again (only the skymap folder is listed), nothing appended
    n = len(server.log)
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert not [p for p, _, _ in server.log[n:] if p.endswith((".cdf", ".sav"))]


@pytest.mark.slow
def test_fetch_ingest_classify_timeline_end_to_end(
    server: FaultyServer, archive: Path, tmp_path: Path, runner, capsys
) -> None:
    """fetch -> ingest -> classify -> timeline against the loopback server, by the CLI."""
    from oathcube import build, compute_features, train

    cube = build(archive, tmp_path / "cube.zarr", progress=False, chunk_images=32)
    compute_features(cube, "handcrafted", progress=False, scheduler="synchronous")
    model = train(cube, "handcrafted")
    steps = [
        ["ingest", "--station", "gako", "--start", "2011-01-06T17:00", "--end", "2011-01-06T17:30",
         "--base-url", server.url + BERKELEY, "--fetch-dir", str(tmp_path / "themis"),
         "-o", cube, "--scheduler", "synchronous"],
        ["classify", cube, "--model", model, "--station", "gako", "--scheduler", "synchronous"],
        ["timeline", cube, "--station", "gako", "--freq", "20s", "--model", model],
    ]  # fmt: skip
    transcript = []
    for args in steps:
        out = runner.invoke(app, args)
        transcript.append(f"$ oathcube {' '.join(args)}\n{out.output}")
        assert out.exit_code == 0, out.output
    text = "\n".join(transcript)
    assert "gako: 23 frames appended" in text and "stations/gako: 23 frames classified" in text
    assert len(server.requests_for(CDF_PATH)) == 1
    with capsys.disabled():
        if os.environ.get("OATHCUBE_SHOW_TRANSCRIPT"):
            print("\n" + text.replace(server.url, "http://127.0.0.1:PORT"))
