"""``python -m composer eval musegan [--n 1000] [--json]``: the model beside Bach and two baselines.

Columns, all measured by the same code (composer.music.metrics) on codes decoded from the
model's raw output (no musical post-processing):

* ``model``              ``--n`` phrases from random latents (``--seed``, the card's truncation)
* ``held_out_bach``      the validation chorales, non-overlapping windows (the reference)
* ``training_bach``      the training chorales, non-overlapping windows
* ``random_pitches``     held-out Bach's rhythms with a uniformly random pitch per note in each
  voice's range (baseline a: fails on voice leading and harmony)
* ``transposed_voices``  held-out Bach with each voice transposed on its own by +-1..3
  semitones (baseline b: same rhythms and contours, wrong harmony)

The bar set (issue 15, :data:`composer.music.metrics.BAR_RULES`) is checked for every column;
a metric set is only trusted when held-out Bach passes it and both baselines fail it.
Copying (``copied_bars``) and ``nn_distance`` compare each column with the training chorales
(so the training column copies itself by construction: that row shows the detector works).
``--json`` prints ``{"model", "held_out_bach", "training_bach", "random_pitches",
"transposed_voices", "bar", "bar_met", "truncation", "n"}``; without it, a table.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from composer.evaluation import rounded
from composer.music import metrics

#: Rows printed first (the bar set), then the rest.
KEYS = ("all_voices", "parallels", "stepwise", "beat_triads", "sixteenths", "half_or_longer",
        "upc_S", "upc_A", "upc_T", "upc_B", "qn", "td_mean", "scale_consistency", "range_ok",
        "copied_bars", "nn_distance", "diversity")
COLUMNS = ("model", "held_out_bach", "training_bach", "random_pitches", "transposed_voices")

#: Truncations tried by ``--truncation auto`` (None = untruncated latents).
TRUNCATION_GRID = (None, 2.5, 2.0, 1.5, 1.0)


def reference_codes(n_bars: int, data: str = "bach", split: str = "valid", hop: int | None = None) -> np.ndarray:
    """Windows ``(n, 4, n_bars, 16, 84)`` of one split, no transposition (no overlap by default)."""
    from composer.training.musegan import Windows, resolve_data
    w = Windows(resolve_data(data), n_bars, split=split, hop=hop or n_bars)
    return w.codes_at(np.arange(len(w)))


def training_bars(data: str = "bach") -> np.ndarray:
    """Every bar of the training split as one-bar windows ``(bars, 4, 1, 16, 84)`` (for copying)."""
    from composer.training.musegan import resolve_data
    with np.load(resolve_data(data), allow_pickle=False) as d:
        codes, starts, bars, split = d["codes"], d["song_start"], d["song_bars"], d["split"]
    idx = np.concatenate([np.arange(s, s + b) for s, b, sp in zip(starts, bars, split) if sp == 0])
    return codes[:, idx].transpose(1, 0, 2, 3)[:, :, None]


# ---------------------------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------------------------

def random_pitch_baseline(codes: np.ndarray, seed: int = 0, ranges=metrics.VOICE_RANGES,
                          pitch_offset: int = metrics.pitch_offset_default) -> np.ndarray:
    """Baseline (a): the same onsets, holds and rests, each note a uniformly random pitch in
    its voice's range."""
    rng = np.random.default_rng(seed)
    n, T, N, S, P = codes.shape
    pitch, onset = metrics.voice_lines(codes)                 # (n, T, N*S)
    note_id = np.cumsum(onset, axis=-1)                       # per line: which note each step is
    out = np.zeros((n, T, N * S, P), dtype=np.uint8)
    for t in range(T):
        lo, hi = ranges[t][1] - pitch_offset, ranges[t][2] - pitch_offset
        new = rng.integers(lo, hi + 1, size=(n, N * S + 1))
        p = np.take_along_axis(new, note_id[:, t], axis=1)
        i, s = np.nonzero(pitch[:, t] >= 0)
        out[i, t, s, p[i, s]] = np.where(onset[i, t, s], metrics.ONSET, metrics.HOLD)
    return out.reshape(n, T, N, S, P)


def transposed_voices_baseline(codes: np.ndarray, seed: int = 0, max_shift: int = 3) -> np.ndarray:
    """Baseline (b): every voice of every window moved on its own by +-1..``max_shift`` semitones."""
    rng = np.random.default_rng(seed)
    out = np.array(codes, copy=True)
    n, T = codes.shape[:2]
    shifts = rng.integers(1, max_shift + 1, size=(n, T)) * rng.choice([-1, 1], size=(n, T))
    for i in range(n):
        for t in range(T):
            out[i, t] = np.roll(codes[i, t], int(shifts[i, t]), axis=-1)
    return out


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------

def measure(codes: np.ndarray, train_bars: np.ndarray | None = None, train_windows: np.ndarray | None = None,
            nn_samples: int = 300) -> dict:
    """:func:`metrics.evaluate` plus copying and nearest-neighbour distance against training."""
    out = metrics.evaluate(codes)
    if train_bars is not None:
        out["copied_bars"] = metrics.copied_bars(codes, train_bars)
    if train_windows is not None:
        out["nn_distance"] = metrics.nn_distance(codes, train_windows, max_samples=nn_samples)
    return out


def score(model: dict, reference: dict) -> tuple[int, float]:
    """(rows of the bar missed, worst relative distance on the rows compared with Bach): lower is better."""
    bar = metrics.check_bar(model, reference)
    return sum(not v for v in bar.values()), max(abs(model[k] / reference[k] - 1) for k in metrics.BAR_KEYS)


def worst_deviation(model: dict, reference: dict) -> float:
    """One number for the truncation search: misses of the bar, then the worst relative distance."""
    missed, worst = score(model, reference)
    return missed + min(worst, 0.999)


def choose_truncation(model, n: int = 1000, seed: int = 1, data: str = "bach",
                      grid=TRUNCATION_GRID) -> tuple[float | None, dict]:
    """The truncation whose samples sit closest to the *training* chorales.

    Measured against the training split (with another sampling seed than the evaluation's),
    so the held-out chorales that ``eval`` compares with play no part in the choice.
    Returns ``(t, {str(t): score})``.
    """
    train = metrics.evaluate(reference_codes(model.config.n_bars, data, split="train"))
    scores = {t: worst_deviation(metrics.evaluate(model_codes(model, n, seed, t)), train) for t in grid}
    best = min(grid, key=lambda t: scores[t])
    return best, {str(t): round(v, 4) for t, v in scores.items()}


def model_codes(model, n: int, seed: int = 0, truncation: float | None = None) -> np.ndarray:
    from composer.api import musegan as mg
    return mg.generate(model, mg.random_latents(model, n, seed=seed, truncation=truncation))


def evaluate(checkpoint=None, n: int = 1000, seed: int = 0, truncation: float | str | None = None,
             data: str = "bach", weights: str = "ema", baselines: bool = True) -> dict:
    """Every column's metrics, the bar per column, the truncation used (and its search when
    ``truncation="auto"``)."""
    from composer.api import musegan as mg
    model = mg.load_generator(checkpoint, weights=weights)
    n_bars = model.config.n_bars
    out: dict = {}
    if truncation == "auto":
        truncation, out["truncation_search"] = choose_truncation(model, n, data=data)
    else:
        truncation = mg.resolve_truncation(model, truncation)
    held = reference_codes(n_bars, data, "valid")
    bars, windows = training_bars(data), reference_codes(n_bars, data, "train", hop=1)
    cols = {"model": model_codes(model, n, seed, truncation), "held_out_bach": held}
    if baselines:
        cols.update(training_bach=reference_codes(n_bars, data, "train"),
                    random_pitches=random_pitch_baseline(held, seed), transposed_voices=transposed_voices_baseline(held, seed))
    res = {k: measure(c, bars, windows) for k, c in cols.items()}
    ref = res["held_out_bach"]
    verdicts = {k: metrics.check_bar(v, ref) for k, v in res.items()}
    rows = list(verdicts["model"])
    bar = {r: {"rule": metrics.BAR_RULES.get(r, ""), **{k: verdicts[k][r] for k in res}} for r in rows}
    met = {k: f"{sum(v.values())}/{len(v)}" for k, v in verdicts.items()}
    return {**res, "bar": bar, "bar_met": met, "truncation": truncation, "n": n, "seed": seed, **out}


def _truncation(text: str):
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def table(res: dict) -> str:
    cols = [c for c in COLUMNS if c in res]
    short = {"model": "model", "held_out_bach": "Bach held", "training_bach": "Bach train",
             "random_pitches": "rand pitch", "transposed_voices": "transposed"}
    lines = [f"{'metric':<18}" + "".join(f"{short[c]:>14}" for c in cols) + "  rule"]
    bar = res["bar"]
    rest = [k for k in res["model"] if k not in KEYS and k != "note_length_hist"]
    for k in list(KEYS) + rest:
        if k not in res["model"]:
            continue
        cells = ""
        for c in cols:
            mark = "" if k not in bar else (" ok" if bar[k][c] else " NO")
            cells += f"{res[c][k]:>11.3f}{mark:>3}"
        lines.append(f"{k:<18}{cells}  {bar[k]['rule'] if k in bar else ''}")
    lines.append(f"{'bar met':<18}" + "".join(f"{res['bar_met'][c]:>14}" for c in cols))
    return "\n".join(lines)


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
    p.add_argument("--no-baselines", action="store_true", help="only the model and held-out Bach")
    p.add_argument("--export", default=None, metavar="PATH",
                   help="also ship --checkpoint's generator to PATH (fp16 safetensors + model card with these metrics)")
    p.add_argument("--card", default=None, metavar="JSON",
                   help="with --export: a JSON file of extra model-card fields (history, notes)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    res = rounded(evaluate(args.checkpoint, args.n, args.seed, args.truncation, args.data, args.weights,
                          baselines=not args.no_baselines))
    trunc = res["truncation"]
    if args.export:
        from composer.training.musegan import export_generator
        search = {"truncation_search": {"grid": res.pop("truncation_search"),
                                        "against": "training chorales, sampling seed 1"}} \
            if "truncation_search" in res else {}
        extra = json.loads(open(args.card).read()) if args.card else {}
        export_generator(args.checkpoint, args.export, {"truncation": trunc, **extra, "metrics": {
            "n_samples": args.n, "seed": args.seed, "truncation": trunc, **search,
            "decoding": "raw model output, monophonic Viterbi decode, no post-processing",
            "held_out_bach_data": "validation chorales, non-overlapping windows",
            **{k: v for k, v in res.items() if k in COLUMNS or k in ("bar", "bar_met")}}}, weights=args.weights)
    if args.json:
        print(json.dumps({k: v for k, v in res.items()}))
        return 0
    print(table(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
