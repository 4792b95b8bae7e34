"""Evaluate the note/chord models: validation NLL per token against n-gram baselines.

    python -m composer eval notes --json

prints ``nll_lstm``, ``nll_wavenet``, ``nll_unigram``, ``nll_bigram`` (nats per token, all on
the same song-level validation split and the same tokens: the LSTM checkpoint's vocabulary,
data source and split) and ``tokens_per_s`` (batch-1 CPU sampling, the slower model), with
``vs_bigram_*`` (1 - nll / nll_bigram) and the winner.
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def build_parser():
    p = argparse.ArgumentParser(prog="python -m composer eval notes", description=__doc__.split("\n")[0])
    p.add_argument("--lstm", default="lstm", help="checkpoint (name or path) of the LSTM")
    p.add_argument("--wavenet", default="wavenet", help="checkpoint (name or path) of the WaveNet")
    p.add_argument("--data", help="data source (default: the one in the LSTM's model card)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: as a shared CPU serves one user)")
    p.add_argument("--sample-tokens", type=int, default=200)
    p.add_argument("--json", action="store_true", help="one line of JSON")
    return p


def evaluate(args) -> dict:
    import torch

    from composer.api import notes as notes_api
    from composer.errors import CheckpointError
    from composer.training.notes import evaluate_nll, load_data, ngram_baselines, transposed_stream
    torch.set_num_threads(max(1, args.threads))
    models = {}
    for arch, name in (("lstm", args.lstm), ("wavenet", args.wavenet)):
        try:
            models[arch] = notes_api.load(name)
        except CheckpointError as exc:
            print(f"warning: {exc}", file=sys.stderr)
    if not models:
        raise CheckpointError("no notes model to evaluate (checkpoints/notes_lstm, notes_wavenet)")
    ref = models.get("lstm") or models["wavenet"]
    d = ref.card["data"]
    data = load_data(args.data or d["source"], d.get("max_tunes") or 600, d.get("val_fraction") or 0.1,
                     transpose=max(d.get("transpose_shifts", [0])), vocab_tokens=ref.vocab.tokens)
    result = {}
    for arch, nm in models.items():
        if nm.vocab.tokens != ref.vocab.tokens:
            raise CheckpointError(f"the {arch} model has another vocabulary than the reference model: "
                                  "train both on the same data")
        t0 = time.perf_counter()
        result[f"nll_{arch}"] = round(evaluate_nll(nm.model, data.val, nm.context), 5)
        result[f"eval_s_{arch}"] = round(time.perf_counter() - t0, 1)
    base = ngram_baselines({"train": data.train, "train_transposed": transposed_stream(data)},
                           data.val, len(data.vocab))
    result["nll_unigram"] = round(base["nll_unigram"], 5)
    result["nll_bigram"] = round(base["nll_bigram"], 5)
    result["bigram"] = {"alpha": base["bigram_alpha"], "counts": base["bigram_counts"]}
    for arch in models:
        result[f"vs_bigram_{arch}"] = round(1 - result[f"nll_{arch}"] / result["nll_bigram"], 4)
    result["winner"] = min(models, key=lambda a: result[f"nll_{a}"])
    speed = notes_api.bench(args.sample_tokens, {a: getattr(args, a) for a in models})
    speed = {k: v for k, v in speed.items() if any(f"_{a}_" in k for a in models)}
    speed["notes_tokens_per_s"] = min(speed.values()) if speed else None
    for arch in models:
        result[f"tokens_per_s_{arch}"] = speed.get(f"notes_{arch}_tokens_per_s")
    result["tokens_per_s"] = speed.get("notes_tokens_per_s")
    result["val"] = {"source": data.source, "songs": len(data.val_songs), "tokens": len(data.val),
                     "vocab": len(data.vocab), "threads": torch.get_num_threads()}
    return result


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    result = evaluate(args)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
