"""Browse a cube in a web page or a notebook: nights, classes, frames and similar skies.

* :class:`~oathcube.browser.answers.Browser`: the read-only answers every view is made of;
* :func:`~oathcube.browser.app.serve` and :func:`~oathcube.browser.app.make_app`:
  ``oathcube browse``, a small ASGI app (Starlette, served by uvicorn) and its page;
* :func:`~oathcube.browser.widget.browse`: the same page as a notebook widget
  (anywidget), talking to the kernel over the notebook's own connection, no server.
"""

from __future__ import annotations

from .answers import ROUTES, Answer, BrowseError, Browser

__all__ = ["Answer", "Browser", "BrowseError", "ROUTES"]
