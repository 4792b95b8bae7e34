"""``python -m composer bench --json``: the performance figures we track.

Each group measures one thing through the same code the app uses, with warm-ups first
and medians over repeats, and returns a flat dict. Model groups join when their module
is present.
"""
from __future__ import annotations

import importlib
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import pretty_midi


def _bench_piece(n_chorales: int = 4) -> pretty_midi.PrettyMIDI:
    """A few corpus chorales played one after another (about two minutes of music)."""
    from composer.music.corpus import example_midi_paths
    out = pretty_midi.PrettyMIDI(initial_tempo=80.0)
    offset = 0.0
    tracks: dict[int, pretty_midi.Instrument] = {}
    for path in list(example_midi_paths().values())[:n_chorales]:
        pm = pretty_midi.PrettyMIDI(str(path))
        for k, inst in enumerate(pm.instruments):
            dst = tracks.setdefault(k, pretty_midi.Instrument(inst.program, inst.is_drum, inst.name))
            dst.notes += [pretty_midi.Note(n.velocity, n.pitch, n.start + offset, n.end + offset) for n in inst.notes]
        offset += pm.get_end_time() + 1.0
    out.instruments = list(tracks.values())
    return out


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_render(repeats: int = 5) -> dict:
    """``render_rtf`` and ``render_vs_cli`` (ours vs ``fluidsynth -ni -F`` on the same MIDI)."""
    from composer.render import audio
    r = audio.get_renderer()
    pm = _bench_piece()
    seconds = pm.get_end_time() + audio.RELEASE_TAIL_S
    r.render(pm)  # warm: samples of the presets get loaded
    ours = _median_time(lambda: r.render(pm), repeats)
    out = {"render_rtf": round(seconds / ours, 1), "render_soundfont": r.soundfont.name}
    cli = shutil.which("fluidsynth")
    if cli is None:
        out["render_vs_cli"] = None
        return out
    with tempfile.TemporaryDirectory() as tmp:
        full, tiny = Path(tmp, "full.mid"), Path(tmp, "tiny.mid")
        pm.write(str(full))
        short = pretty_midi.PrettyMIDI(initial_tempo=80.0)
        for inst in pm.instruments:  # same presets, a single short note each: load cost only
            one = pretty_midi.Instrument(inst.program, inst.is_drum, inst.name)
            one.notes = [pretty_midi.Note(1, 60, 0.0, 0.01)]
            short.instruments.append(one)
        short.write(str(tiny))

        def run(mid):
            subprocess.run([cli, "-ni", "-q", "-r", str(r.sample_rate), "-g", str(audio.GAIN), "-F",
                            str(Path(tmp, "o.wav")), str(r.soundfont), str(mid)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        run(full)  # warm the page cache for the soundfont
        t_full = _median_time(lambda: run(full), repeats)
        t_tiny = _median_time(lambda: run(tiny), repeats)
    cli_synth = max(t_full - t_tiny, 1e-6)  # the CLI's time spent rendering, load excluded
    out["render_vs_cli"] = round(cli_synth / ours, 3)
    out["render_s"] = round(ours, 4)
    out["render_cli_s"] = round(cli_synth, 4)
    return out


def bench_viz(repeats: int = 7) -> dict:
    """``pianoroll_png_ms`` for 8 bars x 4 tracks (a chorale's first 8 bars)."""
    from composer.render import viz
    from composer.music.corpus import example_midi_paths
    from composer.music.pianoroll import MultiTrackRoll
    pm = pretty_midi.PrettyMIDI(str(next(iter(example_midi_paths().values()))))
    roll = MultiTrackRoll.from_pretty_midi(pm)
    roll.codes = roll.codes[:, :8]
    pm8 = roll.to_pretty_midi()
    viz.pianoroll_png(pm8)
    return {"pianoroll_png_ms": round(1000 * _median_time(lambda: viz.pianoroll_png(pm8), repeats), 1)}


#: optional groups contributed by feature modules: name -> (module, function)
OPTIONAL = {"musegan": ("composer.bench.musegan", "bench"), "compose": ("composer.bench.compose", "bench"),
            "charrnn": ("composer.bench.charrnn", "bench"), "notes": ("composer.api.notes", "bench"),
            "transfer": ("composer.api.cyclegan", "bench"), "harmonize": ("composer.bench.harmonize", "bench")}
#: groups that run only when asked by name (``--only load``): they take minutes
ON_REQUEST = {"load": ("composer.bench.load", "bench"),
              "compose_browser": ("composer.bench.compose_browser", "bench"),
              "long_render": ("composer.bench.long_render", "bench")}


def run(preset: str = "seed", only: list[str] | None = None) -> dict:
    """Run every bench group (or ``only`` these) and merge their figures."""
    from composer.training import has_module
    result: dict = {}
    groups = {"render": bench_render, "viz": bench_viz}
    for name, fn in groups.items():
        if not only or name in only:
            result.update(fn())
    for name, (module, fn) in OPTIONAL.items():
        if (only and name not in only) or not has_module(module):
            continue
        func = getattr(importlib.import_module(module), fn, None)
        if func is None:
            continue
        result.update(func(preset) if name == "musegan" else func())
    for name, (module, fn) in ON_REQUEST.items():
        if only and name in only:
            result.update(getattr(importlib.import_module(module), fn)())
    return result


if __name__ == "__main__":
    import json
    print(json.dumps(run()))
