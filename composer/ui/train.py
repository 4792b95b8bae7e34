"""Train tab: pick a model and data, watch the loss curves live, preview, save, use in Compose.

The run itself is a child process managed by :mod:`composer.ui.jobs`; this tab starts it and
polls its log with a ``gr.Timer`` once a second.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import gradio as gr
import pandas as pd

from composer.errors import ComposerError
from composer.ui.jobs import JOBS, available_trainables, prepare_upload
from composer.music.corpus import cache_dir
from composer.render.outputs import export_piece, new_output_dir, safe_stem
from composer.ui.common import user_errors

_preview_cache: dict[str, tuple[float, tuple]] = {}


def _label_to_key(label: str) -> str:
    for k, t in available_trainables().items():
        if t.label == label:
            return k
    raise ComposerError(f"unknown model {label!r}")


def _runs_dir() -> Path:
    path = cache_dir() / "runs"
    path.mkdir(exist_ok=True)
    return path


def loss_frame(records: list[dict], keys: tuple[str, ...]) -> pd.DataFrame:
    rows = [{"step": r["step"], "series": k, "value": float(r[k])} for r in records if "step" in r
            for k in keys if k in r and r[k] is not None]
    return pd.DataFrame(rows, columns=["step", "series", "value"])


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
    """(piano roll, audio, text) from the run's newest model; cached per file mtime."""
    t = job.trainable
    ck = job.out / t.best_file if t.best_file else job.checkpoint
    if not ck.exists():
        return None, None, ""
    mtime = ck.stat().st_mtime
    key = str(ck)
    if key in _preview_cache and _preview_cache[key][0] == mtime:
        return _preview_cache[key][1]
    if t.key in ("cyclegan", "classifier"):
        return None, None, ""  # their figures are the curves; `eval cyclegan` measures transfer
    if t.key == "musegan":
        from composer.api.musegan import generate, load_generator, random_latents, to_codes, to_pretty_midi
        model = load_generator(ck)
        codes = to_codes(generate(model, random_latents(model, 1, seed=0)))[0]
        piece = export_piece(to_pretty_midi(codes), "preview", score=False, title="current generator, seed 0")
    elif t.key == "charrnn":  # a tune from the best model so far
        from composer.api import charrnn as charrnn_api
        text = charrnn_api.generate_tune(model=charrnn_api.FolkModel(ck), seed=0, max_chars=800)
        out = (None, None, text)
        _preview_cache[key] = (mtime, out)
        return out
    else:  # a note model: continue the first bars of a corpus chorale by two bars
        import pretty_midi

        from composer.music.corpus import example_midi_paths
        from composer.api.notes import continue_midi
        prompt = pretty_midi.PrettyMIDI(str(next(iter(example_midi_paths().values()))))
        for inst in prompt.instruments[1:]:
            inst.notes = []
        prompt.instruments[0].notes = [n for n in prompt.instruments[0].notes if n.start < 8.0]
        pm, seam, _ = continue_midi(prompt, bars=2, model=str(ck), seed=0)
        piece = export_piece(pm, "preview", score=False, title="current model: prompt | continuation", marks=[seam])
    out = (str(piece.png), str(piece.wav), "")
    _preview_cache[key] = (mtime, out)
    return out


@user_errors
def start(model_label, source, uploads, steps, batch, request: gr.Request):
    """Start a training run in the background (API: ``train_start``); one run per server."""
    key = _label_to_key(model_label)
    t = available_trainables()[key]
    run = _runs_dir() / f"{key}-{time.strftime('%Y%m%d-%H%M%S')}"
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
    job = JOBS.start(key, data, int(steps), int(batch), run, owner=getattr(request, "session_hash", "") or "",
                     data_note=note)
    return (gr.Timer(active=True), progress_html(job.progress(), f"<p>{note}</p>" if note else ""),
            loss_frame([], t.loss_keys))


@user_errors
def stop():
    """Stop the training run (API: ``train_stop``); its last checkpoint stays."""
    job = JOBS.job
    if job is None or not job.running:
        raise gr.Error("No training run is in progress.")
    JOBS.stop()
    return progress_html(job.progress(), "<p>Stopped; the last checkpoint is kept.</p>")


def poll():
    """Timer tick: loss curves, progress, preview; the timer stops when the run ends."""
    job = JOBS.job
    if job is None:
        return gr.Timer(active=False), gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
    p = job.progress()
    note = f"<p>{job.data_note}</p>" if job.data_note else ""
    if p["state"] == "failed":
        note += f"<p style='color:#b00'>Training failed: {job.error_tail() or 'see the server log'}</p>"
    try:
        roll, wav, text = make_preview(job)
    except ComposerError as exc:
        roll, wav, text = None, None, f"(preview not available: {exc})"
    return (gr.Timer(active=job.running), progress_html(p, note), loss_frame(job.records(), job.trainable.loss_keys),
            roll, wav, text)


@user_errors
def save(name):
    """Save the run's current model as safetensors + model card (API: ``train_save``)."""
    job = JOBS.job
    if job is None or not job.checkpoint.exists():
        raise gr.Error("Nothing to save yet: start a run and wait for its first checkpoint.")
    stem = safe_stem(name or f"{job.trainable.key}-{time.strftime('%Y%m%d-%H%M%S')}")
    folder = cache_dir() / "models"
    folder.mkdir(exist_ok=True)
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
    # the model stays in the cache (Use in Compose reads it there); the download is a copy in
    # a temp folder, the only place Gradio serves files from
    out = new_output_dir("composer-model-")
    files = [shutil.copy2(src, out / src.name) for src in (dst, dst.with_suffix(".json"))]
    return [str(f) for f in files], f"Saved **{dst.name}** (half precision, with its model card)."


@user_errors
def use_in_compose(files):
    """Compose with a saved MuseGAN checkpoint, without a restart (API: ``train_use_in_compose``)."""
    from composer.ui import compose
    paths = [f for f in (files or []) if str(f).endswith(".safetensors")]
    if not paths:
        raise gr.Error("Save a MuseGAN checkpoint first.")
    if JOBS.job is not None and JOBS.job.trainable.key != "musegan":
        raise gr.Error("Only a MuseGAN model can be used in Compose; note models are picked in the Continue tab.")
    folder = (cache_dir() / "models").resolve()
    path = (folder / Path(paths[0]).name).resolve()  # only the name of the download is used
    if path.parent != folder or not path.exists():  # only models this app saved
        raise gr.Error("That checkpoint is not one saved by this app.")
    comp = compose.MODEL.use(path)
    return f"The Compose tab now uses **{comp.name}** (re-open it or press New)."


def build() -> None:
    trainables = available_trainables()
    gr.Markdown("Train a model on the built-in corpus or on your own files. The run goes on in the "
                "background (one per server); loss curves and a preview of the current model update live.")
    labels = [t.label for t in trainables.values()]
    with gr.Row():
        with gr.Column(scale=1):
            model = gr.Radio(labels, value=labels[0] if labels else None, label="Model")
            source = gr.Radio(["Built-in corpus", "My files"], value="Built-in corpus", label="Data")
            uploads = gr.File(label="Your data: a zip or files (.mid/.midi for MuseGAN, .abc for folk tunes)",
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
            progress = gr.HTML(progress_html({"state": "idle", "step": 0, "total": 0, "fraction": 0.0,
                                              "elapsed_s": 0, "eta_s": None}))
            plot = gr.LinePlot(pd.DataFrame({"step": [], "series": [], "value": []}), x="step", y="value",
                               color="series", title="Losses", height=300)
            prev_roll = gr.Image(label="Preview: the current generator", type="filepath", interactive=False)
            prev_audio = gr.Audio(label="Preview audio", type="filepath", interactive=False)
            prev_text = gr.Textbox(label="Preview tune (folk model)", lines=6, interactive=False)
    timer = gr.Timer(1.0, active=False)
    start_btn.click(start, [model, source, uploads, steps, batch], [timer, progress, plot], api_name="train_start")
    stop_btn.click(stop, None, [progress], api_name="train_stop")
    timer.tick(poll, None, [timer, progress, plot, prev_roll, prev_audio, prev_text], show_progress="hidden",
               api_name="train_status")
    save_btn.click(save, [name], [saved, saved_msg], api_name="train_save")
    use_btn.click(use_in_compose, [saved], [saved_msg], api_name="train_use_in_compose")
