"""ZeroGPU done right, checked with a fake ``spaces`` module.

The fake records every function ``spaces.GPU`` wraps (and its duration) and whether a call is
inside a GPU slot. In a fresh interpreter that imports it, the app's handlers run one action
of each tab and of the Train tab's previews; the test asserts:

- every model call is wrapped: the known model functions are, and no torch module runs a
  forward pass outside a GPU slot, but for MuseGAN's temporal nets in Compose's re-roll and
  lock edits (:data:`CPU_BY_DESIGN`);
- no rendering inside: FluidSynth, the piano roll, the score, MusicXML and every file written
  happen outside the slots;
- and, without ``spaces``, :data:`composer.ui.gpu.gpu` is a no-op.
"""
import json
import os
import subprocess
import sys
import textwrap

from conftest import ROOT

FAKE_SPACES = '''
"""A fake `spaces` (Hugging Face ZeroGPU) for the tests: records what is wrapped and what runs inside."""
import functools
import inspect
import threading

WRAPPED = []          # (module.qualname, duration)
CALLS = []            # module.qualname of each wrapped call
_state = threading.local()


def inside() -> bool:
    return getattr(_state, "depth", 0) > 0


def _enter():
    _state.depth = getattr(_state, "depth", 0) + 1


def _leave():
    _state.depth -= 1


def GPU(fn=None, *, duration=60, **_kwargs):
    def wrap(f):
        name = f"{f.__module__}.{f.__qualname__}"
        WRAPPED.append((name, duration))
        if inspect.isgeneratorfunction(f):
            @functools.wraps(f)
            def gen(*args, **kwargs):
                CALLS.append(name)
                _enter()  # the slot is held while the generator lives, as on ZeroGPU
                try:
                    yield from f(*args, **kwargs)
                finally:
                    _leave()
            return gen

        @functools.wraps(f)
        def call(*args, **kwargs):
            CALLS.append(name)
            _enter()
            try:
                return f(*args, **kwargs)
            finally:
                _leave()
        return call
    return wrap(fn) if fn is not None else wrap
'''

SCRIPT = r'''
import builtins, io, json, os, sys, tempfile
from pathlib import Path
import spaces
violations, outside = [], []

def guard(owner, attr, what):
    original = getattr(owner, attr)
    def checked(*args, **kwargs):
        if spaces.inside():
            violations.append(what)
        return original(*args, **kwargs)
    setattr(owner, attr, checked)

from composer.ui import gpu
assert gpu.ON_ZEROGPU
wrapped_now = gpu.install()
from composer.render import audio, viz, outputs
import pretty_midi, torch
guard(audio.Renderer, "play", "FluidSynth render")
guard(audio, "render_to_wav", "WAV")
for name in ("save_pianoroll", "pianoroll_png", "musicxml", "score_html", "score_svg"):
    if hasattr(viz, name):
        guard(viz, name, f"viz.{name}")
guard(outputs, "export_piece", "export_piece")
guard(pretty_midi.PrettyMIDI, "write", "MIDI write")
_open = builtins.open
def open_checked(file, mode="r", *args, **kwargs):
    if spaces.inside() and any(c in mode for c in "wax+"):
        violations.append(f"file written: {file}")
    return _open(file, mode, *args, **kwargs)
builtins.open = open_checked
for cls, meth in ((Path, "write_bytes"), (Path, "write_text")):
    guard(cls, meth, f"Path.{meth}")
_call = torch.nn.Module.__call__
def module_call(self, *args, **kwargs):
    if not spaces.inside():
        outside.append(type(self).__name__)
    return _call(self, *args, **kwargs)
torch.nn.Module.__call__ = module_call

# Compose: a new piece, a slider, a re-roll, the slow part
from composer.ui import compose
instr = ["040 Violin", "041 Viola", "042 Cello", "043 Contrabass"]
out = compose.new_piece(3, 4, 90, 0, [], None, *instr)
st, hist, folder = out[0], out[1], out[6]
out = compose._slider_handler("style", 0)(1.5, "Alto", "2", hist, st)
out = compose._edit_handler("reroll", "cell")("Alto", "2", out[1], out[0])
compose.finish(out[0], out[6])
# Genre transfer, Folk tunes, Continue
from composer.ui import transfer, folk, continue_tab
piece = out[8]
transfer.transfer_path(piece, "folk")
for _ in folk.write_tune("4/4", "D", None, "reel", None, None, 0, 1.0, 0, 1.0, "fiddle", 120):
    pass
continue_tab.continue_melody("Notes", None, None, "C4 D4 E4 F4 G4", None, "LSTM", 1, 1.0, 0, 0.95, 0,
                             "000 Acoustic Grand Piano", 100)
# Train tab previews: a MuseGAN run's checkpoint, a char-RNN's and a note model's best files
import shutil
from composer.paths import checkpoints_dir
from composer.ui import train
from composer.ui.jobs import TRAINABLES, TrainingJob
for key, src, dst in (("musegan", "musegan", "last"), ("charrnn", "charrnn", "charrnn"),
                      ("notes-lstm", "notes_lstm", "notes_lstm")):
    run = Path(tempfile.mkdtemp())
    for ext in (".safetensors", ".json"):
        shutil.copy(checkpoints_dir() / f"{src}{ext}", run / f"{dst}{ext}")
    train.make_preview(TrainingJob(TRAINABLES[key], run, 10, 4, "builtin"))
builtins.open = _open
print("RESULT " + json.dumps({"wrapped": spaces.WRAPPED, "calls": spaces.CALLS, "violations": violations,
                               "outside": sorted(set(outside)), "installed": wrapped_now}))
'''


#: Modules allowed to run outside a GPU slot: MuseGAN's temporal nets, which a re-roll or a lock
#: calls on one latent vector (microseconds on the CPU). A slot of their own would put a
#: second ZeroGPU queue wait into every re-roll, whose decode already runs in one.
CPU_BY_DESIGN = {"TemporalNet", "Sequential", "ConvTranspose1d", "BatchNorm1d", "ReLU", "Linear"}


def _run(tmp_path, with_spaces=True):
    fake = tmp_path / "fake"
    fake.mkdir()
    if with_spaces:
        (fake / "spaces.py").write_text(FAKE_SPACES)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake), str(ROOT)]),
               COMPOSER_RUNS=str(tmp_path / "runs"))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(SCRIPT)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)


def test_every_model_call_runs_in_a_gpu_slot_and_no_rendering_does(tmp_path):
    proc = _run(tmp_path)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-4000:]
    res = json.loads(line[len("RESULT "):])
    wrapped = {name.rsplit(".", 1)[-1]: d for name, d in res["wrapped"]}
    for fn in ("musegan_codes", "musegan_preview", "charrnn_preview", "notes_preview", "transfer_pm",
               "stream_tune", "continue_midi"):
        assert fn in wrapped, f"{fn} is not wrapped in spaces.GPU: {sorted(wrapped)}"
        assert 1 <= wrapped[fn] <= 120, f"{fn}: duration {wrapped[fn]} s"
    called = {c.rsplit(".", 1)[-1] for c in res["calls"]}
    assert {"musegan_codes", "transfer_pm", "stream_tune", "continue_midi", "musegan_preview",
            "charrnn_preview", "notes_preview"} <= called, called
    assert res["violations"] == [], f"rendering or file writing inside a GPU slot: {res['violations'][:10]}"
    assert set(res["outside"]) <= CPU_BY_DESIGN, f"model forward passes outside a GPU slot: {res['outside']}"


def test_without_spaces_gpu_is_a_no_op():
    from composer.ui import gpu
    if gpu.ON_ZEROGPU:  # pragma: no cover - a machine with the real package
        return
    f = lambda x: x  # noqa: E731
    assert gpu.gpu(f) is f and gpu.gpu(duration=5)(f) is f
    assert str(gpu.model_device()) in ("cpu", "cuda")


def test_codes_take_a_device_and_keep_the_notes():
    import torch

    from composer.api.compose import cached_composer
    comp = cached_composer(None)
    assert cached_composer(None) is comp  # one copy per checkpoint, shared read-only
    st = comp.new_state(seed=5, n_bars=4)
    import numpy as np
    assert np.array_equal(comp.codes(st), comp.codes(st, device=torch.device("cpu")))
    assert comp.generator_on("cpu") is comp.g


def test_transfer_and_continuation_take_a_device_and_keep_the_music(example_midi):
    import pretty_midi
    import torch

    from composer.api import cyclegan, notes
    pm = pretty_midi.PrettyMIDI(str(example_midi))
    a = cyclegan.transfer_pm(pm, "folk")
    b = cyclegan.transfer_pm(pm, "folk", device=torch.device("cpu"))
    assert (a.codes_out == b.codes_out).all() and a.probs_after == b.probs_after
    x = notes.continue_midi(pm, bars=1, seed=3)
    y = notes.continue_midi(pm, bars=1, seed=3, device="cpu")
    assert x[2]["tokens"] == y[2]["tokens"]
