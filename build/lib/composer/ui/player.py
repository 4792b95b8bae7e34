"""Player tab: any MIDI file -> piano roll, score, audio, per-track instruments, downloads."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import pretty_midi

from composer.music.corpus import example_midi_paths
from composer.music.midi import load_midi, with_programs
from composer.render.outputs import export_piece, safe_stem
from composer.ui.common import GM_CHOICES, choice_program, program_choice, user_errors

#: Instrument pickers shown; tracks past this keep their own program.
MAX_TRACKS = 8


def _instrument_updates(pm: pretty_midi.PrettyMIDI) -> list:
    ups = []
    for k in range(MAX_TRACKS):
        if k < len(pm.instruments):
            inst = pm.instruments[k]
            label = f"Track {k + 1}: {inst.name or 'untitled'}" + (" (drums)" if inst.is_drum else "")
            ups.append(gr.update(visible=True, label=label, value=program_choice(inst.program),
                                 interactive=not inst.is_drum))
        else:
            ups.append(gr.update(visible=False, value=None))
    return ups


def _render(pm: pretty_midi.PrettyMIDI, name: str):
    piece = export_piece(pm, name=name, title=name)
    n_notes = sum(len(i.notes) for i in pm.instruments)
    status = f"**{name}**: {len(pm.instruments)} tracks, {n_notes} notes, {piece.seconds:.1f} s"
    if piece.score_error:
        status += f"  \nScore not available: {piece.score_error}"
    return (str(piece.png), str(piece.wav), piece.downloads(), piece.score_html or "", status)


@user_errors
def render_midi(midi_file: str | None):
    """Load and render an uploaded MIDI file (API: ``render_midi``)."""
    if not midi_file:
        raise gr.Error("Upload a MIDI file first.")
    pm = load_midi(midi_file)
    name = safe_stem(Path(midi_file).name, "upload")
    return (*_render(pm, name), midi_file, *_instrument_updates(pm))


@user_errors
def render_example(example: str | None):
    """Load and render one of the corpus examples."""
    paths = example_midi_paths()
    if example not in paths:
        raise gr.Error("Pick an example from the list.")
    path = str(paths[example])
    pm = load_midi(path)
    return (*_render(pm, safe_stem(example)), path, *_instrument_updates(pm))


@user_errors
def render_with_instruments(current: str | None, *choices):
    """Render the loaded piece again with the instruments picked per track."""
    if not current:
        raise gr.Error("Load a MIDI file or an example first.")
    pm = with_programs(load_midi(current), [choice_program(c) for c in choices])
    return _render(pm, safe_stem(Path(current).name, "piece"))


def build() -> None:
    """Lay out the Player tab (call inside ``gr.Blocks`` / ``gr.Tab``)."""
    examples = list(example_midi_paths())
    gr.Markdown("Play any MIDI file: see its piano roll and score, hear it through FluidSynth, "
                "pick an instrument for each track and download WAV, MIDI and MusicXML.")
    current = gr.State(None)
    with gr.Row():
        with gr.Column(scale=1):
            upload = gr.File(label="MIDI file (.mid, up to 2 MB)", file_types=[".mid", ".midi"], type="filepath")
            example = gr.Dropdown(choices=examples, value=None, label="…or an example from music21's corpus")
            pickers = [gr.Dropdown(choices=GM_CHOICES, visible=False, label=f"Track {k + 1}")
                       for k in range(MAX_TRACKS)]
            again = gr.Button("Render with these instruments", variant="primary")
        with gr.Column(scale=2):
            status = gr.Markdown("Upload a MIDI file or pick an example.")
            roll = gr.Image(label="Piano roll", type="filepath", interactive=False)
            audio_out = gr.Audio(label="Audio", type="filepath", interactive=False)
            files = gr.File(label="Downloads: MIDI, WAV, MusicXML", file_count="multiple", interactive=False)
    score = gr.HTML(label="Score")

    shown = [roll, audio_out, files, score, status]
    upload.upload(render_midi, [upload], shown + [current] + pickers, api_name="render_midi")
    example.input(render_example, [example], shown + [current] + pickers, api_name="render_example")
    again.click(render_with_instruments, [current] + pickers, shown, api_name="render_with_instruments")
