"""Genre domains: 4-bar windows in 4/4, song-level split, user folders with skip reasons."""
import numpy as np
import pretty_midi
import pytest

from composer.errors import DataError
from composer.music import genres
from composer.music.genres import (binary_to_codes, cut_windows, folder_domain, is_test_song, load_domain, load_npz,
                                   note_density, onsets, save_npz)


def make_midi(path, bars=8, numerator=4, tempo=100.0, drums=False, program=0):
    """A walking melody with a held chord under it, one note per beat, ``bars`` bars long."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    pm.time_signature_changes = [pretty_midi.TimeSignature(numerator, 4, 0.0)]
    beat = 60.0 / tempo
    mel = pretty_midi.Instrument(program=program)
    chord = pretty_midi.Instrument(program=48)
    for b in range(bars * numerator):
        mel.notes.append(pretty_midi.Note(90, 60 + (b * 2) % 12, b * beat, (b + 1) * beat))
    for bar in range(bars):
        for p in (48, 52, 55):
            chord.notes.append(pretty_midi.Note(70, p, bar * numerator * beat, (bar + 1) * numerator * beat))
    pm.instruments += [mel, chord]
    if drums:
        d = pretty_midi.Instrument(program=0, is_drum=True)
        d.notes.append(pretty_midi.Note(100, 36, 0, 0.1))
        pm.instruments.append(d)
    pm.write(str(path))
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPOSER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_onsets_and_density_by_hand():
    w = np.zeros((4, 16, 84), dtype=bool)
    w[0, 0:4, 40] = True          # one note of 4 steps
    w[0, 4:8, 40] = True          # continues: same note (a binary roll cannot tell)
    w[1, 0, 41] = w[1, 2, 41] = True  # two short notes
    w[0, 15, 50] = w[1, 0, 50] = True  # one note across the bar line
    assert onsets(w).sum() == 4
    assert note_density(w) == pytest.approx(1.0)
    codes = binary_to_codes(w)
    assert codes[0, 0, 40] == 2 and codes[0, 4, 40] == 1 and codes[1, 0, 50] == 1 and codes[1, 2, 41] == 2


def test_cut_windows_shape_hop_and_empty_windows():
    roll = np.zeros((10, 16, 84), dtype=np.uint8)
    roll[:4, ::4, 40] = 2                         # notes in bars 0-3 only
    w2 = cut_windows(roll, hop=2)
    assert w2.shape == (2, 4, 16, 84)             # starts 0 and 2; 4 and 6 are silent and dropped
    assert all((w == 2).sum() >= genres.MIN_NOTES for w in w2)
    w4 = cut_windows(roll, hop=4)
    assert w4.shape == (1, 4, 16, 84)
    short = cut_windows(roll[:2], hop=4)          # a 2-bar song becomes one padded window
    assert short.shape == (1, 4, 16, 84) and not short[0, 2:].any()


def test_split_is_stable_and_song_level():
    names = [f"song{i}" for i in range(400)]
    flags = [is_test_song(n) for n in names]
    assert flags == [is_test_song(n) for n in names]
    assert 0.04 < np.mean(flags) < 0.2


def test_folder_domain_windows_split_and_skip_reasons(tmp_path, cache):
    src = tmp_path / "midi"
    src.mkdir()
    for i in range(6):
        make_midi(src / f"piece{i}.mid", bars=8 + i, drums=(i == 0))
    make_midi(src / "waltz.mid", numerator=3)
    make_midi(src / "tiny.mid", bars=2)
    (src / "notes.mid").write_text("not a midi file")
    data = folder_domain(src)
    assert data.windows.shape[1:] == (4, 16, 84) and data.windows.dtype == np.uint8
    reasons = dict(data.skipped)
    assert "3/4" in reasons["waltz.mid"] and "4/4" in reasons["waltz.mid"]
    assert "shorter" in reasons["tiny.mid"]
    assert "not a MIDI file" in reasons["notes.mid"]
    train_songs = set(data.song[data.split == 0])
    test_songs = set(data.song[data.split == 1])
    assert train_songs and test_songs and not train_songs & test_songs
    # merged: chord + melody in one roll, drums dropped (no pitch 36 - 24 = 12 column)
    assert (data.windows[..., 12] == 0).all()
    assert (data.windows > 0).sum(axis=-1).max() == 4   # three chord notes + the melody
    # the 4/4 grid: every melody onset on a beat (step multiple of 4)
    on = np.argwhere(data.windows == 2)
    assert set(on[:, 2] % 4) == {0}
    # cached and read back identically
    again = load_npz(next(cache.glob("genres_v1_folder_*.npz")))
    assert np.array_equal(again.windows, data.windows) and again.skipped == data.skipped


def test_npz_round_trip(tmp_path):
    g = genres.GenreData("x", np.zeros((3, 4, 16, 84), np.uint8), np.array([0, 0, 1]), np.array([0, 0, 1], np.int8),
                         ["a", "b"], [("c", "too short")])
    back = load_npz(save_npz(g, tmp_path / "x.npz"))
    assert back.songs == ["a", "b"] and back.skipped == [("c", "too short")] and back.counts()["windows_test"] == 1


def test_bad_domains_raise_named_errors(tmp_path, cache):
    with pytest.raises(DataError, match="unknown genre"):
        load_domain("jazz")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no .mid"):
        load_domain(str(empty))
    (empty / "bad.mid").write_bytes(b"MThd garbage")
    with pytest.raises(DataError, match="no usable MIDI"):
        folder_domain(empty)


def test_builtin_bach_cache_if_built():
    """The shipped domains (when cached here): 4/4 windows and no song on both sides."""
    path = genres.cache_path("bach")
    if not path.exists():
        pytest.skip("bach domain not cached on this machine")
    d = load_npz(path)
    assert d.windows.shape[1:] == (4, 16, 84)
    assert not set(d.song[d.split == 0]) & set(d.song[d.split == 1])
    lo, hi = d.density_range()
    assert 0 < lo < hi
