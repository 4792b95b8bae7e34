"""The Train tab: a real (short) MuseGAN run through gradio_client, one run per server, stop, save.

Also the upload checks for user data.
"""
import io
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


def test_training_streams_losses_then_saves_and_refuses_a_second_run(client):
    client.predict(LABEL, "Built-in corpus", None, 30, 8, api_name="/train_start")
    with pytest.raises(Exception, match="one run at a time"):
        client.predict(LABEL, "Built-in corpus", None, 30, 8, api_name="/train_start")
    out = _wait(client, lambda o: len({r[0] for r in o[2]["data"]}) >= 2)
    series = {r[1] for r in out[2]["data"]}
    assert {"g_loss", "c_loss", "gp"} <= series
    out = _wait(client, lambda o: "finished" in o[1] or "failed" in o[1])
    assert "finished" in out[1] and "step 30 / 30" in out[1]
    roll, wav = out[3], out[4]  # the preview of the last checkpoint
    assert roll.endswith(".png") and wav.endswith(".wav")
    files, msg = client.predict("pytest-model", api_name="/train_save")
    assert sorted(f.rsplit(".", 1)[-1] for f in files) == ["json", "safetensors"] and "Saved" in msg
    # and the Compose tab can switch to it without a restart
    from composer.ui import compose
    from gradio_client import handle_file
    msg = client.predict([handle_file(f) for f in files], api_name="/train_use_in_compose")
    assert "pytest-model" in msg and compose.MODEL.get().name.startswith("pytest-model@")


def test_stop_ends_the_run(client):
    client.predict(LABEL, "Built-in corpus", None, 5000, 8, api_name="/train_start")
    _wait(client, lambda o: "running" in o[1])
    html = client.predict(api_name="/train_stop")
    assert "stopped" in html
    with pytest.raises(Exception, match="No training run"):
        client.predict(api_name="/train_stop")


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
