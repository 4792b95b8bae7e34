"""Compose figures for ``python -m composer bench --json``: how fast the instrument answers.

* ``compose_e2e_p95_ms`` / ``compose_e2e_median_ms`` - a slider move on a 4-bar piece ->
  new piano roll PNG + playable WAV + MIDI, through :func:`composer.api.compose.render_state`
  (the function the Compose tab calls) after the state edit; ``compose_e2e_16bars_*`` the
  same on 16 bars. Every move sets a Style slider (the whole piece changes, the most work)
  to a value not used before, so no two moves give the same music.
* ``compose_generate_ms``, ``compose_audio_ms``, ``compose_roll_ms``, ``compose_midi_ms`` -
  medians of the parts on 4 bars, each alone: latents -> notes, FluidSynth -> WAV file
  (at the tab's rate, composer.render.audio.PREVIEW_RATE),
  piano roll -> PNG file, MIDI file.
* ``compose_load_average`` - the machine's 1-minute load average when the figures were
  taken (this machine is shared: read every figure beside it).
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from composer.errors import CheckpointError


def _moves(comp, st, n: int):
    """``n`` states, each a Style slider set to a new value (never one seen before)."""
    out = []
    for i in range(n):
        st = comp.set_direction(st, "style", i % 3, float(-3 + 6 * ((0.618034 * (i + 1)) % 1.0)))
        out.append(st)
    return out


def _e2e(comp, n_bars: int, n: int) -> list[float]:
    from composer.api.compose import render_state
    st = comp.new_state(seed=1, n_bars=n_bars)
    render_state(comp, st)  # warm: presets loaded, fonts read
    times = []
    for st in _moves(comp, st, n):
        t = time.perf_counter()
        render_state(comp, st)
        times.append(time.perf_counter() - t)
    return times


def _parts(comp, n: int = 15) -> dict:
    from composer.render import audio, viz
    st = comp.new_state(seed=1, n_bars=4)
    parts: dict[str, list[float]] = {"generate": [], "audio": [], "roll": [], "midi": []}
    with tempfile.TemporaryDirectory(prefix="composer-bench-") as tmp:
        folder = Path(tmp)
        pm = comp.midi(st)
        audio.render_to_wav(pm, folder / "a.wav", audio.PREVIEW_RATE)
        viz.save_pianoroll(pm, folder / "a.png")
        for st in _moves(comp, st, n):
            t0 = time.perf_counter()
            pm = comp.midi(st)
            t1 = time.perf_counter()
            audio.render_to_wav(pm, folder / "a.wav", audio.PREVIEW_RATE)  # as the tab renders
            t2 = time.perf_counter()
            viz.save_pianoroll(pm, folder / "a.png", title="bench")
            t3 = time.perf_counter()
            pm.write(str(folder / "a.mid"))
            t4 = time.perf_counter()
            for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                parts[key].append(dt)
    return {f"compose_{k}_ms": round(1000 * statistics.median(v), 1) for k, v in parts.items()}


def bench(n: int = 40, n_16: int = 15) -> dict:
    """The figures in the module's docstring."""
    from composer.api.compose import load_composer
    from composer.device import use_interactive_threads
    use_interactive_threads()  # as the app runs
    try:
        comp = load_composer()
    except CheckpointError:
        return {"compose_e2e_p95_ms": None}
    load = [os.getloadavg()[0]]
    t4 = _e2e(comp, 4, n)
    t16 = _e2e(comp, 16, n_16)
    out = {"compose_e2e_p95_ms": round(1000 * float(np.percentile(t4, 95)), 1),
           "compose_e2e_median_ms": round(1000 * float(np.median(t4)), 1),
           "compose_e2e_16bars_p95_ms": round(1000 * float(np.percentile(t16, 95)), 1),
           "compose_e2e_16bars_median_ms": round(1000 * float(np.median(t16)), 1)}
    out.update(_parts(comp))
    load.append(os.getloadavg()[0])
    out["compose_load_average"] = round(float(np.mean(load)), 2)
    return out
