"""Compose tab: MuseGAN latents as sliders per piece, bar, track and cell; piano roll and audio live.

Handlers are thin: :mod:`composer.api.compose` does the music. A slider's release runs the fast
path (generate + render + plot, :func:`render_state`) and answers with the roll and the audio
only; then, chained, :func:`finish` makes the slow part (score, downloads) once the piece has
been on screen :data:`FINISH_QUIET_S`, unless a newer piece replaced it meanwhile. The page
plays the audio through a native ``<audio>`` (:data:`PLAYER_JS`).
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import threading
import time
from collections import OrderedDict
from pathlib import Path

import gradio as gr
import numpy as np

from composer.api import compose as compose_api
from composer.api.compose import FEATURE_WORDS, FEATURES, Composer, ComposeState
from composer.errors import CheckpointError, ComposerError
from composer.ui.common import GM_CHOICES, choice_program, program_choice, user_errors
from composer.ui import gpu as gpu_calls

MAX_LATENTS_BYTES = 2 * 1024 * 1024
N_DIRS = len(FEATURES)


SHIPPED = "Shipped model"
#: the checkpoint of the session whose event is running (set by :func:`in_session`; None: shipped)
_SESSION_CHECKPOINT: contextvars.ContextVar[str | None] = contextvars.ContextVar("compose_checkpoint", default=None)


def new_model_choice() -> dict:
    """A session's model choice (the value of its ``gr.State``): the label picked, and its models."""
    return {"choice": SHIPPED, "models": {}}


def checkpoint_of(choice: dict | None) -> str | None:
    """The checkpoint path of a session's choice; None: the shipped model."""
    if not choice:
        return None
    return (choice.get("models") or {}).get(choice.get("choice"))


def with_model(choice: dict | None, label: str, path: str | Path) -> dict:
    """``choice`` with the model ``label`` at ``path`` added and picked (a new dict)."""
    models = dict((choice or {}).get("models") or {})
    models[label] = str(path)
    return {"choice": label, "models": models}


class SessionComposer:
    """The cached :class:`Composer` of a checkpoint, with its notes made in the GPU slot.

    Everything but the notes is the shared Composer's (read-only); the notes come from
    :func:`composer.ui.gpu.musegan_codes` (``spaces.GPU`` on ZeroGPU, a plain call elsewhere).
    """

    def __init__(self, comp: Composer):
        self._comp = comp

    def __getattr__(self, name):
        return getattr(self._comp, name)

    def codes(self, st: ComposeState) -> np.ndarray:
        return gpu_calls.musegan_codes(self._comp.path, st)

    roll = Composer.roll  # these call self.codes: the GPU slot
    midi = Composer.midi


class ModelSlot:
    """The MuseGAN models of the Compose tab, each loaded once (a read-only cache by path).

    Which one a session composes with is that session's own choice, a ``gr.State`` passed to
    every handler (:func:`in_session`); "Use in Compose" changes it for that session only.
    """

    def get(self) -> SessionComposer:
        """The model of the session whose event is running (the shipped one outside events)."""
        return SessionComposer(compose_api.cached_composer(_SESSION_CHECKPOINT.get()))

    def use(self, path: str | Path) -> Composer:
        """Load a checkpoint (from the Train tab) into the cache; the caller records the choice."""
        return compose_api.cached_composer(path)

    def available(self) -> bool:
        try:
            self.get()
            return True
        except CheckpointError:
            return False


def in_session(fn):
    """``fn`` with the session's model choice as a first input (a gr.State, so not in the API)."""
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(model_choice, *args, **kwargs):
        token = _SESSION_CHECKPOINT.set(checkpoint_of(model_choice))
        try:
            return fn(*args, **kwargs)
        finally:
            _SESSION_CHECKPOINT.reset(token)
    first = inspect.Parameter("model_choice", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    wrapper.__signature__ = sig.replace(parameters=[first, *sig.parameters.values()])
    return wrapper


def choose_model(label, choice):
    """The session picked another model in the list (``Shipped model`` goes back)."""
    choice = dict(choice or new_model_choice())
    if label != SHIPPED and label not in (choice.get("models") or {}):
        raise gr.Error(f"No model called {label!r} in this session.")
    choice["choice"] = label
    return choice


def model_list(choice):
    choice = choice or new_model_choice()
    return gr.update(choices=[SHIPPED, *(choice.get("models") or {})], value=choice.get("choice") or SHIPPED)


MODEL = ModelSlot()


# --------------------------------------------------------------------------------------------
# Package-level helpers the handlers (and the bench) call
# --------------------------------------------------------------------------------------------

#: The fast path: the notes in the GPU slot (SessionComposer.codes), audio and roll outside it.
render_state = compose_api.render_state
finish_outputs = compose_api.finish_outputs


#: Grid marks in plain text (an emoji lock renders as an empty box where no emoji font is installed).
MARK_LOCKED, MARK_REROLLED, MARK_PLAIN = "L", "R", "·"


def grid_table(comp: Composer, st: ComposeState, selected: tuple[int, int] | None = None):
    """The track x bar grid as a DataFrame: L locked, R re-rolled, · generated; the selected
    cell is shown in brackets, e.g. ``[L]``."""
    import pandas as pd
    rows = []
    for t, name in enumerate(comp.track_names):
        row = [name]
        for b in range(st.n_bars):
            mark = (MARK_LOCKED if (t, b) in st.locked else MARK_REROLLED if (t, b) in st.melody_override
                    or b in st.chords_override else MARK_PLAIN)
            row.append(f"[{mark}]" if selected == (t, b) else mark)
        rows.append(row)
    return pd.DataFrame(rows, columns=["voice"] + [str(b + 1) for b in range(st.n_bars)])


def slider_label(comp: Composer, level: str, i: int) -> str:
    name = comp.directions.names[level][i]
    if name in FEATURE_WORDS:
        lo, hi = FEATURE_WORDS[name]
        return f"{name.capitalize()} ({lo} ← → {hi})"
    return name.capitalize()


# --------------------------------------------------------------------------------------------
# Handlers
# --------------------------------------------------------------------------------------------

def _status(comp: Composer, st: ComposeState, note: str = "") -> str:
    locked = len(st.locked)
    text = (f"**Seed {st.seed}** · {st.n_bars} bars · {st.tempo:.0f} BPM · model `{comp.name}`"
            + (f" · {locked} locked cells" if locked else ""))
    return text + (f"  \n{note}" if note else "")


class NewestPiece:
    """Per session: the folder of the newest piece shown, when it was shown, and how many
    pieces are being made right now (the newest :data:`SESSIONS` sessions are kept).

    :func:`finish` asks it whether its piece is still the newest, waiting first for a piece
    in the making: a slider move that is rendering will supersede it.
    """

    SESSIONS = 10_000

    def __init__(self):
        self._made: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._making: dict[str, int] = {}
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def making(self, session: str | None):
        """Around the render of a new piece of ``session``."""
        if session is None:
            yield
            return
        with self._cond:
            self._making[session] = self._making.get(session, 0) + 1
        try:
            yield
        finally:
            with self._cond:
                left = self._making.pop(session) - 1
                if left:
                    self._making[session] = left
                self._cond.notify_all()

    def shown(self, session: str | None, folder: str | Path) -> None:
        if session is None:
            return
        with self._cond:
            self._made[session] = (str(folder), time.monotonic())
            self._made.move_to_end(session)
            while len(self._made) > self.SESSIONS:
                self._made.popitem(last=False)

    def superseded(self, session: str | None, folder: str | Path, wait_s: float = 0.0) -> bool:
        """Whether this session has a newer piece than the one in ``folder``, or is making
        one; a piece in the making is waited for, up to ``wait_s`` seconds."""
        if session is None:
            return False
        with self._cond:
            self._cond.wait_for(lambda: not self._making.get(session), timeout=wait_s)
            made = self._made.get(session)
            return bool(self._making.get(session)) or (made is not None and made[0] != str(folder))

    def age(self, session: str | None) -> float:
        """Seconds since this session's newest piece was shown (infinity when unknown)."""
        with self._cond:
            made = self._made.get(session) if session is not None else None
        return time.monotonic() - made[1] if made else float("inf")


NEWEST = NewestPiece()


def _session() -> str | None:
    """The Gradio session of the running event; None outside an event (tests, scripts)."""
    from gradio.context import LocalContext  # set by Gradio around every event's function
    return getattr(LocalContext.request.get(None), "session_hash", None)


def _show(comp: Composer, st: ComposeState, history: list, note: str = ""):
    """An action's answer, in the order of the tab's ``shown``. The downloads are the MIDI for
    now (the live audio is its own output); :func:`finish` replaces them with the full set."""
    session = _session()
    with NEWEST.making(session):
        png, wav, midi, folder = render_state(comp, st)
        NEWEST.shown(session, folder)
    return (st, history, str(png), str(wav), grid_table(comp, st), _status(comp, st, note), str(folder),
            [str(midi)], str(midi))


def _moved(comp: Composer, st: ComposeState, history: list):
    """A slider's answer: the piece, its roll and audio. A slider changes neither the grid's
    marks nor the status line (seed, bars, tempo, locks), and the downloads follow in
    :func:`finish`: leaving them out keeps the page's work per move small."""
    session = _session()
    with NEWEST.making(session):
        png, wav, midi, folder = render_state(comp, st)
        NEWEST.shown(session, folder)
    return st, history, str(png), str(wav), str(folder), str(midi)


def _push(history: list | None, st: ComposeState | None) -> list:
    history = list(history or [])
    if st is not None:
        history.append(st)
    return history[-30:]


def _track_index(comp: Composer, track: str | None) -> int:
    names = comp.track_names
    return names.index(track) if track in names else 0


def _bar_index(st: ComposeState, bar) -> int:
    try:
        b = int(bar) - 1
    except (TypeError, ValueError):
        b = 0
    return min(max(b, 0), st.n_bars - 1)


def _ensure(comp: Composer, st: ComposeState | None) -> ComposeState:
    if st is None or (st.z_dim, st.n_tracks, st.bars_per_phrase) != (comp.cfg.z_dim, comp.cfg.n_tracks,
                                                                     comp.cfg.n_bars):
        return comp.new_state(seed=0, n_bars=2 * comp.cfg.n_bars if comp.cfg.n_bars < 4 else comp.cfg.n_bars)
    return st


@user_errors
def new_piece(seed, n_bars, tempo, truncation, history, st, *instruments):
    """A new piece from a seed (API: ``compose_new``)."""
    comp = MODEL.get()
    programs = [choice_program(c) for c in instruments]
    programs = [p if p is not None else d for p, d in zip(programs, comp.DEFAULT_PROGRAMS)]
    new = comp.new_state(seed=int(seed or 0), n_bars=int(n_bars), truncation=float(truncation or 0),
                         tempo=float(tempo), programs=programs)
    return _show(comp, new, _push(history, st))


@user_errors
def random_piece(n_bars, tempo, truncation, history, st, *instruments):
    """A new piece from a fresh random seed (API: ``compose_random``)."""
    seed = int(np.random.default_rng().integers(0, 2**31 - 1))
    return (seed, *new_piece(seed, n_bars, tempo, truncation, history, st, *instruments))


@user_errors
def undo(history, st):
    """Go back to the piece before the last action (API: ``compose_undo``)."""
    comp = MODEL.get()
    history = list(history or [])
    if not history:
        raise gr.Error("Nothing to undo.")
    prev = _ensure(comp, history.pop())
    return _show(comp, prev, history, "Undone.")


@user_errors
def reset(history, st):
    """The piece of this seed with no edits, re-rolls or locks (API: ``compose_reset``)."""
    comp = MODEL.get()
    st = _ensure(comp, st)
    return _show(comp, comp.reset(st), _push(history, st), "Reset: no edits, no locks.")


@user_errors
def change_settings(n_bars, tempo, truncation, history, st, *instruments):
    """Bars, tempo, truncation or instruments changed: keep the music, change what was asked."""
    comp = MODEL.get()
    st = _ensure(comp, st)
    new = comp.resize(st, int(n_bars)) if int(n_bars) != st.n_bars else st.copy()
    new.tempo = float(tempo)
    new.programs = [choice_program(c) if choice_program(c) is not None else p
                    for c, p in zip(instruments, new.programs)]
    trunc = float(truncation) or None
    if trunc != new.truncation:
        new.truncation = trunc
        new.anchors = [Composer._truncate(a, trunc) for a in comp.new_state(new.seed, new.n_bars, truncation=0).anchors]
    return _show(comp, new, _push(history, st))


def _slider_handler(level: str, index: int):
    @user_errors
    def handler(value, track, bar, history, st):
        comp = MODEL.get()
        st = _ensure(comp, st)
        t, b = _track_index(comp, track), _bar_index(st, bar)
        new = comp.set_direction(st, level, index, float(value), track=t, bar=b)
        return _moved(comp, new, _push(history, st))
    handler.__name__ = f"set_{level}_{index}"
    return handler


@user_errors
def set_raw(level, track, bar, history, st, *values):
    comp = MODEL.get()
    st = _ensure(comp, st)
    t, b = _track_index(comp, track), _bar_index(st, bar)
    new = comp.set_raw(st, level.lower(), [float(v) for v in values[: comp.cfg.z_dim]], track=t, bar=b)
    return _moved(comp, new, _push(history, st))


def _edit_handler(kind: str, scope: str):
    @user_errors
    def handler(track, bar, history, st):
        """Re-roll, lock or unlock the selected cell, voice, bar or the whole piece (API: ``compose_{reroll|lock}_{cell|track|bar|all}``, ``compose_unlock_all``)."""
        comp = MODEL.get()
        st = _ensure(comp, st)
        t = _track_index(comp, track) if scope in ("cell", "track") else None
        b = _bar_index(st, bar) if scope in ("cell", "bar") else None
        if kind == "reroll":
            new = comp.reroll(st, track=t, bar=b)
        else:
            new = comp.lock(st, track=t, bar=b, locked=(kind == "lock"))
        what = {"cell": f"{track}, bar {b + 1 if b is not None else ''}", "track": str(track),
                "bar": f"bar {b + 1 if b is not None else ''}", "all": "every cell"}[scope]
        return _show(comp, new, _push(history, st), f"{kind.capitalize()}: {what}.")
    handler.__name__ = f"{kind}_{scope}"
    return handler


N_VARIATIONS = 4


@user_errors
def make_variations(scope, track, bar, st):
    """Four alternatives of the selected cell, or of the whole piece, to hear side by side
    (API: ``compose_variations``); returns the variations' states, then a roll and audio each."""
    comp = MODEL.get()
    st = _ensure(comp, st)
    t = _track_index(comp, track) if scope == "cell" else None
    b = _bar_index(st, bar) if scope == "cell" else None
    states = comp.variations(st, N_VARIATIONS, track=t, bar=b)
    shown = []
    for v in states:
        png, wav, _, _ = render_state(comp, v)
        shown += [str(png), str(wav)]
    return [states] + shown


def variations_of_cell(track, bar, st):
    """Four re-rolls of the selected cell to hear side by side (API: ``compose_variations``)."""
    return make_variations("cell", track, bar, st)


def variations_of_piece(st):
    """Four re-rolls of the whole piece, locked cells kept (in the tab; not an API endpoint)."""
    return make_variations("piece", None, None, st)


def _use_variation(k: int):
    @user_errors
    def handler(variations, history, st):
        """Make variation k the piece (undo goes back)."""
        comp = MODEL.get()
        if not variations or k >= len(variations):
            raise gr.Error("Make variations first.")
        return _show(comp, variations[k], _push(history, st), f"Variation {k + 1} chosen.")
    handler.__name__ = f"use_variation_{k + 1}"
    return handler


def control_values(comp: Composer, st: ComposeState, track, bar) -> list:
    """Every control's value for piece ``st`` with (track, bar) selected, in the order of the
    tab's ``controls``: seed, bars, tempo, truncation, one instrument per voice, the selected
    bar (its choices are the piece's bars), the style, chords, groove and melody sliders, and
    the grid with the selected cell marked."""
    t, b = _track_index(comp, track), _bar_index(st, bar)
    values = [st.seed, st.n_bars, st.tempo, st.truncation or 0]
    values += [program_choice(p) for p in st.programs]
    values.append(gr.update(choices=[str(i + 1) for i in range(st.n_bars)], value=str(b + 1)))
    values += [round(comp.direction_value(st, "style", i), 2) for i in range(N_DIRS)]
    for level in ("chords", "groove", "melody"):
        values += [round(comp.direction_value(st, level, i, track=t, bar=b), 2) for i in range(N_DIRS)]
    values.append(grid_table(comp, st, selected=(t, b)))
    return values


def sync_controls(track, bar, st):
    """After an action: every control shows the piece as it now is (no regeneration)."""
    comp = MODEL.get()
    return control_values(comp, _ensure(comp, st), track, bar)


def selection_values(track, bar, st):
    """Slider positions for the selected track/bar (no regeneration)."""
    comp = MODEL.get()
    st = _ensure(comp, st)
    t, b = _track_index(comp, track), _bar_index(st, bar)
    out = []
    for level in ("chords", "groove", "melody"):
        out += [round(comp.direction_value(st, level, i, track=t, bar=b), 2) for i in range(N_DIRS)]
    return out + [grid_table(comp, st, selected=(t, b))]


def raw_values(level, track, bar, st):
    comp = MODEL.get()
    st = _ensure(comp, st)
    t, b = _track_index(comp, track), _bar_index(st, bar)
    vals = comp.raw_values(st, level.lower(), track=t, bar=b)
    return [round(float(v), 3) for v in vals]


def select_cell(st, evt: gr.SelectData):
    comp = MODEL.get()
    st = _ensure(comp, st)
    row, col = evt.index if isinstance(evt.index, (list, tuple)) else (evt.index, 1)
    track = comp.track_names[min(int(row), len(comp.track_names) - 1)]
    bar = max(1, min(int(col), st.n_bars))
    return track, gr.update(value=str(bar))


def _restore(text: str, history, st):
    comp = MODEL.get()
    if len(text.encode("utf-8", "ignore")) > MAX_LATENTS_BYTES:
        raise ComposerError(f"the latents JSON is over {MAX_LATENTS_BYTES // 1024} kB")
    new = ComposeState.from_json(text)
    comp._check(new)
    out = _show(comp, new, _push(history, st), "Restored from latents.")
    files, score = finish_outputs(comp, new, Path(out[6]))
    midi = next(f for f in files if f.endswith(".mid"))
    return (*out[:7], out[8], files, score, midi)


@user_errors
def compose_from_latents(latents_json: str, history=None, st=None):
    """Restore a piece from the latents JSON the tab downloads (API: ``compose_from_latents``).

    Outputs include the MIDI file and the WAV of the piece.
    """
    if not latents_json or not latents_json.strip():
        raise gr.Error("Paste the latents JSON (or upload the latents file).")
    return _restore(latents_json, history, st)


@user_errors
def upload_latents(path, history, st):
    """Restore a piece from an uploaded latents .json (API: ``compose_from_latents_file``)."""
    if not path:
        raise gr.Error("Upload a latents .json file.")
    p = Path(path)
    if p.stat().st_size > MAX_LATENTS_BYTES:
        raise ComposerError(f"'{p.name}' is over {MAX_LATENTS_BYTES // 1024} kB; latents files are ~30 kB")
    return _restore(p.read_text(encoding="utf-8", errors="replace"), history, st)


HARMONIZE_MODES = ("A melody (upload, typed notes or ABC)", "The current soprano",
                   "Drop your riff: a four-voice piece (upload)")


@user_errors
def harmonize(mode, path, text, history, st):
    """Harmonize a melody, or find the latents of a four-voice piece (API: ``harmonize``).

    ``mode``: one of the three choices of the tab (a melody from an upload or typed notes or
    ABC; the current piece's soprano; a four-voice MIDI, "drop your riff"). A melody becomes
    the soprano of a new piece, its cells locked; undo goes back to the plain melody.
    """
    from composer.api import harmonize as H
    comp = MODEL.get()
    engine = compose_api.cached_composer(_SESSION_CHECKPOINT.get())
    st = _ensure(comp, st)
    if mode == HARMONIZE_MODES[2]:
        if not path:
            raise gr.Error("Upload a four-voice MIDI file (a chorale, or a piece exported from this tab).")
        from composer.music.midi import load_midi
        res = H.invert_piece(H.piece_codes(load_midi(path)), engine, tempo=st.tempo)
        f1 = ", ".join(f"{k} {v:.2f}" for k, v in res.summary()["note_f1"].items())
        return _show(comp, res.state, _push(history, st), f"Your riff's closest latents: note F1 {f1}.")
    if mode == HARMONIZE_MODES[1]:
        from composer.music.melody import from_codes
        mel = from_codes(comp.codes(st)[0], source="Compose soprano")
    else:
        mel = H.melody_from_input(path, text)
    res = H.harmonize(mel, engine, tempo=st.tempo)
    history = _push(_push(history, st), engine.plain_melody(res.state))
    moved = f" (moved {res.shift:+d} semitones into the soprano's range and back)" if res.shift else ""
    return _show(comp, res.state, history,
                 f"Harmonized {mel.n_bars} bars{moved}: the generator's own soprano sings "
                 f"{100 * res.soprano_match:.1f} % of the melody, then the melody is written in (soprano cells "
                 f"locked). Undo: the plain melody.")


#: The score and the downloads of a piece wait until it has been on screen this long, and are
#: not made when the session has a newer piece by then, or one in the making (its own finish
#: brings them). While a musician plays the sliders, nothing is engraved that nobody would
#: read, and the next move's audio does not share the cores with a score.
FINISH_QUIET_S = 1.0
#: How long a finish waits for a piece in the making before it goes on with its own.
FINISH_WAIT_S = 10.0


@user_errors
def finish(st, folder):
    """The slow part of an action (downloads, score), unless a newer piece came meanwhile."""
    comp = MODEL.get()
    session = _session()
    unchanged = gr.update(), gr.update()
    if st is None or not folder or NEWEST.superseded(session, folder):
        return unchanged
    time.sleep(max(0.0, FINISH_QUIET_S - NEWEST.age(session)))
    stale = functools.partial(NEWEST.superseded, session, folder, FINISH_WAIT_S)
    if stale():
        return unchanged
    # asked during the WAV: a newer piece in the making stops it at once, without waiting
    out = finish_outputs(comp, st, Path(folder), stop=functools.partial(NEWEST.superseded, session, folder))
    return unchanged if out is None or stale() else out


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------

#: The piece (status, roll, audio, grid) stays on screen while the controls scroll.
COMPOSE_CSS = """
.gradio-container { overflow: clip !important; }  /* hidden would make it a scroll box: no sticky */
/* room below the last slider, so that it can be scrolled up beside the piece: a sticky column
   cannot move past the end of its row, and the row ends with the controls */
#compose-controls { padding-bottom: 60vh; }
#compose-piece { position: sticky; top: 8px; align-self: flex-start; max-height: calc(100vh - 16px);
                 overflow-y: auto; }
#compose-roll { position: relative; }
#compose-player { width: 100%; }
#compose-playhead-line { position: absolute; width: 2px; background: #d62728; pointer-events: none;
                         display: none; z-index: 5; will-change: transform; }
"""

#: The Compose player. A native ``<audio>`` element plays the piece: it is playable as soon as
#: its first bytes arrive and costs the browser next to nothing while it plays, where Gradio's
#: waveform player decodes the whole file first and, while playing, kept most of a core busy
#: (measured in headless Chromium: 0.75 CPU-seconds a second against 0.15). Its file comes from
#: a hidden ``gr.File`` (``#compose-audio-file``, the output API clients receive): when that
#: link changes, the player takes the new file and, with "Play after every change" on, plays
#: it; "Loop" sets its loop. A playhead on the roll follows ``currentTime``; the roll's axes lie
#: where composer.render.viz.AX_LEFT/AX_WIDTH/AX_TOP/AX_HEIGHT say (fractions of the image),
#: and the music ends a release tail (composer.render.audio.RELEASE_TAIL_S) before the audio.
PLAYER_HTML = '<audio id="compose-player" controls preload="auto"></audio>'
PLAYER_JS = """
const AX_LEFT = %(left)s, AX_WIDTH = %(width)s, AX_TOP = %(top)s, AX_HEIGHT = %(height)s, TAIL = %(tail)s;
const player = () => document.getElementById('compose-player');
const ticked = (id, otherwise) => {
  const box = document.querySelector('#' + id + ' input[type=checkbox]');
  return box ? box.checked : otherwise;
};
let shown = null;
function follow() {
  const a = player(), link = document.querySelector('#compose-audio-file a[download]');
  if (!a || !link || !link.href || link.href === shown) return;
  shown = link.href;
  a.loop = ticked('compose-loop', false);
  a.src = link.href;
  if (ticked('compose-autoplay', true)) a.play().catch(() => {});
}
new MutationObserver(follow).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                      attributeFilter: ['href']});
document.addEventListener('change', (e) => {
  if (e.target.closest && e.target.closest('#compose-loop') && player()) player().loop = e.target.checked;
});
// The roll's geometry (where its axes are inside the box) is measured when the roll changes,
// the window is resized, or a second has passed; a frame then only moves the line (a
// transform, which needs no layout), so playing costs the page next to nothing.
let geo = null;
function measure(box, img, line) {
  const r = img.getBoundingClientRect(), b = box.getBoundingClientRect();
  const scale = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
  const w = img.naturalWidth * scale, h = img.naturalHeight * scale;
  const x0 = r.left - b.left + (r.width - w) / 2, y0 = r.top - b.top + (r.height - h) / 2;
  line.style.left = (x0 + w * AX_LEFT) + 'px';
  line.style.top = (y0 + h * AX_TOP) + 'px';
  line.style.height = (h * AX_HEIGHT) + 'px';
  return {width: w * AX_WIDTH, at: performance.now()};
}
document.addEventListener('load', (e) => {
  if (e.target.closest && e.target.closest('#compose-roll')) geo = null;
}, true);
window.addEventListener('resize', () => { geo = null; });
function draw() {
  const a = player(), box = document.getElementById('compose-roll');
  const img = box && box.querySelector('img');
  if (!a || !img || !img.naturalWidth) return;
  let line = document.getElementById('compose-playhead-line');
  if (!line) {
    line = document.createElement('div'); line.id = 'compose-playhead-line'; box.appendChild(line); geo = null;
  }
  const music = Math.max((a.duration || 0) - TAIL, 0.001);
  if (!a.duration || a.currentTime <= 0 || a.currentTime > music) { line.style.display = 'none'; return; }
  if (!geo || performance.now() - geo.at > 1000) geo = measure(box, img, line);
  line.style.display = 'block';
  line.style.transform = 'translateX(' + (geo.width * a.currentTime / music) + 'px)';
}
// frames only while the audio plays, one chain of them at a time (a loop's wrap is a seek
// during play); a pause or a seek draws once
let running = false;
function frame() {
  draw();
  const a = player();
  if (a && !a.paused) requestAnimationFrame(frame); else running = false;
}
for (const kind of ['play', 'pause', 'seeked', 'ended', 'emptied']) {
  document.addEventListener(kind, (e) => {
    if (e.target !== player()) return;
    if (running) { draw(); return; }
    running = true;
    requestAnimationFrame(frame);
  }, true);
}
follow();
"""


def player_js() -> str:
    from composer.render import audio, viz
    return PLAYER_JS % {"left": viz.AX_LEFT, "width": viz.AX_WIDTH, "top": viz.AX_TOP, "height": viz.AX_HEIGHT,
                        "tail": audio.RELEASE_TAIL_S}


def build(model_state: gr.State | None = None):
    """Lay out the Compose tab (inside ``gr.Tab``).

    ``model_state``: the session's model choice (a ``gr.State`` of :func:`new_model_choice`),
    shared with the Train tab's "Use in Compose"; made here when not given.

    Returns ``(hook, composed_midi)``: the page-load hook for the app, and the ``gr.State``
    holding this session's piece as a MIDI path (other tabs take the piece from it); both
    None when no MuseGAN model is available.
    """
    if model_state is None:
        model_state = gr.State(new_model_choice())
    ms = model_state
    try:
        comp = MODEL.get()
    except CheckpointError as exc:
        gr.Markdown(f"**No MuseGAN model is available yet.** {exc}")
        return None, None
    cfg = comp.cfg
    tracks = comp.track_names
    first = comp.new_state(seed=0, n_bars=max(4, cfg.n_bars))

    st = gr.State(first)
    history = gr.State([])
    composed_midi = gr.State(None)  # this session's piece as a MIDI path, for the other tabs
    folder = gr.State(None)
    gr.Markdown("Shape a four-voice chorale with MuseGAN's four latent inputs. **Style** colours the whole "
                "piece, **Chords** one bar for all voices, **Groove** one voice for the whole piece, "
                "**Melody** one voice in one bar. Select a cell in the grid (or with the two pickers) to "
                "choose which bar and voice the sliders shape. Sliders are in standard deviations; named "
                "ones were measured to change what their name says.")
    with gr.Row():
        with gr.Column(scale=1, min_width=320, elem_id="compose-controls"):
            model_dd = gr.Dropdown([SHIPPED], value=SHIPPED, label="Model (yours only: Train tab → Use in Compose)")
            with gr.Row():
                seed = gr.Number(value=0, precision=0, label="Seed", minimum=0)
                new_btn = gr.Button("New from seed")
                rand_btn = gr.Button("🎲 Random")
            with gr.Row():
                undo_btn = gr.Button("↶ Undo")
                reset_btn = gr.Button("Reset edits")
            n_bars = gr.Slider(1, 32, value=first.n_bars, step=1, label="Bars")
            tempo = gr.Slider(40, 200, value=first.tempo, step=1, label="Tempo (BPM)")
            trunc = gr.Slider(0, 3, value=first.truncation or 0, step=0.1,
                              label="Truncation (clip latents at ±t; 0 = off; starts at the model's recommendation)")
            with gr.Accordion("Instruments", open=False):
                instruments = [gr.Dropdown(GM_CHOICES, value=program_choice(p), label=name)
                               for name, p in zip(tracks, first.programs)]
            with gr.Accordion("Style: the whole piece", open=True):
                style_s = [gr.Slider(-3, 3, value=0, step=0.1, label=slider_label(comp, "style", i))
                           for i in range(N_DIRS)]
            with gr.Accordion("Chords: the selected bar, all voices", open=True):
                chords_s = [gr.Slider(-3, 3, value=0, step=0.1, label=slider_label(comp, "chords", i))
                            for i in range(N_DIRS)]
            with gr.Accordion("Groove: the selected voice, all bars", open=True):
                groove_s = [gr.Slider(-3, 3, value=0, step=0.1, label=slider_label(comp, "groove", i))
                            for i in range(N_DIRS)]
            with gr.Accordion("Melody: the selected voice in the selected bar", open=True):
                melody_s = [gr.Slider(-3, 3, value=0, step=0.1, label=slider_label(comp, "melody", i))
                            for i in range(N_DIRS)]
            with gr.Accordion("Advanced: every dimension of one vector", open=False):
                raw_level = gr.Radio(["Style", "Chords", "Groove", "Melody"], value="Style", label="Vector")
                raw = [gr.Slider(-3, 3, value=0, step=0.05, label=f"dim {i + 1}") for i in range(cfg.z_dim)]
        with gr.Column(scale=2, elem_id="compose-piece"):
            status = gr.Markdown()
            roll = gr.Image(label="Piano roll", show_label=False, type="filepath", interactive=False,
                            elem_id="compose-roll")
            gr.HTML(PLAYER_HTML, head=f"<style>{COMPOSE_CSS}</style>", js_on_load=player_js(), elem_id="compose-audio")
            # the piece's audio file: what API clients receive, and where the player above takes it from
            audio_out = gr.File(label="Audio", interactive=False, visible="hidden", elem_id="compose-audio-file")
            with gr.Row():
                gr.Checkbox(value=True, label="Play after every change", elem_id="compose-autoplay")
                gr.Checkbox(value=False, label="Loop", elem_id="compose-loop")
            grid = gr.Dataframe(value=grid_table(comp, first, selected=(0, 0)), interactive=False,
                                label="Voice × bar grid (click a cell to select it): [ ] selected, "
                                      "L locked, R re-rolled, · generated")
            with gr.Row():
                sel_track = gr.Dropdown(tracks, value=tracks[0], label="Selected voice")
                sel_bar = gr.Dropdown([str(b + 1) for b in range(first.n_bars)], value="1", label="Selected bar")
            with gr.Row():
                rr_cell = gr.Button("↻ Re-roll cell")
                rr_track = gr.Button("↻ Re-roll voice")
                rr_bar = gr.Button("↻ Re-roll bar")
                rr_all = gr.Button("↻ Re-roll piece (keeps locks)")
            with gr.Row():
                lk_cell = gr.Button("Lock cell")
                lk_track = gr.Button("Lock voice")
                lk_bar = gr.Button("Lock bar")
                unlock = gr.Button("Unlock all")
            with gr.Accordion("Variations: four alternatives to audition", open=False):
                with gr.Row():
                    var_cell = gr.Button("4 variations of the selected cell")
                    var_piece = gr.Button("4 variations of the piece")
                var_outputs, var_use = [], []
                with gr.Row():
                    for k in range(N_VARIATIONS):
                        with gr.Column(min_width=160):
                            var_outputs.append(gr.Image(label=f"Variation {k + 1}", type="filepath",
                                                        interactive=False, height=140))
                            var_outputs.append(gr.Audio(label=f"Variation {k + 1}", type="filepath",
                                                        interactive=False))
                            var_use.append(gr.Button(f"Use {k + 1}"))
            files = gr.File(label="Downloads: MIDI, WAV, MusicXML, latents JSON", file_count="multiple",
                            interactive=False)
            with gr.Accordion("Harmonize a melody", open=False):
                hz_mode = gr.Radio(list(HARMONIZE_MODES), value=HARMONIZE_MODES[0], label="Harmonize")
                hz_file = gr.File(label="A MIDI file (its highest line; four voices for a riff) or an ABC file",
                                  file_types=[".mid", ".midi", ".abc"], type="filepath")
                hz_text = gr.Textbox(label="…or type the notes (E4 D4/0.5 C4/0.5 D4 E4 E4 E4/2; lengths in "
                                           "quarters, R a rest) or paste ABC", lines=2)
                hz_btn = gr.Button("Harmonize")
            with gr.Accordion("Restore from latents", open=False):
                latents_file = gr.File(label="Upload a latents .json", file_types=[".json"], type="filepath")
                latents_text = gr.Textbox(label="…or paste the latents JSON", lines=3)
                restore_btn = gr.Button("Restore")
                latents_midi = gr.File(label="MIDI of the restored piece", interactive=False, visible=False)
    score = gr.HTML(label="Score")

    shown = [st, history, roll, audio_out, grid, status, folder, files, composed_midi]
    moved = [st, history, roll, audio_out, folder, composed_midi]  # a slider's answer (_moved)
    live = dict(trigger_mode="always_last", show_progress="hidden")

    variations = gr.State([])
    var_cell.click(in_session(variations_of_cell), [ms, sel_track, sel_bar, st], [variations] + var_outputs,
                   api_name="compose_variations")
    # API-private: the app's public endpoints are capped at 30 (tests/test_house.py) and
    # `harmonize` took this place; compose_variations (a cell) stays public
    var_piece.click(in_session(variations_of_piece), [ms, st], [variations] + var_outputs,
                    api_visibility="private")
    controls = [seed, n_bars, tempo, trunc] + instruments + [sel_bar] + style_s + chords_s + groove_s + melody_s \
        + [grid]

    def then_finish(event, sync: bool = True):
        """After an action: the slow outputs (score, downloads) and, unless the action was a
        slider move (which shows its own value), every control set to the new piece."""
        # "always_last": a then-event is dropped while the same one is pending ("once", Gradio's
        # default), and a finish waits for the next piece: the last move's finish must run
        if sync:
            event.then(in_session(sync_controls), [ms, sel_track, sel_bar, st], controls, show_progress="hidden",
                       api_visibility="private", trigger_mode="always_last")
        return event.then(in_session(finish), [ms, st, folder], [files, score], show_progress="hidden",
                          api_visibility="private", trigger_mode="always_last")

    then_finish(new_btn.click(in_session(new_piece), [ms, seed, n_bars, tempo, trunc, history, st] + instruments, shown,
                              api_name="compose_new"))
    then_finish(rand_btn.click(in_session(random_piece), [ms, n_bars, tempo, trunc, history, st] + instruments, [seed] + shown,
                               api_name="compose_random"))
    then_finish(undo_btn.click(in_session(undo), [ms, history, st], shown, api_name="compose_undo"))
    then_finish(reset_btn.click(in_session(reset), [ms, history, st], shown, api_name="compose_reset"))
    then_finish(hz_btn.click(in_session(harmonize), [ms, hz_mode, hz_file, hz_text, history, st], shown,
                             api_name="harmonize"))
    for k, btn in enumerate(var_use):
        then_finish(btn.click(in_session(_use_variation(k)), [ms, variations, history, st], shown,
                              api_visibility="private"))
    # Enter in the seed box composes from that seed
    then_finish(seed.submit(in_session(new_piece), [ms, seed, n_bars, tempo, trunc, history, st] + instruments, shown,
                            api_visibility="private"))
    for comp_in in [n_bars, tempo, trunc]:
        then_finish(comp_in.input(in_session(change_settings), [ms, n_bars, tempo, trunc, history, st] + instruments,
                                  shown,
                                    api_visibility="private", **live))
    for dd in instruments:
        then_finish(dd.input(in_session(change_settings), [ms, n_bars, tempo, trunc, history, st] + instruments, shown,
                             api_visibility="private", **live))
    for level, sliders in (("style", style_s), ("chords", chords_s), ("groove", groove_s), ("melody", melody_s)):
        for i, s in enumerate(sliders):
            then_finish(s.input(in_session(_slider_handler(level, i)), [ms, s, sel_track, sel_bar, history, st],
                                moved, api_visibility="private", **live), sync=False)
    for s in raw:
        then_finish(s.input(in_session(set_raw), [ms, raw_level, sel_track, sel_bar, history, st] + raw, moved,
                            api_visibility="private", **live), sync=False)
    for btn, kind, scope in ((rr_cell, "reroll", "cell"), (rr_track, "reroll", "track"), (rr_bar, "reroll", "bar"),
                             (rr_all, "reroll", "all"), (lk_cell, "lock", "cell"), (lk_track, "lock", "track"),
                             (lk_bar, "lock", "bar"), (unlock, "unlock", "all")):
        then_finish(btn.click(in_session(_edit_handler(kind, scope)), [ms, sel_track, sel_bar, history, st], shown,
                              api_name=f"compose_{kind}_{scope}"))
    # selection: move the sliders to the selected cell's values, no regeneration
    for sel in (sel_track, sel_bar):
        sel.change(in_session(selection_values), [ms, sel_track, sel_bar, st], chords_s + groove_s + melody_s + [grid],
                   api_visibility="private", show_progress="hidden")
    for sel in (raw_level, sel_track, sel_bar):
        sel.change(in_session(raw_values), [ms, raw_level, sel_track, sel_bar, st], raw, api_visibility="private",
                   show_progress="hidden")
    grid.select(in_session(select_cell), [ms, st], [sel_track, sel_bar], api_visibility="private")
    restored = shown[:7] + [composed_midi, files, score, latents_midi]
    for ev in (restore_btn.click(in_session(compose_from_latents), [ms, latents_text, history, st], restored,
                                 api_name="compose_from_latents"),
               latents_file.upload(in_session(upload_latents), [ms, latents_file, history, st], restored,
                                   api_visibility="private")):  # API: compose_from_latents (the text)
        ev.then(in_session(sync_controls), [ms, sel_track, sel_bar, st], controls, show_progress="hidden",
                api_visibility="private")
    # the app runs this when the page opens, so the first piece is there to hear
    hook = lambda demo: then_finish(demo.load(in_session(first_show), [ms, history, st], shown,  # noqa: E731
                                              show_progress="hidden", api_visibility="private"))
    # this session's models: the list follows its choice; picking one re-draws the piece with it
    ms.change(model_list, [ms], [model_dd], api_visibility="private", show_progress="hidden")
    then_finish(model_dd.input(choose_model, [model_dd, ms], [ms], api_visibility="private").then(
        in_session(first_show), [ms, history, st], shown, api_visibility="private", show_progress="hidden"))
    return hook, composed_midi


@user_errors
def first_show(history, st):
    comp = MODEL.get()
    return _show(comp, _ensure(comp, st), list(history or []))


