"""Audio through FluidSynth: synths loaded once per process, int16 stereo out.

Why it looks like this (docs/ARCHITECTURE.md):

* Loading a soundfont takes from 0.1 s (TimGM6mb) to seconds (FluidR3_GM, 148 MB), so one
  :class:`Renderer` per synth of a lane (soundfont, sample rate) is kept for the life of the
  process and reused behind a lock; a render resets the synth instead of rebuilding it.
* ``sfload`` and ``program_select`` report failure by returning -1, not by raising: both
  are checked.
* Every track gets its own channel (channel 9 is kept for drums, which use bank 128).
* Samples are written straight into one preallocated float32 buffer, then a release tail
  lets the last notes and the reverb ring out (computed only until it is silent), then
  rounded to int16 once.
* Live editing renders often: Compose plays at :data:`PREVIEW_RATE` (a 4-bar phrase is
  ~70 ms of CPU on this project's 2-core machine); a short lane of several synths lets
  visitors render side by side and cuts one phrase into spans of time for idle synths; a
  long lane keeps long pieces out of its way.
* The gain is fixed. Per-clip peak normalisation would make a quiet passage as loud as a
  tutti; Gradio normalises float audio by its peak, so we hand it int16.
"""
from __future__ import annotations

import bisect
import contextlib
import ctypes
import io
import os
import threading
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable
from pathlib import Path

import numpy as np
import pretty_midi

from composer.paths import soundfonts_dir
from composer.errors import AudioError, FluidSynthMissingError, SoundfontNotFoundError

#: Rate of the audio files the app writes.
SAMPLE_RATE = 44100
#: Rate of the Compose tab's live audio, made on every edit: half the synthesis of 44.1 kHz.
#: What it leaves out is little for these voices: FluidR3's strings hold ~-39 dB of their
#: energy above 11 kHz (measured on a 4-bar Compose phrase); the band below is the same.
PREVIEW_RATE = 22050
#: Seconds rendered after the last note-off so releases and reverb are not cut.
RELEASE_TAIL_S = 1.5
#: FluidSynth's master gain; 0.5 leaves headroom for four to eight voices without clipping.
GAIN = 0.5
DRUM_CHANNEL = 9
ASSETS_SOUNDFONTS = soundfonts_dir()
SYSTEM_SOUNDFONT_DIRS = (Path("/usr/share/sounds/sf2"), Path("/usr/share/soundfonts"),
                         Path("/opt/homebrew/share/soundfonts"), Path("/usr/local/share/soundfonts"))


def soundfont_candidates() -> list[Path]:
    """Soundfonts in the order they are tried.

    ``$COMPOSER_SOUNDFONT``, then ``assets/soundfonts/``, then the system folders
    (Debian's fluid-soundfont-gm puts FluidR3_GM.sf2 in /usr/share/sounds/sf2), then the
    TimGM6mb.sf2 that ships inside pretty_midi.
    """
    out: list[Path] = []
    env = os.environ.get("COMPOSER_SOUNDFONT")
    if env:
        out.append(Path(env))
    for folder in (ASSETS_SOUNDFONTS, *SYSTEM_SOUNDFONT_DIRS):
        if folder.is_dir():
            found = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".sf2", ".sf3"))
            # FluidR3_GM first where it is: it is the best general-MIDI set Debian has
            found.sort(key=lambda p: (not p.name.lower().startswith("fluidr3"), p.name))
            out.extend(found)
    out.append(Path(pretty_midi.__file__).resolve().parent / "TimGM6mb.sf2")
    return out


def find_soundfont() -> Path:
    """The first soundfont of :func:`soundfont_candidates` that exists.

    Raises
    ------
    SoundfontNotFoundError
        When none exists (a ``$COMPOSER_SOUNDFONT`` that does not exist is an error too,
        rather than a silent fallback).
    """
    env = os.environ.get("COMPOSER_SOUNDFONT")
    if env and not Path(env).is_file():
        raise SoundfontNotFoundError(f"COMPOSER_SOUNDFONT points to '{env}', which is not a file")
    for path in soundfont_candidates():
        if path.is_file():
            return path
    raise SoundfontNotFoundError("no soundfont found: set COMPOSER_SOUNDFONT to a .sf2 file or install "
                                 "fluid-soundfont-gm (Debian) / put one in assets/soundfonts/")


def _import_fluidsynth():
    try:
        # pyfluidsynth prints where it found the library when $CI is set; keep stdout clean
        # for `--json` output
        with contextlib.redirect_stdout(io.StringIO()):
            import fluidsynth  # pyfluidsynth; the PyPI package named 'fluidsynth' is another thing
    except ImportError as exc:
        raise FluidSynthMissingError(
            "FluidSynth is not installed: 'apt-get install fluidsynth' (Debian/Ubuntu) or "
            f"'brew install fluid-synth' (macOS), then 'pip install pyfluidsynth' ({exc})") from None
    if not hasattr(fluidsynth, "Synth"):
        raise FluidSynthMissingError("the 'fluidsynth' module found is not pyfluidsynth; "
                                     "'pip uninstall fluidsynth' and 'pip install pyfluidsynth'")
    return fluidsynth


class Stopped(Exception):
    """A render given up because its ``stop`` said so (its music is no longer wanted)."""


@dataclass(frozen=True)
class _Event:
    time: float
    order: int  # at equal times: note-offs before controls before note-ons
    kind: str
    channel: int
    a: int
    b: int = 0
    note: int = -1  # for "on" and "off": which note of the piece (a split keeps a note's pair together)


def midi_events(pm: pretty_midi.PrettyMIDI) -> tuple[list[_Event], dict[int, tuple[int, int]]]:
    """Flatten ``pm`` into time-sorted synth events and a channel -> (bank, program) map."""
    events: list[_Event] = []
    programs: dict[int, tuple[int, int]] = {}
    pools = {False: [c for c in range(256) if c % 16 != DRUM_CHANNEL], True: list(range(DRUM_CHANNEL, 256, 16))}
    taken = {False: 0, True: 0}
    shared: dict[tuple[bool, int], int] = {}  # (drum, program) -> channel, once the channels run out
    for inst in pm.instruments:
        if not inst.notes:
            continue
        key, pool = (bool(inst.is_drum), int(inst.program)), pools[bool(inst.is_drum)]
        if taken[key[0]] < len(pool):  # a channel of its own while there are any left (240 melodic, 16 drum)
            ch = pool[taken[key[0]]]
            taken[key[0]] += 1
            shared.setdefault(key, ch)
        else:  # more tracks than channels: share one with the same instrument (else any, in turn)
            ch = shared.setdefault(key, pool[len(shared) % len(pool)])
        programs[ch] = (128 if inst.is_drum else 0, int(inst.program))
        for n in inst.notes:
            if n.end <= n.start:
                continue
            events.append(_Event(n.start, 2, "on", ch, n.pitch, n.velocity, note=len(events)))
            events.append(_Event(n.end, 0, "off", ch, n.pitch, note=len(events) - 1))
        for cc in inst.control_changes:
            events.append(_Event(cc.time, 1, "cc", ch, cc.number, cc.value))
        for pb in inst.pitch_bends:
            events.append(_Event(pb.time, 1, "bend", ch, pb.pitch + 8192))
    events.sort(key=lambda e: (e.time, e.order))
    return events, programs


class Renderer:
    """One FluidSynth synthesizer with one soundfont loaded, safe to share between threads.

    Parameters
    ----------
    soundfont : path, optional
        Defaults to :func:`find_soundfont`.
    sample_rate : int
        Output rate in Hz.
    """

    def __init__(self, soundfont: str | os.PathLike | None = None, sample_rate: int = SAMPLE_RATE):
        fs = _import_fluidsynth()
        self.soundfont = Path(soundfont) if soundfont else find_soundfont()
        if not self.soundfont.is_file():
            raise SoundfontNotFoundError(f"soundfont not found: {self.soundfont}")
        self.sample_rate = int(sample_rate)
        self._fs = fs
        self._synth = fs.Synth(gain=GAIN, samplerate=float(self.sample_rate))
        self._sfid = self._synth.sfload(str(self.soundfont))
        if self._sfid == -1:
            raise SoundfontNotFoundError(f"FluidSynth could not load the soundfont {self.soundfont}")
        self._write_float = fs.cfunc("fluid_synth_write_float", ctypes.c_int,
                                     ("synth", ctypes.c_void_p, 1), ("len", ctypes.c_int, 1),
                                     ("lbuf", ctypes.c_void_p, 1), ("loff", ctypes.c_int, 1),
                                     ("lincr", ctypes.c_int, 1), ("rbuf", ctypes.c_void_p, 1),
                                     ("roff", ctypes.c_int, 1), ("rincr", ctypes.c_int, 1))
        self._lock = threading.Lock()

    def _write(self, buf: np.ndarray, start: int, n: int) -> None:
        """Synthesise ``n`` frames into ``buf[start:start + n]`` (float32 frames of L, R)."""
        if n <= 0:
            return
        ptr = ctypes.c_void_p(buf.ctypes.data + start * 8)
        # ctypes lets go of the GIL for the call: other threads (the roll, another synth) run meanwhile
        self._write_float(self._synth.synth, n, ptr, 0, 2, ptr, 1, 2)

    def play(self, events: list[_Event], programs: dict[int, tuple[int, int]], frames: int,
             start: int = 0, stop: Callable[[], bool] | None = None) -> np.ndarray:
        """Synthesise ``events`` on their channels into a float32 ``(frames - start, 2)`` buffer.

        ``frames`` is the piece's length; the buffer starts at its frame ``start`` (a
        multiple of FluidSynth's 64-frame block), and events before it (a part of a split
        piece: the channel's controls so far) are played before the first frame.

        After the last event the synth runs in blocks only until its voices are over and a
        block stays below half a 16-bit step (the reverb has died away): the rest of the
        release tail is silence without being computed.

        ``stop`` is asked every :data:`STOP_EVERY_S` of music; when it says True the render
        ends there and :class:`Stopped` is raised (the synth is reset for the next one).
        """
        if start % _BLOCK:
            raise ValueError(f"start must be a multiple of {_BLOCK} frames")
        # FluidSynth computes in blocks of 64 frames and keeps its place in the block from one
        # call to the next: every render writes whole blocks, so that the next one starts on a
        # block boundary and its notes start on the same samples every time
        length = max(0, frames - start)
        buf = np.zeros((-(-length // _BLOCK) * _BLOCK, 2), dtype=np.float32)
        sr = self.sample_rate
        with self._lock:
            synth = self._synth
            synth.system_reset()
            for ch, (bank, prog) in programs.items():
                if synth.program_select(ch, self._sfid, bank, prog) == -1:
                    # a soundfont without this preset: fall back to its piano / standard kit
                    if synth.program_select(ch, self._sfid, bank, 0) == -1:
                        raise AudioError(f"the soundfont {self.soundfont.name} has no preset for "
                                         f"bank {bank} program {prog} or 0")
            pos, asked, silent = 0, 0, False
            # past the last note only controls are left: they cannot sound by themselves, so
            # the synth rings out toward them and stops once it is silent (a piece's span
            # carries every control of the piece, a file may end on controllers)
            last_note = max((i for i, e in enumerate(events) if e.kind in ("on", "off")), default=-1)
            try:
                for i, ev in enumerate(events):
                    # the frame in the piece, then in this buffer: the same rounding split or whole
                    frame = max(0, min(int(ev.time * sr), frames) - start)
                    if stop is not None and frame >= asked:
                        if stop():
                            raise Stopped("the render was stopped")
                        asked = frame + int(STOP_EVERY_S * sr)
                    if i > last_note:
                        pos, silent = self._ring_out(buf, pos, frame)
                        if silent:
                            break
                    self._write(buf, pos, frame - pos)
                    pos = max(pos, frame)
                    if ev.kind == "on":
                        synth.noteon(ev.channel, ev.a, ev.b)
                    elif ev.kind == "off":
                        synth.noteoff(ev.channel, ev.a)
                    elif ev.kind == "cc":
                        synth.cc(ev.channel, ev.a, ev.b)
                    else:
                        synth.pitch_bend(ev.channel, ev.a - 8192)
                else:
                    pos, silent = self._ring_out(buf, pos, length)
            finally:
                self._write(buf, pos, -pos % _BLOCK)  # the next render starts on a block
                synth.system_reset()
                if not silent:  # stopped, or the tail was cut: the reset leaves the reverb ringing
                    self._flush()
        return buf[:length]

    def _flush(self) -> None:
        """Run the synth on silence until its reverb and chorus have died away (a reset does
        not clear them, and the next render would start with this one's echo)."""
        scratch = np.zeros((_TAIL_BLOCK * 16, 2), dtype=np.float32)
        for _ in range(64):  # ~1.5 s of reverb to clear at most; the bound keeps a broken synth from spinning
            if self._ring_out(scratch, 0, len(scratch))[1]:
                return

    def _ring_out(self, buf: np.ndarray, pos: int, until: int) -> tuple[int, bool]:
        """Synthesise from ``pos`` toward ``until`` in blocks, stopping once no voice sounds
        and a block is below half a 16-bit step; returns (the new position, whether silent)."""
        while pos < until:
            n = min(_TAIL_BLOCK, until - pos)
            self._write(buf, pos, n)
            pos += n
            if self._synth.get_active_voice_count() == 0 and np.abs(buf[pos - n:pos]).max() < _SILENT:
                return pos, True
        return pos, False

    def frames(self, events: list[_Event], tail: float) -> int:
        """Length in frames of music made of ``events``: the last event plus ``tail`` seconds."""
        end = max((e.time for e in events), default=0.0)
        return int(np.ceil((end + tail) * self.sample_rate))

    def render(self, pm: pretty_midi.PrettyMIDI, tail: float = RELEASE_TAIL_S) -> np.ndarray:
        """Render ``pm`` on this synth alone to int16 stereo audio of shape ``(frames, 2)``.

        The length is the music's end plus ``tail`` seconds.
        """
        events, programs = midi_events(pm)
        return to_int16(self.play(events, programs, self.frames(events, tail)))


#: Seconds of music between two questions to a render's ``stop`` (Renderer.play): at 44.1 kHz
#: on this project's 2-core machine a second of music is ~15 ms of synthesis.
STOP_EVERY_S = 0.25
#: FluidSynth's block (frames); and a block of the release tail after which the synth
#: checks whether it is silent (a multiple of it).
_BLOCK, _TAIL_BLOCK = 64, 2048
#: Below half a 16-bit step: rounds to 0 in the WAV.
_SILENT = 0.5 / 32768


def to_int16(buf: np.ndarray) -> np.ndarray:
    """Float samples (full scale 1.0) to int16, rounded and clipped."""
    out = np.multiply(buf, 32768.0, dtype=np.float32)
    np.rint(out, out=out)
    np.clip(out, -32768, 32767, out=out)
    return out.astype(np.int16)


#: Music longer than this (seconds) renders on the long lane, so that one visitor's long
#: piece never holds up another's 4-bar phrase (each lane has its own synths; FluidSynth's
#: render call releases the GIL, so the lanes run side by side).
LONG_RENDER_S = 60.0
LANES = ("short", "long")
#: Synths per lane. The short lane has one per core (at most 4): several visitors' phrases
#: render at once, and a phrase rendered while synths and cores are idle is cut among them
#: into spans of time (:func:`_time_split`; synthesis is linear: the sum of the spans is the
#: whole, up to the phase of the reverb's modulation and a key struck again while its last
#: note still rings in another span). Extra synths share the soundfont's samples
#: (FluidSynth caches a loaded file), ~15 MB each.
LANE_SYNTHS = {"short": max(1, min(4, os.cpu_count() or 1)), "long": 1}


class _Lane:
    """The synths of one lane and which of them are free."""

    def __init__(self, renderers: list[Renderer]):
        self.renderers = renderers
        self._free = list(renderers)
        self._cond = threading.Condition()

    def take(self, most: int) -> list[Renderer]:
        """At least one synth (waiting for one if need be), and up to ``most`` if free."""
        with self._cond:
            while not self._free:
                self._cond.wait()
            n = max(1, min(most, len(self._free)))
            got, self._free = self._free[:n], self._free[n:]
            return got

    def give(self, renderers: list[Renderer]) -> None:
        with self._cond:
            self._free.extend(renderers)
            self._cond.notify_all()


_lanes: dict[tuple[str, int, str], _Lane] = {}
_lanes_lock = threading.Lock()
_helpers: ThreadPoolExecutor | None = None


def _lane(sample_rate: int, soundfont: str | os.PathLike | None, lane: str) -> _Lane:
    if lane not in LANES:
        raise ValueError(f"lane must be one of {LANES}")
    sf = str(Path(soundfont) if soundfont else find_soundfont())
    key = (sf, int(sample_rate), lane)
    with _lanes_lock:
        if key not in _lanes:
            _lanes[key] = _Lane([Renderer(sf, sample_rate) for _ in range(LANE_SYNTHS[lane])])
        return _lanes[key]


def get_renderer(sample_rate: int = SAMPLE_RATE, soundfont: str | os.PathLike | None = None,
                 lane: str = "short") -> Renderer:
    """The process-wide first :class:`Renderer` of ``lane`` for this soundfont and rate
    (the lane's synths are created once, on first use)."""
    return _lane(sample_rate, soundfont, lane).renderers[0]


def _time_split(events: list[_Event], k: int, sample_rate: int) -> list[tuple[int, list[_Event]]]:
    """``events`` in up to ``k`` spans of time: ``(start frame, events)`` per span with notes.

    The music (up to its last note-off) is cut in ``k`` equal spans at block boundaries, and
    each note goes to the span of its onset, its note-off with it (a note held over a cut
    sounds to its end on its span's synth). Every span gets every control and pitch bend: those before it are
    played at its first frame, so that its notes hear their channel as they would in the
    whole, and those after let its held notes and their release hear later changes. Each
    synth then computes its own span's voices and reverb, about 1/k of the whole, where a
    split by tracks would have each synth compute the reverb of the whole length.
    """
    end = max((int(e.time * sample_rate) for e in events if e.kind in ("on", "off")), default=0)
    cuts = [i * end // k // _BLOCK * _BLOCK for i in range(k)]
    span_of_note = {e.note: bisect.bisect_right(cuts, int(e.time * sample_rate)) - 1
                    for e in events if e.kind == "on"}
    spans: list[list[_Event]] = [[] for _ in range(k)]
    for e in events:
        if e.kind in ("on", "off"):
            spans[span_of_note[e.note]].append(e)
        else:
            for span in spans:
                span.append(e)
    return [(cut, span) for cut, span in zip(cuts, spans) if any(e.kind == "on" for e in span)]


#: Seconds of music (with its tail) per synth at least, when a piece is cut into spans: a
#: span also renders its last notes' release and reverb (~1.5 s), which a shorter span would
#: be mostly made of. Measured at PREVIEW_RATE on the 2-core machine, idle: a 4-bar Compose
#: phrase (~12 s, two spans) 100 -> 74 ms median; 16 bars (~45 s) 503 -> 288 ms.
SPLIT_MIN_S = 5.0


def _spare_core() -> bool:
    """Whether the machine has room for a second synth now. Other visitors' renders are
    already counted by the lane (a synth they use is not free to split with); this looks
    at the machine.

    Two conditions, on Linux:

    * now: the tasks runnable at this instant (``/proc/loadavg``'s fourth field, this thread
      included) are at most one more than the cores: besides this render no more tasks want
      a core than there are cores (a roll being drawn, a browser playing the last phrase, a
      niced score worker or trainer leave room). The one-minute load average alone would be
      a minute late: it still counts the renders of a musician's last moves while the
      machine waits idle for the next one (a 16-bar move in the browser: median 0.77 s with
      this test, 0.93 s with the load average alone);
    * lately: the one-minute load average is below the cores plus one: under many visitors a
      split takes every synth of the lane, the next visitor waits for one, and each part
      computes its own reverb (``bench --only load``, 20 visitors on 2 cores, 4-bar pieces
      split by the first test alone: p95 2.5 s against 1.2 s without splits).

    Elsewhere: the load average alone.
    """
    cores = os.cpu_count() or 1
    try:
        lately = os.getloadavg()[0] < cores + 1
    except (AttributeError, OSError):  # no load average on this system
        return False
    try:
        with open("/proc/loadavg") as f:
            return lately and int(f.read().split()[3].split("/")[0]) <= cores + 1
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0] + 1 <= cores


def render(pm: pretty_midi.PrettyMIDI, sample_rate: int = SAMPLE_RATE, tail: float = RELEASE_TAIL_S,
           split: bool = True, stop: Callable[[], bool] | None = None) -> np.ndarray:
    """Render with the shared synths: int16 stereo ``(frames, 2)``.

    Music longer than :data:`LONG_RENDER_S` goes to the long lane. On the short lane, music
    of at least twice :data:`SPLIT_MIN_S` is cut into spans of time (:func:`_time_split`)
    for the synths that are free, at most one per :data:`SPLIT_MIN_S`, when the machine has
    room (:func:`_spare_core`). ``split=False`` keeps to one synth: for work made in the
    background while someone plays (Compose's WAV download), which would otherwise take
    the core their next phrase needs; such work passes a ``stop`` too (see
    :meth:`Renderer.play`), which ends it with :class:`Stopped` once it is no longer wanted.
    """
    global _helpers
    lane = _lane(sample_rate, None, "long" if pm.get_end_time() > LONG_RENDER_S else "short")
    events, programs = midi_events(pm)
    frames = lane.renderers[0].frames(events, tail)
    # a synth per SPLIT_MIN_S of music at most, and only while the machine has room
    most = min(len(lane.renderers), int(frames // (SPLIT_MIN_S * sample_rate)))
    got = lane.take(most if split and most > 1 and _spare_core() else 1)
    try:
        if len(got) == 1:
            return to_int16(got[0].play(events, programs, frames, stop=stop))
        spans = _time_split(events, len(got), sample_rate)
        with _lanes_lock:
            if _helpers is None:
                _helpers = ThreadPoolExecutor(max_workers=max(LANE_SYNTHS.values()), thread_name_prefix="synth")
        futures = [_helpers.submit(r.play, ev, programs, frames, start, stop)
                   for r, (start, ev) in zip(got[1:], spans[1:])]
        buf = np.zeros((frames, 2), dtype=np.float32)
        for (start, ev), part in zip(spans, [None, *futures]):
            buf[start:] += got[0].play(ev, programs, frames, start, stop) if part is None else part.result()
        return to_int16(buf)
    finally:
        lane.give(got)


def wav_bytes(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Encode int16 audio ``(frames, channels)`` as a WAV file."""
    audio = np.asarray(audio)
    if audio.dtype != np.int16:
        raise ValueError("audio must be int16")
    if audio.ndim == 1:
        audio = audio[:, None]
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(audio.shape[1])
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(np.ascontiguousarray(audio).tobytes())
    return out.getvalue()


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write int16 audio to ``path`` as WAV and return the path."""
    path = Path(path)
    path.write_bytes(wav_bytes(audio, sample_rate))
    return path


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a 16-bit WAV into ``(int16 array (frames, channels), sample_rate)``."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise AudioError(f"{path} is not 16-bit PCM")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        return data.reshape(-1, w.getnchannels()), w.getframerate()


def render_to_wav(pm: pretty_midi.PrettyMIDI, path: str | os.PathLike, sample_rate: int = SAMPLE_RATE,
                  split: bool = True, stop: Callable[[], bool] | None = None) -> Path:
    """Render ``pm`` (:func:`render`) and write it as a WAV file (none when stopped)."""
    return write_wav(path, render(pm, sample_rate, split=split, stop=stop), sample_rate)
