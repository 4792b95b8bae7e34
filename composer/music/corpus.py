"""music21's bundled corpus as Composer's data: Bach chorales and example pieces.

music21 parses a chorale in ~0.1 s, so anything built from the corpus is built once and
cached under :func:`cache_dir`; UI requests only read the cache.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from composer.music.pianoroll import (N_PITCHES, PITCH_OFFSET, STEPS_PER_BEAT, MultiTrackRoll,
                                      codes_from_notes)

#: The four chorale voices, their General MIDI programs (a string quartet) and names.
CHORALE_VOICES = ("Soprano", "Alto", "Tenor", "Bass")
CHORALE_PROGRAMS = (40, 41, 42, 43)  # violin, viola, cello, contrabass

#: Example pieces offered by the Player (music21 corpus names).
EXAMPLE_CHORALES = ("bach/bwv66.6", "bach/bwv269", "bach/bwv347", "bach/bwv153.1")


def cache_dir() -> Path:
    """Folder for everything rebuilt from the corpus (``$COMPOSER_CACHE`` or ~/.cache/composer)."""
    from composer.paths import cache_dir as root
    path = root()
    path.mkdir(parents=True, exist_ok=True)
    return path


def chorale_names() -> list[str]:
    """Corpus names of the Bach chorales, de-duplicated, in music21's order."""
    from music21 import corpus
    seen, names = set(), []
    for name in corpus.chorales.Iterator(returnType="filename"):
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _pickup_quarters(part) -> float:
    """Length of the anacrusis: the empty space before the first note of measure 0."""
    measures = part.getElementsByClass("Measure")
    if not measures:
        return 0.0
    return float(measures[0].paddingLeft or 0.0)


def score_to_roll(score, voices=CHORALE_VOICES, programs=CHORALE_PROGRAMS, tempo: float = 80.0,
                  steps_per_beat: int = STEPS_PER_BEAT, require_time_signature: str | None = "4/4",
                  pitch_offset: int = PITCH_OFFSET, n_pitches: int = N_PITCHES) -> MultiTrackRoll | None:
    """Encode a four-part music21 score (one part per voice) as a :class:`MultiTrackRoll`.

    Bars are aligned by shifting everything by the pickup, so bar lines of the roll fall on
    the score's bar lines. Returns None when the score does not have exactly one part per
    voice or is not in ``require_time_signature`` throughout.
    """
    parts = list(score.parts)
    if len(parts) != len(voices):
        return None
    if require_time_signature is not None:
        sigs = {ts.ratioString for ts in score.flatten().getElementsByClass("TimeSignature")}
        if sigs != {require_time_signature}:
            return None
    shift = _pickup_quarters(parts[0])
    tracks = []
    for part in parts:
        rows = []
        for el in part.stripTies().flatten().notes:
            start = int(round((float(el.offset) + shift) * steps_per_beat))
            end = int(round((float(el.offset) + shift + float(el.quarterLength)) * steps_per_beat))
            for p in el.pitches:  # a chord in one voice (rare) keeps all its pitches
                rows.append((p.midi - pitch_offset, start, max(end, start + 1)))
        tracks.append(np.asarray(rows, dtype=np.int64).reshape(-1, 3))
    last = max((t[:, 2].max() for t in tracks if len(t)), default=0)
    steps_per_bar = 4 * steps_per_beat
    n_bars = max(1, int(np.ceil(last / steps_per_bar)))
    codes = np.stack([codes_from_notes(t, n_bars * steps_per_bar, n_pitches) for t in tracks])
    return MultiTrackRoll(codes=codes.reshape(len(parts), n_bars, steps_per_bar, n_pitches),
                          programs=list(programs), names=list(voices), tempo=tempo, pitch_offset=pitch_offset)


def load_chorale(name: str) -> MultiTrackRoll | None:
    """Parse one corpus chorale (e.g. ``"bach/bwv66.6"``) into a roll, or None if unusable."""
    from music21 import corpus
    return score_to_roll(corpus.parse(name))


def example_midi_paths() -> dict[str, Path]:
    """Example pieces for the Player as MIDI files in the cache, built on first call.

    Returns a mapping from a display name ("Bach - BWV 66.6") to the file.
    """
    out = {}
    folder = cache_dir() / "examples"
    folder.mkdir(exist_ok=True)
    for name in EXAMPLE_CHORALES:
        label = "Bach - " + name.split("/")[-1].upper().replace("BWV", "BWV ")
        path = folder / (name.replace("/", "_") + ".mid")
        if not path.exists():
            roll = load_chorale(name)
            if roll is None:
                continue
            tmp = path.with_suffix(".tmp")
            roll.to_pretty_midi().write(str(tmp))
            tmp.replace(path)
        out[label] = path
    return out



