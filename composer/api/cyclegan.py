"""Genre transfer with the shipped CycleGAN: API and ``python -m composer transfer``.

``python -m composer transfer IN.mid --to folk --out OUT.mid`` (or ``OUT.wav``):

1. the input (4/4, up to :data:`MAX_BARS` bars) is merged into one piano roll (drums
   dropped) and cut into 4-bar windows - the phrase grid of the piece;
2. the generator for the target genre turns each window into note probabilities, which are
   blended with the input (``strength``: 0 = the input, 1 = the full transfer);
3. each window is binarised at 0.5 unless that puts its note density (notes per bar)
   outside the range of the real target domain (1st-99th percentile of its training
   windows); then the threshold moves until it is inside - no silent windows, no dense
   clusters (the collapse users of the public code report);
4. with ``keep_rhythm`` the output's notes start exactly where the input's do: per input
   onset-to-onset segment the model picks the pitches, the input keeps the timing;
5. the windows are joined again, cut to the input's length and written with the input's
   tempo map, split into voices (:func:`composer.music.genres.split_voices`: as many as the
   output has, up to four, top voice first), each on its own track and instrument
   (:data:`VOICE_PROGRAMS`, or the caller's).

The classifier shipped with the pair gives the genre probabilities before and after; with
``skip_if_target`` a piece it already puts in the target genre is returned unchanged
(``TransferResult.already``).
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pretty_midi

from composer.paths import checkpoints_dir
from composer.errors import CheckpointError, ComposerError, MidiTooLongError
from composer.music.genres import binary_to_codes, midi_to_roll, note_density, onsets, split_voices, voice_count

CHECKPOINTS = checkpoints_dir()
#: Inputs longer than this many bars are refused (about 8 minutes at 120 bpm).
MAX_BARS = 256
#: General MIDI program of each built-in genre's output.
GENRE_PROGRAMS = {"bach": 19, "folk": 40, "palestrina": 52}  # church organ, violin, choir aahs
#: General MIDI program and name of each output voice, top voice first, by genre: Bach's four
#: parts as a wind quartet (oboe, clarinet, horn, bassoon: four colours the ear can follow),
#: a fiddle tune's melody on the violin over a guitar, Palestrina's parts as choir voices.
VOICE_PROGRAMS = {
    "bach": ((68, "Soprano"), (71, "Alto"), (60, "Tenor"), (70, "Bass")),
    "folk": ((40, "Melody"), (24, "Harmony"), (24, "Harmony 2"), (32, "Bass")),
    "palestrina": ((52, "Cantus"), (52, "Altus"), (53, "Tenor"), (52, "Bassus")),
}
MAX_VOICES = 4
N_BARS, STEPS, PITCHES = 4, 16, 84


class TransferError(ComposerError):
    """A genre transfer that cannot be done as asked (unknown genre, bad option)."""


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------

@dataclass
class TransferModel:
    """Both generators of one trained pair, with what the guards need from its model card."""
    G_AB: object
    G_BA: object
    domains: list[str]
    density_range: dict[str, list[float]]
    card: dict
    path: Path
    classifier: object | None = None
    classifier_classes: list[str] = field(default_factory=list)
    classifier_card: dict = field(default_factory=dict)

    def generator_to(self, genre: str):
        if genre == self.domains[1]:
            return self.G_AB
        if genre == self.domains[0]:
            return self.G_BA
        raise TransferError(f"this model transfers between {self.domains[0]} and {self.domains[1]}, not to '{genre}'")


def shipped_pairs(folder: Path = CHECKPOINTS) -> list[Path]:
    return sorted(Path(folder).glob("cyclegan_*.safetensors"))


def available_genres(folder: Path = CHECKPOINTS) -> list[str]:
    """Target genres the shipped checkpoints can transfer to."""
    out = []
    for p in shipped_pairs(folder):
        for g in p.stem.split("_")[1:]:
            if g not in out:
                out.append(g)
    return out


def find_checkpoint(to: str, folder: Path = CHECKPOINTS, source: str | None = None) -> Path:
    """The shipped pair that can transfer to ``to`` (from ``source`` when given)."""
    pairs = shipped_pairs(folder)
    for p in pairs:
        names = p.stem.split("_")[1:]
        if to in names and (source is None or source in names):
            return p
    have = ", ".join(available_genres(folder)) or "none"
    raise TransferError(f"no shipped genre-transfer model for '{to}' (available targets: {have}); "
                        f"train one with 'python -m composer train cyclegan' and pass --checkpoint")


def _load(path: Path):
    from composer.checkpoints import load_checkpoint
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no such checkpoint: {path}")
    return load_checkpoint(path)


@functools.lru_cache(maxsize=4)
def load_model(path: str | Path | None = None, to: str | None = None) -> TransferModel:
    """Load a CycleGAN checkpoint (shipped or from training) and its pair's classifier."""
    from composer.models.classifier import ClassifierConfig, GenreClassifier
    from composer.models.cyclegan import CycleGANConfig, Generator
    from composer.checkpoints import unprefixed
    path = Path(path) if path else find_checkpoint(to or "folk")
    tensors, card = _load(path)
    if card.get("model") != "cyclegan" or "config" not in card:
        raise CheckpointError(f"{path.name} is not a CycleGAN checkpoint (its model card says "
                              f"'{card.get('model', 'nothing')}')")
    cfg = CycleGANConfig.from_dict(card["config"])
    gens = []
    for k in ("G_AB", "G_BA"):
        g = Generator(cfg)
        try:
            g.load_state_dict({n: v.float() for n, v in unprefixed(tensors, k).items()})
        except RuntimeError as exc:
            raise CheckpointError(f"{path.name} does not fit the CycleGAN generator: {str(exc)[:200]}") from None
        gens.append(g.eval())
    model = TransferModel(G_AB=gens[0], G_BA=gens[1], domains=list(card["domains"]),
                          density_range=card.get("density_range", {}), card=card, path=path)
    clf_path = path.with_name(path.name.replace("cyclegan_", "classifier_", 1))
    if clf_path != path and clf_path.is_file():
        ct, cc = _load(clf_path)
        clf = GenreClassifier(ClassifierConfig.from_dict(cc.get("config", {})))
        clf.load_state_dict({n: v.float() for n, v in (unprefixed(ct, "C") or ct).items()})
        model.classifier, model.classifier_classes, model.classifier_card = clf.eval(), list(cc["classes"]), cc
    return model


# ---------------------------------------------------------------------------------------------
# Decoding with the guards
# ---------------------------------------------------------------------------------------------

def _rhythm_segments(src: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) steps from each input onset step to the next, cut where the input falls silent."""
    flat_s = src.reshape(-1, src.shape[-1]).astype(bool)
    on_steps = np.flatnonzero(onsets(src).reshape(-1, src.shape[-1]).any(axis=1))
    n, segs = flat_s.shape[0], []
    for i, s in enumerate(on_steps):
        e = on_steps[i + 1] if i + 1 < len(on_steps) else n
        sounding = flat_s[s:e].any(axis=1)
        if not sounding.all():
            e = s + max(1, int(np.argmin(sounding)))
        segs.append((int(s), int(e)))
    return segs


def keep_rhythm_decode(p: np.ndarray, src: np.ndarray, threshold: float) -> np.ndarray:
    """Binary window whose note starts and ends are the input's, pitches the model's.

    ``p`` are the blended probabilities ``(bars, steps, pitches)`` and ``src`` the input's
    binary window. Each segment from one input onset step to the next (cut where the
    input falls silent) sounds the pitches whose mean probability over it is above
    ``threshold``.
    """
    return _KeepRhythm(p, src)(threshold)


class _KeepRhythm:
    def __init__(self, p: np.ndarray, src: np.ndarray):
        self.shape = src.shape
        self.flat_p = p.reshape(-1, p.shape[-1])
        self.segs = _rhythm_segments(src)
        self.means = (np.stack([self.flat_p[s:e].mean(axis=0) for s, e in self.segs]) if self.segs
                      else np.zeros((0, p.shape[-1])))

    def __call__(self, threshold: float) -> np.ndarray:
        out = np.zeros(self.flat_p.shape, dtype=bool)
        for (s, e), m in zip(self.segs, self.means):
            out[s:e, m > threshold] = True
        return out.reshape(self.shape)


def guarded_window(p: np.ndarray, src: np.ndarray, density_range, keep_rhythm: bool = False,
                   threshold: float = 0.5) -> tuple[np.ndarray, float]:
    """Binarise one window; move the threshold when its density leaves ``density_range``.

    Returns the binary window and the threshold used. A window whose input is silent stays
    silent. Otherwise the threshold moves, through the window's own probability values,
    to the nearest one whose note density (notes per bar) is inside the range: down when
    the window is too sparse (or silent), up when it is too dense.
    """
    if keep_rhythm:
        decode = _KeepRhythm(p, src)
        stat = decode.means
    else:
        decode, stat = (lambda t: p > t), p
    if not src.any():                              # a rest stays a rest: the phrase grid is kept
        return np.zeros(src.shape, dtype=bool), threshold
    out = decode(threshold)
    if density_range is None:
        return out, threshold
    lo, hi = density_range
    dens = float(note_density(out))
    if lo <= dens <= hi and out.any():
        return out, threshold
    vals = np.unique(stat)[::-1]                   # descending: index i turns on the i+1 largest values
    vals = vals[vals > 0]
    if len(vals) == 0:
        return out, threshold

    def t_at(i):
        return float(vals[i]) - 1e-7

    def d_at(i):
        return float(note_density(decode(t_at(i))))

    if dens < lo or not out.any():                 # too sparse: smallest i with density >= lo, then up
        a, b = 0, len(vals) - 1
        while a < b:
            mid = (a + b) // 2
            if d_at(mid) >= lo:
                b = mid
            else:
                a = mid + 1
        order = list(range(a, min(len(vals), a + 64))) + list(range(a - 1, max(-1, a - 64), -1))
    else:                                          # too dense: largest i with density <= hi, then down
        a, b = 0, len(vals) - 1
        while a < b:
            mid = (a + b + 1) // 2
            if d_at(mid) <= hi:
                a = mid
            else:
                b = mid - 1
        order = list(range(a, max(-1, a - 64), -1)) + list(range(a + 1, min(len(vals), a + 64)))
    best, best_miss = None, None
    for i in order:
        d = d_at(i)
        miss = 0.0 if lo <= d <= hi else min(abs(d - lo), abs(d - hi))
        if best_miss is None or miss < best_miss:
            best, best_miss = i, miss
        if miss == 0.0:
            break
    t = t_at(best)
    return decode(t), t


# ---------------------------------------------------------------------------------------------
# The transfer
# ---------------------------------------------------------------------------------------------

@dataclass
class TransferResult:
    pm: pretty_midi.PrettyMIDI
    codes_in: np.ndarray          # (bars, 16, 84) input codes
    codes_out: np.ndarray         # (bars, 16, 84) output codes
    target: str
    source: str
    density_in: list[float]       # notes per bar of each 4-bar window
    density_out: list[float]
    density_range: list[float] | None
    thresholds: list[float]
    probs_before: dict[str, float] | None = None
    probs_after: dict[str, float] | None = None
    seconds: float = 0.0
    already: bool = False         # the classifier put the input in the target genre: nothing transferred
    voices: list[str] = field(default_factory=list)   # "Soprano: Oboe", ... one per output track

    def summary(self) -> str:
        if self.already:
            return (f"the classifier already hears {self.target} in this piece "
                    f"(P({self.target}) {self.probs_before[self.target]:.2f}); nothing was transferred")
        lo, hi = self.density_range or (float("nan"), float("nan"))
        moved = sum(1 for t in self.thresholds if abs(t - 0.5) > 1e-6)
        s = (f"{self.source} -> {self.target}: {self.codes_out.shape[0]} bars in {len(self.density_out)} windows; "
             f"notes per bar {np.mean(self.density_in):.1f} -> {np.mean(self.density_out):.1f} "
             f"(target range {lo:.1f}-{hi:.1f}); density guard adjusted {moved} window(s)")
        if self.probs_after:
            s += (f"; P({self.target}) {self.probs_before[self.target]:.2f} -> {self.probs_after[self.target]:.2f}")
        if self.voices:
            s += f"; voices: {', '.join(self.voices)}"
        return s


_ON_DEVICE: dict[tuple[int, str], object] = {}


def _on(module, device):
    """``module`` on ``device`` (None / the CPU: itself; others: one copy per module and device)."""
    import torch
    if device is None or torch.device(device).type == "cpu":
        return module
    key = (id(module), str(torch.device(device)))
    if key not in _ON_DEVICE:
        import copy
        _ON_DEVICE[key] = copy.deepcopy(module).to(device).eval()
    return _ON_DEVICE[key]


def _classify(model: TransferModel, binary_windows: np.ndarray, device=None) -> dict[str, float] | None:
    if model.classifier is None:
        return None
    import torch
    from composer.models.cyclegan import to_input
    keep = binary_windows.reshape(len(binary_windows), -1).any(axis=1)
    if not keep.any():
        return None
    clf = _on(model.classifier, device)
    with torch.no_grad():
        x = to_input(binary_windows[keep]).to(next(clf.parameters()).device)
        p = torch.softmax(clf(x), 1).mean(0).cpu().numpy()
    return {c: float(v) for c, v in zip(model.classifier_classes, p)}


def transfer_windows(model: TransferModel, binary: np.ndarray, to: str, strength: float = 1.0,
                     keep_rhythm: bool = False, guard: bool = True, device=None):
    """Transfer binary windows ``(N, 4, 16, 84)``; returns (binary out, probabilities, thresholds).

    ``device``: where the generator runs (None: the CPU).
    """
    import torch
    from composer.models.cyclegan import from_output, to_input
    G = _on(model.generator_to(to), device)
    with torch.no_grad():
        p = from_output(G(to_input(binary).to(next(G.parameters()).device)).cpu()).numpy()
    p = strength * p + (1.0 - strength) * binary.astype(np.float32)
    rng = model.density_range.get(to) if guard else None
    outs, ths = [], []
    for k in range(len(binary)):
        b, t = guarded_window(p[k], binary[k], rng, keep_rhythm=keep_rhythm)
        outs.append(b)
        ths.append(t)
    return np.stack(outs), p, ths


def _steps_of(pm: pretty_midi.PrettyMIDI) -> int:
    ticks_per_step = pm.resolution * 4 / STEPS
    return max(1, int(np.ceil(pm.time_to_tick(pm.get_end_time()) / ticks_per_step - 1e-6)))


def codes_to_midi_like(codes, like: pretty_midi.PrettyMIDI, program: int | None = None,
                       end_time: float | None = None, velocity: int = 90,
                       voices: list[tuple[int, str]] | None = None) -> pretty_midi.PrettyMIDI:
    """PrettyMIDI of ``(bars, 16, 84)`` codes on ``like``'s tempo map.

    ``codes`` is one roll (one track, ``program``) or a list of rolls, one track each, with
    ``voices`` giving each track's ``(program, name)``.
    """
    from composer.music.pianoroll import PITCH_OFFSET, notes_from_codes
    rolls = codes if isinstance(codes, (list, tuple)) else [codes]
    if voices is None:
        voices = [(int(program or 0), pretty_midi.program_to_instrument_name(int(program or 0)))] * len(rolls)
    out = pretty_midi.PrettyMIDI(resolution=like.resolution)
    out._tick_scales = list(like._tick_scales)     # the input's tempo map, written on save
    out._update_tick_to_time(max(1, like.time_to_tick(like.get_end_time()) + like.resolution * 8))
    out.time_signature_changes = [pretty_midi.TimeSignature(4, 4, 0.0)]
    ticks_per_step = like.resolution * 4 / STEPS
    for roll, (prog, name) in zip(rolls, voices):
        inst = pretty_midi.Instrument(program=int(prog), name=name)
        flat = np.asarray(roll).reshape(-1, roll.shape[-1])
        for p, s, e in notes_from_codes(flat):
            inst.notes.append(pretty_midi.Note(velocity=velocity, pitch=p + PITCH_OFFSET,
                                               start=out.tick_to_time(int(round(s * ticks_per_step))),
                                               end=out.tick_to_time(int(round(e * ticks_per_step)))))
        inst.notes.sort(key=lambda n: (n.start, n.pitch))
        if end_time is not None:  # keep the input's length even when it ends in a rest
            inst.control_changes.append(pretty_midi.ControlChange(64, 0, float(end_time)))
        out.instruments.append(inst)
    return out


def output_voices(to: str, n: int, programs=None, program: int | None = None) -> list[tuple[int, str]]:
    """``(program, name)`` of each of ``n`` output voices, top first.

    ``programs`` (one per voice, None = the genre's) wins over ``program`` (all voices),
    which wins over :data:`VOICE_PROGRAMS`.
    """
    table = VOICE_PROGRAMS.get(to)
    if table is None:
        table = tuple((GENRE_PROGRAMS.get(to, 0), f"Voice {k + 1}") for k in range(MAX_VOICES))
    # which of the four roles n voices take: the top, the bottom, then the inner ones
    roles = {1: [0], 2: [0, 3], 3: [0, 1, 3], 4: [0, 1, 2, 3]}[n]
    out = []
    for k, r in enumerate(roles):
        prog, name = table[r]
        if program is not None:
            prog = program
        if programs is not None and k < len(programs) and programs[k] is not None:
            prog = programs[k]
        if not 0 <= int(prog) <= 127:
            raise TransferError(f"instrument programs must be 0-127, got {prog}")
        out.append((int(prog), name))
    return out


def transfer_pm(pm: pretty_midi.PrettyMIDI, to: str, strength: float = 1.0, keep_rhythm: bool = False,
                checkpoint: str | Path | None = None, program: int | None = None, guard: bool = True,
                device=None, programs: list[int | None] | None = None,
                skip_if_target: bool = False) -> TransferResult:
    """Transfer a PrettyMIDI to genre ``to``; the result keeps its tempo map and length.

    ``program``: one General MIDI program for every output voice; ``programs``: one per
    voice, top first (None entries: the genre's, :data:`VOICE_PROGRAMS`).
    ``skip_if_target``: when the classifier already puts the piece in ``to``, return it
    unchanged with ``already=True``. ``device``: where the networks run (None: the CPU).
    """
    t0 = time.time()
    if not 0.0 <= float(strength) <= 1.0:
        raise TransferError(f"strength must be between 0 and 1, got {strength}")
    model = load_model(str(checkpoint) if checkpoint else None, to=None if checkpoint else to)
    if to not in model.domains:
        raise TransferError(f"this model transfers between {model.domains[0]} and {model.domains[1]}, not to '{to}'")
    source = model.domains[0] if to == model.domains[1] else model.domains[1]
    try:
        roll = midi_to_roll(pm)
    except ComposerError as exc:
        raise TransferError(f"cannot transfer this piece: {exc}") from None
    n_bars = roll.shape[0]
    if n_bars > MAX_BARS:
        raise MidiTooLongError(f"the piece is {n_bars} bars long; genre transfer takes up to {MAX_BARS} bars")
    n_steps = min(_steps_of(pm), n_bars * STEPS)
    n_win = int(np.ceil(n_bars / N_BARS))
    padded = np.zeros((n_win * N_BARS, STEPS, PITCHES), dtype=np.uint8)
    padded[:n_bars] = roll
    binary = (padded > 0).reshape(n_win, N_BARS, STEPS, PITCHES)
    rng = model.density_range.get(to)
    probs_before = _classify(model, binary, device)
    if skip_if_target and probs_before and max(probs_before, key=probs_before.get) == to:
        return TransferResult(pm=pm, codes_in=roll, codes_out=roll, target=to, source=source,
                              density_in=[float(v) for v in note_density(binary)],
                              density_out=[float(v) for v in note_density(binary)],
                              density_range=list(rng) if rng else None, thresholds=[],
                              probs_before=probs_before, probs_after=probs_before,
                              seconds=time.time() - t0, already=True)
    out, _, ths = transfer_windows(model, binary, to, strength, keep_rhythm, guard, device=device)
    flat = out.reshape(-1, PITCHES)
    flat[n_steps:] = False                       # nothing past the input's end
    codes_out = binary_to_codes(flat.reshape(-1, STEPS, PITCHES))[:n_bars]
    if program is not None and not 0 <= int(program) <= 127:
        raise TransferError(f"the program must be 0-127, got {program}")
    n_voices = voice_count(codes_out > 0, MAX_VOICES)
    voices = output_voices(to, n_voices, programs, program)
    parts = split_voices(codes_out.reshape(-1, PITCHES), n_voices)
    pm_out = codes_to_midi_like([v.reshape(codes_out.shape) for v in parts], pm, end_time=pm.get_end_time(),
                                voices=voices)
    res = TransferResult(pm=pm_out, codes_in=roll, codes_out=codes_out, target=to, source=source,
                         density_in=[float(v) for v in note_density(binary)],
                         density_out=[float(v) for v in note_density(out)],
                         density_range=list(rng) if rng else None, thresholds=ths,
                         probs_before=probs_before, probs_after=_classify(model, out, device),
                         voices=[f"{name}: {pretty_midi.program_to_instrument_name(p)}" for p, name in voices])
    res.seconds = time.time() - t0
    return res


def transfer_file(path: str | Path, to: str, **kwargs) -> TransferResult:
    from composer.music.midi import load_midi
    return transfer_pm(load_midi(path), to, **kwargs)


# ---------------------------------------------------------------------------------------------
# Bench
# ---------------------------------------------------------------------------------------------

def bench(to: str | None = None, repeats: int = 5) -> dict:
    """``transfer_ms``: one 4-bar window, batch 1, on the CPU (generator + guard)."""
    import torch
    genres = available_genres()
    if not genres:
        return {"transfer_ms": None, "transfer_note": "no shipped CycleGAN checkpoint"}
    to = to or genres[-1]
    model = load_model(None, to=to)
    rng = np.random.default_rng(0)
    x = np.zeros((1, N_BARS, STEPS, PITCHES), dtype=bool)
    x[0, :, ::4, rng.integers(30, 60, size=4)] = True
    transfer_windows(model, x, to)  # warm up
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            t = time.perf_counter()
            transfer_windows(model, x, to)
            times.append((time.perf_counter() - t) * 1000)
    return {"transfer_ms": round(float(np.median(times)), 2), "transfer_pair": "_".join(model.domains),
            "transfer_threads": torch.get_num_threads()}

