"""``python -m composer generate``: MuseGAN chorale phrases as MIDI, WAV, piano roll and latents.

    python -m composer generate --pieces 4 --seed 7 --out out/
    python -m composer generate --latents out/latents.json --out again/   # the same music

Writes ``piece_NN.{mid,wav,png}`` for every piece and ``song.{mid,wav,png}`` for the whole
song, plus ``latents.json``. In the song, consecutive pieces are joined by ``--blend``
extra phrases whose latents are slerped between theirs, so it does not jump at each seam.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from composer.api import musegan as mg
from composer.errors import AudioError, CheckpointError, ComposerError


def parse_args(argv):
    p = argparse.ArgumentParser(prog="composer generate", description=__doc__.split("\n")[0])
    p.add_argument("--pieces", type=int, default=4, help="number of phrases (ignored with --latents)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="generated", help="output folder")
    p.add_argument("--latents", default=None, help="latents.json from an earlier run: reproduce it exactly")
    p.add_argument("--truncation", type=float, default=None, help="clip latents to [-t, t] (default: the checkpoint's recommendation; 0 = off)")
    p.add_argument("--blend", type=int, default=1, help="slerped phrases between consecutive pieces in the song")
    p.add_argument("--checkpoint", default=None, help="default: checkpoints/musegan.safetensors")
    p.add_argument("--tempo", type=float, default=mg.DEFAULT_TEMPO, help="quarter notes per minute")
    p.add_argument("--no-audio", action="store_true", help="skip the .wav files")
    return p.parse_args(argv)


def generate(args) -> dict:
    model = mg.load_generator(args.checkpoint)
    meta = {"seed": args.seed, "truncation": mg.resolve_truncation(model, args.truncation), "blend": args.blend,
            "tempo": args.tempo}
    if args.latents:
        path = Path(args.latents)
        if not path.is_file():
            raise CheckpointError(f"no latents file at {path}")
        try:
            saved = json.loads(path.read_text())
        except ValueError as exc:
            raise CheckpointError(f"{path.name} is not valid JSON ({exc})") from None
        z = mg.latents_from_json(saved)  # stored after truncation: used as they are
        meta.update({k: saved[k] for k in ("seed", "truncation", "blend", "tempo") if k in saved})
    else:
        if args.pieces < 1:
            raise ComposerError("--pieces must be at least 1")
        z = mg.random_latents(model, args.pieces, seed=args.seed, truncation=meta["truncation"])

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n = z["chords"].shape[0]
    pieces = mg.generate(model, z)                                   # (n, tracks, bars, steps, pitches)
    song_z = mg.song_latents(z, steps_between=int(meta["blend"]))
    song = mg.generate(model, song_z)
    song = np.concatenate(list(song), axis=1)                        # windows joined along bars
    files = []
    audio_ok = not args.no_audio
    for name, codes in [(f"piece_{i + 1:02d}", pieces[i]) for i in range(n)] + [("song", song)]:
        pm = mg.to_pretty_midi(codes, tempo=float(meta["tempo"]))
        pm.write(str(out / f"{name}.mid"))
        files.append(out / f"{name}.mid")
        from composer.render.viz import save_pianoroll
        save_pianoroll(pm, out / f"{name}.png")
        files.append(out / f"{name}.png")
        if audio_ok:
            try:
                from composer.render.audio import render_to_wav
                render_to_wav(pm, out / f"{name}.wav")
                files.append(out / f"{name}.wav")
            except AudioError as exc:  # no FluidSynth or soundfont: MIDI and PNG still help
                print(f"warning: no audio ({exc})", file=sys.stderr)
                audio_ok = False
    (out / "latents.json").write_text(json.dumps(mg.latents_to_json(
        z, checkpoint=str(model.path.name), n_bars=model.config.n_bars, **meta)))
    files.append(out / "latents.json")
    return {"out": str(out), "pieces": n, "song_bars": int(song.shape[1]), "files": [str(f) for f in files]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    res = generate(args)
    print(f"wrote {res['pieces']} piece(s) and a {res['song_bars']}-bar song to {res['out']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
