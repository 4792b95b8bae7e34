"""``python -m composer generate``: MuseGAN chorale pieces as MIDI, WAV, piano roll and latents.

    python -m composer generate --pieces 4 --seed 7 --out out/
    python -m composer generate --latents out/latents.json --out again/   # the same music

Built on the Compose engine (:mod:`composer.api.compose`), so its files are the Compose tab's:
``piece_NN.{mid,wav,png,json}`` for every piece (seeds ``seed``, ``seed + 1``, ...), and
``song.{mid,wav,png}`` with ``latents.json``, one piece of ``pieces x phrase`` bars whose
phrases are chained by slerp. Every ``.json`` is the one latents format: the Compose tab
restores it, and ``--latents`` renders any of them (or a Compose download) note for note.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from composer.api.compose import MAX_BARS, ComposeState, load_composer
from composer.errors import AudioError, ComposerError


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m composer generate", description=__doc__.split("\n")[0])
    p.add_argument("--pieces", type=int, default=4, help="number of pieces (ignored with --latents)")
    p.add_argument("--bars", type=int, default=None, help="bars per piece (default: one phrase of the model)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="generated", help="output folder")
    p.add_argument("--latents", default=None, help="a latents .json (from generate or the Compose tab): "
                   "render exactly that piece")
    p.add_argument("--truncation", type=float, default=None,
                   help="clip latents to [-t, t] (default: the checkpoint's recommendation; 0 = off)")
    p.add_argument("--checkpoint", default=None, help="default: checkpoints/musegan.safetensors")
    p.add_argument("--tempo", type=float, default=None, help="quarter notes per minute (default: the model card's)")
    p.add_argument("--no-audio", action="store_true", help="skip the .wav files")
    p.add_argument("--json", action="store_true", help="print what was written as one line of JSON")
    return p.parse_args(argv)


def _write(comp, st: ComposeState, out: Path, name: str, audio_ok: bool) -> tuple[list[Path], bool]:
    from composer.render.viz import save_pianoroll
    pm = comp.midi(st)
    files = [out / f"{name}.mid", out / f"{name}.png"]
    pm.write(str(files[0]))
    save_pianoroll(pm, files[1], title=f"seed {st.seed}, {st.n_bars} bars")
    if audio_ok:
        try:
            from composer.render.audio import render_to_wav
            files.append(render_to_wav(pm, out / f"{name}.wav"))
        except AudioError as exc:  # no FluidSynth or soundfont: MIDI and PNG still help
            print(f"warning: no audio ({exc})", file=sys.stderr)
            audio_ok = False
    return files, audio_ok


def generate(args) -> dict:
    comp = load_composer(args.checkpoint)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    audio_ok = not args.no_audio
    if args.latents:
        path = Path(args.latents)
        if not path.is_file():
            raise ComposerError(f"no latents file at {path}")
        song = ComposeState.from_json(path.read_bytes())
        n = 0
    else:
        if args.pieces < 1:
            raise ComposerError("--pieces must be at least 1")
        phrase = comp.cfg.n_bars
        bars = args.bars or phrase
        if not 1 <= bars <= MAX_BARS:
            raise ComposerError(f"--bars must be 1-{MAX_BARS}")
        n = args.pieces
        for i in range(n):
            st = comp.new_state(seed=args.seed + i, n_bars=bars, truncation=args.truncation, tempo=args.tempo)
            made, audio_ok = _write(comp, st, out, f"piece_{i + 1:02d}", audio_ok)
            (out / f"piece_{i + 1:02d}.json").write_text(st.to_json())
            files += made + [out / f"piece_{i + 1:02d}.json"]
        song = comp.new_state(seed=args.seed, n_bars=min(MAX_BARS, bars * n), truncation=args.truncation,
                              tempo=args.tempo)
    made, audio_ok = _write(comp, song, out, "song", audio_ok)
    (out / "latents.json").write_text(song.to_json())
    files += made + [out / "latents.json"]
    return {"out": str(out), "pieces": n, "song_bars": song.n_bars, "seed": song.seed,
            "files": [str(f) for f in files]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    res = generate(args)
    if args.json:
        print(json.dumps(res))
    else:
        print(f"wrote {res['pieces']} piece(s) and a {res['song_bars']}-bar song to {res['out']}")
    return 0
