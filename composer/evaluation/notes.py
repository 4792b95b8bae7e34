"""Evaluate the note/chord models: NLL against n-gram baselines, and continuations in key and rhythm.

    python -m composer eval notes --json

NLL (nats per token, the same song-level validation split and tokens for every model: the
LSTM checkpoint's vocabulary, data source, split and tonic): ``nll_lstm``, ``nll_wavenet``,
``nll_unigram``, ``nll_bigram``, ``vs_bigram_*`` (1 - nll / nll_bigram), the winner, and
``nll_by`` = the same per sequence type (folk melody, Bach voice, chords) and per token type
(event = pitch/chord/rest, duration).

Continuations (``continuation``): the first 4 bars of a melody as the prompt, 4 bars
continued by each model (temperature 1.0, top-p 0.95, seeds fixed per prompt: the product's
own sampling path, :func:`composer.notes_api.continue_tokens`), scored against the prompt by
:mod:`composer.music.keys`: KK key agreement, notes in the prompt key's scale, duration-histogram
distance, onsets on bar positions the prompt uses. The same figures for the real bars 5–8 (the
reference) and two baselines that should fail: random pitches in the prompt's range on the
prompt's durations shuffled, and a unigram sample of the training tokens. Prompts:

* ``folk``: validation-side folk tunes (music21's ABC corpus, the training pick and split);
* ``bach``: soprano lines of validation chorales, 4 + 4 bar windows every 4 bars;
* ``essen``: Essen folk songs (never used for training) in 2/4, 3/4, 4/4 or 6/8.

Prompts are parsed once with music21 (bar lines from the meter and the pickup) and cached.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

EVAL_VERSION = "notes_eval_v1"
METERS = ("2/4", "3/4", "4/4", "6/8")
TPQ = 12  # composer.music.tokens.TICKS_PER_QUARTER (kept import-free here)
BARS = {"key_agree": (">=", 0.6), "in_key": (">=", 0.96), "dur_tv": ("<=", 0.18), "onset_share": (">=", 0.94)}


def build_parser():
    p = argparse.ArgumentParser(prog="python -m composer eval notes", description=__doc__.split("\n")[0])
    p.add_argument("--lstm", default="lstm", help="checkpoint (name or path) of the LSTM")
    p.add_argument("--wavenet", default="wavenet", help="checkpoint (name or path) of the WaveNet")
    p.add_argument("--data", help="data source for NLL (default: the one in the LSTM's model card)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: as a shared CPU serves one user)")
    p.add_argument("--sample-tokens", type=int, default=200)
    p.add_argument("--prompt-tunes", type=int, default=1500,
                   help="folk tunes picked (as in training's --max-tunes) for the validation folk prompts")
    p.add_argument("--prompts", type=int, default=60, help="prompts of each kind (at most)")
    p.add_argument("--samples", type=int, default=2, help="continuations per prompt and model (seeds 0..N-1 + 1000*i)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--no-nll", action="store_true", help="skip the NLL part")
    p.add_argument("--no-continuations", action="store_true", help="skip the continuation part")
    p.add_argument("--json", action="store_true", help="one line of JSON")
    return p


# --------------------------------------------------------------------------------------
# Prompt lines: bar-aligned notes of one melodic line, parsed once
# --------------------------------------------------------------------------------------

def line_from_stream(stream, name: str, kind: str) -> dict | None:
    """{name, kind, meter, bar (ticks), notes [[start, end, pitch] ticks]} of a one-line stream
    (the first part of a score), shifted by the pickup so that bar lines fall on multiples of
    ``bar``; None when the meter is missing, changes, or is not one of :data:`METERS`."""
    from composer.music.tokens import meter_and_pickup, stream_notes
    meter, bar_q, pad = meter_and_pickup(stream)  # the reading the note models were trained on
    if meter not in METERS:
        return None
    part = stream.parts[0] if hasattr(stream, "parts") and len(stream.parts) else stream
    notes = []
    for s, e, p in stream_notes(part):
        a, b = int(round((s + pad) * TPQ)), int(round((e + pad) * TPQ))
        if b > a:
            notes.append([a, b, int(p)])
    if not notes:
        return None
    return {"name": name, "kind": kind, "meter": meter, "bar": int(round(bar_q * TPQ)), "notes": sorted(notes)}


def _parse_abc(tune: str):
    from music21 import converter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return converter.parse(tune, format="abc")


def _cached(name: str, build):
    from composer.music.corpus import cache_dir
    path = cache_dir() / EVAL_VERSION / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text())
    lines = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(lines))
    tmp.replace(path)
    return lines


def _val_songs(max_tunes: int):
    from composer.music.tokens import load_songs, split_songs
    songs, _ = load_songs("all", max_tunes=max_tunes)
    return split_songs(songs)[1]


def folk_val_lines(max_tunes: int = 1500) -> list[dict]:
    """Validation-side folk tunes (the same pick and split as training with ``--max-tunes``)."""
    def build():
        from composer.music.abc import load_dataset
        ds = load_dataset("folk")
        tunes = ds.train + ds.val
        step = max(1, len(tunes) // max_tunes) if max_tunes else 1
        picked = tunes[::step][:max_tunes] if max_tunes else tunes
        out = []
        for s in _val_songs(max_tunes):
            if s.kind != "melody":
                continue
            try:
                line = line_from_stream(_parse_abc(picked[int(s.name[4:])]), s.name, "folk")
            except Exception:  # noqa: BLE001 - an unreadable tune is skipped
                line = None
            if line:
                out.append(line)
        return out
    return _cached(f"folk_{max_tunes}", build)


def bach_val_lines(max_tunes: int = 1500) -> list[dict]:
    """Soprano lines of the validation-side chorales."""
    def build():
        from music21 import corpus

        from composer.music.corpus import chorale_names
        full = {n.split("/")[-1]: n for n in chorale_names()}
        out = []
        for s in _val_songs(max_tunes):
            if s.kind != "voice" or not s.name.endswith(":0"):
                continue
            short = s.name[:-2]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                score = corpus.parse(full[short])
            line = line_from_stream(score, short, "bach")
            if line:
                out.append(line)
        return out
    return _cached(f"bach_{max_tunes}", build)


def essen_lines(n: int = 60) -> list[dict]:
    """``n`` Essen folk songs (music21's essenFolksong; never used for training) in one of
    :data:`METERS` with at least 8 full bars, picked round-robin over the collection's files."""
    def build():
        import re

        from composer.music.abc import ESSEN_COLLECTION, music21_corpus_dir, split_tunes
        files = sorted((music21_corpus_dir() / ESSEN_COLLECTION).glob("*.abc"))
        per_file = [split_tunes(f.read_text(encoding="utf-8", errors="replace")) for f in files]
        out, i = [], 0
        while len(out) < n and any(i * 7 < len(t) for t in per_file):
            for f, tunes in zip(files, per_file):
                j = i * 7  # every 7th tune of each file, files in turn
                if j >= len(tunes) or len(out) >= n:
                    continue
                tune = tunes[j]
                ms = re.findall(r"^M:\s*(\S+)", tune, flags=re.M)
                if len(set(ms)) != 1 or ms[0] not in METERS:
                    continue
                try:
                    line = line_from_stream(_parse_abc(tune), f"{f.stem}#{j}", "essen")
                except Exception:  # noqa: BLE001
                    line = None
                if line and windows(line, 1):
                    out.append(line)
            i += 1
        return out
    return _cached(f"essen_{n}", build)


def windows(line: dict, max_windows: int = 1) -> list[tuple[int, int, int]]:
    """(prompt start, seam, end) in ticks: 4 bars of prompt (plus the pickup for the first
    window) then 4 bars; windows every 4 bars, at most ``max_windows``."""
    B = line["bar"]
    notes = line["notes"]
    first = notes[0][0]
    last = max(e for _, e, _ in notes)
    p0 = -(-first // B) * B
    out, k = [], 0
    while len(out) < max_windows and p0 + (4 * k + 8) * B <= last:
        start = first if k == 0 else p0 + 4 * k * B
        out.append((start, p0 + (4 * k + 4) * B, p0 + (4 * k + 8) * B))
        k += 1
    return out


def _clip(notes, a, b):
    return [(s, min(e, b), p) for s, e, p in notes if a <= s < b]


def _arrays(notes):
    if not notes:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    a = np.asarray(notes, dtype=np.int64)
    return a[:, 0], a[:, 1] - a[:, 0], a[:, 2]


def prompt_tokens(notes, seam: int) -> list[str]:
    """Tokens of the prompt notes, with a rest up to the seam when the last note ends early."""
    from composer.music import tokens as T
    ev = T.events_from_notes([(s / TPQ, e / TPQ, p) for s, e, p in notes])
    end = notes[0][0] + sum(t for _, t in ev)
    gap = seam - end
    while gap > 0:
        ev.append(((), min(gap, T.MAX_TICKS)))
        gap -= T.MAX_TICKS
    return T.tokens_from_events(ev)


def _notes_of_tokens(tokens, start: int):
    from composer.music import tokens as T
    return [(int(round(s * TPQ)), int(round(e * TPQ)), p) for s, e, p in T.notes_from_tokens(tokens, start / TPQ)]


def _random_continuation(notes, prompt_events, seam, end, rng):
    """Random pitches in the prompt's range on the prompt's durations shuffled (tiled to fill)."""
    lo, hi = min(p for _, _, p in notes), max(p for _, _, p in notes)
    durs = [t for _, t in prompt_events]
    out, t = [], seam
    while t < end:
        for d in rng.permutation(durs):
            if t >= end:
                break
            d = int(min(d, end - t))
            out.append((t, t + d, int(rng.integers(lo, hi + 1))))
            t += d
    return out


class _Unigram:
    """Events and durations drawn independently from the training side's token counts."""

    def __init__(self, max_tunes: int):
        from collections import Counter

        from composer.music.tokens import load_songs, split_songs
        songs, _ = load_songs("all", max_tunes=max_tunes)
        c = Counter(t for s in split_songs(songs)[0] for t in s.tokens)
        self.events = [t for t in c if t[0] in "nc" or t == "r"]
        self.pe = np.array([c[t] for t in self.events], float)
        self.pe /= self.pe.sum()
        self.durs = [t for t in c if t.startswith("d:")]
        self.pd = np.array([c[t] for t in self.durs], float)
        self.pd /= self.pd.sum()

    def sample(self, ticks: int, rng) -> list[str]:
        toks, total = [], 0
        while total < ticks:
            e = self.events[rng.choice(len(self.events), p=self.pe)]
            d = int(self.durs[rng.choice(len(self.durs), p=self.pd)][2:])
            d = min(d, ticks - total)
            toks += [e, f"d:{d}"]
            total += d
        return toks


def continuation_eval(args, models: dict) -> dict:
    from composer import notes_api
    from composer.music import keys as K
    from composer.music import tokens as T
    sets = {"folk": folk_val_lines(args.prompt_tunes), "bach": bach_val_lines(args.prompt_tunes),
            "essen": essen_lines(args.prompts)}
    uni = _Unigram(args.prompt_tunes)
    systems = ["real", *models, "random", "unigram"]
    out = {"settings": {"prompt_bars": 4, "continued_bars": 4, "temperature": args.temperature, "top_p": args.top_p,
                        "samples_per_prompt": args.samples, "in_key": "prompt key's major scale, or natural minor "
                        "+ raised 7th", "key": "Krumhansl-Kessler, duration-weighted"}}
    sample_s = {a: 0.0 for a in models}
    for kind, lines in sets.items():
        rows = {s: [] for s in systems}
        prompts, meters = 0, {}
        max_w = 3 if kind == "bach" else 1
        for li, line in enumerate(lines):
            if prompts >= args.prompts:
                break
            for wi, (start, seam, end) in enumerate(windows(line, max_w)):
                if prompts >= args.prompts:
                    break
                pn = _clip(line["notes"], start, seam)
                real = _clip(line["notes"], seam, end)
                if not pn or not real:
                    continue
                prompts += 1
                meters[line["meter"]] = meters.get(line["meter"], 0) + 1
                B = line["bar"]
                parr = _arrays(pn)
                rows["real"].append(K.continuation_scores(parr, _arrays(real), B))
                ptoks = prompt_tokens(pn, seam)
                for j in range(args.samples):
                    seed = 1000 * prompts + j
                    rng = np.random.default_rng(seed)
                    for arch, path in models.items():
                        t0 = time.perf_counter()
                        new = notes_api.continue_tokens(ptoks, end - seam, model=path, temperature=args.temperature,
                                                        top_p=args.top_p, seed=seed, bar_ticks=B, offset=start % B)
                        sample_s[arch] += time.perf_counter() - t0
                        rows[arch].append(K.continuation_scores(parr, _arrays(_notes_of_tokens(new, seam)), B))
                    rnd = _random_continuation(pn, T.events_from_tokens(ptoks), seam, end, rng)
                    rows["random"].append(K.continuation_scores(parr, _arrays(rnd), B))
                    rows["unigram"].append(K.continuation_scores(
                        parr, _arrays(_notes_of_tokens(uni.sample(end - seam, rng), seam)), B))
        out[kind] = {"prompts": prompts, "meters": meters, **{s: K.mean_scores(rows[s]) for s in systems}}
    out["sample_s"] = {a: round(v, 1) for a, v in sample_s.items()}
    out["bars"] = bars_met(out, list(models))
    return out


def bars_met(cont: dict, archs) -> dict:
    """Each model against the issue-18 bars on the Essen prompts (no model trained on them),
    with the folk validation prompts beside them."""
    res = {}
    for arch in archs:
        r = {}
        for k, (op, bar) in BARS.items():
            vals = {kind: cont[kind][arch][k] for kind in ("essen", "folk") if kind in cont}
            ok = {kind: (v is not None and (v >= bar if op == ">=" else v <= bar)) for kind, v in vals.items()}
            r[k] = {"bar": f"{op} {bar}", **{kind: vals[kind] for kind in vals}, "met_essen": ok.get("essen"),
                    "met_folk": ok.get("folk")}
        res[arch] = r
    return res


# --------------------------------------------------------------------------------------
# NLL by sequence type and token type
# --------------------------------------------------------------------------------------

def _bigram_token_nll(stream, val, V, alpha):
    uni = np.bincount(stream, minlength=V).astype(np.float64)
    p_uni = (uni + 1.0) / (uni.sum() + V)
    pair = np.bincount(stream[:-1].astype(np.int64) * V + stream[1:], minlength=V * V).reshape(V, V)
    ctx = pair.sum(1).astype(np.float64)
    a, b = val[:-1].astype(np.int64), val[1:].astype(np.int64)
    return -np.log(p_uni[b]), -np.log((pair[a, b] + alpha * p_uni[b]) / (ctx[a] + alpha))


def nll_breakdown(data, per_token: dict) -> dict:
    """Mean NLL of each system (``per_token``: name -> array over ``data.val[1:]``) by the
    sequence type of the song a token belongs to and by token type."""
    seq_kind = np.concatenate([np.full(len(s.tokens), {"melody": "folk_melody", "voice": "bach_voice"}.get(s.kind, s.kind),
                                       dtype=object) for s in data.val_songs])[1:]
    tok_kind = np.array([data.vocab.kinds[i] for i in data.val[1:]], dtype=object)
    tok_kind = np.where(tok_kind == "dur", "duration", np.where(tok_kind == "bos", "bos", "event"))
    out = {}
    for group, labels in (("sequence", seq_kind), ("token", tok_kind)):
        for lab in sorted(set(labels.tolist())):
            if lab == "bos":
                continue
            m = labels == lab
            out[f"{group}:{lab}"] = {"tokens": int(m.sum()),
                                     **{name: round(float(v[m].mean()), 4) for name, v in per_token.items()}}
    for lab in sorted(set(seq_kind.tolist())):
        for tk in ("event", "duration"):
            m = (seq_kind == lab) & (tok_kind == tk)
            if m.any():
                out[f"{lab}:{tk}"] = {"tokens": int(m.sum()),
                                      **{name: round(float(v[m].mean()), 4) for name, v in per_token.items()}}
    return out


def evaluate(args) -> dict:
    import torch

    from composer.api import notes as notes_api
    from composer.errors import CheckpointError
    from composer.training.notes import load_data, ngram_baselines, token_nll, transposed_stream
    torch.set_num_threads(max(1, args.threads))
    models = {}
    for arch, name in (("lstm", args.lstm), ("wavenet", args.wavenet)):
        try:
            models[arch] = notes_api.load(name)
        except CheckpointError as exc:
            print(f"warning: {exc}", file=sys.stderr)
    if not models:
        raise CheckpointError("no notes model to evaluate (checkpoints/notes_lstm, notes_wavenet)")
    result = {"models": {a: {"tonic": nm.tonic, "steps": nm.card.get("training", {}).get("step"),
                             "val_nll_card": nm.card.get("metrics", {}).get("val_nll")} for a, nm in models.items()}}
    if not args.no_nll:
        ref = models.get("lstm") or models["wavenet"]
        d = ref.card["data"]
        data = load_data(args.data or d["source"], d.get("max_tunes") or 600, d.get("val_fraction") or 0.1,
                         transpose=max(d.get("transpose_shifts", [0])), vocab_tokens=ref.vocab.tokens,
                         tonic=ref.tonic)
        per_token = {}
        for arch, nm in models.items():
            if nm.vocab.tokens != ref.vocab.tokens or nm.tonic != ref.tonic:
                raise CheckpointError(f"the {arch} model has another vocabulary or tonic than the reference model: "
                                      "train both on the same data")
            t0 = time.perf_counter()
            per_token[arch] = token_nll(nm.model, data.val, nm.context, pos=data.val_pos)
            result[f"nll_{arch}"] = round(float(per_token[arch].mean()), 5)
            result[f"eval_s_{arch}"] = round(time.perf_counter() - t0, 1)
        streams = {"train": data.train, "train_transposed": transposed_stream(data)}
        base = ngram_baselines(streams, data.val, len(data.vocab))
        result["nll_unigram"] = round(base["nll_unigram"], 5)
        result["nll_bigram"] = round(base["nll_bigram"], 5)
        result["bigram"] = {"alpha": base["bigram_alpha"], "counts": base["bigram_counts"]}
        per_token["unigram"] = _bigram_token_nll(streams[base["unigram_counts"]], data.val, len(data.vocab), 1.0)[0]
        per_token["bigram"] = _bigram_token_nll(streams[base["bigram_counts"]], data.val, len(data.vocab),
                                                base["bigram_alpha"])[1]
        for arch in models:
            result[f"vs_bigram_{arch}"] = round(1 - result[f"nll_{arch}"] / result["nll_bigram"], 4)
        result["winner"] = min(models, key=lambda a: result[f"nll_{a}"])
        result["nll_by"] = nll_breakdown(data, per_token)
        for arch in models:
            fm = result["nll_by"].get("sequence:folk_melody", {})
            if arch in fm:
                result[f"vs_bigram_folk_{arch}"] = round(1 - fm[arch] / fm["bigram"], 4)
        result["val"] = {"source": data.source, "songs": len(data.val_songs), "tokens": len(data.val),
                         "vocab": len(data.vocab), "tonic": data.tonic, "threads": torch.get_num_threads()}
        speed = notes_api.bench(args.sample_tokens, {a: getattr(args, a) for a in models})
        speed = {k: v for k, v in speed.items() if any(f"_{a}_" in k for a in models)}
        for arch in models:
            result[f"tokens_per_s_{arch}"] = speed.get(f"notes_{arch}_tokens_per_s")
        result["tokens_per_s"] = min(speed.values()) if speed else None
    if not args.no_continuations:
        result["continuation"] = continuation_eval(args, {a: getattr(args, a) for a in models})
    return result


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    result = evaluate(args)
    print(json.dumps(result, indent=None if args.json else 2, default=lambda o: None if isinstance(o, float)
                     and math.isnan(o) else str(o)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
