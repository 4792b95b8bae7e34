"""A single melody line for the harmonizer: read from MIDI, ABC or typed notes (no torch).

A melody is a list of notes ``(midi_pitch, start_step, end_step)`` on the sixteenth-note grid
of 4/4 (16 steps a bar), one note at a time. From MIDI its line is the *skyline*: at every
step the highest sounding pitch of any non-drum track; a new note starts where that pitch is
struck again or the top pitch changes. ABC (untrusted text) is read by music21 inside a
:mod:`composer.sandbox` worker (:func:`abc_melody_parts` is the worker's side); its pickup is
kept as in the chorale cache (bar lines of the grid fall on the tune's bar lines).

:func:`melody_codes` writes a line into REST/HOLD/ONSET codes ``(bars, 16, 84)``, the soprano
track of a MuseGAN roll (composer.music.pianoroll).
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from composer.errors import ComposerError
from composer.music.pianoroll import (N_PITCHES, PITCH_OFFSET, STEPS_PER_BAR, STEPS_PER_BEAT, codes_from_notes,
                                      notes_from_codes, notes_to_steps)

#: The longest melody the harmonizer takes, in bars (the Compose tab's longest piece).
MAX_BARS = 32
#: Meters whose bar is four quarter notes: 4/4, and cut time (C|), written as 2/2.
FOUR_FOUR = ("4/4", "2/2")


class MelodyError(ComposerError):
    """A melody the harmonizer cannot take (wrong meter, too long, no notes, out of range)."""


@dataclass
class Melody:
    """One line of notes ``(pitch, start_step, end_step)``, at most one sounding per step.

    ``n_bars`` whole 4/4 bars hold every note; ``tempo`` in quarter notes per minute (from the
    source, when it names one); ``source`` says where it came from, for messages and files.
    """

    notes: list[tuple[int, int, int]]
    n_bars: int
    tempo: float = 90.0
    source: str = "melody"

    @property
    def pitches(self) -> np.ndarray:
        return np.array([p for p, _, _ in self.notes], dtype=np.int64)

    def transposed(self, shift: int) -> "Melody":
        return Melody([(p + shift, s, e) for p, s, e in self.notes], self.n_bars, self.tempo, self.source)


def _check_length(n_bars: int, what: str) -> None:
    if n_bars > MAX_BARS:
        raise MelodyError(f"{what} is {n_bars} bars long; the harmonizer takes up to {MAX_BARS} bars")


def skyline(rows: np.ndarray, n_steps: int) -> list[tuple[int, int, int]]:
    """The highest line of ``(pitch, start, end)`` rows: a monophonic list of notes.

    At each step the top sounding pitch wins; a note of the line starts where that pitch's
    own note starts, where the top pitch changes, or after silence.
    """
    top = np.full(n_steps, -1, np.int64)
    struck = np.zeros((n_steps, 128), bool)
    for p, s, e in rows:
        s, e = int(s), min(int(e), n_steps)
        if s >= n_steps or not 0 <= p < 128:
            continue
        top[s:e] = np.maximum(top[s:e], p)
        struck[s, p] = True
    notes, cur = [], None
    for k in range(n_steps):
        p = int(top[k])
        new = p >= 0 and (cur is None or cur[0] != p or struck[k, p])
        if cur is not None and (p < 0 or new):
            notes.append((cur[0], cur[1], k))
            cur = None
        if new:
            cur = (p, k)
    if cur is not None:
        notes.append((cur[0], cur[1], n_steps))
    return notes


def meters_of(pm) -> list[str]:
    """Time signatures of a PrettyMIDI as ``"n/d"`` strings (empty: none written, read as 4/4)."""
    return [f"{t.numerator}/{t.denominator}" for t in pm.time_signature_changes]


def check_meters(meters, what: str = "the melody") -> None:
    bad = sorted({m for m in meters if m not in FOUR_FOUR})
    if bad:
        raise MelodyError(f"{what} is in {', '.join(bad)}; the harmonizer works in 4/4 only "
                          "(MuseGAN's bars are four quarter notes)")


def from_pretty_midi(pm, pickup_quarters: float = 0.0, source: str = "MIDI", meters=None) -> Melody:
    """The skyline of every non-drum note of ``pm`` as a :class:`Melody` (4/4 only).

    ``pickup_quarters``: the empty part of the first bar before an upbeat (shifts the notes
    right, so bar lines fall where the source has them).

    Raises
    ------
    MelodyError
        Another meter, no notes, or more than :data:`MAX_BARS` bars.
    """
    check_meters(meters_of(pm) if meters is None else meters, f"the {source}")
    rows = [notes_to_steps(i.notes, pm, STEPS_PER_BAR) for i in pm.instruments if not i.is_drum and i.notes]
    rows = [r for r in rows if len(r)]
    if not rows:
        raise MelodyError(f"the {source} holds no notes")
    rows = np.concatenate(rows)
    shift = int(round(pickup_quarters * STEPS_PER_BEAT))
    rows[:, 1:] += shift
    first = int(rows[:, 1].min())
    lead = (first // STEPS_PER_BAR) * STEPS_PER_BAR  # whole empty bars at the start are dropped
    rows[:, 1:] -= lead
    last = int(rows[:, 2].max())
    n_bars = max(1, -(-last // STEPS_PER_BAR))
    _check_length(n_bars, f"the {source}")
    tempo = float(pm.get_tempo_changes()[1][0]) if len(pm.get_tempo_changes()[1]) else 90.0
    return Melody(skyline(rows, n_bars * STEPS_PER_BAR), n_bars, tempo=tempo, source=source)


def from_text(text: str, tempo: float = 90.0) -> Melody:
    """Notes typed as in the Continue tab (``E4 D4/0.5 C4/0.5 R/2 ...``, lengths in quarters)."""
    from composer.music import tokens as T
    if not isinstance(text, str) or not text.strip():
        raise MelodyError("type some notes, e.g. E4 D4/0.5 C4/0.5 D4 E4 E4 E4/2")
    pm = T.midi_from_tokens(T.parse_note_names(text), tempo=tempo, name="Melody")
    return from_pretty_midi(pm, source="typed notes", meters=[])


def from_codes(codes: np.ndarray, pitch_offset: int = PITCH_OFFSET, source: str = "soprano") -> Melody:
    """A monophonic code track ``(bars, steps, pitches)`` (e.g. a Compose soprano) as a :class:`Melody`."""
    codes = np.asarray(codes)
    n_bars = codes.shape[0]
    rows = [(p + pitch_offset, s, e) for p, s, e in notes_from_codes(codes.reshape(-1, codes.shape[-1]))]
    if not rows:
        raise MelodyError(f"the {source} holds no notes")
    _check_length(n_bars, f"the {source}")
    return Melody(skyline(np.asarray(rows), n_bars * codes.shape[1]), n_bars, source=source)


def melody_codes(m: Melody, n_bars: int | None = None, pitch_offset: int = PITCH_OFFSET,
                 n_pitches: int = N_PITCHES) -> np.ndarray:
    """The line as REST/HOLD/ONSET codes ``(bars, 16, pitches)`` (``n_bars`` >= the melody's pads with rests)."""
    n_bars = n_bars or m.n_bars
    rows = np.array([(p - pitch_offset, s, e) for p, s, e in m.notes], dtype=np.int64).reshape(-1, 3)
    codes = codes_from_notes(rows, n_bars * STEPS_PER_BAR, n_pitches)
    return codes.reshape(n_bars, STEPS_PER_BAR, n_pitches)


def range_shift(m: Melody, lo: int, hi: int) -> int:
    """Semitones that move the melody inside ``[lo, hi]``: 0 when it fits; else whole octaves
    when they do; else the smallest shift that does.

    Raises
    ------
    MelodyError
        When the melody spans more than the range.
    """
    p = m.pitches
    low, high = int(p.min()), int(p.max())
    if high - low > hi - lo:
        raise MelodyError(f"the melody spans {high - low} semitones; a soprano sings at most {hi - lo} "
                          f"(MIDI {lo}-{hi})")
    if low >= lo and high <= hi:
        return 0
    fits = [k for k in range(lo - low, hi - high + 1)]
    octaves = [k for k in fits if k % 12 == 0]
    return min(octaves or fits, key=abs)


# ---------------------------------------------------------------------------------------------
# ABC, inside a sandbox worker
# ---------------------------------------------------------------------------------------------

def abc_melody_parts(text: str) -> dict:
    """What :func:`from_abc` needs from music21, as plain data (runs in a sandbox worker).

    Returns ``{"error": str | None, "meters": [...], "pickup": quarters, "midi": bytes}``.
    """
    from composer.music.abc import _played_score, _score_to_pretty_midi, check_abc
    res = check_abc(text, keep_score=True)
    if not res.valid:
        where = f" (line {res.line})" if res.line else ""
        return {"error": f"the ABC cannot be read{where}: {res.error}", "meters": [], "pickup": 0.0, "midi": None}
    score = _played_score(text, res.score)
    meters = sorted({ts.ratioString for ts in score.recurse().getElementsByClass("TimeSignature")})
    part = score.parts[0] if hasattr(score, "parts") and len(score.parts) else score
    measures = part.getElementsByClass("Measure")
    pickup = float(measures[0].paddingLeft or 0.0) if len(measures) else 0.0
    pm = _score_to_pretty_midi(score, 40, None)
    buf = io.BytesIO()
    pm.write(buf)
    return {"error": None, "meters": meters, "pickup": pickup, "midi": buf.getvalue()}


def from_abc(text: str) -> Melody:
    """The first tune of an ABC text as a :class:`Melody` (music21 in a sandbox worker).

    Raises
    ------
    MelodyError
        The text is not readable ABC, not in 4/4, has no notes or is too long.
    """
    import pretty_midi

    from composer import sandbox
    from composer.music.abc import MAX_CHECK_CHARS as MAX_CHARS
    if not isinstance(text, str) or not text.strip():
        raise MelodyError("the ABC text is empty")
    if len(text) > MAX_CHARS:
        raise MelodyError(f"the ABC text is over {MAX_CHARS:,} characters")
    parts = sandbox.run("composer.music.melody:abc_melody_parts", text, timeout=6.0, what="this ABC tune")
    if parts["error"]:
        raise MelodyError(parts["error"])
    check_meters(parts["meters"], "the ABC tune")
    pm = pretty_midi.PrettyMIDI(io.BytesIO(parts["midi"]))
    return from_pretty_midi(pm, parts["pickup"], source="ABC tune", meters=parts["meters"])
