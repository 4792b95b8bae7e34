"""The Folk tunes tab through gradio_client: headers honoured, live edit, invalid edits keep the last rendering."""
import pytest


@pytest.fixture(scope="module")
def client(app_client):
    return app_client


def test_write_a_tune_with_asked_headers(client):
    abc, score, wav, files, status = client.predict("6/8", "G", "(model's choice)", "jig", "Test Tune", "", 3, 1.0,
                                                    0, 1.0, "flute", 110, api_name="/folk_generate")
    lines = abc.splitlines()
    assert "M:6/8" in lines and "K:G" in lines and "R:jig" in lines and "T:Test Tune" in lines
    assert "<svg" in score and wav.endswith(".wav")
    assert sorted(f.rsplit(".", 1)[-1] for f in files) == ["abc", "mid", "musicxml", "wav"]
    assert "bars" in status


def test_edits_rerender_and_bad_edits_say_where(client):
    good = "X:1\nT:Scale\nM:4/4\nL:1/8\nK:D\n|DEFG ABcd|d8|]\n"
    score, wav, files, status = client.predict(good, "fiddle", 100, api_name="/folk_render")
    assert "<svg" in score and wav.endswith(".wav") and "2 bars" in status
    bad = "X:1\nT:Broken\nM:4/4\nL:1/8\n|DEFG ABcd|\n"  # no K: header
    score2, wav2, files2, status2 = client.predict(bad, "fiddle", 100, api_name="/folk_render")
    assert status2.startswith("**Not rendered:**") and "K" in status2
    # no new score, audio or files: an empty update, so the last good rendering stays on the page
    for out in (score2, wav2, files2):
        assert isinstance(out, dict) and out.get("__type__") == "update" and set(out.get("props", {})) <= {"__type__"}
