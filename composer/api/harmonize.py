"""Harmonize a melody: find the MuseGAN latents whose soprano sings it; the other voices are the harmony.

    from composer.api.harmonize import harmonize, melody_from_file
    res = harmonize(melody_from_file("tune.abc"))   # or .mid, or melody_from_text("E4 D4/0.5 ...")
    res.midi().write("out.mid")                      # soprano = the melody, exactly
    res.soprano_match                                # the generator's own soprano vs the melody

How (an inversion through the frozen generator; nothing is trained):

* The piece is the Compose engine's (composer.api.compose): the melody's bars are cut into the
  model's 4-bar phrases; *anchor* latents (phrases 0, 3, 6, ... and the last) are slerped in
  between, so neighbouring phrases share their latents smoothly (continuity), and each bar
  adds a chords offset and each cell a melody offset in the generator's grid. Those are
  exactly a :class:`~composer.api.compose.ComposeState`'s fields, so the result is an
  ordinary Compose piece: sliders, re-rolls and locks work on it.
* Adam moves all of them at once for ``restarts`` random starts in one batch. The loss is the
  negative log-likelihood of the melody's path under the soprano decoder's own lattice
  (:func:`composer.music.pianoroll.decode_monophonic` reads the output as levels -1/0/1:
  the scores of rest / onset / hold at every pitch and step); its softmax over paths
  becomes the Viterbi decode as it sharpens, so lowering it makes the decoder pick the
  melody. Only the soprano's bar generator runs inside the loop.
* A prior keeps the latents where the generator was trained: a Gaussian penalty on the
  anchors (drawn ``N(0, 1)`` in training) and clipping to ``[-clip, clip]``; the grid offsets
  pay their squared size in units of the grid's own spread, and a penalty keeps the offset
  slices non-negative (they sit after a ReLU in the generator).
* The best restart (most melody steps reproduced, then lowest loss) wins. The lower voices
  the generator writes for it are the harmonization; writing the melody into the soprano is
  a separate, labelled step (``soprano_match`` is measured before it).

Melodies outside the soprano's range (MIDI 60-81) are moved into it by octaves (or the
smallest shift) and the result moved back. :func:`invert_piece` is the same inversion for a
four-voice piece ("drop your riff"): its closest latents and how much of it they reproduce.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pretty_midi
import torch

from composer.api.compose import (Composer, ComposeState, _anchor_phrases, cached_composer)
from composer.errors import ComposerError
from composer.music import melody as M
from composer.music.metrics import VOICE_RANGES, voice_lines, voice_note_f1
from composer.music.pianoroll import HOLD, ONSET, MultiTrackRoll

log = logging.getLogger(__name__)

MAX_BARS = M.MAX_BARS
SOPRANO_RANGE = (VOICE_RANGES[0][1], VOICE_RANGES[0][2])


# ---------------------------------------------------------------------------------------------
# Melodies in
# ---------------------------------------------------------------------------------------------

def melody_from_midi(pm: pretty_midi.PrettyMIDI, source: str = "MIDI file") -> M.Melody:
    """The highest line of a MIDI file (4/4 only)."""
    return M.from_pretty_midi(pm, source=source)


def melody_from_abc(text: str) -> M.Melody:
    """The first tune of ABC text (read in a sandbox worker; 4/4 or C| only)."""
    return M.from_abc(text)


def melody_from_text(text: str, tempo: float = 90.0) -> M.Melody:
    """Notes typed as in the Continue tab: ``E4 D4/0.5 C4/0.5 D4 E4 E4 E4/2`` (lengths in quarters)."""
    return M.from_text(text, tempo)


def melody_from_file(path: str | Path) -> M.Melody:
    """A ``.mid``/``.midi`` file's highest line or an ``.abc`` file's first tune."""
    from composer.music.midi import load_midi
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".mid", ".midi"):
        return melody_from_midi(load_midi(path), source=f"MIDI file '{path.name}'")
    if suffix == ".abc":
        if not path.is_file():
            raise ComposerError(f"no such file: {path}")
        return melody_from_abc(path.read_text(encoding="utf-8", errors="replace"))
    raise ComposerError(f"'{path.name}': give a .mid, .midi or .abc file")


def melody_from_input(path: str | Path | None = None, text: str | None = None) -> M.Melody:
    """A melody from an uploaded file, or from text: ABC when it has an ``X:`` or ``K:`` header
    line, else notes typed as in the Continue tab."""
    if path:
        return melody_from_file(path)
    if text and text.strip():
        if any(line.strip()[:2] in ("X:", "K:") for line in text.splitlines()):
            return melody_from_abc(text)
        return melody_from_text(text)
    raise ComposerError("upload a melody (.mid or .abc), type its notes (e.g. E4 D4/0.5 C4/0.5 D4), or paste ABC")


# ---------------------------------------------------------------------------------------------
# The inversion
# ---------------------------------------------------------------------------------------------

@dataclass
class Settings:
    """Knobs of the search (defaults: what ``eval harmonize`` and the bench measure)."""

    restarts: int = 3
    steps: int = 300
    lr: float = 0.3
    prior: float = 1e-3          # Gaussian prior on the fitted voices' own anchors, per dimension
    offset_prior: float = 1e-3   # squared size of their grid offsets, in units of the grid's spread
    shared_prior: float = 1e-3   # the same two for what every voice hears (chords, style, chords offsets)
    clip: float = 3.0            # anchors stay inside [-clip, clip]
    sharpness: float = 3.0       # inverse temperature of the lattice's scores
    loss: str = "step"           # "step": per-step cross-entropy; "path": the whole lattice (slower)
    decay: float = 1.0           # the learning rate falls to lr * decay by the last step (cosine); 1: constant
    polish: int = 0              # then this many more steps on the best restart alone
    seed: int = 0


def _torch_slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    cos = ((a * b).sum(-1, keepdim=True) / (na * nb).clamp_min(1e-12)).clamp(-1 + 1e-6, 1 - 1e-6)
    omega = torch.arccos(cos)
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / so


def _single_track(g, track: int):
    """A one-track copy of the generator: track ``track``'s melody net and bar generator, the
    shared chords net. Its output for latents ``(chords, style, melody[:, track:track+1],
    groove[:, track:track+1])`` is the full generator's track ``track``, at a quarter of the cost."""
    from composer.models.musegan import Generator
    T = g.cfg.n_tracks
    cfg = copy.copy(g.cfg)
    cfg.n_tracks = 1
    one = Generator(cfg)
    sd = {}
    for k, v in g.state_dict().items():
        if v.dim() == 0 or k.startswith("chords_net"):
            sd[k] = v
        elif k.startswith("melody_nets"):  # grouped convs and norms: group t is a block of channels
            n = v.shape[0] // T
            sd[k] = v[track * n:(track + 1) * n]
        else:  # per-track bar generators: tracks are the leading axis
            sd[k] = v[track:track + 1] if v.dim() >= 1 and v.shape[0] == T else v
    one.load_state_dict(sd)
    one.eval()
    for p in one.parameters():
        p.requires_grad_(False)
    return one


def decode_logits(g, grid: torch.Tensor, octaves: tuple[int, int] | None = None) -> torch.Tensor:
    """:meth:`Generator.decode` without its last tanh: ``(batch, tracks, bars, steps, pitches)``.

    The loss reads these pre-activations: a cell the tanh has saturated at -1 (most of them,
    and every wrong note the melody must lose) still passes a gradient. ``octaves=(lo, hi)``
    builds only octaves ``lo..hi-1`` of the pitch axis (pitch index ``12 lo`` to ``12 hi - 1``):
    the octave layer is most of the bar generator's work, and the soprano lives in two octaves.
    """
    cfg = g.cfg
    B, T, N, D = grid.shape
    x = g.ups[:-2](g.fc(grid.transpose(0, 1).reshape(T, B * N, D)))
    up, last = g.ups[-2], g.ups[-1]
    lo, hi = octaves or (0, up.k)
    G, rows, _ = x.shape
    f = up.fout
    x = torch.baddbmm(up.lin.bias[..., lo * f:hi * f], x, up.lin.weight[..., lo * f:hi * f])
    x = up.act(up.norm(x.view(G, rows * (hi - lo), f)))
    x = last.lin(x).view(G, rows * (hi - lo) * last.k, last.fout)
    return x.view(T, B, N, cfg.steps_per_bar, (hi - lo) * 12).transpose(0, 1)


def path_nll(x: torch.Tensor, target: torch.Tensor, sharpness: float) -> torch.Tensor:
    """Negative log-likelihood of target code paths under the monophonic decoder's lattice.

    ``x`` ``(rows, steps, pitches)`` model output in [-1, 1]; ``target`` the same shape, codes.
    States per step: rest (score 0), onset at p (``4 x_p``), hold at p (``2 x_p + 1``, only
    after an onset or hold at p, or on a bar's first step: a tie), as in
    :func:`composer.music.pianoroll.decode_monophonic` (its costs, negated). Returns ``(rows,)``.
    """
    R, S, P = x.shape
    on_s, hold_s = sharpness * 4 * x, sharpness * (2 * x + 1)
    tgt = target.long()
    # the target path's score
    is_on, is_hold = (tgt == ONSET), (tgt == HOLD)
    path = (on_s * is_on).sum((1, 2)) + (hold_s * is_hold).sum((1, 2))
    # all paths (forward algorithm in log space)
    zero = x.new_zeros(R, 1)
    rest, onset, hold = zero, on_s[:, 0], hold_s[:, 0]
    for s in range(1, S):
        every = torch.logsumexp(torch.cat([rest, onset, hold], 1), 1, keepdim=True)
        hold = torch.logaddexp(onset, hold) + hold_s[:, s]
        onset = every + on_s[:, s]
        rest = every
    total = torch.logsumexp(torch.cat([rest, onset, hold], 1), 1)
    return total - path


def step_nll(x: torch.Tensor, target: torch.Tensor, sharpness: float) -> torch.Tensor:
    """The same lattice's scores read one step at a time: cross-entropy of the target state (rest,
    onset at p, hold at p) against every state at that step. Cheaper than :func:`path_nll`
    (no recursion) and stricter (it also counts holds the path could not reach). ``(rows,)``."""
    R, S, P = x.shape
    scores = torch.cat([x.new_zeros(R, S, 1), sharpness * 4 * x, sharpness * (2 * x + 1)], -1)  # (R, S, 1+2P)
    tgt = target.long()
    pitch = tgt.argmax(-1)
    code = tgt.amax(-1)
    state = torch.where(code == ONSET, 1 + pitch, torch.where(code == HOLD, 1 + P + pitch, 0))
    return torch.nn.functional.cross_entropy(scores.reshape(R * S, -1), state.reshape(-1),
                                             reduction="none").view(R, S).sum(1)


@dataclass
class _Problem:
    comp: Composer
    n_bars: int
    target: np.ndarray      # (tracks fitted, bars, steps, pitches) codes the generator must write
    tracks: tuple[int, ...]


def _phrase_latents(anchors: dict, n_phrases: int) -> dict:
    """Per-phrase latents ``(R, phrases, ...)`` from anchors ``(R, A, ...)``: slerp between anchors,
    as :meth:`Composer.phrase_latents` does."""
    idx = _anchor_phrases(n_phrases)
    per = {k: [] for k in anchors}
    for p in range(n_phrases):
        k = max(i for i, a in enumerate(idx) if a <= p)
        for name, v in anchors.items():
            if idx[k] == p or k + 1 >= len(idx):
                per[name].append(v[:, k])
            else:
                per[name].append(_torch_slerp(v[:, k], v[:, k + 1], (p - idx[k]) / (idx[k + 1] - idx[k])))
    return {k: torch.stack(v, 1) for k, v in per.items()}


def _spread(comp: Composer) -> tuple[float, float]:
    """Per-dimension spread of the grid's chords and melody slices over random latents (the offsets' unit)."""
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        z, T = comp.cfg.z_dim, comp.cfg.n_tracks
        grid = comp.g.expand_latents(torch.randn(256, z, generator=gen), torch.randn(256, z, generator=gen),
                                     torch.randn(256, T, z, generator=gen), torch.randn(256, T, z, generator=gen))
        return float(grid[..., :z].std()), float(grid[..., 2 * z:3 * z].std())


def _search(prob: _Problem, s: Settings) -> dict:
    """Adam on ``restarts`` candidate states at once; returns the best candidate's arrays and figures.

    Only the fitted tracks' latents (and the shared chords and style) can change their output;
    the other tracks keep the restart's random draw (their melody and groove do not reach the
    fitted tracks at all).
    """
    comp, cfg = prob.comp, prob.comp.cfg
    if cfg.output != "tanh":
        raise ComposerError("harmonize needs a MuseGAN with the tanh output layer (the shipped one); "
                            f"this checkpoint's is {cfg.output!r}")
    z, T, N, B, R = cfg.z_dim, cfg.n_tracks, cfg.n_bars, prob.n_bars, max(1, int(s.restarts))
    S, P = cfg.steps_per_bar, cfg.n_pitches
    F, fit_tracks = len(prob.tracks), list(prob.tracks)
    n_phr = -(-B // N)
    A = len(_anchor_phrases(n_phr))
    gen = torch.Generator().manual_seed(int(s.seed))
    draw = {"chords": torch.randn(R, A, z, generator=gen), "style": torch.randn(R, A, z, generator=gen),
            "melody": torch.randn(R, A, T, z, generator=gen), "groove": torch.randn(R, A, T, z, generator=gen)}
    draw = {k: v.clamp(-s.clip, s.clip) for k, v in draw.items()}
    var = {"chords": draw["chords"].clone(), "style": draw["style"].clone(),
           "melody": draw["melody"][:, :, fit_tracks].clone(), "groove": draw["groove"][:, :, fit_tracks].clone(),
           "chords_off": torch.zeros(R, B, z), "melody_off": torch.zeros(R, F, B, z)}
    latent_keys = ("chords", "style", "melody", "groove")
    gen_fit = comp.g if F == T else _single_track(comp.g, fit_tracks[0])
    if F not in (1, T):
        raise ComposerError("fit one track or all of them")
    for p in comp.g.parameters():
        p.requires_grad_(False)
    # the octaves the loss reads: those of the fitted notes, and one more on each side
    sounding = np.flatnonzero((prob.target > 0).any(axis=(0, 1, 2)))
    window = None
    if len(sounding) and F == 1:
        window = (max(0, int(sounding.min()) // 12 - 1), min(P // 12, int(sounding.max()) // 12 + 2))
    lo_p, hi_p = (12 * window[0], 12 * window[1]) if window else (0, P)
    target = torch.from_numpy(prob.target[..., lo_p:hi_p].astype(np.int64))
    n_sounding = max(1, int((prob.target > 0).any(-1).sum()))
    sc, sm = _spread(comp)
    n_dims = sum(var[k][0].numel() for k in latent_keys)
    nll = path_nll if s.loss == "path" else step_nll

    def losses(var, read_all: bool = False):
        """(loss per candidate, logits); ``read_all``: the logits of every pitch and no fit term."""
        Rv = var["chords"].shape[0]
        lat = {k: v.reshape(Rv * n_phr, *v.shape[2:])
               for k, v in _phrase_latents({k: var[k] for k in latent_keys}, n_phr).items()}
        grid = gen_fit.expand_latents(lat["chords"], lat["style"], lat["melody"], lat["groove"])
        grid = grid.view(Rv, n_phr, F, N, 4 * z).permute(0, 2, 1, 3, 4).reshape(Rv, F, n_phr * N, 4 * z)[:, :, :B]
        add = torch.zeros_like(grid)
        add[..., :z] = var["chords_off"][:, None]
        add[..., 2 * z:3 * z] = var["melody_off"]
        grid = grid + add
        if not read_all:
            x = decode_logits(gen_fit, grid, window)                      # (R, F, B, S, P'), before tanh
            rows = target.unsqueeze(0).expand(Rv, -1, -1, -1, -1).reshape(Rv * F * B, S, -1)
            fit = nll(x.reshape(Rv * F * B, S, -1), rows, s.sharpness).view(Rv, -1).sum(1) / n_sounding
        else:
            x, fit = decode_logits(gen_fit, grid), 0.0
        # what every voice hears (chords, style) keeps closer to the trained range than what only
        # the fitted voices hear, so the other voices stay where the generator writes good music
        own = (sum((var[k] ** 2).flatten(1).sum(1) for k in ("melody", "groove")) / n_dims * s.prior
               + ((var["melody_off"] / sm) ** 2).flatten(1).mean(1) * s.offset_prior)
        shared = (sum((var[k] ** 2).flatten(1).sum(1) for k in ("chords", "style")) / n_dims
                  + ((var["chords_off"] / sc) ** 2).flatten(1).mean(1)) * s.shared_prior
        neg = ((torch.relu(-grid[..., :z]) / sc) ** 2).flatten(1).mean(1) + \
            ((torch.relu(-grid[..., 2 * z:3 * z]) / sm) ** 2).flatten(1).mean(1)
        return fit + own + shared + neg, x

    def run(var, n_steps: int, lr: float):
        for v in var.values():
            v.requires_grad_(True)
        opt = torch.optim.Adam(list(var.values()), lr=lr)
        for i in range(n_steps):
            if s.decay != 1.0:
                for grp in opt.param_groups:
                    grp["lr"] = lr * (s.decay + (1 - s.decay) * 0.5 * (1 + np.cos(np.pi * i / max(1, n_steps))))
            total, _ = losses(var)
            opt.zero_grad(set_to_none=True)
            total.sum().backward()
            opt.step()
            with torch.no_grad():
                for k in latent_keys:
                    var[k].clamp_(-s.clip, s.clip)
        for v in var.values():
            v.requires_grad_(False)

    def choose(var):
        """Codes of every candidate (all pitches), their match and the best one's index."""
        from composer.music.pianoroll import float_to_codes
        with torch.no_grad():
            total, _ = losses(var)
            _, x = losses(var, read_all=True)
        codes = float_to_codes(torch.tanh(x).numpy(), monophonic=True)   # (R, F, B, S, P)
        match = np.array([step_match(codes[r], prob.target) for r in range(codes.shape[0])])
        return match, total, int(np.lexsort((total.numpy(), -match))[0])

    run(var, int(s.steps), s.lr)
    match, total, best = choose(var)
    restart_match = match.round(4).tolist()
    if s.polish and match[best] < 1.0:  # the best restart alone, for a few more steps
        one = {k: v[best:best + 1].clone() for k, v in var.items()}
        run(one, int(s.polish), s.lr * s.decay)
        m1, t1, _ = choose(one)
        if (m1[0], -float(t1[0])) > (match[best], -float(total[best])):
            var = {k: v.clone() for k, v in var.items()}
            for k in var:
                var[k][best] = one[k][0]
            match[best], total[best] = m1[0], t1[0]
    anchors = {k: draw[k][best].numpy().copy() for k in draw}
    for k in latent_keys:
        if k in ("melody", "groove"):
            anchors[k][:, fit_tracks] = var[k][best].numpy()
        else:
            anchors[k] = var[k][best].numpy().copy()
    mel_off = np.zeros((T, B, z), np.float32)
    mel_off[fit_tracks] = var["melody_off"][best].numpy()
    return {"anchors": anchors, "chords_offset": var["chords_off"][best].numpy().copy(), "melody_offset": mel_off,
            "match": float(match[best]), "restart_match": restart_match, "loss": float(total[best])}


def step_match(codes: np.ndarray, target: np.ndarray) -> float:
    """Share of the target's sounding steps where ``codes`` sound the same pitch with the same
    onset-or-not (both ``(tracks, bars, steps, pitches)``; every track's steps pooled)."""
    pc, oc = voice_lines(np.asarray(codes)[None])
    pt, ot = voice_lines(np.asarray(target)[None])
    sounding = pt >= 0
    if not sounding.any():
        return 0.0
    return float(((pc == pt) & (oc == ot))[sounding].mean())


def _state_from(comp: Composer, found: dict, n_bars: int, tempo: float, seed: int) -> ComposeState:
    st = comp.new_state(seed=seed, n_bars=n_bars, tempo=tempo)
    st.anchors = [{k: found["anchors"][k][a].astype(np.float32) for k in found["anchors"]}
                  for a in range(len(st.anchors))]
    st.chords_offset = found["chords_offset"].astype(np.float32)
    st.melody_offset = found["melody_offset"].astype(np.float32)
    return st


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------

@dataclass
class Harmonization:
    """A harmonized melody.

    ``state`` is the Compose piece (soprano cells locked to the melody, ``transpose`` moving
    it back to the melody's key); ``model_codes`` the generator's own four voices in the
    soprano's range, before the melody is written in; ``codes`` the delivered piece, in the
    melody's key. ``soprano_match``: share of the melody's sounding sixteenths the
    generator's own soprano sings with the same pitch and onset; ``written_match`` the same
    after writing the melody in (1.0: a labelled repair, never the headline).
    """

    state: ComposeState
    melody: M.Melody
    shift: int
    model_codes: np.ndarray
    codes: np.ndarray
    soprano_match: float
    written_match: float
    seconds: float
    restart_match: list = field(default_factory=list)
    cpu_seconds: float = 0.0

    def midi(self) -> pretty_midi.PrettyMIDI:
        """The delivered piece (melody in the soprano, in the melody's key) as MIDI."""
        from composer.music.corpus import CHORALE_VOICES
        return MultiTrackRoll(codes=self.codes, programs=list(self.state.programs), names=list(CHORALE_VOICES),
                              tempo=self.state.tempo).to_pretty_midi()

    def summary(self) -> dict:
        return {"bars": self.state.n_bars, "notes": len(self.melody.notes), "source": self.melody.source,
                "transposed_semitones": self.shift, "soprano_match_model": round(self.soprano_match, 4),
                "soprano_match_written": round(self.written_match, 4), "seconds": round(self.seconds, 2),
                "cpu_seconds": round(self.cpu_seconds, 2),
                "restart_match": self.restart_match}


@dataclass
class Inversion:
    """The closest latents to a four-voice piece and how much of it they reproduce.

    ``note_f1[v]``: F1 of the generator's notes against the piece's in voice v (a note
    matches when pitch and onset step agree).
    """

    state: ComposeState
    target: np.ndarray
    model_codes: np.ndarray
    note_f1: list[float]
    step_match: list[float]
    seconds: float

    def summary(self) -> dict:
        from composer.music.corpus import CHORALE_VOICES
        return {"bars": self.state.n_bars, "seconds": round(self.seconds, 2),
                "note_f1": {CHORALE_VOICES[v]: round(f, 4) for v, f in enumerate(self.note_f1)},
                "note_f1_mean": round(float(np.mean(self.note_f1)), 4),
                "step_match": {CHORALE_VOICES[v]: round(f, 4) for v, f in enumerate(self.step_match)}}


def shift_codes(codes: np.ndarray, k: int) -> np.ndarray:
    """Codes moved ``k`` semitones along the pitch axis (notes pushed off the window are dropped)."""
    if k == 0:
        return np.array(codes, copy=True)
    out = np.zeros_like(codes)
    if k > 0:
        out[..., k:] = codes[..., :-k]
    else:
        out[..., :k] = codes[..., -k:]
    return out


def harmonize(melody: M.Melody, comp: Composer | None = None, settings: Settings | None = None,
              tempo: float | None = None) -> Harmonization:
    """Harmonize ``melody`` (see the module docstring); returns a :class:`Harmonization`.

    Raises
    ------
    ComposerError
        A melody longer than 32 bars or wider than a soprano's range.
    """
    comp = comp or cached_composer()
    s = settings or Settings()
    if melody.n_bars > MAX_BARS:
        raise M.MelodyError(f"the melody is {melody.n_bars} bars long; the harmonizer takes up to {MAX_BARS} bars")
    t0, c0 = time.perf_counter(), time.process_time()
    shift = M.range_shift(melody, *SOPRANO_RANGE)
    inside = melody.transposed(shift)
    target = M.melody_codes(inside)[None]                              # (1, bars, S, P)
    found = _search(_Problem(comp, melody.n_bars, target, (0,)), s)
    st = _state_from(comp, found, melody.n_bars, tempo or melody.tempo, s.seed)
    st = comp.fix_soprano(st, inside.notes, transpose=-shift)
    model_codes = comp.codes(st, raw=True)
    codes = comp.codes(st)
    log.info("harmonized %d bars in %.1f s: the generator's soprano sings %.1f %% of the melody's steps",
             melody.n_bars, time.perf_counter() - t0, 100 * found["match"])
    return Harmonization(st, melody, shift, model_codes, codes, step_match(model_codes[:1], target),
                         step_match(shift_codes(codes[:1], shift), target), time.perf_counter() - t0,
                         found["restart_match"], time.process_time() - c0)


def invert_piece(codes: np.ndarray, comp: Composer | None = None, settings: Settings | None = None,
                 tempo: float = 90.0) -> Inversion:
    """"Drop your riff": the latents whose four voices come closest to a four-voice piece.

    ``codes`` ``(4, bars, 16, 84)`` (e.g. :func:`piece_codes` of a chorale MIDI), at most 32 bars.
    """
    comp = comp or cached_composer()
    s = settings or Settings()
    codes = np.asarray(codes, dtype=np.uint8)
    T = comp.cfg.n_tracks
    if codes.ndim != 4 or codes.shape[0] != T:
        raise ComposerError(f"a piece for this model needs {T} voices")
    if codes.shape[1] > MAX_BARS:
        raise ComposerError(f"the piece is {codes.shape[1]} bars long; at most {MAX_BARS}")
    t0 = time.perf_counter()
    found = _search(_Problem(comp, codes.shape[1], codes, tuple(range(T))), s)
    st = _state_from(comp, found, codes.shape[1], tempo, s.seed)
    out = comp.codes(st)
    f1 = [voice_note_f1(out[v], codes[v]) for v in range(T)]
    sm = [step_match(out[v:v + 1], codes[v:v + 1]) for v in range(T)]
    return Inversion(st, codes, out, f1, sm, time.perf_counter() - t0)


def piece_codes(pm: pretty_midi.PrettyMIDI) -> np.ndarray:
    """A four-voice MIDI (a chorale, a piece exported from Compose) as codes ``(4, bars, 16, 84)``."""
    from composer.music.chorales import midi_to_four_tracks
    M.check_meters(M.meters_of(pm), "the piece")
    codes, reason = midi_to_four_tracks(pm)
    if codes is None:
        raise ComposerError(f"cannot read four voices from this MIDI: {reason}")
    return codes
