"""A real browser (Debian chromium through Playwright) moves a Compose slider and hears/sees the change.

The screenshot is kept as a test artefact in artifacts/compose_slider.png.
"""
import shutil
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (make test installs it)")
def test_slider_changes_piano_roll_and_audio():
    from playwright.sync_api import sync_playwright

    from composer.ui.app import build_app  # the shipped model: what a musician hears when moving a slider
    demo = build_app()
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(demo.local_url)

            def roll_src():
                return page.locator("img[src*='composer-seed']").first.get_attribute("src")

            def audio_src():  # the file the player plays, new for every render
                return page.evaluate("document.getElementById('compose-player').currentSrc")

            page.wait_for_selector("img[src*='composer-seed']", timeout=60_000)
            page.wait_for_function("document.getElementById('compose-player').currentSrc.endsWith('.wav')",
                                   timeout=30_000)
            before_roll, before_audio = roll_src(), audio_src()
            slider = page.get_by_label("range slider for", exact=False).nth(3)  # the first Style slider
            box = slider.bounding_box()
            page.mouse.click(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)
            deadline = time.time() + 30
            while time.time() < deadline and (roll_src() == before_roll or audio_src() == before_audio):
                time.sleep(0.25)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "compose_slider.png"))
            assert float(slider.input_value()) > 1.5
            assert roll_src() != before_roll, "the piano roll did not change"
            assert audio_src() != before_audio, "the audio did not change"
            # "Play after every change" is on: the move was a click (a user gesture), so it plays
            page.wait_for_function("!document.getElementById('compose-player').paused", timeout=10_000)
            # "Loop" loops the player at once, in the page (no round trip)
            assert not page.evaluate("document.getElementById('compose-player').loop")
            page.locator("#compose-loop input[type=checkbox]").check()
            page.wait_for_function("document.getElementById('compose-player').loop", timeout=5_000)
            # the score and downloads follow once the piece has been on screen a moment
            page.wait_for_selector("a[href*='.musicxml']", state="attached",
                                   timeout=60_000)
            browser.close()
    finally:
        demo.close()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (make test installs it)")
@pytest.mark.parametrize("width, height", [(1366, 768), (1920, 1080)])
def test_the_piece_stays_in_view_and_the_playhead_follows_the_audio(width, height):
    from playwright.sync_api import sync_playwright

    from composer.ui.app import build_app
    demo = build_app()
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--autoplay-policy=no-user-gesture-required"])
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(demo.local_url)
            page.wait_for_selector("#compose-roll img", timeout=60_000)
            page.wait_for_function("document.getElementById('compose-player').currentSrc.endsWith('.wav')",
                                   timeout=30_000)
            # scroll the controls down to the melody sliders, as a musician shaping a voice does
            page.get_by_text("Melody: the selected voice in the selected bar").first.scroll_into_view_if_needed()
            page.evaluate("window.scrollBy(0, 400)")
            time.sleep(0.5)
            assert page.evaluate("window.scrollY") > 300  # the controls did scroll
            for sel in ("#compose-roll img", "#compose-audio"):
                box = page.locator(sel).first.bounding_box()
                middle = box["y"] + box["height"] / 2
                assert 0 <= middle <= height, f"{sel} scrolled out of view ({box})"
            def playhead():
                return page.evaluate("(() => { const l = document.getElementById('compose-playhead-line');"
                                     " return l && l.style.display === 'block' ? l.getBoundingClientRect().left : null })()")

            def samples(n):
                out = []
                for _ in range(n):
                    time.sleep(0.25)
                    out.append(playhead())
                return out
            lefts = samples(4)  # autoplay (on by default) may already be playing the piece
            if len({x for x in lefts if x is not None}) < 2:
                page.evaluate("document.getElementById('compose-player').play()")
                lefts = samples(12)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"compose_{width}x{height}.png"))
            moving = [x for x in lefts if x is not None]
            assert len(moving) >= 2 and moving[-1] > moving[0], f"the playhead did not move: {lefts}"
            browser.close()
    finally:
        demo.close()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (make test installs it)")
def test_after_a_run_of_quick_moves_the_downloads_are_the_piece_that_plays():
    """Moves made faster than the score can follow skip the superseded scores, and the last
    move still gets its own: the latents JSON offered for download is the piece on screen."""
    from playwright.sync_api import sync_playwright

    from composer.api.compose import ComposeState, cached_composer
    from composer.ui.app import build_app
    demo = build_app()
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(demo.local_url)
            page.wait_for_selector("a[href$='.json']", state="attached", timeout=60_000)
            slider = page.get_by_label("range slider for", exact=False).nth(3)  # the first Style slider
            first = page.locator("a[href$='.json']").first.get_attribute("href")
            for _ in range(5):
                slider.focus()
                slider.press("ArrowRight")
                time.sleep(0.4)
            value = float(slider.input_value())
            assert value == pytest.approx(0.5)
            deadline = time.time() + 60
            latents = None
            while time.time() < deadline:
                href = page.locator("a[href$='.json']").first.get_attribute("href")
                if href != first:
                    st = ComposeState.from_json(page.request.get(href).text())
                    latents = cached_composer(None).direction_value(st, "style", 0)
                    if latents == pytest.approx(value, abs=0.01):
                        break
                time.sleep(0.5)
            assert latents == pytest.approx(value, abs=0.01), f"downloads show style {latents}, the slider {value}"
            browser.close()
    finally:
        demo.close()
