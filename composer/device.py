"""Where models run: CUDA when there is a GPU, Apple's MPS on a Mac, else the CPU."""
from __future__ import annotations

import torch


def pick_device(preference: str = "auto") -> torch.device:
    """Resolve ``"auto"``, ``"cuda"``, ``"mps"`` or ``"cpu"`` to an available device."""
    if preference != "auto":
        return torch.device(preference)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def use_interactive_threads(n: int = 1) -> None:
    """Run torch on ``n`` threads for interactive, batch-1 inference (the app does this).

    A batch-1 MuseGAN decode takes ~1 ms on one thread; with two OpenMP threads on a busy
    2-core machine (a training run, FluidSynth) the threads spin-wait on each other and the
    same call took 400 ms (measured). Training sets its own thread count.
    """
    torch.set_num_threads(n)
