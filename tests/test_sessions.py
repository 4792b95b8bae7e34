"""One Space, many musicians: two gradio_client sessions on one app cannot disturb each other.

- B cannot stop or save A's training run, sees it read-only with the time left, and cannot start another;
- a reload (a new session with A's owner token from the browser) keeps A's ownership;
- A's "Use in Compose" changes A's model only: B's Compose output stays bit-identical;
- a trainer whose app was killed (-9) is found by the restarted app, and stays A's.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from composer.render import outputs

from conftest import ROOT, _patient_url_ok

LABEL = "MuseGAN (four-voice chorales)"
COMPOSE_ARGS = (3, 4, 90, 0, "040 Violin", "041 Viola", "042 Cello", "043 Contrabass")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The whole app in this process, its training runs in a folder of their own."""
    from gradio import networking

    from composer.ui.app import build_app, queue
    old = os.environ.get("COMPOSER_RUNS")
    os.environ["COMPOSER_RUNS"] = str(tmp_path_factory.mktemp("runs"))
    demo = build_app()
    original, networking.url_ok = networking.url_ok, _patient_url_ok
    try:
        queue(demo).launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, show_error=True)
    finally:
        networking.url_ok = original
    try:
        yield demo.local_url
    finally:
        from composer.ui.jobs import JOBS
        JOBS.stop()
        demo.close()
        if old is None:
            os.environ.pop("COMPOSER_RUNS", None)
        else:
            os.environ["COMPOSER_RUNS"] = old


def _client(url):
    from gradio_client import Client
    return Client(url, verbose=False)


def _wait(client, until, token=None, timeout=300):
    t, out = time.time(), None
    while time.time() - t < timeout:
        out = client.predict(token, api_name="/train_status")
        if until(out):
            return out
        time.sleep(1.5)
    raise AssertionError(f"timed out; last status: {out and out[1]}")


def _bytes(path) -> bytes:
    return Path(path).read_bytes()


def _compose(client) -> tuple[bytes, bytes]:
    """One new piece: its MIDI bytes and its piano roll PNG bytes.

    Not the WAV: FluidSynth's output for one MIDI differs from render to render in one
    process (up to ~13,000 LSB, measured), so audio is no witness of the notes.
    """
    out = client.predict(*COMPOSE_ARGS, api_name="/compose_new")
    png, midi = out[0], out[4][0]
    return _bytes(midi), _bytes(png)


def test_a_run_is_its_owners_and_use_in_compose_is_per_session(app):
    a, b = _client(app), _client(app)
    b_before = _compose(b)
    a_before = _compose(a)
    assert a_before == b_before  # same seed and model: the same piece, bit for bit

    out = a.predict(LABEL, "Built-in corpus", None, 40, 8, None, api_name="/train_start")
    token = out[-1]
    assert isinstance(token, str) and len(token) >= 16  # the page's owner token, kept by the browser

    # B sees the run read-only, cannot stop, save or start one
    status = _wait(b, lambda o: "running" in o[1])
    assert "The trainer is busy" in status[1] and ("minutes left" in status[1] or "not known yet" in status[1])
    with pytest.raises(Exception, match="belongs to another visitor"):
        b.predict(api_name="/train_stop")
    with pytest.raises(Exception, match="only the visitor who started"):
        b.predict("stolen", api_name="/train_save")
    with pytest.raises(Exception, match="The trainer is busy"):
        b.predict(LABEL, "Built-in corpus", None, 30, 8, None, api_name="/train_start")
    # A's own view: no "busy" message
    mine = a.predict(token, api_name="/train_status")
    assert "trainer is busy" not in mine[1]

    # a reload: a new session with the token from the browser is still the owner
    a2 = _client(app)
    out = _wait(a2, lambda o: "finished" in o[1] or "failed" in o[1], token=token)
    assert "finished" in out[1], out[1]
    assert "trainer is busy" not in out[1] and "another visitor" not in out[1]
    files, msg = a2.predict("session-model", token, api_name="/train_save")
    assert "Saved" in msg

    # B cannot save it after it finished either, nor use A's file
    with pytest.raises(Exception, match="only the visitor who started"):
        b.predict("stolen", api_name="/train_save")
    from gradio_client import handle_file
    with pytest.raises(Exception, match="not one you saved"):
        b.predict([handle_file(f) for f in files], api_name="/train_use_in_compose")

    # A's "Use in Compose": A's session composes with the new model, B's is bit-identical
    msg = a2.predict([handle_file(f) for f in files], token, api_name="/train_use_in_compose")
    assert "session-model" in msg
    a_after = _compose(a2)
    assert a_after[0] != a_before[0]  # a 40-step generator writes other notes
    assert _compose(b) == b_before
    assert _compose(_client(app)) == b_before  # a brand-new visitor gets the shipped model
    assert _compose(a) == a_before  # and so does A's other tab (its own session)


def test_a_reload_keeps_ownership_and_only_the_owner_stops(app):
    a, b = _client(app), _client(app)
    token = a.predict(LABEL, "Built-in corpus", None, 5000, 8, None, api_name="/train_start")[-1]
    _wait(a, lambda o: "running" in o[1], token=token)
    with pytest.raises(Exception, match="belongs to another visitor"):
        b.predict(api_name="/train_stop")
    with pytest.raises(Exception, match="belongs to another visitor"):
        b.predict("not-the-token-but-long-enough", api_name="/train_stop")
    assert "running" in b.predict(api_name="/train_status")[1]
    reloaded = _client(app)  # the same browser after a reload: a new session, the same token
    html = reloaded.predict(token, api_name="/train_stop")
    assert "stopped" in html
    with pytest.raises(Exception, match="No training run"):
        reloaded.predict(token, api_name="/train_stop")
    # the trainer is free again: B may start (and stop) a run of its own
    tb = b.predict(LABEL, "Built-in corpus", None, 5000, 8, None, api_name="/train_start")[-1]
    assert tb != token
    assert "stopped" in b.predict(tb, api_name="/train_stop")


def test_session_model_choice_helpers():
    from composer.ui import compose
    choice = compose.new_model_choice()
    assert compose.checkpoint_of(choice) is None
    mine = compose.with_model(choice, "mine", "/x/mine.safetensors")
    assert compose.checkpoint_of(mine) == "/x/mine.safetensors" and choice["models"] == {}  # a copy
    back = compose.choose_model(compose.SHIPPED, mine)
    assert compose.checkpoint_of(back) is None and "mine" in back["models"]
    with pytest.raises(Exception):
        compose.choose_model("someone-else", mine)


# ------------------------------------------------------------------------------------------------
# A trainer orphaned by kill -9 of the app
# ------------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(port: int, env: dict) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=dict(env, GRADIO_SERVER_PORT=str(port)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    end = time.time() + 300
    while time.time() < end:
        if proc.poll() is not None:
            raise AssertionError(f"the app exited with {proc.returncode}")
        if _patient_url_ok(url, 5):
            return proc
    proc.kill()
    raise AssertionError("the app did not start")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def test_a_trainer_orphaned_by_kill_9_is_found_and_stays_its_owners(tmp_path):
    runs = tmp_path / "runs"
    env = dict(os.environ, COMPOSER_RUNS=str(runs), PYTHONPATH=str(ROOT))
    port = _free_port()
    app = _serve(port, env)
    pid = None
    try:
        a = _client(f"http://127.0.0.1:{port}/")
        token = a.predict(LABEL, "Built-in corpus", None, 20000, 8, None, api_name="/train_start")[-1]
        _wait(a, lambda o: "running" in o[1], token=token)
        lock = json.loads((runs / "active.json").read_text())
        pid = lock["pid"]
        assert _alive(pid) and token not in json.dumps(lock)  # the lock keeps a hash, not the token
        os.kill(app.pid, signal.SIGKILL)
        app.wait(30)
        time.sleep(1)
        assert _alive(pid)  # the trainer outlived its app

        app = _serve(port, env)
        url = f"http://127.0.0.1:{port}/"
        b = _client(url)
        status = b.predict(api_name="/train_status")[1]
        assert "running" in status and "The trainer is busy" in status  # found: the one-run rule holds
        with pytest.raises(Exception, match="The trainer is busy"):
            b.predict(LABEL, "Built-in corpus", None, 30, 8, None, api_name="/train_start")
        with pytest.raises(Exception, match="belongs to another visitor"):
            b.predict(api_name="/train_stop")
        a2 = _client(url)  # A's browser after the restart: the same token
        status = a2.predict(token, api_name="/train_status")[1]
        assert "still yours" in status
        assert "stopped" in a2.predict(token, api_name="/train_stop")
        assert not _alive(pid) and not (runs / "active.json").exists()
    finally:
        if pid and _alive(pid):
            os.kill(pid, signal.SIGKILL)
        if app.poll() is None:
            os.kill(app.pid, signal.SIGKILL)
            app.wait(30)


def test_gradio_forgets_what_it_served_once_it_is_as_old_as_the_output_folders(monkeypatch):
    """Downloads are copied into Gradio's cache; the app has Gradio delete those copies once
    they are as old as its own output folders may be, so a busy Space's disk does not fill.
    Compose's live roll and audio are not copied: they are served from the app's live folders
    (swept by the app)."""
    from gradio_client import Client

    from composer.ui import app as ui_app
    monkeypatch.setattr(ui_app, "CACHE_SWEEP_S", 1)
    monkeypatch.setattr(ui_app, "OUTPUT_MAX_AGE_S", 2)
    demo = ui_app.queue(ui_app.build_app())
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        out = Client(demo.local_url, verbose=False, download_files=False).predict(*COMPOSE_ARGS,
                                                                                 api_name="/compose_new")
        path = (lambda f: Path(f["path"] if isinstance(f, dict) else f.path))
        roll, wav, midi = path(out[0]), path(out[1]), path(out[4][0])
        assert roll.parent == wav.parent and roll.parent.parent == outputs.LIVE_ROOT
        assert roll.suffix == ".png" and wav.suffix == ".wav"
        assert midi.exists() and midi.suffix == ".mid" and outputs.LIVE_ROOT not in midi.parents
        deadline = time.monotonic() + 30
        while midi.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not midi.exists(), "Gradio's copy of the MIDI is still there"
    finally:
        demo.close()
