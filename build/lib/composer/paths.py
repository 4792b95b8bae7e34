"""Where Composer's files are: the only place that looks at ``__file__``.

In a checkout the shipped checkpoints and soundfonts sit beside the package
(``checkpoints/``, ``assets/soundfonts/``); after ``pip install .`` they are installed as
data files under ``<prefix>/share/composer/``. ``$COMPOSER_CHECKPOINTS`` and
``$COMPOSER_CACHE`` override the defaults. See ``docs/ARCHITECTURE.md``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

#: The folder holding the ``composer`` package (the repository root in a checkout).
PACKAGE_PARENT = Path(__file__).resolve().parent.parent


def _shared(name: str) -> Path:
    """``name`` beside the package in a checkout, else under the installed data prefix."""
    here = PACKAGE_PARENT / name
    if here.is_dir():
        return here
    for prefix in (sys.prefix, PACKAGE_PARENT, PACKAGE_PARENT.parent.parent.parent):
        candidate = Path(prefix) / "share" / "composer" / name
        if candidate.is_dir():
            return candidate
    return here


def checkpoints_dir() -> Path:
    """The shipped checkpoints (``.safetensors`` + ``.json`` model cards)."""
    env = os.environ.get("COMPOSER_CHECKPOINTS")
    return Path(env) if env else _shared("checkpoints")


def soundfonts_dir() -> Path:
    """Soundfonts shipped with (or dropped into) Composer."""
    return _shared("assets") / "soundfonts"


def cache_dir() -> Path:
    """Where built training sets and corpus caches live (``$COMPOSER_CACHE`` or ~/.cache/composer)."""
    return Path(os.environ.get("COMPOSER_CACHE") or Path.home() / ".cache" / "composer")


def runs_dir() -> Path:
    """Where the app's training runs write (``runs/`` in the checkout)."""
    return PACKAGE_PARENT / "runs"
