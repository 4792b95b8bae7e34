"""ZeroGPU glue: model work runs inside ``spaces.GPU`` calls, rendering never does.

On a Hugging Face ZeroGPU Space a GPU is lent only for the length of a call to a function
wrapped in ``spaces.GPU(duration=…)``; the duration is the most the call may take, and the
shorter it is, the sooner the call gets a GPU. Everything here follows three rules:

- **only model work inside**: the MuseGAN decode, CycleGAN, the char-RNN's and the note
  model's sampling, the Train tab's previews. FluidSynth, matplotlib, verovio and file
  writing run after the call returns, outside the GPU slot;
- **light arguments**: a checkpoint path and a state go in, codes / text / PrettyMIDI come
  out; the models come from caches keyed by checkpoint path (ZeroGPU may run the call in
  another process, so nothing large is pickled per call);
- **CUDA when present** (:func:`model_device`), the CPU otherwise: on a machine without the
  ``spaces`` package :data:`gpu` is a no-op and nothing changes.

The Compose tab and the Train tab's previews call the functions below. The Genre transfer,
Folk tunes and Continue tabs call ``composer.api`` functions that are pure model work
(:data:`TAB_MODEL_CALLS`); :func:`install` wraps those in place when the app is built.
"""
from __future__ import annotations

import functools
import importlib

try:  # the `spaces` package exists on Hugging Face Spaces only
    import spaces

    gpu = spaces.GPU
    ON_ZEROGPU = True
except ImportError:
    ON_ZEROGPU = False

    def gpu(fn=None, **_kwargs):
        """No GPU broker here: return the function unchanged (usable bare or with arguments)."""
        if fn is None:
            return lambda f: f
        return fn


#: seconds asked of ZeroGPU per call (a little over the slowest case measured on a CPU)
DURATIONS = {"musegan": 15, "preview": 30, "cyclegan": 30, "charrnn": 60, "notes": 30}

#: the api functions the other tabs call that are pure model work: "module:function" -> duration key
TAB_MODEL_CALLS = {
    "composer.api.cyclegan:transfer_pm": "cyclegan",   # Genre transfer
    "composer.api.charrnn:stream_tune": "charrnn",     # Folk tunes (a generator: streamed from the slot)
    "composer.api.notes:continue_midi": "notes",       # Continue
}
#: those that take ``device=`` (run on CUDA in the slot); the char-RNN's guarded sampler stays on the CPU
TAKES_DEVICE = {"composer.api.cyclegan:transfer_pm", "composer.api.notes:continue_midi"}


def model_device():
    """CUDA when this process (or the ZeroGPU slot it runs in) has a GPU, else the CPU."""
    import torch
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


# --------------------------------------------------------------------------------------------
# Compose and the Train tab's previews
# --------------------------------------------------------------------------------------------

@gpu(duration=DURATIONS["musegan"])
def musegan_codes(checkpoint: str | None, st):
    """The piece's codes from the MuseGAN at ``checkpoint`` (None: the shipped one)."""
    from composer.api.compose import cached_composer
    return cached_composer(checkpoint).codes(st, device=model_device())


@gpu(duration=DURATIONS["preview"])
def musegan_preview(checkpoint: str):
    """Codes of one seed-0 sample of a training run's generator (Train tab preview)."""
    from composer.api.musegan import generate, load_generator, random_latents, to_codes
    model = load_generator(checkpoint, device=model_device())
    return to_codes(generate(model, random_latents(model, 1, seed=0)))[0]


@gpu(duration=DURATIONS["preview"])
def charrnn_preview(checkpoint: str) -> str:
    """A seed-0 tune from a training run's char-RNN (Train tab preview)."""
    from composer.api import charrnn
    return charrnn.generate_tune(model=charrnn.FolkModel(checkpoint), seed=0, max_chars=800)


@gpu(duration=DURATIONS["preview"])
def notes_preview(prompt, checkpoint: str):
    """Two bars continuing ``prompt`` with a training run's note model (Train tab preview)."""
    from composer.api.notes import continue_midi
    original = getattr(continue_midi, "__composer_original__", continue_midi)  # not a second slot
    return original(prompt, bars=2, model=checkpoint, seed=0, device=model_device())


# --------------------------------------------------------------------------------------------
# The other tabs' model calls
# --------------------------------------------------------------------------------------------

def _with_device(fn):
    """``fn`` called with ``device=`` the slot's device unless the caller gave one."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        kwargs.setdefault("device", model_device())
        return fn(*args, **kwargs)
    return call


def install() -> list[str]:
    """Wrap :data:`TAB_MODEL_CALLS` in ``spaces.GPU`` where they are defined (idempotent).

    A no-op without ZeroGPU. Returns the names wrapped now or before.
    """
    done = []
    for name, kind in TAB_MODEL_CALLS.items():
        module_name, attr = name.split(":")
        module = importlib.import_module(module_name)
        current = getattr(module, attr)
        original = getattr(current, "__composer_original__", current)
        if ON_ZEROGPU and getattr(current, "__composer_wrapped_by__", None) is not gpu:
            target = _with_device(original) if name in TAKES_DEVICE else original
            wrapped = gpu(duration=DURATIONS[kind])(target)
            if wrapped is not original:
                try:
                    wrapped = functools.wraps(original)(wrapped)
                except (AttributeError, TypeError):
                    pass
                wrapped.__composer_original__ = original
                wrapped.__composer_wrapped_by__ = gpu
                setattr(module, attr, wrapped)
        done.append(name)
    return done
