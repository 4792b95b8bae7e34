"""``python -m composer eval harmonize [--chorales 30] [--folk 30] [--json]``: the harmonizer beside
Bach and beside baselines that should fail.

Melodies: the sopranos of held-out chorales (the validation split of the chorale cache,
composer.music.chorales; MuseGAN never trained on them) and Essen folk songs in 4/4
(music21's essenFolksong, which no Composer model trains on), each at most 32 bars.

Figures (all by composer.music.metrics, the code of ``eval musegan``):

* ``soprano_match``: share of the melody's sounding sixteenths (pooled over pieces) where the
  generator's *own* soprano has the melody's pitch and onset (before the melody is written in);
  ``soprano_match_written``: the same after writing it in (a labelled repair: 1 by construction).
* the chorale metrics of the piece: ``all_voices``, ``beat_triads`` and ``parallels`` over the four
  voices, ``stepwise`` over the three lower voices. ``model`` is the generator's own four voices;
  ``model_written`` the delivered piece (melody written in).
* columns: ``bach`` (Bach's own harmonization of the same melodies, real data), ``random_latents``
  (the melody over the lower voices of random latents: the generator unconditioned, baseline),
  ``other_chorale`` (the melody over the lower voices of another held-out chorale, baseline).
* ``riff``: "drop your riff" on the first ``--riff-bars`` bars of the held-out chorales: note F1
  per voice of the inverted latents' output against the chorale, beside random latents.
* ``seconds_per_4_bars``: the harmonizer's wall time per 4 bars here (``cpu_seconds_per_4_bars`` its
  process CPU time: the same on an idle machine; the bench measures both on one thread).
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time

import numpy as np

from composer.evaluation import rounded
from composer.music import metrics

log = logging.getLogger(__name__)

BARS = {"soprano_match": (">=", 0.98), "all_voices": (">=", 0.9), "beat_triads": (">=", 0.6),
        "parallels": ("<=", 0.5), "stepwise_lower": (">=", 0.5), "riff_note_f1": (">=", 0.6),
        "seconds_per_4_bars": ("<=", 3.0)}


def held_out_chorales(n: int, max_bars: int = 32) -> list[tuple[str, np.ndarray]]:
    """``(name, codes (4, bars, 16, 84))`` of the first ``n`` validation chorales of at most ``max_bars`` bars."""
    from composer.training.musegan import resolve_data
    with np.load(resolve_data("bach"), allow_pickle=False) as d:
        codes, starts, bars, split, names = d["codes"], d["song_start"], d["song_bars"], d["split"], d["names"]
    out = []
    for s, b, sp, name in zip(starts, bars, split, names):
        if sp == 1 and b <= max_bars and (codes[0, s:s + b] > 0).any():
            out.append((str(name), codes[:, s:s + b]))
        if len(out) >= n:
            break
    return out


def essen_melodies(n: int, max_bars: int = 32) -> list:
    """``n`` Essen folk songs in 4/4 (one meter throughout), at most ``max_bars`` bars, inside a
    soprano's span, as :class:`composer.music.melody.Melody` (every 5th tune of each file, files in turn)."""
    import io

    import pretty_midi

    from composer.errors import ComposerError
    from composer.music import melody as M
    from composer.music.abc import ESSEN_COLLECTION, music21_corpus_dir, split_tunes
    files = sorted((music21_corpus_dir() / ESSEN_COLLECTION).glob("*.abc"))
    per_file = [split_tunes(f.read_text(encoding="utf-8", errors="replace")) for f in files]
    out, i = [], 0
    lo, hi = metrics.VOICE_RANGES[0][1:]
    while len(out) < n and any(i * 5 < len(t) for t in per_file):
        for f, tunes in zip(files, per_file):
            j = i * 5
            if j >= len(tunes) or len(out) >= n:
                continue
            ms = re.findall(r"^M:\s*(\S+)", tunes[j], flags=re.M)
            if set(ms) != {"4/4"}:
                continue
            try:
                parts = M.abc_melody_parts(tunes[j])  # the corpus is trusted: no sandbox needed
                if parts["error"]:
                    continue
                pm = pretty_midi.PrettyMIDI(io.BytesIO(parts["midi"]))
                mel = M.from_pretty_midi(pm, parts["pickup"], source=f"{f.stem}#{j}", meters=parts["meters"])
                M.range_shift(mel, lo, hi)
            except (ComposerError, Exception):  # noqa: BLE001 - a tune music21 cannot read is skipped
                continue
            if mel.n_bars <= max_bars and len(mel.notes) >= 8:
                out.append(mel)
        i += 1
    return out


def _joined(pieces: list[np.ndarray]) -> np.ndarray:
    """Pieces ``(4, bars, 16, 84)`` one after another as one window ``(1, 4, total bars, 16, 84)``."""
    return np.concatenate(pieces, axis=1)[None]


def piece_metrics(pieces: list[np.ndarray]) -> dict:
    x = _joined(pieces)
    par, trans = metrics.parallels(x)
    return {"all_voices": metrics.all_voices_share(x), "beat_triads": metrics.beat_triads(x), "parallels": par,
            "stepwise_lower": metrics.stepwise_share(x[:, 1:]), "stepwise_all": metrics.stepwise_share(x),
            "range_ok": metrics.range_ok(x), "voice_crossings": metrics.voice_crossings(x), "transitions": trans}


def _with_melody(lower: np.ndarray, melody: np.ndarray) -> np.ndarray:
    """Soprano = ``melody`` (bars, 16, 84), the other voices from ``lower`` (cut or padded to its length)."""
    B = melody.shape[0]
    out = np.zeros((lower.shape[0], B) + melody.shape[1:], np.uint8)
    n = min(B, lower.shape[1])
    out[1:, :n] = lower[1:, :n]
    out[0] = melody
    return out


def _pooled_match(pairs) -> float:
    """Pooled share of the melody's sounding steps matched, over ``(codes, target)`` pairs."""
    hit = tot = 0
    for c, t in pairs:
        pc, oc = metrics.voice_lines(c[None, :1])
        pt, ot = metrics.voice_lines(t[None, None])
        s = pt >= 0
        hit += int(((pc == pt) & (oc == ot))[s].sum())
        tot += int(s.sum())
    return hit / tot if tot else 0.0


def evaluate_melodies(melodies, comp, settings, lower_for=None, seed: int = 0) -> dict:
    """Harmonize every melody; the columns' metrics and the soprano figures."""
    from composer.api import harmonize as H
    from composer.music import melody as M
    model, written, rand, pairs, rand_pairs, per_piece, secs, cpu, bars = [], [], [], [], [], [], 0.0, 0.0, 0
    for k, mel in enumerate(melodies):
        res = H.harmonize(mel, comp, settings)
        shift = res.shift
        target = M.melody_codes(mel.transposed(shift))                     # in the soprano's range
        model.append(res.model_codes)
        written.append(H.shift_codes(res.codes, shift))
        pairs.append((res.model_codes, target))
        per_piece.append(res.soprano_match)
        secs += res.seconds
        cpu += res.cpu_seconds
        bars += mel.n_bars
        st = comp.new_state(seed=seed + 1000 + k, n_bars=mel.n_bars)       # unconditioned generator
        raw = comp.codes(st, raw=True)
        rand.append(_with_melody(raw, target))
        rand_pairs.append((raw, target))
        log.info("%d/%d %s: %d bars, soprano %.3f, %.1f s", k + 1, len(melodies), mel.source, mel.n_bars,
                 res.soprano_match, res.seconds)
    out = {"n": len(melodies), "bars": bars,
           "soprano_match": _pooled_match(pairs), "soprano_match_written": 1.0,
           "soprano_match_per_piece": {"min": float(np.min(per_piece)), "median": float(np.median(per_piece)),
                                       "share_at_least_0.98": float(np.mean(np.array(per_piece) >= 0.98))},
           "random_latents_soprano_match": _pooled_match(rand_pairs),
           "seconds_per_4_bars": 4 * secs / max(bars, 1), "cpu_seconds_per_4_bars": 4 * cpu / max(bars, 1),
           "model": piece_metrics(model), "model_written": piece_metrics(written),
           "random_latents": piece_metrics(rand)}
    return out


def evaluate_riffs(chorales, comp, settings, riff_bars: int = 4, seed: int = 0) -> dict:
    from composer.api import harmonize as H
    f1, rand_f1, secs = [], [], 0.0
    for k, (name, codes) in enumerate(chorales):
        piece = codes[:, :riff_bars]
        res = H.invert_piece(piece, comp, settings)
        f1.append(res.note_f1)
        secs += res.seconds
        raw = comp.codes(comp.new_state(seed=seed + 2000 + k, n_bars=piece.shape[1]))
        rand_f1.append([metrics.voice_note_f1(raw[v], piece[v]) for v in range(piece.shape[0])])
        log.info("riff %d/%d %s: note F1 %s (%.1f s)", k + 1, len(chorales), name, np.round(res.note_f1, 3),
                 res.seconds)
    f1, rand_f1 = np.array(f1), np.array(rand_f1)
    names = metrics.VOICE_NAMES
    return {"n": len(chorales), "bars_each": riff_bars,
            "note_f1": {names[v]: float(f1[:, v].mean()) for v in range(f1.shape[1])},
            "note_f1_mean": float(f1.mean()),
            "random_latents_note_f1": {names[v]: float(rand_f1[:, v].mean()) for v in range(rand_f1.shape[1])},
            "random_latents_note_f1_mean": float(rand_f1.mean()),
            "seconds_each": secs / max(len(chorales), 1)}


def _verdict(value: float, rule) -> bool:
    op, v = rule
    return value >= v if op == ">=" else value <= v


def evaluate(n_chorales: int = 30, n_folk: int = 30, riff_n: int = 30, riff_bars: int = 4, restarts: int | None = None,
             steps: int | None = None, checkpoint=None, seed: int = 0) -> dict:
    from composer.api import harmonize as H
    from composer.api.compose import cached_composer
    from composer.music import melody as M
    comp = cached_composer(checkpoint)
    s = H.Settings(seed=seed)
    if restarts:
        s.restarts = restarts
    if steps:
        s.steps = steps
    out: dict = {"settings": {k: getattr(s, k) for k in s.__dataclass_fields__}}
    chorales = held_out_chorales(max(n_chorales, riff_n))
    if n_chorales:
        ch = chorales[:n_chorales]
        mels = [M.from_codes(c[0], source=name) for name, c in ch]
        res = evaluate_melodies(mels, comp, s, seed=seed)
        targets = [M.melody_codes(m) for m in mels]
        res["bach"] = piece_metrics([c for _, c in ch])
        res["other_chorale"] = piece_metrics([_with_melody(ch[(k + 1) % len(ch)][1], t) for k, t in enumerate(targets)])
        res["data"] = "held-out chorales (validation split of the chorale cache), sopranos"
        out["chorales"] = res
    if n_folk:
        res = evaluate_melodies(essen_melodies(n_folk), comp, s, seed=seed)
        res["data"] = "Essen folk songs in 4/4 (music21 essenFolksong; no Composer model trains on them)"
        out["folk"] = res
    if riff_n:
        out["riff"] = evaluate_riffs(chorales[:riff_n], comp, s, riff_bars, seed)
    bar = {}
    for part in ("chorales", "folk"):
        if part not in out:
            continue
        r = out[part]
        vals = {"soprano_match": r["soprano_match"], "seconds_per_4_bars": r["seconds_per_4_bars"],
                **{k: r["model"][k] for k in ("all_voices", "beat_triads", "parallels", "stepwise_lower")}}
        bar[part] = {k: {"value": v, "rule": " ".join(map(str, BARS[k])), "met": _verdict(v, BARS[k])}
                     for k, v in vals.items()}
        base = {"random_latents": r["random_latents"], **({"bach": r["bach"], "other_chorale": r["other_chorale"]}
                                                          if "bach" in r else {})}
        for col, m in base.items():
            bar[part][f"{col}_met"] = sum(_verdict(m[k], BARS[k]) for k in
                                          ("all_voices", "beat_triads", "parallels", "stepwise_lower"))
    if "riff" in out:
        v = out["riff"]["note_f1_mean"]
        bar["riff"] = {"riff_note_f1": {"value": v, "rule": ">= 0.6", "met": v >= 0.6},
                       "per_voice_met": {k: f >= 0.6 for k, f in out["riff"]["note_f1"].items()}}
    out["bar"] = bar
    return out


def table(res: dict) -> str:
    lines = []
    for part in ("chorales", "folk"):
        if part not in res:
            continue
        r = res[part]
        cols = [c for c in ("model", "model_written", "bach", "random_latents", "other_chorale") if c in r]
        lines.append(f"{part}: {r['n']} melodies, {r['bars']} bars; {r['data']}")
        lines.append(f"  soprano match (generator's own) {r['soprano_match']:.3f}   after writing the melody in "
                     f"{r['soprano_match_written']:.3f}   random latents {r['random_latents_soprano_match']:.3f}   "
                     f"{r['seconds_per_4_bars']:.2f} s per 4 bars")
        lines.append(f"  {'metric':<16}" + "".join(f"{c:>16}" for c in cols) + "  bar")
        for k in ("all_voices", "beat_triads", "parallels", "stepwise_lower"):
            rule = " ".join(map(str, BARS[k]))
            lines.append(f"  {k:<16}" + "".join(f"{r[c][k]:>16.3f}" for c in cols) + f"  {rule}")
    if "riff" in res:
        r = res["riff"]
        f1 = "  ".join(f"{k} {v:.3f}" for k, v in r["note_f1"].items())
        rf = "  ".join(f"{k} {v:.3f}" for k, v in r["random_latents_note_f1"].items())
        lines.append(f"riff ({r['n']} chorales, first {r['bars_each']} bars): note F1 {f1} (mean {r['note_f1_mean']:.3f}); "
                     f"random latents {rf}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="composer eval harmonize", description=__doc__.split("\n")[0])
    p.add_argument("--chorales", type=int, default=30, help="held-out chorale melodies (0: skip)")
    p.add_argument("--folk", type=int, default=30, help="Essen folk melodies (0: skip)")
    p.add_argument("--riff", type=int, default=30, help="held-out chorales for drop-your-riff (0: skip)")
    p.add_argument("--riff-bars", type=int, default=4, help="bars of each chorale the riff takes")
    p.add_argument("--restarts", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    t = time.perf_counter()
    res = rounded(evaluate(args.chorales, args.folk, args.riff, args.riff_bars, args.restarts, args.steps,
                          args.checkpoint, args.seed))
    res["wall_s"] = round(time.perf_counter() - t, 1)
    print(json.dumps(res) if args.json else table(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
