"""Train the paper's genre classifier: ``python -m composer train classifier --domain-a bach --domain-b folk --out DIR``.

Two domains (the same as the CycleGAN's), balanced batches, cross-entropy, Adam; accuracy on
the held-out (song-level) test windows is measured at every checkpoint and written to the
model card; the best checkpoint by held-out accuracy is kept as ``best.safetensors``.
Optional Gaussian noise on the inputs (``--sigma``) as in the paper's classifier training.
Runs under ``torchrun`` like the other trainers. Module-level imports: torch and numpy.

Against the register shortcut (the paper's classifier, trained on Bach chorales and fiddle
tunes, learned "low = bach, high = folk"):

* ``--register-norm`` (default on): the model centres each window's mean pitch before its
  first layer (:func:`composer.models.classifier.centre_register`);
* ``--transpose N``: each training window is moved by a random shift in ``-N..N``
  semitones (only shifts that keep it inside the 84 pitches);
* ``--controls W``: each step also sees register-matched random-note windows of both
  domains (:func:`composer.music.genres.random_note_windows`: the domain's pitch
  histogram, note lengths and note counts, uniform starts) with the uniform distribution
  as target, weight ``W`` - so notes in a genre's register are not that genre by
  themselves (outlier exposure). The held-out control figures of ``eval cyclegan`` use
  fresh draws, and a second control the trainer never sees (real windows with every
  pitch redrawn).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from composer.models.classifier import ClassifierConfig, GenreClassifier
from composer.music.genres import NoteStats, random_note_windows
from composer.training.cyclegan import load_domain_arrays
from composer.training.loop import (JsonlLog, Timer, add_run_args, export_weights, load_checkpoint,
                                    load_optimizer_tensors, open_run, optimizer_tensors, prefixed, read_jsonl,
                                    save_checkpoint, unprefixed)


@torch.no_grad()
def accuracy(model: GenreClassifier, windows_by_class: list[np.ndarray], device="cpu", batch: int = 256) -> dict:
    """Held-out accuracy overall and per class (class k = domain k)."""
    model.eval()
    per, correct, total = [], 0, 0
    for k, w in enumerate(windows_by_class):
        hits = 0
        for s in range(0, len(w), batch):
            x = torch.from_numpy(w[s:s + batch].astype(np.float32)).reshape(-1, 1, 64, w.shape[-1]).to(device)
            hits += int((model(x).argmax(1) == k).sum())
        per.append(hits / max(1, len(w)))
        correct += hits
        total += len(w)
    model.train()
    return {"acc": correct / max(1, total), "acc_balanced": float(np.mean(per)), "acc_per_class": per}


def transposed_batch(windows: np.ndarray, batch: int, rng: np.random.Generator, max_shift: int,
                     device) -> torch.Tensor:
    """``batch`` random windows, each moved by a random shift in ``-max_shift..max_shift`` that
    keeps all its notes inside the pitch range (``max_shift=0``: as they are)."""
    idx = rng.integers(0, len(windows), size=batch)
    w = windows[idx]
    if max_shift > 0:
        used = w.any(axis=(1, 2))                              # (batch, pitches)
        p = used.shape[1]
        lo = np.where(used.any(1), used.argmax(1), 0)          # lowest used pitch
        hi = np.where(used.any(1), p - 1 - used[:, ::-1].argmax(1), p - 1)
        down = np.minimum(max_shift, lo)
        up = np.minimum(max_shift, p - 1 - hi)
        shifts = rng.integers(-down, up + 1)
        out = np.zeros_like(w)
        for k, sh in enumerate(shifts):
            out[k] = np.roll(w[k], int(sh), axis=-1)           # no wrap: the shift fits by construction
        w = out
    x = torch.from_numpy(w.astype(np.float32))
    return x.reshape(batch, 1, -1, x.shape[-1]).to(device)


def export_classifier(src, dst, extra: dict | None = None, half: bool = True) -> Path:
    """Ship a classifier checkpoint (weights only, float16 by default) with its model card."""
    return export_weights(src, dst, lambda t: {k: v for k, v in t.items() if k.startswith("C.")}, "classifier",
                          half, extra)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="composer train classifier", description=__doc__.split("\n")[0])
    p.add_argument("--domain-a", default="bach")
    p.add_argument("--domain-b", default="folk")
    add_run_args(p, out="runs/classifier", steps=1500, checkpoint_every=100, log_every=10)
    p.add_argument("--batch", type=int, default=32, help="windows per domain per step")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--width", type=int, default=64, help="first layer filters (paper 64)")
    p.add_argument("--sigma", type=float, default=0.0, help="std of Gaussian noise added to training inputs")
    p.add_argument("--no-register-norm", dest="register_norm", action="store_false",
                   help="do not centre each window's mean pitch before the first layer (the paper's classifier)")
    p.add_argument("--transpose", type=int, default=12,
                   help="random transposition of training windows, -N..N semitones (0: none)")
    p.add_argument("--controls", type=float, default=1.0,
                   help="weight of the uniform-target loss on register-matched random-note windows (0: none)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    d, out, ckpt_path = open_run(args)
    device = d.device
    cfg = ClassifierConfig(width=args.width, register_norm=args.register_norm)
    tensors, card = None, {}
    if ckpt_path.exists() and not args.no_resume:
        tensors, card = load_checkpoint(ckpt_path, device="cpu")
        cfg = ClassifierConfig.from_dict(card["config"])
    A, B = load_domain_arrays(args.domain_a), load_domain_arrays(args.domain_b)
    stats = [NoteStats.of(A["train"]), NoteStats.of(B["train"])]
    torch.manual_seed(args.seed + d.rank)
    rng = np.random.default_rng(args.seed * 1000 + d.rank + card.get("step", 0) * 7919)
    model = GenreClassifier(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.5, 0.999))
    step, best = 0, card.get("best_acc", -1.0)
    if tensors is not None:
        model.load_state_dict(unprefixed(tensors, "C"))
        load_optimizer_tensors(opt, tensors, "opt")
        step = int(card["step"])
    model.to(device)
    timer = Timer(card.get("wall_s", 0.0))
    train_model = model
    if d.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP
        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    log = JsonlLog(out / "log.jsonl", enabled=d.main)
    log.keep_until(step)  # rows after the resumed step are redone
    if d.main and step and log.path.exists():
        rows = [r for r in read_jsonl(log.path) if r.get("step", 0) <= step]
        log.path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if d.main:
        print(f"classifier {A['name']} vs {B['name']}: {len(A['train'])} / {len(B['train'])} training windows, "
              f"{len(A['test'])} / {len(B['test'])} held out; threads {torch.get_num_threads()}; "
              f"step {step} -> {args.steps}", file=sys.stderr)

    def save(metrics: dict):
        nonlocal best
        if not d.main:
            return
        c = {"model": "classifier", "config": cfg.to_dict(), "step": step, "wall_s": round(timer.elapsed, 1),
             "classes": [A["name"], B["name"]], "domain_specs": [args.domain_a, args.domain_b],
             "data": {A["name"]: A["counts"], B["name"]: B["counts"]}, "batch": 2 * args.batch * d.world,
             "lr": args.lr, "sigma": args.sigma, "transpose": args.transpose, "controls": args.controls,
             "test": metrics, "best_acc": max(best, metrics["acc"]),
             "trained_on": f"{device.type} x{d.world}, fp32, {torch.get_num_threads()} thread(s)"}
        t = {**prefixed(model.state_dict(), "C"), **optimizer_tensors(opt, "opt")}
        save_checkpoint(ckpt_path, t, c)
        if metrics["acc"] > best:
            best = metrics["acc"]
            save_checkpoint(out / "best.safetensors", prefixed(model.state_dict(), "C"), c)

    bar = None
    if d.main and not args.quiet:
        try:
            from tqdm import tqdm
            bar = tqdm(total=args.steps, initial=step, desc="classifier", dynamic_ncols=True)
        except ImportError:
            bar = None
    labels = torch.cat([torch.zeros(args.batch, dtype=torch.long), torch.ones(args.batch, dtype=torch.long)]).to(device)
    model.train()
    metrics = None
    while step < args.steps:
        x = torch.cat([transposed_batch(A["train"], args.batch, rng, args.transpose, device),
                       transposed_batch(B["train"], args.batch, rng, args.transpose, device)])
        n_ctl = args.batch // 2 if args.controls > 0 else 0
        if n_ctl:
            ctl = np.concatenate([random_note_windows(st, n_ctl, rng) for st in stats])
            x = torch.cat([x, torch.from_numpy(ctl.astype(np.float32)).reshape(len(ctl), 1, -1, ctl.shape[-1]).to(device)])
        if args.sigma > 0:
            x = x + torch.randn_like(x) * args.sigma
        logits = train_model(x)
        loss = F.cross_entropy(logits[:len(labels)], labels)
        if n_ctl:   # uniform target: cross-entropy to 1/K for every class
            loss = loss - args.controls * F.log_softmax(logits[len(labels):], dim=1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if not math.isfinite(loss.item()):
            print(f"non-finite loss at step {step}; stopping", file=sys.stderr)
            return 1
        if d.main and step % args.log_every == 0:
            log.write(step=step, loss=round(loss.item(), 5), wall_s=round(timer.elapsed, 2))
        if bar is not None:
            bar.update(1)
            if step % args.log_every == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % args.checkpoint_every == 0 or step == args.steps:
            metrics = accuracy(model, [A["test"], B["test"]], device)
            if d.main:
                log.write(step=step, test_acc=round(metrics["acc"], 4), test_acc_balanced=round(metrics["acc_balanced"], 4),
                          wall_s=round(timer.elapsed, 2))
            save(metrics)
    if bar is not None:
        bar.close()
    if d.main and metrics is not None:
        print(f"held-out accuracy {metrics['acc']:.4f} (balanced {metrics['acc_balanced']:.4f}; "
              f"per class {', '.join(f'{v:.4f}' for v in metrics['acc_per_class'])}); best {best:.4f}", file=sys.stderr)
    d.barrier()
    d.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
