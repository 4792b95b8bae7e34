"""Reading MIDI that users bring: size and length limits, and named errors.

pretty_midi (through mido) raises a zoo of exception types on bad bytes - ``OSError``,
``EOFError``, ``KeyError``, ``ValueError``, ``IndexError`` - so this module is the one
place that turns them into :mod:`composer.errors` types with a message a musician can read.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import pretty_midi

from composer.errors import (CorruptMidiError, EmptyMidiError, MidiTooLargeError, MidiTooLongError,
                             NotMidiError)

#: Uploads over this many bytes are refused before parsing (a long piano piece is ~100 kB).
MAX_MIDI_BYTES = 2 * 1024 * 1024
#: Music longer than this many seconds is refused (rendering costs time and memory).
MAX_MIDI_SECONDS = 15 * 60
#: Tracks with notes and notes in all (a full orchestral score has ~40 tracks and ~30,000 notes).
MAX_MIDI_TRACKS = 64
MAX_MIDI_NOTES = 60_000


def _describe(name: str | None) -> str:
    return f"'{name}'" if name else "the file"


def load_midi_bytes(data: bytes, name: str | None = None, max_bytes: int = MAX_MIDI_BYTES,
                    max_seconds: float = MAX_MIDI_SECONDS) -> pretty_midi.PrettyMIDI:
    """Parse MIDI bytes into a PrettyMIDI, or raise a :class:`~composer.errors.MidiError`.

    Parameters
    ----------
    data : bytes
        The file's contents.
    name : str, optional
        The file's name, used in error messages only.
    max_bytes, max_seconds : number
        Limits; exceeding either raises :class:`MidiTooLargeError` / :class:`MidiTooLongError`.
    """
    what = _describe(name)
    if len(data) > max_bytes:
        raise MidiTooLargeError(f"{what} is {len(data):,} bytes; the limit for a MIDI file is {max_bytes:,} bytes")
    if len(data) == 0:
        raise NotMidiError(f"{what} is empty (0 bytes), not a MIDI file")
    if data[:4] != b"MThd":
        if data[:4] == b"RIFF" and data[8:12] == b"RMID":
            raise NotMidiError(f"{what} is a RIFF-wrapped MIDI (.rmi); save it as a Standard MIDI File (.mid)")
        raise NotMidiError(f"{what} is not a MIDI file (it does not start with the 'MThd' header)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pretty_midi warns about type-0 tempo quirks
            pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    except Exception as exc:  # mido/pretty_midi raise many unrelated types on bad bytes
        detail = str(exc) or "the data ends too early"
        raise CorruptMidiError(f"{what} is a damaged or truncated MIDI file ({detail})") from None
    if not any(inst.notes for inst in pm.instruments):
        raise EmptyMidiError(f"{what} holds no notes")
    tracks = sum(1 for inst in pm.instruments if inst.notes)
    if tracks > MAX_MIDI_TRACKS:
        raise MidiTooLargeError(f"{what} has {tracks} tracks with notes; the limit is {MAX_MIDI_TRACKS}")
    notes = sum(len(inst.notes) for inst in pm.instruments)
    if notes > MAX_MIDI_NOTES:
        raise MidiTooLargeError(f"{what} has {notes:,} notes; the limit is {MAX_MIDI_NOTES:,}")
    seconds = pm.get_end_time()
    if seconds > max_seconds:
        raise MidiTooLongError(f"{what} lasts {seconds / 60:.1f} minutes; the limit is {max_seconds / 60:.0f} minutes")
    return pm


def load_midi(path: str | os.PathLike, max_bytes: int = MAX_MIDI_BYTES,
              max_seconds: float = MAX_MIDI_SECONDS) -> pretty_midi.PrettyMIDI:
    """Read a MIDI file from disk with the same checks as :func:`load_midi_bytes`."""
    path = Path(path)
    if not path.is_file():
        raise NotMidiError(f"no such file: {path}")
    size = path.stat().st_size
    if size > max_bytes:
        raise MidiTooLargeError(f"'{path.name}' is {size:,} bytes; the limit for a MIDI file is {max_bytes:,} bytes")
    return load_midi_bytes(path.read_bytes(), name=path.name, max_bytes=max_bytes, max_seconds=max_seconds)


def midi_bytes(pm: pretty_midi.PrettyMIDI) -> bytes:
    """Serialise a PrettyMIDI to Standard MIDI File bytes."""
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


def with_programs(pm: pretty_midi.PrettyMIDI, programs: list[int | None]) -> pretty_midi.PrettyMIDI:
    """A copy of ``pm`` whose k-th instrument plays General MIDI program ``programs[k]``.

    ``None`` (or a missing entry) keeps that track's program; drum tracks are left alone.
    """
    import copy
    out = copy.deepcopy(pm)
    for inst, prog in zip(out.instruments, programs):
        if prog is not None and not inst.is_drum:
            if not 0 <= int(prog) <= 127:
                raise ValueError(f"General MIDI programs are 0-127, got {prog}")
            inst.program = int(prog)
    return out


def gm_instrument_names() -> list[str]:
    """The 128 General MIDI instrument names, index = program number."""
    return [pretty_midi.program_to_instrument_name(p) for p in range(128)]
