"""``bench --only load``: many visitors composing at once on one server, through gradio_client.

The app is started as its own process (``python app.py`` on a free port, as a Space runs it),
then ``users`` simulated visitors act for ``seconds``: each starts a piece from its own seed,
then again and again, 3-5 s (drawn at random) after its last answer, does one of: a new
piece (a new seed), a slider move (a style/chords/groove/melody direction on a random cell,
the event the page sends on release) or a cell re-roll. Every answer's piano roll is kept.

Figures: ``load_users``, ``load_actions``, ``load_p50_ms`` / ``load_p95_ms`` / ``load_max_ms``
(time from request to answer, per action), ``load_errors`` (failed actions) and
``load_crosstalk`` (visitors whose piano roll, at any step, differs from what their own actions
give when replayed alone, in this process, with the same model).

What a visitor waits for is the answer to its action (roll, audio, status; a new piece's grid); the score and
MusicXML a page asks for afterwards (a chained event, which gradio_client does not send) run
in a queue of their own and are not part of these figures.

The app's queue settings are the ones it ships with (``composer.ui.app.CONCURRENCY``); set
``COMPOSER_CONCURRENCY`` to try another value.
"""
from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from composer.paths import PACKAGE_PARENT as ROOT

INSTRUMENTS = ["040 Violin", "041 Viola", "042 Cello", "043 Contrabass"]
N_BARS, TEMPO, TRUNCATION = 4, 90, 0
SLIDER_LEVELS = ("style", "chords", "groove", "melody")


@dataclass
class Visitor:
    index: int
    seed: int
    rng: random.Random
    actions: list[tuple] = field(default_factory=list)   # what it did, to replay
    rolls: list[bytes] = field(default_factory=list)     # the piano roll it got, step by step
    times: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    import httpx
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with status {proc.returncode}")
        try:
            if httpx.head(url, timeout=5).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the app did not answer in time")


def _slider_endpoints(client) -> dict[tuple[str, int], int]:
    """fn_index of each direction slider's release event (private: the page calls them, not the API).

    The client refuses private events; the server runs them for anyone, as for the page, so
    the bench lets its own client call them (nothing on the server changes).
    """
    out = {}
    for i, dep in enumerate(client.config["dependencies"]):
        name = dep.get("api_name") or ""
        for level in SLIDER_LEVELS:
            if name.startswith(f"set_{level}_") and name[len(level) + 5:].isdigit():
                fn = dep.get("id", i)
                out[(level, int(name[len(level) + 5:]))] = fn
                if fn in client.endpoints:
                    client.endpoints[fn].is_valid = True
    return out


def _roll_of(result) -> bytes:
    """The piano-roll PNG of an answer (the first output of every Compose action, a slider's
    too, whose answer has no downloads: they follow in a second event). The roll shows every
    note, so it witnesses whose piece came back; the audio cannot (FluidSynth's output for one
    MIDI differs from render to render)."""
    item = result[0]
    path = item.get("path") if isinstance(item, dict) else getattr(item, "path", item)
    return Path(path).read_bytes()


def _act(visitor: Visitor, client, sliders, url: str, deadline: float) -> None:
    rng = visitor.rng
    first = True
    while time.monotonic() < deadline:
        if first:
            action = ("new", visitor.seed)
            first = False
        else:
            kind = rng.choice(["new", "slider", "slider", "reroll"])
            track = rng.choice(["Soprano", "Alto", "Tenor", "Bass"])
            bar = str(rng.randint(1, N_BARS))
            if kind == "new":
                action = ("new", visitor.seed + 1000 * rng.randint(1, 999))
            elif kind == "slider":
                level, index = rng.choice(sorted(sliders))
                action = ("slider", level, index, round(rng.uniform(-3, 3), 1), track, bar)
            else:
                action = ("reroll", track, bar)
        t = time.perf_counter()
        try:
            if action[0] == "new":
                out = client.predict(action[1], N_BARS, TEMPO, TRUNCATION, *INSTRUMENTS, api_name="/compose_new")
            elif action[0] == "slider":
                out = client.predict(action[3], action[4], action[5], fn_index=sliders[(action[1], action[2])])
            else:
                out = client.predict(action[1], action[2], api_name="/compose_reroll_cell")
            visitor.times.append(time.perf_counter() - t)
            visitor.actions.append(action)
            visitor.rolls.append(_roll_of(out))
        except Exception as exc:  # noqa: BLE001 - every failure is counted, the visitor goes on
            visitor.times.append(time.perf_counter() - t)
            visitor.errors.append(f"{action[0]}: {str(exc)[:200]}")
            if action[0] == "new" and not visitor.actions:
                first = True  # nothing to edit yet
        time.sleep(rng.uniform(3.0, 5.0))


def _replay(visitor: Visitor) -> bool:
    """True when every answer the visitor got is what its own actions give alone."""
    from composer.api.compose import cached_composer, roll_title
    from composer.render.viz import pianoroll_png
    comp = cached_composer(None)
    names = comp.track_names
    programs = [int(c.split()[0]) for c in INSTRUMENTS]
    st = None
    for action, got in zip(visitor.actions, visitor.rolls):
        if action[0] == "new":
            st = comp.new_state(seed=action[1], n_bars=N_BARS, truncation=float(TRUNCATION), tempo=float(TEMPO),
                                programs=programs)
        elif action[0] == "slider":
            _, level, index, value, track, bar = action
            st = comp.set_direction(st, level, index, float(value), track=names.index(track), bar=int(bar) - 1)
        else:
            _, track, bar = action
            st = comp.reroll(st, track=names.index(track), bar=int(bar) - 1)
        if pianoroll_png(comp.midi(st), title=roll_title(st)) != got:
            return False
    return True


def start_app() -> tuple[subprocess.Popen, str]:
    """The app as its own process (``python app.py``) on a free local port, once it answers;
    its training runs go to a temporary folder. Returns the process and its URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1",
               COMPOSER_RUNS=tempfile.mkdtemp(prefix="composer-load-runs-"), GRADIO_ANALYTICS_ENABLED="False")
    log = tempfile.NamedTemporaryFile(prefix="composer-load-app-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, stdout=log, stderr=log,
                            start_new_session=True)
    try:
        _wait_up(url, proc)
    except BaseException:
        stop_app(proc)
        raise
    return proc, url


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def bench(users: int = 20, seconds: float = 120.0, seed: int = 0) -> dict:
    """Run the load test (see the module's docstring) and return its figures."""
    from gradio_client import Client

    from composer.device import use_interactive_threads
    use_interactive_threads()
    proc, url = start_app()
    try:
        rng = random.Random(seed)
        visitors = [Visitor(i, seed=1 + 7919 * i + rng.randint(0, 999), rng=random.Random(seed * 1000 + i))
                    for i in range(users)]
        clients = [Client(url, verbose=False, download_files=False) for _ in visitors]
        sliders = {}
        for c in clients:
            sliders = _slider_endpoints(c)
        # one warm-up answer (the first render loads the soundfont's presets), not counted
        clients[0].predict(0, N_BARS, TEMPO, TRUNCATION, *INSTRUMENTS, api_name="/compose_new")
        deadline = time.monotonic() + seconds
        threads = []
        for v, c in zip(visitors, clients):
            th = threading.Thread(target=_act, args=(v, c, sliders, url, deadline), daemon=True)
            th.start()
            threads.append(th)
            time.sleep(rng.uniform(0.0, 0.2))  # visitors do not arrive in the same millisecond
        for th in threads:
            th.join(seconds + 120)
    finally:
        stop_app(proc)
    times = np.array([t for v in visitors for t in v.times]) * 1000
    errors = [e for v in visitors for e in v.errors]
    crosstalk = sum(not _replay(v) for v in visitors)
    out = {"load_users": users, "load_seconds": seconds, "load_actions": int(times.size),
           "load_p50_ms": round(float(np.percentile(times, 50)), 1) if times.size else None,
           "load_p95_ms": round(float(np.percentile(times, 95)), 1) if times.size else None,
           "load_max_ms": round(float(times.max()), 1) if times.size else None,
           "load_errors": len(errors), "load_crosstalk": crosstalk,
           "load_concurrency": _concurrency()}
    if errors:
        out["load_first_errors"] = errors[:3]
    return out


def _concurrency() -> int | None:
    """The queue concurrency the app ran with (bench does not import the ui: read from its source)."""
    import re
    if os.environ.get("COMPOSER_CONCURRENCY"):
        return int(os.environ["COMPOSER_CONCURRENCY"])
    m = re.search(r'COMPOSER_CONCURRENCY", (\d+)', (ROOT / "composer" / "ui" / "app.py").read_text())
    return int(m.group(1)) if m else None


if __name__ == "__main__":
    import json
    import sys as _sys
    users = int(_sys.argv[1]) if len(_sys.argv) > 1 else 20
    secs = float(_sys.argv[2]) if len(_sys.argv) > 2 else 120.0
    print(json.dumps(bench(users, secs)))
