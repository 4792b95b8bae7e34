"""What several sub-commands share: torch threads, and "a file or --notes, written to --out"."""
from __future__ import annotations

from pathlib import Path

from composer.errors import DataError

#: What --out may be for a command that writes music.
MUSIC_SUFFIXES = (".mid", ".midi", ".wav")


def apply_threads(threads: int | None) -> None:
    """``--threads``: torch CPU threads (0 or None: torch's default). Imports torch only when set."""
    if threads:
        import torch
        torch.set_num_threads(threads)


def music_input_and_out(args, what: str) -> Path:
    """Check that exactly one of ``args.input`` (``what``, e.g. "a .mid/.abc file") and
    ``args.notes`` is given and that ``args.out`` is a MIDI or WAV path; return that path."""
    if bool(args.input) == bool(args.notes):
        raise DataError(f"give {what} or --notes (one of them)")
    out = Path(args.out)
    if out.suffix.lower() not in MUSIC_SUFFIXES:
        raise DataError(f"--out must end in .mid or .wav (got {out.name})")
    return out
