"""Genre transfer tab: a MIDI (upload, corpus example or the Compose tab's piece) -> another genre.

Thin handlers over :mod:`composer.api.cyclegan`; every action has an ``api_name``. Shows the
piano rolls and audio before and after, the genre classifier's probabilities before and
after, and the downloads (MIDI, WAV, MusicXML) of the result.
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from composer.api import cyclegan as tr
from composer.errors import ComposerError
from composer.music.corpus import example_midi_paths
from composer.music.midi import load_midi
from composer.render.outputs import export_piece, new_output_dir, safe_stem
from composer.ui.common import user_errors


def _source(midi_file: str | None, example: str | None) -> tuple[str, str]:
    """(path, name) of the piece to transfer: the upload wins over the example."""
    if midi_file:
        return str(midi_file), safe_stem(Path(midi_file).name, "upload")
    if example:
        paths = example_midi_paths()
        if example not in paths:
            raise gr.Error("Pick an example from the list.")
        return str(paths[example]), safe_stem(example)
    raise gr.Error("Upload a MIDI file or pick an example first.")


def _probs(p: dict | None) -> dict | None:
    return {k: round(float(v), 4) for k, v in p.items()} if p else None


def _transfer(path: str, name: str, target: str, strength: float, keep_rhythm: bool):
    if not target:
        raise gr.Error("Pick a target genre.")
    pm = load_midi(path)
    res = tr.transfer_pm(pm, target, strength=float(strength), keep_rhythm=bool(keep_rhythm))
    folder = new_output_dir("composer-transfer-")
    before = export_piece(pm, name=f"{name}", folder=folder, score=False, title=f"{name} (original)",
                          marks=None)
    after = export_piece(res.pm, name=f"{name}_{target}", folder=folder, title=f"{name} -> {target}")
    status = f"**{name} → {target}** (strength {float(strength):.2f}{', rhythm kept' if keep_rhythm else ''}): " \
             f"{res.summary()}"
    if after.score_error:
        status += f"  \nScore not available: {after.score_error}"
    return (str(before.png), str(after.png), str(before.wav), str(after.wav), _probs(res.probs_before),
            _probs(res.probs_after), after.downloads(), status)


@user_errors
def transfer_midi(midi_file: str | None, example: str | None, target: str, strength: float = 1.0,
                  keep_rhythm: bool = False):
    """Transfer an uploaded MIDI (or, without one, the chosen example) to ``target`` (API: ``transfer``)."""
    path, name = _source(midi_file, example)
    return _transfer(path, name, target, strength, keep_rhythm)


@user_errors
def transfer_path(path: str | None, target: str, strength: float = 1.0, keep_rhythm: bool = False):
    """Transfer a MIDI file the app already has (the Compose tab's piece) (API: ``transfer_compose``)."""
    if not path or not Path(str(path)).is_file():
        raise gr.Error("Make a piece in the Compose tab first.")
    return _transfer(str(path), safe_stem(Path(str(path)).name, "composition"), target, strength, keep_rhythm)


def build(compose_midi: gr.components.Component | None = None) -> None:
    """Lay out the Genre transfer tab (call inside ``gr.Blocks`` / ``gr.Tab``).

    ``compose_midi``: optionally a component or ``gr.State`` holding the path of the Compose
    tab's current MIDI; then a button takes the piece from there.
    """
    genres = tr.available_genres()
    if not genres:
        gr.Markdown("**No genre-transfer model is available yet.** Train one with "
                    "`python -m composer train cyclegan` and export it to `checkpoints/`.")
        return
    try:
        examples = list(example_midi_paths())
    except ComposerError:
        examples = []
    gr.Markdown("Turn a piece into another genre with a CycleGAN (Brunner et al. 2018). The piece is merged "
                "into one piano roll, cut into 4-bar phrases, transferred phrase by phrase and joined again; "
                "tempo and length are kept, and each phrase's note density is held inside the range of the "
                "target genre. **Strength** blends the original (0) with the full transfer (1). 4/4 only.")
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            upload = gr.File(label="MIDI file (.mid, 4/4)", file_types=[".mid", ".midi"], type="filepath")
            example = gr.Dropdown(choices=examples, value=examples[0] if examples else None,
                                  label="…or an example from music21's corpus")
            target = gr.Radio(choices=genres, value=genres[-1], label="Target genre")
            strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Strength")
            keep_rhythm = gr.Checkbox(value=False, label="Keep the input's rhythm")
            go = gr.Button("Transfer", variant="primary")
            from_compose = gr.Button("Transfer the Compose tab's piece", visible=compose_midi is not None)
        with gr.Column(scale=2):
            status = gr.Markdown("Upload a MIDI file or pick an example, then press Transfer.")
            with gr.Row():
                probs_before = gr.Label(label="Genre classifier: before", num_top_classes=len(genres))
                probs_after = gr.Label(label="Genre classifier: after", num_top_classes=len(genres))
            with gr.Row():
                roll_before = gr.Image(label="Before", type="filepath", interactive=False)
                roll_after = gr.Image(label="After", type="filepath", interactive=False)
            with gr.Row():
                audio_before = gr.Audio(label="Before", type="filepath", interactive=False)
                audio_after = gr.Audio(label="After", type="filepath", interactive=False)
            files = gr.File(label="Downloads: MIDI, WAV, MusicXML", file_count="multiple", interactive=False)
    shown = [roll_before, roll_after, audio_before, audio_after, probs_before, probs_after, files, status]
    go.click(transfer_midi, [upload, example, target, strength, keep_rhythm], shown, api_name="transfer")
    if compose_midi is not None:
        from_compose.click(transfer_path, [compose_midi, target, strength, keep_rhythm], shown,
                           api_name="transfer_compose")
