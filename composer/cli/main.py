"""The command line: ``python -m composer COMMAND ...``.

Each command is a thin function over the package. Commands that belong to one model
(``train MODEL``, ``eval MODEL``, ``generate``, ``abc``) hand their remaining arguments to
that model's module, which has its own ``main(argv) -> int``, so a feature's options live
beside its code. A user error (:class:`~composer.errors.ComposerError`) prints one line
to stderr and exits 1; nobody sees a traceback for bad input.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import platform
import sys
from pathlib import Path

from composer.paths import checkpoints_dir
from composer.errors import ComposerError

from composer.evaluation import EVALUATORS
from composer.training import TRAINERS, has_module

#: other commands that live in their feature's module
DELEGATED = {"generate": "composer.cli.musegan", "abc": "composer.cli.charrnn", "transfer": "composer.cli.cyclegan",
             "continue": "composer.cli.notes", "harmonize": "composer.cli.harmonize"}

CHECKPOINTS = checkpoints_dir()


def _available(modules: dict[str, str]) -> dict[str, str]:
    """Only the entries whose module is present in this checkout."""
    return {k: v for k, v in modules.items() if has_module(v)}


def cmd_render(args) -> int:
    from composer.render import audio
    from composer.music.midi import load_midi
    pm = load_midi(args.input)
    out = Path(args.out)
    if out.suffix.lower() != ".wav":
        raise ComposerError(f"--out must end in .wav, got '{out.name}'")
    if not out.parent.is_dir():
        raise ComposerError(f"the folder '{out.parent}' does not exist")
    data = audio.render(pm, sample_rate=args.sample_rate)
    audio.write_wav(out, data, args.sample_rate)
    seconds = data.shape[0] / args.sample_rate
    if args.json:
        print(json.dumps({"out": str(out), "seconds": round(seconds, 3), "sample_rate": args.sample_rate}))
    else:
        print(f"wrote {out} ({seconds:.1f} s, {args.sample_rate} Hz stereo)")
    return 0


def info() -> dict:
    """What this installation has: soundfont, torch device, checkpoints, versions."""
    from composer.render import audio
    out: dict = {"python": platform.python_version()}
    try:
        out["soundfont"] = str(audio.find_soundfont())
    except ComposerError as exc:
        out["soundfont"] = f"missing: {exc}"
    try:
        audio._import_fluidsynth()
        out["fluidsynth"] = "ok"
    except ComposerError as exc:
        out["fluidsynth"] = f"missing: {exc}"
    try:
        import torch
        from composer.device import pick_device
        out["torch"] = torch.__version__
        out["device"] = str(pick_device())
    except ImportError:
        out["torch"] = "missing"
    out["checkpoints"] = sorted(p.name for p in CHECKPOINTS.glob("*.safetensors"))
    for name in ("pretty_midi", "music21", "gradio", "verovio", "numpy", "matplotlib"):
        try:
            mod = importlib.import_module(name)
            out[name] = getattr(mod, "__version__", None) or (mod.toolkit().getVersion() if name == "verovio" else "?")
        except ImportError:
            out[name] = "missing"
    return out


def cmd_info(args) -> int:
    data = info()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        for k, v in data.items():
            print(f"{k:12s} {', '.join(v) if isinstance(v, list) else v}")
    return 0


def cmd_bench(args) -> int:
    from composer.bench import run as bench
    result = bench.run(preset=args.preset, only=args.only)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


def cmd_serve(args) -> int:
    from composer.ui.app import launch
    launch(host=args.host, port=args.port)
    return 0


def _delegate(module: str, argv: list[str]) -> int:
    return int(importlib.import_module(module).main(argv) or 0)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m composer", description="Composer: compose with small neural models.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("render", help="render a MIDI file to WAV through FluidSynth")
    r.add_argument("input", help="a .mid file")
    r.add_argument("--out", required=True, help="the .wav to write")
    r.add_argument("--sample-rate", type=int, default=44100)
    r.add_argument("--json", action="store_true", help="print what was written as one line of JSON")
    r.set_defaults(func=cmd_render)

    i = sub.add_parser("info", help="soundfont, torch device, checkpoints, versions")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)

    b = sub.add_parser("bench", help="measure performance (JSON)")
    b.add_argument("--json", action="store_true", help="one line of JSON")
    b.add_argument("--preset", default="seed", help="MuseGAN preset for musegan_train_iter_s")
    b.add_argument("--only", nargs="*", help="run only these groups (render, viz, musegan, compose, charrnn, notes, transfer, harmonize; on request: compose_browser, load, long_render)")
    b.set_defaults(func=cmd_bench)

    s = sub.add_parser("serve", help="serve the Gradio app")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=7860)
    s.set_defaults(func=cmd_serve)

    for name, models in (("train", TRAINERS), ("eval", EVALUATORS)):
        c = sub.add_parser(name, help=f"{name} a model ({', '.join(_available(models)) or 'none installed'})",
                           add_help=False)
        c.add_argument("model", nargs="?", help="|".join(_available(models)))
        c.set_defaults(table=models)
    for name, module in DELEGATED.items():
        if has_module(module):
            sub.add_parser(name, add_help=False, help=f"see: python -m composer {name} --help")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # library code logs (docs/ARCHITECTURE.md); a command shows its INFO lines on stderr
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("composer").setLevel(logging.INFO)
    try:
        if argv and argv[0] in DELEGATED and has_module(DELEGATED[argv[0]]):
            return _delegate(DELEGATED[argv[0]], argv[1:])
        if argv and argv[0] in ("train", "eval"):
            table = _available(TRAINERS if argv[0] == "train" else EVALUATORS)
            if len(argv) >= 2 and argv[1] in ("-h", "--help"):
                print(f"usage: python -m composer {argv[0]} MODEL [options]\n\n"
                      f"{'Train' if argv[0] == 'train' else 'Evaluate'} one model; MODEL is one of: "
                      f"{', '.join(table)}.\nEach has its own options: python -m composer {argv[0]} MODEL --help")
                return 0
            if len(argv) < 2 or argv[1] not in table:
                given = argv[1] if len(argv) > 1 else "nothing"
                print(f"error: {argv[0]} needs a model, one of: {', '.join(table) or 'none'} (got {given})",
                      file=sys.stderr)
                return 2
            return _delegate(table[argv[1]], argv[2:])
        args = build_parser().parse_args(argv)
        return args.func(args)
    except ComposerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head` closed our stdout: not an error worth a traceback
        sys.stdout = open(os.devnull, "w")
        return 0
