"""Genre transfer tab: a MIDI (upload, example of either genre or the Compose tab's piece) -> another genre.

Thin handlers over :mod:`composer.api.cyclegan`; every action has an ``api_name``. Shows the
piano rolls (same pitch and time axes before and after, one colour per voice) and audio
before and after, the genre classifier's probabilities, and the downloads (MIDI, WAV,
MusicXML) of the result. The output is split into voices, each on the instrument chosen
for it.

A transfer that fails says why in the status line and leaves the last result on screen
(the outputs are skipped, not replaced by error tiles). A piece the classifier already
puts in the target genre is not transferred: the status says so.
"""
from __future__ import annotations

import logging
from pathlib import Path

import gradio as gr

from composer.api import cyclegan as tr
from composer.errors import ComposerError
from composer.music.abc import folk_example_midi_paths
from composer.music.corpus import example_midi_paths
from composer.music.midi import load_midi
from composer.render.outputs import export_piece, new_output_dir, safe_stem
from composer.ui.common import GM_CHOICES, choice_program

log = logging.getLogger(__name__)

#: The rolls show at most this many bars, so notes stay readable (the MIDI has them all).
ROLL_BARS = 16
#: Choice meaning "the genre's own instrument for this voice".
GENRE_DEFAULT = "(the genre's choice)"
N_OUTPUTS = 8


def examples() -> dict[str, Path]:
    """Examples of both genres: Bach chorales and held-out fiddle tunes."""
    out = {}
    for fn in (example_midi_paths, folk_example_midi_paths):
        try:
            out.update(fn())
        except ComposerError as exc:   # a missing corpus leaves that genre out, not the tab
            log.warning("transfer examples: %s", exc)
    return out


def _source(midi_file: str | None, example: str | None) -> tuple[str, str]:
    """(path, name) of the piece to transfer: the upload wins over the example."""
    if midi_file:
        return str(midi_file), safe_stem(Path(midi_file).name, "upload")
    if example:
        paths = examples()
        if example not in paths:
            raise ComposerError("Pick an example from the list.")
        return str(paths[example]), safe_stem(example)
    raise ComposerError("Upload a MIDI file or pick an example first.")


def _probs(p: dict | None) -> dict | None:
    return {k: round(float(v), 4) for k, v in p.items()} if p else None


def _roll_view(*pms) -> dict:
    """Piano-roll options shared by the before and after pictures: one pitch range and the
    first :data:`ROLL_BARS` bars, so the two line up note for note."""
    pitches = [n.pitch for pm in pms for i in pm.instruments for n in i.notes]
    downbeats = pms[0].get_downbeats()
    until = float(downbeats[ROLL_BARS]) if len(downbeats) > ROLL_BARS else None
    return {"pitch_range": (min(pitches), max(pitches)) if pitches else None, "until": until}


def _failed(message: str):
    """What a failed transfer shows: every output kept as it was, the reason in the status."""
    gr.Warning(message)
    return (*[gr.skip()] * (N_OUTPUTS - 1),
            f"**Transfer failed:** {message}  \nThe last result is still shown.")


def _transfer(path: str, name: str, target: str, strength: float, keep_rhythm: bool, programs: list):
    if not target:
        raise ComposerError("Pick a target genre.")
    pm = load_midi(path)
    res = tr.transfer_pm(pm, target, strength=float(strength), keep_rhythm=bool(keep_rhythm),
                         programs=programs, skip_if_target=True)
    folder = new_output_dir("composer-transfer-")
    cut = f" (first {ROLL_BARS} bars)" if len(pm.get_downbeats()) > ROLL_BARS else ""
    if res.already:
        before = export_piece(pm, name=name, folder=folder, score=False, title=f"{name}{cut}",
                              **_roll_view(pm))
        status = (f"**{name} is already {target}**: {res.summary()}. Pick the other genre to transfer it.")
        return (str(before.png), None, str(before.wav), None, _probs(res.probs_before), None,
                before.downloads(), status)
    view = _roll_view(pm, res.pm)
    before = export_piece(pm, name=name, folder=folder, score=False, title=f"{name} (original){cut}", **view)
    after = export_piece(res.pm, name=f"{name}_{target}", folder=folder, title=f"{name} -> {target}{cut}", **view)
    status = f"**{name} → {target}** (strength {float(strength):.2f}{', rhythm kept' if keep_rhythm else ''}): " \
             f"{res.summary()}"
    if after.score_error:
        status += f"  \nScore not available: {after.score_error}"
    return (str(before.png), str(after.png), str(before.wav), str(after.wav), _probs(res.probs_before),
            _probs(res.probs_after), after.downloads(), status)


def _programs(voice_choices) -> list[int | None]:
    return [None if (not c or c == GENRE_DEFAULT) else choice_program(c) for c in voice_choices]


def transfer_midi(midi_file: str | None, example: str | None, target: str, strength: float = 1.0,
                  keep_rhythm: bool = False, *voice_choices):
    """Transfer an uploaded MIDI (or, without one, the chosen example) to ``target`` (API: ``transfer``).

    ``voice_choices``: the instrument of each output voice, top first (``"040 Violin"``; the
    genre's own when left out). On a user error every output but the status is left as it was.
    """
    try:
        path, name = _source(midi_file, example)
        return _transfer(path, name, target, strength, keep_rhythm, _programs(voice_choices))
    except ComposerError as exc:
        return _failed(str(exc))


def transfer_path(path: str | None, target: str, strength: float = 1.0, keep_rhythm: bool = False,
                  *voice_choices):
    """Transfer a MIDI file the app already has (the Compose tab's piece) (API: ``transfer_compose``)."""
    try:
        if not path or not Path(str(path)).is_file():
            raise ComposerError("Make a piece in the Compose tab first.")
        return _transfer(str(path), safe_stem(Path(str(path)).name, "composition"), target, strength, keep_rhythm,
                         _programs(voice_choices))
    except ComposerError as exc:
        return _failed(str(exc))


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
    ex = list(examples())
    gr.Markdown("Turn a piece into another genre with a CycleGAN (Brunner et al. 2018). The piece is merged "
                "into one piano roll, cut into 4-bar phrases, transferred phrase by phrase and joined again; "
                "tempo and length are kept, and each phrase's note density is held inside the range of the "
                "target genre. The result is split into voices, each on its own instrument. A piece the genre "
                "classifier already hears as the target genre is left as it is. **Strength** blends the "
                "original (0) with the full transfer (1). 4/4 only.")
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            upload = gr.File(label="MIDI file (.mid, 4/4)", file_types=[".mid", ".midi"], type="filepath")
            example = gr.Dropdown(choices=ex, value=ex[0] if ex else None,
                                  label="…or an example: Bach chorales, fiddle tunes the model never heard")
            target = gr.Radio(choices=genres, value=genres[-1], label="Target genre")
            strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Strength")
            keep_rhythm = gr.Checkbox(value=False, label="Keep the input's rhythm")
            with gr.Accordion("Instruments of the output voices", open=False):
                voices = [gr.Dropdown(choices=[GENRE_DEFAULT] + GM_CHOICES, value=GENRE_DEFAULT,
                                      label=f"Voice {k + 1}" + (" (top)" if k == 0 else " (bottom)" if k == 3 else ""))
                          for k in range(tr.MAX_VOICES)]
            go = gr.Button("Transfer", variant="primary")
            from_compose = gr.Button("Transfer the Compose tab's piece", visible=compose_midi is not None)
        with gr.Column(scale=2):
            status = gr.Markdown("Upload a MIDI file or pick an example, then press Transfer.")
            with gr.Row():
                probs_before = gr.Label(label="Genre classifier: before", num_top_classes=len(genres))
                probs_after = gr.Label(label="Genre classifier: after", num_top_classes=len(genres))
            roll_before = gr.Image(label="Before", type="filepath", interactive=False)
            roll_after = gr.Image(label="After", type="filepath", interactive=False)
            with gr.Row():
                audio_before = gr.Audio(label="Before", type="filepath", interactive=False)
                audio_after = gr.Audio(label="After", type="filepath", interactive=False)
            files = gr.File(label="Downloads: MIDI, WAV, MusicXML", file_count="multiple", interactive=False)
    shown = [roll_before, roll_after, audio_before, audio_after, probs_before, probs_after, files, status]
    go.click(transfer_midi, [upload, example, target, strength, keep_rhythm, *voices], shown, api_name="transfer")
    if compose_midi is not None:
        from_compose.click(transfer_path, [compose_midi, target, strength, keep_rhythm, *voices], shown,
                           api_name="transfer_compose")
