"""The whole app: one tab per instrument of the studio, assembled from composer.ui modules."""
from __future__ import annotations

import importlib.util
import os
import threading

import gradio as gr

from composer import sandbox
from composer.device import use_interactive_threads
from composer.render.outputs import LIVE_ROOT, OUTPUT_MAX_AGE_S
from composer.ui import compose, continue_tab, folk, gpu, player, train, transfer
from composer.ui.jobs import MAX_UPLOAD_BYTES

#: How many events of one kind run at once (Gradio's queue). Measured with
#: ``python -m composer bench --only load`` (20 visitors composing on 2 cores): see bench/load.py.
CONCURRENCY = int(os.environ.get("COMPOSER_CONCURRENCY", 2))

#: Every this many seconds Gradio deletes its copies of what the app served (rolls, audio,
#: downloads) once they are as old as the app's own output folders may be
#: (composer.render.outputs.OUTPUT_MAX_AGE_S): without it every slider move left ~1 MB in
#: Gradio's cache for good (11 GB on this machine after a few days of tests and benches).
CACHE_SWEEP_S = 600

TITLE = "Composer"
INTRO = ("# Composer\nA music studio for small generative models, running on this machine "
         "(GPU when there is one, CPU otherwise). Audio through FluidSynth.")


def build_app() -> gr.Blocks:
    """Build the Blocks app (not launched)."""
    use_interactive_threads()
    # start a worker for untrusted input (scores, ABC) now, so the first visitor does not wait for it
    threading.Thread(target=sandbox.pool().warm, daemon=True, name="sandbox-warm").start()
    gpu.install()  # ZeroGPU: the other tabs' model calls run in the GPU slot (a no-op elsewhere)
    # Compose's live roll and audio are served where they lie, not copied into Gradio's cache
    # (composer.render.outputs.LIVE_ROOT: nothing else is ever written there)
    LIVE_ROOT.mkdir(parents=True, exist_ok=True)
    gr.set_static_paths([LIVE_ROOT])
    with gr.Blocks(title=TITLE, delete_cache=(CACHE_SWEEP_S, int(OUTPUT_MAX_AGE_S))) as demo:
        gr.Markdown(INTRO)
        # per visitor: an owner token kept in the browser (a reload keeps it; it owns training
        # runs) and the Compose model of this session (Train's "Use in Compose" changes it)
        owner = gr.BrowserState(None, storage_key="composer-owner", secret=browser_secret())
        model_choice = gr.State(compose.new_model_choice())
        hooks = []
        with gr.Tabs():
            with gr.Tab("Compose", id="compose"):
                hook, composed_midi = compose.build(model_choice)
                hooks.append(hook)
            with gr.Tab("Genre transfer", id="transfer"):
                transfer.build(composed_midi)
            with gr.Tab("Folk tunes", id="folk"):
                folk.build()
            with gr.Tab("Continue", id="continue"):
                continue_tab.build()
            with gr.Tab("Train", id="train"):
                hooks.append(train.build(owner, model_choice))
            with gr.Tab("Player", id="player"):
                player.build()
        for hook in hooks:
            if hook is not None:
                hook(demo)
    share_queue(demo, model_choice, "compose", apart={"finish": "compose-finish"})
    return demo


def share_queue(demo: gr.Blocks, state: gr.State, concurrency_id: str, apart: dict | None = None) -> int:
    """Every event that reads ``state`` (the Compose tab's) waits in one queue of :data:`CONCURRENCY`.

    Gradio gives each event its own queue of ``default_concurrency_limit``: twenty sliders
    and buttons would run up to 2 x 30 renders at once on 2 cores, each slower than the last.
    One queue keeps the renders at the pace of the cores and serves visitors in order.
    ``apart``: handler name -> a queue of its own (the slow score after each action must not
    hold the fast path's places). Returns the number of events moved.
    """
    n = 0
    for fn in demo.fns.values():
        if fn.concurrency_limit == "default" and any(block is state for block in fn.inputs):
            name = getattr(fn.fn, "__name__", "")
            fn.concurrency_id = (apart or {}).get(name, concurrency_id)
            n += 1
    return n


def browser_secret() -> str:
    """The key the owner tokens are encrypted with in browsers: made once, kept in the cache, so a
    restarted app still reads them (its runs stay their owners')."""
    import secrets

    from composer.music.corpus import cache_dir
    path = cache_dir() / "browser-state-secret"
    try:
        text = path.read_text().strip()
        if len(text) >= 16:
            return text
    except OSError:
        pass
    text = secrets.token_urlsafe(24)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
    except FileExistsError:
        return path.read_text().strip()
    except OSError:
        pass
    return text


def queue(demo: gr.Blocks) -> gr.Blocks:
    """The app's queue settings (app.py, ``cli serve`` and the tests use them)."""
    return demo.queue(default_concurrency_limit=CONCURRENCY, max_size=200)


def launch_kwargs(host: str | None = None, port: int | None = None) -> dict:
    """Arguments for ``demo.launch`` (theme and size limits go to launch in Gradio 6)."""
    return dict(server_name=host or os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                server_port=int(port or os.environ.get("GRADIO_SERVER_PORT", 7860)),
                theme=gr.themes.Soft(), max_file_size=MAX_UPLOAD_BYTES,
                mcp_server=importlib.util.find_spec("mcp") is not None)


def launch(host: str | None = None, port: int | None = None) -> None:
    queue(build_app()).launch(**launch_kwargs(host, port))
