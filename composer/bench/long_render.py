"""``compose_during_long_render_max_ms``: one visitor's Compose action while another visitor's
15-minute MIDI renders in the Player (issue 12: a long render must not hold up a phrase).

The app runs as its own process. Visitor A uploads a 15-minute, three-track MIDI to
``/render_midi``; while it renders, visitor B calls ``/compose_new`` with new seeds, files
downloaded as a browser would. The figures are B's times alone (before A starts) and during
A's render, counting only the actions that finished while A's render was still running.
"""
from __future__ import annotations

import tempfile
import threading
import time

import numpy as np
import pretty_midi

from composer.bench.load import INSTRUMENTS, N_BARS, TEMPO, TRUNCATION, start_app, stop_app

LONG_MINUTES = 14.96  # just under the 15-minute upload limit


def long_midi(minutes: float = LONG_MINUTES) -> pretty_midi.PrettyMIDI:
    """Three tracks (piano, cello, bass) of sixteenth-ish notes for ``minutes``."""
    pm = pretty_midi.PrettyMIDI()
    n = int(minutes * 60 / 0.25)
    for program, base in ((0, 60), (42, 48), (32, 36)):
        inst = pretty_midi.Instrument(program)
        inst.notes = [pretty_midi.Note(80, base + (i * 7) % 12, i * 0.25, i * 0.25 + 0.24) for i in range(n)]
        pm.instruments.append(inst)
    return pm


def bench(actions_alone: int = 5, max_actions: int = 15) -> dict:
    """Run the check (see the module's docstring) and return its figures."""
    from gradio_client import Client, handle_file
    path = tempfile.NamedTemporaryFile(prefix="composer-long-", suffix=".mid", delete=False).name
    long_midi().write(path)
    proc, url = start_app()
    try:
        a, b = Client(url, verbose=False), Client(url, verbose=False)

        def compose(seed: int) -> float:
            t = time.perf_counter()
            b.predict(seed, N_BARS, TEMPO, TRUNCATION, *INSTRUMENTS, api_name="/compose_new")
            return time.perf_counter() - t

        compose(0)  # warm-up, not counted
        alone = [compose(s) for s in range(1, actions_alone + 1)]
        done, took = threading.Event(), {}

        def render():
            t = time.perf_counter()
            try:
                a.predict(handle_file(path), api_name="/render_midi")
            finally:
                took["s"] = time.perf_counter() - t
                done.set()

        threading.Thread(target=render, daemon=True).start()
        time.sleep(2.0)  # the upload is in and the long render has started
        during, seed = [], 100
        while not done.is_set() and len(during) < max_actions:
            t = compose(seed)
            seed += 1
            if not done.is_set():
                during.append(t)
        done.wait(600)
    finally:
        stop_app(proc)
    ms = lambda xs, q: round(1000 * float(np.percentile(xs, q)), 1) if xs else None  # noqa: E731
    return {"compose_alone_median_ms": ms(alone, 50), "compose_during_long_render_median_ms": ms(during, 50),
            "compose_during_long_render_max_ms": ms(during, 100), "compose_during_long_render_actions": len(during),
            "long_render_minutes": LONG_MINUTES, "long_render_s": round(took.get("s", float("nan")), 1)}
