"""Trainers, one module per model (``python -m composer train MODEL``), sharing
:mod:`composer.training.loop`. They import only torch, numpy and the standard library at
module level, so a bare GPU box can run them. See ``docs/ARCHITECTURE.md``."""
from __future__ import annotations

import importlib.util

#: ``train MODEL`` -> the module with ``main(argv) -> int``.
TRAINERS = {"musegan": "composer.training.musegan", "charrnn": "composer.training.charrnn",
            "cyclegan": "composer.training.cyclegan", "classifier": "composer.training.classifier",
            "notes": "composer.training.notes"}


def has_module(name: str) -> bool:
    """Whether ``name`` can be imported here (False also when its parent package is absent)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False
