"""``oathcube browse``: the page and its read-only requests as a small ASGI app.

Three kinds of address, and nothing else:

* ``/`` : the page (``static/index.html``), which may name ``station``, ``night`` and
  ``time`` to open on; these are checked as every request's are, and a page asked for
  an unknown station or night comes back with a 4xx status and says why at its top;
* ``/static/browse.js`` and ``/static/browse.css``: the page's own two files, by name
  from a fixed table (no file system path is taken from a request);
* ``/api/<view>?...``: one of :data:`~oathcube.browser.answers.ROUTES`, answered by
  :meth:`~oathcube.browser.answers.Browser.answer`.

Only GET and HEAD are answered.  The app is Starlette's (routing, responses) and is
served by uvicorn; docs/decisions.md ("Browsing: an ASGI page and an anywidget") says why
not Panel or Streamlit.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from importlib import resources
from typing import Any

from ..cube.store import CubeLike
from ..errors import OptionError
from .answers import Answer, Browser

__all__ = [
    "make_app",
    "serve",
    "serve_cube",
    "running",
    "page_html",
    "STATIC",
    "CHROMIUM_ARGS",
    "check_host",
]

log = logging.getLogger(__name__)

#: The page's own files, served by these names only.
STATIC: dict[str, str] = {
    "browse.js": "text/javascript; charset=utf-8",
    "browse.css": "text/css; charset=utf-8",
}

#: How a headless chromium opens the page where the network is closed (the browser
#: tests, scripts/browse_screenshot.py): without the background-networking flags it
#: tries Google's hosts at start, many at a time.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

#: The answers' media types that are text (sent with a charset).
_TEXT = ("application/json", "text/csv")


def static_text(name: str) -> str:
    """One of the page's own files, from the package."""
    return (resources.files("oathcube.browser") / "static" / name).read_text(encoding="utf-8")


def page_html(initial: dict[str, str], error: str | None = None) -> str:
    """The page, opening on ``initial`` (station, night, time), with ``error`` at its top."""
    text = static_text("index.html")
    state = json.dumps({"initial": initial, "error": error})
    # Embedded in a <script type="application/json">, whose text is not entity-decoded:
    # <, > and & are written as JSON escapes, so no "</script" can close the element.
    for c in "<>&":
        state = state.replace(c, f"\\u{ord(c):04x}")
    return text.replace("{{STATE}}", state)


def make_app(browser: Browser) -> Any:
    """The ASGI app of the page and its requests on ``browser``'s cube."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    def respond(answer: Answer) -> Response:
        media = answer.media_type
        headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
        if answer.filename:
            headers["Content-Disposition"] = f'attachment; filename="{answer.filename}"'
        charset = "; charset=utf-8" if media in _TEXT else ""
        return Response(answer.body, answer.status, headers, media_type=media + charset)

    def single(request: Request) -> dict[str, str] | Response:
        """The query's parameters, each given once; a repeated one is a 400."""
        items = request.query_params.multi_items()
        names = [k for k, _ in items]
        twice = sorted({k for k in names if names.count(k) > 1})
        if twice:
            return JSONResponse({"error": f"parameter {twice[0]!r} given twice"}, 400)
        return dict(items)

    async def page(request: Request) -> Response:
        params = single(request)
        if isinstance(params, Response):
            return params
        status, error = browser.opening(params)
        initial = params if status == 200 else {}
        return HTMLResponse(page_html(initial, error), status, {"Cache-Control": "no-store"})

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return JSONResponse({"error": f"no file {name!r}"}, 404)
        return Response(static_text(name), 200, media_type=STATIC[name])

    def api(request: Request) -> Response:
        # A plain function: Starlette runs it in its thread pool, so a slow read (a
        # night's keogram, a similar-skies search) does not stall the other requests.
        params = single(request)
        if isinstance(params, Response):
            return params
        return respond(browser.answer(request.path_params["view"], params))

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"no such address {request.url.path!r}"}, 404)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"{request.method} is not answered: read-only"}, 405)

    async def no_icon(request: Request) -> Response:
        return Response(b"", 204)  # the page has no icon; said so, rather than a 404

    routes = [
        Route("/", page, methods=["GET", "HEAD"]),
        Route("/favicon.ico", no_icon, methods=["GET", "HEAD"]),
        Route("/static/{name}", static, methods=["GET", "HEAD"]),
        Route("/api/{view}", api, methods=["GET", "HEAD"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})


def check_host(host: str) -> str:
    """A host to bind; a non-loopback one is logged as a warning (anyone there can read)."""
    if not host or any(c.isspace() for c in host):
        raise OptionError(f"host {host!r}", parameter="host", expected="an address to bind")
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "browse: bound to %s, not the loopback: anyone who reaches this address can "
            "read the cube's frames and classes",
            host,
        )
    return host


def _config(browser: Browser) -> Any:
    """uvicorn's settings for the app: no access log, and logging left as it is.

    uvicorn's own logging set-up (``dictConfig``) would close every handler the process
    has (a notebook's, a test runner's); with ``log_config=None`` its messages go to the
    ``uvicorn`` loggers, warnings and errors shown as Python shows any.
    """
    import uvicorn

    return uvicorn.Config(make_app(browser), log_config=None, access_log=False)


@contextlib.contextmanager
def running(browser: Browser, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """The app served in a thread of this process while the block runs; yields its URL.

    For scripts and tests that drive the page (a screenshot, a browser test); the
    command line uses :func:`serve`.
    """
    import socket
    import threading
    import time

    import uvicorn

    sock = socket.socket()
    sock.bind((check_host(host), port))
    server = uvicorn.Server(_config(browser))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the browse app did not start")
            time.sleep(0.02)
        yield f"http://{host}:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def serve(
    browser: Browser,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    open_browser: bool = False,
    station: str | None = None,
    night: str | None = None,
) -> None:
    """Serve the page on ``host:port`` until interrupted (Ctrl-C).

    Raises
    ------
    OptionError
        A bad host or port, or the port is taken.
    """
    import socket
    from urllib.parse import urlencode

    import uvicorn

    check_host(host)
    if not 0 <= port <= 65535:
        raise OptionError(f"port {port}", parameter="port", expected="0..65535")
    # Bind first, so that a port in use is one line here, not a traceback in uvicorn.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # listening before the address is printed (or opened)
    except OSError as err:
        sock.close()
        raise OptionError(
            f"cannot listen on {host}:{port} ({err.strerror})",
            parameter="port",
            expected="a free port (--port), or 0 for any",
        ) from None
    bound = sock.getsockname()[1]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{bound}/"
    opening = {k: v for k, v in (("station", station), ("night", night)) if v}
    if opening:
        url += "?" + urlencode(opening)
    # Ctrl-C is how a server is stopped, at any moment from here on (before uvicorn
    # takes the signal too): it has nothing to resume or keep.
    try:
        print(f"oathcube browse: {url}  (read-only; Ctrl-C stops)", flush=True)
        if open_browser:
            import webbrowser

            webbrowser.open(url)
        uvicorn.Server(_config(browser)).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    print("oathcube browse: stopped", flush=True)


def serve_cube(
    cube: CubeLike,
    *,
    station: str | None = None,
    night: str | None = None,
    model: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8765,
    open_browser: bool = False,
) -> None:
    """``oathcube browse``: check everything, then serve the page on ``cube`` until Ctrl-C.

    The host, the cube, the model and what the page opens on (``station``, ``night``)
    are checked before anything listens; Ctrl-C at any moment stops it quietly.

    Raises
    ------
    OptionError
        A bad host or port, a port in use, an unknown station or a night with no frames.
    CubeError, ModelError
        The cube is not there or not complete; ``model`` names no stored model.
    """
    check_host(host)
    try:
        browser = Browser(cube, model=model)
        status, error = browser.opening({"station": station or "", "night": night or ""})
        if status != 200:
            raise OptionError(str(error), parameter="station/night")
        serve(
            browser, host=host, port=port, open_browser=open_browser, station=station, night=night
        )
    except KeyboardInterrupt:  # stopped before serving: nothing was written, nothing to resume
        print("oathcube browse: stopped", flush=True)
