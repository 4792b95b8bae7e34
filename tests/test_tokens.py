"""Note/chord tokens: rhythm and chord octaves survive, the vocabulary is reproducible,
fallbacks are explicit, and the split is by song."""
import os
import random
import subprocess
import sys

import pretty_midi
import pytest

from composer.errors import DataError
from composer.music import tokens as T


def _grid(notes):
    """(start, end, pitch) in quarters -> ticks, sorted, shifted to start at 0."""
    q = sorted((round(s * T.TICKS_PER_QUARTER), round(e * T.TICKS_PER_QUARTER), p) for s, e, p in notes)
    t0 = q[0][0]
    return [(s - t0, e - t0, p) for s, e, p in q]


@pytest.mark.parametrize("name", ["bach/bwv66.6", "bach/bwv269"])
def test_chorale_voices_round_trip_exactly(name):
    """Every voice of a real chorale: onsets, lengths, repeated notes and rests come back."""
    from music21 import corpus
    score = corpus.parse(name)
    for part in score.parts:
        notes = T.stream_notes(part)
        toks = T.tokens_from_stream(part)
        assert toks[0] == T.BOS
        kinds = [T.kind(t) for t in toks[1:]]
        assert all(k == "dur" for k in kinds[1::2]) and all(k != "dur" for k in kinds[0::2])
        back = T.notes_from_tokens(toks)
        assert _grid(back) == _grid(notes)


def test_rests_repeats_holds_and_chord_octaves_round_trip_through_midi():
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)  # 0.5 s per quarter
    inst = pretty_midi.Instrument(0)
    spec = [(0.0, 1.0, [60]),                 # C4 held two quarters
            (1.0, 1.25, [60]), (1.25, 1.5, [60]),  # C4 repeated as two eighths
            (2.0, 3.0, [36, 64, 79]),         # a wide chord: C2 E4 G5, octaves kept
            (3.0, 3.5, [48, 52, 55]),         # the same chord, close and low
            (3.5, 3.6666667, [62]), (3.6666667, 3.8333333, [64]), (3.8333333, 4.0, [65])]  # triplet
    for s, e, ps in spec:
        for p in ps:
            inst.notes.append(pretty_midi.Note(90, p, s, e))
    pm.instruments.append(inst)
    toks = T.tokens_from_midi(pm)
    assert toks[:9] == ["<s>", "n:60", "d:24", "n:60", "d:6", "n:60", "d:6", "r", "d:12"]
    assert "c:36.64.79" in toks and "c:48.52.55" in toks
    back = T.midi_from_tokens(toks, tempo=120)
    got = sorted((round(n.start, 3), round(n.end, 3), n.pitch) for n in back.instruments[0].notes)
    want = sorted((round(n.start, 3), round(n.end, 3), n.pitch) for n in inst.notes)
    assert got == want


def test_held_and_repeated_notes_are_different_tokens():
    held = T.tokens_from_events(T.events_from_notes([(0, 2, 67)]))
    repeated = T.tokens_from_events(T.events_from_notes([(0, 1, 67), (1, 2, 67)]))
    assert held != repeated and T.tokens_length_quarters(held) == T.tokens_length_quarters(repeated) == 2


def test_long_rests_are_split_not_dropped():
    toks = T.tokens_from_events(T.events_from_notes([(0, 1, 60), (20, 21, 62)]))
    assert T.tokens_length_quarters(toks) == 21
    assert max(int(t[2:]) for t in toks if t.startswith("d:")) <= T.MAX_TICKS


def _songs():
    rng = random.Random(0)
    seqs = []
    for _ in range(20):
        events = [(tuple(sorted(rng.sample(range(48, 80), rng.choice([1, 1, 1, 3])))), rng.choice([3, 6, 12, 24]))
                  for _ in range(30)]
        seqs.append(T.tokens_from_events(events))
    return seqs


def test_vocabulary_is_deterministic_and_sorted():
    seqs = _songs()
    a = T.Vocab.build(seqs, min_chord_count=1)
    shuffled = [list(s) for s in seqs]
    random.Random(1).shuffle(shuffled)
    b = T.Vocab.build(shuffled, min_chord_count=1)
    assert a.tokens == b.tokens
    assert a.tokens[:2] == ["<s>", "r"]
    kinds = [T.kind(t) for t in a.tokens]
    assert kinds == sorted(kinds, key=["bos", "rest", "note", "chord", "dur"].index)
    assert T.Vocab(list(reversed(a.tokens))).tokens == a.tokens


def test_vocabulary_does_not_depend_on_hash_seed():
    code = ("from composer.music import tokens as T; import random; r = random.Random(3);"
            "seqs = [T.tokens_from_events([((r.randrange(50, 70), r.randrange(50, 70)), r.choice([3, 6, 12])) "
            "for _ in range(50)]) for _ in range(5)];"
            "print(T.Vocab.build(seqs, min_chord_count=1).tokens)")
    outs = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        outs.add(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                cwd=os.path.dirname(os.path.dirname(__file__)), check=True).stdout)
    assert len(outs) == 1


def test_rare_events_map_to_counted_fallbacks_never_dropped():
    vocab = T.Vocab(["n:60", "n:62", "n:64", "n:65", "n:67", "c:60.64.67", "d:6", "d:12", "d:24"])
    fb = T.Fallbacks()
    toks = ["<s>", "c:60.64.67", "d:12", "c:60.65.67", "d:10", "n:79", "d:100", "n:61", "d:12", "r", "d:6"]
    ids = vocab.encode(toks, fb)
    assert len(ids) == len(toks)
    out = vocab.decode(ids)
    assert out[3] == "n:67"          # unknown chord -> its top note
    assert out[4] == "d:12"          # 10 ticks -> the nearest known length
    assert out[5] == "n:67"          # G5 out of range -> G4 (same pitch class)
    assert out[6] == "d:24"
    assert out[7] == "n:60"          # C#4 -> nearest (ties to the lower)
    assert fb.counts == {"chord->top note": 1, "duration->nearest": 2, "pitch->in range": 2}
    assert fb.total == len(toks)


def test_transpose_table_moves_pitches_and_keeps_durations():
    vocab = T.Vocab.build(_songs(), min_chord_count=1)
    table = vocab.transpose_table([0, 2])
    assert (table[0] == range(len(vocab))).all()
    i = vocab.index["n:60"]
    assert vocab.tokens[table[1][i]] == "n:62"
    d = vocab.index["d:12"]
    assert table[1][d] == d


def test_song_level_split_keeps_groups_together():
    rng = random.Random(5)
    lines = {g: T.tokens_from_events([((rng.randrange(55, 80),), 12) for _ in range(16)]) for g in range(100)}
    songs = [T.Song(f"s{i}:{v}", f"g{i // 3}", "voice", lines[i // 3]) for i in range(300) for v in range(4)]
    train, val = T.split_songs(songs, 0.2)
    assert train and val
    assert not {s.group for s in train} & {s.group for s in val}
    assert 0.1 < len(val) / len(songs) < 0.3


def test_chorale_voices_and_chords_share_a_group_and_transposed_melodies_collide():
    songs = T._chorale_songs("bach/bwv66.6")
    assert {s.kind for s in songs} == {"voice", "chords"} and len({s.group for s in songs}) == 1
    melody = T.tokens_from_events([((60 + i % 5,), 6 + 6 * (i % 2)) for i in range(20)])
    up = T.tokens_from_events([((65 + i % 5,), 6 + 6 * (i % 2)) for i in range(20)])
    assert T.melody_group(melody) == T.melody_group(up)


def test_note_names():
    assert T.parse_note_names("C4 D#4/0.5 Eb4/1/2 R/2 C4+E4+G4/2") == [
        "<s>", "n:60", "d:12", "n:63", "d:6", "n:63", "d:6", "r", "d:24", "c:60.64.67", "d:24"]
    assert T.note_name_to_midi("A4") == 69 and T.midi_to_note_name(61) == "C#4"
    for bad in ("H4", "C4/x", "C4/0", "R"):
        with pytest.raises(DataError):
            T.parse_note_names(bad)


def test_the_same_tune_under_two_names_lands_on_one_side():
    """A melody that reappears (another catalogue number, another title, as another piece's
    alto, in another key or rhythm) merges the two groups before the split."""
    tune = [((60 + (i * 7) % 12,), 6) for i in range(20)]
    a = T.Song("a:0", "A", "voice", T.tokens_from_events(tune))
    b_alto = T.Song("b:1", "B", "voice", T.tokens_from_events([((ps[0] + 5,), 12) for ps, _ in tune]))
    b_sop = T.Song("b:0", "B", "voice", T.tokens_from_events([((72 - i % 3,), 12) for i in range(20)]))
    c = T.Song("c:0", "C", "voice", T.tokens_from_events([((65 + i % 4,), 6) for i in range(20)]))
    merged = T.merged_groups([c, b_sop, b_alto, a])
    assert merged["A"] == merged["B"] == "A" and merged["C"] == "C"
    for frac in (0.01, 0.5, 0.99):
        train, val = T.split_songs([a, b_alto, b_sop, c] * 1, frac)
        assert {s.group for s in train if s.group in "AB"} in (set(), {"A", "B"})


def test_real_chorales_sharing_a_melody_are_merged():
    """BWV 3.6 and BWV 153.9 set the same chorale tune; their songs share a merged group."""
    songs = T._chorale_songs("bach/bwv3.6") + T._chorale_songs("bach/bwv153.9")
    merged = T.merged_groups(songs)
    assert len({merged[s.group] for s in songs}) == 1
