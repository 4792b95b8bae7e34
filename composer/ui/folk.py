"""Folk tunes tab: the char-RNN writes an ABC tune live; score, audio and downloads follow.

The ABC box is editable: an edit re-renders the score and the audio, and an edit that does
not parse says where it fails while the last good rendering stays on screen.
"""
from __future__ import annotations

import html

import gradio as gr

from composer.api import charrnn as folk
from composer.render import viz
from composer.errors import CheckpointError, ComposerError
from composer.render.outputs import export_piece, new_output_dir
from composer.ui.common import user_errors

MAX_ABC_CHARS = 20_000
ANY = "(model's choice)"


def _opt(v):
    return None if v in (None, "", ANY) else v


def render_abc(abc: str, instrument: str, tempo: float):
    """Score, audio and downloads of an ABC tune, or a clear message where it fails.

    Returns (score html, wav, files, status); on an invalid tune the first three are
    ``gr.update()`` so the last good rendering stays.
    """
    if len(abc) > MAX_ABC_CHARS:
        return gr.update(), gr.update(), gr.update(), f"**Not rendered:** the text is over {MAX_ABC_CHARS:,} characters."
    try:
        tune = folk.render_tune(abc, program=folk.INSTRUMENTS.get(instrument, 40), tempo=float(tempo))
    except ComposerError as exc:
        return gr.update(), gr.update(), gr.update(), f"**Not rendered:** {exc}. The last good version is still shown."
    check = tune.check
    if not check["valid"]:
        where = f" (line {check['line']}, column {check['column']})" if check.get("line") else ""
        return (gr.update(), gr.update(), gr.update(),
                f"**Not rendered:** {check['error']}{where}. The last good version is still shown.")
    folder = new_output_dir("composer-folk-")
    piece = export_piece(tune.pm, "tune", folder=folder, png=False, score=False)
    (folder / "tune.abc").write_text(abc, encoding="utf-8")
    files = [str(folder / "tune.abc"), str(piece.midi), str(piece.wav)]
    if tune.musicxml:
        (folder / "tune.musicxml").write_text(tune.musicxml, encoding="utf-8")
        files.append(str(folder / "tune.musicxml"))
    score = viz.svg_pages_html(tune.score_svg) if tune.score_svg else \
        f"<p>Score not available: {html.escape(tune.score_error or 'no score')}</p>"
    where = f" at line {check['line']}, column {check['column']}" if check.get("line") else ""
    strict = "strict: every bar fits the meter" if check["strict"] else \
        f"readable, but not strict: {check['error']}{where}"
    status = f"{check['n_bars']} bars, {check['n_notes']} notes: {strict}."
    return score, str(piece.wav), files, status


#: Seeds drawn for "a new tune each time" lie in [0, MAX_SEED).
MAX_SEED = 2 ** 31 - 1


def pick_seed(seed) -> int:
    """The seed to write with: the user's when it is 0 or more, a fresh random one when
    it is empty or negative (-1, the default: a new tune on every press)."""
    import secrets
    try:
        s = int(seed)
    except (TypeError, ValueError):
        s = -1
    return s if s >= 0 else secrets.randbelow(MAX_SEED)


def write_tune(meter, key, unit, tune_type, title, prefix, seed, temperature, top_k, top_p, instrument, tempo,
               guard=True):
    """Stream a new tune into the ABC box, then render it (API: ``folk_generate``).

    ``seed`` -1 (or empty) draws a fresh seed on every call; the seed used is shown in
    the status line so a tune can be written again. ``guard``: redraw lines whose bars
    do not fit the meter (an option; off is plain sampling)."""
    used = pick_seed(seed)
    sampler = "guarded" if guard else "plain sampling"
    try:
        text = ""
        for text in folk.stream_tune(meter=_opt(meter), key=_opt(key), unit=_opt(unit), tune_type=_opt(tune_type),
                                     title=_opt(title), prefix=_opt(prefix), seed=used,
                                     temperature=float(temperature), top_k=int(top_k), top_p=float(top_p),
                                     guard=bool(guard)):
            yield text, gr.update(), gr.update(), gr.update(), f"Writing… (seed {used}, {sampler})"
        score, wav, files, status = render_abc(text, instrument, tempo)
        yield text, score, wav, files, f"Seed {used} ({sampler}). {status}"
    except ComposerError as exc:
        raise gr.Error(str(exc), print_exception=False) from None


def another_tune(meter, key, unit, tune_type, title, prefix, seed, temperature, top_k, top_p, instrument, tempo,
                 guard=True):
    """Another tune with the same settings and a fresh random seed (API: ``folk_another``)."""
    yield from write_tune(meter, key, unit, tune_type, title, prefix, -1, temperature, top_k, top_p, instrument,
                          tempo, guard)


@user_errors
def rerender(abc, instrument, tempo):
    """Render an edited tune (API: ``folk_render``)."""
    return render_abc(abc or "", instrument, tempo)


def build() -> None:
    try:
        info = folk.model_info()
        about = (f"Model: {info.get('config', {}).get('layers', '?')}-layer LSTM, "
                 f"{info.get('config', {}).get('hidden', '?')} units, trained on "
                 f"{info.get('data', {}).get('train_tunes', '?')} tunes from music21's ABC corpus.")
        have_model = True
    except (CheckpointError, ComposerError, OSError) as exc:
        about, have_model = f"**No folk-tune model is available:** {exc}. You can still edit and play ABC.", False
    gr.Markdown("Write folk tunes in ABC notation with a character-level LSTM. Pick the headers to honour, "
                "press Write and watch the tune appear; edit the ABC freely, the score and audio follow. " + about)
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            tune_type = gr.Dropdown([ANY] + sorted(folk.TUNE_TYPES), value="reel", label="Tune type (R:)")
            meter = gr.Dropdown([ANY] + list(folk.METERS), value=ANY, label="Meter (M:)", allow_custom_value=True)
            key = gr.Dropdown([ANY] + list(folk.KEYS), value="D", label="Key (K:)", allow_custom_value=True)
            unit = gr.Dropdown([ANY] + list(folk.UNITS), value=ANY, label="Unit note length (L:)")
            title = gr.Textbox(label="Title (T:)", placeholder="leave empty for the model's")
            prefix = gr.Textbox(label="Opening bars to continue (ABC)", placeholder="e.g. |:A2FA DAFA|", lines=2)
            with gr.Row():
                seed = gr.Number(value=-1, precision=0, minimum=-1, label="Seed (-1: a new tune each time)",
                                 info="the seed used is shown after writing; type it here to write that tune again")
                temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="Temperature")
            with gr.Row():
                top_k = gr.Slider(0, 50, value=0, step=1, label="Top-k (0 = off)")
                top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Top-p (1 = off)")
            with gr.Row():
                instrument = gr.Dropdown(list(folk.INSTRUMENTS), value="fiddle", label="Instrument")
                tempo = gr.Slider(40, 240, value=120, step=1, label="Tempo (quarter notes per minute)")
            guard = gr.Checkbox(value=True, label="Guard: redraw lines whose bars do not fit the meter",
                                info="an option; off is plain sampling, the model on its own")
            with gr.Row():
                write = gr.Button("Write a tune", variant="primary", interactive=have_model)
                another = gr.Button("Another tune", interactive=have_model)
        with gr.Column(scale=2):
            abc = gr.Textbox(label="ABC (editable)", lines=14, max_lines=40)
            status = gr.Markdown()
            audio_out = gr.Audio(label="Audio", type="filepath", interactive=False)
            files = gr.File(label="Downloads: ABC, MIDI, WAV, MusicXML", file_count="multiple", interactive=False)
    score = gr.HTML(label="Score")
    inputs = [meter, key, unit, tune_type, title, prefix, seed, temperature, top_k, top_p, instrument, tempo, guard]
    write.click(write_tune, inputs, [abc, score, audio_out, files, status], api_name="folk_generate",
                show_progress="minimal")
    another.click(another_tune, inputs, [abc, score, audio_out, files, status], api_name="folk_another",
                  show_progress="minimal")
    abc.blur(rerender, [abc, instrument, tempo], [score, audio_out, files, status], api_name="folk_render",
             trigger_mode="always_last")
    for c in (instrument, tempo):
        c.change(rerender, [abc, instrument, tempo], [score, audio_out, files, status], api_visibility="private",
                 trigger_mode="always_last")
