"""A loopback HTTP server for the fetch tests: a folder served as a file server serves it,
with Range requests, Apache-like directory listings, and faults on chosen paths.

Faults (``server.faults``, keyed by URL path):

- ``drop``: path -> list of byte counts; each request pops one, sends the full headers and
  only that many bytes of the body, then closes the connection;
- ``redirect``: path -> Location (answered with 302);
- ``slow``: path -> seconds to wait before answering;
- ``body``: path -> bytes served in place of the file (e.g. corrupt);
- ``extra``: path -> bytes sent after the announced body (Content-Length stays the file's);
- ``no_length``: paths answered without Content-Length, body = file + ``extra``;
- ``status``: path -> list of status codes, each request pops one;
- ``listing_extra``: folder path -> hrefs added to its listing;
- ``trickle``: path -> (bytes, seconds): the body sent that many bytes at a time, with a
  pause after each (a download long enough to be killed in the middle);
- ``no_validator``: paths answered without ETag and Last-Modified;
- ``ignore_if_range``: paths whose Range is honoured whatever If-Range says (a server
  that gets If-Range wrong).

Every file is sent with a strong ETag (a hash of what is served, so a ``body`` fault
changes it) and a fixed Last-Modified; ``If-Range`` is honoured as RFC 9110 says: a
Range is served only if it names the current ETag or Last-Modified, else the whole file.
Every request is logged as (path, Range header, status) in ``server.log``, and its
If-Range header in ``server.if_range``.
"""

from __future__ import annotations

import hashlib
import html
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit


class FaultyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.faults: dict[str, Any] = {
            "drop": {},
            "redirect": {},
            "slow": {},
            "trickle": {},
            "body": {},
            "extra": {},
            "no_length": set(),
            "status": {},
            "listing_extra": {},
            "no_validator": set(),
            "ignore_if_range": set(),
        }
        self.log: list[tuple[str, str | None, int]] = []
        self.if_range: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultyServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=5)

    def requests_for(self, path: str) -> list[tuple[str, str | None, int]]:
        with self.lock:
            return [entry for entry in self.log if entry[0] == path]

    def pop(self, kind: str, path: str) -> Any:
        with self.lock:
            values = self.faults[kind].get(path)
            if values:
                return values.pop(0)
        return None


class _Handler(BaseHTTPRequestHandler):
    server: FaultyServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _record(self, path: str, status: int) -> None:
        with self.server.lock:
            self.server.log.append((path, self.headers.get("Range"), status))
            self.server.if_range.append((path, self.headers.get("If-Range")))

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        path = unquote(urlsplit(self.path).path)
        faults = self.server.faults
        if path in faults["slow"]:
            time.sleep(faults["slow"][path])
        status = self.server.pop("status", path)
        if status:
            self._record(path, status)
            self.send_error(status)
            return
        if path in faults["redirect"]:
            self._record(path, 302)
            self.send_response(302)
            self.send_header("Location", faults["redirect"][path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        parts = [p for p in path.split("/") if p]
        local = self.server.root.joinpath(*parts)  # symlinks to the shared files are served
        if ".." in parts or not local.exists():
            self._record(path, 404)
            self.send_error(404)
            return
        if local.is_dir():
            self._listing(path, local)
            return
        data = faults["body"].get(path) or local.read_bytes()
        self._file(path, data)

    def _listing(self, path: str, local: Path) -> None:
        if not path.endswith("/"):
            self._record(path, 301)
            self.send_response(301)
            self.send_header("Location", path + "/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        parent = path.rstrip("/").rsplit("/", 1)[0] + "/"
        rows = [
            '<a href="?C=N;O=D">Name</a> <a href="?C=M;O=A">Last modified</a>',
            f'<a href="{html.escape(parent)}">Parent Directory</a>',
        ]
        for entry in sorted(os.listdir(local)):
            slash = "/" if (local / entry).is_dir() else ""
            rows.append(f'<a href="{quote(entry)}{slash}">{html.escape(entry)}{slash}</a>')
        for href in self.server.faults["listing_extra"].get(path, []):
            rows.append(f'<a href="{html.escape(href)}">x</a>')
        body = (
            f"<html><head><title>Index of {html.escape(path)}</title></head><body>"
            f"<h1>Index of {html.escape(path)}</h1><pre>" + "\n".join(rows) + "</pre></body></html>"
        ).encode()
        self._record(path, 200)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _file(self, path: str, data: bytes) -> None:
        faults = self.server.faults
        start = 0
        header = self.headers.get("Range")
        etag = etag_of(data)
        last_modified = "Thu, 06 Jan 2011 18:00:00 GMT"
        if_range = self.headers.get("If-Range")
        if (
            if_range is not None
            and if_range not in (etag, last_modified)
            and path not in faults["ignore_if_range"]
        ):
            header = None  # another version than the client's: the whole file
        if header and header.startswith("bytes=") and header.endswith("-"):
            start = int(header[len("bytes=") : -1])
            if start >= len(data):
                self._record(path, 416)
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        status = 206 if start else 200
        body = data[start:]
        self._record(path, status)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        if path not in faults["no_validator"]:
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", last_modified)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        if path not in faults["no_length"]:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = self.server.pop("drop", path)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if path in faults["trickle"]:
            step, pause = faults["trickle"][path]
            try:
                for at in range(0, len(body), step):
                    self.wfile.write(body[at : at + step])
                    self.wfile.flush()
                    time.sleep(pause)
            except OSError:  # the client went away (killed): nothing more to send
                self.close_connection = True
            return
        self.wfile.write(body)
        if path in faults["extra"]:
            self.wfile.write(faults["extra"][path])


def etag_of(data: bytes) -> str:
    """The strong ETag the server sends for ``data``."""
    return '"' + hashlib.sha256(data).hexdigest()[:16] + '"'


def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (a port just freed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
