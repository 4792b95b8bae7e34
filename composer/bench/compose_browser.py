"""``compose_browser_p95_ms``: in headless Chromium, from a Compose slider move to the new
audio being playable, as a musician at the keyboard feels it.

The app runs as its own process (``python app.py``: the bench does not import the UI); the
browser moves the first Style slider with the arrow keys (keyboard moves regenerate). Each
time is the page's own clock from the key going down to the player's ``canplay`` event for
the new file (the audio can start), so the harness's polling adds nothing. A 4-bar and a
16-bar piece are timed in turn, each in a fresh app on a machine left to settle first (the
load average at each part's start and end is reported beside its figures). Needs the test dependencies (Playwright) and
Debian's ``chromium``; without them the figures are None with a note.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np

from composer.paths import PACKAGE_PARENT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, deadline_s: float = 180.0) -> bool:
    import httpx
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if httpx.get(url, timeout=5).status_code < 500:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


#: In the page's own clock: when a key went down, and when the player could play its new file
#: (``canplay``: enough of it is in to play on).
CLOCK_JS = """
window.__compose = {key: 0, ready: 0, readySrc: ''};
document.addEventListener('keydown', () => { window.__compose.key = performance.now(); }, true);
const player = document.getElementById('compose-player');
player.addEventListener('canplay', () => {
  window.__compose.ready = performance.now(); window.__compose.readySrc = player.currentSrc;
});
window.__compose.readySrc = player.currentSrc;
"""


def bench(n: int = 40) -> dict:
    """The figures for a 4-bar piece (``compose_browser_*``) and a 16-bar one
    (``compose_browser_16bars_*``), each over ``n`` slider moves in a fresh app (the p95 of
    20 moves is about the second slowest, and swung by 200 ms from run to run on this machine)."""
    out = {}
    for bars in (4, 16):
        out.update(moves(n, bars=bars))
    return out


def _settle(below: float = 1.5, most_s: float = 120.0) -> float:
    """Wait (up to ``most_s``) for the one-minute load average to fall below ``below``: the
    last part's browser and app leave the machine looking busy for a minute, and the app
    reads the load average (composer.render.audio._spare_core). Returns the load average."""
    end = time.monotonic() + most_s
    while os.getloadavg()[0] >= below and time.monotonic() < end:
        time.sleep(2)
    return os.getloadavg()[0]


def moves(n: int = 20, bars: int = 4) -> dict:
    """Median and p95 over ``n`` slider moves on a ``bars``-bar piece."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    app = PACKAGE_PARENT / "app.py"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if chromium is None or sync_playwright is None or not app.exists():
        return {"compose_browser_p95_ms": None,
                "compose_browser_note": "needs chromium, playwright (requirements-dev.txt) and app.py"}
    load_at_start = _settle()
    port = _free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1")
    proc = subprocess.Popen([sys.executable, str(app)], cwd=str(PACKAGE_PARENT), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        if not _wait_for(url):
            return {"compose_browser_p95_ms": None, "compose_browser_note": "the app did not start"}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.goto(url)
            page.wait_for_function("(() => { const a = document.getElementById('compose-player');"
                                   " return a && a.currentSrc && a.readyState >= 3 })()", timeout=120_000)
            page.evaluate(CLOCK_JS)
            if bars != 4:
                box = page.get_by_label("number input for Bars", exact=True).first  # Gradio names the slider's box so
                box.fill(str(bars))
                box.press("Enter")
                page.wait_for_function(f"window.__compose.readySrc.includes('-{bars}bars')", timeout=60_000)
            slider = page.get_by_label("range slider for", exact=False).nth(3)  # the first Style slider
            times = []
            for i in range(n + 2):
                before = page.evaluate("document.getElementById('compose-player').currentSrc")
                slider.focus()
                slider.press("ArrowRight" if i % 2 == 0 else "ArrowLeft")
                page.wait_for_function("b => window.__compose.readySrc !== b && window.__compose.ready > "
                                       "window.__compose.key", arg=before, timeout=30_000)
                if i >= 2:  # two warm-ups
                    times.append(page.evaluate("window.__compose.ready - window.__compose.key"))
                time.sleep(0.3)
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    key = "compose_browser" if bars == 4 else f"compose_browser_{bars}bars"
    return {f"{key}_p95_ms": round(float(np.percentile(times, 95)), 1),
            f"{key}_median_ms": round(float(np.median(times)), 1),
            f"{key}_load_average_at_start": round(load_at_start, 2),
            f"{key}_load_average_at_end": round(os.getloadavg()[0], 2)}
