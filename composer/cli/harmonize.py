"""``python -m composer harmonize IN.mid|IN.abc --out OUT.mid|.wav [--json]``

Harmonizes a melody with MuseGAN: finds the latents whose soprano sings it (the generator is
frozen), and writes the four voices, the soprano being the melody exactly. ``--notes "E4 D4/0.5
..."`` replaces the file with notes typed as names. ``--riff`` reads IN.mid as a four-voice
piece instead ("drop your riff") and reports how much of it its closest latents reproduce.
``--latents OUT.json`` also writes the latents JSON the Compose tab opens.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from composer.cli.options import apply_threads, music_input_and_out


def build_parser():
    p = argparse.ArgumentParser(prog="python -m composer harmonize", description=__doc__.split("\n")[0])
    p.add_argument("input", nargs="?", help="a .mid/.midi (its highest line) or .abc file (its first tune)")
    p.add_argument("--notes", help='the melody typed as note names instead, e.g. "E4 D4/0.5 C4/0.5 D4 E4 E4 E4/2"')
    p.add_argument("--out", required=True, help="OUT.mid or OUT.wav")
    p.add_argument("--latents", help="also write the piece's latents JSON here (opens in the Compose tab)")
    p.add_argument("--riff", action="store_true",
                   help="IN.mid is a four-voice piece: find its closest latents and report note F1 per voice")
    p.add_argument("--restarts", type=int, default=None, help="random starts optimised together (default 3)")
    p.add_argument("--steps", type=int, default=None, help="Adam steps (default 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tempo", type=float, default=None, help="quarter notes per minute (default: the input's)")
    p.add_argument("--checkpoint", default=None, help="a MuseGAN checkpoint (default: the shipped one)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from composer.api import harmonize as H
    from composer.api.compose import cached_composer
    from composer.errors import ComposerError
    apply_threads(args.threads)
    out = music_input_and_out(args, "a .mid/.abc file")
    settings = H.Settings(seed=args.seed)
    if args.restarts is not None:
        settings.restarts = max(1, args.restarts)
    if args.steps is not None:
        settings.steps = max(0, args.steps)
    comp = cached_composer(args.checkpoint)
    if args.riff:
        if not args.input:
            raise ComposerError("--riff needs a four-voice .mid file")
        from composer.music.midi import load_midi
        res = H.invert_piece(H.piece_codes(load_midi(args.input)), comp, settings, tempo=args.tempo or 90.0)
        pm, info = comp.midi(res.state), res.summary()
    else:
        mel = H.melody_from_file(args.input) if args.input else H.melody_from_text(args.notes, args.tempo or 90.0)
        res = H.harmonize(mel, comp, settings, tempo=args.tempo)
        pm, info = res.midi(), res.summary()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".wav":
        from composer.render import audio
        audio.render_to_wav(pm, out)
    else:
        pm.write(str(out))
    info["out"] = str(out)
    if args.latents:
        Path(args.latents).write_text(res.state.to_json())
        info["latents"] = args.latents
    if args.json:
        print(json.dumps(info))
    elif args.riff:
        f1 = ", ".join(f"{k} {v:.2f}" for k, v in info["note_f1"].items())
        print(f"{out}: the closest latents reproduce the piece's notes with F1 {f1} ({info['seconds']} s)")
    else:
        moved = f", moved {info['transposed_semitones']:+d} semitones into the soprano's range and back" \
            if info["transposed_semitones"] else ""
        print(f"{out}: {info['bars']} bars harmonized; the generator's own soprano sings "
              f"{100 * info['soprano_match_model']:.1f} % of the melody's sixteenths (the melody is then "
              f"written into the soprano){moved}; {info['seconds']} s")
    return 0


if __name__ == "__main__":
    from composer.cli.main import main as cli_main
    sys.exit(cli_main(["harmonize", *sys.argv[1:]]))
