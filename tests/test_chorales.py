"""MuseGAN data: voice splitting, user MIDI folders with skip reasons, chorale round trip, cache layout."""
import numpy as np
import pretty_midi
import pytest

from composer.music import chorales
from composer.music.pianoroll import HOLD, ONSET, MultiTrackRoll, float_to_codes, codes_to_float


def make_pm(parts, ts=(4, 4), tempo=120.0):
    """parts: list of [(midi, start_beat, beats)] per instrument."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    if ts:
        pm.time_signature_changes.append(pretty_midi.TimeSignature(ts[0], ts[1], 0.0))
    sec = 60.0 / tempo
    for k, notes in enumerate(parts):
        inst = pretty_midi.Instrument(program=k)
        for p, s, d in notes:
            inst.notes.append(pretty_midi.Note(80, p, s * sec, (s + d) * sec))
        pm.instruments.append(inst)
    return pm


def test_split_voices_orders_by_pitch_and_marks_onsets():
    codes = np.zeros((8, 84), dtype=np.uint8)
    # a C major chord held 4 steps (C3 E4 G4 C5), then only two notes
    for p in (48, 64, 67, 72):
        codes[0, p - 24], codes[1:4, p - 24] = ONSET, HOLD
    for p in (50, 71):
        codes[4, p - 24], codes[5:8, p - 24] = ONSET, HOLD
    v = chorales.split_voices(codes, 4)
    top = [[int(np.flatnonzero(v[k, s])[0]) + 24 if v[k, s].any() else None for s in (0, 4)] for k in range(4)]
    assert top == [[72, 71], [67, None], [64, None], [48, 50]]
    assert v[0, 0, 72 - 24] == ONSET and v[0, 1, 72 - 24] == HOLD and v[0, 4, 71 - 24] == ONSET
    assert ((v > 0).sum(-1) <= 1).all()


def test_one_voice_keeps_the_top_line_of_a_chordal_track():
    codes = np.zeros((4, 84), dtype=np.uint8)
    for p in (48, 64, 72):  # a chord in one track: its melody is the top note
        codes[0, p - 24], codes[1:4, p - 24] = ONSET, HOLD
    v = chorales.split_voices(codes, 1)
    assert v.shape == (1, 4, 84) and [int(np.flatnonzero(v[0, s])[0]) + 24 for s in range(4)] == [72] * 4


def test_four_track_file_is_ordered_soprano_to_bass():
    pm = make_pm([[(48, b, 1) for b in range(8)], [(72, b, 1) for b in range(8)],
                  [(60, b, 1) for b in range(8)], [(65, b, 1) for b in range(8)]])
    codes, reason = chorales.midi_to_four_tracks(pm)
    assert reason == "" and codes.shape == (4, 2, 16, 84)
    tops = [int(np.flatnonzero((codes[v] > 0).any(axis=(0, 1)))[0]) + 24 for v in range(4)]
    assert tops == [72, 65, 60, 48]


def test_midi_folder_skips_with_reasons(tmp_path):
    folder = tmp_path / "midi"
    folder.mkdir()
    chords = [[(p, b, 1) for b in range(12)] for p in (48, 60, 64, 67)]
    pm = make_pm([sum(chords, [])])          # one piano track with 4-note chords: voice-split
    pm.write(str(folder / "good.mid"))
    make_pm(chords, ts=(3, 4)).write(str(folder / "waltz.mid"))
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    (folder / "notes.txt").write_text("ignored")
    path, skipped = chorales.build_midi_folder(folder, path=tmp_path / "cache.npz", verbose=False)
    reasons = dict(skipped)
    assert set(reasons) == {"waltz.mid", "broken.mid"}
    assert "4/4" in reasons["waltz.mid"] and "damaged" in reasons["broken.mid"]
    with np.load(path) as d:
        assert d["codes"].shape == (4, 3, 16, 84) and list(d["song_bars"]) == [3]


def test_folder_with_nothing_usable_raises_data_error(tmp_path):
    from composer.errors import DataError
    (tmp_path / "x.mid").write_bytes(b"nope")
    with pytest.raises(DataError):
        chorales.build_midi_folder(tmp_path, path=tmp_path / "c.npz", verbose=False)
    with pytest.raises(DataError):
        chorales.build_midi_folder(tmp_path / "missing", verbose=False)


def test_song_split_is_by_name_and_stable():
    names = [f"bach/bwv{i}" for i in range(300)]
    s1 = chorales._song_split(names)
    s2 = chorales._song_split(list(reversed(names)))[::-1]
    assert np.array_equal(s1, s2)
    assert 0.08 < s1.mean() < 0.22


def test_real_chorale_round_trips_through_midi_and_model_range():
    """A corpus chorale -> codes -> MIDI -> codes is exact; -> [-1, 1] -> monophonic decode is exact too."""
    pytest.importorskip("music21")
    from composer.music.corpus import load_chorale
    roll = load_chorale("bach/bwv66.6")
    assert roll is not None and roll.n_tracks == 4
    back = MultiTrackRoll.from_pretty_midi(roll.to_pretty_midi(), n_bars=roll.n_bars)
    assert np.array_equal(back.codes, roll.codes)
    decoded = float_to_codes(codes_to_float(roll.codes), monophonic=True)
    assert np.array_equal(decoded, roll.codes)


def test_cached_bach_layout_if_built():
    path = chorales.bach_cache_path()
    if not path.exists():
        pytest.skip("chorale cache not built (python -m composer.music.chorales)")
    with np.load(path) as d:
        assert d["codes"].shape[0] == 4 and d["codes"].shape[2:] == (16, 84)
        assert d["song_bars"].sum() == d["codes"].shape[1]
        assert 250 <= len(d["names"]) <= 331 and len(set(d["names"].tolist())) == len(d["names"])
        assert 0 < d["split"].mean() < 0.3
