"""The one rendering path every tab shares: a PrettyMIDI in, the files a musician takes away out.

:func:`export_piece` writes the MIDI, renders the WAV through :mod:`composer.render.audio`, draws
the piano roll and engraves the score, into a fresh folder per call, so two users never
overwrite each other's files. :func:`sound_and_roll` is its fast part (what a musician
waits for: audio, roll, MIDI), the audio synthesised while the roll is drawn.
"""
from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pretty_midi

from composer.render import audio

from composer.render import viz
from composer.errors import ComposerError

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_stem(name: str | None, default: str = "piece") -> str:
    """A file-name stem made only of letters, digits, '.', '_' and '-' (never a path)."""
    name = Path(name or "").name  # drop any folders a user put in
    for ext in (".mid", ".midi", ".wav", ".abc", ".musicxml", ".xml", ".json"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
    stem = _SAFE.sub("_", name).strip("._-")[:60]
    return stem or default


@dataclass
class Piece:
    """Files made from one piece of music. Paths are None where a part was not asked for."""

    midi: Path
    wav: Path | None = None
    png: Path | None = None
    musicxml: Path | None = None
    score_html: str | None = None
    score_error: str | None = None
    seconds: float = 0.0

    def downloads(self) -> list[str]:
        return [str(p) for p in (self.midi, self.wav, self.musicxml) if p is not None]


#: Request folders live here and are removed after :data:`OUTPUT_MAX_AGE_S` seconds, or
#: oldest first beyond :data:`OUTPUT_MAX_FOLDERS` (Gradio keeps its own copy of what it served).
OUTPUT_ROOT = Path(tempfile.gettempdir()) / "composer-outputs"
OUTPUT_MAX_AGE_S = 3600.0
#: Seconds one export may take in all (the score's time limit is what is left), and the
#: least time a score is given.
REQUEST_BUDGET_S = 8.0
SCORE_MIN_S = 1.0
OUTPUT_MAX_FOLDERS = 2000
#: Folders of live files (Compose's roll and audio of every move), swept like the request
#: folders. The app serves them where they lie (``gr.set_static_paths``): Gradio would
#: otherwise hash and copy every move's ~1 MB of audio into its cache on its event loop
#: (~20 ms a move, measured with py-spy), before the answer could leave.
LIVE_ROOT = Path(tempfile.gettempdir()) / "composer-live"
_last_sweep = 0.0
_sweep_lock = threading.Lock()


def new_output_dir(prefix: str = "composer-", root: Path | None = None) -> Path:
    """A fresh folder for one request's files, in ``root`` (:data:`OUTPUT_ROOT`, or
    :data:`LIVE_ROOT` for live files); old ones are swept away, see :func:`sweep_outputs`."""
    global _last_sweep
    root = root or OUTPUT_ROOT
    root.mkdir(parents=True, exist_ok=True)
    now = time.monotonic()
    if now - _last_sweep > 60 and _sweep_lock.acquire(blocking=False):
        try:
            _last_sweep = now
            sweep_outputs()
            sweep_outputs(root=LIVE_ROOT)
        finally:
            _sweep_lock.release()
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def sweep_outputs(max_age_s: float = OUTPUT_MAX_AGE_S, max_folders: int = OUTPUT_MAX_FOLDERS,
                  root: Path | None = None) -> int:
    """Delete the folders of ``root`` (:data:`OUTPUT_ROOT`) older than ``max_age_s`` and the
    oldest beyond ``max_folders``; returns how many were deleted."""
    root = root or OUTPUT_ROOT
    try:
        folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    except FileNotFoundError:
        return 0
    cutoff = time.time() - max_age_s
    doomed = [p for p in folders if p.stat().st_mtime < cutoff]
    keep = [p for p in folders if p.stat().st_mtime >= cutoff]
    doomed += keep[: max(0, len(keep) - max_folders)]
    for p in doomed:
        shutil.rmtree(p, ignore_errors=True)
    return len(doomed)


#: Threads that draw rolls and write MIDI while the calling thread synthesises the audio
#: (FluidSynth lets go of the GIL); made as needed, reused.
_side = ThreadPoolExecutor(max_workers=16, thread_name_prefix="roll")


def _roll_and_midi(pm: pretty_midi.PrettyMIDI, png: Path | None, midi: Path | None, title: str | None,
                   marks: list[float] | None, roll_options: dict | None = None) -> None:
    if midi is not None:
        pm.write(str(midi))
    if png is not None:
        viz.save_pianoroll(pm, png, title=title, marks=marks, **(roll_options or {}))


def sound_and_roll(pm: pretty_midi.PrettyMIDI, wav: Path | None, png: Path | None, midi: Path | None = None,
                   title: str | None = None, marks: list[float] | None = None,
                   sample_rate: int = audio.SAMPLE_RATE, roll_options: dict | None = None) -> None:
    """Write the WAV, the piano-roll PNG and the MIDI of ``pm`` (each where its path is not None).

    The audio is synthesised in this thread while another draws the roll and writes the
    MIDI, so the three take about as long as the audio alone when a core is free.
    ``roll_options`` go to :func:`composer.render.viz.pianoroll_image` (``pitch_range``, ``until``).
    """
    side = _side.submit(_roll_and_midi, pm, png, midi, title, marks, roll_options) if (png or midi) else None
    try:
        if wav is not None:
            audio.render_to_wav(pm, wav, sample_rate)
    finally:
        if side is not None:
            side.result()


def export_piece(pm: pretty_midi.PrettyMIDI, name: str = "piece", folder: Path | None = None,
                 wav: bool = True, png: bool = True, score: bool = True, title: str | None = None,
                 marks: list[float] | None = None, sample_rate: int = audio.SAMPLE_RATE,
                 pitch_range: tuple[int, int] | None = None, until: float | None = None) -> Piece:
    """Write ``pm`` as MIDI and (optionally) WAV, piano-roll PNG, MusicXML and score HTML.

    A score that cannot be engraved does not fail the call: ``score_error`` says why, and
    the audio and piano roll are still made. Audio errors (no FluidSynth, no soundfont)
    raise :class:`~composer.errors.AudioError`. ``pitch_range`` and ``until`` go to the
    piano roll (:func:`composer.render.viz.pianoroll_image`).
    """
    t0 = time.monotonic()
    folder = folder or new_output_dir()
    stem = safe_stem(name)
    piece = Piece(midi=folder / f"{stem}.mid", seconds=pm.get_end_time(),
                  wav=folder / f"{stem}.wav" if wav else None, png=folder / f"{stem}.png" if png else None)
    sound_and_roll(pm, piece.wav, piece.png, piece.midi, title=title, marks=marks, sample_rate=sample_rate,
                   roll_options={"pitch_range": pitch_range, "until": until})
    if score:
        try:
            # the score gets what is left of the request's budget: audio first, never a request
            # that holds a worker past REQUEST_BUDGET_S
            budget = max(SCORE_MIN_S, REQUEST_BUDGET_S - (time.monotonic() - t0))
            xml, piece.score_html = viz.safe_score(pm, title=title, timeout=budget)
            piece.musicxml = folder / f"{stem}.musicxml"
            piece.musicxml.write_text(xml, encoding="utf-8")
        except ComposerError as exc:
            piece.score_error = str(exc)
    return piece
