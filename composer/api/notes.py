"""Continue a melody with a note/chord token model: the Python API behind the CLI and the tab.

>>> from composer import notes_api
>>> pm, seam, info = notes_api.continue_midi(prompt_pm, bars=4, model="lstm", temperature=0.9, seed=1)

The prompt may be any length (the model reads its last ``context`` tokens). Sampling is
seeded (same seed and settings, same music), uses temperature, top-k and top-p, and follows
the token grammar (a pitch, chord or rest, then its duration). The continuation starts
exactly where the prompt ends, completes the prompt's last bar and adds ``bars`` bars.
"""
from __future__ import annotations

import functools
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi
import torch

from composer.models.sampling import filter_logits
from composer.paths import checkpoints_dir
from composer.errors import CheckpointError, DataError
from composer.music import tokens as T

CHECKPOINTS = checkpoints_dir()
ARCHS = ("lstm", "wavenet")
MAX_BARS = 32
_lock = threading.Lock()


@dataclass
class NotesModel:
    """A loaded model with its vocabulary and the grammar masks used when sampling."""
    model: torch.nn.Module
    vocab: T.Vocab
    card: dict
    name: str

    def __post_init__(self):
        V = len(self.vocab)
        kinds = self.vocab.kind_ids()
        self.event_mask = torch.full((V,), float("-inf"))
        for k in ("rest", "note", "chord"):
            self.event_mask[torch.as_tensor(kinds[k])] = 0.0
        self.dur_mask = torch.full((V,), float("-inf"))
        self.dur_mask[torch.as_tensor(kinds["dur"])] = 0.0
        self.durations = {i: int(self.vocab.tokens[i][2:]) for i in kinds["dur"].tolist()}

    @property
    def context(self) -> int:
        return int(self.model.config.context)

    @property
    def arch(self) -> str:
        return self.model.config.arch

    @property
    def tonic(self) -> str:
        """"key": trained in C major / A minor (prompts are moved there and back); "none": as written."""
        return self.card.get("data", {}).get("tonic") or "none"


def checkpoint_path(model: str) -> Path:
    """``lstm``/``wavenet`` -> the shipped checkpoint; anything else is a path."""
    if model in ARCHS:
        return CHECKPOINTS / f"notes_{model}.safetensors"
    return Path(model)


@functools.lru_cache(maxsize=4)
def _load(path: str) -> NotesModel:
    from composer.models.notes import load as load_model
    model, card = load_model(path)
    return NotesModel(model, T.Vocab(card["vocab"]), card, Path(path).stem)


def load(model: str = "lstm") -> NotesModel:
    """Load (once per process) a shipped model by name or any notes checkpoint by path."""
    path = checkpoint_path(model)
    if not path.with_suffix(".safetensors").exists():
        if model in ARCHS:
            raise CheckpointError(f"no {model} notes model: {path.name} is missing from checkpoints/ "
                                  f"(train one with: python -m composer train notes --arch {model} --out DIR)")
        raise CheckpointError(f"no such notes checkpoint: {path}")
    return _load(str(path.with_suffix(".safetensors").resolve()))


def available_models() -> list[str]:
    return [a for a in ARCHS if checkpoint_path(a).exists()]


# --------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------

_ON_DEVICE: dict[tuple[str, str], torch.nn.Module] = {}


def _model_on(nm: NotesModel, device) -> torch.nn.Module:
    """``nm.model`` on ``device`` (None / the CPU: itself; others: one copy per checkpoint and device)."""
    if device is None or torch.device(device).type == "cpu":
        return nm.model
    key = (nm.name + "|" + str(id(nm.model)), str(torch.device(device)))
    if key not in _ON_DEVICE:
        import copy
        _ON_DEVICE[key] = copy.deepcopy(nm.model).to(device).eval()
    return _ON_DEVICE[key]


@torch.no_grad()
def sample_ids(nm: NotesModel, prompt_ids, ticks: int, temperature: float = 1.0, top_k: int = 0,
               top_p: float = 0.95, seed: int | None = 0, max_tokens: int | None = None, bar_ticks: int = 0,
               offset: int = 0, prompt_ticks: int | None = None, device=None) -> list[int]:
    """Sample token ids after ``prompt_ids`` until the new events last exactly ``ticks``.

    The last event is shortened to land on ``ticks`` (a held note is cut at the bar line).
    A model that reads bar positions is told where each token falls in bars of
    ``bar_ticks`` (0: 4/4 assumed), the prompt's first onset lying ``offset`` ticks after a
    bar line and the prompt lasting ``prompt_ticks`` (default: the sum of its durations).
    ``device``: where the network runs (None: the CPU); the sampling itself stays on the CPU,
    so a seed gives the same music everywhere up to the network's float rounding.
    """
    model = _model_on(nm, device)
    dev = next(model.parameters()).device
    if temperature <= 0:
        raise DataError("temperature must be above 0")
    gen = torch.Generator().manual_seed(int(seed if seed is not None else 0))
    ids = list(int(i) for i in prompt_ids)
    if not ids:
        ids = [nm.vocab.index[T.BOS]]
    want_dur = nm.vocab.kinds[ids[-1]] in ("note", "chord", "rest")
    out, total = [], 0
    L = nm.context
    max_tokens = max_tokens or 4 * ticks + 8
    bar_pos = bool(getattr(nm.model.config, "bar_pos", False))
    if bar_pos:
        toks = nm.vocab.decode(ids)
        pos = [int(p) for p in T.position_ids(toks, bar_ticks, offset)]
        b, base = (int(bar_ticks) if bar_ticks else 48), T.bar_class(int(bar_ticks)) * T.N_POS
        cur = int(offset) + (int(prompt_ticks) if prompt_ticks is not None
                             else sum(int(t[2:]) for t in toks if t.startswith("d:")))
        if prompt_ticks is not None and not want_dur:
            pos[-1] = base + min(cur % b, T.N_POS - 1)
    while total < ticks and len(out) < max_tokens:
        x = torch.tensor([ids[-L:]], dtype=torch.long, device=dev)
        if bar_pos:
            logits = model.last_logits(x, torch.tensor([pos[-L:]], dtype=torch.long, device=dev))[0].float().cpu()
        else:
            logits = model.last_logits(x)[0].float().cpu()
        logits = logits / float(temperature)
        logits = logits + (nm.dur_mask if want_dur else nm.event_mask)
        logits = filter_logits(logits, top_k, top_p)
        probs = torch.softmax(logits, dim=-1)
        tok = int(torch.multinomial(probs, 1, generator=gen))
        if want_dur:
            d = nm.durations[tok]
            if total + d > ticks:  # cut the last event at the end
                rest = ticks - total
                tok = nm.vocab.map_token(T.dur_token(rest))
                d = rest
            total += d
            if bar_pos:
                cur += d
        ids.append(tok)
        out.append(tok)
        if bar_pos:
            pos.append(base + min(cur % b, T.N_POS - 1))
        want_dur = not want_dur
    return out


def prompt_key(prompt: list[str]):
    """The Krumhansl–Kessler key (:class:`composer.music.keys.Key`) of a token prompt, None without notes."""
    return T.tokens_key(prompt)


def model_shift(nm: NotesModel, prompt: list[str]) -> int:
    """Semitones the prompt is moved by before sampling: to C major / A minor by its KK key for
    a model trained there (``tonic: key`` in its card), else 0."""
    return T.common_tonic_shift(prompt) if nm.tonic == "key" else 0


def continue_tokens(prompt: list[str], ticks: int, model: str = "lstm", temperature: float = 1.0, top_k: int = 0,
                    top_p: float = 0.95, seed: int | None = 0, bar_ticks: int = 0, offset: int = 0,
                    device=None) -> list[str]:
    """New tokens (complete events) lasting ``ticks`` after a token prompt of any length.

    A model trained in a common tonic continues the prompt moved to C major / A minor (by the
    prompt's Krumhansl–Kessler key); the continuation is moved back into the prompt's key. A
    model that reads bar positions is told the bar length (``bar_ticks``, 0: 4/4) and where the
    prompt's first onset falls (``offset`` ticks after a bar line)."""
    nm = load(model)
    prompt = list(prompt) or [T.BOS]
    if prompt[0] != T.BOS:
        prompt = [T.BOS] + prompt
    shift = model_shift(nm, prompt)
    ids = nm.vocab.encode(T.transpose_tokens(prompt, shift))
    with _lock:
        new = sample_ids(nm, ids, ticks, temperature, top_k, top_p, seed, bar_ticks=bar_ticks, offset=offset,
                         prompt_ticks=sum(t for _, t in T.events_from_tokens(prompt)), device=device)
    toks = T.transpose_tokens(nm.vocab.decode(new), -shift)
    # a duration that was cut to a length not in the vocabulary maps to the nearest one;
    # put the exact remaining length back so the continuation ends on the bar line
    events = T.events_from_tokens(toks)
    over = sum(t for _, t in events) - ticks
    if over and events:
        p, t = events[-1]
        events[-1] = (p, max(1, t - over))
    return T.tokens_from_events(events, bos=False)


def meter(pm: pretty_midi.PrettyMIDI | None) -> str:
    """The first time signature as text ("3/4"); "4/4" when the file has none."""
    if pm is not None and pm.time_signature_changes:
        ts = pm.time_signature_changes[0]
        return f"{ts.numerator}/{ts.denominator}"
    return "4/4"


def bar_quarters(pm: pretty_midi.PrettyMIDI | None) -> float:
    """Length of one bar in quarter notes from the first time signature (4/4 when none)."""
    if pm is not None and pm.time_signature_changes:
        ts = pm.time_signature_changes[0]
        return ts.numerator * 4.0 / ts.denominator
    return 4.0


def continue_midi(pm: pretty_midi.PrettyMIDI, bars: int = 4, model: str = "lstm", temperature: float = 1.0,
                  top_k: int = 0, top_p: float = 0.95, seed: int | None = 0, program: int | None = None,
                  device=None):
    """Prompt + continuation in one PrettyMIDI, the seam in seconds, and a summary dict.

    The prompt's tracks are kept as they are; the continuation is one more track (the
    program of the prompt's first pitched track unless ``program`` is given) that starts
    where the prompt's last note ends (on the 1/12-quarter grid), completes the bar the
    prompt ends in and adds ``bars`` whole bars (bar lines counted from time 0 in the
    metre of the first time signature), so it always ends on a bar line.
    """
    if not 1 <= int(bars) <= MAX_BARS:
        raise DataError(f"bars to add must be between 1 and {MAX_BARS}")
    notes = T.midi_notes(pm)
    if not notes:
        raise DataError("the prompt has no pitched notes to continue")
    tempo = T.midi_tempo(pm)
    prompt = T.tokens_from_events(T.events_from_notes(notes))
    first = min(round(s * T.TICKS_PER_QUARTER) for s, _, _ in notes) / T.TICKS_PER_QUARTER
    start_q = first + T.tokens_length_quarters(prompt)
    bq = bar_quarters(pm)
    # finish the bar the prompt ends in, then add ``bars`` whole bars (bar lines from time 0)
    end_q = math.ceil(start_q / bq - 1e-6) * bq + bars * bq
    ticks = int(round((end_q - start_q) * T.TICKS_PER_QUARTER))
    bar_ticks = int(round(bq * T.TICKS_PER_QUARTER))
    offset = int(round(first * T.TICKS_PER_QUARTER)) % bar_ticks if bar_ticks else 0
    t0 = time.perf_counter()
    new = continue_tokens(prompt, ticks, model, temperature, top_k, top_p, seed, bar_ticks=bar_ticks, offset=offset,
                          device=device)
    secs = time.perf_counter() - t0
    pitched = [i for i in pm.instruments if not i.is_drum]
    prog = int(program) if program is not None else (pitched[0].program if pitched else 0)
    out = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    out.time_signature_changes = list(pm.time_signature_changes)
    out.key_signature_changes = list(pm.key_signature_changes)
    spq = 60.0 / tempo
    for inst in pm.instruments:
        copy = pretty_midi.Instrument(program=inst.program, is_drum=inst.is_drum, name=inst.name or "Prompt")
        copy.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start, n.end) for n in inst.notes]
        out.instruments.append(copy)
    cont = T.midi_from_tokens(new, tempo=tempo, program=prog, name="Continuation", start_quarters=start_q)
    out.instruments.append(cont.instruments[0])
    nm = load(model)
    key = prompt_key(prompt)
    info = {"model": nm.name, "arch": nm.arch, "prompt_tokens": len(prompt), "new_tokens": len(new),
            "key": key.name if key else None, "meter": meter(pm), "meter_given": bool(pm.time_signature_changes),
            "key_shift": model_shift(nm, prompt), "tonic": nm.tonic,
            "new_notes": len(cont.instruments[0].notes), "bars": int(bars), "bar_quarters": bq,
            "tempo": round(tempo, 3), "end_s": round(end_q * spq, 4),
            "seam_s": round(start_q * spq, 4), "sample_s": round(secs, 3), "seed": seed, "temperature": temperature,
            "top_k": top_k, "top_p": top_p, "tokens": " ".join(new)}
    return out, start_q * spq, info


def prompt_from_text(text: str, tempo: float = 100.0, program: int = 0) -> pretty_midi.PrettyMIDI:
    """Notes typed as names (see :func:`composer.music.tokens.parse_note_names`) -> PrettyMIDI."""
    pm = T.midi_from_tokens(T.parse_note_names(text), tempo=tempo, program=program, name="Prompt")
    pm.time_signature_changes = [pretty_midi.TimeSignature(4, 4, 0.0)]
    return pm


def prompt_from_grid(grid, pitches, step_quarters: float = 0.5, tempo: float = 100.0,
                     program: int = 0) -> pretty_midi.PrettyMIDI:
    """An on-screen grid -> PrettyMIDI. ``grid[row][col]`` truthy = the row's pitch sounds in
    that step (``pitches[row]``); adjacent filled cells of a row make one held note."""
    arr = np.asarray(grid, dtype=bool)
    if arr.ndim != 2 or arr.shape[0] != len(pitches):
        raise DataError("the grid needs one row per pitch")
    if not arr.any():
        raise DataError("fill at least one cell of the grid")
    spq = 60.0 / tempo
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    pm.time_signature_changes = [pretty_midi.TimeSignature(4, 4, 0.0)]
    inst = pretty_midi.Instrument(program=program, name="Prompt")
    for r, p in enumerate(pitches):
        c = 0
        while c < arr.shape[1]:
            if arr[r, c]:
                e = c
                while e + 1 < arr.shape[1] and arr[r, e + 1]:
                    e += 1
                inst.notes.append(pretty_midi.Note(90, int(p), c * step_quarters * spq, (e + 1) * step_quarters * spq))
                c = e + 1
            else:
                c += 1
    pm.instruments.append(inst)
    return pm


def bench(n_tokens: int = 200, models: dict | None = None) -> dict:
    """Batch-1 CPU sampling speed (tokens per second, one torch thread as the app runs it)
    of each shipped model, or of ``models`` ({arch: name or path})."""
    out = {}
    threads = torch.get_num_threads()
    models = models or {a: a for a in available_models()}
    torch.set_num_threads(1)
    try:
        for arch, name in models.items():
            nm = load(name)
            prompt = nm.vocab.encode(T.parse_note_names("G4 E4/0.5 F4/0.5 G4 A4 G4/2"))
            sample_ids(nm, prompt, 48, seed=0)  # warm up
            t0 = time.perf_counter()
            new = sample_ids(nm, prompt, 10 ** 6, seed=0, max_tokens=n_tokens)
            out[f"notes_{arch}_tokens_per_s"] = round(len(new) / (time.perf_counter() - t0), 1)
    finally:
        torch.set_num_threads(threads)
    if out:
        out["notes_tokens_per_s"] = min(out.values())
    return out
