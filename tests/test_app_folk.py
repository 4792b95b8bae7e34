"""The Folk tunes tab through gradio_client: headers honoured, live edit, invalid edits keep the last rendering."""
import pytest


@pytest.fixture(scope="module")
def client(app_client):
    return app_client


ASK = ("6/8", "G", "(model's choice)", "jig", "Test Tune", "")


def test_write_a_tune_with_asked_headers(client):
    abc, score, wav, files, status = client.predict(*ASK, 3, 1.0, 0, 1.0, "flute", 110, True,
                                                    api_name="/folk_generate")
    lines = abc.splitlines()
    assert "M:6/8" in lines and "K:G" in lines and "R:jig" in lines and "T:Test Tune" in lines
    assert "<svg" in score and wav.endswith(".wav")
    assert sorted(f.rsplit(".", 1)[-1] for f in files) == ["abc", "mid", "musicxml", "wav"]
    assert "bars" in status and status.startswith("Seed 3 (guarded)")
    again = client.predict(*ASK, 3, 1.0, 0, 1.0, "flute", 110, True, api_name="/folk_generate")
    assert again[0] == abc  # a fixed seed writes the same tune


def test_a_fresh_seed_each_time_and_another_tune(client):
    import re
    seen = {}
    for _ in range(2):  # seed -1 (the default): a new seed, shown in the status
        abc, _, _, _, status = client.predict(*ASK, -1, 1.0, 0, 1.0, "flute", 110, False,
                                              api_name="/folk_generate")
        seed = int(re.match(r"Seed (\d+) \(plain sampling\)", status).group(1))
        seen[seed] = abc
    assert len(seen) == 2 and len(set(seen.values())) == 2
    abc, _, _, _, status = client.predict(*ASK, 3, 1.0, 0, 1.0, "flute", 110, True, api_name="/folk_another")
    seed = int(re.match(r"Seed (\d+)", status).group(1))
    # "Another tune" ignores a fixed seed; its seed, typed in, writes the same tune again
    same = client.predict(*ASK, seed, 1.0, 0, 1.0, "flute", 110, True, api_name="/folk_generate")
    assert same[0] == abc


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


def test_errors_point_at_the_right_line_and_column(client):
    bad = "X:1\nM:9/0\nT:x\nL:1/8\nK:D\nabc|\nabc|\nabc|\n"
    status = client.predict(bad, "fiddle", 100, api_name="/folk_render")[3]
    assert "(line 2, column 3)" in status
    short = "X:1\nT:x\nM:3/4\nL:1/8\nK:D\nA2 B2 c2|d2 e2 f2|\ng2 a2|b2 a2 g2|f6|]\n"
    status = client.predict(short, "fiddle", 100, api_name="/folk_render")[3]
    assert "not strict" in status and "line 7, column 1" in status


#: Each of these ABC texts killed a live server through /folk_render (verovio aborted with
#: SIGABRT, SIGSEGV and SIGFPE inside the server process).
SERVER_KILLERS = ["X:1\nM:4/4\nL:1/8\nK:G\nabcd efga|!\n", "X:4\nM:C\nK:\nc", "X:1\nM:C\nK:G\nBx0"]


@pytest.mark.parametrize("abc", SERVER_KILLERS)
def test_abc_that_crashes_verovio_costs_a_message_not_the_server(client, abc):
    score, wav, files, status = client.predict(abc, "fiddle", 100, api_name="/folk_render")
    assert "cannot draw this score" in score  # the score's own message; audio still arrives
    assert wav.endswith(".wav")
    good = "X:1\nT:Scale\nM:4/4\nL:1/8\nK:D\n|DEFG ABcd|d8|]\n"
    score2, _, _, status2 = client.predict(good, "fiddle", 100, api_name="/folk_render")
    assert "<svg" in score2 and "2 bars" in status2  # the server still answers


@pytest.mark.parametrize("abc, words", [
    ("X:1\nM:2+2+2+2/8\nL:1/8\nK:G\nabcd efga|abcd efga|\n", "bars"),       # additive meter: minutes in music21
    ("X:1\nM:4/4\nL:1/8\nK:G\nA2000 B|\n", "line 5, column 2"),                # note length
    ("X:1\nM:4/4\nL:0/1\nK:G\nAB|\n", "line 3"),                               # zero unit length
    ("X:1\nM:4/4\nQ:1/4=0\nL:1/8\nK:G\nAB|\n", "tempo"),                      # zero tempo
])
def test_hostile_abc_gets_a_clear_answer_quickly(client, abc, words):
    import time
    t = time.monotonic()
    *_, status = client.predict(abc, "fiddle", 100, api_name="/folk_render")
    assert words in status and time.monotonic() - t < 10
