"""The Train tab: a real (short) MuseGAN run through gradio_client, one run per server, stop, save.

Also the upload checks for user data.
"""
import io
import math
import os
import signal
import sys
import time
import zipfile

import pretty_midi
import pytest

from composer.errors import DataError
from composer.ui.jobs import prepare_upload
from composer.music.midi import midi_bytes

LABEL = "MuseGAN (four-voice chorales)"


@pytest.fixture(scope="module")
def client(app_client):
    return app_client


def _wait(client, until, timeout=240):
    t = time.time()
    while time.time() - t < timeout:
        out = client.predict(api_name="/train_status")
        if until(out):
            return out
        time.sleep(1.5)
    raise AssertionError(f"timed out; last status: {out[1]}")


def _points(status):
    """The chart's rows in a /train_status answer (an update: shown once it has points)."""
    plot = status[2]
    plot = plot.get("value") or {} if plot.get("__type__") == "update" else plot
    return plot.get("data") or []


def test_training_streams_losses_then_saves_and_refuses_a_second_run(client):
    token = client.predict(LABEL, "Built-in corpus", None, 30, 8, api_name="/train_start")[-1]
    with pytest.raises(Exception, match="one run at a time"):
        client.predict(LABEL, "Built-in corpus", None, 30, 8, token, api_name="/train_start")
    out = _wait(client, lambda o: len({r[0] for r in _points(o)}) >= 2)
    series = {r[1] for r in _points(out)}
    assert {"g_loss", "c_loss", "gp"} <= series
    out = _wait(client, lambda o: "finished" in o[1] or "failed" in o[1])
    assert "finished" in out[1] and "step 30 / 30" in out[1]
    roll, wav = out[3], out[4]  # the preview of the last checkpoint
    assert roll.endswith(".png") and wav.endswith(".wav")
    files, msg = client.predict("pytest-model", token, api_name="/train_save")
    assert sorted(f.rsplit(".", 1)[-1] for f in files) == ["json", "safetensors"] and "Saved" in msg
    # and this session's Compose tab can switch to it without a restart (tests/test_sessions.py:
    # for this session only)
    from gradio_client import handle_file
    msg = client.predict([handle_file(f) for f in files], token, api_name="/train_use_in_compose")
    assert "pytest-model@" in msg


def test_stop_ends_the_run_within_two_seconds_even_when_sigint_is_ignored(client):
    # a server started in the background (nohup, &) hands its children an ignored SIGINT
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        token = client.predict(LABEL, "Built-in corpus", None, 5000, 8, api_name="/train_start")[-1]
    finally:
        signal.signal(signal.SIGINT, previous)
    _wait(client, lambda o: "running" in o[1] and "step 0 /" not in o[1])
    from composer.ui.jobs import JOBS
    pid = JOBS.current().pid
    t = time.monotonic()
    html = client.predict(token, api_name="/train_stop")
    assert time.monotonic() - t < 3.0  # 2 s for the trainer, the rest for the HTTP round trip
    assert "stopped" in html
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(Exception, match="No training run"):
        client.predict(token, api_name="/train_stop")


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _midi() -> bytes:
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes.append(pretty_midi.Note(90, 60, 0, 1))
    pm.instruments.append(inst)
    return midi_bytes(pm)


def test_upload_keeps_good_files_and_says_why_others_were_skipped(tmp_path):
    z = tmp_path / "data.zip"
    z.write_bytes(_zip({"a/good.mid": _midi(), "../../escape.mid": _midi(), "bad.mid": b"MThd broken",
                        "notes.txt": b"hello", "__MACOSX/._good.mid": b"junk"}))
    out = prepare_upload([z], (".mid", ".midi"), tmp_path / "dest")
    written = sorted(p.name for p in (tmp_path / "dest").iterdir())
    assert written == ["escape.mid", "good.mid"]  # flattened: no path from the archive is used
    assert not (tmp_path.parent / "escape.mid").exists()
    assert any("bad.mid" in s and "damaged" in s for s in out.skipped)
    assert any("notes.txt" in s for s in out.skipped)


def test_upload_with_nothing_usable_is_an_error(tmp_path):
    z = tmp_path / "data.zip"
    z.write_bytes(_zip({"x.txt": b"x"}))
    with pytest.raises(DataError, match="no usable"):
        prepare_upload([z], (".mid", ".midi"), tmp_path / "dest")
    bad = tmp_path / "not.zip"
    bad.write_bytes(b"PK nope")
    with pytest.raises(DataError, match="not a readable zip"):
        prepare_upload([bad], (".mid",), tmp_path / "dest2")


# ------------------------------------------------------------------------------------------------
# Zips: inflated bytes streamed and counted, count and size checked before any parsing
# ------------------------------------------------------------------------------------------------

def _lying_zip(path, name: str, data: bytes, declared: int):
    """A zip whose member declares ``declared`` bytes but inflates to ``data``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, data)
    raw = bytearray(path.read_bytes())
    size = len(data).to_bytes(4, "little")
    new = declared.to_bytes(4, "little")
    # the uncompressed size sits in the local header (offset 22) and the central directory (offset 24)
    local = raw.find(b"PK\x03\x04")
    assert raw[local + 22:local + 26] == size
    raw[local + 22:local + 26] = new
    central = raw.find(b"PK\x01\x02")
    assert raw[central + 24:central + 28] == size
    raw[central + 24:central + 28] = new
    path.write_bytes(bytes(raw))


def test_a_zip_that_lies_about_its_sizes_is_stopped_at_the_limit(tmp_path):
    import tracemalloc

    from composer.ui.jobs import _inflate
    bomb = tmp_path / "bomb.zip"
    _lying_zip(bomb, "zeros.abc", b"K:D\n" + bytes(8 * 1024 * 1024), declared=1000)  # 8 MB claiming 1 kB
    assert bomb.stat().st_size < 100_000
    tracemalloc.start()
    with pytest.raises(DataError, match="cannot be unpacked"):
        prepare_upload([bomb], (".abc",), tmp_path / "dest")
    # the inflater itself stops at its cap, whatever the zip says
    honest = tmp_path / "honest.zip"
    honest.write_bytes(_zip({"z.abc": bytes(8 * 1024 * 1024)}))
    with zipfile.ZipFile(honest) as zf:
        assert _inflate(zf, zf.infolist()[0], 1024 * 1024) is None
        assert len(_inflate(zf, zf.infolist()[0], 8 * 1024 * 1024)) == 8 * 1024 * 1024
    tracemalloc.stop()
    # a MIDI member over the MIDI limit is skipped with its reason, the others kept
    z = tmp_path / "both.zip"
    z.write_bytes(_zip({"good.mid": _midi(), "big.mid": _midi() + bytes(3 * 1024 * 1024)}))
    out = prepare_upload([z], (".mid",), tmp_path / "dest2")
    assert out.accepted == ["good.mid"] and any("big.mid: over 2 MB unpacked" in s for s in out.skipped), out.skipped


def test_unpacked_total_is_counted_in_inflated_bytes(tmp_path, monkeypatch):
    from composer.ui import jobs
    monkeypatch.setattr(jobs, "MAX_UNPACKED_BYTES", 3 * 1024 * 1024)
    z = tmp_path / "four.zip"
    z.write_bytes(_zip({f"t{i}.abc": b"K:D\n" + bytes(1024 * 1024) for i in range(2)}))
    z2 = tmp_path / "more.zip"
    z2.write_bytes(_zip({f"u{i}.abc": b"K:D\n" + bytes(1024 * 1024) for i in range(2)}))
    with pytest.raises(DataError, match="over 3 MB unpacked"):  # each zip is under, both together are not
        prepare_upload([z, z2], (".abc",), tmp_path / "dest")


def test_count_and_total_are_checked_before_any_file_is_parsed(tmp_path, monkeypatch):
    from composer.music import midi as midi_mod
    from composer.ui import jobs
    parsed = []
    real = midi_mod.load_midi_bytes
    monkeypatch.setattr(midi_mod, "load_midi_bytes", lambda data, **kw: parsed.append(1) or real(data, **kw))
    monkeypatch.setattr(jobs, "MAX_FILES", 10)
    many = tmp_path / "many.zip"
    many.write_bytes(_zip({f"d{i}/x{i}.mid": _midi() for i in range(11)}))
    with pytest.raises(DataError, match="11 files; the limit is 10"):
        prepare_upload([many], (".mid",), tmp_path / "d1")
    monkeypatch.setattr(jobs, "MAX_UNPACKED_BYTES", 200)
    few = tmp_path / "few.zip"
    few.write_bytes(_zip({f"x{i}.mid": _midi() for i in range(5)}))
    with pytest.raises(DataError, match="unpack"):
        prepare_upload([few], (".mid",), tmp_path / "d2")
    assert parsed == []  # refused before a single MIDI was read


def test_one_upload_limit_in_the_ui_the_server_and_the_unpacker(tmp_path):
    from composer.ui import jobs
    from composer.ui.app import launch_kwargs
    assert launch_kwargs()["max_file_size"] == jobs.MAX_UPLOAD_BYTES
    import inspect

    from composer.ui import train
    assert "upload_limit_text()" in inspect.getsource(train.build)  # stated on the upload itself
    assert jobs.upload_limit_text() == "20 MB per file"
    big = tmp_path / "big.zip"
    with open(big, "wb") as f:
        f.truncate(jobs.MAX_UPLOAD_BYTES + 1)
    with pytest.raises(DataError, match="the upload limit is 20 MB per file"):
        prepare_upload([big], (".mid",), tmp_path / "d")


def test_a_busy_trainer_refuses_before_unpacking(monkeypatch):
    from composer.ui import jobs, train

    class Busy:
        running = True
        trainable = jobs.TRAINABLES["musegan"]

        def owned_by(self, owner):
            return False

        def busy_text(self):
            return "The trainer is busy (test): about 3 minutes left."
    monkeypatch.setattr(jobs.JOBS, "running_job", lambda: Busy())
    monkeypatch.setattr(train, "prepare_upload", lambda *a, **k: pytest.fail("unpacked while busy"))
    with pytest.raises(Exception, match="about 3 minutes left"):
        train.start(LABEL, "My files", ["x.zip"], 30, 8, None, None)


def test_the_loss_chart_never_gets_non_finite_points_and_stays_hidden_until_it_has_one():
    from composer.ui.train import loss_frame, plot_update
    recs = [{"step": 1, "g_loss": math.inf, "c_loss": 1.5}, {"step": 2, "g_loss": math.nan, "c_loss": -math.inf},
            {"kind": "ckpt"}, {"step": 3, "g_loss": 0.5}]
    frame = loss_frame(recs, ("g_loss", "c_loss"))
    assert frame.values.tolist() == [[1, "c_loss", 1.5], [3, "g_loss", 0.5]]
    assert plot_update(frame)["visible"] is True
    assert plot_update(loss_frame([], ("g_loss",)))["visible"] is False


def test_the_status_says_stopping_while_the_trainer_goes(tmp_path):
    from composer.ui.jobs import TRAINABLES, TrainingJob
    job = TrainingJob(TRAINABLES["musegan"], tmp_path, 100, 8, "builtin")
    job.proc = __import__("subprocess").Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                                               start_new_session=True)
    job.pid = job.proc.pid
    assert job.state() == "running"
    job.stopped_by_user = True
    assert job.state() == "stopping"
    t = time.monotonic()
    job.stop()
    assert time.monotonic() - t < 2.1 and job.state() == "stopped"
