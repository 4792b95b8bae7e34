"""Evaluate the ABC character LSTM against a character 5-gram and against real tunes.

``python -m composer eval charrnn --n 200 --json`` prints one JSON object:

- ``val_nats_per_char``: the LSTM's validation loss (nats per character) on held-out tunes;
- ``ngram_val_nats_per_char``: an interpolated Kneser-Ney character 5-gram trained on the
  same training tunes and scored on the same validation text;
- ``valid_rate`` / ``strict_rate``: share of ``--n`` sampled tunes (temperature 1.0 unless
  ``--temperature``) passing :func:`composer.music.abc.check_abc`;
- ``real_valid_rate`` / ``real_strict_rate``: the same checks on ``--real`` validation tunes;
- ``chars_per_s``: sampling speed at batch 1 on the CPU, in characters of finished tunes
  per wall-clock second (best of 3 runs); ``chars_per_cpu_s`` per CPU second of this
  process (the speed of an idle core, shown with the ``load_average`` of the machine);
  ``raw_chars_per_s``: without the line guard;
- ``guard``: whether samples were drawn with the line guard (the default, as the CLI and
  UI sample; ``--no-guard`` for plain sampling);
- ``bars``: each shipped bar and whether it is met.
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


def evaluate(checkpoint=None, n: int = 200, real: int = 200, temperature: float = 1.0, top_k: int = 0,
             top_p: float = 1.0, seed: int = 0, data: str | None = None, progress: bool = True,
             threads: int = 0, guard: bool = True) -> dict:
    """All metrics as a dict (see the module docstring)."""
    import torch
    from composer.api import charrnn as api
    from composer.music.abc import check_abc, load_dataset
    from composer.training.charrnn import evaluate_nats, join
    if threads:
        torch.set_num_threads(threads)
    model = api.load(checkpoint)
    card = model.card
    source = data or card.get("data", {}).get("source", "folk")
    ds = load_dataset(source, include_essen=card.get("data", {}).get("include_essen", False))
    out = {"checkpoint": str(model.path), "n_samples": n, "n_real": min(real, len(ds.val)),
           "temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed, "guard": guard}
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if progress else (lambda *a: None)

    t = time.time()
    val_ids = model.vocab.encode(join(ds.val), skip_unknown=True)
    out["val_nats_per_char"] = round(evaluate_nats(model.model, val_ids), 4)
    say(f"val nats/char {out['val_nats_per_char']} ({time.time() - t:.0f} s)")
    t = time.time()
    out["ngram_val_nats_per_char"] = round(ngram_baseline(ds.train, ds.val, 5), 4)
    out["ngram_order"] = 5
    say(f"5-gram KN val nats/char {out['ngram_val_nats_per_char']} ({time.time() - t:.0f} s)")

    t = time.time()
    speed = measure_sampling(model, 1000, seed, guard=guard)
    raw = measure_sampling(model, 1000, seed, guard=False)
    out["chars_per_s"] = round(speed["chars_per_s"], 1)
    out["chars_per_cpu_s"] = round(speed["chars_per_cpu_s"], 1)
    out["raw_chars_per_s"] = round(raw["chars_per_s"], 1)
    out["torch_threads"] = torch.get_num_threads()
    try:
        out["load_average"] = round(os.getloadavg()[0], 2)  # other processes sharing the CPU
    except OSError:
        pass
    say(f"sampling {out['chars_per_s']} chars/s, {out['chars_per_cpu_s']} per CPU second "
        f"(raw {out['raw_chars_per_s']}), load {out.get('load_average')}")

    samples = api.sample_tunes(n, seed=seed, temperature=temperature, top_k=top_k, top_p=top_p, guard=guard,
                               model=model)
    out["valid_rate"] = round(sum(s["valid"] for s in samples) / max(1, n), 4)
    out["strict_rate"] = round(sum(s["strict"] for s in samples) / max(1, n), 4)
    out["mean_sample_chars"] = round(sum(len(s["abc"]) for s in samples) / max(1, n), 1)
    say(f"samples: valid {out['valid_rate']}, strict {out['strict_rate']} ({time.time() - t:.0f} s)")
    real_tunes = ds.val[:real]
    checks = [check_abc(x) for x in real_tunes]
    out["real_valid_rate"] = round(sum(c.valid for c in checks) / max(1, len(checks)), 4)
    out["real_strict_rate"] = round(sum(c.strict for c in checks) / max(1, len(checks)), 4)
    say(f"real: valid {out['real_valid_rate']}, strict {out['real_strict_rate']}")
    out["bars"] = {
        "val_10pct_below_ngram": out["val_nats_per_char"] <= 0.9 * out["ngram_val_nats_per_char"],
        "valid_rate_0.95": out["valid_rate"] >= 0.95,
        "strict_0.9x_real": out["strict_rate"] >= 0.9 * out["real_strict_rate"],
        "chars_per_s_1000": out["chars_per_s"] >= 1000,
    }
    out["all_bars_met"] = all(out["bars"].values())
    out["_samples"] = samples
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
    p.add_argument("--n", type=int, default=200, help="tunes to sample")
    p.add_argument("--real", type=int, default=200, help="real validation tunes to check")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", help="override the data source recorded in the model card")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--no-guard", action="store_true", help="plain sampling: no redrawing of broken lines")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--samples-out", help="write the sampled tunes (JSON) here")
    p.add_argument("--update-card", action="store_true", help="store the metrics in the model card")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    from composer.errors import ComposerError
    try:
        res = evaluate(args.checkpoint, args.n, args.real, args.temperature, args.top_k, args.top_p, args.seed,
                       args.data, progress=not args.quiet, threads=args.threads, guard=not args.no_guard)
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
