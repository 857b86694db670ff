"""Fetching Aurora-FM's weights from a loopback server with faults (``oathcube fetch aurora-fm``).

The real file (45,965,389 bytes on Hugging Face) cannot be downloaded here: the server of
``tests/http_server.py`` serves a stand-in of random bytes under its real name, behind a
redirect as Hugging Face's ``resolve/main`` answers, and the pinned size and SHA-256 of
:mod:`oathcube.fetch.sources` are monkeypatched to the stand-in's.  Client timeouts are a
few seconds at most.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from http_server import FaultyServer, closed_port_url

from oathcube.cli import app
from oathcube.datadir import AURORA_FM_NAME, aurora_fm_dir, fetched_aurora_fm
from oathcube.errors import FetchError, OptionError
from oathcube.fetch import fetch_aurora_fm, sources

NAME = "aurora-fm-no-finetune.tar"
#: Hugging Face's base below the server, and where it redirects to (its CDN).
HF = "/Jwjohnson314/Aurora-FM/resolve/main"
HF_PATH = f"{HF}/{NAME}"
CDN_PATH = f"/cdn/{NAME}"
FAST: dict[str, Any] = {"timeout": 3.0, "retries": 2, "progress": False}
#: What the issue pins, read before any test patches it.
PINNED = (sources.AURORA_FM_SIZE, sources.AURORA_FM_SHA256)
STAND_IN = os.urandom(300_000)


def _files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _error_line(out: Any) -> str:
    """The one ``oathcube: error:`` line of a CLI run that failed (and no traceback)."""
    assert out.exit_code == 1, out.output
    assert "Traceback" not in out.output
    errors = [line for line in out.output.splitlines() if line.startswith("oathcube: error: ")]
    assert len(errors) == 1, out.output
    return errors[0]


def _pin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> str:
    """Pin ``data``'s size and SHA-256 as Aurora-FM's; its SHA-256."""
    digest = hashlib.sha256(data).hexdigest()
    monkeypatch.setattr(sources, "AURORA_FM_SIZE", len(data))
    monkeypatch.setattr(sources, "AURORA_FM_SHA256", digest)
    return digest


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultyServer]:
    """The stand-in at the CDN path, and Hugging Face's URL redirecting to it; pinned."""
    root = tmp_path / "site"
    (root / "cdn").mkdir(parents=True)
    (root / "cdn" / NAME).write_bytes(STAND_IN)
    _pin(monkeypatch, STAND_IN)
    srv = FaultyServer(root).start()
    srv.faults["redirect"][HF_PATH] = CDN_PATH
    try:
        yield srv
    finally:
        srv.stop()


def test_the_pinned_facts_are_the_issue_s() -> None:
    assert PINNED == (
        45_965_389,
        "f9c97e906bee7a34f0727377f8b3194086080fa9573390db44daab4ce2c64e33",
    )
    assert sources.AURORA_FM_FILE == AURORA_FM_NAME == NAME
    assert sources.AURORA_FM_BASE == "https://huggingface.co/Jwjohnson314/Aurora-FM/resolve/main"
    assert sources.AURORA_FM_LICENSE == "CC-BY-4.0"


def test_fetched_into_the_data_folder_found_and_a_rerun_asks_nothing(
    server: FaultyServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OATHCUBE_DATA_DIR", str(tmp_path / "data"))
    assert fetched_aurora_fm() is None
    path = fetch_aurora_fm(base_urls=[server.url + HF], **FAST)
    assert path == tmp_path / "data" / "aurora_fm" / NAME == aurora_fm_dir() / NAME
    assert path.read_bytes() == STAND_IN
    assert fetched_aurora_fm() == path
    # Hugging Face's redirect is followed; nothing but the file is left (no .part, .lock)
    assert server.log == [(HF_PATH, None, 302), (CDN_PATH, None, 200)]
    assert _files_under(tmp_path / "data") == [f"aurora_fm/{NAME}"]
    # a rerun checks the file and asks nothing
    assert fetch_aurora_fm(base_urls=[server.url + HF], **FAST) == path
    assert len(server.log) == 2


def test_the_zip_it_really_is_passes_despite_its_tar_name(
    server: FaultyServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real file is a PyTorch zip-format state_dict named .tar: no tar check applies.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", os.urandom(5000))
    state_dict = buf.getvalue()
    _pin(monkeypatch, state_dict)
    server.faults["body"][CDN_PATH] = state_dict
    path = fetch_aurora_fm(tmp_path / "out", base_urls=[server.url + HF], **FAST)
    assert path.read_bytes() == state_dict and zipfile.is_zipfile(path)


@pytest.mark.parametrize("fault", ["other bytes", "shorter"])
def test_a_file_that_is_not_the_pinned_one_is_refused_kept_aside_and_fetched_again(
    server: FaultyServer, tmp_path: Path, fault: str
) -> None:
    out = tmp_path / "out"
    body = os.urandom(len(STAND_IN)) if fault == "other bytes" else STAND_IN[:-1000]
    server.faults["body"][CDN_PATH] = body
    for n in (1, 2):  # a refused file of an earlier run is kept, never replaced
        with pytest.raises(FetchError) as info:
            fetch_aurora_fm(out, base_urls=[server.url + HF], **FAST)
        message = str(info.value)
        assert "\n" not in message and NAME in message
        if fault == "other bytes":
            got, pinned = hashlib.sha256(body).hexdigest(), sources.AURORA_FM_SHA256
            assert f"SHA-256 {got}, not the pinned {pinned}" in message
        else:
            assert f"has {len(body):,} bytes, not the pinned {len(STAND_IN):,}" in message
        assert f"kept as {out / NAME}.refused-{n}" in message
    assert _files_under(out) == [f"{NAME}.refused-1", f"{NAME}.refused-2"]
    assert (out / f"{NAME}.refused-1").read_bytes() == body
    # the right file on the server: a rerun fetches it
    del server.faults["body"][CDN_PATH]
    assert fetch_aurora_fm(out, base_urls=[server.url + HF], **FAST).read_bytes() == STAND_IN
    assert _files_under(out) == [NAME, f"{NAME}.refused-1", f"{NAME}.refused-2"]


def test_a_refused_file_on_one_mirror_is_fetched_from_the_next(
    server: FaultyServer, tmp_path: Path
) -> None:
    (tmp_path / "site" / "bad").mkdir()
    (tmp_path / "site" / "bad" / NAME).write_bytes(os.urandom(len(STAND_IN)))
    out = tmp_path / "out"
    path = fetch_aurora_fm(out, base_urls=[server.url + "/bad", server.url + HF], **FAST)
    assert path.read_bytes() == STAND_IN
    assert _files_under(out) == [NAME, f"{NAME}.refused-1"]


def test_a_download_cut_short_is_resumed_by_a_rerun(server: FaultyServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    server.faults["drop"][CDN_PATH] = [100_000]
    with pytest.raises(FetchError, match="cut at byte 100000") as info:
        fetch_aurora_fm(out, base_urls=[server.url + HF], timeout=3.0, retries=0)
    assert "\n" not in str(info.value)
    assert not (out / NAME).exists()
    assert (out / f"{NAME}.part").stat().st_size == 100_000  # kept, with its version
    path = fetch_aurora_fm(out, base_urls=[server.url + HF], **FAST)
    assert path.read_bytes() == STAND_IN
    # the rerun asks for the rest only, through the redirect
    assert server.requests_for(CDN_PATH) == [
        (CDN_PATH, None, 200),
        (CDN_PATH, "bytes=100000-", 206),
    ]
    assert server.requests_for(HF_PATH)[-1] == (HF_PATH, "bytes=100000-", 302)
    assert _files_under(out) == [NAME]


def test_a_connection_cut_within_one_run_is_resumed(server: FaultyServer, tmp_path: Path) -> None:
    server.faults["drop"][CDN_PATH] = [70_000, 130_000]
    path = fetch_aurora_fm(tmp_path, base_urls=[server.url + HF], **FAST)
    assert path.read_bytes() == STAND_IN
    assert [r[1] for r in server.requests_for(CDN_PATH)] == [
        None,
        "bytes=70000-",
        "bytes=200000-",
    ]


@pytest.mark.parametrize("change", ["same size", "other size"])
def test_a_file_already_there_that_changed_is_refused_and_kept(
    server: FaultyServer, tmp_path: Path, change: str
) -> None:
    out = tmp_path / "out"
    path = fetch_aurora_fm(out, base_urls=[server.url + HF], **FAST)
    changed = b"X" + STAND_IN[1:] if change == "same size" else STAND_IN + b"more"
    path.write_bytes(changed)
    n = len(server.log)
    with pytest.raises(FetchError) as info:
        fetch_aurora_fm(out, base_urls=[server.url + HF], **FAST)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: already there, but ")
    assert "move it away and rerun" in message
    if change == "same size":
        got = hashlib.sha256(changed).hexdigest()
        assert f"SHA-256 {got}, not the pinned {sources.AURORA_FM_SHA256}" in message
    else:
        assert f"{len(changed):,} bytes, not the pinned {len(STAND_IN):,}" in message
    assert path.read_bytes() == changed  # byte for byte, and nothing asked
    assert len(server.log) == n and _files_under(out) == [NAME]


def test_a_file_larger_than_pinned_is_refused_as_soon_as_it_is(
    server: FaultyServer, tmp_path: Path
) -> None:
    server.faults["body"][CDN_PATH] = STAND_IN + b"x"
    # announced: refused before the body is read
    with pytest.raises(FetchError, match=f"announces {len(STAND_IN) + 1} bytes, more than"):
        fetch_aurora_fm(tmp_path / "a", base_urls=[server.url + HF], **FAST)
    assert _files_under(tmp_path / "a") == []
    # not announced: cut off at the pinned size
    server.faults["body"][CDN_PATH] = STAND_IN * 20
    server.faults["no_length"].add(CDN_PATH)
    with pytest.raises(FetchError, match=f"more than the {len(STAND_IN)} bytes"):
        fetch_aurora_fm(tmp_path / "b", base_urls=[server.url + HF], **FAST)
    assert _files_under(tmp_path / "b") == []
    assert len(server.requests_for(CDN_PATH)) == 2  # not retried


def test_no_server_is_one_line_naming_where_it_comes_from(tmp_path: Path) -> None:
    dead = closed_port_url()
    with pytest.raises(FetchError) as info:
        fetch_aurora_fm(tmp_path, base_urls=[dead], timeout=2.0, retries=0)
    message = str(info.value)
    assert "\n" not in message
    assert f"cannot reach {dead}/{NAME} (connection refused)" in message
    for said in (
        "Jwjohnson314/Aurora-FM",
        "CC-BY-4.0",
        f"https://huggingface.co/Jwjohnson314/Aurora-FM/resolve/main/{NAME}",
        "download it yourself",
        "`--checkpoint`",
        "OATHCUBE_AURORA_FM_CHECKPOINT",
    ):
        assert said in message, said
    assert _files_under(tmp_path) == []


def test_a_file_on_no_server_is_an_error(server: FaultyServer, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match=f"{NAME} is not on any of .*download it yourself"):
        fetch_aurora_fm(tmp_path, base_urls=[server.url + "/elsewhere"], **FAST)


def test_options_are_checked_before_any_request(server: FaultyServer, tmp_path: Path) -> None:
    good, out = [server.url + HF], tmp_path / "out"
    with pytest.raises(OptionError, match="http"):
        fetch_aurora_fm(out, base_urls=[f"file://{tmp_path}"])
    with pytest.raises(OptionError, match="timeout"):
        fetch_aurora_fm(out, base_urls=good, timeout=float("nan"))
    with pytest.raises(OptionError, match="retries"):
        fetch_aurora_fm(out, base_urls=good, retries=-1)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OptionError, match="not a folder"):
        fetch_aurora_fm(tmp_path / "file", base_urls=good)
    assert server.log == [] and not out.exists()


# --------------------------------------------------------------------------- command line
def test_cli_fetch_aurora_fm(
    server: FaultyServer, tmp_path: Path, runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OATHCUBE_DATA_DIR", str(tmp_path / "data"))
    # into the data folder: found from there, nothing more to say
    out = runner.invoke(app, ["fetch", "aurora-fm", "--base-url", server.url + HF])
    assert out.exit_code == 0, out.output
    path = tmp_path / "data" / "aurora_fm" / NAME
    assert f"checkpoint: {path}" in out.stdout
    assert "OATHCUBE_AURORA_FM_CHECKPOINT" not in out.stdout
    assert path.read_bytes() == STAND_IN
    # elsewhere: what to pass; mirrors are tried in order
    folder = tmp_path / "o"
    args = ["fetch", "aurora-fm", "-o", str(folder), "--timeout", "2", "--retries", "0"]
    out = runner.invoke(
        app, [*args, "--base-url", closed_port_url(), "--base-url", server.url + HF]
    )
    assert out.exit_code == 0, out.output
    assert f"checkpoint: {folder / NAME}" in out.stdout
    assert (
        f"pass --checkpoint {folder / NAME} or set "
        f"OATHCUBE_AURORA_FM_CHECKPOINT={folder / NAME}" in out.stdout
    )


def test_cli_errors_are_one_line(server: FaultyServer, tmp_path: Path, runner) -> None:
    folder = tmp_path / "o"
    args = ["fetch", "aurora-fm", "-o", str(folder), "--timeout", "2", "--retries", "0"]
    dead = closed_port_url()
    error = _error_line(runner.invoke(app, [*args, "--base-url", dead]))
    assert f"cannot reach {dead}/{NAME} (connection refused)" in error
    assert "Jwjohnson314/Aurora-FM" in error and "OATHCUBE_AURORA_FM_CHECKPOINT" in error
    assert "or give --base-url of a mirror" in error  # the library's `base_urls`, renamed
    # a wrong file: refused in one line, kept aside
    server.faults["body"][CDN_PATH] = os.urandom(len(STAND_IN))
    error = _error_line(runner.invoke(app, [*args, "--base-url", server.url + HF]))
    assert f"not the pinned {sources.AURORA_FM_SHA256}" in error and f"{NAME}.refused-1" in error
    # a file already there that changed: refused in one line, left as it is
    del server.faults["body"][CDN_PATH]
    assert runner.invoke(app, [*args, "--base-url", server.url + HF]).exit_code == 0
    (folder / NAME).write_bytes(b"changed")
    error = _error_line(runner.invoke(app, [*args, "--base-url", server.url + HF]))
    assert f"{folder / NAME}: already there" in error and "move it away and rerun" in error
    assert (folder / NAME).read_bytes() == b"changed"
    # the numbers, checked before any request
    n = len(server.log)
    error = _error_line(
        runner.invoke(app, [*args, "--base-url", server.url + HF, "--timeout", "nan"])
    )
    assert error.startswith("oathcube: error: --timeout: ") and len(server.log) == n
