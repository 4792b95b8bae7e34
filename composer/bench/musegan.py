"""MuseGAN figures for ``python -m composer bench --json``.

* ``musegan_train_iter_s`` - one training iteration (5 critic + 1 generator step, batch 64)
  at the given preset, through the trainer's own :func:`train_step`, after a warm-up; fp32,
  with the memory setting the trainer uses (composer.device.keep_freed_memory).
* ``musegan_train_iter_s_bf16`` - the same under bf16 autocast (CPU bf16 units or CUDA).
* ``musegan_generate_ms`` - batch-1 generation (latents -> codes), warm, default preset;
  ``musegan_generate_ms_chorale`` the same with the categorical output layer (preset chorale).

Measured in-process with random weights and random "real" data, so no checkpoint or corpus
is needed. Compare with ``python ../shared/reference/musegan_seed.py`` (the seed's loops)
at the same thread count.
"""
from __future__ import annotations

import statistics
import time

import torch


def train_iter_seconds(preset: str = "seed", iters: int = 2, batch: int = 64, bf16: bool = False,
                       device: str = "cpu") -> float:
    from composer.device import keep_freed_memory, restore_freed_memory
    from composer.models.musegan import Critic, Generator, get_config
    from composer.training.musegan import train_step

    torch.manual_seed(0)
    cfg = get_config(preset)
    dev = torch.device(device)
    G, C = Generator(cfg).to(dev), Critic(cfg).to(dev)
    opt_g = torch.optim.Adam(G.parameters(), 1e-3, betas=(0.5, 0.9))
    opt_c = torch.optim.Adam(C.parameters(), 1e-3, betas=(0.5, 0.9))
    real = torch.rand(batch, cfg.n_tracks, cfg.n_bars, cfg.steps_per_bar, cfg.n_pitches, device=dev) * 2 - 1
    autocast = lambda: torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16)  # noqa: E731

    def step():
        train_step(G, C, opt_g, opt_c, lambda: real, cfg, batch, dev, autocast=autocast)

    keep_freed_memory()  # as the trainer runs (undone below, so later bench groups see the app's setting)
    try:
        step()  # warm-up: allocator, oneDNN primitive caches
        t = time.perf_counter()
        for _ in range(iters):
            step()
        return (time.perf_counter() - t) / iters
    finally:
        restore_freed_memory()


def generate_ms(preset: str = "default", repeats: int = 20) -> float:
    """Median milliseconds for one phrase: latents -> generator (eval) -> monophonic codes."""
    from composer.api import musegan as mg
    from composer.models.musegan import Generator, get_config

    cfg = get_config(preset)
    model = mg.LoadedGenerator(Generator(cfg).eval(), cfg, {}, None, torch.device("cpu"))
    z = mg.random_latents(model, 1, seed=0)
    for _ in range(3):
        mg.generate(model, z)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        mg.generate(model, z)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def bench(preset: str = "seed") -> dict:
    return {
        "musegan_preset": preset,
        "musegan_train_iter_s": round(train_iter_seconds(preset), 3),
        "musegan_train_iter_s_bf16": round(train_iter_seconds(preset, bf16=True), 3),
        "musegan_generate_ms": round(generate_ms("default"), 2),
        "musegan_generate_ms_chorale": round(generate_ms("chorale"), 2),
        "musegan_threads": torch.get_num_threads(),
    }


if __name__ == "__main__":
    import json
    import sys
    if "--threads" in sys.argv:
        torch.set_num_threads(int(sys.argv[sys.argv.index("--threads") + 1]))
    print(json.dumps(bench(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "seed")))
