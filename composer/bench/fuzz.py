"""Fuzz harness: hostile and unlucky inputs fed to the handlers the app and the CLI use.

    python -m composer.bench.fuzz                  # 1,000 MIDI, 1,000 ABC, 300 latents (make fuzz)
    python -m composer.bench.fuzz --midi 100 --abc 100 --latents 100 --json

Inputs are seeded mutations of real corpus files (music21's folk ABC, Bach chorales as MIDI, a
latents JSON of the shipped MuseGAN) plus hand-made edge cases, among them every input that
once hurt a server. Each input runs in a :mod:`composer.sandbox` worker (the server's own
limits: 1.5 GB) and is classed:

* ``ok``: the handler returned its result;
* ``clean``: it raised a :class:`~composer.errors.ComposerError` with a one-line message;
* ``uncaught``: any other exception (a bug: the user would see "Error");
* ``hang``: the case took more than :data:`HANG_S` seconds;
* ``memory``: it ran out of memory; ``death``: the worker process died.
"""
from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
import time
from collections import Counter

from composer.errors import ComposerError

#: A case slower than this is a hang (the issue's "no request holds a worker for more than 10 s").
HANG_S = 10.0
KINDS = ("midi", "abc", "latents")
CLASSES = ("ok", "clean", "uncaught", "hang", "memory", "death")

#: Hand-made ABC: the three texts that killed a live server through verovio, and the slow ones.
ABC_CASES = [
    "X:1\nM:4/4\nL:1/8\nK:G\nabcd efga|!\n", "X:4\nM:C\nK:\nc", "X:1\nM:C\nK:G\nBx0",
    "X:1\nM:2+2+2+2/8\nL:1/8\nK:G\nabcd efga|\n", "X:1\nM:2+2+2+2+2+2+2+2+2+2/8\nL:1/8\nK:G\nabcd|\n",
    "X:1\nM:4/4\nL:1/8\nK:G\nA2000 B|\n", "X:1\nM:4/4\nL:0/1\nK:G\nAB|\n", "X:1\nM:4/4\nQ:1/4=0\nL:1/8\nK:G\nAB|\n",
    "X:1\nM:4/4\nL:1/8\nK:G\n[M:0/0]AB|\n", "X:1\nM:4/4\nL:1/8\nK:G\nA\ud800B|\n", "", "X:1\n", "K:G\nabc",
    "X:1\nM:4/4\nL:1/8\nK:G\n" + "abcd " * 10_000 + "\n", "X:1\nM:4/4\nL:1/8\nK:G\n" + "|:a:|" * 2000 + "\n",
]


def _abc_seeds() -> list[str]:
    from composer.music.abc import collection_raw_tunes, first_tune
    tunes = []
    for raw in collection_raw_tunes(("miscFolk",)).values():
        tunes += [first_tune(t) for t in raw[:60]]
    return [t for t in tunes if "K:" in t] or ["X:1\nT:Scale\nM:4/4\nL:1/8\nK:D\n|DEFG ABcd|d8|]\n"]


_ABC_ALPHABET = "ABCDEFGabcdefgzx|:[]()!^_=,'/0123456789 \n-.~\"MLKQ+<>{}"
_ABC_EDGES = ["M:0/0", "M:9/0", "M:2+2+2/8", "L:0/1", "L:1/0", "Q:1/4=0", "K:", "K:H", "A2000", "z999999",
              "[M:0/0]", "(9", "[1", ":|]", "!!", "\"", "{", "[", "&", "\\", "%%score", "V:1", "w:"]


def mutate_abc(tune: str, rng: random.Random) -> str:
    s = tune
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(s) + 1)
        op = rng.random()
        if op < 0.3:
            s = s[:i] + "".join(rng.choice(_ABC_ALPHABET) for _ in range(rng.randint(1, 8))) + s[i:]
        elif op < 0.5:
            s = s[:i] + s[i + rng.randint(1, 20):]
        elif op < 0.7:
            s = s[:i] + rng.choice(_ABC_EDGES) + s[i:]
        elif op < 0.85:
            j = rng.randrange(len(s) + 1)
            a, b = min(i, j), max(i, j)
            s = s[:b] + s[a:b] * rng.randint(1, 5) + s[b:]
        else:
            s = s[:i]
    return s


def _midi_seeds() -> list[bytes]:
    import pretty_midi

    from composer.music.corpus import example_midi_paths
    seeds = [p.read_bytes() for p in list(example_midi_paths().values())[:3]]
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(90, 60 + i % 12, i * 0.25, i * 0.25 + 0.2) for i in range(32)]
    pm.instruments.append(inst)
    buf = io.BytesIO()
    pm.write(buf)
    return seeds + [buf.getvalue()]


def _edge_midis() -> list[bytes]:
    import mido
    out = [b"", b"MThd", b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0", b"RIFF" + b"\x00" * 40, b"\x00" * 1000]
    # a tempo of 1 microsecond per quarter; 40 drum and 300 melodic tracks; a note 14 minutes long
    for tempo, tracks, drum, length in ((1, 1, False, 480), (500000, 40, True, 480), (500000, 300, False, 480),
                                        (500000, 1, False, 480 * 2 * 60 * 14)):
        mid = mido.MidiFile(ticks_per_beat=480)
        for k in range(tracks):
            tr = mido.MidiTrack()
            if k == 0:
                tr.append(mido.MetaMessage("set_tempo", tempo=tempo))
            ch = 9 if drum else k % 16
            tr += [mido.Message("program_change", program=k % 128, channel=ch, time=0),
                   mido.Message("note_on", note=60 + k % 20, velocity=90, channel=ch, time=0),
                   mido.Message("note_off", note=60 + k % 20, velocity=0, channel=ch, time=length)]
            mid.tracks.append(tr)
        buf = io.BytesIO()
        mid.save(file=buf)
        out.append(buf.getvalue())
    return out


def mutate_midi(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.random()
        i = rng.randrange(len(b) + 1) if b else 0
        if op < 0.5 and b:
            b[min(i, len(b) - 1)] = rng.randrange(256)
        elif op < 0.7:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op < 0.85:
            del b[i:i + rng.randint(1, 64)]
        else:
            b = b[:i]
    return bytes(b)


def _latents_seed() -> str:
    from composer.api.compose import load_composer
    return load_composer().new_state(seed=3).to_json()


_LATENT_VALUES = ["abc", None, -1, -5, 0, 1e308, float("nan"), float("inf"), [], {}, [1, 2], True, 10**30, "1",
                  {"1000": [0.0]}, {"9,9": [0.0]}, {"a": 1}]


def mutate_latents(text: str, rng: random.Random) -> str:
    d = json.loads(text)
    keys = list(d)
    for _ in range(rng.randint(1, 3)):
        k = rng.choice(keys)
        op = rng.random()
        if op < 0.6:
            d[k] = rng.choice(_LATENT_VALUES)
        elif op < 0.75:
            d.pop(k, None)
        elif op < 0.9 and isinstance(d.get(k), list) and d[k]:
            d[k] = d[k][: rng.randrange(len(d[k]))]
        else:
            nested: list = []
            for _ in range(rng.randint(10, 60)):
                nested = [nested]
            d[k] = nested
    s = json.dumps(d, allow_nan=True)
    if rng.random() < 0.05:
        s = "[" * 100_000 + "]" * 100_000
    if rng.random() < 0.05:
        s = s[: rng.randrange(len(s))]
    return s


# --------------------------------------------------------------------------------------------
# The handlers, as the app and the CLI call them (run inside a sandbox worker)
# --------------------------------------------------------------------------------------------

def run_case(kind: str, data) -> tuple[str, str]:
    """Feed one input to ``kind``'s handler; (class, message). Runs in a sandbox worker."""
    try:
        if kind == "abc":
            from composer.api.charrnn import render_tune
            from composer.render.outputs import export_piece
            tune = render_tune(data, 40, 120)
            if tune.pm is not None:
                with tempfile.TemporaryDirectory() as tmp:
                    from pathlib import Path
                    export_piece(tune.pm, "tune", folder=Path(tmp), png=False, score=False)
        elif kind == "midi":
            from pathlib import Path

            from composer.music.midi import load_midi_bytes
            from composer.render.outputs import export_piece
            pm = load_midi_bytes(data, name="fuzz.mid")
            with tempfile.TemporaryDirectory() as tmp:
                export_piece(pm, "piece", folder=Path(tmp))
        elif kind == "latents":
            from composer.api.compose import ComposeState, load_composer
            comp = load_composer()
            st = ComposeState.from_json(data)
            comp._check(st)
            comp.midi(comp.reroll(st, 0, 0))
        else:
            raise ValueError(kind)
        return "ok", ""
    except ComposerError as exc:
        msg = str(exc)
        return ("clean" if msg and "\n" not in msg else "uncaught"), msg[:200]
    except MemoryError:
        return "memory", "MemoryError"
    except Exception as exc:  # noqa: BLE001 - the point: anything else is a bug
        return "uncaught", f"{type(exc).__name__}: {str(exc)[:160]}"


def cases(kind: str, n: int, seed: int = 0) -> list:
    """``n`` inputs of ``kind``: the hand-made edge cases first, then seeded mutations."""
    rng = random.Random(f"{kind}-{seed}")
    if kind == "abc":
        seeds, edges, mutate = _abc_seeds(), list(ABC_CASES), mutate_abc
    elif kind == "midi":
        seeds, edges, mutate = _midi_seeds(), _edge_midis(), mutate_midi
    else:
        seeds, edges, mutate = [_latents_seed()], ["", "{}", "[]", "null", "{" * 200_000], mutate_latents
    out = edges[:n]
    while len(out) < n:
        out.append(mutate(rng.choice(seeds), rng))
    return out


def run(counts: dict[str, int], seed: int = 0, progress: bool = True, hang_s: float = HANG_S) -> dict:
    """Run the harness; returns ``{kind: {class: count}, "failures": [...]}``.

    A case slower than ``hang_s`` seconds is a hang; one that runs 3 x ``hang_s`` is killed."""
    from composer import sandbox
    pool = sandbox.Sandbox(workers=1)
    table, failures = {}, []
    try:
        pool.warm(1)
        for kind, n in counts.items():
            tally = Counter({c: 0 for c in CLASSES})
            inputs = cases(kind, n, seed)
            # one untimed good input first: the worker (and the workers it starts itself) are
            # warm, as the app's are after start-up, so the first case's time is its own
            warm = {"abc": _abc_seeds, "midi": _midi_seeds, "latents": lambda: [_latents_seed()]}[kind]()[0]
            try:
                pool.run("composer.bench.fuzz:run_case", kind, warm, timeout=120.0, what="warm-up")
            except ComposerError:
                pass
            for i, data in enumerate(inputs):
                t = time.monotonic()
                try:
                    cls, msg = pool.run("composer.bench.fuzz:run_case", kind, data, timeout=3 * hang_s,
                                        what="case")
                except sandbox.SandboxTimeout:
                    cls, msg = "hang", "killed"
                except sandbox.SandboxCrash as exc:
                    cls, msg = "death", str(exc)
                except ComposerError as exc:
                    cls, msg = ("memory" if "memory" in str(exc) else "uncaught"), str(exc)
                if cls in ("ok", "clean") and time.monotonic() - t > hang_s:
                    cls, msg = "hang", f"{time.monotonic() - t:.1f} s"
                tally[cls] += 1
                if cls not in ("ok", "clean"):
                    failures.append({"kind": kind, "index": i, "class": cls, "message": msg,
                                     "input": (data if isinstance(data, str) else data.hex())[:300]})
                if progress:
                    print(f"\r{kind}: {i + 1}/{n} {dict(tally)}", end="", file=sys.stderr, flush=True)
            if progress:
                print(file=sys.stderr)
            table[kind] = dict(tally)
    finally:
        pool.close()
    return {"table": table, "failures": failures}


def format_table(result: dict) -> str:
    rows = [f"{'input':8s} " + " ".join(f"{c:>9s}" for c in CLASSES)]
    for kind, tally in result["table"].items():
        rows.append(f"{kind:8s} " + " ".join(f"{tally.get(c, 0):9d}" for c in CLASSES))
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m composer.bench.fuzz", description=__doc__.split("\n")[0])
    p.add_argument("--midi", type=int, default=1000)
    p.add_argument("--abc", type=int, default=1000)
    p.add_argument("--latents", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    result = run({"midi": args.midi, "abc": args.abc, "latents": args.latents}, seed=args.seed)
    print(json.dumps(result) if args.json else format_table(result))
    bad = sum(v for t in result["table"].values() for c, v in t.items() if c not in ("ok", "clean"))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
