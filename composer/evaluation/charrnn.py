"""Evaluate the ABC character LSTM: plain sampling against real tunes, loss per music
token against a 5-gram, and memorisation.

``python -m composer eval charrnn --n 100 --json`` prints one JSON object:

- ``data``: the validation set (near-duplicates of training tunes removed, see
  :func:`composer.music.abc.drop_near_duplicates`) and how many were removed;
- ``loss``: the LSTM's validation loss in nats per character of the whole text
  (``per_char``), per character of the tune bodies (``per_music_char``) and per
  folk-rnn-style token of the bodies (``per_token``: all body characters' nats, white
  space included, over the tokens of :func:`composer.music.abc_overlap.folk_tokens`;
  ``per_token_no_space``: white space not charged); ``ngram_*``: the same for an
  interpolated Kneser-Ney character 5-gram trained on the same training tunes;
- ``plain``: ``--n`` tunes written by plain sampling (temperature 1.0 unless
  ``--temperature``, no redraws, no constraints: the headline) -- valid and strict rates
  (:func:`composer.music.abc.check_abc`), memorisation (``longest_copy_max`` /
  ``copies_80_plus``: the longest verbatim copy of a training body, in characters of
  music without white space; ``shared_16gram_share``: the share of 16-character n-grams
  found in training), speed;
- ``guarded``: the same for the guarded sampler (a labelled option: lines that break
  the bars are redrawn -- rejection sampling on what ``strict`` measures);
- ``real``: the same checks and memorisation figures on real held-out tunes;
- ``bars``: each bar of issue 17 and whether it is met (on plain sampling).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import defaultdict
from pathlib import Path


class KneserNeyCharLM:
    """Interpolated Kneser-Ney character n-gram model (absolute discounting per order,
    D = n1 / (n1 + 2 n2); continuation counts for the lower orders; the unigram level is
    interpolated with a uniform distribution over the vocabulary)."""

    def __init__(self, order: int = 5):
        self.order = order

    def fit(self, text: str, vocab) -> "KneserNeyCharLM":
        n = self.order
        self.vocab = sorted(set(vocab) | set(text))
        self.V = len(self.vocab)
        counts = [defaultdict(int) for _ in range(n + 1)]  # counts[k][gram of length k]
        for k in range(1, n + 1):
            c = counts[k]
            for i in range(len(text) - k + 1):
                c[text[i:i + k]] += 1
        # the counts each order's estimate uses: raw for the highest, continuation below
        used = [None] * (n + 1)
        used[n] = counts[n]
        for k in range(1, n):
            cont = defaultdict(int)
            for gram in counts[k + 1]:
                cont[gram[1:]] += 1
            used[k] = cont
        self.tables = []
        for k in range(1, n + 1):
            c = used[k]
            n1 = sum(1 for v in c.values() if v == 1)
            n2 = sum(1 for v in c.values() if v == 2)
            d = n1 / (n1 + 2 * n2) if n1 + 2 * n2 else 0.5
            tot, types = defaultdict(int), defaultdict(int)
            for gram, v in c.items():
                tot[gram[:-1]] += v
                types[gram[:-1]] += 1
            self.tables.append((dict(c), d, dict(tot), dict(types)))
        return self

    def prob(self, history: str, ch: str) -> float:
        p = 1.0 / self.V
        for k in range(1, self.order + 1):
            if k - 1 > len(history):
                break
            h = history[len(history) - (k - 1):] if k > 1 else ""
            c, d, tot, types = self.tables[k - 1]
            t = tot.get(h, 0)
            if t == 0:
                continue  # unseen history: keep the lower-order estimate
            p = max(c.get(h + ch, 0) - d, 0.0) / t + d * types[h] / t * p
        return p

    def char_nats(self, text: str) -> list[float]:
        """-log p of every character of ``text`` but the first (index i-1 for character i)."""
        return [-math.log(self.prob(text[max(0, i - self.order + 1):i], text[i])) for i in range(1, len(text))]

    def nats_per_char(self, text: str) -> float:
        """Mean -log p of every character of ``text`` but the first, given up to
        ``order - 1`` previous characters."""
        total = 0.0
        for i in range(1, len(text)):
            total -= math.log(self.prob(text[max(0, i - self.order + 1):i], text[i]))
        return total / max(1, len(text) - 1)


def ngram_baseline(train_tunes, val_tunes, order: int = 5) -> float:
    """Validation nats/char of a Kneser-Ney character n-gram on the same split."""
    from composer.training.charrnn import join
    train_text, val_text = join(train_tunes), join(val_tunes)
    lm = KneserNeyCharLM(order).fit(train_text, set(train_text) | set(val_text))
    return lm.nats_per_char(val_text)


def measure_sampling(model, n_chars: int = 1000, seed: int = 0, guard: bool = True, repeats: int = 3) -> dict:
    """Speed of writing tunes at batch 1 on the CPU (checks excluded).

    ``chars_per_s``: characters of finished tunes per wall-clock second, the best of
    ``repeats`` runs of ``n_chars`` (the best run is the least disturbed by other
    processes on a shared machine); ``chars_per_cpu_s``: the same per second of this
    process's CPU time (what one idle core would give). With ``guard`` (as the CLI and
    UI sample) redrawn characters cost time but are not counted; ``guard=False`` is the
    model's raw sampling speed."""
    from composer.api.charrnn import SampleSettings
    settings = SampleSettings(max_chars=n_chars, guard=guard)
    best_wall, best_cpu, s = 0.0, 0.0, seed
    for _ in range(max(1, repeats)):
        done, t0, c0 = 0, time.perf_counter(), time.process_time()
        while done < n_chars:
            done += len(model.sample({}, "", s, settings))
            s += 1
        best_wall = max(best_wall, done / (time.perf_counter() - t0))
        best_cpu = max(best_cpu, done / max(time.process_time() - c0, 1e-9))
    return {"chars_per_s": best_wall, "chars_per_cpu_s": best_cpu}


def sampling_speed(model, n_chars: int = 1000, seed: int = 0, guard: bool = True) -> float:
    """Characters of finished tunes per wall-clock second (see :func:`measure_sampling`)."""
    return measure_sampling(model, n_chars, seed, guard)["chars_per_s"]


def body_spans(tunes) -> tuple[list[tuple[int, int]], int]:
    """Spans (start, end) of each tune's body in :func:`composer.training.charrnn.join`
    of ``tunes`` (the lines after K:, the last newline included), and the text length."""
    spans, pos = [], 0
    for t in tunes:
        t = t.rstrip("\n") + "\n"
        k = t.find("\nK:")
        start = t.find("\n", k + 1) + 1 if k >= 0 else len(t)
        spans.append((pos + start, pos + len(t)))
        pos += len(t) + 1
    return spans, pos


def loss_breakdown(nats, text: str, tunes) -> dict:
    """Nats per character of the whole text, per body character and per folk-rnn-style
    token of the bodies, from per-character nats (``nats[i-1]`` for character i)."""
    import numpy as np
    from composer.music.abc_overlap import folk_tokens
    nats = np.asarray(nats, dtype=np.float64)
    spans, _ = body_spans(tunes)
    music, music_ns, n_chars, n_tokens = 0.0, 0.0, 0, 0
    for a, b in spans:
        seg = nats[a - 1:b - 1]
        body = text[a:b]
        music += float(seg.sum())
        music_ns += float(sum(v for v, ch in zip(seg, body) if not ch.isspace()))
        n_chars += len(body)
        n_tokens += len(folk_tokens(body))
    return {"per_char": round(float(nats.mean()), 4), "per_music_char": round(music / max(1, n_chars), 4),
            "per_token": round(music / max(1, n_tokens), 4), "per_token_no_space": round(music_ns / max(1, n_tokens), 4),
            "music_chars": n_chars, "music_tokens": n_tokens}


def tune_figures(tunes: list[str], index) -> dict:
    """Checks and memorisation of some tunes (samples or real ones)."""
    from composer.music.abc import check_abc
    from composer.music.abc_overlap import body_of
    checks = [check_abc(t) for t in tunes]
    copies = [index.longest_copy(body_of(t)) for t in tunes]
    shares = [x for x in (index.shared_share(body_of(t)) for t in tunes) if x is not None]
    n = max(1, len(tunes))
    return {"n": len(tunes), "valid_rate": round(sum(c.valid for c in checks) / n, 4),
            "strict_rate": round(sum(c.strict for c in checks) / n, 4),
            "longest_copy_max": max(copies, default=0),
            "longest_copy_mean": round(sum(copies) / n, 1),
            "copies_80_plus": sum(c >= 80 for c in copies),
            "shared_16gram_share": round(sum(shares) / max(1, len(shares)), 4),
            "mean_chars": round(sum(map(len, tunes)) / n, 1),
            "_checks": checks, "_copies": copies}


def evaluate(checkpoint=None, n: int = 100, real: int = 0, temperature: float = 1.0, top_k: int = 0,
             top_p: float = 1.0, seed: int = 0, data: str | None = None, progress: bool = True,
             threads: int = 0, guarded: bool = True) -> dict:
    """All metrics as a dict (see the module docstring). ``real``: how many held-out
    tunes to check (0: all of them); ``guarded``: also sample with the guard."""
    import torch
    from composer.api import charrnn as api
    from composer.music.abc import load_dataset
    from composer.music.abc_overlap import TrainingIndex
    from composer.training.charrnn import join, per_char_nats
    if threads:
        torch.set_num_threads(threads)
    model = api.load(checkpoint)
    card = model.card
    source = data or card.get("data", {}).get("source", "folk")
    ds = load_dataset(source, include_essen=card.get("data", {}).get("include_essen", False))
    if card.get("data", {}).get("transpose_to"):  # the model's own space: tunes moved to one tonic
        from composer.training.charrnn import transpose_data
        ds.train, ds.val, _ = transpose_data(ds.train, ds.val, {}, card["data"]["transpose_to"])
    out = {"checkpoint": str(model.path), "temperature": temperature, "top_k": top_k, "top_p": top_p,
           "seed": seed,
           "data": {"train_tunes": len(ds.train), "val_tunes": len(ds.val),
                    "val_near_duplicates_removed": ds.counts.get("val_near_duplicates_removed"),
                    "near_duplicate_rule": ds.counts.get("near_duplicate_rule")}}
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if progress else (lambda *a: None)

    t = time.time()
    val_text = join(ds.val)
    ids = model.vocab.encode(val_text, skip_unknown=True)
    loss = loss_breakdown(per_char_nats(model.model, ids), val_text, ds.val) if len(ids) == len(val_text) else {}
    say(f"LSTM loss {loss} ({time.time() - t:.0f} s)")
    t = time.time()
    train_text = join(ds.train)
    lm = KneserNeyCharLM(5).fit(train_text, set(train_text) | set(val_text))
    ng = loss_breakdown(lm.char_nats(val_text), val_text, ds.val)
    out["loss"] = {"lstm": loss, "ngram5": ng,
                   "folk_rnn_reported_per_token": 1.21,
                   "note": "folk-rnn: 23,637 tunes of The Session transposed to C, its own token vocabulary"}
    say(f"5-gram loss {ng} ({time.time() - t:.0f} s)")

    index = TrainingIndex(ds.train)
    modes = [("plain", False)] + ([("guarded", True)] if guarded else [])
    samples_out = {}
    for name, guard in modes:
        t = time.time()
        speed = measure_sampling(model, 1000, seed, guard=guard)
        samples = api.sample_tunes(n, seed=seed, check=False, temperature=temperature, top_k=top_k, top_p=top_p,
                                   guard=guard, model=model)
        figs = tune_figures([s["abc"] for s in samples], index)
        for s, c, cp in zip(samples, figs.pop("_checks"), figs.pop("_copies")):
            s.update(valid=c.valid, strict=c.strict, error=c.error, longest_copy=cp)
        figs.update(chars_per_s=round(speed["chars_per_s"], 1), chars_per_cpu_s=round(speed["chars_per_cpu_s"], 1))
        out[name] = dict(figs, guard=guard,
                         sampler=("plain: temperature %g, no redraws, no constraints; headers written by the model"
                                  % temperature) if not guard else
                         "guarded (option): X:1 forced, header fields in canonical order, lines breaking the bars redrawn up to 10 times")
        samples_out[name] = samples
        say(f"{name}: {out[name]} ({time.time() - t:.0f} s)")
    t = time.time()
    real_tunes = ds.val if not real else ds.val[:real]
    figs = tune_figures(real_tunes, index)
    figs.pop("_checks"), figs.pop("_copies")
    out["real"] = dict(figs, what="real held-out tunes (validation set, near-duplicates removed)")
    say(f"real: {out['real']} ({time.time() - t:.0f} s)")
    out["torch_threads"] = torch.get_num_threads()
    try:
        out["load_average"] = round(os.getloadavg()[0], 2)  # other processes sharing the CPU
    except OSError:
        pass
    p, r = out["plain"], out["real"]
    out["bars"] = {
        "plain_strict_0.9x_real": p["strict_rate"] >= 0.9 * r["strict_rate"],
        "plain_strict_0.82": p["strict_rate"] >= 0.82,
        "nats_per_token_1.2": bool(loss) and loss["per_token"] <= 1.2,
        "no_copy_80_chars": p["copies_80_plus"] == 0,
        "shared_16grams_3_to_10pct": 0.03 <= p["shared_16gram_share"] <= 0.10,
        "chars_per_s_1000": p["chars_per_s"] >= 1000,
        "lstm_10pct_below_ngram_per_char": bool(loss) and loss["per_char"] <= 0.9 * ng["per_char"],
    }
    out["all_bars_met"] = all(out["bars"].values())
    out["_samples"] = samples_out
    return out


def update_card(checkpoint, metrics: dict) -> None:
    """Write the metrics into the checkpoint's model card (``metrics`` key)."""
    from composer.api.charrnn import DEFAULT_CHECKPOINT
    base = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    path = Path(str(base.with_suffix("") if base.suffix in (".json", ".safetensors") else base) + ".json")
    card = json.loads(path.read_text())
    card.setdefault("metrics", {}).update({k: v for k, v in metrics.items() if not k.startswith("_")})
    card["metrics"]["evaluated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path.write_text(json.dumps(card, indent=1))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="composer eval charrnn", description="Evaluate the folk-tune LSTM.")
    p.add_argument("--checkpoint", help="checkpoint path without suffix (default: the shipped one)")
    p.add_argument("--n", type=int, default=100, help="tunes to sample (per sampler)")
    p.add_argument("--real", type=int, default=0, help="real validation tunes to check (0: all)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", help="override the data source recorded in the model card")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--no-guard", action="store_true",
                   help="plain sampling only (the headline; by default the guarded sampler is measured too)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--samples-out", help="write the sampled tunes (JSON) here")
    p.add_argument("--update-card", action="store_true", help="store the metrics in the model card")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    from composer.errors import ComposerError
    try:
        res = evaluate(args.checkpoint, args.n, args.real, args.temperature, args.top_k, args.top_p, args.seed,
                       args.data, progress=not args.quiet, threads=args.threads, guarded=not args.no_guard)
    except ComposerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    samples = res.pop("_samples")
    if args.samples_out:
        Path(args.samples_out).write_text(json.dumps(samples, indent=1))
    if args.update_card:
        update_card(args.checkpoint, res)
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        for k, v in res.items():
            print(f"{k:26s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
