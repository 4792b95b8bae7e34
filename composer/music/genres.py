"""Genre domains for the CycleGAN genre transfer: 4-bar windows of merged piano rolls.

The representation is the paper's (Brunner et al. 2018, docs/ARCHITECTURE.md): 4 bars x 16
steps x 84 pitches (MIDI 24-107), every non-drum track merged into one, 4/4 only. The
windows keep :mod:`composer.music.pianoroll`'s REST/HOLD/ONSET codes so a window can be
played back exactly; the models binarise them (``codes > 0``).

Built-in domains (music21's corpus, parsed once and cached as ``.npz`` under
:func:`composer.music.corpus.cache_dir`):

* ``bach`` - the four-part chorales in 4/4 (pickup aligned), song split by a hash of the name.
* ``folk`` - the ABC collections ryansMammoth, oneills1850, airdsAirs, miscFolk, cleaned and
  split tune-level by :mod:`composer.music.abc`; only tunes in 4/4 or C| (2/2, the same
  16-step bar) are kept.
* ``palestrina`` - the Palestrina masses (humdrum). They are notated in 4/2; each 4/2 bar is
  read at half values as one 4/4 bar (diminution), the usual modern transcription. Built on
  first use and capped (``max_songs``) because each file takes ~0.25 s to parse.

A user folder of MIDI files is a domain too (:func:`folder_domain`); files that cannot be
used are listed with the reason (not MIDI, no notes, not in 4/4, shorter than 4 bars).

The split is song-level: every window of a song is on the same side, so test windows are
music the models never heard. Training windows start every ``TRAIN_HOP`` bars (2), test
windows every 4 bars (no overlap). Windows with fewer than ``MIN_NOTES`` notes are dropped.

Module-level imports are numpy and the standard library only: a trainer on a bare GPU box
can read the cached ``.npz`` through :func:`load_npz` without music21 or pretty_midi.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BUILTIN_DOMAINS = ("bach", "folk", "palestrina")
CACHE_VERSION = "genres_v1"
N_BARS, STEPS, N_PITCHES = 4, 16, 84
TRAIN_HOP = 2
TEST_FRACTION = 0.1
MIN_NOTES = 4
#: Time signatures whose bar is four quarter notes (16 sixteenth steps).
FOUR_FOUR = ("4/4", "2/2")
PALESTRINA_MAX_SONGS = 300


@dataclass
class GenreData:
    """All windows of one domain.

    ``windows`` is uint8 ``(N, 4, 16, 84)`` REST/HOLD/ONSET codes, ``song`` the index of each
    window's song in ``songs``, ``split`` 0 for train and 1 for test. ``skipped`` lists
    ``(song, reason)`` for every source that gave no window.
    """
    name: str
    windows: np.ndarray
    song: np.ndarray
    split: np.ndarray
    songs: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def part(self, which: str) -> np.ndarray:
        """Windows of ``"train"`` or ``"test"``."""
        return self.windows[self.split == {"train": 0, "test": 1}[which]]

    def binary(self, which: str) -> np.ndarray:
        """Float32 0/1 windows of one split, the models' input."""
        return (self.part(which) > 0).astype(np.float32)

    def counts(self) -> dict:
        tr, te = self.split == 0, self.split == 1
        return {"songs_train": int(len(np.unique(self.song[tr]))), "songs_test": int(len(np.unique(self.song[te]))),
                "windows_train": int(tr.sum()), "windows_test": int(te.sum()), "skipped": len(self.skipped)}

    def density_range(self, lo: float = 1.0, hi: float = 99.0) -> tuple[float, float]:
        """Percentiles ``lo``..``hi`` of the notes per bar of the training windows."""
        d = note_density(self.part("train") > 0)
        return float(np.percentile(d, lo)), float(np.percentile(d, hi))

    def describe(self) -> str:
        c = self.counts()
        lo, hi = self.density_range()
        return (f"{self.name}: {c['windows_train']} train windows from {c['songs_train']} songs, "
                f"{c['windows_test']} test windows from {c['songs_test']} songs; {c['skipped']} skipped; "
                f"notes per bar {lo:.1f}-{hi:.1f}")


# --------------------------------------------------------------------------------------
# Measures on binary windows (numpy; shared by the trainer, transfer and evaluation)
# --------------------------------------------------------------------------------------

def onsets(binary: np.ndarray) -> np.ndarray:
    """Onsets of a binary roll ``(..., bars, steps, pitches)``: a sounding cell whose previous
    step (across bar lines) is silent."""
    on = np.asarray(binary, dtype=bool)
    flat = on.reshape(on.shape[:-3] + (-1, on.shape[-1]))
    prev = np.zeros_like(flat)
    prev[..., 1:, :] = flat[..., :-1, :]
    return (flat & ~prev).reshape(on.shape)


def note_density(binary: np.ndarray) -> np.ndarray:
    """Notes per bar of each window ``(..., bars, steps, pitches)`` (onsets / bars)."""
    on = onsets(binary)
    return on.sum(axis=(-1, -2, -3)) / on.shape[-3]


def binary_to_codes(binary: np.ndarray) -> np.ndarray:
    """A binary roll back to REST/HOLD/ONSET codes (onset = sounding after silence)."""
    b = np.asarray(binary, dtype=bool)
    return np.where(onsets(b), 2, np.where(b, 1, 0)).astype(np.uint8)


def transpose_windows(binary: np.ndarray, shift: int) -> np.ndarray:
    """Binary windows ``(N, bars, steps, pitches)`` moved ``shift`` semitones (up if > 0).

    Only the windows whose every note stays inside the pitch range are returned: a
    transposition that cut notes off would be another piece.
    """
    b = np.asarray(binary, dtype=bool)
    if shift == 0:
        return b.copy()
    used = b.any(axis=(-3, -2))                       # (N, pitches)
    fits = ~used[:, -shift:].any(axis=1) if shift > 0 else ~used[:, :-shift].any(axis=1)
    out = np.zeros_like(b[fits])
    if shift > 0:
        out[..., shift:] = b[fits][..., :-shift]
    else:
        out[..., :shift] = b[fits][..., -shift:]
    return out


def note_lengths(binary: np.ndarray) -> np.ndarray:
    """Length in steps of every note of binary windows ``(N, bars, steps, pitches)`` (a note is
    a run of sounding cells of one pitch inside one window)."""
    b = np.asarray(binary, dtype=bool)
    flat = b.reshape(len(b), -1, b.shape[-1]).transpose(0, 2, 1).reshape(-1, b.shape[-3] * b.shape[-2])
    pad = np.zeros((flat.shape[0], 1), dtype=bool)
    d = np.diff(np.concatenate([pad, flat, pad], axis=1).astype(np.int8), axis=1)
    starts, ends = np.nonzero(d == 1), np.nonzero(d == -1)
    return (ends[1] - starts[1]).astype(np.int64)


@dataclass
class NoteStats:
    """What a domain's random-note control is drawn from: its pitch histogram (onsets per
    pitch), its note lengths and its notes per window, all from its training windows."""
    pitch_p: np.ndarray
    lengths: np.ndarray
    notes_per_window: np.ndarray

    @classmethod
    def of(cls, binary: np.ndarray) -> "NoteStats":
        on = onsets(binary)
        hist = on.sum(axis=(0, 1, 2)).astype(np.float64)
        return cls(pitch_p=hist / max(1.0, hist.sum()), lengths=note_lengths(binary),
                   notes_per_window=on.sum(axis=(1, 2, 3)))


def random_note_windows(stats: NoteStats, n: int, rng: np.random.Generator, n_bars: int = N_BARS,
                        steps: int = STEPS) -> np.ndarray:
    """``n`` register-matched random-note windows: each has as many notes as a random real
    window of the domain, every note with a pitch drawn from the domain's pitch histogram, a
    length drawn from its note lengths and a start drawn uniformly - the domain's register,
    density and durations, but no melody, harmony, voice-leading or metre."""
    total = n_bars * steps
    out = np.zeros((n, total, len(stats.pitch_p)), dtype=bool)
    counts = rng.choice(stats.notes_per_window, size=n)
    for k, c in enumerate(counts):
        pitches = rng.choice(len(stats.pitch_p), size=int(c), p=stats.pitch_p)
        lengths = rng.choice(stats.lengths, size=int(c))
        starts = rng.integers(0, total, size=int(c))
        for p, s, ln in zip(pitches, starts, lengths):
            out[k, s:min(total, s + int(ln)), p] = True
    return out.reshape(n, n_bars, steps, len(stats.pitch_p))


def repitched_windows(binary: np.ndarray, stats: NoteStats, rng: np.random.Generator) -> np.ndarray:
    """Real windows with every note's pitch redrawn from ``stats``' pitch histogram: the
    domain's own rhythm, density and register, no melody or harmony."""
    b = np.asarray(binary, dtype=bool)
    n, bars, steps, pitches = b.shape
    flat = b.reshape(n, bars * steps, pitches)
    on = onsets(b).reshape(n, bars * steps, pitches)
    out = np.zeros_like(flat)
    for k, s, p in zip(*np.nonzero(on)):
        e = s
        while e < bars * steps and flat[k, e, p]:
            e += 1
        out[k, s:e, rng.choice(pitches, p=stats.pitch_p)] = True
    return out.reshape(b.shape)


def voice_count(binary, max_voices: int = 4, quantile: float = 90.0) -> int:
    """How many voices a roll ``(..., steps, pitches)`` has: the ``quantile`` percentile of the
    pitches sounding per sounding step, rounded, in ``1..max_voices`` (a fiddle tune's odd
    double stop does not make it two voices; a chorale's four do)."""
    c = np.asarray(binary, dtype=bool).reshape(-1, np.shape(binary)[-1]).sum(-1)
    if not (c > 0).any():
        return 1
    return int(np.clip(round(float(np.percentile(c[c > 0], quantile))), 1, max_voices))


def split_voices(codes: np.ndarray, n_voices: int) -> list[np.ndarray]:
    """One merged REST/HOLD/ONSET roll ``(steps, pitches)`` split into ``n_voices`` rolls, top
    voice first.

    Each note goes, whole, to one voice, chosen at its start among the notes sounding then:
    the highest to the top voice, the lowest (when there are two or more) to the bottom
    voice, the ones between to the inner voices in order (extra ones to the lowest inner
    voice). With one voice everything stays together.
    """
    from composer.music.pianoroll import notes_from_codes
    codes = np.asarray(codes)
    out = [np.zeros_like(codes) for _ in range(max(1, n_voices))]
    if n_voices <= 1:
        out[0][:] = codes
        return out
    for p, s, e in notes_from_codes(codes):
        sounding = np.flatnonzero(codes[s] > 0)[::-1]          # highest first
        rank, m = int(np.flatnonzero(sounding == p)[0]), len(sounding)
        if rank == 0:
            v = 0
        elif rank == m - 1:
            v = n_voices - 1
        else:
            v = min(rank, n_voices - 2)
        out[v][s, p] = 2
        out[v][s + 1:e, p] = 1
    return out


# --------------------------------------------------------------------------------------
# Windows and split
# --------------------------------------------------------------------------------------

def is_test_song(name: str, fraction: float = TEST_FRACTION) -> bool:
    """Stable song-level split by a hash of the song's name."""
    h = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return h < fraction


def cut_windows(roll: np.ndarray, hop: int, n_bars: int = N_BARS, min_notes: int = MIN_NOTES) -> np.ndarray:
    """Windows of ``n_bars`` bars starting every ``hop`` bars of a ``(bars, 16, 84)`` code roll.

    Only whole windows are cut (a song shorter than ``n_bars`` is padded with rests to one
    window); windows with fewer than ``min_notes`` notes are dropped.
    """
    roll = np.asarray(roll, dtype=np.uint8)
    if roll.shape[0] < n_bars:
        pad = np.zeros((n_bars - roll.shape[0],) + roll.shape[1:], dtype=np.uint8)
        roll = np.concatenate([roll, pad])
    starts = range(0, roll.shape[0] - n_bars + 1, hop)
    wins = [roll[s:s + n_bars] for s in starts]
    wins = [w for w in wins if (w == 2).sum() >= min_notes]
    return np.stack(wins) if wins else np.zeros((0, n_bars) + roll.shape[1:], dtype=np.uint8)


def _assemble(name: str, rolls: list[tuple[str, np.ndarray, bool]], skipped: list[tuple[str, str]]) -> GenreData:
    windows, song, split, songs = [], [], [], []
    for song_name, roll, test in rolls:
        w = cut_windows(roll, hop=N_BARS if test else TRAIN_HOP)
        if len(w) == 0:
            skipped.append((song_name, "no 4-bar window with notes"))
            continue
        songs.append(song_name)
        windows.append(w)
        song += [len(songs) - 1] * len(w)
        split += [1 if test else 0] * len(w)
    if not windows:
        from composer.errors import DataError
        raise DataError(f"domain '{name}' has no usable 4-bar windows in 4/4 ({len(skipped)} sources skipped)")
    return GenreData(name=name, windows=np.concatenate(windows), song=np.asarray(song, dtype=np.int32),
                     split=np.asarray(split, dtype=np.int8), songs=songs, skipped=skipped)


# --------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------

def save_npz(data: GenreData, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, windows=data.windows, song=data.song, split=data.split,
                        songs=np.asarray(data.songs, dtype=str),
                        skipped=np.asarray([f"{a}\t{b}" for a, b in data.skipped], dtype=str),
                        meta=np.asarray(json.dumps({"name": data.name, "version": CACHE_VERSION})))
    tmp.replace(path)
    return path


def load_npz(path) -> GenreData:
    """Read a domain cache written by :func:`save_npz` (numpy only)."""
    with np.load(path, allow_pickle=False) as d:
        meta = json.loads(str(d["meta"]))
        skipped = [tuple(s.split("\t", 1)) for s in d["skipped"].tolist()]
        return GenreData(name=meta["name"], windows=d["windows"], song=d["song"], split=d["split"],
                         songs=[str(s) for s in d["songs"]], skipped=skipped)


def cache_path(name: str) -> Path:
    from composer.music.corpus import cache_dir
    return cache_dir() / f"{CACHE_VERSION}_{name}.npz"


# --------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------

def _merge_tracks(mt) -> np.ndarray:
    """MultiTrackRoll -> merged (bars, 16, 84) codes (ONSET wins over HOLD)."""
    return mt.codes.max(axis=0)


def _time_signatures(score) -> set[str]:
    return {ts.ratioString for ts in score.flatten().getElementsByClass("TimeSignature")}


def build_bach(progress=None) -> GenreData:
    from composer.music.corpus import chorale_names, load_chorale
    rolls, skipped = [], []
    for name in chorale_names():
        try:
            mt = load_chorale(name)
        except Exception as exc:  # music21 parse failures of single files
            skipped.append((name, f"unreadable ({type(exc).__name__})"))
            continue
        if mt is None:
            skipped.append((name, "not four parts in 4/4"))
            continue
        rolls.append((name, _merge_tracks(mt), is_test_song(name)))
        if progress:
            progress(len(rolls))
    return _assemble("bach", rolls, skipped)


def _meter(tune: str) -> str | None:
    m = re.search(r"^M:(.*)$", tune, flags=re.M)
    return m.group(1).strip() if m else None


def build_folk(max_songs: int | None = None, progress=None) -> GenreData:
    import warnings
    from composer.music.abc import load_dataset, abc_to_score
    from composer.music.corpus import score_to_roll
    ds = load_dataset("folk")
    rolls, skipped = [], []
    tunes = [(t, False) for t in ds.train] + [(t, True) for t in ds.val]
    for k, (tune, test) in enumerate(tunes):
        title = re.search(r"^T:(.*)$", tune, flags=re.M)
        name = f"{k:05d} {(title.group(1).strip() if title else 'untitled')}"
        meter = _meter(tune)
        if meter not in ("4/4", "C", "C|", "2/2"):
            skipped.append((name, f"meter {meter}, not 4/4"))
            continue
        if re.search(r"^M:", tune.split("\nK:", 1)[-1], flags=re.M) or re.search(r"\[M:", tune):
            skipped.append((name, "meter changes inside the tune"))
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                score = abc_to_score(tune)
        except Exception as exc:
            skipped.append((name, f"ABC not parsable ({str(exc)[:60]})"))
            continue
        sigs = _time_signatures(score)
        req = sigs.pop() if len(sigs) == 1 and next(iter(sigs)) in FOUR_FOUR else None
        if req is None:
            skipped.append((name, f"time signatures {sorted(_time_signatures(score))}"))
            continue
        mt = score_to_roll(score, voices=tuple(f"part{i}" for i in range(len(score.parts))) or ("part0",),
                           programs=tuple([40] * max(1, len(score.parts))), require_time_signature=req)
        if mt is None:
            skipped.append((name, "no parts"))
            continue
        rolls.append((name, _merge_tracks(mt), test))
        if progress:
            progress(len(rolls))
        if max_songs and len(rolls) >= max_songs:
            break
    return _assemble("folk", rolls, skipped)


def build_palestrina(max_songs: int = PALESTRINA_MAX_SONGS, progress=None) -> GenreData:
    from music21 import corpus
    from composer.music.pianoroll import codes_from_notes
    rolls, skipped = [], []
    paths = sorted(str(p) for p in corpus.getComposer("palestrina"))
    for path in paths:
        name = "palestrina/" + Path(path).stem
        try:
            score = corpus.parse(path)
        except Exception as exc:
            skipped.append((name, f"unreadable ({type(exc).__name__})"))
            continue
        sigs = _time_signatures(score)
        if sigs == {"4/2"}:
            scale = 0.5   # a 4/2 bar read at half values is one 4/4 bar
        elif sigs and sigs <= set(FOUR_FOUR):
            scale = 1.0
        else:
            skipped.append((name, f"time signatures {sorted(sigs)}"))
            continue
        rows = []
        for part in score.parts:
            for el in part.stripTies().flatten().notes:
                start = int(round(float(el.offset) * scale * 4))
                end = int(round((float(el.offset) + float(el.quarterLength)) * scale * 4))
                for p in el.pitches:
                    rows.append((p.midi - 24, start, max(end, start + 1)))
        if not rows:
            skipped.append((name, "no notes"))
            continue
        rows = np.asarray(rows, dtype=np.int64)
        rows[:, 0] = np.clip(rows[:, 0], 0, N_PITCHES - 1)
        n_bars = int(np.ceil(rows[:, 2].max() / STEPS))
        roll = codes_from_notes(rows, n_bars * STEPS, N_PITCHES).reshape(n_bars, STEPS, N_PITCHES)
        rolls.append((name, roll, is_test_song(name)))
        if progress:
            progress(len(rolls))
        if max_songs and len(rolls) >= max_songs:
            break
    return _assemble("palestrina", rolls, skipped)


BUILDERS = {"bach": build_bach, "folk": build_folk, "palestrina": build_palestrina}


def builtin_domain(name: str, rebuild: bool = False) -> GenreData:
    """A built-in domain, parsed once and cached."""
    if name not in BUILDERS:
        from composer.errors import DataError
        raise DataError(f"unknown genre '{name}': pick one of {', '.join(BUILTIN_DOMAINS)} or a folder of MIDI files")
    path = cache_path(name)
    if path.exists() and not rebuild:
        return load_npz(path)
    data = BUILDERS[name]()
    save_npz(data, path)
    return data


# --------------------------------------------------------------------------------------
# A user's folder of MIDI files
# --------------------------------------------------------------------------------------

def midi_to_roll(pm) -> np.ndarray:
    """Merged ``(bars, 16, 84)`` codes of a PrettyMIDI (drums dropped), or raise DataError
    when it is not in 4/4 throughout."""
    from composer.errors import DataError
    from composer.music.pianoroll import merged_roll
    sigs = {f"{ts.numerator}/{ts.denominator}" for ts in pm.time_signature_changes}
    if sigs and not sigs <= set(FOUR_FOUR):
        raise DataError(f"time signature {', '.join(sorted(sigs))}; genre transfer needs 4/4 throughout")
    if not any(i.notes for i in pm.instruments if not i.is_drum):
        raise DataError("only drums, no pitched notes")
    return merged_roll(pm)


def folder_domain(folder, rebuild: bool = False, use_cache: bool = True) -> GenreData:
    """Every ``.mid``/``.midi`` under ``folder`` as a domain; skipped files keep their reason."""
    from composer.errors import ComposerError, DataError
    from composer.music.midi import load_midi
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"no such folder: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".mid", ".midi") and p.is_file())
    if not files:
        raise DataError(f"no .mid or .midi files under {folder}")
    stamp = hashlib.sha1(json.dumps([(str(p), p.stat().st_size, p.stat().st_mtime) for p in files]).encode())
    path = None
    if use_cache:
        from composer.music.corpus import cache_dir
        path = cache_dir() / f"{CACHE_VERSION}_folder_{stamp.hexdigest()[:12]}.npz"
        if path.exists() and not rebuild:
            return load_npz(path)
    rolls, skipped = [], []
    for p in files:
        rel = str(p.relative_to(folder))
        try:
            roll = midi_to_roll(load_midi(p))
        except ComposerError as exc:
            skipped.append((rel, str(exc)))
            continue
        if roll.shape[0] < N_BARS:
            skipped.append((rel, f"{roll.shape[0]} bars, shorter than {N_BARS}"))
            continue
        rolls.append((rel, roll, is_test_song(rel)))
    # small folders: make sure both sides of the split hold a song
    if len(rolls) >= 2 and all(t for _, _, t in rolls):
        rolls[0] = (rolls[0][0], rolls[0][1], False)
    if len(rolls) >= 2 and not any(t for _, _, t in rolls):
        rolls[-1] = (rolls[-1][0], rolls[-1][1], True)
    try:
        data = _assemble(folder.name or str(folder), rolls, skipped)
    except DataError:
        reasons = "; ".join(f"{a}: {b}" for a, b in skipped[:5])
        raise DataError(f"no usable MIDI in {folder} ({len(skipped)} skipped: {reasons})") from None
    if path is not None:
        save_npz(data, path)
    return data


def load_domain(spec: str, rebuild: bool = False) -> GenreData:
    """``bach``/``folk``/``palestrina``, a folder of MIDI files, or a ``.npz`` built before."""
    if spec in BUILDERS:
        return builtin_domain(spec, rebuild=rebuild)
    p = Path(spec)
    if p.suffix == ".npz" and p.is_file():
        return load_npz(p)
    if p.is_dir():
        return folder_domain(p, rebuild=rebuild)
    from composer.errors import DataError
    raise DataError(f"unknown genre '{spec}': pick one of {', '.join(BUILTIN_DOMAINS)}, a folder of MIDI files "
                    f"or a .npz domain cache")


def domain_label(spec: str) -> str:
    """Short name of a domain spec ('bach', or the folder's name)."""
    return spec if spec in BUILDERS else (Path(spec).stem or str(spec))


if __name__ == "__main__":  # build the caches: python -m composer.music.genres bach folk
    import sys
    for n in sys.argv[1:] or ["bach", "folk"]:
        print(builtin_domain(n, rebuild=True).describe())
