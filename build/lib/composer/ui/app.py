"""The whole app: one tab per instrument of the studio, assembled from composer.ui modules."""
from __future__ import annotations

import importlib.util
import os
import threading

import gradio as gr

from composer import sandbox
from composer.device import use_interactive_threads
from composer.music.midi import MAX_MIDI_BYTES
from composer.ui import compose, continue_tab, folk, player, train, transfer

TITLE = "Composer"
INTRO = ("# Composer\nA music studio for small generative models, running on this machine "
         "(GPU when there is one, CPU otherwise). Audio through FluidSynth.")


def build_app() -> gr.Blocks:
    """Build the Blocks app (not launched)."""
    use_interactive_threads()
    # start a worker for untrusted input (scores, ABC) now, so the first visitor does not wait for it
    threading.Thread(target=sandbox.pool().warm, daemon=True, name="sandbox-warm").start()
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(INTRO)
        hooks = []
        with gr.Tabs():
            with gr.Tab("Compose", id="compose"):
                hook, composed_midi = compose.build()
                hooks.append(hook)
            with gr.Tab("Genre transfer", id="transfer"):
                transfer.build(composed_midi)
            with gr.Tab("Folk tunes", id="folk"):
                folk.build()
            with gr.Tab("Continue", id="continue"):
                continue_tab.build()
            with gr.Tab("Train", id="train"):
                train.build()
            with gr.Tab("Player", id="player"):
                player.build()
        for hook in hooks:
            if hook is not None:
                hook(demo)
    return demo


def launch_kwargs(host: str | None = None, port: int | None = None) -> dict:
    """Arguments for ``demo.launch`` (theme and size limits go to launch in Gradio 6)."""
    return dict(server_name=host or os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                server_port=int(port or os.environ.get("GRADIO_SERVER_PORT", 7860)),
                theme=gr.themes.Soft(), max_file_size=4 * MAX_MIDI_BYTES,
                mcp_server=importlib.util.find_spec("mcp") is not None)


def launch(host: str | None = None, port: int | None = None) -> None:
    build_app().queue(default_concurrency_limit=4).launch(**launch_kwargs(host, port))
