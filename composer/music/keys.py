"""Keys, scales and rhythm measures for melodic lines (issue 18). numpy only, no torch.

* :func:`find_key`: the Krumhansl–Kessler key (Krumhansl–Schmuckler algorithm): the
  duration-weighted pitch-class histogram is correlated with the 24 rotated KK profiles
  (Krumhansl & Kessler 1982) and the best one wins. Pitch class is ``pitch % 12``.
* :meth:`Key.scale`: the pitch classes "in the key": the major scale, or for minor the
  natural minor scale plus the raised leading tone (harmonic minor's 7th), which melodies in
  minor use at cadences.
* :func:`shift_to_common`: semitones (-6..+5) that move a key to C major / A minor, the
  common tonic the note models are trained in.
* Rhythm: :func:`duration_tv` (total-variation distance between two duration histograms) and
  :func:`onset_share` (share of one line's onsets that fall on bar positions another line uses).

A *line* here is three arrays of equal length: onset times, durations (both in ticks, onset 0
on a bar line) and pitches; a chord is several rows with the same onset.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Krumhansl & Kessler (1982) probe-tone profiles, tonic first.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
PC_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10, 11)  # natural minor + raised leading tone


@dataclass(frozen=True)
class Key:
    tonic: int   # pitch class 0..11
    mode: str    # "major" or "minor"

    @property
    def name(self) -> str:
        return f"{PC_NAMES[self.tonic % 12]} {self.mode}"

    def scale(self) -> frozenset:
        steps = MAJOR_SCALE if self.mode == "major" else MINOR_SCALE
        return frozenset((self.tonic + s) % 12 for s in steps)

    def __str__(self) -> str:
        return self.name


def pc_histogram(pitches, weights=None) -> np.ndarray:
    """(12,) histogram of ``pitch % 12``, weighted by ``weights`` (e.g. durations) if given."""
    p = np.asarray(pitches, dtype=np.int64).reshape(-1)
    w = np.ones(len(p)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) != len(p):
        raise ValueError("pitches and weights differ in length")
    return np.bincount(p % 12, weights=w, minlength=12).astype(np.float64)


def key_scores(hist) -> np.ndarray:
    """(24,) Pearson correlations of a pitch-class histogram with the KK profiles:
    index ``tonic`` for major keys, ``12 + tonic`` for minor keys (nan for a flat histogram)."""
    h = np.asarray(hist, dtype=np.float64)
    out = np.full(24, np.nan)
    if h.std() == 0:
        return out
    for t in range(12):
        for m, prof in enumerate((KK_MAJOR, KK_MINOR)):
            out[12 * m + t] = np.corrcoef(h, np.roll(prof, t))[0, 1]
    return out


def find_key(pitches, weights=None) -> Key | None:
    """Krumhansl–Kessler key of the notes (``weights``: durations; None: each note counts once).
    None when there are no notes or all pitch classes are equally common."""
    if len(np.asarray(pitches).reshape(-1)) == 0:
        return None
    s = key_scores(pc_histogram(pitches, weights))
    if np.all(np.isnan(s)):
        return None
    i = int(np.nanargmax(s))  # first maximum: ties go to major, then the lower tonic
    return Key(i % 12, "major" if i < 12 else "minor")


def in_key_share(pitches, key: Key) -> float:
    """Share of notes whose pitch class is in ``key``'s scale (nan when there are no notes)."""
    p = np.asarray(pitches, dtype=np.int64).reshape(-1)
    if len(p) == 0 or key is None:
        return float("nan")
    scale = key.scale()
    return float(np.mean([int(x) % 12 in scale for x in p]))


def shift_to_common(key: Key | None) -> int:
    """Semitones in -6..+5 that move ``key`` to C major (major) or A minor (minor); 0 for None."""
    if key is None:
        return 0
    target = 0 if key.mode == "major" else 9
    s = (target - key.tonic) % 12
    return s - 12 if s >= 6 else s


def transpose_key(key: Key, shift: int) -> Key:
    return Key((key.tonic + shift) % 12, key.mode)


# --------------------------------------------------------------------------------------
# Rhythm
# --------------------------------------------------------------------------------------

def line_onsets(onsets, durations):
    """(onset times, their durations) with one row per onset (a chord counts once, its longest note)."""
    o = np.asarray(onsets, dtype=np.int64).reshape(-1)
    d = np.asarray(durations, dtype=np.int64).reshape(-1)
    if len(o) == 0:
        return o, d
    uniq = np.unique(o)
    longest = np.array([d[o == u].max() for u in uniq], dtype=np.int64)
    return uniq, longest


def duration_histogram(durations) -> dict:
    """Normalised histogram {duration: share} (empty dict for no notes)."""
    d = np.asarray(durations, dtype=np.int64).reshape(-1)
    if len(d) == 0:
        return {}
    vals, counts = np.unique(d, return_counts=True)
    return {int(v): float(c) / len(d) for v, c in zip(vals, counts)}


def tv_distance(p: dict, q: dict) -> float:
    """Total-variation distance 0.5 * sum |p - q| of two normalised histograms (nan if one is empty)."""
    if not p or not q:
        return float("nan")
    keys = set(p) | set(q)
    return 0.5 * float(sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys))


def duration_tv(durations_a, durations_b) -> float:
    """Total-variation distance between the duration histograms of two lines (0: same mix of
    note lengths, 1: no length in common)."""
    return tv_distance(duration_histogram(durations_a), duration_histogram(durations_b))


def bar_positions(onsets, bar_ticks: int) -> np.ndarray:
    """Onset offsets within the bar (onset time 0 is a bar line)."""
    return np.asarray(onsets, dtype=np.int64).reshape(-1) % int(bar_ticks)


def onset_share(onsets, reference_onsets, bar_ticks: int) -> float:
    """Share of ``onsets`` whose position in the bar is one that ``reference_onsets`` use
    (nan when there are no onsets)."""
    pos = bar_positions(np.unique(np.asarray(onsets, dtype=np.int64)), bar_ticks)
    if len(pos) == 0:
        return float("nan")
    ref = set(bar_positions(reference_onsets, bar_ticks).tolist())
    return float(np.mean([int(x) in ref for x in pos]))


# --------------------------------------------------------------------------------------
# A continuation against its prompt
# --------------------------------------------------------------------------------------

def continuation_scores(prompt, continuation, bar_ticks: int) -> dict:
    """Scores of a continuation against its prompt. ``prompt`` and ``continuation`` are
    ``(onsets, durations, pitches)`` (ticks, onset 0 on a bar line, the same clock for both).

    Returns ``key_prompt``, ``key_cont`` (names), ``key_agree`` (1/0: same KK key),
    ``in_key`` (share of continuation notes in the prompt key's scale), ``dur_tv``
    (duration-histogram distance to the prompt) and ``onset_share`` (continuation onsets on
    bar positions the prompt uses); nan where a side has no notes.
    """
    po, pd, pp = (np.asarray(a).reshape(-1) for a in prompt)
    co, cd, cp = (np.asarray(a).reshape(-1) for a in continuation)
    kp = find_key(pp, pd)
    kc = find_key(cp, cd)
    out = {"key_prompt": kp.name if kp else None, "key_cont": kc.name if kc else None,
           "key_agree": float(kp == kc) if (kp is not None and kc is not None) else float("nan"),
           "in_key": in_key_share(cp, kp) if kp is not None else float("nan")}
    _, pdur = line_onsets(po, pd)
    _, cdur = line_onsets(co, cd)
    out["dur_tv"] = duration_tv(cdur, pdur)
    out["onset_share"] = onset_share(co, po, bar_ticks)
    return out


def mean_scores(rows: list[dict]) -> dict:
    """Mean of each numeric score over ``rows`` (nan rows skipped), with ``n`` = rows."""
    out = {"n": len(rows)}
    for k in ("key_agree", "in_key", "dur_tv", "onset_share"):
        v = np.array([r[k] for r in rows if r.get(k) is not None], dtype=np.float64)
        v = v[~np.isnan(v)]
        out[k] = round(float(v.mean()), 4) if len(v) else None
    return out
