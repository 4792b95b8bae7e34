"""Helpers every trainer shares: device, distributed set-up, JSONL log, safetensors checkpoints.

Imports only torch, numpy and the standard library, so training runs on a bare GPU box.
Checkpoints are a ``.safetensors`` file (tensors only, never pickle) next to a ``.json``
model card (config, data, steps, wall time, metrics, how it was trained).
"""
from __future__ import annotations

import json
import platform
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist

from composer.checkpoints import load_checkpoint, prefixed, save_checkpoint, unprefixed  # noqa: F401  (re-exported for the trainers)
from composer.device import keep_freed_memory, pick_device  # noqa: F401  (pick_device: re-exported for the trainers)


def setup_process(threads: int | None = None) -> None:
    """A training process: ``threads`` torch CPU threads (None: torch's default) and glibc
    keeping freed memory for reuse (composer.device.keep_freed_memory: fewer page faults)."""
    if threads:
        torch.set_num_threads(threads)
    keep_freed_memory()


def add_run_args(p, *, out: str | None, steps: int, checkpoint_every: int, log_every: int = 10) -> None:
    """The options every trainer shares, spelled once so that the CLI, the Train tab
    (composer.ui.jobs) and the docs agree: where the run lives, how long it runs, how often it
    saves ``last.safetensors``, its device, threads, seed, resume and progress bar.

    ``out=None`` makes ``--out`` required (trainers whose runs have no sensible default folder).
    """
    if out is None:
        p.add_argument("--out", required=True, help="run folder (checkpoints, log, model)")
    else:
        p.add_argument("--out", default=out, help="run folder (checkpoints, log, model)")
    p.add_argument("--steps", type=int, default=steps, help="optimisation steps in all (resume counts on)")
    p.add_argument("--checkpoint-every", type=int, default=checkpoint_every,
                   help="steps between saves of last.safetensors (what resume and the Train tab read)")
    p.add_argument("--log-every", type=int, default=log_every, help="steps between log lines")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-resume", action="store_true", help="start afresh even if --out has a checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar (logs still go to log.jsonl)")


def export_weights(src, dst, select, label: str, half: bool = True, extra: dict | None = None) -> Path:
    """Ship part of a training checkpoint ``src`` as ``dst`` (safetensors + model card).

    ``select(tensors)`` returns the tensors to ship (a generator, a classifier: what
    inference loads; critics and optimiser states stay behind, they only serve a resume).
    Floating tensors become float16 unless ``half`` is False. The card is the checkpoint's,
    with ``weights`` (``label``), ``exported_from`` and ``extra`` added.
    """
    tensors, card = load_checkpoint(src)
    keep = {k: (v.half() if half and v.is_floating_point() else v) for k, v in select(tensors).items()}
    card = dict(card, weights=label + (", float16" if half else ""), exported_from=str(src))
    card.update(extra or {})
    save_checkpoint(dst, keep, card)
    return Path(dst)


def open_run(args) -> tuple["Dist", Path, Path]:
    """The start of a run that :func:`add_run_args` described: process settings, the
    device (:class:`Dist`), the run folder and its ``last.safetensors``."""
    setup_process(args.threads)
    out = Path(args.out)
    return Dist(args.device), out, out / "last.safetensors"


class Dist:
    """Rank/world size from torchrun's environment; a no-op when run as a plain process."""

    def __init__(self, device_name: str = "auto"):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world > 1
        device = pick_device(device_name)
        if device.type == "cuda" and self.enabled:
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        self.device = device
        if self.enabled and not dist.is_initialized():
            # gloo works everywhere (the CPU test runs 2 processes on it); nccl for GPUs
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.enabled:
            dist.barrier()

    def close(self):
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


class JsonlLog:
    """Appends one JSON object per line; readable while training runs (the UI polls it)."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = Path(path), enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, **row):
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")

    def keep_until(self, step: int) -> None:
        """Drop the rows after ``step`` (the step a run resumes from, 0 for a fresh start):
        they are about to be redone, and a crash after them must not leave duplicates."""
        if not (self.enabled and self.path.exists()):
            return
        rows = [r for r in read_jsonl(self.path) if r.get("step", 0) <= step] if step else []
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        tmp.replace(self.path)


def read_jsonl(path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> dict[str, torch.Tensor]:
    """Adam state as flat named tensors (safetensors holds tensors only)."""
    out = {}
    for i, state in opt.state_dict()["state"].items():
        for k, v in state.items():
            out[f"{prefix}.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return out


def load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: dict, prefix: str):
    sd = opt.state_dict()
    state = {}
    for key, v in tensors.items():
        if key.startswith(prefix + "."):
            _, i, k = key.split(".", 2)
            state.setdefault(int(i), {})[k] = v
    sd["state"] = state
    opt.load_state_dict(sd)


class Timer:
    """Wall time that survives resume: ``elapsed`` adds the time of earlier runs."""

    def __init__(self, before: float = 0.0):
        self.before, self.t0 = before, time.time()

    @property
    def elapsed(self) -> float:
        return self.before + time.time() - self.t0


def cpu_name() -> str:
    """The processor's model name and core count, for model cards."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def lr_at(step: int, args) -> float:
    """Linear warm-up over ``args.warmup`` steps, then cosine decay to ``args.min_lr_ratio * args.lr``."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
    return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))
