"""Harmonize a melody (issue 19): the inversion through the shipped MuseGAN, the fixed soprano in the
Compose engine, melody input, the CLI. Searches run on a tiny budget (a few dozen Adam steps):
what is tested is what holds for any budget (the delivered soprano is the melody, exactly)."""
import json

import numpy as np
import pretty_midi
import pytest
import torch

from composer.api import harmonize as H
from composer.api.compose import ComposeState, cached_composer
from composer.errors import ComposerError
from composer.music import melody as M
from composer.music.metrics import voice_note_f1, voice_lines
from composer.music.pianoroll import notes_from_codes
from tests.conftest import run_cli

TUNE = "G4 G4 A4 B4 C5/2 B4/2 A4 A4/0.5 B4/0.5 C5 B4 A4 G4/2 R"  # 4 bars
FAST = H.Settings(restarts=2, steps=25)


@pytest.fixture(scope="module")
def comp():
    torch.set_num_threads(1)
    return cached_composer()


@pytest.fixture(scope="module")
def result(comp):
    return H.harmonize(H.melody_from_text(TUNE), comp, FAST)


def _notes(codes, offset=24):
    """(pitch, start, end) of a voice's codes ``(bars, steps, pitches)``."""
    c = np.asarray(codes)
    return sorted((p + offset, s, e) for p, s, e in notes_from_codes(c.reshape(-1, c.shape[-1])))


def test_the_soprano_is_the_melody_and_the_lower_voices_sing_under_it(result):
    mel = H.melody_from_text(TUNE)
    assert _notes(result.codes[0]) == sorted(mel.notes)
    assert result.written_match == 1.0 and 0.0 <= result.soprano_match <= 1.0
    pitch, _ = voice_lines(result.codes[None])
    for v in (1, 2, 3):
        assert (pitch[0, v] >= 0).any(), f"voice {v} is empty"
        both = (pitch[0, v] >= 0) & (pitch[0, 0] >= 0)
        assert (pitch[0, v][both] <= pitch[0, 0][both]).mean() >= 0.9
    pm = result.midi()
    assert [len(i.notes) > 0 for i in pm.instruments] == [True] * 4


def test_the_search_reproduces_more_of_the_melody_than_random_latents(comp):
    mel = H.melody_from_text(TUNE)
    target = M.melody_codes(mel)[None]
    found = H.harmonize(mel, comp, H.Settings(restarts=2, steps=60)).soprano_match
    random = np.mean([H.step_match(comp.codes(comp.new_state(seed=k, n_bars=mel.n_bars), raw=True)[:1], target)
                      for k in range(3)])
    assert found > random + 0.3


def test_a_melody_above_the_soprano_is_moved_into_range_and_back(comp):
    high = "G5 A5 B5 C6 D6/2 C6/2 B5/4"
    res = H.harmonize(H.melody_from_text(high), comp, H.Settings(restarts=1, steps=5))
    assert res.shift == -12 and res.state.transpose == 12
    assert _notes(res.codes[0]) == sorted(H.melody_from_text(high).notes)
    assert all(60 <= p <= 81 for p, _, _ in res.state.soprano)  # the model sang it an octave down


def test_too_long_too_wide_and_other_meters_are_refused(comp):
    with pytest.raises(ComposerError, match="32 bars"):
        H.harmonize(H.melody_from_text(" ".join(["C5/4"] * 33)), comp, FAST)
    with pytest.raises(ComposerError, match="32 bars"):
        H.melody_from_text(" ".join(["C5/4"] * 33))  # refused when read, before any search
    with pytest.raises(ComposerError, match="spans"):
        H.harmonize(H.melody_from_text("C4 C6"), comp, FAST)
    pm = pretty_midi.PrettyMIDI(initial_tempo=100)
    pm.time_signature_changes = [pretty_midi.TimeSignature(3, 4, 0.0)]
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(90, 72, 0.0, 0.6)]
    pm.instruments.append(inst)
    with pytest.raises(ComposerError, match="3/4.*4/4 only"):
        H.melody_from_midi(pm)


def test_malformed_input_is_one_line(comp, tmp_path):
    for bad in ("H9 C4", "C4/zero", ""):
        with pytest.raises(ComposerError) as exc:
            H.melody_from_input(text=bad)
        assert "\n" not in str(exc.value)
    junk = tmp_path / "junk.mid"
    junk.write_bytes(b"not midi at all")
    with pytest.raises(ComposerError) as exc:
        H.melody_from_file(junk)
    assert "\n" not in str(exc.value)


def test_midi_skyline_takes_the_highest_line():
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)  # 0.5 s a quarter
    inst = pretty_midi.Instrument(0)
    for p, s, e in ((60, 0, 2), (64, 0, 2), (67, 0, 1), (72, 1, 1.5)):  # a chord, then a higher note
        inst.notes.append(pretty_midi.Note(90, p, s, e))
    pm.instruments.append(inst)
    mel = H.melody_from_midi(pm)
    assert mel.notes == [(67, 0, 8), (72, 8, 12), (64, 12, 16)]


def test_abc_melody_keeps_its_pickup_and_refuses_other_meters():
    tune = "X:1\nT:t\nM:4/4\nL:1/8\nK:G\nD2|G2 B2 d2 B2|c2 A2 F2 D2|G6|]\n"
    mel = H.melody_from_abc(tune)
    assert mel.notes[0] == (62, 12, 16)  # the upbeat D fills the last beat of bar 1
    assert mel.notes[1][1] == 16 and mel.n_bars == 4
    with pytest.raises(ComposerError, match="4/4"):
        H.melody_from_abc("X:1\nT:t\nM:3/4\nL:1/4\nK:C\nC D E|F G A|]\n")
    with pytest.raises(ComposerError):
        H.melody_from_input(text="X:1\nK:\n|||::]]\n")


def test_compose_rerolls_and_sliders_keep_the_melody_and_undo_gives_the_plain_melody(comp, result):
    st = result.state
    mel = sorted(H.melody_from_text(TUNE).notes)
    edits = [comp.reroll(st), comp.reroll(st, bar=1), comp.reroll(st, track=2),
             comp.set_direction(st, "style", 0, 2.5), comp.set_direction(st, "chords", 1, -2.0, bar=0)]
    for new in edits:
        codes = comp.codes(new)
        assert _notes(codes[0]) == mel
    assert not np.array_equal(comp.codes(edits[0])[1:], comp.codes(st)[1:])  # the harmony did change
    plain = comp.codes(comp.plain_melody(st))  # what the tab's undo returns to
    assert _notes(plain[0]) == mel and not plain[1:].any()
    # unlocking a soprano cell gives that bar back to the generator
    free = comp.lock(st, track=0, bar=0, locked=False)
    assert np.array_equal(comp.codes(free)[0, 1:], comp.codes(st)[0, 1:])
    assert np.array_equal(comp.codes(free)[0, 0], comp.codes(st, raw=True)[0, 0])


def test_the_latents_json_restores_the_harmonization(comp, result):
    st = ComposeState.from_json(result.state.to_json())
    assert st.soprano == result.state.soprano and st.transpose == result.state.transpose
    assert np.array_equal(comp.codes(st), result.codes)
    d = json.loads(result.state.to_json())
    d["soprano"] = [[72, 5, 3]]
    with pytest.raises(ComposerError, match="soprano note"):
        ComposeState.from_json(json.dumps(d))


def test_drop_your_riff_finds_a_generated_piece_again(comp):
    piece = comp.codes(comp.new_state(seed=3, n_bars=4))
    inv = H.invert_piece(piece, comp, H.Settings(restarts=2, steps=60, seed=1))
    assert len(inv.note_f1) == 4 and all(0.0 <= f <= 1.0 for f in inv.note_f1)
    random = np.mean([voice_note_f1(comp.codes(comp.new_state(seed=50 + k, n_bars=4))[v], piece[v])
                      for k in range(3) for v in range(4)])
    assert np.mean(inv.note_f1) > random + 0.2
    assert voice_note_f1(piece[0], piece[0]) == 1.0


def test_cli_writes_midi_and_prints_json(tmp_path):
    out = tmp_path / "h.mid"
    r = run_cli("harmonize", "--notes", TUNE, "--out", out, "--json", "--steps", "10", "--restarts", "1",
                "--latents", tmp_path / "h.json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["bars"] == 4 and 0 <= info["soprano_match_model"] <= 1 and info["soprano_match_written"] == 1.0
    pm = pretty_midi.PrettyMIDI(str(out))
    assert len(pm.instruments) == 4
    assert ComposeState.from_json((tmp_path / "h.json").read_text()).soprano
    bad = run_cli("harmonize", tmp_path / "h.json", "--out", tmp_path / "x.mid")
    assert bad.returncode == 1 and bad.stderr.startswith("error:") and bad.stderr.count("\n") == 1


def test_compose_tab_harmonizes_and_undo_gives_the_plain_melody(comp, monkeypatch):
    from composer.ui import compose as tab
    fast = H.Settings
    monkeypatch.setattr(H, "Settings", lambda **kw: fast(restarts=1, steps=5))
    start = comp.new_state(seed=2, n_bars=4)
    out = tab.in_session(tab.harmonize)(None, tab.HARMONIZE_MODES[0], None, TUNE, [], start)
    st, history, status = out[0], out[1], out[5]
    assert st.soprano and (0, 0) in st.locked and "Undo: the plain melody" in status
    assert _notes(comp.codes(st)[0]) == sorted(H.melody_from_text(TUNE).notes)
    prev = tab.in_session(tab.undo)(None, history, st)[0]
    plain = comp.codes(prev)
    assert _notes(plain[0]) == sorted(H.melody_from_text(TUNE).notes) and not plain[1:].any()
    assert tab.in_session(tab.undo)(None, history[:-1], prev)[0].seed == 2  # and once more: the piece before
    with pytest.raises(Exception, match="type its notes"):
        tab.in_session(tab.harmonize)(None, tab.HARMONIZE_MODES[0], None, "", [], start)
