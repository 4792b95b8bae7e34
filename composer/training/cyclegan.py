"""Train the genre-transfer CycleGAN: ``python -m composer train cyclegan --domain-a bach --domain-b folk --out DIR``.

Also runs as ``python -m composer.training.cyclegan ...`` and unchanged under
``torchrun --nproc_per_node=N`` (DistributedDataParallel; gloo on CPU, nccl on GPU).
Module-level imports are torch and numpy only; a domain given as a ``.npz`` (built on a
machine with music21 by :mod:`composer.music.genres`) is read with numpy alone.

The losses are the paper's (Brunner et al. 2018), with the public code's defects fixed:

* generators, one combined loss, each generator stepped by its own Adam:
  ``L_G = LS(D_B(G_AB(a)) , 1) + LS(D_A(G_BA(b)), 1)
  + lambda * (|G_BA(G_AB(a)) - a|_1 + |G_AB(G_BA(b)) - b|_1)
  + gamma * (LS(D_Bm(G_AB(a)), 1) + LS(D_Am(G_BA(b)), 1))``
  - the mixed discriminators' term reaches the generators (in the TF code it did not);
* discriminators, each its own loss and Adam step, on *detached* fakes:
  ``L_D_A = 1/2 [LS(D_A(a), 1) + LS(D_A(fake_a), 0)]``,
  ``L_D_Am = gamma/2 [LS(D_Am(m), 1) + LS(D_Am(fake_a), 0)]`` with ``m`` drawn from the mix of
  all domains (and likewise for B);
* every discriminator input gets ``|N(0, sigma_D)|`` noise (``--sigma-d``);
* LSGAN (mean squared error), Adam 2e-4, beta1 0.5, batch 16 as in the paper.

Not in the paper: ``--melody-weight mu`` adds ``mu * (M(a, G_AB(a)) + M(b, G_BA(b)))``, an
identity loss on the melody line (:func:`melody_loss`: the output's top line should be the
input's - a chorale's soprano, a fiddle tune's tune), because the paper's losses let
bach->folk drop the soprano (top-line correlation 0.19 on held-out chorales, issue 16).
``--init-from`` starts both generators from a shipped pair (the discriminators start fresh).

Each step draws a batch from each domain independently, so the larger domain is
subsampled to the smaller one's rate.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from composer.models.cyclegan import PRESETS, CycleGAN, CycleGANConfig, get_config, n_params
from composer.training.loop import (JsonlLog, Timer, add_run_args, export_weights, load_checkpoint,
                                    load_optimizer_tensors, open_run, optimizer_tensors, prefixed, read_jsonl,
                                    save_checkpoint, unprefixed)

GENERATORS = ("G_AB", "G_BA")
DISCRIMINATORS = ("D_A", "D_B", "D_Am", "D_Bm")


# ---------------------------------------------------------------------------------------------
# Data (numpy only)
# ---------------------------------------------------------------------------------------------

def _npz_arrays(path) -> dict:
    with np.load(path, allow_pickle=False) as d:
        meta = json.loads(str(d["meta"]))
        return {"name": meta["name"], "windows": d["windows"], "split": d["split"], "song": d["song"],
                "skipped": len(d["skipped"])}


def load_domain_arrays(spec: str) -> dict:
    """``{"name", "train", "test" (bool (N, 4, 16, 84)), "counts", "density"}`` of one domain.

    A ``.npz`` path is read with numpy only; names and folders go through
    :mod:`composer.music.genres` (imported here, so music21 is needed only to build a cache).
    """
    if str(spec).endswith(".npz") and Path(spec).is_file():
        d = _npz_arrays(spec)
        name = Path(spec).stem.replace("genres_v1_", "")
    else:
        from composer.music.genres import domain_label, load_domain
        g = load_domain(str(spec))
        d = {"name": g.name, "windows": g.windows, "split": g.split, "song": g.song, "skipped": len(g.skipped)}
        name = domain_label(str(spec))
    train = d["windows"][d["split"] == 0] > 0
    test = d["windows"][d["split"] == 1] > 0
    dens = _density(train)
    return {"name": name, "train": train, "test": test,
            "counts": {"windows_train": int(len(train)), "windows_test": int(len(test)),
                       "songs_train": int(len(np.unique(d["song"][d["split"] == 0]))),
                       "songs_test": int(len(np.unique(d["song"][d["split"] == 1]))), "skipped": d["skipped"]},
            "density": [round(float(np.percentile(dens, 1)), 3), round(float(np.percentile(dens, 99)), 3)]}


def _density(binary: np.ndarray) -> np.ndarray:
    """Notes per bar (same definition as composer.music.genres.note_density)."""
    flat = binary.reshape(binary.shape[0], -1, binary.shape[-1])
    prev = np.zeros_like(flat)
    prev[:, 1:] = flat[:, :-1]
    return (flat & ~prev).sum(axis=(1, 2)) / binary.shape[1]


def batch_of(windows: np.ndarray, batch: int, rng: np.random.Generator, device) -> torch.Tensor:
    idx = rng.integers(0, len(windows), size=batch)
    x = torch.from_numpy(windows[idx].astype(np.float32))
    return x.reshape(batch, 1, -1, x.shape[-1]).to(device)


# ---------------------------------------------------------------------------------------------
# Losses and steps
# ---------------------------------------------------------------------------------------------

def noisy(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``x + |N(0, sigma)|``: the paper's noise on discriminator inputs."""
    return x + torch.randn_like(x).abs() * sigma if sigma > 0 else x


def ls(pred: torch.Tensor, target: float) -> torch.Tensor:
    return F.mse_loss(pred, torch.full_like(pred, target))


def _set_grad(module: nn.Module, flag: bool):
    for p in module.parameters():
        p.requires_grad_(flag)


def melody_loss(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Identity loss on the melody line: binary cross-entropy pulling the output ``y`` up on
    the input ``x``'s top-line cells (its highest sounding pitch per step) and down on every
    cell above them, each term averaged over its cells. Zero when ``y`` keeps the top line
    and adds nothing over it; what ``y`` does below the line is left to the other losses."""
    sounding = x > 0.5
    idx = torch.arange(x.shape[-1], device=x.device)
    top = torch.where(sounding.any(-1), (sounding * (idx + 1)).amax(-1) - 1, torch.full_like(idx[:1], -1))
    top = top[..., None]
    on = (idx == top) & (top >= 0)
    above = (idx > top) & (top >= 0)
    l_on = -(torch.log(y.clamp_min(eps)) * on).sum() / on.sum().clamp_min(1)
    l_above = -(torch.log((1 - y).clamp_min(eps)) * above).sum() / above.sum().clamp_min(1)
    return l_on + l_above


def generator_loss(nets: dict, xa, xb, sigma: float, lam: float, gamma: float, critics: dict | None = None,
                   mu: float = 0.0):
    """Combined generator loss and the fakes it made (not detached).

    ``critics`` are the discriminators to judge with (the bare modules under DDP: the
    generator step needs no discriminator gradients); default ``nets``. ``mu`` weighs the
    melody-line identity loss (:func:`melody_loss`; 0 = the paper's loss).
    """
    c = critics or nets
    fake_b, fake_a = nets["G_AB"](xa), nets["G_BA"](xb)
    cyc_a, cyc_b = nets["G_BA"](fake_b), nets["G_AB"](fake_a)
    adv = ls(c["D_B"](noisy(fake_b, sigma)), 1.0) + ls(c["D_A"](noisy(fake_a, sigma)), 1.0)
    adv_m = ls(c["D_Bm"](noisy(fake_b, sigma)), 1.0) + ls(c["D_Am"](noisy(fake_a, sigma)), 1.0)
    cycle = F.l1_loss(cyc_a, xa) + F.l1_loss(cyc_b, xb)
    total = adv + lam * cycle + gamma * adv_m
    parts = {"g_adv": adv, "g_adv_m": adv_m, "cycle": cycle}
    if mu > 0:
        mel = melody_loss(xa, fake_b) + melody_loss(xb, fake_a)
        total = total + mu * mel
        parts["melody"] = mel
    parts["g_loss"] = total
    return total, parts, fake_a, fake_b


def discriminator_loss(D: nn.Module, real, fake, sigma: float, weight: float = 1.0):
    """LSGAN loss of one discriminator; ``fake`` must already be detached."""
    return weight * 0.5 * (ls(D(noisy(real, sigma)), 1.0) + ls(D(noisy(fake, sigma)), 0.0))


def train_step(nets: dict, opts: dict, xa, xb, xm_a, xm_b, sigma: float = 0.1, lam: float = 10.0,
               gamma: float = 1.0, only: tuple[str, ...] | None = None, bare: dict | None = None,
               mu: float = 0.0) -> dict:
    """One CycleGAN step: generators first, then each discriminator on detached fakes.

    ``nets``/``opts`` map the names of :data:`GENERATORS` and :data:`DISCRIMINATORS` to
    modules (possibly DDP-wrapped) and their optimizers. ``only`` limits which networks are
    updated (the tests step one at a time). ``xm_a``/``xm_b`` are batches of the mixed set
    for D_Am and D_Bm.
    """
    only = set(only or GENERATORS + DISCRIMINATORS)
    out = {}
    # ---- generators: discriminators frozen, their gradients not even computed ----
    ds = [nets[k] for k in DISCRIMINATORS]
    for D in ds:
        _set_grad(D, False)
    g_total, parts, fake_a, fake_b = generator_loss(nets, xa, xb, sigma, lam, gamma, critics=bare, mu=mu)
    if only & set(GENERATORS):
        for k in GENERATORS:
            opts[k].zero_grad(set_to_none=True)
        g_total.backward()
        for k in GENERATORS:
            if k in only:
                opts[k].step()
    for D in ds:
        _set_grad(D, True)
    out.update({k: float(v.detach()) for k, v in parts.items()})
    fake_a, fake_b = fake_a.detach(), fake_b.detach()
    # ---- discriminators: one loss and one step each ----
    pairs = {"D_A": (xa, fake_a, 1.0), "D_B": (xb, fake_b, 1.0), "D_Am": (xm_a, fake_a, gamma),
             "D_Bm": (xm_b, fake_b, gamma)}
    for k, (real, fake, w) in pairs.items():
        if k not in only:
            continue
        opts[k].zero_grad(set_to_none=True)
        loss = discriminator_loss(nets[k], real, fake, sigma, w)
        loss.backward()
        opts[k].step()
        out[k.lower() + "_loss"] = float(loss.detach())
    return out


def make_optimizers(model: CycleGAN, lr: float = 2e-4, beta1: float = 0.5) -> dict:
    return {k: torch.optim.Adam(getattr(model, k).parameters(), lr=lr, betas=(beta1, 0.999))
            for k in GENERATORS + DISCRIMINATORS}


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------

def export_generators(src, dst, extra: dict | None = None, half: bool = True) -> Path:
    """Ship a training checkpoint: both generators, float16, plus the model card."""
    return export_weights(src, dst, lambda t: {k: v for k, v in t.items() if k.split(".", 1)[0] in GENERATORS},
                          "generators G_AB, G_BA", half, extra)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(prog="composer train cyclegan", description=__doc__.split("\n")[0])
    p.add_argument("--domain-a", default="bach", help="bach, folk, palestrina, a folder of MIDI files or a .npz")
    p.add_argument("--domain-b", default="folk", help="as --domain-a")
    p.add_argument("--mix", nargs="*", default=[], help="extra domains for the mixed set M (A and B are always in)")
    add_run_args(p, out="runs/cyclegan", steps=3000, checkpoint_every=100, log_every=10)
    p.add_argument("--preset", default="default", choices=sorted(PRESETS))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--beta1", type=float, default=0.5)
    p.add_argument("--lambda-cycle", type=float, default=10.0, dest="lam")
    p.add_argument("--gamma", type=float, default=1.0, help="weight of the mixed discriminators")
    p.add_argument("--sigma-d", type=float, default=0.1, help="std of the |N(0, sigma)| noise on D inputs")
    p.add_argument("--melody-weight", type=float, default=0.0, dest="mu",
                   help="weight of the identity loss on the melody line (0: the paper's losses)")
    p.add_argument("--init-from", default=None,
                   help="start both generators from this CycleGAN checkpoint (e.g. a shipped pair)")
    p.add_argument("--decay-from", type=float, default=0.5, help="fraction of --steps after which lr decays linearly")
    p.add_argument("--snapshot-every", type=int, default=0,
                   help="also keep generators-only snapshots OUT/step_N.safetensors every N steps (0: never)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    d, out, ckpt_path = open_run(args)
    device = d.device
    cfg = get_config(args.preset)
    tensors, card = None, {}
    if ckpt_path.exists() and not args.no_resume:
        tensors, card = load_checkpoint(ckpt_path, device="cpu")
        cfg = CycleGANConfig.from_dict(card["config"])

    A, B = load_domain_arrays(args.domain_a), load_domain_arrays(args.domain_b)
    mix = [A["train"], B["train"]] + [load_domain_arrays(s)["train"] for s in args.mix]
    M = np.concatenate(mix)
    for dom in (A, B):
        if len(dom["train"]) == 0:
            from composer.errors import DataError
            raise DataError(f"domain '{dom['name']}' has no training windows")

    torch.manual_seed(args.seed + d.rank)
    rng = np.random.default_rng(args.seed * 1000 + d.rank + card.get("step", 0) * 7919)
    model = CycleGAN(cfg)
    opts = make_optimizers(model, args.lr, args.beta1)
    step = 0
    if tensors is not None:
        for k in GENERATORS + DISCRIMINATORS:
            getattr(model, k).load_state_dict(unprefixed(tensors, k))
        model.to(device)
        for k in GENERATORS + DISCRIMINATORS:
            load_optimizer_tensors(opts[k], tensors, "opt_" + k)
        step = int(card["step"])
    elif args.init_from:
        init, init_card = load_checkpoint(args.init_from, device="cpu")
        if CycleGANConfig.from_dict(init_card.get("config", {})) != cfg:
            from composer.errors import CheckpointError
            raise CheckpointError(f"{args.init_from} is not a '{args.preset}' CycleGAN; pass its --preset")
        for k in GENERATORS:
            getattr(model, k).load_state_dict({n: v.float() for n, v in unprefixed(init, k).items()})
    model.to(device)
    timer = Timer(card.get("wall_s", 0.0))

    if d.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP
        ids = [device.index] if device.type == "cuda" else None
        nets = {k: DDP(getattr(model, k), device_ids=ids) for k in GENERATORS + DISCRIMINATORS}
    else:
        nets = {k: getattr(model, k) for k in GENERATORS + DISCRIMINATORS}
    bare = {k: getattr(model, k) for k in DISCRIMINATORS}

    log = JsonlLog(out / "log.jsonl", enabled=d.main)
    log.keep_until(step)  # rows after the resumed step are redone
    if d.main and step and log.path.exists():
        rows = [r for r in read_jsonl(log.path) if r.get("step", 0) <= step]
        log.path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if d.main:
        print(f"CycleGAN {args.preset} {A['name']} <-> {B['name']}: {len(A['train'])} / {len(B['train'])} training "
              f"windows, mixed set {len(M)}; G {n_params(model.G_AB):,} params, D {n_params(model.D_A):,}; "
              f"device {device}{' x%d' % d.world if d.enabled else ''}, threads {torch.get_num_threads()}; "
              f"step {step} -> {args.steps}", file=sys.stderr)

    def card_now() -> dict:
        return {"model": "cyclegan", "preset": args.preset, "config": cfg.to_dict(), "step": step,
                "wall_s": round(timer.elapsed, 1), "domains": [A["name"], B["name"]],
                "domain_specs": [args.domain_a, args.domain_b], "mix": [A["name"], B["name"]] + list(args.mix),
                "data": {A["name"]: A["counts"], B["name"]: B["counts"], "mixed_windows": int(len(M))},
                "density_range": {A["name"]: A["density"], B["name"]: B["density"]},
                "batch": args.batch * d.world, "lr": args.lr, "beta1": args.beta1, "lambda_cycle": args.lam,
                "gamma": args.gamma, "sigma_d": args.sigma_d, "loss": "LSGAN", "melody_weight": args.mu,
                "init_from": card.get("init_from", args.init_from),
                "trained_on": f"{device.type} x{d.world}, fp32, {torch.get_num_threads()} thread(s)"
                              + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else "")}

    def save():
        if not d.main:
            return
        t = {}
        for k in GENERATORS + DISCRIMINATORS:
            t.update(prefixed(getattr(model, k).state_dict(), k))
            t.update(optimizer_tensors(opts[k], "opt_" + k))
        save_checkpoint(ckpt_path, t, card_now())

    def snapshot():
        if not d.main:
            return
        t = {}
        for k in GENERATORS:
            t.update(prefixed(getattr(model, k).state_dict(), k))
        save_checkpoint(out / f"step_{step}.safetensors", t, card_now())

    bar = None
    if d.main and not args.quiet:
        try:
            from tqdm import tqdm
            bar = tqdm(total=args.steps, initial=step, desc="cyclegan", dynamic_ncols=True)
        except ImportError:
            bar = None

    model.train()
    while step < args.steps:
        frac = step / max(1, args.steps)
        f = 1.0 if frac < args.decay_from else max(0.0, (1 - frac) / (1 - args.decay_from))
        for opt in opts.values():
            for g in opt.param_groups:
                g["lr"] = args.lr * f
        xa, xb = batch_of(A["train"], args.batch, rng, device), batch_of(B["train"], args.batch, rng, device)
        xm_a, xm_b = batch_of(M, args.batch, rng, device), batch_of(M, args.batch, rng, device)
        losses = train_step(nets, opts, xa, xb, xm_a, xm_b, args.sigma_d, args.lam, args.gamma, bare=bare, mu=args.mu)
        step += 1
        if not all(math.isfinite(v) for v in losses.values()):
            print(f"non-finite loss at step {step}; stopping (last checkpoint kept)", file=sys.stderr)
            return 1
        if d.main and (step % args.log_every == 0 or step == args.steps):
            log.write(step=step, **{k: round(v, 5) for k, v in losses.items()}, lr=args.lr * f,
                      wall_s=round(timer.elapsed, 2))
        if bar is not None:
            bar.update(1)
            if step % args.log_every == 0:
                bar.set_postfix(g=f"{losses['g_loss']:.3f}", cyc=f"{losses['cycle']:.3f}",
                                dA=f"{losses.get('d_a_loss', 0):.3f}", dB=f"{losses.get('d_b_loss', 0):.3f}")
        if step % args.checkpoint_every == 0 or step == args.steps:
            save()
        if args.snapshot_every and step % args.snapshot_every == 0:
            snapshot()
    if bar is not None:
        bar.close()
    d.barrier()
    d.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
