"""``python -m composer abc ...``: write, check and convert folk tunes in ABC.

    abc sample --n 3 --seed 7 --meter 6/8 --key D --type jig [--json]
    abc check tune.abc [--json]
    abc midi tune.abc out.mid [--instrument fiddle --tempo 110]
    abc musicxml tune.abc out.musicxml
    abc data [--essen]            (build/print the cleaned corpus counts)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    p = Path(path)
    if not p.is_file():
        from composer.music.abc import AbcError
        raise AbcError(f"no such ABC file: {path}")
    return p.read_text(encoding="utf-8", errors="replace")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="composer abc", description="Folk tunes in ABC notation.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample", help="write tunes with the character LSTM")
    s.add_argument("--n", type=int, default=1, help="number of tunes")
    s.add_argument("--seed", type=int, default=0, help="tune i uses seed + i")
    s.add_argument("--meter", help="M: e.g. 6/8, 2/4, C|")
    s.add_argument("--key", help="K: e.g. G, Dm, Ador, 'E minor'")
    s.add_argument("--unit", help="L: e.g. 1/8")
    s.add_argument("--type", dest="tune_type", help="R: reel, jig, hornpipe, slip jig ...")
    s.add_argument("--title", help="T: the tune's title")
    s.add_argument("--prefix", help="opening of a tune to continue (headers and/or bars; '@file' reads a file)")
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--top-k", type=int, default=0)
    s.add_argument("--top-p", type=float, default=1.0)
    s.add_argument("--max-chars", type=int, default=3000)
    s.add_argument("--checkpoint", help="checkpoint path without suffix (default: the shipped one)")
    s.add_argument("--no-check", action="store_true", help="skip the validity checks")
    s.add_argument("--no-guard", action="store_true",
                   help="plain sampling (by default lines breaking bar lengths or syntax are redrawn)")
    s.add_argument("--json", action="store_true", help="a JSON list of {abc, valid, strict, ...}")
    c = sub.add_parser("check", help="check a tune: valid / strict, first error position")
    c.add_argument("file", help="ABC file ('-' for stdin)")
    c.add_argument("--all", action="store_true", help="check every tune of the file")
    c.add_argument("--json", action="store_true")
    m = sub.add_parser("midi", help="ABC -> MIDI (via music21)")
    m.add_argument("file")
    m.add_argument("out")
    m.add_argument("--instrument", default="fiddle")
    m.add_argument("--tempo", type=float, help="quarter notes per minute")
    x = sub.add_parser("musicxml", help="ABC -> MusicXML (via music21)")
    x.add_argument("file")
    x.add_argument("out")
    d = sub.add_parser("data", help="build the cleaned folk corpus cache and print its counts")
    d.add_argument("--source", default="folk", help="'folk' or an ABC file/folder")
    d.add_argument("--essen", action="store_true", help="include essenFolksong (non-commercial licence)")
    d.add_argument("--rebuild", action="store_true")
    return p


def run(args) -> int:
    from composer.api import charrnn as api
    from composer.music import abc
    if args.cmd == "sample":
        prefix = args.prefix
        if prefix and prefix.startswith("@"):
            prefix = _read(prefix[1:])
        model = api.load(args.checkpoint)
        tunes = api.sample_tunes(args.n, seed=args.seed, check=not args.no_check, meter=args.meter, key=args.key,
                                 unit=args.unit, tune_type=args.tune_type, title=args.title, prefix=prefix,
                                 temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                                 max_chars=args.max_chars, guard=not args.no_guard, model=model)
        if args.json:
            print(json.dumps(tunes, indent=1))
        else:
            for t in tunes:
                if "valid" in t:
                    print(f"% seed {t['seed']}: valid={t['valid']} strict={t['strict']}"
                          + (f" ({t['error']})" if t.get("error") else ""))
                print(t["abc"])
        return 0
    if args.cmd == "check":
        text = _read(args.file)
        tunes = abc.split_tunes(text) if args.all else [abc.first_tune(text)]
        results = [abc.check_abc(t).to_dict() for t in tunes] or [abc.check_abc(text).to_dict()]
        if args.json:
            print(json.dumps(results if args.all else results[0], indent=1))
        else:
            for r in results:
                where = f" at line {r['line']}, column {r['column']}" if r.get("line") else ""
                print(f"valid={r['valid']} strict={r['strict']}" + (f": {r['error']}{where}" if r["error"] else ""))
        return 0 if all(r["valid"] for r in results) else 2
    if args.cmd == "midi":
        if args.instrument not in api.INSTRUMENTS:
            raise abc.AbcError(f"unknown instrument {args.instrument!r}; choose from {', '.join(api.INSTRUMENTS)}")
        pm = abc.abc_to_pretty_midi(_read(args.file), program=api.INSTRUMENTS[args.instrument], tempo=args.tempo)
        pm.write(args.out)
        print(f"wrote {args.out} ({pm.get_end_time():.1f} s)")
        return 0
    if args.cmd == "musicxml":
        Path(args.out).write_text(abc.abc_to_musicxml(_read(args.file)))
        print(f"wrote {args.out}")
        return 0
    if args.cmd == "data":
        ds = abc.load_dataset(args.source, include_essen=args.essen, rebuild=args.rebuild)
        print(ds.describe())
        return 0
    return 2


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from composer.errors import ComposerError
    try:
        return run(args)
    except ComposerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
