"""Piano-roll codecs between :class:`pretty_midi.PrettyMIDI` and numpy arrays.

Two representations are used by the models:

* :class:`MultiTrackRoll` - the MuseGAN tensor ``(tracks, bars, steps_per_bar, pitches)``.
* :func:`merged_roll` - the genre-transfer roll ``(bars, steps, 84)``, all non-drum tracks
  merged into one, MIDI pitches 24-107.

Both store *codes* rather than a binary roll, because a binary roll cannot tell a held
note from a repeated one and has no way to say "rest" other than silence everywhere
(docs/ARCHITECTURE.md)::

    REST  = 0   nothing sounds at this pitch and step
    HOLD  = 1   a note that started earlier still sounds
    ONSET = 2   a note starts here

A note of ``n`` steps is one ONSET followed by ``n - 1`` HOLDs, so every note's pitch,
onset and length survive an encode/decode round trip exactly (on the step grid).

The models work in ``[-1, 1]``: :func:`codes_to_float` maps REST/HOLD/ONSET to -1/0/1 and
:func:`float_to_codes` maps a generator's output back, either polyphonically (per cell)
or monophonically (:func:`decode_monophonic`: the likeliest single line per voice and bar,
which suits the four chorale voices).

This module does not import torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pretty_midi

REST, HOLD, ONSET = 0, 1, 2

#: The pitch window of both models: 7 octaves, C1 (24) to B7 (107).
PITCH_OFFSET = 24
N_PITCHES = 84
STEPS_PER_BAR = 16  # sixteenth notes in 4/4
STEPS_PER_BEAT = 4


@dataclass
class MultiTrackRoll:
    """A multi-track piano roll on a sixteenth-note grid in 4/4.

    Attributes
    ----------
    codes : np.ndarray
        uint8 array of shape ``(tracks, bars, steps_per_bar, pitches)`` holding
        REST/HOLD/ONSET codes.
    programs : list of int
        General MIDI program (0-127) of each track.
    names : list of str
        Name of each track.
    is_drum : list of bool
        Whether each track is a drum track (rendered on channel 9 / bank 128).
    tempo : float
        Quarter notes per minute.
    pitch_offset : int
        MIDI pitch of column 0 of the last axis.
    """

    codes: np.ndarray
    programs: list[int]
    names: list[str]
    is_drum: list[bool] = field(default_factory=list)
    tempo: float = 100.0
    pitch_offset: int = PITCH_OFFSET

    def __post_init__(self):
        self.codes = np.asarray(self.codes, dtype=np.uint8)
        if self.codes.ndim != 4:
            raise ValueError(f"codes must be 4-D (tracks, bars, steps, pitches), got shape {self.codes.shape}")
        n = self.codes.shape[0]
        if not self.is_drum:
            self.is_drum = [False] * n
        if not (len(self.programs) == len(self.names) == len(self.is_drum) == n):
            raise ValueError("programs, names and is_drum need one entry per track")
        if self.tempo <= 0:
            raise ValueError("tempo must be positive")

    @property
    def n_tracks(self) -> int:
        return self.codes.shape[0]

    @property
    def n_bars(self) -> int:
        return self.codes.shape[1]

    @property
    def steps_per_bar(self) -> int:
        return self.codes.shape[2]

    @property
    def n_pitches(self) -> int:
        return self.codes.shape[3]

    def track_steps(self, track: int) -> np.ndarray:
        """Codes of one track with bars concatenated: ``(bars * steps, pitches)``."""
        c = self.codes[track]
        return c.reshape(-1, c.shape[-1])

    def to_pretty_midi(self, velocity: int = 90) -> pretty_midi.PrettyMIDI:
        """Decode to a PrettyMIDI with one instrument per track."""
        pm = pretty_midi.PrettyMIDI(initial_tempo=float(self.tempo))
        step_s = 60.0 / self.tempo / (self.steps_per_bar / 4)
        for t in range(self.n_tracks):
            inst = pretty_midi.Instrument(program=int(self.programs[t]), is_drum=bool(self.is_drum[t]), name=self.names[t])
            for pitch, start, end in notes_from_codes(self.track_steps(t)):
                inst.notes.append(pretty_midi.Note(velocity=velocity, pitch=pitch + self.pitch_offset,
                                                   start=start * step_s, end=end * step_s))
            inst.notes.sort(key=lambda n: (n.start, n.pitch))
            pm.instruments.append(inst)
        return pm

    @classmethod
    def from_pretty_midi(cls, pm: pretty_midi.PrettyMIDI, n_bars: int | None = None,
                         steps_per_bar: int = STEPS_PER_BAR, pitch_offset: int = PITCH_OFFSET,
                         n_pitches: int = N_PITCHES, include_drums: bool = True) -> "MultiTrackRoll":
        """Encode every instrument of ``pm`` as one track.

        Time is quantised on MIDI ticks (not seconds), so tempo changes do not shift the
        grid. Notes outside the pitch window are folded into it by octaves.
        ``n_bars`` defaults to the number of bars the music covers.
        """
        insts = [i for i in pm.instruments if include_drums or not i.is_drum]
        spans = [notes_to_steps(i.notes, pm, steps_per_bar) for i in insts]
        last = max((s[:, 2].max() for s in spans if len(s)), default=0)
        if n_bars is None:
            n_bars = max(1, int(np.ceil(last / steps_per_bar)))
        total = n_bars * steps_per_bar
        codes = np.zeros((len(insts), total, n_pitches), dtype=np.uint8)
        for k, s in enumerate(spans):
            if len(s):
                s = s.copy()
                s[:, 0] = fold_pitch(s[:, 0] - pitch_offset, n_pitches)
                codes[k] = codes_from_notes(s, total, n_pitches)
        tempo = _first_tempo(pm)
        return cls(codes=codes.reshape(len(insts), n_bars, steps_per_bar, n_pitches),
                   programs=[i.program for i in insts],
                   names=[i.name or pretty_midi.program_to_instrument_name(i.program) for i in insts],
                   is_drum=[i.is_drum for i in insts], tempo=tempo, pitch_offset=pitch_offset)


def _first_tempo(pm: pretty_midi.PrettyMIDI) -> float:
    _, tempi = pm.get_tempo_changes()
    return float(tempi[0]) if len(tempi) else 120.0


def fold_pitch(p: np.ndarray, n_pitches: int) -> np.ndarray:
    """Move pitch indices outside ``[0, n_pitches)`` into it by whole octaves."""
    p = np.asarray(p, dtype=np.int64).copy()
    while (p < 0).any():
        p[p < 0] += 12
    while (p >= n_pitches).any():
        p[p >= n_pitches] -= 12
    return p


def notes_to_steps(notes, pm: pretty_midi.PrettyMIDI, steps_per_bar: int = STEPS_PER_BAR) -> np.ndarray:
    """Quantise notes to ``(pitch, start_step, end_step)`` rows on the tick grid.

    Every note lasts at least one step.
    """
    if not notes:
        return np.zeros((0, 3), dtype=np.int64)
    ticks_per_step = pm.resolution * 4 / steps_per_bar
    rows = []
    for n in notes:
        s = int(round(pm.time_to_tick(n.start) / ticks_per_step))
        e = int(round(pm.time_to_tick(n.end) / ticks_per_step))
        rows.append((n.pitch, s, max(e, s + 1)))
    return np.asarray(rows, dtype=np.int64)


def codes_from_notes(rows: np.ndarray, n_steps: int, n_pitches: int) -> np.ndarray:
    """Write ``(pitch_index, start, end)`` rows into a ``(n_steps, n_pitches)`` code grid.

    Notes are written in start order, so a later onset cuts an earlier note of the same
    pitch short (as a MIDI note-on on a sounding key does). Steps past ``n_steps`` are cut.
    """
    codes = np.zeros((n_steps, n_pitches), dtype=np.uint8)
    for p, s, e in sorted(map(tuple, rows), key=lambda r: r[1]):
        if s >= n_steps or not 0 <= p < n_pitches:
            continue
        e = min(e, n_steps)
        codes[s + 1:e, p] = HOLD
        codes[s, p] = ONSET
    return codes


def notes_from_codes(codes: np.ndarray):
    """Yield ``(pitch_index, start_step, end_step)`` for a ``(steps, pitches)`` code grid.

    A HOLD with nothing sounding before it starts a note, so any grid decodes.
    """
    codes = np.asarray(codes)
    n_steps = codes.shape[0]
    for p in np.flatnonzero(codes.any(axis=0)):
        col = codes[:, p]
        start = None
        for s in range(n_steps):
            c = col[s]
            if c == ONSET or (c == HOLD and start is None):
                if start is not None:
                    yield int(p), start, s
                start = s
            elif c == REST and start is not None:
                yield int(p), start, s
                start = None
        if start is not None:
            yield int(p), start, n_steps


def codes_to_float(codes: np.ndarray) -> np.ndarray:
    """REST/HOLD/ONSET codes to -1/0/1 float32, the models' range."""
    return np.asarray(codes, dtype=np.float32) - 1.0


def float_to_codes(x: np.ndarray, monophonic: bool = False, threshold: float = -0.5) -> np.ndarray:
    """Decode model output in ``[-1, 1]`` (last axis = pitch, second to last = step) to codes.

    Polyphonic: a cell above ``threshold`` sounds; it is an ONSET if above 0.5, or if the
    same pitch did not sound on the step before, else a HOLD.

    Monophonic: :func:`decode_monophonic`, the most likely single line of notes per bar
    (``threshold`` is not used: the levels -1/0/1 themselves set the decision).
    """
    x = np.asarray(x, dtype=np.float32)
    if monophonic:
        return decode_monophonic(x)
    on = x > threshold
    prev = np.zeros_like(on)
    prev[..., 1:, :] = on[..., :-1, :]
    # bars are separate slices of the step axis: a note may continue across the bar line
    if x.ndim >= 3:
        prev_bar_last = np.zeros_like(on[..., 0, :])
        prev_bar_last[..., 1:, :] = on[..., :-1, -1, :]
        prev[..., 0, :] = prev_bar_last
    onset = on & ((x > 0.5) | ~prev)
    return np.where(onset, ONSET, np.where(on, HOLD, REST)).astype(np.uint8)


def decode_monophonic(x: np.ndarray) -> np.ndarray:
    """The most likely monophonic code sequence for each ``(steps, pitches)`` slice of ``x``.

    Every slice (one voice in one bar) is decoded on its own, so a bar's notes depend on
    that bar's output alone (the Compose tab's locked cells rely on this). Each step is in
    one of ``1 + 2 * pitches`` states: rest, ONSET at pitch p, or HOLD at pitch p, and a
    HOLD at p may only follow an ONSET or HOLD at p (or open the bar: a tie from the bar
    before). Reading the output as the levels -1/0/1 plus Gaussian noise, the cost of a
    state is its squared distance to the output, which, relative to "all rest", is
    ``-4 x_p`` for an ONSET at p and ``-2 x_p - 1`` for a HOLD at p. Viterbi finds the
    cheapest path.

    Why not the loudest pitch per step: a held note sits at level 0, so a little noise on
    one step hands that step to a neighbouring pitch or to silence and cuts the note into
    sixteenths. Here a held note continues as long as holding is the likelier reading of
    the whole bar. A clean -1/0/1 roll decodes to itself exactly.
    """
    x = np.asarray(x, dtype=np.float32)
    S, P = x.shape[-2:]
    xs = x.reshape(-1, S, P)
    R = xs.shape[0]
    rows = np.arange(R)
    onset_cost, hold_cost = -4.0 * xs, -2.0 * xs - 1.0
    # forward pass; state costs after step s: rest (R,), onset (R, P), hold (R, P)
    rest = np.zeros(R, np.float32)
    onset = onset_cost[:, 0].copy()
    hold = hold_cost[:, 0].copy()                     # a tie into the bar
    best_prev = np.zeros((R, S), np.int64)            # argmin state at s-1 (before a rest/onset at s)
    hold_from_hold = np.zeros((R, S, P), bool)        # HOLD at s came from HOLD (else ONSET) at s-1
    for s in range(1, S):
        states = np.concatenate([rest[:, None], onset, hold], axis=1)
        arg = states.argmin(axis=1)
        best = states[rows, arg]
        best_prev[:, s] = arg
        from_hold = hold < onset
        hold_from_hold[:, s] = from_hold
        hold = np.where(from_hold, hold, onset) + hold_cost[:, s]
        onset = best[:, None] + onset_cost[:, s]
        rest = best
    # backward pass
    state = np.concatenate([rest[:, None], onset, hold], axis=1).argmin(axis=1)
    out = np.zeros((R, S, P), np.uint8)
    for s in range(S - 1, -1, -1):
        is_on, is_hold = (state >= 1) & (state <= P), state > P
        pitch = np.where(is_on, state - 1, np.where(is_hold, state - 1 - P, 0))
        out[rows[is_on], s, pitch[is_on]] = ONSET
        out[rows[is_hold], s, pitch[is_hold]] = HOLD
        if s:
            stay = is_hold & hold_from_hold[rows, s, pitch]
            state = np.where(is_hold, np.where(stay, state, state - P), best_prev[:, s])
    return out.reshape(x.shape)


def merged_roll(pm: pretty_midi.PrettyMIDI, steps_per_bar: int = STEPS_PER_BAR,
                pitch_offset: int = PITCH_OFFSET, n_pitches: int = N_PITCHES) -> np.ndarray:
    """All non-drum tracks merged into one code grid ``(bars, steps_per_bar, n_pitches)``.

    Where two tracks sound the same pitch at once, the ONSET wins over the HOLD. The
    genre-transfer models binarise this with ``codes > 0``; :func:`merged_to_pretty_midi`
    turns it back into a one-instrument MIDI.
    """
    rows = [notes_to_steps(i.notes, pm, steps_per_bar) for i in pm.instruments if not i.is_drum]
    rows = [r for r in rows if len(r)]
    if not rows:
        return np.zeros((1, steps_per_bar, n_pitches), dtype=np.uint8)
    last = max(r[:, 2].max() for r in rows)
    n_bars = max(1, int(np.ceil(last / steps_per_bar)))
    total = n_bars * steps_per_bar
    merged = np.zeros((total, n_pitches), dtype=np.uint8)
    for r in rows:
        r = r.copy()
        r[:, 0] = fold_pitch(r[:, 0] - pitch_offset, n_pitches)
        merged = np.maximum(merged, codes_from_notes(r, total, n_pitches))
    return merged.reshape(n_bars, steps_per_bar, n_pitches)


def merged_windows(roll: np.ndarray, n_bars: int = 4) -> np.ndarray:
    """Cut a ``(bars, steps, pitches)`` roll into ``(windows, n_bars, steps, pitches)``.

    The last window is padded with rests, so no music is dropped.
    """
    total = roll.shape[0]
    n_win = max(1, int(np.ceil(total / n_bars)))
    pad = n_win * n_bars - total
    if pad:
        roll = np.concatenate([roll, np.zeros((pad,) + roll.shape[1:], dtype=roll.dtype)])
    return roll.reshape(n_win, n_bars, *roll.shape[1:])


def merged_to_pretty_midi(roll: np.ndarray, tempo: float = 120.0, program: int = 0,
                          pitch_offset: int = PITCH_OFFSET) -> pretty_midi.PrettyMIDI:
    """Decode a merged ``(..., steps, pitches)`` code roll to a one-instrument PrettyMIDI."""
    roll = np.asarray(roll)
    mt = MultiTrackRoll(codes=roll.reshape(1, -1, roll.shape[-2], roll.shape[-1]), programs=[program],
                        names=[pretty_midi.program_to_instrument_name(program)], tempo=tempo,
                        pitch_offset=pitch_offset)
    return mt.to_pretty_midi()
