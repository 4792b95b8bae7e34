"""Train a note/chord token model (LSTM or WaveNet-style CNN) to continue melodies.

Usage::

    python -m composer train notes --arch lstm --data bach --out runs/notes_lstm
    python -m composer.training.notes --arch wavenet --data all --out runs/notes_wavenet --minutes 20

Only torch, numpy and the standard library are imported at module level, so this runs on a
bare GPU box: there, pass ``--data OUT/data/songs.json`` (written by every run here), which
needs no music21. ``--data bach|folk|all`` reads music21's corpus (cached under the cache
folder), ``--data FOLDER`` reads the MIDI files in it.

The output folder holds ``last.safetensors`` + ``last.json`` (weights, Adam state and RNG
state as tensors; step, vocabulary and arguments in the JSON), resumed automatically;
``log.jsonl`` (one JSON object per logged step and per evaluation, each with ``wall_s``);
and the best model so far, by validation NLL per token, as ``notes_ARCH.safetensors``
(half precision) + ``notes_ARCH.json`` (the model card: config, vocabulary, data, split,
fallback counts, baselines, steps, wall time).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from composer.models.notes import CARD_FORMAT, PRESETS, NotesConfig, build_model, dilations_for, n_params
from composer.models.notes import load as load_model  # noqa: F401  (the trainer's name for it)
from composer.training.loop import JsonlLog, Timer, add_run_args, load_checkpoint, load_optimizer_tensors, lr_at, optimizer_tensors
from composer.training.loop import cpu_name as _cpu_name
from composer.training.loop import save_checkpoint, setup_process



# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------

class Data:
    """Encoded train/val streams (songs joined, each starting with ``<s>``) and how they were made."""

    def __init__(self, train_songs, val_songs, vocab, counts: dict, source: str, shifts, tonic: str = "none"):
        from composer.music.tokens import Fallbacks, position_ids
        self.vocab, self.counts, self.source, self.shifts = vocab, counts, source, list(shifts)
        self.tonic = tonic
        self.train_songs, self.val_songs = train_songs, val_songs
        self.fb_train, self.fb_val = Fallbacks(), Fallbacks()
        self.train = np.concatenate([vocab.encode(s.tokens, self.fb_train) for s in train_songs])
        self.val = np.concatenate([vocab.encode(s.tokens, self.fb_val) for s in val_songs])
        # where in the bar each token leaves the music (for models with bar_pos)
        self.train_pos = np.concatenate([position_ids(s.tokens, s.bar, s.offset) for s in train_songs])
        self.val_pos = np.concatenate([position_ids(s.tokens, s.bar, s.offset) for s in val_songs])
        self.table = vocab.transpose_table(self.shifts)

    def describe(self) -> dict:
        from composer.music.tokens import merged_groups
        merged = merged_groups(self.train_songs + self.val_songs)
        kinds = {}
        for side, songs in (("train", self.train_songs), ("val", self.val_songs)):
            for s in songs:
                kinds.setdefault(side, {}).setdefault(s.kind, 0)
                kinds[side][s.kind] += 1
        return {"source": self.source, "max_tunes": getattr(self, "max_tunes", None),
                "val_fraction": getattr(self, "val_fraction", None), "counts": self.counts, "sequences": kinds,
                "train_groups": len({merged[s.group] for s in self.train_songs}),
                "val_groups": len({merged[s.group] for s in self.val_songs}),
                "train_tokens": len(self.train), "val_tokens": len(self.val),
                "transpose_shifts": self.shifts, "tonic": self.tonic, "vocab_size": len(self.vocab),
                "bars_known": {side: round(float(np.mean([s.bar > 0 for s in songs])), 4) if songs else None
                               for side, songs in (("train", self.train_songs), ("val", self.val_songs))},
                "fallbacks_train": self.fb_train.as_dict(), "fallbacks_val": self.fb_val.as_dict()}


def to_common_tonic(songs):
    """Each song transposed (-6..+5 semitones) so that its Krumhansl–Kessler key becomes
    C major or A minor (the sequence's own key, from all its notes weighted by length)."""
    from composer.music.tokens import Song, common_tonic_shift, transpose_tokens
    return [Song(s.name, s.group, s.kind, transpose_tokens(s.tokens, common_tonic_shift(s.tokens)), s.bar, s.offset)
            for s in songs]


def load_data(source: str, max_tunes: int = 600, val_fraction: float = 0.1, transpose: int = 4,
              vocab_tokens: list[str] | None = None, max_chords: int = 2000, tonic: str = "none") -> Data:
    """Songs of ``source`` split by song; the vocabulary is built from the (transposed)
    training side unless ``vocab_tokens`` (a checkpoint's) is given. ``tonic="key"`` moves
    every sequence (both sides) to C major / A minor by its KK key before the ``transpose``
    augmentation; ``"none"`` keeps the keys as written."""
    from composer.errors import DataError
    from composer.music.tokens import Vocab, augmented_counts, load_songs, split_songs
    songs, counts = load_songs(source, max_tunes=max_tunes)
    train, val = split_songs(songs, val_fraction)
    if tonic == "key":
        train, val = to_common_tonic(train), to_common_tonic(val)
    elif tonic != "none":
        raise DataError(f"tonic must be key or none (got {tonic})")
    if not train or not val:
        raise DataError(f"{source}: {len(train)} training and {len(val)} validation songs; need both "
                        f"(add songs or change --val-fraction)")
    shifts = list(range(-transpose, transpose + 1))
    if vocab_tokens is not None:
        vocab = Vocab(vocab_tokens)
    else:
        vocab = Vocab.from_counts(augmented_counts([s.tokens for s in train], shifts), max_chords=max_chords)
    data = Data(train, val, vocab, counts, source, shifts, tonic)
    data.max_tunes, data.val_fraction = max_tunes, val_fraction
    return data


def write_songs(data: Data, path: Path) -> None:
    from composer.music.tokens import save_songs
    save_songs(path, data.train_songs + data.val_songs, data.counts)


# --------------------------------------------------------------------------------------
# Evaluation: the networks and the n-gram baselines, on the same tokens
# --------------------------------------------------------------------------------------

def evaluate_nll(model, ids: np.ndarray, context: int, batch: int = 64, device="cpu", pos=None) -> float:
    """Mean NLL (nats per token) of ``ids[1:]``, each token predicted from at most
    ``context`` tokens before it: windows of ``context`` tokens with a stride of half a
    window; the first window scores all its tokens, later ones their second half (so
    every token but the first is scored once, with at least ``context // 2`` tokens before it)."""
    nll = token_nll(model, ids, context, batch, device, pos)
    return float(nll.sum() / max(len(nll), 1))


@torch.no_grad()
def token_nll(model, ids: np.ndarray, context: int, batch: int = 64, device="cpu", pos=None) -> np.ndarray:
    """NLL (nats) of each token of ``ids[1:]`` (array of ``len(ids) - 1``), windowed as in
    :func:`evaluate_nll`. ``pos``: the bar positions of ``ids``, for a model that reads them."""
    model.eval()
    ids_t = torch.as_tensor(np.asarray(ids), dtype=torch.long)
    uses_pos = bool(getattr(getattr(model, "config", None), "bar_pos", False))
    pos_t = torch.as_tensor(np.asarray(pos), dtype=torch.long) if (uses_pos and pos is not None) else None
    if uses_pos and pos_t is None:
        raise ValueError("this model reads bar positions: pass pos")
    n, W = len(ids_t), context + 1
    half = max(1, context // 2)
    if n <= W:
        starts = [0]
    else:
        starts = list(range(0, n - W + 1, half))
        if starts[-1] != n - W:
            starts.append(n - W)
    out = np.zeros(max(n - 1, 0), dtype=np.float64)
    covered = 1  # covered: index of the next token to score
    for i in range(0, len(starts), batch):
        chunk = starts[i:i + batch]
        x = torch.stack([ids_t[s:s + W] for s in chunk]).to(device)
        p = torch.stack([pos_t[s:s + W - 1] for s in chunk]).to(device) if pos_t is not None else None
        logp = F.log_softmax((model(x[:, :-1], p) if p is not None else model(x[:, :-1])).float(), dim=-1)
        lp = logp.gather(-1, x[:, 1:].unsqueeze(-1)).squeeze(-1).cpu().double().numpy()
        for row, s in enumerate(chunk):
            first = max(0, covered - (s + 1))  # position j scores token s + j + 1
            if first < lp.shape[1]:
                out[s + first:s + lp.shape[1]] = -lp[row, first:]  # token s + j + 1 -> out[s + j]
            covered = max(covered, s + lp.shape[1] + 1)
    return out


def ngram_baselines(train_streams, val: np.ndarray, vocab_size: int) -> dict:
    """Smoothed unigram and bigram NLL (nats/token) of ``val[1:]``.

    Unigram: add-one. Bigram: interpolated with the unigram, P(b|a) = (c(a,b) + α P(b)) /
    (c(a) + α), counted on each candidate training stream (plain or transposed); the α and
    stream with the lowest validation NLL are reported, so the baseline is as strong as
    it can be made (which makes the bar harder for the networks, never easier)."""
    V = vocab_size
    best = {"nll_unigram": math.inf, "nll_bigram": math.inf}
    a, b = val[:-1].astype(np.int64), val[1:].astype(np.int64)
    for name, stream in train_streams.items():
        uni = np.bincount(stream, minlength=V).astype(np.float64)
        p_uni = (uni + 1.0) / (uni.sum() + V)
        nll_u = float(-np.log(p_uni[b]).mean())
        pair = np.bincount(stream[:-1].astype(np.int64) * V + stream[1:], minlength=V * V).reshape(V, V)
        ctx = pair.sum(1).astype(np.float64)
        for alpha in (0.1, 0.3, 1.0, 3.0, 10.0, 30.0):
            p = (pair[a, b] + alpha * p_uni[b]) / (ctx[a] + alpha)
            nll = float(-np.log(p).mean())
            if nll < best["nll_bigram"]:
                best.update(nll_bigram=nll, bigram_alpha=alpha, bigram_counts=name)
        if nll_u < best["nll_unigram"]:
            best.update(nll_unigram=nll_u, unigram_counts=name)
    return best


def transposed_stream(data: Data) -> np.ndarray:
    return np.concatenate([data.table[r][data.train] for r in range(len(data.shifts))])


# --------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------

def save_model(model, vocab_tokens: list[str], path, card: dict, half: bool = True) -> None:
    """``path`` (.safetensors, half precision by default) + ``.json`` model card with the vocabulary."""
    dtype = torch.float16 if half else torch.float32
    tensors = {k: v.detach().to(dtype) for k, v in model.state_dict().items()}
    card = dict(card, format=CARD_FORMAT, config=model.config.to_dict(), vocab=list(vocab_tokens),
                dtype="float16" if half else "float32")
    save_checkpoint(Path(path).with_suffix(".safetensors"), tensors, card)


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m composer train notes", description=__doc__.split("\n")[0])
    p.add_argument("--arch", choices=("lstm", "wavenet"), required=True)
    p.add_argument("--data", default="bach", help="bach | folk | all | a folder of MIDI files | a songs .json")
    p.add_argument("--max-tunes", type=int, default=600, help="folk tunes parsed (0: all; ~0.3 s each)")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--tonic", choices=("key", "none"), default="key",
                   help="key: move every sequence to C major / A minor by its Krumhansl-Kessler key (sampling "
                        "then moves the prompt there and the continuation back); none: keys as written")
    p.add_argument("--no-bar-pos", action="store_true",
                   help="do not give the model the bar position of each token (meter and pickup from the score)")
    p.add_argument("--transpose", type=int, default=0,
                   help="also train on every transposition -N..+N semitones (after --tonic)")
    p.add_argument("--max-chords", type=int, default=2000, help="chord tokens kept in the vocabulary")
    add_run_args(p, out=None, steps=3000, checkpoint_every=250, log_every=25)
    p.add_argument("--preset", default="small", choices=("small", "tiny"))
    p.add_argument("--context", type=int, default=64, help="tokens of context (both architectures)")
    p.add_argument("--embed", type=int)
    p.add_argument("--hidden", type=int, help="LSTM hidden size")
    p.add_argument("--layers", type=int, help="LSTM layers")
    p.add_argument("--channels", type=int, help="WaveNet residual channels")
    p.add_argument("--skip", type=int, help="WaveNet skip channels")
    p.add_argument("--dropout", type=float)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--minutes", type=float, default=0, help="stop after this wall time (0: no limit)")
    p.add_argument("--stop-after", type=int, default=0,
                   help="stop after this many steps in this run (resume later; 0: run to --steps)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--min-lr-ratio", type=float, default=0.05)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--init-from", help="start from the weights of this notes checkpoint (a model card's .safetensors "
                   "or a run's last.safetensors; same vocabulary); layers it lacks, such as the bar-position "
                   "embedding, start at zero")
    return p




def init_weights(model, path, vocab_tokens) -> dict:
    """Copy the weights of the notes checkpoint ``path`` into ``model`` (same vocabulary);
    tensors the checkpoint lacks (a new bar-position embedding) are set to zero, so the
    model starts out computing what the checkpoint computed."""
    from composer.errors import CheckpointError
    tensors, card = load_checkpoint(Path(path))
    if card.get("vocab") != list(vocab_tokens):
        raise CheckpointError(f"{path}: another vocabulary than this data's; train on the same data")
    state = {(k[6:] if k.startswith("model.") else k): v for k, v in tensors.items()
             if k.startswith("model.") or not k.startswith(("opt.", "rng."))}
    if "embed.weight" in state:
        state["embed.tok.weight"] = state.pop("embed.weight")
    own = model.state_dict()
    copied = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    zeroed = [k for k in own if k not in copied]
    with torch.no_grad():
        for k in zeroed:
            own[k].zero_()
    model.load_state_dict({**own, **{k: v.float() for k, v in copied.items()}})
    return {"from": str(path), "from_step": card.get("step", card.get("training", {}).get("step")),
            "copied": len(copied), "zeroed": zeroed}


def make_config(args, vocab_size: int) -> NotesConfig:
    sizes = dict(PRESETS[args.arch][args.preset])
    for k in ("embed", "hidden", "layers", "channels", "skip", "dropout"):
        if getattr(args, k, None) is not None:
            sizes[k] = getattr(args, k)
    kernel = sizes.get("kernel", 2)
    from composer.music.tokens import N_POS_IDS
    return NotesConfig(arch=args.arch, vocab_size=vocab_size, context=args.context,
                       dilations=dilations_for(args.context, kernel), bar_pos=not getattr(args, "no_bar_pos", False),
                       n_pos=N_POS_IDS, **sizes)


def train(args, on_event=None) -> dict:
    """Run training as configured by ``args`` (see :func:`build_parser`); returns the summary."""
    setup_process(args.threads)
    from composer.training.loop import pick_device
    device = pick_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last.safetensors"
    resume = last.exists() and not args.no_resume
    ck_tensors, ck_card = load_checkpoint(last) if resume else ({}, {})
    data = load_data(args.data, args.max_tunes, args.val_fraction, args.transpose,
                     vocab_tokens=ck_card.get("vocab"), max_chords=args.max_chords,
                     tonic=ck_card.get("args", {}).get("tonic", "none") if resume else args.tonic)
    write_songs(data, out / "data" / "songs.json")
    vocab_tokens = data.vocab.tokens
    config = NotesConfig.from_dict(ck_card["config"]) if resume else make_config(args, len(data.vocab))
    baselines = ngram_baselines({"train": data.train, "train_transposed": transposed_stream(data)},
                                data.val, len(data.vocab))

    torch.manual_seed(args.seed)
    model = build_model(config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    gen = torch.Generator().manual_seed(args.seed)
    step, best, wall_before, tokens_seen = 0, math.inf, 0.0, 0
    init_note = None
    if args.init_from and not resume:
        init_note = init_weights(model, args.init_from, vocab_tokens)
        print(f"initialised from {args.init_from}: {init_note}", flush=True)
    if resume:
        model.load_state_dict({k[6:]: v for k, v in ck_tensors.items() if k.startswith("model.")})
        load_optimizer_tensors(opt, ck_tensors, "opt")
        gen.set_state(ck_tensors["rng.batches"])
        torch.set_rng_state(ck_tensors["rng.torch"])
        step, best = ck_card["step"], ck_card["best"]
        wall_before, tokens_seen = ck_card["wall_s"], ck_card["tokens_seen"]
    timer = Timer(wall_before)
    train_ids = torch.from_numpy(data.train)
    train_pos = torch.from_numpy(data.train_pos)
    table = torch.from_numpy(data.table)
    L = config.context
    desc = data.describe()
    print(f"notes {config.arch}: {desc['train_tokens']:,} train / {desc['val_tokens']:,} val tokens "
          f"({desc['train_groups']} / {desc['val_groups']} songs), vocab {len(data.vocab)}, "
          f"{n_params(model):,} params, context {L}, device {device}, threads {torch.get_num_threads()}; "
          f"baselines unigram {baselines['nll_unigram']:.4f} bigram {baselines['nll_bigram']:.4f} nats/token"
          + (f"; resumed at step {step}" if resume else ""), flush=True)
    log = JsonlLog(out / "log.jsonl")

    def emit(**rec):
        log.write(**rec)
        if on_event:
            on_event(rec)

    command = " ".join(["python -m composer train notes", *(getattr(args, "argv", None) or [])])

    def card(val_nll):
        return {"model": f"notes_{config.arch}", "arch": config.arch, "n_params": n_params(model),
                "data": desc,
                "training": {"step": step, "tokens_seen": tokens_seen, "wall_s": round(timer.elapsed, 1),
                             "batch": args.batch, "context": L, "lr": args.lr, "warmup": args.warmup,
                             "schedule": "linear warmup + cosine", "weight_decay": args.weight_decay,
                             "clip": args.clip, "optimizer": "AdamW", "device": str(device),
                             "threads": torch.get_num_threads(), "cpu": _cpu_name(), "torch": torch.__version__,
                             "seed": args.seed, "steps_planned": args.steps,
                             "init_from": ck_card.get("init_note") if resume else init_note,
                             "command": command},
                "metrics": {"val_nll": round(val_nll, 5), **{k: (round(v, 5) if isinstance(v, float) else v)
                                                             for k, v in baselines.items()},
                            "vs_bigram": round(1 - val_nll / baselines["nll_bigram"], 4)}}

    def save_last():
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        tensors.update(optimizer_tensors(opt, "opt"))
        tensors["rng.batches"] = gen.get_state()
        tensors["rng.torch"] = torch.get_rng_state()
        save_checkpoint(last, tensors, {"format": "composer.notes.resume/1", "step": step, "best": best,
                                        "init_note": init_note if not resume else ck_card.get("init_note"),
                                        "wall_s": timer.elapsed, "tokens_seen": tokens_seen,
                                        "config": config.to_dict(), "vocab": vocab_tokens, "args": vars(args)})

    def evaluate():
        nonlocal best
        v = evaluate_nll(model, data.val, L, device=device, pos=data.val_pos)
        model.train()
        improved = v < best
        if improved:
            best = v
            save_model(model, vocab_tokens, out / f"notes_{config.arch}", card(v))
        emit(kind="eval", step=step, val=round(v, 5), nll_bigram=round(baselines["nll_bigram"], 5),
             best=improved, wall_s=round(timer.elapsed, 1))
        save_last()
        return v

    bar = None
    if not args.quiet:
        from tqdm import tqdm
        bar = tqdm(total=args.steps, initial=step, desc=f"notes {config.arch}", file=sys.stderr, mininterval=5)
    model.train()
    loss_acc, n_acc, val, stop = 0.0, 0, math.nan, "steps"
    t_start = time.time()
    n_windows = len(train_ids) - L - 1
    if n_windows < 1:
        from composer.errors import DataError
        raise DataError(f"{len(train_ids)} training tokens: need more than the context ({L}); add songs")
    first_step = step
    while step < args.steps:
        if args.minutes and (time.time() - t_start) / 60 >= args.minutes:
            stop = "minutes"
            break
        if args.stop_after and step - first_step >= args.stop_after:
            stop = "stop_after"
            break
        starts = torch.randint(0, n_windows, (args.batch,), generator=gen)
        shift = torch.randint(0, table.shape[0], (args.batch, 1), generator=gen)
        idx = starts[:, None] + torch.arange(L + 1)
        x = table[shift, train_ids[idx]].to(device)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        logits = model(x[:, :-1], train_pos[idx[:, :-1]].to(device)) if config.bar_pos else model(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        step += 1
        tokens_seen += args.batch * L
        loss_acc += loss.item()
        n_acc += 1
        if bar:
            bar.update(1)
        if step % args.log_every == 0:
            rec = dict(kind="train", step=step, loss=round(loss_acc / n_acc, 5), lr=round(opt.param_groups[0]["lr"], 6),
                       grad_norm=round(float(gnorm), 3), tokens=tokens_seen, wall_s=round(timer.elapsed, 1))
            emit(**rec)
            if bar:
                bar.set_postfix(loss=rec["loss"], val=round(val, 4))
            loss_acc, n_acc = 0.0, 0
        if step % args.checkpoint_every == 0 and step % args.eval_every != 0:
            save_last()  # evaluate() saves too; between evaluations the run still resumes from here
        if step % args.eval_every == 0:
            val = evaluate()
            if not bar:
                print(f"step {step} val {val:.4f} nats/token (bigram {baselines['nll_bigram']:.4f})", flush=True)
    if step % args.eval_every != 0 or step == 0:
        val = evaluate()
    if bar:
        bar.close()
    summary = {"arch": config.arch, "step": step, "best_val_nll": round(best, 5),
               "nll_bigram": round(baselines["nll_bigram"], 5), "nll_unigram": round(baselines["nll_unigram"], 5),
               "vs_bigram": round(1 - best / baselines["nll_bigram"], 4), "stopped": stop,
               "wall_s": round(timer.elapsed, 1), "out": str(out)}
    print(json.dumps(summary), flush=True)
    return summary


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    train(args)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # a ComposerError is the user's to fix: one line, no traceback
        from composer.errors import ComposerError
        if isinstance(exc, ComposerError):
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(1)
        raise
