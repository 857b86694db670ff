"""The browse page as a notebook widget: ``oathcube.browse(cube)`` in Jupyter.

The widget is an anywidget: the page's own JavaScript (``static/browse.js``) runs in the
notebook and asks the kernel for each view over the notebook's widget connection, which
:meth:`BrowseWidget._on_msg` answers with :meth:`~oathcube.browser.answers.Browser.answer`
(JSON in the message, pictures and downloads as binary buffers).  No server is started
and no port is opened, so it works where the notebook's kernel is remote (JupyterHub,
Binder).  ``station``, ``night`` and ``time`` follow what the page shows, so a cell can
read the frame a user clicked (``w.time``).
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

from ..cube.store import CubeLike
from ..errors import OptionError
from .answers import Browser

__all__ = ["browse", "reply"]


def _static(name: str) -> str:
    return (resources.files("oathcube.browser") / "static" / name).read_text(encoding="utf-8")


def reply(browser: Browser, content: Any) -> tuple[dict[str, Any], list[bytes]]:
    """The message (and buffers) that answer one request message of the page.

    ``content`` is ``{"id": n, "view": name, "params": {...}}``; anything else is
    answered with a 400 naming what is wrong, as the HTTP app answers a bad request.
    """
    ident = content.get("id") if isinstance(content, dict) else None
    view = content.get("view") if isinstance(content, dict) else None
    params = content.get("params", {}) if isinstance(content, dict) else None
    if not isinstance(view, str) or not isinstance(params, dict):
        return {"id": ident, "status": 400, "error": "a request names a view and parameters"}, []
    # The page's parameters are texts, as in a URL's query; numbers are written as such.
    args = {str(k): str(v) for k, v in params.items() if v is not None and v != ""}
    answer = browser.answer(view, args)
    out: dict[str, Any] = {"id": ident, "status": answer.status, "media_type": answer.media_type}
    if answer.status != 200:
        out["error"] = answer.json()["error"]
        return out, []
    if answer.media_type == "application/json":
        out["json"] = answer.json()
        return out, []
    out["filename"] = answer.filename
    return out, [answer.body]


@functools.cache
def _widget_class() -> type:
    import anywidget
    import traitlets

    class BrowseWidget(anywidget.AnyWidget):
        """The browse page in a notebook cell (see :func:`browse`)."""

        _esm = _static("browse.js")
        _css = _static("browse.css")
        station = traitlets.Unicode("").tag(sync=True)
        night = traitlets.Unicode("").tag(sync=True)
        time = traitlets.Unicode("").tag(sync=True)
        error = traitlets.Unicode("").tag(sync=True)

        def __init__(self, browser: Browser, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.browser = browser
            self.on_msg(self._on_msg)

        def _on_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
            message, buffers = reply(self.browser, content)
            self.send(message, buffers=buffers or None)

    return BrowseWidget


def __getattr__(name: str) -> Any:
    # The class is made on first use: importing anywidget (and IPython) is left to
    # notebook users, so that `import oathcube` stays light.
    if name == "BrowseWidget":
        return _widget_class()
    raise AttributeError(name)


def browse(
    cube: CubeLike,
    *,
    station: str | None = None,
    night: str | None = None,
    time: str | None = None,
    model: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Any:
    """The browse page as a widget a notebook shows inline (no server).

    Parameters
    ----------
    cube
        Path, URL or :class:`~oathcube.cube.store.Cube`; read only.
    station, night, time
        What it opens on (default: the first station's first night); ``night`` is the
        local date the night starts on (``2011-01-05``), ``time`` a UTC time.
    model
        Whose predictions give the classes (default: each station's only model).
    storage_options
        fsspec options of a cube at a URL.

    Returns
    -------
    BrowseWidget
        An anywidget; its ``station``, ``night`` and ``time`` follow the page.

    Raises
    ------
    OptionError
        An unknown station, a night or time with no frames, a malformed value.
    CubeError
        The cube is not there or not complete.

    Examples
    --------
    >>> import oathcube
    >>> w = oathcube.browse("demo/oath.zarr", station="fsmi")       # doctest: +SKIP
    >>> w                                                            # doctest: +SKIP
    """
    browser = Browser(cube, model=model, storage_options=storage_options)
    opening = {"station": station or "", "night": night or "", "time": time or ""}
    status, error = browser.opening(opening)
    if status != 200:
        raise OptionError(str(error), parameter="station/night/time")
    return _widget_class()(browser, station=station or "", night=night or "", time=time or "")
