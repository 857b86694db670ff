"""The browse page in a real browser: Debian's chromium, driven by playwright.

The page is served by the app ``oathcube browse`` serves (uvicorn, on a free loopback
port) over the demo's cube.  A test clicks as a user does (a night, a place on the
keogram, the slider, "Similar skies", a hit) and reads what the page shows against the
cube itself.  Without /usr/bin/chromium the tests are skipped, saying so; CI installs it
and sets ``OATHCUBE_REQUIRE_BROWSER=1``, which turns that skip into a failure.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from oathcube.browser.app import CHROMIUM_ARGS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.slow


def _require_browser() -> None:
    have = Path(CHROMIUM).is_file()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        have = False
    if have:
        return
    reason = "no chromium or playwright: apt-get install chromium; pip install -e '.[test]'"
    if os.environ.get("OATHCUBE_REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def served(demo_cube: Path) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """The app on a free loopback port, in a thread of this process; the cube's files'
    digests taken before the first request."""
    from oathcube.browser.answers import Browser
    from oathcube.browser.app import running

    _require_browser()
    before = _digest(demo_cube)
    with running(Browser(demo_cube)) as url:
        yield url, demo_cube, before


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    _require_browser()
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1500, "height": 950})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "console",
        lambda m: errors.append(m.text) if m.type == "error" else None,
    )
    page.errors = errors
    yield page
    context.close()


def _station(cube: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """fsmi's frame times, class names and scores, read from the cube."""
    from oathcube.cube.store import Cube
    from oathcube.views._common import classes_of

    opened = Cube.open(cube)
    ds = opened.station("fsmi")
    classes = classes_of(ds, opened)
    return ds["time"].values, classes.names, classes.scores


def _utc(t: np.datetime64) -> str:
    return str(np.datetime_as_string(np.datetime64(t, "ms"), unit="ms")) + "Z"


def _shown(page: Any) -> tuple[str, str, str]:
    return (
        page.inner_text("[data-testid=frame-time]"),
        page.inner_text("[data-testid=frame-class]").strip(),
        page.inner_text("[data-testid=frame-score]"),
    )


def _wait_frame(page: Any, when: str) -> None:
    """Until the page has shown the frame at ``when`` whole (its neighbours included)."""
    page.wait_for_selector(f"[data-testid=frame-panel][data-shown='{when}']")


def test_night_frame_and_similar_skies_as_the_cube_has_them(
    served: tuple[str, Path, dict[str, str]], page: Any, tmp_path: Path
) -> None:
    """A night picked, a frame clicked on the keogram, the slider moved, similar skies
    asked for and a hit clicked: every time, class, score and hit read off the page
    equals the cube's own."""
    from oathcube import similar

    url, cube, _ = served
    times, names, scores = _station(cube)
    page.goto(url)
    page.wait_for_selector("[data-testid=frame-panel][data-shown]")  # opened on a night
    page.click("[data-testid=night-row][data-night='2011-11-02']")
    page.wait_for_selector("[data-testid=night-title]:has-text('night of 2011-11-02')")
    _wait_frame(page, _utc(times[0]))
    assert "360 frames" in page.inner_text("[data-testid=night-title]")

    # A click at 40 % of the keogram's width: the frame nearest that time.
    box = page.locator("[data-testid=keogram]").bounding_box()
    page.mouse.click(box["x"] + 0.4 * box["width"], box["y"] + box["height"] / 2)
    step = np.median(np.diff(times))
    span = times[-1] + step - times[0]
    wanted = times[0] + (0.4 * span.astype(np.int64)).astype("timedelta64[ns]")
    row = int(np.argmin(np.abs(times - wanted)))
    _wait_frame(page, _utc(times[row]))
    assert _shown(page) == (_utc(times[row]), names[row], f"{scores[row]:.3f}")
    neighbours = page.locator("[data-testid=neighbour]")
    assert neighbours.count() == 7
    assert [neighbours.nth(i).get_attribute("data-time") for i in range(7)] == [
        _utc(t) for t in times[row - 3 : row + 4]
    ]

    # The slider, one frame on.
    page.focus("[data-testid=slider]")
    page.keyboard.press("ArrowRight")
    _wait_frame(page, _utc(times[row + 1]))
    assert _shown(page) == (_utc(times[row + 1]), names[row + 1], f"{scores[row + 1]:.3f}")

    # Similar skies of the shown frame: the hits are oathcube.similar's.
    page.click("[data-testid=similar-button]")
    page.wait_for_selector("[data-testid=hit]")
    expected = similar(cube, station="fsmi", time=times[row + 1], k=12)
    hits = page.locator("[data-testid=hit]")
    assert hits.count() == len(expected) == 12
    for i, want in enumerate(expected.to_dict("records")):
        hit = hits.nth(i)
        assert hit.get_attribute("data-station") == want["station"]
        assert hit.get_attribute("data-time") == _utc(np.datetime64(want["time"], "ns"))
        assert hit.get_attribute("data-class") == want["class"]
        assert abs(float(hit.get_attribute("data-similarity")) - want["score"]) < 1e-9
        assert want["class"] in hit.inner_text()
    # Every thumbnail came from the cube (decoded, not broken).
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=hit] img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    page.screenshot(path=str(tmp_path / "browse.png"), full_page=True)

    # A hit clicked: the page shows that frame.
    third = _utc(np.datetime64(expected.iloc[3]["time"], "ns"))
    assert hits.nth(3).get_attribute("data-time") == third
    hits.nth(3).click()
    _wait_frame(page, third)
    hit_row = int(np.searchsorted(times, np.datetime64(expected.iloc[3]["time"], "ns")))
    assert _shown(page)[1] == names[hit_row]
    assert page.inner_text("[data-testid=error]") == ""
    assert page.errors == []


def test_downloads_are_what_the_page_shows(
    served: tuple[str, Path, dict[str, str]], page: Any
) -> None:
    """The frame PNG, the timeline CSV and the movie links answer with the shown
    frame's pixels, the night's timeline and a GIF of the range."""
    import io

    from PIL import Image

    url, cube, _ = served
    times, _, _ = _station(cube)
    page.goto(url + "?station=fsmi&time=" + _utc(times[50]))
    _wait_frame(page, _utc(times[50]))
    png = page.request.get(url + page.get_attribute("[data-testid=frame-png]", "href"))
    assert png.status == 200
    assert "attachment" in png.headers["content-disposition"]
    from oathcube.cube.store import Cube

    stored = Cube.open(cube).station("fsmi")["pixels"].isel(time=50).values
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png.body()))), stored)
    csv = page.request.get(url + page.get_attribute("[data-testid=timeline-csv]", "href"))
    assert csv.status == 200 and csv.text().startswith("time,class,count,fraction")
    gif = page.request.get(url + page.get_attribute("[data-testid=movie]", "href"))
    assert gif.status == 200 and gif.body()[:4] == b"GIF8"
    assert page.errors == []


def test_bad_requests_are_said_in_the_page_with_a_4xx(
    served: tuple[str, Path, dict[str, str]], page: Any
) -> None:
    """An unknown station or a time with no frame in the address: a 4xx, and the page
    says why at its top; a class filter that no night matches says so too."""
    url, _, _ = served
    response = page.goto(url + "?station=nope")
    assert response.status == 404
    page.wait_for_selector("[data-testid=error]:has-text('no station')")
    assert "nope" in page.inner_text("[data-testid=error]")
    response = page.goto(url + "?station=fsmi&time=2011-11-03T09:00:00")
    assert response.status == 404
    page.wait_for_selector("[data-testid=error]:has-text('no frame of fsmi within 3 s')")
    response = page.goto(url + "?station=fsmi&time=yesterday")
    assert response.status == 400
    page.wait_for_selector("[data-testid=error]:has-text('is not a time')")
    page.goto(url)
    page.wait_for_selector("[data-testid=night-row]")
    page.fill("[data-testid=start]", "2012-01-01")
    page.dispatch_event("[data-testid=start]", "change")
    page.wait_for_selector("[data-testid=nights] >> text=no nights match")
    # The browser logs the 4xx documents asked for above; nothing else went wrong.
    assert all("status of 40" in e for e in page.errors), page.errors


def test_a_session_of_clicks_leaves_the_cube_unchanged(
    served: tuple[str, Path, dict[str, str]], page: Any
) -> None:
    """Read-only: after the other tests' sessions and one more here, every file of the
    cube is byte for byte what it was, and no file was added or removed."""
    url, cube, before = served
    page.goto(url)
    page.wait_for_selector("[data-testid=frame-panel][data-shown]")
    page.select_option("[data-testid=class-filter]", "arc")
    page.wait_for_selector("[data-testid=nights] th:has-text('arc')")
    page.click("[data-testid=similar-button]")
    page.wait_for_selector("[data-testid=hit]")
    assert _digest(cube) == before


#: A page that renders browse.js's anywidget entry point with a stand-in for the
#: notebook's widget model, whose messages go to the kernel side's own code
#: (``oathcube.browser.widget.reply``, exposed to the page as ``window.kernel``).
HARNESS = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="static/browse.css"></head><body><div id="app"></div>
<script type="module">
import widget from "./static/browse.js";
const state = { station: "fsmi", night: "", time: "", error: "" };
const listeners = [];
window.saved = null;
const model = {
  get: (k) => state[k],
  set: (k, v) => { state[k] = v; },
  save_changes: () => { window.saved = { ...state }; },
  on: (event, callback) => { if (event === "msg:custom") listeners.push(callback); },
  off: (event, callback) => { listeners.splice(listeners.indexOf(callback) >>> 0, 1); },
  send: async (content) => {
    const { message, buffers } = await window.kernel(content);
    const bytes = (b) => Uint8Array.from(atob(b), (c) => c.charCodeAt(0));
    const views = buffers.map((b) => new DataView(bytes(b).buffer));
    for (const callback of listeners) callback(message, views);
  },
};
widget.render({ model, el: document.getElementById("app") });
window.second = () => widget.render({ model, el: document.getElementById("app2") });
window.listeners = () => listeners.length;
</script><div id="app2"></div></body></html>"""


def test_the_notebook_widget_shows_the_same_page_over_its_messages(
    served: tuple[str, Path, dict[str, str]], page: Any
) -> None:
    """browse.js as an anywidget: every view comes through the widget's messages,
    answered by the kernel side's ``reply``; pictures arrive as buffers (blob: URLs),
    the clicked frame is the cube's, downloads work without links, and the widget's
    ``time`` follows the page."""
    import base64

    from oathcube.browser.answers import Browser
    from oathcube.browser.widget import reply

    url, cube, _ = served
    times, names, scores = _station(cube)
    kernel = Browser(cube)
    views: list[str] = []

    def answer(content: dict[str, Any]) -> dict[str, Any]:
        views.append(content["view"])
        message, buffers = reply(kernel, content)
        return {"message": message, "buffers": [base64.b64encode(b).decode() for b in buffers]}

    page.expose_function("kernel", answer)
    page.route(url + "harness", lambda route: route.fulfill(body=HARNESS, content_type="text/html"))
    page.goto(url + "harness")
    _wait_frame(page, _utc(times[0]))
    box = page.locator("[data-testid=keogram]").bounding_box()
    page.mouse.click(box["x"] + 0.75 * box["width"], box["y"] + 5)
    span = (times[-1] + np.median(np.diff(times)) - times[0]).astype(np.int64)
    row = int(np.argmin(np.abs(times - (times[0] + np.timedelta64(int(0.75 * span), "ns")))))
    _wait_frame(page, _utc(times[row]))
    assert _shown(page) == (_utc(times[row]), names[row], f"{scores[row]:.3f}")
    assert page.get_attribute("[data-testid=frame-image]", "src").startswith("blob:")
    page.wait_for_function(
        "() => [...document.querySelectorAll('img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.evaluate("window.saved.time") == _utc(times[row])
    assert {"stations", "nights", "night", "frame", "frame.png"} <= set(views)
    with page.expect_download() as download:
        page.click("[data-testid=frame-png]")
    assert download.value.suggested_filename.endswith(".png")
    page.click("[data-testid=similar-button]")
    page.wait_for_selector("[data-testid=hit]")
    assert page.locator("[data-testid=hit]").count() == 12
    # A second view of the same widget (a notebook may show it twice): both get their
    # own answers over the shared messages; closing one leaves the other's.
    # (A function that page.evaluate's expression returns would be called: kept aside.)
    page.evaluate("window.closeSecond = window.second(); 0")
    page.wait_for_selector("#app2 [data-testid=frame-panel][data-shown]")
    assert page.inner_text("#app2 [data-testid=frame-time]") == _utc(times[row])  # where #app is
    assert page.inner_text("#app [data-testid=frame-time]") == _utc(times[row])
    assert page.evaluate("window.listeners()") == 2
    page.evaluate("window.closeSecond()")
    assert page.evaluate("window.listeners()") == 1
    assert page.inner_text("#app [data-testid=error]") == ""
    assert page.errors == []
