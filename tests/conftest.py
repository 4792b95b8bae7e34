import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def chorale_names():
    """A spread of real Bach chorales from music21's corpus."""
    from composer.music.corpus import chorale_names
    names = chorale_names()
    return names[::12][:30]


@pytest.fixture(scope="session")
def example_midi():
    from composer.music.corpus import example_midi_paths
    return next(iter(example_midi_paths().values()))


@pytest.fixture
def triad_midi():
    """A C-major triad (C4 E4 G4) on the piano, one second long."""
    import pretty_midi
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=0, name="Piano")
    for p in (60, 64, 67):
        inst.notes.append(pretty_midi.Note(velocity=100, pitch=p, start=0.0, end=1.0))
    pm.instruments.append(inst)
    return pm


def run_cli(*args, env=None, timeout=300):
    import subprocess
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "composer", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=e, timeout=timeout)


def _patient_url_ok(url: str, deadline_s: float = 120.0) -> bool:
    """True once ``url`` answers (any HTTP status below 500), polling until ``deadline_s``."""
    import time

    import httpx
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if httpx.head(url, timeout=10).status_code < 500:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


#: Test modules that launch the app, a browser, subprocesses or training: `make test-fast` skips them.
SLOW_MODULES = {"test_browser", "test_app_folk", "test_app_player", "test_app_train", "test_cli", "test_house",
                "test_latents_format"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__ in SLOW_MODULES or {"app_client", "client"} & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def app_client():
    """A gradio_client Client on the whole app, launched inside the test on a free local port."""
    from gradio_client import Client

    from gradio import networking

    from composer.ui.app import build_app
    demo = build_app()
    # Gradio probes its own localhost URL 5 times with 3 s timeouts and, on a busy machine,
    # gives up with "When localhost is not accessible, a shareable link must be created".
    # Wait for our own server instead, as long as it takes to answer.
    original, networking.url_ok = networking.url_ok, _patient_url_ok
    try:
        demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, show_error=True)
    finally:
        networking.url_ok = original
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        from composer.ui.jobs import JOBS
        JOBS.stop()
        demo.close()
