"""The report page in a real headless browser: Debian's Chromium driven by Playwright.

Outside CI the test is skipped (with the reason) when Chromium or Playwright is missing;
in CI (``CI`` set, as ``.ci/run`` does) it fails instead, so the check cannot vanish.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import imageio.v3 as iio
import pytest

from icpi.report import write_report
from icpi.report.page import compact_table

pytestmark = pytest.mark.slow
pytest_plugins = ["report_fixtures"]  # the fixtures bench_dir, bench_copy, run_copy

CHROMIUM = Path(os.environ.get("ICPI_CHROMIUM", "/usr/bin/chromium"))
# Chromium flags that work on these machines (closed network: no background fetches).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIDEO_STATE = """() => {
  const v = document.querySelector("video.clip");
  return v && {time: v.currentTime, ready: v.readyState, paused: v.paused,
               error: v.error && v.error.message, width: v.videoWidth};
}"""


@pytest.fixture(scope="module")
def browser():
    missing = []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("the Python package playwright (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        missing.append(f"Chromium at {CHROMIUM} (apt-get install -y chromium chromium-driver)")
    if missing:
        reason = "needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; .ci/run installs it before the tests")
        pytest.skip(reason)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def poll(page, script, done, timeout_s=20.0):
    t0 = time.monotonic()
    state = page.evaluate(script)
    while not done(state) and time.monotonic() - t0 < timeout_s:
        time.sleep(0.1)
        state = page.evaluate(script)
    return state


def test_page_loads_cleanly_shows_the_table_and_the_video_plays(browser, bench_copy, tmp_path):
    out = tmp_path / "report.html"
    write_report(bench_copy, out, max_videos=2)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    console, requests = [], []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(out.as_uri(), wait_until="load")

    table = page.locator("#summary-table")
    assert table.is_visible()
    assert table.locator("tbody tr").count() == 6
    assert table.locator("tbody tr").first.locator("td").first.inner_text() == "slide"
    assert page.evaluate("() => document.getElementById('curves-figure').naturalWidth") > 500

    page.locator("video.clip").first.scroll_into_view_if_needed()
    state = poll(page, VIDEO_STATE, lambda s: s and s["time"] > 0.5)
    assert state["time"] > 0.5, state  # it plays (muted autoplay once on screen)
    assert state["ready"] >= 3 and not state["paused"] and state["error"] is None
    assert state["width"] == 320
    later = poll(page, VIDEO_STATE, lambda s: s["time"] != state["time"], timeout_s=2)
    assert later["time"] != state["time"]  # still advancing (or looped)

    card = page.locator("article.card").first
    card.locator("details.iterations > summary").click()
    assert card.locator("details.iterations table").is_visible()
    assert card.bounding_box()["width"] > 1000  # an opened card takes the whole row

    shot = Path(os.environ.get("ICPI_REPORT_SCREENSHOT", tmp_path / "report.png"))
    page.screenshot(path=str(shot), full_page=True)
    pixels = iio.imread(shot)
    assert pixels.shape[0] > 900 and pixels.std() > 10

    assert [m for m in console if m.startswith(("error", "pageerror"))] == [], console
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    page.close()


def test_a_video_the_browser_cannot_play_falls_back_to_its_last_frame(browser, run_copy, tmp_path):
    result = write_report(run_copy, max_videos=1)
    html = result.path.read_text()
    start = html.index('<video class="clip" src="') + len('<video class="clip" src="')
    end = html.index('"', start)
    broken = tmp_path / "broken.html"
    broken.write_text(html[:start] + "data:video/mp4;base64,AAAAAAAA" + html[end:])
    page = browser.new_page()
    page.goto(broken.as_uri(), wait_until="load")
    state = poll(
        page,
        "() => document.querySelectorAll('video.clip').length",
        lambda n: n == 0,
        timeout_s=10,
    )
    assert state == 0
    assert page.locator("img.clip").first.get_attribute("src").startswith("data:image/jpeg")
    assert "cannot play this MP4" in page.locator("figure p.note").first.inner_text()
    page.close()


TABLE_FITS = """() => {
  const t = document.getElementById("summary-table");
  return {table: t.scrollWidth, room: t.closest(".scroll").clientWidth,
          page: document.documentElement.scrollWidth};
}"""


@pytest.mark.parametrize("width", [1400, 1280])
def test_the_summary_table_fits_the_page_without_scrolling_sideways(
    browser, bench_copy, tmp_path, monkeypatch, width
):
    import icpi.manipulation.bench as bench

    original = bench.summarise

    def wider(rows, **kwargs):
        # every column summarise makes (final and best-so-far, paired on both) with the
        # longest method label of the presets
        out = [{**s, "method": f"{s['method']}[model=off;final_best=false]"}
               for s in original(rows, **kwargs)]  # fmt: skip
        heads[:] = compact_table(out)[0]
        return out

    heads: list[str] = []
    monkeypatch.setattr(bench, "summarise", wider)
    out = tmp_path / "report.html"
    write_report(bench_copy, out, max_videos=0)
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(out.as_uri(), wait_until="load")
    sizes = page.evaluate(TABLE_FITS)
    assert sizes["table"] <= sizes["room"] and sizes["page"] <= width, sizes
    assert page.locator("#summary-table thead th").count() == len(heads) >= 10
    assert any("best" in h and "W/T/L" in h for h in heads), heads
    page.close()
