"""Small helpers shared by the tabs: turning package errors into UI messages, GM choices."""
from __future__ import annotations

import functools

import gradio as gr

from composer.errors import ComposerError
from composer.music.midi import gm_instrument_names

GM_CHOICES = [f"{p:03d} {name}" for p, name in enumerate(gm_instrument_names())]


def program_choice(program: int) -> str:
    return GM_CHOICES[int(program)]


def choice_program(choice: str | None) -> int | None:
    """``"040 Violin"`` -> 40; None or an unknown string -> None (keep the track's own)."""
    if not choice:
        return None
    head = str(choice).split(" ", 1)[0]
    return int(head) if head.isdigit() and 0 <= int(head) <= 127 else None


def user_errors(fn):
    """Show a :class:`ComposerError` as a Gradio error message instead of a traceback.

    Raising ``gr.Error`` leaves every output as it was, so nothing on screen is lost, and
    API clients get the same one-line message.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ComposerError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
    return wrapper
