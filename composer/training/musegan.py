"""Train MuseGAN with WGAN-GP: ``python -m composer train musegan --data bach --steps N --out DIR``.

Also runs as ``python -m composer.training.musegan ...`` and unchanged under
``torchrun --nproc_per_node=N`` (DistributedDataParallel; gloo on CPU, nccl on GPU).

Module-level imports are torch and numpy only: the ``.npz`` data is built once on a machine
with music21 (``composer.music.chorales``) and read here with :func:`numpy.load`, so a bare
GPU box can train.

One step = ``critic_steps`` (5) critic updates + 1 generator update, as in WGAN-GP:
critic loss ``C(fake) - C(real) + lambda * (||grad C(x_mix)|| - 1)^2`` with a fresh
interpolation alpha per sample on every critic update (the seed drew one alpha for the
whole run). The generator also keeps an exponential moving average of its weights
(``G_ema``); that copy is what ships, because a GAN's raw weights jitter step to step.

Optional generator terms (issue 15; off by default): ``--mm-weight`` matches batch statistics
of the four voices to the real batch's (how far voices move, interval classes between voices,
onsets, rests; :func:`voice_stats`), ``--par-weight`` penalises parallel fifths and octaves.
They shape training only: what ``eval musegan`` measures is the generator's raw output.
Training windows skip silent steps (pickup bars, unfilled last bars) unless ``--keep-silent``.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from composer.music.metrics import VOICE_RANGES, pitch_offset_default
from composer.models.musegan import PRESETS, Critic, Generator, MuseGANConfig, get_config, sample_latents
from composer.training.loop import (JsonlLog, Timer, add_run_args, export_weights, load_checkpoint,
                                    load_optimizer_tensors, open_run, optimizer_tensors, prefixed, read_jsonl,
                                    save_checkpoint, unprefixed)


# ---------------------------------------------------------------------------------------------
# Data: windows of whole bars from the cached songs, transposed on the fly
# ---------------------------------------------------------------------------------------------

class Windows:
    """All ``n_bars`` windows of one split of a cached ``.npz`` (see composer.music.chorales).

    ``hop`` is 1 bar for training (every start bar) and ``n_bars`` for evaluation (no
    overlap). Transposition is range-preserving: each window is shifted by a random number
    of semitones in ``[-max_shift, max_shift]`` among the shifts that keep every voice
    inside its Bach range, so the model learns all keys but never hears a soprano above
    A5 it then has to unlearn.
    """

    def __init__(self, npz_path, n_bars: int, split: str = "train", hop: int = 1,
                 pitch_offset: int = pitch_offset_default, max_shift: int = 6, skip_silent: bool = False):
        with np.load(npz_path, allow_pickle=False) as d:
            self.codes = d["codes"]                       # (4, total_bars, steps, pitches) uint8
            starts, bars, splits = d["song_start"], d["song_bars"], d["split"]
            self.names = [str(n) for n in d["names"]]
        want = {"train": 0, "valid": 1}[split]
        idx = []
        for s, b, sp in zip(starts, bars, splits):
            if sp != want or b < n_bars:
                continue
            idx.extend(range(s, s + b - n_bars + 1, hop))
        self.starts = np.asarray(idx, dtype=np.int64)
        if skip_silent:
            # windows with a step where no voice sounds: the pickup bar before a chorale's first
            # upbeat and the unfilled end of its last bar (padding of the bar grid, not music)
            silent = ~(self.codes > 0).any(axis=(0, 3))    # (total_bars, steps)
            bad = np.array([silent[s:s + n_bars].any() for s in self.starts], dtype=bool)
            self.starts = self.starts[~bad]
        self.n_bars, self.max_shift = n_bars, max_shift
        self.songs = int(sum(1 for b, sp in zip(bars, splits) if sp == want and b >= n_bars))
        # allowed transposition range per window: keep each voice inside its range
        lo = np.full(len(self.starts), -max_shift)
        hi = np.full(len(self.starts), max_shift)
        sounding = self.codes.max(axis=2) > 0             # (4, total_bars, pitches)
        for v in range(self.codes.shape[0]):
            if v >= len(VOICE_RANGES):
                break
            rlo, rhi = VOICE_RANGES[v][1] - pitch_offset, VOICE_RANGES[v][2] - pitch_offset
            for k, s in enumerate(self.starts):
                p = np.flatnonzero(sounding[v, s:s + n_bars].any(axis=0))
                if len(p):
                    lo[k] = max(lo[k], rlo - p.min())
                    hi[k] = min(hi[k], rhi - p.max())
        bad = lo > hi                                      # already out of range: leave as is
        lo[bad], hi[bad] = 0, 0
        self.shift_lo, self.shift_hi = np.minimum(lo, 0), np.maximum(hi, 0)

    def __len__(self):
        return len(self.starts)

    def codes_at(self, which: np.ndarray, shifts: np.ndarray | None = None) -> np.ndarray:
        """Windows ``which`` as codes ``(n, tracks, bars, steps, pitches)``, optionally transposed."""
        bars = self.starts[which][:, None] + np.arange(self.n_bars)[None, :]
        x = self.codes[:, bars].transpose(1, 0, 2, 3, 4)  # (n, tracks, bars, steps, pitches)
        if shifts is not None:
            x = x.copy()
            for i, s in enumerate(shifts):
                if s:
                    x[i] = np.roll(x[i], int(s), axis=-1)
        return x

    def sample(self, batch: int, rng: np.random.Generator, augment: bool = True) -> np.ndarray:
        which = rng.integers(0, len(self.starts), batch)
        shifts = rng.integers(self.shift_lo[which], self.shift_hi[which] + 1) if augment else None
        return self.codes_at(which, shifts)


def to_model_range(codes: np.ndarray, device) -> torch.Tensor:
    """REST/HOLD/ONSET codes -> -1/0/1 float tensor."""
    return torch.from_numpy(codes).to(device=device, dtype=torch.float32) - 1.0


def resolve_data(source: str) -> Path:
    """``bach`` -> the cached chorale ``.npz`` (built on first use); a ``.npz`` -> itself; a folder -> built."""
    p = Path(source)
    if p.suffix == ".npz" and p.is_file():
        return p
    from composer.music.chorales import build  # needs music21 / pretty_midi: only when building
    return build(source)


# ---------------------------------------------------------------------------------------------
# WGAN-GP
# ---------------------------------------------------------------------------------------------

def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """``mean((||grad_x C(x)||_2 - 1)^2)`` at ``x = a real + (1-a) fake``, a fresh alpha per sample."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
    mix = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    # our Critic can skip this pass's own weight gradients: the penalty reaches the weights
    # only through the gradient below (see models.musegan.CriticConv3d)
    score = critic(mix, weight_grads=False) if isinstance(critic, Critic) else critic(mix)
    (grad,) = torch.autograd.grad(score.float().sum(), mix, create_graph=True)
    return ((grad.float().flatten(1).norm(2, dim=1) - 1) ** 2).mean()


# ---------------------------------------------------------------------------------------------
# Voice-leading statistics (optional generator terms: --mm-weight, --par-weight)
# ---------------------------------------------------------------------------------------------

def _lines(x: torch.Tensor):
    """``x`` in [-1, 1] ``(b, tracks, bars, steps, pitches)`` -> sounding one-hots and onsets
    ``(b, tracks, bars*steps, pitches)``, hard in the forward pass, ``x``'s gradient backward."""
    b, T, N, S, P = x.shape
    x = x.reshape(b, T, N * S, P)
    sound = (x > -0.5).float()
    sound = sound + (x - x.detach())                       # straight through
    onset = (x > 0.5).float() + 0.5 * (x - x.detach())
    return sound, onset


def voice_stats(x: torch.Tensor, pitch_offset: int = pitch_offset_default,
                onsets: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Batch means of what a listener hears in four-part writing, differentiable in ``x``:

    ``motion`` (tracks, 25): how far each voice moves from one step to the next (-12..12
    semitones; 0 = holds and repeats); ``harmony`` (pairs, 12): interval classes between
    every two voices, upper minus lower, at every step; ``onsets`` (tracks,): notes per step;
    ``rests`` (tracks,): silent steps; ``parallels``: per step pair and voice pair, both
    voices move and keep a fifth or an octave (unison) between them; ``note_motion``
    (tracks, 25): the interval into each new note (0 = a repeated note); ``onset_grid``
    (tracks, 16): onsets per position in the bar.
    """
    y, o = _lines(x)
    P = y.shape[-1]
    if onsets is not None:  # (b, T, L) from the generator (Generator.last_onsets): the onsets' own gradient
        o = onsets[..., None] * y.detach()         # (b, T, L, P): at the sounding pitch
    motion = []
    for d in range(-12, 13):
        a, b = (y[..., :-1, :P - d], y[..., 1:, d:]) if d >= 0 else (y[..., :-1, -d:], y[..., 1:, :P + d])
        motion.append((a * b).sum(-1).mean((0, 2)))
    pcs = (torch.arange(P, device=x.device) + pitch_offset) % 12
    chroma = y @ torch.eye(12, device=x.device)[pcs]       # (b, T, L, 12)
    T = y.shape[1]
    harmony, par = [], []
    stay = (y[..., :-1, :] * y[..., 1:, :]).sum(-1)         # (b, T, L-1): same pitch on the next step
    for i in range(T):
        for j in range(i + 1, T):
            ic = torch.stack([(chroma[:, i] * chroma[:, j].roll(k, -1)).sum(-1) for k in range(12)], -1)
            harmony.append(ic.mean((0, 1)))
            keep = ic[:, :-1, [0, 7]] * ic[:, 1:, [0, 7]]  # the same fifth / octave before and after
            par.append((keep.sum(-1) * (1 - stay[:, i]) * (1 - stay[:, j])).mean())
    # from note to note: how far each voice moves at its onsets (repeated notes are 0, steps
    # 1-2), and where in the bar notes start (beats, eighths, rarely odd sixteenths)
    on = o.sum(-1)                                          # (b, T, L): an onset on this step
    n_on = on[..., 1:].sum((0, 2)).clamp_min(1.0)
    leap = []
    for d in range(-12, 13):
        a, b = (y[..., :-1, :P - d], y[..., 1:, d:]) if d >= 0 else (y[..., :-1, -d:], y[..., 1:, :P + d])
        leap.append(((a * b).sum(-1) * on[..., 1:]).sum((0, 2)) / n_on)
    S = 16
    grid = on.reshape(on.shape[0], T, -1, S).mean((0, 2)) if on.shape[-1] % S == 0 else on.mean((0, 2))[:, None]
    return {"motion": torch.stack(motion, -1), "harmony": torch.stack(harmony), "onsets": o.mean((0, 2, 3)) * P,
            "rests": 1 - y.sum(-1).mean((0, 2)), "parallels": torch.stack(par).mean(),
            "note_motion": torch.stack(leap, -1), "onset_grid": grid}


#: The statistics ``--mm-weight`` matches, each with its weight (the onset grid has 16 positions
#: per voice: a quarter of the weight keeps it level with the others; rests weigh more, since
#: a voice falling silent inside a phrase is a hole in the texture).
MM_KEYS = {"motion": 1.0, "harmony": 1.0, "onsets": 1.0, "rests": 4.0, "note_motion": 1.0, "onset_grid": 0.25}


def voice_loss(fake: torch.Tensor, real: torch.Tensor, mm_weight: float, par_weight: float,
               onsets: torch.Tensor | None = None) -> torch.Tensor:
    """``mm_weight`` x L1 distance of :func:`voice_stats` (fake vs a real batch) + ``par_weight`` x 100 x
    the fake's parallel rate."""
    f = voice_stats(fake, onsets=onsets)
    loss = fake.new_zeros(())
    if mm_weight:
        with torch.no_grad():
            r = voice_stats(real)
        loss = loss + mm_weight * sum(w * (f[k] - r[k]).abs().sum() for k, w in MM_KEYS.items())
    if par_weight:
        loss = loss + par_weight * 100 * f["parallels"]
    return loss


def train_step(G, C, opt_g, opt_c, real_fn, cfg: MuseGANConfig, batch: int, device, critic_steps: int = 5,
               gp_weight: float = 10.0, G_train=None, C_train=None, autocast=contextlib.nullcontext,
               mm_weight: float = 0.0, par_weight: float = 0.0) -> dict:
    """One WGAN-GP iteration: ``critic_steps`` critic updates, then one generator update.

    ``real_fn()`` returns a real batch in [-1, 1]. ``G_train``/``C_train`` are the DDP
    wrappers when distributed (else the modules). Returns the last losses as tensors.
    ``mm_weight``/``par_weight`` add :func:`voice_loss` to the generator's loss.
    """
    G_train, C_train = G_train or G, C_train or C
    for _ in range(critic_steps):
        real = real_fn()
        with torch.no_grad(), autocast():
            fake = G_train(**sample_latents(batch, cfg, device=device)).float()
        with autocast():
            # real and fake in one critic call; the penalty needs its own pass (double backward)
            scores = C_train(torch.cat([real, fake])).float()
            w_dist = scores[:batch].mean() - scores[batch:].mean()
            gp = gradient_penalty(C, real, fake)
            c_loss = -w_dist + gp_weight * gp
        opt_c.zero_grad(set_to_none=True)
        c_loss.backward()
        opt_c.step()
    # generator: one update; the critic's weights need no gradient here (saves a third of its backward)
    C.requires_grad_(False)
    with autocast():
        fake = G_train(**sample_latents(batch, cfg, device=device))
        g_loss = -C(fake).float().mean()
    onsets = getattr(G, "last_onsets", None) if getattr(cfg, "onset_grad", "output") == "stats" else None
    vl = voice_loss(fake.float(), real, mm_weight, par_weight, onsets) if (mm_weight or par_weight) else None
    opt_g.zero_grad(set_to_none=True)
    (g_loss if vl is None else g_loss + vl).backward()
    opt_g.step()
    C.requires_grad_(True)
    out = {"g_loss": g_loss.detach(), "c_loss": c_loss.detach(), "gp": gp.detach(), "w_dist": w_dist.detach()}
    if vl is not None:
        out["voice_loss"] = vl.detach()
    return out


#: Metrics logged by ``--eval-every`` (composer.music.metrics; the bar set of issue 15).
EVAL_KEYS = ("all_voices", "parallels", "stepwise", "beat_triads", "sixteenths", "half_or_longer", "qn",
             "scale_consistency", "td_mean", "upc_S", "upc_B")


@torch.no_grad()
def quick_eval(G: Generator, n: int, device, seed: int = 0) -> dict:
    """The bar's musical metrics on ``n`` phrases of ``G`` (eval mode, fixed latents), for the log."""
    from composer.music import metrics
    was = G.training
    G.eval()
    gen = torch.Generator().manual_seed(seed)
    z = {k: v.to(device) for k, v in sample_latents(n, G.cfg, generator=gen).items()}
    x = torch.cat([G(**{k: v[i:i + 128] for k, v in z.items()}).float().cpu() for i in range(0, n, 128)]).numpy()
    G.train(was)
    if G.cfg.output == "categorical":
        codes = np.rint(x + 1).astype(np.uint8)  # an exact -1/0/1 roll
    else:
        from composer.music.pianoroll import float_to_codes
        codes = float_to_codes(x, monophonic=True)
    res = metrics.evaluate(codes)
    return {f"m_{k}": round(float(res[k]), 4) for k in EVAL_KEYS}


def ema_update(ema: nn.Module, model: nn.Module, decay: float):
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1 - decay)
        for e, b in zip(ema.buffers(), model.buffers()):
            e.copy_(b)


def lr_factor(step: int, total: int, decay_from: float) -> float:
    """1 until ``decay_from`` of the run, then linear down to 0.1 at the end."""
    start = int(total * decay_from)
    if step < start or total <= start:
        return 1.0
    return 1.0 - 0.9 * (step - start) / max(1, total - start)


def export_generator(src, dst, extra: dict | None = None, half: bool = True, weights: str = "ema") -> Path:
    """Ship a training checkpoint: the EMA generator alone, fp16, plus a model card.

    The critic and optimiser states stay behind (they are only needed to resume).
    """
    def select(tensors):
        return (unprefixed(tensors, "G") if weights == "raw" else None) or unprefixed(tensors, "G_ema") \
            or unprefixed(tensors, "G")
    return export_weights(src, dst, select, "generator (raw)" if weights == "raw" else "generator EMA", half, extra)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="composer train musegan", description=__doc__.split("\n")[0])
    p.add_argument("--data", default="bach", help="'bach', a folder of MIDI files, or a built .npz")
    add_run_args(p, out="runs/musegan", steps=5000, checkpoint_every=200, log_every=10)
    p.add_argument("--preset", default="default", choices=sorted(PRESETS))
    p.add_argument("--n-bars", type=int, default=None, help="bars per window (2 or 4; default: the preset's)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--decay-from", type=float, default=0.6, help="fraction of --steps after which lr decays")
    p.add_argument("--critic-steps", type=int, default=5)
    p.add_argument("--gp", type=float, default=10.0, help="gradient penalty weight lambda")
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay of the shipped generator weights")
    p.add_argument("--no-augment", action="store_true", help="no transposition augmentation")
    p.add_argument("--keep-silent", action="store_true",
                   help="also train on windows with silent steps (pickup bars, unfilled last bars)")
    p.add_argument("--max-shift", type=int, default=6,
                   help="largest transposition in semitones (every shift that keeps all voices in range)")
    p.add_argument("--mm-weight", type=float, default=0.0,
                   help="generator term: L1 distance of voice statistics (motion, harmony, onsets, rests) to the real batch")
    p.add_argument("--par-weight", type=float, default=0.0,
                   help="generator term: parallel fifths/octaves per 100 step pairs of the fake batch")
    p.add_argument("--onset-grad", default=None, choices=["output", "stats"],
                   help="categorical output: onsets learn from the output level (critic too) or only from the "
                        "voice terms (also switches a resumed run)")
    p.add_argument("--eval-every", type=int, default=0,
                   help="steps between musical metrics of the EMA generator in the log (0 = never)")
    p.add_argument("--eval-n", type=int, default=256, help="phrases per --eval-every measurement")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="auto: bf16 autocast on CUDA, fp32 elsewhere")
    p.add_argument("--init-generator", default=None,
                   help="start a new run from another checkpoint's generator (the critic starts fresh)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    d, out, ckpt_path = open_run(args)
    device = d.device
    cfg = get_config(args.preset, n_bars=args.n_bars)

    # ---- resume: the checkpoint's config wins, so a resumed run is the same model ----
    tensors, card = None, {}
    if ckpt_path.exists() and not args.no_resume:
        tensors, card = load_checkpoint(ckpt_path, device="cpu")
        cfg = MuseGANConfig.from_dict(card["config"])
    if args.onset_grad:  # a training choice, not a weight: may change when a run resumes
        cfg.onset_grad = args.onset_grad

    data_path = resolve_data(args.data) if d.main else None
    if d.enabled:  # rank 0 builds the cache (if needed), the others wait and read it
        import torch.distributed as dist
        holder = [str(data_path) if data_path else None]
        dist.broadcast_object_list(holder, src=0)
        data_path = Path(holder[0])
    skip_silent = card.get("skip_silent", not args.keep_silent)
    data = Windows(data_path, cfg.n_bars, "train", hop=1, max_shift=card.get("max_shift", args.max_shift),
                   skip_silent=skip_silent)
    if len(data) == 0:
        from composer.errors import DataError
        raise DataError(f"no {cfg.n_bars}-bar windows in {data_path}")

    torch.manual_seed(args.seed + d.rank)
    rng = np.random.default_rng(args.seed * 1000 + d.rank + (card.get("step", 0) * 7919))
    G, C = Generator(cfg).to(device), Critic(cfg).to(device)
    G_ema = copy.deepcopy(G).eval()
    opt_g = torch.optim.Adam(G.parameters(), args.lr, betas=(0.5, 0.9))
    opt_c = torch.optim.Adam(C.parameters(), args.lr, betas=(0.5, 0.9))
    step = 0
    if tensors is not None:
        G.load_state_dict(unprefixed(tensors, "G"))
        C.load_state_dict(unprefixed(tensors, "C"))
        G_ema.load_state_dict(unprefixed(tensors, "G_ema"))
        load_optimizer_tensors(opt_g, tensors, "opt_g")
        load_optimizer_tensors(opt_c, tensors, "opt_c")
        step = int(card["step"])
    elif args.init_generator:
        src, src_card = load_checkpoint(args.init_generator, device="cpu")
        # a training checkpoint (G., G_ema. prefixes) or a shipped generator (no prefix, fp16);
        # a new output layer (tanh -> categorical) keeps the body and starts its own head fresh
        raw = unprefixed(src, "G") or {k: v.float() for k, v in src.items()}
        missing, unexpected = G.load_state_dict(raw, strict=False)
        new_head = cfg.output == "categorical" and src_card.get("config", {}).get("output", "tanh") == "tanh"
        if new_head:  # the pitch layers of the tanh output are not used; the head starts fresh
            unexpected = [k for k in unexpected if not k.startswith(("ups.3.", "ups.4."))]
        if unexpected or any(not k.startswith(("head.", "head_beat.", "head_eighth.")) for k in missing):
            from composer.errors import CheckpointError
            raise CheckpointError(f"{args.init_generator} does not fit this generator "
                                  f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        G_ema.load_state_dict(G.state_dict())
        if unprefixed(src, "G_ema"):
            G_ema.load_state_dict(unprefixed(src, "G_ema"), strict=False)
        if src_card.get("config", {}).get("output", "tanh") == cfg.output:
            load_optimizer_tensors(opt_g, src, "opt_g")
        card = {"wall_s": src_card.get("wall_s", 0.0),
                "init": {"from": str(args.init_generator), "step": src_card.get("step"),
                         "critic": src_card.get("config", {}).get("critic_order")}}
    G.to(device), C.to(device), G_ema.to(device)
    timer = Timer(card.get("wall_s", 0.0))

    # DDP averages gradients across processes. The Wasserstein terms go through the DDP
    # wrapper; the gradient penalty and the generator's critic pass use the bare module
    # (DDP cannot run the double backward of the penalty itself, and the generator step
    # needs no critic gradients). Every critic parameter still receives its gradient in
    # the one backward pass per update, so DDP's all-reduce covers the penalty's share too.
    if d.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP
        ids = [device.index] if device.type == "cuda" else None
        G_train, C_train = DDP(G, device_ids=ids), DDP(C, device_ids=ids)
    else:
        G_train, C_train = G, C
    bf16 = args.precision == "bf16" or (args.precision == "auto" and device.type == "cuda")
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)  # noqa: E731

    log = JsonlLog(out / "log.jsonl", enabled=d.main)
    if d.main and step and log.path.exists():
        # rows written after the checkpoint we resume from are about to be redone: drop them
        rows = [r for r in read_jsonl(log.path) if r.get("step", 0) <= step]
        log.path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if d.main:
        print(f"MuseGAN {args.preset} ({cfg.n_bars} bars): {len(data)} training windows from {data.songs} songs; "
              f"device {device}{' x%d' % d.world if d.enabled else ''}, {'bf16' if bf16 else 'fp32'}, "
              f"threads {torch.get_num_threads()}; step {step} -> {args.steps}", file=sys.stderr)

    def batch_real():
        return to_model_range(data.sample(args.batch, rng, augment=not args.no_augment), device)

    def save():
        if not d.main:
            return
        t = {**prefixed(G.state_dict(), "G"), **prefixed(C.state_dict(), "C"),
             **prefixed(G_ema.state_dict(), "G_ema"),
             **optimizer_tensors(opt_g, "opt_g"), **optimizer_tensors(opt_c, "opt_c")}
        save_checkpoint(ckpt_path, t, {
            "model": "musegan", "preset": args.preset, "config": cfg.to_dict(), "step": step,
            "wall_s": round(timer.elapsed, 1), "data": str(args.data), "data_windows": len(data),
            "batch": args.batch * d.world, "lr": args.lr, "critic_steps": args.critic_steps, "gp_lambda": args.gp,
            "ema": args.ema, "augment": not args.no_augment, "max_shift": data.max_shift,
            "mm_weight": args.mm_weight, "par_weight": args.par_weight, "skip_silent": skip_silent, **({"init": card["init"]} if "init" in card else {}),
            "trained_on": f"{device.type} x{d.world}, {'bf16' if bf16 else 'fp32'}, "
                          f"{torch.get_num_threads()} thread(s)" + (f", {torch.cuda.get_device_name(device)}"
                                                                     if device.type == "cuda" else ""),
        })

    bar = None
    if d.main and not args.quiet:
        try:
            from tqdm import tqdm
            bar = tqdm(total=args.steps, initial=step, desc="musegan", dynamic_ncols=True)
        except ImportError:  # tqdm is optional on a bare box
            bar = None

    G.train(), C.train()
    while step < args.steps:
        f = lr_factor(step, args.steps, args.decay_from)
        for opt in (opt_g, opt_c):
            for group in opt.param_groups:
                group["lr"] = args.lr * f
        losses = train_step(G, C, opt_g, opt_c, batch_real, cfg, args.batch, device, args.critic_steps, args.gp,
                            G_train=G_train, C_train=C_train, autocast=autocast,
                            mm_weight=args.mm_weight, par_weight=args.par_weight)
        g_loss, c_loss, gp, w_dist = (losses[k] for k in ("g_loss", "c_loss", "gp", "w_dist"))
        ema_update(G_ema, G, args.ema if step > 100 else 0.0)  # EMA starts after the first wobbles
        step += 1

        if not all(math.isfinite(v) for v in (g_loss.item(), c_loss.item())):
            print(f"non-finite loss at step {step}; stopping (last checkpoint kept)", file=sys.stderr)
            return 1
        if d.main and (step % args.log_every == 0 or step == args.steps):
            extra = {"voice_loss": round(losses["voice_loss"].item(), 5)} if "voice_loss" in losses else {}
            log.write(step=step, g_loss=round(g_loss.item(), 5), c_loss=round(c_loss.item(), 5), **extra,
                      gp=round(gp.item(), 5), w_dist=round(w_dist.item(), 5), lr=args.lr * f,
                      wall_s=round(timer.elapsed, 2))
        if bar is not None:
            bar.update(1)
            if step % args.log_every == 0:
                bar.set_postfix(g=f"{g_loss.item():.3f}", c=f"{c_loss.item():.3f}", gp=f"{gp.item():.3f}")
        if d.main and args.eval_every and (step % args.eval_every == 0 or step == args.steps):
            log.write(step=step, wall_s=round(timer.elapsed, 2), **quick_eval(G_ema, args.eval_n, device))
        if step % args.checkpoint_every == 0 or step == args.steps:
            save()
    if bar is not None:
        bar.close()
    d.barrier()
    d.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
