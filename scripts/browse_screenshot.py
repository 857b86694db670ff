"""A screenshot of the browse page: a night, a clicked frame and its similar skies.

usage: python scripts/browse_screenshot.py CUBE OUT.png [--station S] [--night YYYY-MM-DD]
                                           [--at 0.4] [--k 12] [--width 1500]

Serves the page on CUBE (read-only, a free loopback port, as ``oathcube browse`` does),
opens it in Debian's chromium (``/usr/bin/chromium``) with playwright, picks the night
(default: the station's first), clicks the keogram at ``--at`` of its width, asks for
``--k`` similar skies and writes a full-page screenshot.  docs/img/browse_demo.png is this
script's picture of ``oathcube demo``'s cube:

    python scripts/browse_screenshot.py demo/oath.zarr docs/img/browse_demo.png --at 0.62
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from oathcube.browser.answers import Browser
from oathcube.browser.app import CHROMIUM_ARGS, running


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cube")
    parser.add_argument("out", type=Path)
    parser.add_argument("--station")
    parser.add_argument("--night")
    parser.add_argument("--at", type=float, default=0.4, help="where on the keogram to click")
    parser.add_argument("--k", type=int, default=12, choices=(6, 12, 24))
    parser.add_argument("--width", type=int, default=1500)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    a = parser.parse_args(argv)
    if a.out.suffix.lower() != ".png" or not 0 <= a.at <= 1:
        parser.error("OUT must be a .png and --at within 0..1")
    from playwright.sync_api import sync_playwright

    query = "&".join(f"{k}={v}" for k, v in (("station", a.station), ("night", a.night)) if v)
    with running(Browser(a.cube)) as url, sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=a.chromium, args=list(CHROMIUM_ARGS))
        page = chromium.new_page(viewport={"width": a.width, "height": 900})
        page.goto(url + ("?" + query if query else ""))
        page.wait_for_selector("[data-testid=frame-panel][data-shown]")
        box = page.locator("[data-testid=keogram]").bounding_box()
        page.mouse.click(box["x"] + a.at * box["width"], box["y"] + box["height"] / 2)
        page.wait_for_function(
            "() => { const p = document.querySelector('[data-testid=frame-panel]');"
            " return p.dataset.shown && p.dataset.shown ===  document.querySelector("
            "'[data-testid=frame-time]').textContent; }"
        )
        page.select_option("[data-testid=k]", str(a.k))
        page.click("[data-testid=similar-button]")
        page.wait_for_selector("[data-testid=hit]")
        page.wait_for_function(
            "() => [...document.querySelectorAll('img')].every(i => i.complete && i.naturalWidth)"
        )
        error = page.inner_text("[data-testid=error]")
        # Written whole, then renamed: a half-written picture never has the name.
        a.out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".png", dir=a.out.parent)
        os.close(fd)
        page.screenshot(path=tmp, full_page=True)
        os.replace(tmp, a.out)
        shown = page.inner_text("[data-testid=frame-time]")
        chromium.close()
    print(f"wrote {a.out}: frame {shown}{'; page says: ' + error if error else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
