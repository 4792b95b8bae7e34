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


# glibc mallopt() parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_GLIBC_DEFAULT = 128 * 1024


def _mallopt(param: int, value: int) -> bool:
    try:
        import ctypes
        return bool(ctypes.CDLL("libc.so.6").mallopt(param, value))
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
        return False


def keep_freed_memory(limit: int = 1 << 30) -> bool:
    """Let glibc reuse freed blocks of up to ``limit`` bytes instead of unmapping them (training).

    glibc serves every block above 32 MB with a fresh mmap and unmaps it on free; a training
    step allocates and frees such activations dozens of times, and the kernel zero-fills
    every new page. At MuseGAN's seed sizes on one thread that was a quarter of the time
    (5.2 s of 20.6 s in the kernel, 6.8 M page faults; measured). The cost: the process keeps
    its peak memory until it exits, which suits a training process, not the app. Returns
    whether the setting took (False where the C library is not glibc).
    """
    return _mallopt(_M_MMAP_THRESHOLD, limit) and _mallopt(_M_TRIM_THRESHOLD, 2 * limit)


def restore_freed_memory() -> None:
    """Undo :func:`keep_freed_memory` (glibc's initial thresholds; benchmarks use this)."""
    _mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT)
    _mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT)
