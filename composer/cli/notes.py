"""``python -m composer continue IN.mid --bars N --model lstm|wavenet --out OUT.mid|.wav``

Continues the melody (or chords) of a MIDI file by N bars and writes prompt + continuation
as MIDI or WAV (by the extension of ``--out``). ``--notes "C4 D4 E4/2"`` replaces the file
with notes typed as names.
"""
from __future__ import annotations

import argparse
import json
import sys

from composer.cli.options import apply_threads, music_input_and_out


def build_parser():
    p = argparse.ArgumentParser(prog="python -m composer continue", description=__doc__.split("\n")[0])
    p.add_argument("input", nargs="?", help="a .mid file (the prompt)")
    p.add_argument("--notes", help='prompt typed as note names instead, e.g. "E4 D4/0.5 C4/0.5 D4 E4 E4 E4/2"')
    p.add_argument("--bars", type=int, default=4, help="bars to add (1-32)")
    p.add_argument("--model", default="lstm", help="lstm, wavenet or a path to a notes checkpoint")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0, help="0: off")
    p.add_argument("--top-p", type=float, default=0.95, help="1: off")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tempo", type=float, default=100.0, help="tempo of a --notes prompt")
    p.add_argument("--out", required=True, help="OUT.mid or OUT.wav")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: batch-1 sampling is fastest on one; 0: torch's default)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from composer.api import notes as notes_api
    from composer.music.midi import load_midi
    apply_threads(args.threads)
    out = music_input_and_out(args, "a MIDI file")
    pm = load_midi(args.input) if args.input else notes_api.prompt_from_text(args.notes, tempo=args.tempo)
    result, seam, info = notes_api.continue_midi(pm, bars=args.bars, model=args.model, temperature=args.temperature,
                                                 top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".wav":
        from composer.render import audio
        audio.render_to_wav(result, out)
    else:
        result.write(str(out))
    info = {k: v for k, v in info.items() if k != "tokens"}
    info.update(out=str(out), seconds=round(result.get_end_time(), 2))
    if args.json:
        print(json.dumps(info))
    else:
        print(f"{out}: {info['bars']} bars added by {info['model']} ({info['new_notes']} notes) after "
              f"{seam:.2f} s of prompt ({info['key'] or 'no key'}, {info['meter']}); {info['seconds']} s in all")
    return 0


if __name__ == "__main__":
    from composer.cli.main import main as cli_main
    sys.exit(cli_main(["continue", *sys.argv[1:]]))
