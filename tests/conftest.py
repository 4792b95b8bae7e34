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
                "test_latents_format", "test_sessions", "test_space", "test_gpu"}
#: Single tests that take seconds (whole corpora, subprocesses, torchrun, a CLI run): `make test`
#: runs them, `make test-fast` (the unit tests, under a minute) does not.
SLOW_TESTS = {
    "test_abc_repeats.py::test_real_tunes_with_repeats_play_as_written",
    "test_abc_repeats.py::test_transposition_round_trips_on_real_tunes",
    "test_abc.py::test_real_tunes_pass_checks",
    "test_pianoroll.py::test_real_chorales_round_trip_every_note",
    "test_cyclegan.py::test_torchrun_two_processes_gloo",
    "test_cyclegan.py::test_trainers_end_to_end_with_resume",
    "test_musegan.py::test_torchrun_two_processes_gloo",
    "test_device.py::test_training_process_reuses_large_blocks_instead_of_faulting_them_in_again",
    "test_harmonize.py::test_cli_writes_midi_and_prints_json",
    "test_compose.py::test_controls_show_the_piece_after_restore_undo_reset_and_reroll",
    "test_audio.py::test_a_long_render_does_not_hold_up_a_short_one",
    "test_transfer.py::test_tab_offers_both_genres_and_says_when_a_piece_is_already_there",
    "test_notes.py::test_continue_tab_handler_and_cli",
    "test_harmonize.py::test_compose_tab_harmonizes_and_undo_gives_the_plain_melody",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        test = f"{item.module.__name__}.py::{item.originalname}"
        if (item.module.__name__ in SLOW_MODULES or test in SLOW_TESTS
                or {"app_client", "client"} & set(item.fixturenames)):
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
