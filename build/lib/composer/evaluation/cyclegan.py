"""Evaluate genre-transfer pairs: ``python -m composer eval cyclegan [--json]``.

For each shipped pair (``checkpoints/cyclegan_A_B.safetensors`` with its
``classifier_A_B``) on the held-out (song-level) test windows of both domains:

* ``clf_acc`` - the classifier's accuracy on real test windows of A and B together;
* transfer strength as the paper defines it, with ``P_A(x)`` the share of windows the
  classifier puts in A, ``x_hat_B = G_AB(x_A)`` and ``x_tilde_A = G_BA(x_hat_B)``:
  ``S_A->B = 1/2 [P_A(x_A) - P_A(x_hat_B) + P_A(x_tilde_A) - P_A(x_hat_B)]``, likewise
  ``S_B->A``; ``s_tot`` is their mean. Outputs are decoded exactly as the transfer command
  does (strength 1, density guard on); ``s_tot_unguarded`` is the same at a plain 0.5
  threshold, as in the paper;
* content kept: ``cycle_f1`` (F1 of the sounding cells of ``x_tilde`` against ``x``) and
  ``onset_steps_kept`` (share of the output's onset steps that are the input's);
* note density (notes per bar) of the real test windows of both domains and of the
  outputs in each direction, with the share of output windows inside the target domain's
  range (1st-99th percentile of its training windows).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _share(model, windows: np.ndarray, cls: int, batch: int = 256) -> float:
    """Share of ``windows`` (binary, (N, 4, 16, 84)) the classifier puts in class ``cls``."""
    import torch
    from composer.models.cyclegan import to_input
    hits = 0
    with torch.no_grad():
        for s in range(0, len(windows), batch):
            hits += int((model(to_input(windows[s:s + batch])).argmax(1) == cls).sum())
    return hits / max(1, len(windows))


def _f1(x: np.ndarray, y: np.ndarray) -> float:
    """F1 of the sounding cells of ``y`` against ``x`` (1 = identical rolls)."""
    tp = float((x & y).sum())
    return 2 * tp / max(1.0, float(x.sum() + y.sum()))


def _dens(x: np.ndarray, rng=None) -> dict:
    from composer.music.genres import note_density
    d = note_density(x)
    out = {"mean": round(float(d.mean()), 3), "min": round(float(d.min()), 3), "max": round(float(d.max()), 3)}
    if rng is not None:
        out["in_target_range"] = round(float(((d >= rng[0] - 1e-9) & (d <= rng[1] + 1e-9)).mean()), 4)
    return out


def _onset_step_overlap(x: np.ndarray, y: np.ndarray) -> float:
    """Share of the output's onset steps that are onset steps of the input (rhythm kept)."""
    from composer.music.genres import onsets
    sx = onsets(x).reshape(len(x), -1, x.shape[-1]).any(-1)
    sy = onsets(y).reshape(len(y), -1, y.shape[-1]).any(-1)
    return float((sx & sy).sum() / max(1, sy.sum()))


def _transfer_all(model, x, to, guard, batch: int = 64):
    from composer.api.cyclegan import transfer_windows
    outs = [transfer_windows(model, x[s:s + batch], to, guard=guard)[0] for s in range(0, len(x), batch)]
    return np.concatenate(outs) if outs else x


def evaluate_pair(path, max_windows: int | None = None, unguarded: bool = True, split: str = "test") -> dict:
    """All figures of one pair (see the module docstring).

    ``split="train"`` measures on (a spread of) training windows instead: for choosing a
    checkpoint without looking at the held-out windows the reported figures come from.
    """
    from composer.errors import CheckpointError
    from composer.training.cyclegan import load_domain_arrays
    from composer.api.cyclegan import load_model
    model = load_model(str(path))
    if model.classifier is None:
        raise CheckpointError(f"no classifier next to {Path(path).name} (expected "
                              f"{Path(path).name.replace('cyclegan_', 'classifier_')})")
    a, b = model.domains
    if model.classifier_classes != [a, b]:
        raise CheckpointError(f"the classifier's classes {model.classifier_classes} are not the pair's {[a, b]}")
    specs = model.card.get("domain_specs", [a, b])
    A, B = load_domain_arrays(specs[0]), load_domain_arrays(specs[1])
    xa, xb = A[split], B[split]
    if max_windows:   # an even spread, not the first songs only
        xa = xa[np.linspace(0, len(xa) - 1, min(max_windows, len(xa))).astype(int)]
        xb = xb[np.linspace(0, len(xb) - 1, min(max_windows, len(xb))).astype(int)]
    clf = model.classifier
    n_a, n_b = len(xa), len(xb)
    pa_real, pb_real = _share(clf, xa, 0), _share(clf, xb, 1)
    row = {"pair": f"{a}-{b}", "clf_acc": round((pa_real * n_a + pb_real * n_b) / (n_a + n_b), 4),
           "clf_acc_per_domain": {a: round(pa_real, 4), b: round(pb_real, 4)}}
    rng_a, rng_b = model.density_range.get(a), model.density_range.get(b)
    for guard in ([True, False] if unguarded else [True]):
        fb = _transfer_all(model, xa, b, guard)      # x_hat_B
        ca = _transfer_all(model, fb, a, guard)      # x_tilde_A
        fa = _transfer_all(model, xb, a, guard)      # x_hat_A
        cb = _transfer_all(model, fa, b, guard)      # x_tilde_B
        pa_fb, pa_ca = _share(clf, fb, 0), _share(clf, ca, 0)
        pb_fa, pb_cb = _share(clf, fa, 1), _share(clf, cb, 1)
        s_a2b = 0.5 * (pa_real - pa_fb + pa_ca - pa_fb)
        s_b2a = 0.5 * (pb_real - pb_fa + pb_cb - pb_fa)
        if guard:
            row.update({"s_a2b": round(s_a2b, 4), "s_b2a": round(s_b2a, 4), "s_tot": round((s_a2b + s_b2a) / 2, 4),
                        "p_target_a2b": round(1 - pa_fb, 4), "p_target_b2a": round(1 - pb_fa, 4),
                        "cycle_f1": {a: round(_f1(xa, ca), 4), b: round(_f1(xb, cb), 4)},
                        "onset_steps_kept": {f"{a}->{b}": round(_onset_step_overlap(xa, fb), 4),
                                             f"{b}->{a}": round(_onset_step_overlap(xb, fa), 4)},
                        "density": {a: {**_dens(xa), "range": rng_a}, b: {**_dens(xb), "range": rng_b}},
                        "density_out_a2b": _dens(fb, rng_b), "density_out_b2a": _dens(fa, rng_a),
                        "silent_out_windows": int((~fb.reshape(len(fb), -1).any(1)).sum()
                                                  + (~fa.reshape(len(fa), -1).any(1)).sum())})
        else:
            row.update({"s_a2b_unguarded": round(s_a2b, 4), "s_b2a_unguarded": round(s_b2a, 4),
                        "s_tot_unguarded": round((s_a2b + s_b2a) / 2, 4),
                        "in_range_unguarded": {f"{a}->{b}": _dens(fb, rng_b)["in_target_range"],
                                               f"{b}->{a}": _dens(fa, rng_a)["in_target_range"]}})
    row["split"] = split
    row["test_windows" if split == "test" else "windows"] = {a: n_a, b: n_b}
    row["steps"] = model.card.get("step")
    row["checkpoint"] = Path(path).name
    return row


def main(argv: list[str] | None = None) -> int:
    from composer.api.cyclegan import shipped_pairs
    p = argparse.ArgumentParser(prog="python -m composer eval cyclegan", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", nargs="*", default=None, help="CycleGAN checkpoints (default: the shipped pairs)")
    p.add_argument("--max-windows", type=int, default=None, help="test windows per domain (default: all)")
    p.add_argument("--no-unguarded", action="store_true", help="skip the plain-threshold figures")
    p.add_argument("--split", default="test", choices=["test", "train"],
                   help="held-out windows (default) or training windows (to pick a checkpoint)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    paths = [Path(c) for c in args.checkpoint] if args.checkpoint else shipped_pairs()
    if not paths:
        from composer.errors import CheckpointError
        raise CheckpointError("no CycleGAN checkpoints in checkpoints/ and none given with --checkpoint")
    rows = [evaluate_pair(path, args.max_windows, unguarded=not args.no_unguarded, split=args.split) for path in paths]
    if args.json:
        print(json.dumps({"pairs": rows}))
    else:
        for r in rows:
            a, b = r["pair"].split("-")
            n = sum(r.get("test_windows", r.get("windows", {})).values())
            print(f"{r['pair']}: classifier {r['clf_acc']:.3f} on {n} {r['split']} windows; "
                  f"S {a}->{b} {r['s_a2b']:.3f}, {b}->{a} {r['s_b2a']:.3f}, total {r['s_tot']:.3f} "
                  f"(unguarded {r.get('s_tot_unguarded', float('nan')):.3f}); output windows in the target's density "
                  f"range: {r['density_out_a2b']['in_target_range']:.0%} / {r['density_out_b2a']['in_target_range']:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
