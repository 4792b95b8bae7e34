"""Key finding, scale membership and rhythm measures on hand-made lines."""
import math

import numpy as np
import pytest

from composer.music import keys as K

C_MAJOR_SCALE = [60, 62, 64, 65, 67, 69, 71, 72]
A_MINOR_TUNE = [69, 71, 72, 74, 76, 72, 69, 68, 69, 64, 69]  # with the leading tone G#


def test_kk_key_of_scales_and_tunes():
    assert K.find_key(C_MAJOR_SCALE) == K.Key(0, "major")
    assert K.find_key([p + 7 for p in C_MAJOR_SCALE]) == K.Key(7, "major")   # G major
    assert K.find_key(A_MINOR_TUNE) == K.Key(9, "minor")
    # a C major triad arpeggio held on C and G: C major; on A, C, E with A long: A minor
    assert K.find_key([60, 64, 67, 60], [4, 1, 2, 4]) == K.Key(0, "major")
    assert K.find_key([57, 60, 64, 57], [6, 1, 1, 6]) == K.Key(9, "minor")
    assert K.find_key([]) is None
    assert K.find_key(list(range(60, 72))) is None  # all twelve equally: no key


def test_key_is_transposition_equivariant():
    rng = np.random.default_rng(0)
    p = rng.choice(C_MAJOR_SCALE, 30)
    d = rng.integers(1, 12, 30)
    k = K.find_key(p, d)
    for s in range(-6, 6):
        assert K.find_key(p + s, d) == K.transpose_key(k, s)


def test_scales_and_in_key_share():
    assert K.Key(0, "major").scale() == frozenset({0, 2, 4, 5, 7, 9, 11})
    assert K.Key(9, "minor").scale() == frozenset({9, 11, 0, 2, 4, 5, 7, 8})  # G# (leading tone) in
    assert K.in_key_share(C_MAJOR_SCALE, K.Key(0, "major")) == 1.0
    assert K.in_key_share([60, 61, 62, 63], K.Key(0, "major")) == 0.5
    assert K.in_key_share([66], K.Key(7, "major")) == 1.0  # F# in G major
    assert math.isnan(K.in_key_share([], K.Key(0, "major")))
    assert K.Key(6, "major").name == "F# major" and str(K.Key(10, "minor")) == "Bb minor"


def test_shift_to_common_tonic():
    assert K.shift_to_common(K.Key(0, "major")) == 0
    assert K.shift_to_common(K.Key(7, "major")) == 5        # G -> C up a fourth
    assert K.shift_to_common(K.Key(2, "major")) == -2       # D -> C
    assert K.shift_to_common(K.Key(6, "major")) == -6       # F# -> C (range -6..+5)
    assert K.shift_to_common(K.Key(4, "minor")) == 5        # E minor -> A minor
    assert K.shift_to_common(K.Key(9, "minor")) == 0
    assert K.shift_to_common(None) == 0
    for t in range(12):
        for m in ("major", "minor"):
            s = K.shift_to_common(K.Key(t, m))
            assert -6 <= s <= 5 and K.transpose_key(K.Key(t, m), s) in (K.Key(0, "major"), K.Key(9, "minor"))


def test_duration_histogram_distance():
    assert K.duration_tv([6, 6, 12, 12], [12, 6, 12, 6]) == 0.0
    assert K.duration_tv([6, 6], [12, 12]) == 1.0
    # 3/4 eighths + 1/4 quarters vs all eighths: 0.25 apart
    assert K.duration_tv([6, 6, 6, 12], [6, 6]) == pytest.approx(0.25)
    assert math.isnan(K.duration_tv([], [6]))
    assert K.duration_histogram([6, 6, 12]) == {6: pytest.approx(2 / 3), 12: pytest.approx(1 / 3)}


def test_onset_positions_in_the_bar():
    bar = 48  # 4/4 at 12 ticks per quarter
    prompt = [0, 12, 24, 36, 48, 60, 72, 84]  # quarter notes
    assert K.onset_share([192, 204, 216, 228], prompt, bar) == 1.0
    assert K.onset_share([192, 198, 204, 210], prompt, bar) == 0.5  # eighths off the beats
    assert K.onset_share([192, 192, 198], prompt, bar) == 0.5       # a chord's onset counts once
    # 3/4 (36 ticks): onset 36 is the next downbeat
    assert K.onset_share([36, 42], [0, 12, 24], 36) == 0.5
    assert math.isnan(K.onset_share([], prompt, bar))


def test_continuation_scores_pass_a_real_continuation_and_fail_a_random_one():
    bar = 48
    on = np.arange(16) * 12
    prompt = (on, np.full(16, 12), np.array(C_MAJOR_SCALE + C_MAJOR_SCALE[::-1]))
    cont = (on + 192, np.full(16, 12), np.array([67, 64, 60, 64, 67, 72, 67, 64, 65, 62, 59, 62, 60, 64, 67, 60]))
    s = K.continuation_scores(prompt, cont, bar)
    assert s["key_prompt"] == "C major" and s["key_agree"] == 1.0 and s["in_key"] == 1.0
    assert s["dur_tv"] == 0.0 and s["onset_share"] == 1.0
    chromatic = (np.arange(12) * 7 + 192 + 3, np.full(12, 7), np.array([61, 63, 66, 68, 70, 61, 63, 66, 68, 70, 61, 63]))
    r = K.continuation_scores(prompt, chromatic, bar)
    assert r["key_agree"] == 0.0 and r["in_key"] == 0.0 and r["dur_tv"] == 1.0 and r["onset_share"] < 0.5
    m = K.mean_scores([s, r, dict(r, in_key=float("nan"))])
    assert m["n"] == 3 and m["key_agree"] == pytest.approx(1 / 3, abs=1e-4) and m["in_key"] == 0.5
