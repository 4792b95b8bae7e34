"""``spaces.GPU`` on Hugging Face ZeroGPU Spaces, a no-op decorator everywhere else."""
from __future__ import annotations

try:  # the `spaces` package exists on Hugging Face Spaces only
    import spaces

    gpu = spaces.GPU
except ImportError:
    def gpu(fn=None, **_kwargs):
        """No GPU broker here: return the function unchanged (usable bare or with arguments)."""
        if fn is None:
            return lambda f: f
        return fn
