"""Train tab: pick a model and data, watch the loss curves live, preview, save, use in Compose.

The run itself is a child process managed by :mod:`composer.ui.jobs`; this tab starts it and
polls its log with a ``gr.Timer`` once a second. A run belongs to the visitor who started it:
the page keeps an owner token in the browser (``gr.BrowserState``, so a reload keeps it), and
only that owner may stop or save the run; everyone else sees its progress read-only and how
long the trainer stays busy. "Use in Compose" changes the Compose model of that visitor only.
"""
from __future__ import annotations

import math
import secrets
import shutil
import threading
import time
from pathlib import Path

import gradio as gr
import pandas as pd

from composer.errors import ComposerError
from composer.music.corpus import cache_dir
from composer.render.outputs import export_piece, new_output_dir, safe_stem
from composer.ui.common import user_errors
from composer.ui.jobs import (JOBS, available_trainables, owner_hash, prepare_upload, runs_root,
                              upload_limit_text)

_preview_cache: dict[str, tuple[float, tuple]] = {}  # checkpoint -> (mtime, preview): read-only results
_preview_lock = threading.Lock()
MAX_PREVIEWS = 4


def _label_to_key(label: str) -> str:
    for k, t in available_trainables().items():
        if t.label == label:
            return k
    raise ComposerError(f"unknown model {label!r}")


def _runs_dir() -> Path:
    return runs_root()


def new_owner_token() -> str:
    return secrets.token_urlsafe(24)


def owner_key(token, request: gr.Request | None) -> str:
    """Who is asking: the page's owner token (kept across reloads), else this session."""
    if isinstance(token, str) and 16 <= len(token) <= 200:
        return f"token:{token}"  # never equal to a session's key below, whatever a client sends
    session = getattr(request, "session_hash", None) if request is not None else None
    return f"session:{session}" if session else ""


def models_dir(owner: str) -> Path:
    """The folder of one visitor's saved models (other visitors' names never collide with them)."""
    path = cache_dir() / "models" / owner_hash(owner)[:16]
    path.mkdir(parents=True, exist_ok=True)
    return path


def loss_frame(records: list[dict], keys: tuple[str, ...]) -> pd.DataFrame:
    """The log's curves as rows (step, series, value); non-finite values are left out (a
    diverged step must not stretch the chart's axes to +-Infinity)."""
    rows = [{"step": r["step"], "series": k, "value": float(r[k])} for r in records if "step" in r
            for k in keys if isinstance(r.get(k), (int, float)) and math.isfinite(r[k])]
    return pd.DataFrame(rows, columns=["step", "series", "value"])


def plot_update(frame: pd.DataFrame):
    """The chart, shown once it has a point: an empty Vega chart draws axes from -Infinity to Infinity."""
    return gr.update(value=frame, visible=not frame.empty)


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "estimating…"
    s = int(s)
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def progress_html(p: dict, note: str = "") -> str:
    pct = 100 * p["fraction"]
    eta = _fmt_s(p["eta_s"]) if p["state"] == "running" else "-"
    return (f'<div><progress value="{pct:.1f}" max="100" style="width:100%;height:18px"></progress>'
            f'<p><b>{p["state"]}</b> · step {p["step"]} / {p["total"]} ({pct:.0f}%) · elapsed '
            f'{_fmt_s(p["elapsed_s"])} · time left {eta}</p>{note}</div>')


def make_preview(job) -> tuple:
    """(piano roll, audio, text) from the run's newest model; cached per file mtime.

    The model runs in the GPU slot (:mod:`composer.ui.gpu`); the audio and roll are made after it.
    """
    from composer.ui import gpu as gpu_calls
    t = job.trainable
    ck = job.out / t.best_file if t.best_file else job.checkpoint
    if t.key in ("cyclegan", "classifier") or not ck.exists():
        return None, None, ""  # their figures are the curves; `eval cyclegan` measures transfer
    with _preview_lock:  # one preview at a time; the visitors polling meanwhile get it from the cache
        mtime = ck.stat().st_mtime
        key = str(ck)
        if key in _preview_cache and _preview_cache[key][0] == mtime:
            return _preview_cache[key][1]
        if t.key == "musegan":
            from composer.api.musegan import to_pretty_midi
            codes = gpu_calls.musegan_preview(str(ck))
            piece = export_piece(to_pretty_midi(codes), "preview", score=False, title="current generator, seed 0")
            out = (str(piece.png), str(piece.wav), "")
        elif t.key == "charrnn":  # a tune from the best model so far
            out = (None, None, gpu_calls.charrnn_preview(str(ck)))
        else:  # a note model: continue the first bars of a corpus chorale by two bars
            import pretty_midi

            from composer.music.corpus import example_midi_paths
            prompt = pretty_midi.PrettyMIDI(str(next(iter(example_midi_paths().values()))))
            for inst in prompt.instruments[1:]:
                inst.notes = []
            prompt.instruments[0].notes = [n for n in prompt.instruments[0].notes if n.start < 8.0]
            pm, seam, _ = gpu_calls.notes_preview(prompt, str(ck))
            piece = export_piece(pm, "preview", score=False, title="current model: prompt | continuation",
                                 marks=[seam])
            out = (str(piece.png), str(piece.wav), "")
        _preview_cache[key] = (mtime, out)
        while len(_preview_cache) > MAX_PREVIEWS:
            _preview_cache.pop(next(iter(_preview_cache)))
        return out


def _idle_html() -> str:
    return progress_html({"state": "idle", "step": 0, "total": 0, "fraction": 0.0, "elapsed_s": 0, "eta_s": None})


@user_errors
def start(model_label, source, uploads, steps, batch, owner=None, request: gr.Request = None):
    """Start a training run in the background (API: ``train_start``); one run per server.

    ``owner`` is the page's owner token (empty: one is made and returned); the run belongs to it.
    """
    token = owner if owner_key(owner, None) else new_owner_token()
    who = owner_key(token, request)
    key = _label_to_key(model_label)
    t = available_trainables()[key]
    JOBS.check_free(who)  # before any upload is unpacked
    run = _runs_dir() / f"{key}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    note = ""
    if source == "Built-in corpus":
        data = "builtin"
    elif not t.extensions:
        raise gr.Error(f"{t.label} trains on two domains: use the built-in pair here, or your own folders "
                       f"with `python -m composer train {' '.join(t.cli)} --domain-a DIR --domain-b DIR`.")
    else:
        prepared = prepare_upload(uploads or [], t.extensions, new_output_dir("composer-data-"))
        data = str(prepared.folder)
        note = f"{len(prepared.accepted)} files accepted"
        if prepared.skipped:
            note += f", {len(prepared.skipped)} skipped: " + "; ".join(prepared.skipped[:10])
    job = JOBS.start(key, data, int(steps), int(batch), run, owner=who, data_note=note)
    return (gr.Timer(active=True), progress_html(job.progress(), f"<p>{note}</p>" if note else ""),
            plot_update(loss_frame([], t.loss_keys)), token)


def stopping(owner=None, request: gr.Request = None):
    """Stop pressed: say "stopping" at once, before the trainer is signalled (the next event)."""
    job = JOBS.running_job()
    if job is None or not job.owned_by(owner_key(owner, request)):
        return gr.update()  # the stop event itself says why not
    return progress_html(dict(job.progress(), state="stopping"))


@user_errors
def stop(owner=None, request: gr.Request = None):
    """Stop your training run (API: ``train_stop``); its last checkpoint stays. Only the visitor who
    started a run can stop it; it ends within about two seconds."""
    job = JOBS.running_job()
    if job is None:
        raise gr.Error("No training run is in progress.")
    JOBS.stop(owner=owner_key(owner, request))
    return progress_html(job.progress(), "<p>Stopped; the last checkpoint is kept.</p>")


def poll(owner=None, request: gr.Request = None):
    """Timer tick: loss curves, progress, preview; the timer stops when the run ends.

    The owner sees the run as theirs; everyone else sees it read-only, with how long the
    trainer stays busy.
    """
    job = JOBS.current()
    if job is None:
        return gr.Timer(active=False), _idle_html(), gr.update(), gr.update(), gr.update(), gr.update()
    mine = job.owned_by(owner_key(owner, request))
    p = job.progress()
    note = f"<p>{job.data_note}</p>" if job.data_note and mine else ""
    if not mine:
        note += (f"<p><b>{job.busy_text()}</b> You can watch it here; only its owner can stop or save it.</p>"
                 if job.running else "<p>The last run on this server (another visitor's); the trainer is free.</p>")
    elif job.adopted:
        note += "<p>Found running after the app restarted; it is still yours.</p>"
    if p["state"] == "failed" and mine:
        note += f"<p style='color:#b00'>Training failed: {job.error_tail() or 'see the server log'}</p>"
    try:
        roll, wav, text = make_preview(job)
    except ComposerError as exc:
        roll, wav, text = None, None, f"(preview not available: {exc})"
    return (gr.Timer(active=job.running), progress_html(p, note),
            plot_update(loss_frame(job.records(), job.trainable.loss_keys)), roll, wav, text)


@user_errors
def save(name, owner=None, request: gr.Request = None):
    """Save your run's current model as safetensors + model card (API: ``train_save``)."""
    who = owner_key(owner, request)
    job = JOBS.current()
    if job is None or not job.owned_by(who):
        raise gr.Error("Nothing of yours to save: start a run and wait for its first checkpoint "
                       "(only the visitor who started a run can save it).")
    if not job.checkpoint.exists():
        raise gr.Error("Nothing to save yet: wait for the run's first checkpoint.")
    stem = safe_stem(name or f"{job.trainable.key}-{time.strftime('%Y%m%d-%H%M%S')}")
    folder = models_dir(who)
    dst = folder / f"{stem}.safetensors"
    t = job.trainable
    if t.best_file:  # the trainer keeps its best model shippable already (half precision + card)
        best = job.out / t.best_file
        if not best.exists():
            raise gr.Error("No model evaluated yet: wait for the first evaluation.")
        shutil.copy2(best, dst)
        shutil.copy2(best.with_suffix(".json"), dst.with_suffix(".json"))
    else:
        import importlib
        module, fn = t.export.split(":")
        getattr(importlib.import_module(module), fn)(job.checkpoint, dst,
                                                     extra={"trained_in": "Composer Train tab", "data": job.data})
    # the model stays in the owner's folder of the cache (Use in Compose reads it there); the
    # download is a copy in a temp folder, the only place Gradio serves files from
    out = new_output_dir("composer-model-")
    files = [shutil.copy2(src, out / src.name) for src in (dst, dst.with_suffix(".json"))]
    return [str(f) for f in files], f"Saved **{dst.name}** (half precision, with its model card)."


@user_errors
def use_in_compose(files, model_choice=None, owner=None, request: gr.Request = None):
    """Compose with a MuseGAN checkpoint you saved, in your session only (API: ``train_use_in_compose``).

    The Compose tab's model list gets it; "Shipped model" there goes back.
    """
    import json

    from composer.ui import compose
    paths = [f for f in (files or []) if str(f).endswith(".safetensors")]
    if not paths:
        raise gr.Error("Save a MuseGAN checkpoint first.")
    folder = models_dir(owner_key(owner, request)).resolve()
    path = (folder / Path(paths[0]).name).resolve()  # only the name of the download is used
    if path.parent != folder or not path.exists():  # only models this visitor saved here
        raise gr.Error("That checkpoint is not one you saved in this app.")
    try:
        model = json.loads(path.with_suffix(".json").read_text()).get("model")
    except (OSError, ValueError):
        model = None
    if model not in (None, "musegan"):
        raise gr.Error("Only a MuseGAN model can be used in Compose; note models are picked in the Continue tab.")
    comp = compose.MODEL.use(path)
    choice = compose.with_model(model_choice, path.stem, path)
    return (f"Your Compose tab now uses **{comp.name}** (press New there; \"{compose.SHIPPED}\" in its model "
            "list goes back). Other visitors keep theirs.", choice)


def on_load(owner=None, request: gr.Request = None):
    """Page open: make the owner token if there is none, and show a run in progress."""
    token = owner if owner_key(owner, None) else new_owner_token()
    job = JOBS.current()
    if job is None or not job.running:
        return token, gr.Timer(active=False)
    return token, gr.Timer(active=True)


def build(owner: gr.BrowserState | None = None, model_choice: gr.State | None = None):
    """Lay out the Train tab. ``owner``: the page's owner token; ``model_choice``: the Compose model
    choice of the session (see :mod:`composer.ui.compose`). Returns the page-load hook."""
    from composer.ui import compose
    owner = owner if owner is not None else gr.BrowserState(None)
    model_choice = model_choice if model_choice is not None else gr.State(compose.new_model_choice())
    trainables = available_trainables()
    gr.Markdown("Train a model on the built-in corpus or on your own files. The run goes on in the "
                "background (one per server); loss curves and a preview of the current model update live. "
                "A run is yours: only you can stop or save it, others see it read-only.")
    labels = [t.label for t in trainables.values()]
    with gr.Row():
        with gr.Column(scale=1):
            model = gr.Radio(labels, value=labels[0] if labels else None, label="Model")
            source = gr.Radio(["Built-in corpus", "My files"], value="Built-in corpus", label="Data")
            uploads = gr.File(label=f"Your data: a zip or files (.mid/.midi for MuseGAN, .abc for folk tunes); "
                                    f"up to {upload_limit_text()}",
                              file_count="multiple", file_types=[".zip", ".mid", ".midi", ".abc"], type="filepath")
            steps = gr.Slider(10, 20000, value=2000, step=10, label="Steps")
            batch = gr.Slider(4, 128, value=32, step=4, label="Batch size")
            with gr.Row():
                start_btn = gr.Button("Start", variant="primary")
                stop_btn = gr.Button("Stop", variant="stop")
            name = gr.Textbox(label="Checkpoint name", placeholder="my-model")
            with gr.Row():
                save_btn = gr.Button("Save checkpoint")
                use_btn = gr.Button("Use in Compose")
            saved = gr.File(label="Saved checkpoint (safetensors + model card)", file_count="multiple",
                            interactive=False)
            saved_msg = gr.Markdown()
        with gr.Column(scale=2):
            progress = gr.HTML(_idle_html())
            plot = gr.LinePlot(pd.DataFrame({"step": [], "series": [], "value": []}), x="step", y="value",
                               color="series", title="Losses", height=300, visible=False)
            prev_roll = gr.Image(label="Preview: the current generator", type="filepath", interactive=False)
            prev_audio = gr.Audio(label="Preview audio", type="filepath", interactive=False)
            prev_text = gr.Textbox(label="Preview tune (folk model)", lines=6, interactive=False)
    timer = gr.Timer(1.0, active=False)
    start_btn.click(start, [model, source, uploads, steps, batch, owner], [timer, progress, plot, owner],
                    api_name="train_start")
    stop_btn.click(stopping, [owner], [progress], queue=False, show_progress="hidden", api_visibility="private") \
        .then(stop, [owner], [progress], api_name="train_stop")
    timer.tick(poll, [owner], [timer, progress, plot, prev_roll, prev_audio, prev_text], show_progress="hidden",
               api_name="train_status", concurrency_limit=2, concurrency_id="train_status")
    save_btn.click(save, [name, owner], [saved, saved_msg], api_name="train_save")
    use_btn.click(use_in_compose, [saved, model_choice, owner], [saved_msg, model_choice],
                  api_name="train_use_in_compose")
    return lambda demo: demo.load(on_load, [owner], [owner, timer], api_visibility="private",  # noqa: E731
                                  show_progress="hidden")
