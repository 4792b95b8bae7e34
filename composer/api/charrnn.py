"""Folk tunes in ABC from the character LSTM: everything the Folk tunes tab and the CLI need.

Typical use::

    from composer.api import charrnn as folk
    for text in folk.stream_tune(meter="6/8", key="D", tune_type="jig", seed=3):
        show(text)                      # the tune so far, growing as it is written
    check = folk.validate(text)         # valid / strict / error with line and column
    pm = folk.abc_to_pretty_midi(text, program=folk.INSTRUMENTS["fiddle"], tempo=110)
    xml = folk.abc_to_musicxml(text)

Headers asked for (meter M, key K, unit length L, tune type R, title T) are always in the
result: they are forced into the text the model continues, in the canonical order X, T,
R, M, L, K of the training data. The ones not asked for are written by the model, field
letters included: it is primed with the blank line that ends every training tune and
writes ``X:1`` itself (p = 0.99 for the shipped model). With the guard (an option, the
old default sampler) ``X:1`` is forced and header lines are held to the canonical fields.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from composer.models.sampling import filter_logits
from composer.paths import checkpoints_dir
from composer.errors import ComposerError
from composer.music.abc import (HEADER_ORDER, TUNE_TYPES, AbcCheck, AbcError, BarTracker, abc_to_musicxml,
                                abc_to_pretty_midi, check_abc, header_value_ok, normalize_key, normalize_type)

#: The shipped checkpoint (``.safetensors`` + ``.json`` model card).
DEFAULT_CHECKPOINT = checkpoints_dir() / "charrnn"
#: Instruments offered for playback: name -> General MIDI program.
INSTRUMENTS = {"fiddle": 40, "flute": 73, "tin whistle": 78, "piano": 0, "accordion": 21, "harp": 46,
               "bagpipes": 109, "guitar": 24, "mandolin": 25, "concertina": 23, "cello": 42, "oboe": 68}
#: Meters offered in the UI (the training data's common ones).
METERS = ("C|", "C", "2/4", "3/4", "4/4", "6/8", "9/8", "12/8", "3/8", "3/2", "6/4")
#: Keys offered in the UI (the training data's common ones).
KEYS = ("G", "D", "A", "E", "C", "F", "Bb", "Eb", "Em", "Am", "Bm", "Dm", "Gm", "F#m", "Ador", "Edor", "Ddor",
        "Gdor", "Amix", "Dmix", "Gmix")
#: Unit note lengths.
UNITS = ("1/8", "1/16", "1/4")
#: Tune types (R: field): :data:`composer.music.abc.TUNE_TYPES`, re-exported above.
#: Longest tune written, in characters (the training data's tunes are below 2500).
MAX_CHARS = 3000

_METER_RE = re.compile(r"^(C\|?|\d{1,2}/\d{1,2}|none)$")
_UNIT_RE = re.compile(r"^1/(1|2|4|8|16|32|64)$")
_KEY_RE = re.compile(r"^[A-G][#b]?(m|mix|dor|lyd|phr|loc)?$|^(none|Hp|HP)$")


@dataclass
class SampleSettings:
    """Sampling controls. ``temperature`` > 0; ``top_k`` 0 = off; ``top_p`` 1.0 = off;
    ``guard``: redraw header values and music lines that would break the tune (see
    :meth:`FolkModel.stream`), at most ``max_tries`` times per line."""
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    max_chars: int = MAX_CHARS
    guard: bool = True
    max_tries: int = 10


class FolkModel:
    """A loaded character LSTM with its vocabulary and model card.

    Parameters
    ----------
    path : str or Path, optional
        Checkpoint without suffix (``.json`` and ``.safetensors`` beside each other);
        default :data:`DEFAULT_CHECKPOINT`.
    """

    def __init__(self, path: str | Path | None = None):
        from composer.errors import CheckpointError
        from composer.models.charrnn import load as load_model
        self.path = Path(path) if path else DEFAULT_CHECKPOINT
        try:
            self.model, self.vocab, self.card = load_model(self.path)
        except FileNotFoundError as e:
            raise CheckpointError(f"folk-tune model not found: {e}") from None
        except Exception as e:  # corrupt file, wrong shapes
            raise CheckpointError(f"cannot load folk-tune model {self.path}: {e}") from None
        self.model.eval()
        from composer.models.charrnn import Stepper
        self.stepper = Stepper(self.model)  # plain tensors, no autograd

    # ---- low-level -------------------------------------------------------------------
    @torch.no_grad()
    def _feed(self, text: str, state):
        """Run the model over ``text`` (unknown characters skipped); logits of the last char."""
        ids = self.vocab.encode(text, skip_unknown=True)
        if len(ids) == 0:
            return None, state
        if state is None:
            state = self.model.init_state(1)
        if len(ids) < 8:  # a few characters: the step kernel is much faster than nn.LSTM
            for i in ids:
                logits, state = self.stepper(int(i), state)
            return logits, state
        x = torch.as_tensor(ids, dtype=torch.long).unsqueeze(0)
        logits, state = self.model(x, state)
        return logits[0, -1], state

    @torch.no_grad()
    def _pick(self, logits, settings: SampleSettings, gen: torch.Generator, allowed: list[int] | None = None) -> int:
        logits = logits.float() / max(settings.temperature, 1e-4)
        if allowed is not None:
            mask = torch.full_like(logits, float("-inf"))
            mask[allowed] = 0.0
            logits = logits + mask
        probs = torch.softmax(filter_logits(logits, settings.top_k, settings.top_p), dim=-1)
        return int(torch.multinomial(probs, 1, generator=gen).item())

    # ---- the tune --------------------------------------------------------------------
    def stream(self, headers: dict | None = None, body_prefix: str = "", seed: int = 0,
               settings: SampleSettings | None = None) -> Iterator[str]:
        """Write one tune, yielding the whole text written so far after each character.

        With ``settings.guard`` (the default) every header value and every line of music is
        drawn again (same model, same temperature, from the state at the start of the
        line) when it would break the tune: an unreadable M:/L:/K: value, a bar longer or
        shorter than the meter allows (see :class:`composer.music.abc.BarTracker`),
        unbalanced chords or quotes. This is rejection sampling: what comes out is the
        model's distribution restricted to well-formed lines. A line that fails
        ``settings.max_tries`` times is kept as it is, so the text shown may briefly lose
        a line being redrawn.
        """
        settings = settings or SampleSettings()
        headers = dict(headers or {})
        gen = torch.Generator().manual_seed(int(seed))
        v = self.vocab
        nl = v.index["\n"]
        not_nl = [i for i in range(len(v)) if i != nl]
        # No lock and no grad-mode context around the yields: a generator may be resumed
        # from another thread or dropped half-way (the UI's Stop); the model is only read
        # and every step runs without autograd.
        text = ""
        state = None
        logits = None

        def force(piece):
            nonlocal logits, state, text
            out_logits, state = self._feed(piece, state)
            if out_logits is not None:
                logits = out_logits
            text += piece

        def force_primer(piece):
            nonlocal logits, state
            logits, state = self._feed(piece, state)

        def sample_line(limit, allow_empty=True, stop_on_blank=False, abort=None, first=None):
            """Sample characters up to and including a newline; yields the text so far.
            Returns the line (without the newline), None at a blank line, or False when
            ``abort(line so far)`` said so at a bar line (the line is then unfinished)."""
            nonlocal logits, state, text
            line = ""
            marks = []  # (logits, state, text, line) after each accepted bar line
            fails = 0
            for _ in range(limit):
                if first is not None:
                    i, first = v.index[first], None
                else:
                    i = self._pick(logits, settings, gen, None if (line or allow_empty) else not_nl)
                c = v.chars[i]
                if c == "\n" and not line and stop_on_blank:
                    return None
                if c == "|" and abort is not None and abort(line):
                    # the bar just closed (or the one before it, whose bar line is only now
                    # complete) is wrong: draw again from the start of the bar before it
                    if len(marks) >= 2 and fails < 4:
                        fails += 1
                        logits, state, text, line = marks[-2]
                        del marks[-1:]
                        yield text
                        continue
                    return False
                logits, state = self.stepper(i, state)
                if c == "\n":
                    text += c
                    return line
                line += c
                text += c
                if c == "|" and abort is not None:
                    marks.append((logits, state, text, line))
                yield text
            logits, state = self.stepper(nl, state)
            text += "\n"
            return line

        def guarded_line(check, limit, early=False, **kw):
            """A line drawn again (up to max_tries) until ``check(line)`` accepts it; with
            ``early`` a line is given up at the first bar line where it already fails."""
            nonlocal logits, state, text
            saved = (logits, state, text)
            tries = max(1, settings.max_tries)
            for attempt in range(tries):
                abort = (lambda part: not check(part)) if early and settings.guard and attempt + 1 < tries else None
                line = yield from sample_line(limit, abort=abort, **kw)
                if line is False:
                    logits, state, text = saved
                    continue
                if line is None or not settings.guard or check(line):
                    return line
                if attempt + 1 < settings.max_tries:
                    logits, state, text = saved
            return line

        # The header. Training text joins tunes with a blank line, so the model is primed
        # with one (not part of the tune) and writes the tune from its X: line on. Only
        # the fields asked for are forced, each in its canonical place (X T R M L K): when
        # the model starts a header line with a later field, or with music, the next asked
        # field is written instead. Everything else is the model's, letters included.
        # With the guard, X:1 is forced (as the old sampler did), and header lines are
        # restricted to the canonical fields in order, M: and L: before K:, each value
        # redrawn until readable.
        force_primer("\n\n")
        asked = {f: val for f, val in headers.items() if val is not None}
        left_out = {f for f, val in headers.items() if val is None}
        order = {f: k for k, f in enumerate(HEADER_ORDER)}
        written: list[str] = []
        first_body_char = None
        if settings.guard:
            force("X:1\n")
            written.append("X")
            yield text
        for _ in range(12):  # header lines
            remaining = [f for f in HEADER_ORDER if f in asked and f not in written]
            allowed = None
            if settings.guard:
                last = max((order[f] for f in written if f in order), default=-1)
                allowed_fields = []
                for f in HEADER_ORDER[last + 1:]:
                    if f in left_out:
                        continue
                    allowed_fields.append(f)
                    if f in ("M", "L", "K"):
                        break
                allowed = [v.index[f] for f in allowed_fields if f in v.index]
            elif left_out:
                allowed = [i for i in range(len(v)) if v.chars[i] not in left_out]
            c = v.chars[self._pick(logits, settings, gen, allowed or None)]
            due = [f for f in remaining if c not in order or order[f] <= order[c]]
            if due:
                f = due[0]
                force(f"{f}:{asked[f]}\n")
                written.append(f)
                yield text
                if f == "K":
                    break
                continue
            if c not in order and not (c.isalpha() and c.isupper() and c not in "ABCDEFG"):
                first_body_char = c  # the model starts the music (without a K: line)
                break
            force(c)
            yield text
            if settings.guard:
                force(":")
                yield text
                yield from guarded_line(lambda value, f=c: header_value_ok(f, value), 80, allow_empty=False)
            else:
                yield from sample_line(200)
            written.append(c)
            if c == "K":
                break
        # the body
        meter = re.search(r"^M:(.*)$", text, flags=re.M)
        unit = re.search(r"^L:(.*)$", text, flags=re.M)
        tracker = BarTracker(meter.group(1) if meter else "none", unit.group(1) if unit else "1/8")
        if body_prefix:
            lines = body_prefix.split("\n")
            for complete in lines[:-1]:
                tracker.commit(complete)
            force(body_prefix)
            yield text
            if lines[-1]:  # an unfinished line: the model completes it
                head = lines[-1]
                line = yield from guarded_line(lambda l: tracker.check(head + l)[0], settings.max_chars)
                tracker.commit(head + (line or ""))
        n_lines = 0
        if first_body_char is not None:  # plain sampling only: the model began the music itself
            line = yield from sample_line(settings.max_chars - len(text) + 1, first=first_body_char)
            tracker.commit(line or "")
            n_lines += 1
        while len(text) < settings.max_chars:
            line = yield from guarded_line(lambda l: tracker.check(l)[0], settings.max_chars - len(text) + 1,
                                           early=True, allow_empty=n_lines > 0, stop_on_blank=n_lines > 0)
            if line is None:
                break  # a blank line: the end of the tune
            tracker.commit(line)
            n_lines += 1
            yield text
        if not text.endswith("\n"):
            text += "\n"
        yield text

    def sample(self, headers: dict | None = None, body_prefix: str = "", seed: int = 0,
               settings: SampleSettings | None = None) -> str:
        """One tune as text (see :meth:`stream`)."""
        text = ""
        for text in self.stream(headers, body_prefix, seed, settings):
            pass
        return text


_MODELS: dict[str, FolkModel] = {}
_MODELS_LOCK = threading.Lock()


def load(path: str | Path | None = None) -> FolkModel:
    """The model at ``path`` (default: the shipped checkpoint), loaded once per process.

    Raises
    ------
    composer.errors.CheckpointError
        When the checkpoint is missing or unreadable.
    """
    key = str(Path(path) if path else DEFAULT_CHECKPOINT)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = FolkModel(key)
        return _MODELS[key]


def build_headers(meter: str | None = None, key: str | None = None, unit: str | None = None,
                  tune_type: str | None = None, title: str | None = None,
                  prefix: str | None = None) -> tuple[dict, str]:
    """Turn the user's controls into forced header fields and a body prefix.

    Parameters
    ----------
    meter, key, unit, tune_type, title : str, optional
        M:, K:, L:, R:, T: values; empty or None lets the model choose. Keys are
        normalised ('E minor' -> 'Em'), tune types lower-cased ('Slip jig' -> 'slip jig').
    prefix : str, optional
        The opening of a tune to continue: header lines (``M:6/8`` ...) and/or the first
        bars. Header fields given as arguments override the prefix's.

    Returns
    -------
    headers : dict
        Field letter -> value, only the fields to force; ``None`` for a field to leave
        out (R: when the prefix has a complete header without one).
    body : str
        Music to force after the K: line.

    Raises
    ------
    composer.music.abc.AbcError
        For a malformed meter, key or unit.
    """
    headers: dict[str, str] = {}
    body = ""
    if prefix:
        lines = prefix.replace("\r\n", "\n").split("\n")
        i = 0
        while i < len(lines):
            m = re.match(r"^([A-Za-z]):\s*(.*?)\s*$", lines[i])
            if not m or (m.group(1) not in HEADER_ORDER and m.group(1) not in "BNZSOQIHCDFGPW"):
                break
            if m.group(1) in HEADER_ORDER and m.group(1) != "X" and m.group(2):
                headers[m.group(1)] = m.group(2)
            i += 1
            if m.group(1) == "K":
                headers.setdefault("R", None)  # a complete header without R: keeps none
                break
        body = "\n".join(lines[i:]).strip("\n")
        if body and prefix.endswith("\n"):
            body += "\n"
    for f, value in (("M", meter), ("K", key), ("L", unit), ("R", tune_type), ("T", title)):
        if value is not None and str(value).strip():
            headers[f] = str(value).strip()
    if "T" in headers:
        headers["T"] = " ".join(headers["T"].split())
    if headers.get("R"):
        headers["R"] = normalize_type(headers["R"])
    if "M" in headers:
        headers["M"] = headers["M"].replace(" ", "")
        if not _METER_RE.match(headers["M"]):
            raise AbcError(f"meter {headers['M']!r} is not an ABC meter (e.g. 6/8, 2/4, C, C|)")
    if "L" in headers:
        headers["L"] = headers["L"].replace(" ", "")
        if not _UNIT_RE.match(headers["L"]):
            raise AbcError(f"unit length {headers['L']!r} is not an ABC note length (1/8, 1/16, 1/4 ...)")
    if "K" in headers:
        k = normalize_key(headers["K"])
        if not _KEY_RE.match(k):
            raise AbcError(f"key {headers['K']!r} is not an ABC key (e.g. G, Dm, Ador, F#m, Bb)")
        headers["K"] = k
    return headers, body


def stream_tune(meter=None, key=None, unit=None, tune_type=None, title=None, prefix=None, seed: int = 0,
                temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, max_chars: int = MAX_CHARS,
                guard: bool = True, model: FolkModel | None = None) -> Iterator[str]:
    """Write one tune, yielding the whole text so far after each step (for a live view).

    Parameters
    ----------
    meter, key, unit, tune_type, title, prefix
        See :func:`build_headers`; asked headers are always honoured.
    seed : int
        Same seed and settings, same tune.
    temperature : float
        Softmax temperature (> 0; 1.0 = the model's distribution).
    top_k : int
        Keep only the k most likely characters (0 = off).
    top_p : float
        Nucleus sampling: keep the smallest set with this probability mass (1.0 = off).
    max_chars : int
        Stop after this many characters.
    guard : bool
        Redraw lines that would break the tune (bar lengths, unreadable headers); the
        text yielded may then lose the line being redrawn. False: plain sampling.
    model : FolkModel, optional
        Default :func:`load` ().

    Yields
    ------
    str
        The tune written so far; the last value is the finished tune.
    """
    headers, body = build_headers(meter, key, unit, tune_type, title, prefix)
    settings = _settings(temperature, top_k, top_p, max_chars)
    settings.guard = bool(guard)
    model = model or load()
    show = lambda t: t  # noqa: E731
    common = (model.card.get("data") or {}).get("transpose_to")
    if common and headers.get("K"):
        # a model trained on tunes moved to one tonic writes in that tonic; the key asked
        # for is reached by moving the tune back (an opening to continue is moved there first)
        from composer.music.abc_transpose import parse_key, transpose_tune
        asked = parse_key(headers["K"])
        if asked is not None:
            tonic = asked[0] + {1: "#", -1: "b", 0: ""}[asked[1]]
            headers["K"] = common + asked[2]
            if body:
                moved = transpose_tune(f"K:{tonic}{asked[2]}\n{body}", common)
                body = moved.split("\n", 1)[1] if moved else body

            def show(t, tonic=tonic):
                moved = transpose_tune(t, tonic)
                return moved if moved is not None else t
    text = ""
    last = 0.0
    for text in model.stream(headers, body, seed, settings):
        now = time.monotonic()
        if now - last > 0.03:  # ~30 updates per second at most
            last = now
            yield show(text)
    yield show(text)


def _settings(temperature, top_k, top_p, max_chars) -> SampleSettings:
    if not temperature or temperature <= 0:
        raise AbcError("temperature must be above 0")
    if top_p is None or not 0 < top_p <= 1:
        raise AbcError("top-p must be in (0, 1]")
    if top_k is None or top_k < 0:
        raise AbcError("top-k must be 0 (off) or positive")
    return SampleSettings(float(temperature), int(top_k), float(top_p), int(max_chars))


def generate_tune(**kwargs) -> str:
    """One finished tune as ABC text (same arguments as :func:`stream_tune`)."""
    text = ""
    for text in stream_tune(**kwargs):
        pass
    return text


def sample_tunes(n: int = 1, seed: int = 0, check: bool = True, **kwargs) -> list[dict]:
    """``n`` tunes (tune i uses seed ``seed + i``), each checked.

    Returns
    -------
    list of dict
        ``{"abc": str, "valid": bool, "strict": bool, "error": str | None, "seed": int}``
        (valid/strict/error only when ``check``).
    """
    out = []
    for i in range(n):
        text = generate_tune(seed=seed + i, **kwargs)
        item = {"abc": text, "seed": seed + i}
        if check:
            res = check_abc(text)
            item.update(valid=res.valid, strict=res.strict, error=res.error)
        out.append(item)
    return out


def validate(abc: str) -> dict:
    """Check an ABC tune (e.g. the user's edit) before rendering it.

    Parameters
    ----------
    abc : str
        The tune text (the first tune is checked when there are several).

    Returns
    -------
    dict
        ``valid`` (headers X/M/K and music21 reads notes), ``strict`` (bar lengths agree with
        the meter), ``error`` (first problem or None), ``line`` and ``column`` (1-based
        position of that problem, None when it cannot be located), ``n_bars``, ``n_notes``.
        Invalid tunes should not be rendered: keep showing the last good rendering.
    """
    return check_abc(abc).to_dict()


@dataclass
class TuneRendering:
    """What a render of an ABC tune gives (see :func:`render_tune`)."""
    check: dict
    pm: object | None = None          # pretty_midi.PrettyMIDI, None when the tune is invalid
    musicxml: str | None = None
    score_svg: list[str] | None = None
    score_error: str | None = None


def render_tune(abc: str, program: int = 40, tempo: float | None = None) -> TuneRendering:
    """Check, play and engrave an ABC tune that may come from anyone.

    music21 and verovio run in :mod:`composer.sandbox` workers under a time and memory
    limit, never in the calling process: a tune that would hang, exhaust memory or crash
    verovio costs a message, not the server. When the score cannot be drawn the audio is
    still made (``score_error`` says why).

    Raises
    ------
    ComposerError
        When the tune cannot be read in time or at all (one line, fit to show).
    """
    from composer import sandbox
    if not isinstance(abc, str):
        raise AbcError("the ABC must be text")
    # 6 s to read and play, 3 s to engrave: a request never holds a worker for 10 s
    parts = sandbox.run("composer.music.abc:render_parts", abc, int(program), tempo, timeout=6.0,
                        what="this tune")
    out = TuneRendering(check=parts["check"], musicxml=parts["musicxml"])
    if not out.check["valid"]:
        return out
    import io

    import pretty_midi
    out.pm = pretty_midi.PrettyMIDI(io.BytesIO(parts["midi"]))
    try:
        out.score_svg = sandbox.run("composer.render.viz:score_svg", abc, input_format="abc", timeout=3.0,
                                    what="cannot draw this score")
    except ComposerError as exc:
        out.score_error = str(exc)
    return out


def model_info(model: FolkModel | None = None) -> dict:
    """The shipped model's card (config, data counts, training, metrics)."""
    return dict((model or load()).card)


__all__ = ["DEFAULT_CHECKPOINT", "INSTRUMENTS", "METERS", "KEYS", "UNITS", "TUNE_TYPES", "MAX_CHARS",
           "FolkModel", "SampleSettings", "AbcCheck", "AbcError", "load", "build_headers", "stream_tune",
           "generate_tune", "sample_tunes", "validate", "render_tune", "TuneRendering", "abc_to_pretty_midi", "abc_to_musicxml", "model_info"]
