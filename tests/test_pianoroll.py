"""Codec round trips: synthetic edge cases and real Bach chorales."""
import numpy as np
import pretty_midi
import pytest

from composer.music.corpus import load_chorale
from composer.music.pianoroll import (HOLD, ONSET, REST, MultiTrackRoll, codes_to_float, decode_monophonic,
                                      float_to_codes, merged_roll, merged_to_pretty_midi, merged_windows, notes_from_codes)


def _notes(pm, step_s):
    """(track, pitch, onset step, length in steps) of every note."""
    out = set()
    for k, inst in enumerate(pm.instruments):
        for n in inst.notes:
            s = int(round(n.start / step_s))
            out.add((k, n.pitch, s, int(round(n.end / step_s)) - s))
    return out


def test_held_repeated_and_rests_survive():
    # one voice: C4 held 8 steps, C4 repeated twice 4 steps each, a 4-step rest, then E4
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(0, name="v")
    step = 60 / 120 / 4
    for p, s, n in [(60, 0, 8), (60, 8, 4), (60, 12, 4), (64, 20, 12)]:
        inst.notes.append(pretty_midi.Note(90, p, s * step, (s + n) * step))
    pm.instruments.append(inst)
    roll = MultiTrackRoll.from_pretty_midi(pm)
    col = roll.track_steps(0)[:, 60 - roll.pitch_offset]
    assert list(col[:17]) == [ONSET] + [HOLD] * 7 + [ONSET] + [HOLD] * 3 + [ONSET] + [HOLD] * 3 + [REST]
    back = roll.to_pretty_midi()
    assert _notes(back, step) == _notes(pm, step)
    assert back.get_tempo_changes()[1][0] == pytest.approx(120)


def test_note_crossing_bar_line_is_one_note():
    codes = np.zeros((1, 2, 16, 84), np.uint8)
    codes[0, 0, 12, 40] = ONSET
    codes[0, 0, 13:, 40] = HOLD
    codes[0, 1, :4, 40] = HOLD
    pm = MultiTrackRoll(codes, [0], ["x"], tempo=60).to_pretty_midi()
    (note,) = pm.instruments[0].notes
    assert note.pitch == 64 and note.start == pytest.approx(12 * 0.25) and note.end == pytest.approx(20 * 0.25)


def test_real_chorales_round_trip_every_note(chorale_names):
    checked = 0
    for name in chorale_names:
        roll = load_chorale(name)
        if roll is None:
            continue
        step_s = 60 / roll.tempo / 4
        pm = roll.to_pretty_midi()
        # decoded notes are exactly the notes the codes hold ...
        expected = {(t, p + roll.pitch_offset, s, e - s) for t in range(4)
                    for p, s, e in notes_from_codes(roll.track_steps(t))}
        assert _notes(pm, step_s) == expected
        # ... and MIDI -> roll -> MIDI loses nothing: pitch, onset and length of every note
        again = MultiTrackRoll.from_pretty_midi(pm, n_bars=roll.n_bars)
        np.testing.assert_array_equal(again.codes, roll.codes)
        assert _notes(again.to_pretty_midi(), step_s) == expected
        checked += 1
    assert checked >= 20


def test_chorale_roll_matches_music21_notes():
    from music21 import corpus
    score = corpus.parse("bach/bwv66.6")
    roll = load_chorale("bach/bwv66.6")
    shift = score.parts[0].getElementsByClass("Measure")[0].paddingLeft
    for t, part in enumerate(score.parts):
        m21 = {(n.pitch.midi, int(round((n.offset + shift) * 4)), int(round(n.quarterLength * 4)))
               for n in part.stripTies().flatten().notes}
        ours = {(p + roll.pitch_offset, s, e - s) for p, s, e in notes_from_codes(roll.track_steps(t))}
        assert ours == m21
    assert roll.names == ["Soprano", "Alto", "Tenor", "Bass"]
    # bar lines align: the pickup occupies the end of bar 0, bar 1 starts on a note in every voice
    assert all((roll.codes[t, 1, 0] == ONSET).any() for t in range(4))


def test_float_codec_monophonic_chorale_is_exact():
    roll = load_chorale("bach/bwv66.6")
    x = codes_to_float(roll.codes)
    assert x.min() == -1 and x.max() == 1
    np.testing.assert_array_equal(float_to_codes(x, monophonic=True), roll.codes)
    np.testing.assert_array_equal(float_to_codes(x), roll.codes)
    noisy = x + np.random.default_rng(0).normal(0, 0.1, x.shape).astype(np.float32)
    np.testing.assert_array_equal(float_to_codes(noisy, monophonic=True), roll.codes)


def _line(notes, steps=16, pitches=12):
    """Clean -1/0/1 output for one voice and bar: ``notes`` = [(pitch, start, length)]."""
    x = -np.ones((steps, pitches), np.float32)
    for p, s, n in notes:
        x[s, p], x[s + 1:s + n, p] = 1.0, 0.0
    return x


def test_monophonic_decode_keeps_a_held_note_through_noise():
    x = _line([(5, 0, 8), (7, 8, 8)])
    x[3, 5] = -0.6          # the held note dips below the rest/hold midpoint for one step
    x[5, 5], x[5, 6] = -0.1, 0.05  # and a neighbour is a little louder for another
    codes = decode_monophonic(x)
    np.testing.assert_array_equal(codes, decode_monophonic(_line([(5, 0, 8), (7, 8, 8)])))
    assert codes[:8, 5].tolist() == [ONSET] + [HOLD] * 7
    # reading each cell on its own cuts the first note into pieces
    assert int((float_to_codes(x, threshold=-0.5) == ONSET).sum()) > 2


def test_monophonic_decode_keeps_real_onsets_rests_and_ties():
    x = _line([(5, 0, 4), (5, 4, 4), (9, 12, 4)])  # a repeated note, a rest, another note
    x[0, 3] = 0.0                                   # step 0 HOLD: a tie from the bar before
    x[0, 5] = -1.0
    codes = decode_monophonic(x)
    assert codes[0].tolist().count(HOLD) == 1 and codes[0, 3] == HOLD
    assert codes[4, 5] == ONSET and (codes[8:12] == REST).all() and codes[12, 9] == ONSET
    assert ((codes > 0).sum(axis=1) <= 1).all()     # one pitch at a time


def test_monophonic_decode_is_local_to_each_bar():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (4, 2, 16, 84)).astype(np.float32)
    y = x.copy()
    y[:, 1] = rng.uniform(-1, 1, y[:, 1].shape)
    np.testing.assert_array_equal(decode_monophonic(x)[:, 0], decode_monophonic(y)[:, 0])


def test_merged_roll_round_trip_and_shape(example_midi):
    pm = pretty_midi.PrettyMIDI(str(example_midi))
    roll = merged_roll(pm)
    assert roll.shape[1:] == (16, 84)
    wins = merged_windows(roll)
    assert wins.shape[1:] == (4, 16, 84) and wins.shape[0] == -(-roll.shape[0] // 4)
    back = merged_to_pretty_midi(roll, tempo=pm.get_tempo_changes()[1][0])
    np.testing.assert_array_equal(merged_roll(back), roll)
    # every onset of every voice is in the merged roll
    step_s = 60 / pm.get_tempo_changes()[1][0] / 4
    for inst in pm.instruments:
        for n in inst.notes:
            s = int(round(n.start / step_s))
            assert roll.reshape(-1, 84)[s, n.pitch - 24] == ONSET


def test_merged_roll_drops_drums_and_folds_range():
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    drums = pretty_midi.Instrument(0, is_drum=True)
    drums.notes.append(pretty_midi.Note(100, 36, 0, 0.5))
    low = pretty_midi.Instrument(33)
    low.notes.append(pretty_midi.Note(100, 12, 0, 0.5))  # below MIDI 24: folded up an octave
    pm.instruments += [drums, low]
    roll = merged_roll(pm)
    assert roll[0, 0, 0] == ONSET  # MIDI 24 = column 0
    assert roll.sum() == ONSET + HOLD * 3  # drums contribute nothing
