"""``python -m composer transfer IN.mid --to GENRE --out OUT.mid|.wav``: genre transfer
with the CycleGAN (:mod:`composer.api.cyclegan`)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from composer.api.cyclegan import TransferError, available_genres, transfer_file


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m composer transfer",
                                description="Transfer a MIDI file to another genre with the CycleGAN.")
    p.add_argument("input", help="a .mid file in 4/4")
    p.add_argument("--to", required=True, help="target genre (shipped: %s)" % (", ".join(available_genres()) or "none"))
    p.add_argument("--out", required=True, help="the .mid or .wav to write")
    p.add_argument("--strength", type=float, default=1.0, help="0 = the input, 1 = the full transfer")
    p.add_argument("--keep-rhythm", action="store_true", help="keep the input's note starts and lengths")
    p.add_argument("--no-guard", action="store_true", help="binarise at 0.5 without the density guard")
    p.add_argument("--checkpoint", default=None, help="a CycleGAN checkpoint instead of the shipped one")
    p.add_argument("--program", type=int, default=None, help="one General MIDI program (0-127) for every output voice")
    p.add_argument("--programs", default=None,
                   help="a program per output voice, top first, comma-separated (e.g. 68,71,60,70; '-' keeps the "
                        "genre's for that voice)")
    p.add_argument("--if-already", choices=["transfer", "keep"], default="transfer",
                   help="keep: leave a piece the classifier already puts in the target genre as it is")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print what was written as one line of JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    if out.suffix.lower() not in (".mid", ".midi", ".wav"):
        raise TransferError(f"--out must end in .mid or .wav, got '{out.name}'")
    if not out.parent.is_dir():
        raise TransferError(f"the folder '{out.parent}' does not exist")
    if args.program is not None and not 0 <= args.program <= 127:
        raise TransferError(f"--program must be 0-127, got {args.program}")
    programs = None
    if args.programs:
        try:
            programs = [None if v.strip() in ("", "-") else int(v) for v in args.programs.split(",")]
        except ValueError:
            raise TransferError(f"--programs must be numbers 0-127 separated by commas, got '{args.programs}'") from None
    res = transfer_file(args.input, args.to, strength=args.strength, keep_rhythm=args.keep_rhythm,
                        checkpoint=args.checkpoint, program=args.program, guard=not args.no_guard,
                        programs=programs, skip_if_target=args.if_already == "keep")
    if out.suffix.lower() == ".wav":
        from composer.render import audio
        audio.render_to_wav(res.pm, out)
    else:
        res.pm.write(str(out))
    if args.json:
        print(json.dumps({"out": str(out), "to": args.to, "seconds": round(res.seconds, 3), "already": res.already,
                          "voices": res.voices, "summary": res.summary()}))
    else:
        print(f"wrote {out}: {res.summary()} ({res.seconds:.2f} s)")
    return 0


