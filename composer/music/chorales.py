"""MuseGAN training data: Bach chorales (or a folder of the user's MIDI) as a cached ``.npz``.

The cache stores whole songs, not windows, so the trainer can cut windows of any length
(2 or 4 bars) and transpose them on the fly. Layout of the ``.npz`` (all numpy, so a
training box without music21 or pretty_midi can read it with :func:`numpy.load`):

* ``codes``  uint8 ``(4, total_bars, 16, 84)``: every song's bars, concatenated.
* ``song_start``, ``song_bars``  int64 ``(songs,)``: where each song sits in ``codes``.
* ``split``  int8 ``(songs,)``: 0 = train, 1 = validation. The split is by song, never by
  window, so overlapping windows of one chorale cannot leak from train into validation.
* ``names``  str ``(songs,)``, ``programs`` int ``(4,)``, ``voices`` str ``(4,)``.

Recipe (docs/ARCHITECTURE.md): de-duplicated corpus names, exactly four parts in 4/4,
ties stripped, shifted by the pickup so bar lines line up, quantised to sixteenths.
"""
from __future__ import annotations

import hashlib
import logging
import sys
from pathlib import Path

import numpy as np

from composer.errors import DataError
from composer.music.corpus import CHORALE_PROGRAMS, CHORALE_VOICES, cache_dir, chorale_names, score_to_roll
from composer.music.pianoroll import HOLD, N_PITCHES, ONSET, STEPS_PER_BAR, MultiTrackRoll

log = logging.getLogger(__name__)

CACHE_VERSION = 1
#: Share of songs held out for validation (and for the metrics' Bach reference).
VALID_FRACTION = 0.15


def bach_cache_path() -> Path:
    return cache_dir() / f"musegan_bach_v{CACHE_VERSION}.npz"


def _song_split(names: list[str], valid_fraction: float = VALID_FRACTION) -> np.ndarray:
    """Validation membership from a hash of the name: stable when songs are added or removed."""
    def h(n):
        return int(hashlib.sha1(n.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return np.array([1 if h(n) < valid_fraction else 0 for n in names], dtype=np.int8)


def _save(path: Path, rolls: list[np.ndarray], names: list[str], programs, voices) -> dict:
    if not rolls:
        raise DataError("no usable songs: nothing to train on")
    bars = np.array([r.shape[1] for r in rolls], dtype=np.int64)
    start = np.concatenate([[0], np.cumsum(bars)[:-1]]).astype(np.int64)
    split = _song_split(names)
    if split.all() or not split.any():  # tiny folders: keep at least one song on each side
        split[:] = 0
        split[-1] = 1 if len(names) > 1 else 0
    codes = np.concatenate(rolls, axis=1)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, codes=codes, song_start=start, song_bars=bars, split=split,
                        names=np.array(names), programs=np.array(programs, dtype=np.int64),
                        voices=np.array(voices), version=np.array(CACHE_VERSION))
    tmp.replace(path)
    return {"songs": len(names), "train_songs": int((split == 0).sum()), "valid_songs": int((split == 1).sum()),
            "bars": int(bars.sum()), "train_bars": int(bars[split == 0].sum()),
            "valid_bars": int(bars[split == 1].sum())}


def build_bach(path: Path | None = None, force: bool = False, verbose: bool = True) -> Path:
    """Parse the corpus chorales once into the cache; returns the ``.npz`` path.

    Prints how many chorales were kept, why the others were dropped, and the bar counts.
    Takes ~40 s (music21 parses ~0.1 s per chorale); later calls return the cached file.
    """
    path = Path(path) if path else bach_cache_path()
    if path.exists() and not force:
        return path
    from music21 import corpus  # only here: the trainer itself never needs music21

    names = chorale_names()
    rolls, kept, dropped = [], [], 0
    for name in names:
        try:
            roll = score_to_roll(corpus.parse(name))
        except Exception:  # a corpus file music21 cannot parse: skip it, never crash the build
            roll = None
        if roll is None or roll.n_bars < 2:
            dropped += 1
            continue
        rolls.append(roll.codes)
        kept.append(name)
    info = _save(path, rolls, kept, CHORALE_PROGRAMS, CHORALE_VOICES)
    if verbose:
        log.info(f"Bach chorales: {len(names)} unique corpus files, {info['songs']} kept (4 parts, 4/4), "
                 f"{dropped} dropped; {info['train_songs']} train / {info['valid_songs']} validation songs; "
                 f"{info['bars']} bars ({info['train_bars']} train / {info['valid_bars']} validation) -> {path}")
    return path


# ---------------------------------------------------------------------------------------------
# A folder of the user's own MIDI files
# ---------------------------------------------------------------------------------------------

def split_voices(codes: np.ndarray, n_voices: int = 4) -> np.ndarray:
    """Split one polyphonic ``(steps, pitches)`` code grid into ``n_voices`` monophonic voices.

    At each step the sounding pitches are sorted high to low; the highest goes to voice 0
    (soprano), the lowest to the last voice (bass) and the rest fill the inner voices in
    order. Extra notes beyond ``n_voices`` are dropped. A voice whose pitch changes
    starts a new note (ONSET) even if the source cell was a HOLD.
    """
    steps, pitches = codes.shape
    out = np.zeros((n_voices, steps, pitches), dtype=np.uint8)
    for s in range(steps):
        sounding = np.flatnonzero(codes[s])[::-1]  # high to low
        if len(sounding) == 0:
            continue
        if n_voices == 1:  # one voice is the top line (a track's melody), not its bass
            chosen, slots = [sounding[0]], [0]
        elif len(sounding) >= n_voices:
            chosen = list(sounding[:n_voices - 1]) + [sounding[-1]]
            slots = list(range(n_voices))
        else:  # fewer notes than voices: top to soprano, bottom to bass, middle ones in order
            chosen = list(sounding)
            slots = [0] + list(range(1, len(chosen) - 1)) + ([n_voices - 1] if len(chosen) > 1 else [])
        for v, p in zip(slots, chosen):
            code = codes[s, p]
            prev = out[v, s - 1, p] if s > 0 else 0
            out[v, s, p] = ONSET if (code == ONSET or prev == 0) else HOLD
    return out


def midi_to_four_tracks(pm) -> tuple[np.ndarray | None, str]:
    """Reduce a PrettyMIDI to four monophonic tracks ``(4, bars, 16, 84)``; returns (codes, reason).

    Files with four or more pitched tracks keep the four with the most notes, ordered by
    mean pitch (highest = soprano). Files with fewer tracks are merged and split into four
    voices by pitch order (:func:`split_voices`). ``codes`` is None when the file is
    unusable, and ``reason`` says why.
    """
    sigs = {(t.numerator, t.denominator) for t in pm.time_signature_changes}
    if sigs and sigs != {(4, 4)}:
        return None, "not in 4/4 (time signatures: " + ", ".join(f"{a}/{b}" for a, b in sorted(sigs)) + ")"
    insts = [i for i in pm.instruments if not i.is_drum and i.notes]
    if not insts:
        return None, "no pitched notes (drums only or empty)"
    roll = MultiTrackRoll.from_pretty_midi(pm, include_drums=False)
    roll.codes = roll.codes[[k for k, i in enumerate([i for i in pm.instruments if not i.is_drum]) if i.notes]]
    n_bars = roll.n_bars
    flat = roll.codes.reshape(roll.n_tracks, n_bars * STEPS_PER_BAR, N_PITCHES)
    if len(insts) >= 4:
        counts = [len(i.notes) for i in insts]
        top4 = sorted(np.argsort(counts)[::-1][:4])
        mean_pitch = [np.mean([n.pitch for n in insts[k].notes]) for k in top4]
        order = [top4[k] for k in np.argsort(mean_pitch)[::-1]]
        # each track may still be polyphonic: keep its top line (one note per step)
        voices = np.stack([split_voices(flat[k], 1)[0] for k in order])
    else:
        merged = flat.max(axis=0)
        voices = split_voices(merged, 4)
    empty = [CHORALE_VOICES[v] for v in range(4) if not voices[v].any()]
    if len(empty) > 1:
        return None, f"fewer than 4 voices carry notes ({', '.join(empty)} empty)"
    return voices.reshape(4, n_bars, STEPS_PER_BAR, N_PITCHES), ""


def build_midi_folder(folder, path: Path | None = None, min_bars: int = 2, verbose: bool = True):
    """Build a training cache from every ``.mid``/``.midi`` under ``folder``.

    Returns ``(npz_path, skipped)`` where ``skipped`` lists ``(file name, reason)``. Bad
    files are skipped with a reason, never a crash; :class:`DataError` only when no file
    at all is usable.
    """
    from composer.errors import ComposerError
    from composer.music.midi import load_midi

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"no such folder: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    if not files:
        raise DataError(f"no .mid or .midi files in {folder}")
    key = hashlib.sha1("|".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files).encode()).hexdigest()
    path = Path(path) if path else cache_dir() / f"musegan_midi_{key[:12]}_v{CACHE_VERSION}.npz"
    rolls, names, skipped = [], [], []
    for f in files:
        try:
            pm = load_midi(f)
        except ComposerError as exc:
            skipped.append((f.name, str(exc)))
            continue
        codes, reason = midi_to_four_tracks(pm)
        if codes is None:
            skipped.append((f.name, reason))
            continue
        if codes.shape[1] < min_bars:
            skipped.append((f.name, f"shorter than {min_bars} bars"))
            continue
        rolls.append(codes)
        names.append(str(f.relative_to(folder)))
    if not rolls:
        raise DataError(f"none of the {len(files)} MIDI files in {folder} is usable: "
                        + "; ".join(f"{n}: {r}" for n, r in skipped[:5]))
    info = _save(path, rolls, names, CHORALE_PROGRAMS, CHORALE_VOICES)
    if verbose:
        log.info(f"MIDI folder {folder}: {len(files)} files, {info['songs']} used, {len(skipped)} skipped; "
                 f"{info['bars']} bars -> {path}")
        for n, r in skipped:
            log.info(f"  skipped {n}: {r}")
    return path, skipped


def build(source: str, force: bool = False) -> Path:
    """``"bach"`` or a folder of MIDI files -> path of the cached ``.npz``."""
    if source == "bach":
        return build_bach(force=force)
    if source.endswith(".npz") and Path(source).is_file():
        return Path(source)
    return build_midi_folder(source)[0]


if __name__ == "__main__":  # build the cache as a script: python -m composer.music.chorales [bach|FOLDER] [--force]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(build(sys.argv[1] if len(sys.argv) > 1 else "bach", force="--force" in sys.argv))
