"""The Player tab through gradio_client against the app launched in the test."""
import numpy as np
import pytest
from gradio_client import handle_file

from composer.render.audio import read_wav


@pytest.fixture(scope="module")
def client(app_client):
    return app_client


def test_render_midi_gives_roll_audio_and_downloads(client, example_midi):
    roll, wav, files, score, status, *_ = client.predict(handle_file(str(example_midi)), api_name="/render_midi")
    with open(roll, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    x, sr = read_wav(wav)
    assert sr == 44100 and x.shape[1] == 2 and np.abs(x).max() > 1000
    names = sorted(str(f).rsplit(".", 1)[-1] for f in files)
    assert names == ["mid", "musicxml", "wav"]
    assert "<svg" in score and "4 tracks" in status


def test_bad_upload_shows_message(client, tmp_path):
    bad = tmp_path / "broken.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00")
    with pytest.raises(Exception, match="damaged or truncated"):
        client.predict(handle_file(str(bad)), api_name="/render_midi")


def test_instruments_change_the_sound(client, example_midi):
    # the loaded piece lives in the session's state; the API takes the 8 instrument pickers
    client.predict(handle_file(str(example_midi)), api_name="/render_midi")
    piano = ["000 Acoustic Grand Piano"] * 4 + [None] * 4
    organ = ["019 Church Organ"] * 4 + [None] * 4
    wa = read_wav(client.predict(*piano, api_name="/render_with_instruments")[1])[0]
    wb = read_wav(client.predict(*organ, api_name="/render_with_instruments")[1])[0]
    n = min(len(wa), len(wb))
    assert not np.array_equal(wa[:n], wb[:n])
