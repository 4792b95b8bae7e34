"""Note/chord event tokens for the Continue models (seed 002, without its defects).

A piece becomes a sequence of *events*; each event is two tokens, what sounds then for how long::

    <s>  n:67 d:12  n:69 d:6  r d:6  c:55.62.67.71 d:24 ...

* ``n:P`` one pitch (MIDI number), ``c:P1.P2...`` a chord with its pitches in their octaves
  (sorted, low to high), ``r`` a rest, ``d:T`` the event's length in ticks of
  :data:`TICKS_PER_QUARTER` (12 per quarter note: sixteenths and eighth-note triplets are exact),
  ``<s>`` the start of a piece.
* Events come from the moments where the set of sounding pitches changes or a note is struck
  again, so onsets, held notes, repeated notes and rests all survive a round trip; a note held
  under a moving voice is struck again at the change (polyphony is reduced to block chords).
* One :class:`Vocab`, built once from the training side of the split, sorted by a fixed key
  (never ``set()`` order) and saved in every model card. Input and output share it.
* Rare events map to explicit fallbacks, counted in :class:`Fallbacks`, never dropped:
  an unknown chord -> its top note, an unknown pitch -> the same pitch class in range
  (else the nearest pitch), an unknown duration -> the nearest known duration.
* Splits are per song (a chorale's voices and chords, a tune's versions, stay on one side).

No torch here. music21 and pretty_midi are imported where they are needed.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from composer.errors import DataError

TICKS_PER_QUARTER = 12
#: Longest event; a longer rest is split into several, a longer note is cut (counted).
MAX_TICKS = 8 * TICKS_PER_QUARTER
MAX_TYPED_NOTES = 2000
BOS, REST = "<s>", "r"
SPECIALS = (BOS, REST)
CACHE_VERSION = "notes_tokens_v2"  # v2: songs carry their bar length and the bar position of their first onset
#: Bar positions the models see: ``bar class * N_POS + (time since the bar line, in ticks)``.
N_POS = 96
BAR_CLASSES = (24, 36, 48, 72)  # bar lengths in ticks: 2/4, 3/4 and 6/8, 4/4, 3/2 and 12/8; then "other"
N_POS_IDS = N_POS * (len(BAR_CLASSES) + 1)


# --------------------------------------------------------------------------------------
# Tokens <-> events
# --------------------------------------------------------------------------------------

def kind(token: str) -> str:
    """'bos', 'rest', 'note', 'chord' or 'dur'."""
    if token == BOS:
        return "bos"
    if token == REST:
        return "rest"
    return {"n": "note", "c": "chord", "d": "dur"}[token[0]]


def pitch_token(pitches) -> str:
    ps = sorted({int(p) for p in pitches})
    if not ps:
        return REST
    return f"n:{ps[0]}" if len(ps) == 1 else "c:" + ".".join(map(str, ps))


def token_pitches(token: str) -> list[int]:
    if token.startswith("n:"):
        return [int(token[2:])]
    if token.startswith("c:"):
        return [int(p) for p in token[2:].split(".")]
    return []


def dur_token(ticks: int) -> str:
    return f"d:{int(ticks)}"


def events_from_notes(notes, ticks_per_quarter: int = TICKS_PER_QUARTER) -> list[tuple[tuple[int, ...], int]]:
    """``notes`` = iterable of (start, end, pitch) in quarter notes -> [(pitches, ticks)].

    Times are rounded to the tick grid (a note lasts at least one tick). Empty pitch
    tuples are rests; the silence before the first note is dropped, so a piece starts on
    its first onset. A rest longer than :data:`MAX_TICKS` is split.
    """
    q = []
    for s, e, p in notes:
        a = int(round(float(s) * ticks_per_quarter))
        b = max(a + 1, int(round(float(e) * ticks_per_quarter)))
        q.append((a, b, int(p)))
    if not q:
        return []
    import heapq
    q.sort()
    starts = {a for a, _, _ in q}
    first = q[0][0]
    bounds = sorted(t for t in starts | {b for _, b, _ in q} if t >= first)
    events, active, i = [], [], 0  # active: heap of (end, pitch) sounding now
    for t0, t1 in zip(bounds[:-1], bounds[1:]):
        while i < len(q) and q[i][0] <= t0:
            heapq.heappush(active, (q[i][1], q[i][2]))
            i += 1
        while active and active[0][0] <= t0:
            heapq.heappop(active)
        sounding = tuple(sorted({p for _, p in active}))
        length = t1 - t0
        if not sounding:
            while length > MAX_TICKS:
                events.append(((), MAX_TICKS))
                length -= MAX_TICKS
        events.append((sounding, length))
    return events


def tokens_from_events(events, bos: bool = True) -> list[str]:
    out = [BOS] if bos else []
    for pitches, ticks in events:
        out += [pitch_token(pitches), dur_token(ticks)]
    return out


def events_from_tokens(tokens) -> list[tuple[tuple[int, ...], int]]:
    """Inverse of :func:`tokens_from_events`, tolerant of a broken grammar: a pitch token
    without a duration lasts a quarter note, a duration without a pitch token is a rest."""
    events, pending = [], None
    for tok in tokens:
        k = kind(tok)
        if k == "bos":
            continue
        if k == "dur":
            events.append((tuple(token_pitches(pending)) if pending else (), int(tok[2:])))
            pending = None
        else:
            if pending is not None:
                events.append((tuple(token_pitches(pending)), TICKS_PER_QUARTER))
            pending = tok
    if pending is not None:
        events.append((tuple(token_pitches(pending)), TICKS_PER_QUARTER))
    return events


def notes_from_tokens(tokens, start_quarters: float = 0.0) -> list[tuple[float, float, int]]:
    """Tokens -> (start, end, pitch) in quarter notes; each event's notes last the event."""
    out, t = [], 0
    for pitches, ticks in events_from_tokens(tokens):
        for p in pitches:
            out.append((start_quarters + t / TICKS_PER_QUARTER, start_quarters + (t + ticks) / TICKS_PER_QUARTER, p))
        t += ticks
    return out


def tokens_length_quarters(tokens) -> float:
    return sum(t for _, t in events_from_tokens(tokens)) / TICKS_PER_QUARTER


# --------------------------------------------------------------------------------------
# music21 and PrettyMIDI
# --------------------------------------------------------------------------------------

def stream_notes(stream) -> list[tuple[float, float, int]]:
    """(start, end, pitch) in quarters of every note and chord of a music21 stream (ties joined)."""
    out = []
    for el in stream.stripTies().flatten().notes:
        s = float(el.offset)
        e = s + float(el.quarterLength)
        if e <= s:  # grace notes
            continue
        for p in el.pitches:
            out.append((s, e, p.midi))
    return out


def tokens_from_stream(stream, bos: bool = True) -> list[str]:
    return tokens_from_events(events_from_notes(stream_notes(stream)), bos=bos)


def midi_tempo(pm) -> float:
    """The first tempo of a PrettyMIDI (quarter notes per minute), 120 when none is set."""
    _, tempi = pm.get_tempo_changes()
    return float(tempi[0]) if len(tempi) else 120.0


def midi_notes(pm, tempo: float | None = None) -> list[tuple[float, float, int]]:
    """(start, end, pitch) in quarter notes of every pitched note of a PrettyMIDI."""
    qps = (tempo or midi_tempo(pm)) / 60.0
    return [(n.start * qps, n.end * qps, n.pitch) for inst in pm.instruments if not inst.is_drum for n in inst.notes]


def tokens_from_midi(pm, bos: bool = True, tempo: float | None = None) -> list[str]:
    return tokens_from_events(events_from_notes(midi_notes(pm, tempo)), bos=bos)


def midi_from_tokens(tokens, tempo: float = 100.0, program: int = 0, name: str = "Melody",
                     start_quarters: float = 0.0, velocity: int = 90):
    """Tokens -> a PrettyMIDI with one instrument."""
    import pretty_midi
    pm = pretty_midi.PrettyMIDI(initial_tempo=float(tempo))
    inst = pretty_midi.Instrument(program=int(program), name=name)
    spq = 60.0 / float(tempo)
    for s, e, p in notes_from_tokens(tokens, start_quarters):
        if 0 <= p <= 127:
            inst.notes.append(pretty_midi.Note(velocity=velocity, pitch=int(p), start=s * spq, end=e * spq))
    pm.instruments.append(inst)
    return pm


def parse_note_names(text: str) -> list[str]:
    """Notes typed as text -> tokens. Space-separated events, each ``PITCH[/LEN]`` where
    PITCH is a note name with octave (``C4``, ``F#5``, ``Bb3``), a chord of names joined by
    ``+`` (``C4+E4+G4``) or ``R`` for a rest, and LEN is in quarter notes (``1``, ``0.5``,
    ``1/2``, ``1.5``; default 1). Example: ``E4 D4/0.5 C4/0.5 D4 E4 E4 E4/2 R C4+E4+G4/2``.
    """
    from fractions import Fraction
    words = text.replace(",", " ").split()
    if len(words) > MAX_TYPED_NOTES:
        raise DataError(f"{len(words)} notes typed; at most {MAX_TYPED_NOTES}")
    events = []
    for i, word in enumerate(words, 1):
        head, _, length = word.partition("/")
        try:
            q = float(Fraction(length)) if length else 1.0
        except (ValueError, ZeroDivisionError):
            raise DataError(f"note {i} '{word}': length must be a number of quarter notes, e.g. C4/0.5") from None
        ticks = int(round(q * TICKS_PER_QUARTER))
        if ticks <= 0 or ticks > 16 * TICKS_PER_QUARTER:
            raise DataError(f"note {i} '{word}': length must be between 1/12 and 16 quarter notes")
        if head.upper() == "R":
            events.append(((), ticks))
            continue
        pitches = []
        for name in head.split("+"):
            p = note_name_to_midi(name)
            if p is None:
                raise DataError(f"note {i} '{word}': '{name}' is not a note name like C4, F#5 or Bb3")
            pitches.append(p)
        events.append((tuple(sorted(set(pitches))), ticks))
    if not any(p for p, _ in events):
        raise DataError("type at least one note, e.g. C4 D4 E4/2")
    return tokens_from_events(events)


_STEPS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def note_name_to_midi(name: str) -> int | None:
    """'C4' -> 60, 'F#5' -> 78, 'Bb3' -> 58, 'c#4' -> 61; None when not a note name."""
    s = name.strip()
    if len(s) < 2 or s[0].upper() not in _STEPS:
        return None
    i, acc = 1, 0
    while i < len(s) and s[i] in "#b-":
        acc += 1 if s[i] == "#" else -1
        i += 1
    try:
        octave = int(s[i:])
    except ValueError:
        return None
    p = 12 * (octave + 1) + _STEPS[s[0].upper()] + acc
    return p if 0 <= p <= 127 else None


def midi_to_note_name(p: int) -> str:
    names = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
    return f"{names[p % 12]}{p // 12 - 1}"


# --------------------------------------------------------------------------------------
# Vocabulary with explicit fallbacks
# --------------------------------------------------------------------------------------

@dataclass
class Fallbacks:
    """How many tokens were mapped to a fallback, by kind of mapping."""
    counts: Counter = field(default_factory=Counter)
    total: int = 0

    def as_dict(self) -> dict:
        return {"tokens": self.total, **dict(sorted(self.counts.items()))}


def _sort_key(token: str):
    k = kind(token)
    order = {"bos": 0, "rest": 1, "note": 2, "chord": 3, "dur": 4}[k]
    if k in ("note", "chord"):
        ps = token_pitches(token)
        return (order, len(ps), ps)
    if k == "dur":
        return (order, 0, [int(token[2:])])
    return (order, 0, [])


class Vocab:
    """Token strings <-> ids, sorted by a fixed key: specials, notes by pitch, chords by size
    then pitches, durations by length. Saved in the model card as a plain list."""

    def __init__(self, tokens):
        self.tokens = sorted(set(tokens) | set(SPECIALS), key=_sort_key)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.pitches = sorted(int(t[2:]) for t in self.tokens if t.startswith("n:"))
        self.durations = sorted(int(t[2:]) for t in self.tokens if t.startswith("d:"))
        if not self.pitches or not self.durations:
            raise DataError("a vocabulary needs at least one note and one duration")
        self.kinds = [kind(t) for t in self.tokens]

    def __len__(self):
        return len(self.tokens)

    def __eq__(self, other):
        return isinstance(other, Vocab) and self.tokens == other.tokens

    @classmethod
    def build(cls, sequences, min_chord_count: int = 3, max_chords: int = 1000, min_dur_count: int = 2) -> Vocab:
        """From training sequences: every note (and the whole pitch range between the lowest
        and the highest), chords seen at least ``min_chord_count`` times (the ``max_chords``
        most frequent; ties broken by the sort key), durations seen ``min_dur_count`` times."""
        return cls.from_counts(Counter(t for seq in sequences for t in seq), min_chord_count, max_chords,
                               min_dur_count)

    @classmethod
    def from_counts(cls, counts: Counter, min_chord_count: int = 3, max_chords: int = 1000,
                    min_dur_count: int = 2) -> Vocab:
        """As :meth:`build`, from token counts."""
        notes = [t for t in counts if t.startswith("n:")]
        if not notes:
            raise DataError("no notes in the training data")
        ps = [int(t[2:]) for t in notes]
        tokens = {f"n:{p}" for p in range(min(ps), max(ps) + 1)}
        chords = sorted((t for t in counts if t.startswith("c:") and counts[t] >= min_chord_count),
                        key=lambda t: (-counts[t], _sort_key(t)))[:max_chords]
        durs = [t for t in counts if t.startswith("d:") and counts[t] >= min_dur_count]
        if not durs:
            durs = [t for t in counts if t.startswith("d:")]
        return cls(tokens | set(chords) | set(durs))

    def map_token(self, token: str, fallbacks: Fallbacks | None = None) -> int:
        """The id of ``token`` or of its explicit fallback (counted in ``fallbacks``)."""
        i = self.index.get(token)
        if i is not None:
            return i
        k = kind(token)
        if k == "chord":
            why, target = "chord->top note", f"n:{token_pitches(token)[-1]}"
            if target not in self.index:
                target = f"n:{self._nearest_pitch(token_pitches(token)[-1])}"
        elif k == "note":
            why, target = "pitch->in range", f"n:{self._nearest_pitch(int(token[2:]))}"
        elif k == "dur":
            t = int(token[2:])
            why, target = "duration->nearest", dur_token(min(self.durations, key=lambda d: (abs(d - t), d)))
        else:  # pragma: no cover - specials are always in the vocabulary
            raise DataError(f"unknown token {token!r}")
        if fallbacks is not None:
            fallbacks.counts[why] += 1
        return self.index[target]

    def _nearest_pitch(self, p: int) -> int:
        lo, hi = self.pitches[0], self.pitches[-1]
        q = p
        while q < lo:
            q += 12
        while q > hi:
            q -= 12
        if lo <= q <= hi:
            return min(self.pitches, key=lambda x: (abs(x - q), x))
        return min(self.pitches, key=lambda x: (abs(x - p), x))

    def encode(self, tokens, fallbacks: Fallbacks | None = None) -> np.ndarray:
        ids = np.fromiter((self.map_token(t, fallbacks) for t in tokens), dtype=np.int64, count=len(tokens))
        if fallbacks is not None:
            fallbacks.total += len(tokens)
        return ids

    def decode(self, ids) -> list[str]:
        return [self.tokens[int(i)] for i in ids]

    def kind_ids(self) -> dict[str, np.ndarray]:
        """Token ids by kind, for the grammar mask used when sampling."""
        out = {}
        for k in ("bos", "rest", "note", "chord", "dur"):
            out[k] = np.array([i for i, kk in enumerate(self.kinds) if kk == k], dtype=np.int64)
        return out

    def transpose_table(self, shifts) -> np.ndarray:
        """(len(shifts), V) ids: token i transposed by each shift (via the same fallbacks)."""
        table = np.zeros((len(shifts), len(self)), dtype=np.int64)
        for r, s in enumerate(shifts):
            for i, tok in enumerate(self.tokens):
                table[r, i] = self.map_token(transpose_token(tok, s))
        return table


# --------------------------------------------------------------------------------------
# Songs and the song-level split
# --------------------------------------------------------------------------------------

@dataclass
class Song:
    """One sequence of tokens. ``group`` names the song: every sequence of a group (the
    four voices and the chords of a chorale, two harmonisations of the same melody) lands
    on the same side of the split."""
    name: str
    group: str
    kind: str  # "voice", "chords" or "melody"
    tokens: list[str]
    bar: int = 0     # bar length in ticks (0: unknown)
    offset: int = 0  # ticks from the bar line before the first onset to the first onset

    def to_dict(self) -> dict:
        return {"name": self.name, "group": self.group, "kind": self.kind, "tokens": " ".join(self.tokens),
                "bar": self.bar, "offset": self.offset}

    @classmethod
    def from_dict(cls, d: dict) -> Song:
        return cls(d["name"], d["group"], d["kind"], d["tokens"].split(), int(d.get("bar", 0)), int(d.get("offset", 0)))


def bar_class(bar: int) -> int:
    return BAR_CLASSES.index(bar) if bar in BAR_CLASSES else len(BAR_CLASSES)


def position_ids(tokens, bar: int = 0, offset: int = 0) -> np.ndarray:
    """Where in the bar each token leaves the music: ``bar_class(bar) * N_POS + ticks since
    the last bar line`` (capped at ``N_POS - 1``). ``<s>`` and a pitch/chord/rest token sit at
    the event's onset, a duration token moves on to the next onset. ``bar`` 0 (unknown) counts
    bars of 4/4 in the "other" class."""
    b = int(bar) if bar else 48
    base = bar_class(int(bar)) * N_POS
    cur = int(offset)
    out = np.empty(len(tokens), dtype=np.int64)
    for i, tok in enumerate(tokens):
        if tok.startswith("d:"):
            cur += int(tok[2:])
        out[i] = base + min(cur % b, N_POS - 1)
    return out


def meter_and_pickup(stream) -> tuple[str | None, float, float]:
    """(meter as "3/4" or None when missing or changing, bar length in quarters, pickup
    shift in quarters) of a music21 part or score: adding the shift to every offset puts bar
    lines on multiples of the bar length (the anacrusis: measure 0's padding, or a short
    first measure)."""
    part = stream.parts[0] if hasattr(stream, "parts") and len(stream.parts) else stream
    # music21's ABC reader leaves stray signatures shorter than a quarter (e.g. 1/32) at grace
    # notes and tuplets: they are not metres
    sigs = [ts for ts in part.recurse().getElementsByClass("TimeSignature") if ts.barDuration.quarterLength >= 1]
    ratios = {ts.ratioString for ts in sigs}
    if len(ratios) != 1:
        return None, 4.0, 0.0
    ts = sigs[0]
    bar_q = float(ts.barDuration.quarterLength)
    measures = part.getElementsByClass("Measure")
    pad = 0.0
    if len(measures):
        m0 = measures[0]
        pad = float(m0.paddingLeft or 0.0)
        if not pad:
            content = float(m0.highestTime)
            if 0 < content < bar_q - 1e-6:
                pad = bar_q - content
    return ts.ratioString, bar_q, pad


def _bar_and_offset(stream, first_onset: float) -> tuple[int, int]:
    meter, bar_q, pad = meter_and_pickup(stream)
    if meter is None:
        return 0, 0
    bar = int(round(bar_q * TICKS_PER_QUARTER))
    return bar, int(round((first_onset + pad) * TICKS_PER_QUARTER)) % bar


def transpose_token(token: str, shift: int) -> str:
    if shift and (token.startswith("n:") or token.startswith("c:")):
        return pitch_token([p + shift for p in token_pitches(token)])
    return token


def transpose_tokens(tokens, shift: int) -> list[str]:
    return [transpose_token(t, shift) for t in tokens] if shift else list(tokens)


def tokens_key(tokens):
    """Krumhansl–Kessler key (:class:`composer.music.keys.Key`) of a token sequence, each
    sounding pitch weighted by its event's length; None without notes."""
    from composer.music.keys import find_key
    ps, ws = [], []
    for pitches, ticks in events_from_tokens(tokens):
        for p in pitches:
            ps.append(p)
            ws.append(ticks)
    return find_key(ps, ws) if ps else None


def common_tonic_shift(tokens) -> int:
    """Semitones (-6..+5) that move the sequence's KK key to C major / A minor."""
    from composer.music.keys import shift_to_common
    return shift_to_common(tokens_key(tokens))


def augmented_counts(sequences, shifts) -> Counter:
    """Token counts over every sequence transposed by every shift (what the model is trained on)."""
    base = Counter(t for seq in sequences for t in seq)
    out = Counter()
    for tok, c in base.items():
        for s in shifts:
            out[transpose_token(tok, s)] += c
    return out


def split_side(group: str, val_fraction: float = 0.1) -> str:
    """'train' or 'val' from a stable hash of the group name (the same on every machine)."""
    h = int(hashlib.sha1(group.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < val_fraction else "train"


def _line_keys(tokens: list[str], n: int = 12) -> list[str]:
    """Keys of a melodic line: its opening intervals with durations, and its first ``n``
    intervals alone (the same tune with another rhythm or notation)."""
    keys = [melody_group(tokens)]
    ps = [int(t[2:]) for t in tokens if t.startswith("n:")][: n + 1]
    if len(ps) > n // 2:
        keys.append("iv:" + ",".join(str(b - a) for a, b in zip(ps, ps[1:])))
    return keys


def merged_groups(songs: list[Song]) -> dict[str, str]:
    """Group name -> the name of its merged group. Two groups merge when any of their
    melodic lines (voices, melodies) share a :func:`melody_group` key: the same tune under
    another title or catalogue number, a melody that reappears as another chorale's alto.
    The merged group is named by its smallest member, so the result does not depend on order."""
    parent = {s.group: s.group for s in songs}

    def find(g):
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    owner = {}
    for s in songs:
        if s.kind == "chords":
            continue
        for key in _line_keys(s.tokens):
            if key in owner:
                a, b = find(owner[key]), find(s.group)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            else:
                owner[key] = s.group
    return {g: find(g) for g in parent}


def split_songs(songs: list[Song], val_fraction: float = 0.1) -> tuple[list[Song], list[Song]]:
    """Song-level split: every sequence of a merged group (see :func:`merged_groups`) goes to
    the side a stable hash of the group's name picks."""
    merged = merged_groups(songs)
    train, val = [], []
    for s in songs:
        (val if split_side(merged[s.group], val_fraction) == "val" else train).append(s)
    return train, val


def melody_group(tokens: list[str], n: int = 12) -> str:
    """Group key of a melody: its first ``n`` pitch intervals and durations, so the same tune
    in another key or under another name (a chorale melody harmonised twice) groups together."""
    ps, ds = [], []
    for pitches, ticks in events_from_tokens(tokens):
        if pitches:
            ps.append(pitches[-1])
            ds.append(ticks)
        if len(ps) > n:
            break
    iv = [b - a for a, b in zip(ps, ps[1:])]
    return "mel:" + ",".join(map(str, iv)) + "|" + ",".join(map(str, ds[:n]))


def _chorale_songs(name: str) -> list[Song]:
    from music21 import corpus
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        score = corpus.parse(name)
    parts = list(score.parts)
    if not parts:
        return []
    notes = [stream_notes(p) for p in parts]
    voices = [(tokens_from_events(events_from_notes(n)), n) for n in notes]
    voices = [(v, n) for v, n in voices if len(v) > 4]
    if not voices:
        return []
    group = melody_group(voices[0][0])
    short = name.split("/")[-1]
    songs = []
    for i, (v, n) in enumerate(voices):
        bar, off = _bar_and_offset(score, min(s for s, _, _ in n))
        songs.append(Song(f"{short}:{i}", group, "voice", v, bar, off))
    if len(parts) > 1:
        all_notes = [n for p in notes for n in p]
        bar, off = _bar_and_offset(score, min(s for s, _, _ in all_notes))
        songs.append(Song(f"{short}:chords", group, "chords", tokens_from_events(events_from_notes(all_notes)),
                          bar, off))
    return songs


def _folk_song(i: int, tune: str) -> Song | None:
    from music21 import converter
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = converter.parse(tune, format="abc")
    except Exception:  # noqa: BLE001 - a tune music21 cannot read is skipped, and counted
        return None
    notes = stream_notes(score)
    toks = tokens_from_events(events_from_notes(notes))
    if len(toks) < 9:
        return None
    from composer.music.abc import title_key
    bar, off = _bar_and_offset(score, min(s for s, _, _ in notes))
    return Song(f"folk{i}", "tune:" + title_key(tune), "melody", toks, bar, off)


def _progress(it, total, desc):
    try:
        from tqdm import tqdm
        return tqdm(it, total=total, desc=desc, mininterval=5)
    except ImportError:  # pragma: no cover
        return it


def build_bach(limit: int | None = None) -> tuple[list[Song], dict]:
    from composer.music.corpus import chorale_names
    names = chorale_names()[:limit] if limit else chorale_names()
    songs = []
    for name in _progress(names, len(names), "chorales"):
        songs.extend(_chorale_songs(name))
    return songs, {"chorales": len(names)}


def build_folk(max_tunes: int = 600) -> tuple[list[Song], dict]:
    """Melodies of the public-domain ABC folk corpus (music21's), tune-level split kept from
    :mod:`composer.music.abc`. Parsing costs ~0.3 s a tune, so ``max_tunes`` are taken,
    spread evenly over the corpus."""
    from composer.music.abc import load_dataset
    ds = load_dataset("folk")
    tunes = ds.train + ds.val
    step = max(1, len(tunes) // max_tunes) if max_tunes else 1
    picked = tunes[::step][:max_tunes] if max_tunes else tunes
    songs, failed = [], 0
    for i, tune in enumerate(_progress(picked, len(picked), "folk tunes")):
        s = _folk_song(i, tune)
        if s is None:
            failed += 1
        else:
            songs.append(s)
    return songs, {"tunes": len(picked), "unparsable_tunes": failed}


def build_midi_folder(path: Path) -> tuple[list[Song], dict]:
    from composer.errors import ComposerError
    from composer.music.midi import load_midi
    files = sorted(p for p in Path(path).rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    if not files:
        raise DataError(f"no .mid files under {path}")
    songs, failed = [], 0
    for f in files:
        try:
            pm = load_midi(f)
            notes = midi_notes(pm)
            toks = tokens_from_events(events_from_notes(notes))
        except ComposerError:
            failed += 1
            continue
        bar = off = 0
        if pm.time_signature_changes and notes:  # bar lines from time 0 in the first metre
            ts = pm.time_signature_changes[0]
            bar = int(round(ts.numerator * 4 * TICKS_PER_QUARTER / ts.denominator))
            off = int(round(min(s for s, _, _ in notes) * TICKS_PER_QUARTER)) % bar
        songs.append(Song(f.stem, "file:" + str(f.relative_to(path)), "midi", toks, bar, off))
    return songs, {"files": len(files), "unreadable_files": failed}


def load_songs(source: str = "bach", max_tunes: int = 600, rebuild: bool = False) -> tuple[list[Song], dict]:
    """Songs of ``bach``, ``folk``, ``all`` (both), a folder of MIDI files or a songs JSON
    written by :func:`save_songs`. Corpus sources are cached under ``cache_dir()``."""
    if source == "all":
        a, ca = load_songs("bach", max_tunes, rebuild)
        b, cb = load_songs("folk", max_tunes, rebuild)
        return a + b, {"bach": ca, "folk": cb}
    if source in ("bach", "folk"):
        from composer.music.corpus import cache_dir
        suffix = f"_{max_tunes}" if source == "folk" else ""
        path = cache_dir() / CACHE_VERSION / f"{source}{suffix}.json"
        if path.exists() and not rebuild:
            return read_songs(path)
        songs, counts = build_bach() if source == "bach" else build_folk(max_tunes)
        save_songs(path, songs, counts)
        return songs, counts
    p = Path(source)
    if p.is_file() and p.suffix == ".json":
        return read_songs(p)
    if p.is_dir():
        return build_midi_folder(p)
    raise DataError(f"--data must be bach, folk, all, a folder of MIDI files or a songs .json (got {source})")


def save_songs(path, songs: list[Song], counts: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"format": CACHE_VERSION, "counts": counts, "songs": [s.to_dict() for s in songs]}))
    tmp.replace(path)


def read_songs(path) -> tuple[list[Song], dict]:
    d = json.loads(Path(path).read_text())
    return [Song.from_dict(s) for s in d["songs"]], d.get("counts", {})
