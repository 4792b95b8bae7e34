"""Continue tab: a melody (typed, drawn on a grid, uploaded or from the corpus) continued by
the note/chord LSTM or WaveNet; prompt and continuation in one piano roll with the seam marked.

Handlers are thin: the music is made by :mod:`composer.api.notes`, the files by
:func:`composer.render.outputs.export_piece`. Every action has an ``api_name``.
"""
from __future__ import annotations

import random
from pathlib import Path

import gradio as gr

from composer.api import notes as notes_api
from composer.errors import CheckpointError, DataError
from composer.music.corpus import example_midi_paths
from composer.music.midi import load_midi
from composer.music.tokens import midi_to_note_name
from composer.render.outputs import export_piece, safe_stem
from composer.ui.common import GM_CHOICES, choice_program, user_errors

SOURCES = ("Notes typed as names", "Grid", "MIDI file", "Corpus example")
SAME = "(same as the prompt)"
DEFAULT_NOTES = "E4 D4/0.5 C4/0.5 D4 E4 E4 E4/2 D4 D4 D4/2 E4 G4 G4/2"
MODELS = {"LSTM": "lstm", "WaveNet (dilated causal CNN)": "wavenet"}
#: The grid: one row per pitch (high to low, C5 down to C4), one column per eighth note, two bars.
GRID_PITCHES = list(range(72, 59, -1))
GRID_STEPS = 16
GRID_STEP_QUARTERS = 0.5
GRID_HEADERS = ["note"] + [f"{1 + i // 8}.{1 + (i % 8) // 2}{'' if i % 2 == 0 else '+'}" for i in range(GRID_STEPS)]


def default_grid() -> list[list]:
    """The grid with a short motif filled in (C D E G | E - C -)."""
    rows = [[midi_to_note_name(p)] + [False] * GRID_STEPS for p in GRID_PITCHES]
    for col, pitch, length in ((0, 60, 2), (2, 62, 2), (4, 64, 2), (6, 67, 2), (8, 64, 4), (12, 60, 4)):
        for c in range(col, col + length):
            rows[GRID_PITCHES.index(pitch)][1 + c] = True
    return rows


def _cell(v) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "x", "yes")
    return bool(v)


def grid_to_midi(grid, tempo: float, program: int):
    """Dataframe rows (note name + one cell per step) -> PrettyMIDI."""
    if hasattr(grid, "values"):  # a pandas DataFrame
        grid = grid.values.tolist()
    rows = [list(r) for r in (grid or [])]
    if len(rows) != len(GRID_PITCHES):
        raise DataError(f"the grid needs {len(GRID_PITCHES)} rows (C5 down to C4)")
    cells = [[_cell(v) for v in r[1:1 + GRID_STEPS]] for r in rows]
    cells = [c + [False] * (GRID_STEPS - len(c)) for c in cells]
    return notes_api.prompt_from_grid(cells, GRID_PITCHES, GRID_STEP_QUARTERS, tempo=tempo, program=program)


def _prompt(source, midi_file, example, notes, grid, tempo, program):
    """(PrettyMIDI, name) of the chosen input."""
    prog = program if program is not None else 0
    if source == "MIDI file":
        if not midi_file:
            raise DataError("upload a MIDI file first (or pick another input)")
        return load_midi(midi_file), safe_stem(Path(midi_file).name, "upload")
    if source == "Corpus example":
        paths = example_midi_paths()
        if example not in paths:
            raise DataError("pick a corpus example first")
        return load_midi(paths[example]), safe_stem(example)
    if source == "Grid":
        return grid_to_midi(grid, float(tempo), prog), "grid"
    return notes_api.prompt_from_text(notes or "", tempo=float(tempo), program=prog), "melody"


@user_errors
def continue_melody(source, midi_file, example, notes, grid, model, bars, temperature, top_k, top_p, seed,
                    instrument, tempo):
    """Continue the chosen prompt (API: ``continue_melody``).

    Returns (piano roll png, wav, downloads, score html, status, result midi path).
    """
    program = choice_program(instrument)
    pm, name = _prompt(source, midi_file, example, notes, grid, tempo, program)
    arch = MODELS.get(model, model)
    result, seam, info = notes_api.continue_midi(pm, bars=int(bars), model=arch, temperature=float(temperature),
                                                 top_k=int(top_k), top_p=float(top_p), seed=int(seed or 0),
                                                 program=program)
    out_name = f"{name}-continued-{info['arch']}-seed{int(seed or 0)}"
    piece = export_piece(result, out_name, title=f"{name} + {int(bars)} bars ({info['arch']})", marks=[seam])
    n = int(bars)
    status = (f"**{n} bar{'' if n == 1 else 's'} added** by the {info['arch']} after {seam:.1f} s of prompt "
              f"({info['prompt_tokens']} tokens; the dashed line marks the seam): {info['new_notes']} new notes, "
              f"sampled in {info['sample_s']:.2f} s with seed {int(seed or 0)}. Same seed and settings, same music.  \n"
              + prompt_summary(info))
    if piece.score_error:
        status += f"  \nScore not available: {piece.score_error}"
    return str(piece.png), str(piece.wav), piece.downloads(), piece.score_html or "", status, str(piece.midi)


def prompt_summary(info: dict) -> str:
    """The prompt's key and meter, as the status line shows them."""
    key = info.get("key") or "no key (no notes)"
    meter = info.get("meter", "4/4") + ("" if info.get("meter_given", True) else " (none in the file: 4/4 assumed)")
    how = (" The model continues it moved to C major / A minor; the continuation is moved back to the prompt's key."
           if info.get("tonic") == "key" and info.get("key") else "")
    return f"Prompt: **{key}** (Krumhansl–Kessler key of its notes), **{meter}** time.{how}"


def new_seed() -> int:
    """A fresh random seed for "Another"."""
    return random.SystemRandom().randint(1, 2 ** 31 - 1)


@user_errors
def continue_another(source, midi_file, example, notes, grid, model, bars, temperature, top_k, top_p, seed,
                     instrument, tempo):
    """Continue the prompt again with a fresh random seed (API: ``continue_another``).

    Returns the outputs of :func:`continue_melody` and the new seed."""
    fresh = new_seed()
    return (*continue_melody(source, midi_file, example, notes, grid, model, bars, temperature, top_k, top_p, fresh,
                             instrument, tempo), fresh)


@user_errors
def use_as_prompt(result_midi):
    """Make the last result the prompt, to continue it further (API: ``continue_use_result``)."""
    if not result_midi:
        raise DataError("continue something first")
    return gr.update(value="MIDI file"), result_midi


def show_source(source):
    return [gr.update(visible=source == s) for s in SOURCES]


def _about() -> str:
    parts = []
    for label, arch in MODELS.items():
        try:
            card = notes_api.load(arch).card
            m = card.get("metrics", {})
            parts.append(f"{label}: {m.get('val_nll', float('nan')):.3f} nats/token on held-out songs "
                         f"(bigram baseline {m.get('nll_bigram', float('nan')):.3f})")
        except CheckpointError as exc:
            parts.append(f"{label}: not available ({exc})")
    return "; ".join(parts) + "."


def build() -> None:
    """Lay out the Continue tab (call inside ``gr.Blocks`` / ``gr.Tab``)."""
    gr.Markdown("Start a melody and let a model continue it: type note names, draw on the grid, upload a MIDI "
                "file or pick a chorale. Both models read notes, chords (in their octaves), rests and durations. "
                + _about())
    examples = list(example_midi_paths())
    result_midi = gr.State(None)
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            source = gr.Radio(list(SOURCES), value=SOURCES[0], label="Prompt")
            with gr.Group(visible=True) as g_notes:
                notes = gr.Textbox(value=DEFAULT_NOTES, lines=3, label="Notes (NAME[/quarters]; R = rest; "
                                   "C4+E4+G4 = chord)", placeholder="E4 D4/0.5 C4/0.5 D4 E4 E4 E4/2")
            with gr.Group(visible=False) as g_grid:
                grid = gr.Dataframe(value=default_grid(), headers=GRID_HEADERS,
                                    datatype=["str"] + ["bool"] * GRID_STEPS, type="array", interactive=True,
                                    static_columns=[0], pinned_columns=1, row_count=len(GRID_PITCHES),
                                    column_count=GRID_STEPS + 1, label="Tick the cells: rows are pitches, columns "
                                    "eighth notes (two bars of 4/4); ticked neighbours make one held note")
            with gr.Group(visible=False) as g_midi:
                midi_file = gr.File(label="MIDI file (.mid, up to 2 MB)", file_types=[".mid", ".midi"],
                                    type="filepath")
            with gr.Group(visible=False) as g_example:
                example = gr.Dropdown(choices=examples, value=examples[0] if examples else None,
                                      label="Example from music21's corpus")
            model = gr.Radio(list(MODELS), value=list(MODELS)[0], label="Model")
            with gr.Row():
                bars = gr.Slider(1, notes_api.MAX_BARS, value=4, step=1, label="Bars to add")
                seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
            temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="Temperature")
            with gr.Row():
                top_k = gr.Slider(0, 50, value=0, step=1, label="Top-k (0 = off)")
                top_p = gr.Slider(0.05, 1.0, value=0.95, step=0.05, label="Top-p (1 = off)")
            with gr.Row():
                instrument = gr.Dropdown([SAME] + GM_CHOICES, value=SAME, label="Instrument of the continuation")
                tempo = gr.Slider(40, 200, value=100, step=1, label="Tempo of typed/grid notes")
            with gr.Row():
                go = gr.Button("Continue", variant="primary")
                another = gr.Button("Another", variant="secondary")
            again = gr.Button("Use the result as the prompt")
        with gr.Column(scale=2):
            status = gr.Markdown("Press **Continue**.")
            roll = gr.Image(label="Piano roll: prompt | continuation", type="filepath", interactive=False)
            audio_out = gr.Audio(label="Audio", type="filepath", interactive=False)
            files = gr.File(label="Downloads: MIDI, WAV, MusicXML", file_count="multiple", interactive=False)
    score = gr.HTML(label="Score")

    source.change(show_source, [source], [g_notes, g_grid, g_midi, g_example], api_visibility="private")
    inputs = [source, midi_file, example, notes, grid, model, bars, temperature, top_k, top_p, seed, instrument,
              tempo]
    go.click(continue_melody, inputs, [roll, audio_out, files, score, status, result_midi],
             api_name="continue_melody")
    another.click(continue_another, inputs, [roll, audio_out, files, score, status, result_midi, seed],
                  api_visibility="private")  # API: continue_melody with a seed
    again.click(use_as_prompt, [result_midi], [source, midi_file], api_name="continue_use_result")
