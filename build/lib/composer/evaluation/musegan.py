"""``python -m composer eval musegan [--n 1000] [--json]``: the model's metrics beside Bach's.

The reference is the held-out (validation) chorales cut into non-overlapping windows of
the model's length, measured by the same code (composer.music.metrics). ``--json`` prints
``{"model": {...}, "reference": {...}}``; without it, a table with the bar's verdict.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from composer.music import metrics

#: The keys of the bar, printed first.
KEYS = ("upc_S", "upc_A", "upc_T", "upc_B", "qn", "polyphony", "td_mean", "scale_consistency", "range_ok",
        "diversity")


#: Truncations tried by ``--truncation auto`` (None = untruncated latents).
TRUNCATION_GRID = (None, 2.5, 2.0, 1.5, 1.0)


def reference_codes(n_bars: int, data: str = "bach", split: str = "valid") -> np.ndarray:
    """Windows ``(n, 4, n_bars, 16, 84)`` of one split, no overlap, no transposition."""
    from composer.training.musegan import Windows, resolve_data
    w = Windows(resolve_data(data), n_bars, split=split, hop=n_bars)
    return w.codes_at(np.arange(len(w)))


def worst_deviation(model: dict, reference: dict) -> float:
    """The largest relative distance ``|model / reference - 1|`` over the bar's keys (inf if a
    floor of the bar, range or diversity, is missed)."""
    bar = metrics.check_bar(model, reference)
    if not (bar["range_ok"] and bar["diversity"]):
        return float("inf")
    return max(abs(model[k] / reference[k] - 1) for k in metrics.BAR_KEYS)


def choose_truncation(model, n: int = 1000, seed: int = 1, data: str = "bach",
                      grid=TRUNCATION_GRID) -> tuple[float | None, dict]:
    """The truncation whose samples sit closest to the *training* chorales.

    Measured against the training split (with another sampling seed than the evaluation's),
    so the held-out chorales that ``eval`` compares with play no part in the choice.
    Returns ``(t, {str(t): worst deviation})``.
    """
    train = metrics.evaluate(reference_codes(model.config.n_bars, data, split="train"))
    scores = {t: worst_deviation(metrics.evaluate(model_codes(model, n, seed, t)), train) for t in grid}
    best = min(grid, key=lambda t: scores[t])
    return best, {str(t): round(v, 4) for t, v in scores.items()}


def model_codes(model, n: int, seed: int = 0, truncation: float | None = None) -> np.ndarray:
    from composer.api import musegan as mg
    return mg.generate(model, mg.random_latents(model, n, seed=seed, truncation=truncation))


def evaluate(checkpoint=None, n: int = 1000, seed: int = 0, truncation: float | str | None = None,
             data: str = "bach", weights: str = "ema") -> dict:
    """``{"model", "reference", "truncation"[, "truncation_search"]}``; ``truncation="auto"``
    first picks one with :func:`choose_truncation`."""
    from composer.api import musegan as mg
    model = mg.load_generator(checkpoint, weights=weights)
    ref = reference_codes(model.config.n_bars, data)
    out = {}
    if truncation == "auto":
        truncation, out["truncation_search"] = choose_truncation(model, n, data=data)
    else:
        truncation = mg.resolve_truncation(model, truncation)
    return {"model": metrics.evaluate(model_codes(model, n, seed, truncation)),
            "reference": metrics.evaluate(ref), "truncation": truncation, **out}


def _round(d: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def _truncation(text: str):
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="composer eval musegan", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=None, help="default: checkpoints/musegan.safetensors")
    p.add_argument("--n", type=int, default=1000, help="samples to generate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truncation", type=_truncation, default=None,
                   help="clip latents to [-t, t] (default: the checkpoint's recommendation; 0 = off; "
                        "'auto' = the one closest to the training chorales, see choose_truncation)")
    p.add_argument("--data", default="bach", help="reference data (its validation split)")
    p.add_argument("--weights", default="ema", choices=["ema", "raw"],
                   help="for a training checkpoint: its moving-average (default) or current generator")
    p.add_argument("--export", default=None, metavar="PATH",
                   help="also ship --checkpoint's generator to PATH (fp16 safetensors + model card with these metrics)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    res = evaluate(args.checkpoint, args.n, args.seed, args.truncation, args.data, args.weights)
    model, ref, trunc = _round(res["model"]), _round(res["reference"]), res["truncation"]
    if args.export:
        from composer.training.musegan import export_generator
        bar = metrics.check_bar(res["model"], res["reference"])
        search = {"truncation_search": {"grid": res["truncation_search"],
                                        "against": "training chorales, sampling seed 1"}} \
            if "truncation_search" in res else {}
        export_generator(args.checkpoint, args.export, {"truncation": trunc, "metrics": {
            "n_samples": args.n, "seed": args.seed, "truncation": trunc, **search, "model": model,
            "reference": ref,
            "reference_data": "held-out Bach chorales (validation split), non-overlapping windows",
            "bar": bar, "bar_met": f"{sum(bar.values())}/{len(bar)}"}}, weights=args.weights)
    if args.json:
        print(json.dumps({"model": model, "reference": ref, "truncation": trunc}))
        return 0
    bar = metrics.check_bar(res["model"], res["reference"])
    print(f"{'metric':<20}{'model':>10}{'Bach':>10}  bar")
    for k in list(KEYS) + [k for k in model if k not in KEYS and k != "note_length_hist"]:
        verdict = "" if k not in bar else ("ok" if bar[k] else "MISS")
        print(f"{k:<20}{model[k]:>10.3f}{ref[k]:>10.3f}  {verdict}")
    print(f"bar met: {sum(bar.values())}/{len(bar)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
