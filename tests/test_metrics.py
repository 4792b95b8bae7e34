"""composer.music.metrics on hand-made piano rolls whose answers are known."""
import numpy as np
import pytest

from composer.music import metrics

HOLD, ONSET = 1, 2
OFF = 24  # pitch index 0 = MIDI 24


def empty(n=1, tracks=4, bars=2, steps=16, pitches=84):
    return np.zeros((n, tracks, bars, steps, pitches), dtype=np.uint8)


def put(codes, track, midi, start, length, sample=0, steps_per_bar=16):
    """Write one note (may cross bar lines) into codes."""
    for k in range(length):
        s = start + k
        codes[sample, track, s // steps_per_bar, s % steps_per_bar, midi - OFF] = ONSET if k == 0 else HOLD


def test_notes_split_on_onset_and_silence():
    grid = np.zeros((8, 84), dtype=np.uint8)
    grid[0, 40], grid[1, 40], grid[2, 40] = ONSET, HOLD, ONSET   # two notes: 2 steps, then 1 + 1 hold
    grid[3, 40] = HOLD
    grid[5, 10] = HOLD                                           # a hold after silence starts a note
    li, pitch, start, length = metrics.notes(grid)
    got = sorted(zip(pitch.tolist(), start.tolist(), length.tolist()))
    assert got == [(10, 5, 1), (40, 0, 2), (40, 2, 2)]


def test_note_across_bar_line_is_one_note():
    c = empty()
    put(c, 0, 60, 14, 4)  # bar 0 steps 14-15, bar 1 steps 0-1
    assert metrics.qualified_notes(c) == 1.0
    hist = metrics.note_length_hist(c)
    assert hist[3] == 1.0


def test_empty_bars_and_upc():
    c = empty()
    # soprano bar 0: C D E (3 pitch classes); bar 1 empty. Alto bar 0: C4 and C5 = 1 class
    put(c, 0, 60, 0, 4), put(c, 0, 62, 4, 4), put(c, 0, 64, 8, 4)
    put(c, 1, 60, 0, 4), put(c, 1, 72, 4, 4)
    eb = metrics.empty_bars(c)
    assert eb.tolist() == [0.5, 0.5, 1.0, 1.0]
    upc = metrics.used_pitch_classes(c)
    assert upc[0] == 3 and upc[1] == 1 and upc[2] == 0


def test_upc_uses_true_pitch_classes():
    # C and G are a fifth (7 semitones) apart: 2 classes. Block-chroma bugs would merge them.
    c = empty()
    put(c, 0, 60, 0, 4), put(c, 0, 67, 4, 4)
    assert metrics.used_pitch_classes(c)[0] == 2


def test_qn_threshold_is_three_steps():
    c = empty()
    put(c, 0, 60, 0, 2), put(c, 0, 62, 2, 3), put(c, 0, 64, 5, 1), put(c, 0, 65, 6, 4)
    assert metrics.qualified_notes(c) == pytest.approx(2 / 4)
    assert metrics.QN_MIN_STEPS == 3


def test_polyphony_counts_sounding_pitches():
    c = empty(bars=1)
    for t, p in enumerate((72, 67, 64, 48)):
        put(c, t, p, 0, 8)
    put(c, 0, 74, 8, 8)  # steps 8-15: only the soprano
    assert metrics.polyphony(c) == pytest.approx((8 * 4 + 8 * 1) / 16)


def test_tonal_distance_zero_for_same_chroma_and_positive_otherwise():
    c = empty(bars=1)
    put(c, 0, 72, 0, 16), put(c, 1, 60, 0, 16)      # C5 vs C4: same pitch class
    put(c, 2, 66, 0, 16)                             # F#: the tritone, far from C
    put(c, 3, 55, 0, 16)                             # G: a fifth, closer
    td = metrics.tonal_distance(c)
    assert td[(0, 1)] == pytest.approx(0.0, abs=1e-9)
    assert td[(0, 2)] > td[(0, 3)] > 0


def test_tonal_centroid_of_single_pitch_class_has_known_norm():
    m = metrics.tonal_centroid_matrix()
    # one pitch class: |phi| = sqrt(1 + 1 + 0.25)
    assert np.linalg.norm(m[:, 0]) == pytest.approx(np.sqrt(2.25))


def test_scale_consistency():
    c = empty(bars=1)
    for k, p in enumerate((60, 62, 64, 65, 67, 69, 71, 72)):   # C major scale
        put(c, 0, p, 2 * k, 2)
    assert metrics.scale_consistency(c) == 1.0
    put(c, 1, 61, 0, 2)  # add one C#: 8 of 9 notes fit the best scale
    assert metrics.scale_consistency(c) == pytest.approx(8 / 9)


def test_range_ok_and_crossings():
    c = empty(bars=1)
    put(c, 0, 72, 0, 8), put(c, 0, 90, 8, 8)  # soprano: one in range, one far above
    put(c, 1, 65, 0, 16)                       # alto in range
    assert metrics.range_ok(c) == pytest.approx(2 / 3)
    assert metrics.range_ok_per_voice(c)[:2] == [0.5, 1.0]
    # alto above soprano on steps 0-7 -> crossings there
    c2 = empty(bars=1)
    put(c2, 0, 64, 0, 16), put(c2, 1, 67, 0, 8), put(c2, 1, 60, 8, 8)
    assert metrics.voice_crossings(c2) == pytest.approx(0.5)


def test_diversity_zero_for_copies_and_high_for_disjoint():
    a = empty(n=3, bars=1)
    put(a, 0, 60, 0, 16, sample=0), put(a, 0, 60, 0, 16, sample=1), put(a, 0, 60, 0, 16, sample=2)
    assert metrics.diversity(a) == 0.0
    b = empty(n=2, bars=1)
    put(b, 0, 60, 0, 16, sample=0), put(b, 0, 62, 0, 16, sample=1)
    assert metrics.diversity(b) == 1.0


def test_evaluate_keys_and_bar_check():
    c = empty(n=2)
    for s in range(2):
        for t, p in enumerate((72, 67, 64, 48)):
            put(c, t, p + s, 0, 32, sample=s)
    res = metrics.evaluate(c)
    for k in ("upc_S", "upc_A", "upc_T", "upc_B", "qn", "polyphony", "td_mean", "scale_consistency", "range_ok",
              "diversity", "eb_S", "voice_crossings", "note_length_hist", "td_S-A"):
        assert k in res
    ok = metrics.check_bar(res, res)
    # rows relative to the reference pass against itself; absolute rows judge the music
    # (held chords: no stepwise motion, no beat with a moving voice)
    assert all(ok[k] for k in metrics.BAR_KEYS + ("range_ok", "diversity", "all_voices", "parallels"))
    assert not ok["stepwise"]
    worse = dict(res, qn=res["qn"] * 0.5, range_ok=0.9)
    bad = metrics.check_bar(worse, res)
    assert not bad["qn"] and not bad["range_ok"] and bad["upc_S"]


# ---- issue 15: texture, voice leading, harmony, rhythm, copying -----------------------------

def chord_steps(c, chords, length=4, sample=0):
    """Write SATB chords (tuples of 4 MIDI pitches), each ``length`` steps, from step 0."""
    for k, chord in enumerate(chords):
        for t, p in enumerate(chord):
            put(c, t, p, k * length, length, sample=sample)


def test_all_voices_share_ignores_fully_silent_steps_and_counts_holes():
    c = empty(bars=1)
    for t, p in enumerate((72, 67, 64, 48)):
        put(c, t, p, 4, 12)       # steps 0-3 silent everywhere (a pickup), then four voices
    assert metrics.all_voices_share(c) == 1.0
    assert metrics.silent_steps(c) == pytest.approx(4 / 16)
    c[0, 2, 0, 10:] = 0           # tenor stops after step 9: steps 10-15 have a hole
    assert metrics.all_voices_share(c) == pytest.approx(6 / 12)


def test_parallel_fifths_and_octaves_are_counted_per_transition():
    c = empty(bars=1)
    # C major -> D minor with soprano/bass in parallel octaves (C -> D) and alto/bass in
    # parallel fifths (G -> A); tenor holds E -> F by step
    chord_steps(c, [(72, 67, 64, 48), (74, 69, 65, 50)], length=8)
    par, n = metrics.parallels(c)
    # transitions: 6 pairs x 1 step with onsets (step 8); steps inside notes have no onset
    assert n == 6
    # S-B octave (0 -> 0, both up), A-B fifth (7 -> 7, both up), S-A: 5 -> 5 is a fourth (not counted)
    assert par == pytest.approx(100 * 2 / 6)


def test_contrary_motion_and_repeated_notes_are_not_parallels():
    c = empty(bars=1)
    # S-B octave C5/C3 -> C5/C3 repeated (no motion) -> then contrary octave D5/B2? (not same direction)
    chord_steps(c, [(72, 67, 64, 48), (72, 67, 64, 48), (74, 67, 64, 47)], length=4)
    par, n = metrics.parallels(c)
    assert par == 0.0 and n == 12
    # a held note in both voices is no transition
    h = empty(bars=1)
    chord_steps(h, [(72, 67, 64, 48)], length=16)
    assert metrics.parallels(h) == (0.0, 0)


def test_stepwise_share_over_successive_notes_of_a_voice():
    c = empty(bars=1)
    for k, p in enumerate((60, 62, 64, 67, 67, 66)):   # steps 2, 2, leap 3, repeat 0, step 1
        put(c, 0, p, 2 * k, 2)
    assert metrics.stepwise_share(c) == pytest.approx(3 / 5)


def test_beat_triads_need_three_voices_inside_one_triad():
    c = empty(bars=1)
    # beat 0: C E G C -> C major; beat 1: C E G Bb (dominant seventh) -> no;
    # beat 2: A C E A -> A minor; beat 3: only two voices sound -> no
    chord_steps(c, [(72, 64, 55, 48), (72, 64, 55, 46), (69, 64, 60, 45)], length=4)
    put(c, 0, 72, 12, 4), put(c, 3, 48, 12, 4)
    assert metrics.beat_triads(c) == pytest.approx(2 / 4)


def test_sixteenths_and_half_notes_in_evaluate():
    c = empty(bars=1)
    put(c, 0, 72, 0, 1), put(c, 0, 74, 1, 7), put(c, 0, 76, 8, 8)   # 1, 7 and 8 steps long
    res = metrics.evaluate(c)
    assert res["sixteenths"] == pytest.approx(1 / 3)
    assert res["half_or_longer"] == pytest.approx(1 / 3)


def test_copied_bars_find_transposed_copies_only():
    train = empty(n=1, bars=2)
    chord_steps(train, [(72, 67, 64, 48), (74, 69, 65, 50), (72, 67, 64, 48), (71, 67, 62, 43)], length=4)
    gen = empty(n=1, bars=2)
    chord_steps(gen, [(75, 70, 67, 51), (77, 72, 68, 53), (75, 70, 67, 51), (74, 70, 65, 46)], length=4)
    assert metrics.copied_bars(gen, train) == 1.0            # both bars, three semitones up
    gen[0, 0, 1] = 0
    put(gen, 0, 80, 16, 16)                                  # a new soprano in bar 2
    assert metrics.copied_bars(gen, train) == 0.5


def test_nn_distance_zero_for_transposed_copy_and_positive_otherwise():
    train = empty(n=1, bars=1)
    chord_steps(train, [(72, 67, 64, 48), (74, 69, 65, 50)], length=8)
    same = np.roll(train, 2, axis=-1)
    assert metrics.nn_distance(same, train) == 0.0
    other = empty(n=1, bars=1)
    chord_steps(other, [(72, 67, 64, 48)], length=16)        # same first half, held: onsets and pitches differ
    d = metrics.nn_distance(other, train)
    assert 0 < d < 1


def test_bar_set_rules():
    ref = {k: 1.0 for k in metrics.BAR_KEYS}
    ref.update(all_voices=0.999, parallels=0.07, stepwise=0.65, beat_triads=0.71, sixteenths=0.03,
               half_or_longer=0.07, range_ok=1.0, copied_bars=0.1, nn_distance=0.48, diversity=0.95)
    assert all(metrics.check_bar(ref, ref).values())
    assert not metrics.check_bar(dict(ref, parallels=0.5), ref)["parallels"]
    assert not metrics.check_bar(dict(ref, qn=1.15), ref)["qn"]          # 10 %, not 20 %
    assert not metrics.check_bar(dict(ref, nn_distance=0.3), ref)["nn_distance"]
    assert not metrics.check_bar(dict(ref, copied_bars=0.2), ref)["copied_bars"]
