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
