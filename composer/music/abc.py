"""ABC notation: the folk-tune corpus, cleaning, validity checks and conversions.

Everything about text (splitting files into tunes, cleaning, de-duplication, the
train/validation split, the bar-length check) is plain Python; music21 is imported
lazily, only to parse a tune (validity, MIDI, MusicXML) or to locate its bundled corpus.

The cleaned corpus is built once and cached as text under
:func:`composer.music.corpus.cache_dir` (``abc_folk_v1/{train,val}.abc``); UI requests
read the cache and never parse the corpus.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import re
import unicodedata
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

# meter and unit lengths: one pair of functions, shared with the strict check
from composer.music.abc_bars import meter_length  # noqa: F401  (re-exported)
from composer.music.abc_bars import unit_length as _unit_length
from composer.errors import ComposerError

#: music21 corpus folders used for the shipped model (public domain collections).
FOLK_COLLECTIONS = ("ryansMammoth", "oneills1850", "airdsAirs", "miscFolk")
#: Licensed for non-commercial use only: opt-in, never in the shipped model.
ESSEN_COLLECTION = "essenFolksong"
#: Header fields kept, in the canonical order every cleaned tune uses.
HEADER_ORDER = ("X", "T", "R", "M", "L", "K")
#: Fields kept inside a tune body (meter, unit and key changes).
BODY_FIELDS = ("M", "L", "K")
#: Tune types a user can ask for (the R: field, lower case as in the corpus).
TUNE_TYPES = ("reel", "jig", "hornpipe", "strathspey", "slip jig", "polka", "waltz", "march", "air",
              "highland fling", "clog", "set dance", "slide", "mazurka", "barndance", "schottische")
#: Tunes longer than this (characters, cleaned) are dropped: long medleys, not tunes.
MAX_TUNE_CHARS = 2500
#: v2: validation tunes that are near-duplicates of a training tune are removed (same training tunes as v1).
CACHE_VERSION = "abc_folk_v2"


class AbcError(ComposerError):
    """ABC text that cannot be used (no tunes, no header, unparsable)."""


# --------------------------------------------------------------------------------------
# Splitting and cleaning
# --------------------------------------------------------------------------------------

_FIELD_RE = re.compile(r"^([A-Za-z]):\s*(.*?)\s*$")
_QUOTED_RE = re.compile(r'"[^"\n]*"')
_CHORD_SYMBOL_RE = re.compile(
    r'^"[A-G][#b]?(m|min|maj|M|dim|aug|sus|add|\+|o)?\d*(\(?[#b]?\d+\)?)*(/[A-Ga-g][#b]?)?"$')
_INLINE_FIELD_RE = re.compile(r"\[([A-Za-z]):([^\]\n]*)\]")
_SPACES_RE = re.compile(r"[ \t]+")


def split_tunes(text: str) -> list[str]:
    """Split an ABC file into raw tunes: each starts at an ``X:`` line.

    A tune ends at the next ``X:`` line or at the first blank line after its body
    started (the ABC standard's end of tune); text outside tunes (file headers,
    free text) is dropped.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    tunes, current, in_body = [], None, False
    for line in text.split("\n"):
        if re.match(r"^X:", line):
            if current:
                tunes.append("\n".join(current))
            current, in_body = [line], False
            continue
        if current is None:
            continue
        if not line.strip():
            if in_body:
                tunes.append("\n".join(current))
                current, in_body = None, False
            continue
        current.append(line)
        if re.match(r"^K:", line):
            in_body = True
    if current:
        tunes.append("\n".join(current))
    return tunes


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def default_unit(meter: str) -> str:
    """The ABC standard's default note length for a meter (1/16 below 3/4, else 1/8)."""
    m = meter.strip()
    if m in ("C", "C|"):
        return "1/8"
    try:
        num, den = m.split("/")
        return "1/16" if Fraction(int(num), int(den)) < Fraction(3, 4) else "1/8"
    except (ValueError, ZeroDivisionError):
        return "1/8"


_MODES = {"maj": "", "major": "", "ion": "", "ionian": "", "m": "m", "min": "m", "minor": "m", "aeo": "m",
          "aeolian": "m", "mix": "mix", "mixolydian": "mix", "dor": "dor", "dorian": "dor", "lyd": "lyd",
          "lydian": "lyd", "phr": "phr", "phrygian": "phr", "loc": "loc", "locrian": "loc"}
_KEY_RE = re.compile(r"^\s*([A-Ga-g])\s*([#b]?)\s*([A-Za-z]*)\s*$")
_TYPES = {"slipjig": "slip jig", "slip-jig": "slip jig", "double jig": "jig", "fling": "highland fling",
          "hornpipes": "hornpipe", "reels": "reel", "jigs": "jig"}


def normalize_key(key: str) -> str:
    """Short key names: 'E Minor' -> 'Em', 'A Mixolydian' -> 'Amix', 'D Major' -> 'D'.

    Anything not of the form root [accidental] [mode] is returned unchanged.
    """
    m = _KEY_RE.match(key)
    if not m or m.group(3).lower() not in _MODES and m.group(3):
        return key.strip()
    return m.group(1).upper() + m.group(2) + _MODES.get(m.group(3).lower(), "")


def normalize_type(rhythm: str) -> str:
    """Tune type as in :data:`TUNE_TYPES` ('slipjig' -> 'slip jig', 'double jig' -> 'jig')."""
    r = re.sub(r"\s+", " ", rhythm.strip().lower())
    return _TYPES.get(r, r)


def _clean_body_line(line: str) -> str:
    line = line.split("%", 1)[0]
    # quoted strings: keep chord symbols, drop fingerings, annotations ("^SEGUE") and text
    line = _QUOTED_RE.sub(lambda m: m.group(0) if _CHORD_SYMBOL_RE.match(m.group(0)) else "", line)
    line = _INLINE_FIELD_RE.sub(lambda m: f"[{m.group(1)}:{m.group(2).strip()}]"
                                if m.group(1) in BODY_FIELDS else "", line)
    line = line.replace("`", "")  # beam-break spacers, no music
    line = _SPACES_RE.sub(" ", line).strip()
    if line.endswith("\\"):
        line = line[:-1].rstrip()
    return line


def clean_tune(raw: str) -> str | None:
    """Clean one raw tune; None when it is not usable as a single-voice tune.

    Keeps the headers X, T (the first), R, M, L, K in that order (X renumbered to 1,
    L filled in from the meter when absent), drops every other field (source, notes,
    transcriber, lyrics, parts), comments, fingering numbers and annotations in quotes
    (chord symbols stay), line continuations and redundant spaces.
    """
    lines = raw.replace("\t", " ").split("\n")
    head: dict[str, str] = {}
    body: list[str] = []
    in_body = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("%"):
            continue
        m = _FIELD_RE.match(stripped)
        if not in_body:
            if not m:
                continue  # stray text in the header
            key, value = m.group(1), m.group(2).split("%", 1)[0].strip()
            if key == "V":
                return None  # multi-voice: not for a single-line melody model
            if key in HEADER_ORDER and key not in head:
                head[key] = value
            if key == "K":
                in_body = True
            continue
        if m and not stripped.startswith("|"):
            key, value = m.group(1), m.group(2).split("%", 1)[0].strip()
            if key == "V":
                return None
            if key in BODY_FIELDS:
                body.append(f"{key}:{normalize_key(value) if key == 'K' else value}")
            continue
        cleaned = _clean_body_line(line)
        if cleaned:
            body.append(cleaned)
    if "K" not in head or "M" not in head or not body:
        return None
    head["X"] = "1"
    if not head.get("L"):
        head["L"] = default_unit(head["M"])
    head["T"] = _ascii(head.get("T", "")).strip() or "Untitled"
    if "R" in head:
        head["R"] = normalize_type(_ascii(head["R"]))
        if not head["R"]:
            del head["R"]
    head["K"] = normalize_key(head["K"]) or "C"
    text_lines = [f"{k}:{head[k]}" for k in HEADER_ORDER if k in head] + body
    tune = "\n".join(text_lines) + "\n"
    if not tune.isascii() or len(tune) > MAX_TUNE_CHARS:
        return None
    if not re.search(r"[A-Ga-g]", "".join(body)):
        return None
    return tune


def music_key(tune: str) -> str:
    """De-duplication key: the body with all white space removed."""
    body = tune.split("\nK:", 1)[-1].split("\n", 1)[-1]
    return re.sub(r"\s+", "", body)


def title_key(tune: str) -> str:
    """Grouping key for the split: the title, lower case, letters only, without 'the'."""
    m = re.search(r"^T:(.*)$", tune, flags=re.M)
    title = (m.group(1) if m else "").lower()
    words = [w for w in re.findall(r"[a-z]+", title) if w not in ("the", "a", "an")]
    return " ".join(words) or music_key(tune)[:40]


def clean_tunes(raw_tunes, dedupe: bool = True) -> list[str]:
    """Clean raw tunes, drop unusable ones and (by default) exact duplicates of the music."""
    out, seen = [], set()
    for raw in raw_tunes:
        tune = clean_tune(raw)
        if tune is None:
            continue
        if dedupe:
            key = music_key(tune)
            if key in seen:
                continue
            seen.add(key)
        out.append(tune)
    return out


def split_train_val(tunes: list[str], val_fraction: float = 0.1) -> tuple[list[str], list[str]]:
    """Tune-level split, stable across runs: tunes sharing a title go to the same side."""
    train, val = [], []
    for tune in tunes:
        h = int(hashlib.sha1(title_key(tune).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (val if h < val_fraction else train).append(tune)
    return train, val


def drop_near_duplicates(train: list[str], val: list[str]) -> tuple[list[str], list[dict]]:
    """``val`` without its near-duplicates of training tunes (16-character n-grams of the
    body more than 50 % in one training tune, see
    :func:`composer.music.abc_overlap.near_duplicates`), and what was removed."""
    from composer.music.abc_overlap import near_duplicates
    dups = near_duplicates(train, val)
    gone = {vi for vi, _, _ in dups}

    def title(t):
        m = re.search(r"^T:(.*)$", t, flags=re.M)
        return m.group(1).strip() if m else "?"
    removed = [{"val": title(val[vi]), "train": title(train[ti]), "overlap": ov} for vi, ti, ov in dups]
    return [t for i, t in enumerate(val) if i not in gone], removed


def join_tunes(tunes: list[str]) -> str:
    """The training text: tunes separated by one blank line (each tune ends in a newline)."""
    return "".join(t.rstrip("\n") + "\n\n" for t in tunes)


def tunes_from_text(text: str) -> list[str]:
    """Split a joined text back into tunes (inverse of :func:`join_tunes`)."""
    return [t.strip("\n") + "\n" for t in text.split("\n\n") if t.strip()]


# --------------------------------------------------------------------------------------
# Corpora
# --------------------------------------------------------------------------------------

def music21_corpus_dir() -> Path:
    """The folder of music21's bundled corpus, found without importing music21."""
    spec = importlib.util.find_spec("music21")
    if spec is None or not spec.submodule_search_locations:
        raise AbcError("music21 is not installed: its bundled ABC corpus is the 'folk' data set")
    return Path(list(spec.submodule_search_locations)[0]) / "corpus"


def raw_tunes_from_path(path: str | Path) -> list[str]:
    """Raw tunes of one ``.abc`` file or of every ``.abc`` file under a folder (sorted)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".abc")
        if not files:
            raise AbcError(f"no .abc files under {path}")
    elif path.is_file():
        files = [path]
    else:
        raise AbcError(f"no such ABC file or folder: {path}")
    tunes = []
    for f in files:
        tunes.extend(split_tunes(f.read_text(encoding="utf-8", errors="replace")))
    return tunes


def collection_raw_tunes(collections=FOLK_COLLECTIONS, include_essen: bool = False) -> dict[str, list[str]]:
    """Raw tunes of music21 corpus collections, by collection name."""
    root = music21_corpus_dir()
    names = list(collections) + ([ESSEN_COLLECTION] if include_essen else [])
    return {name: raw_tunes_from_path(root / name) for name in names}


@dataclass
class AbcDataset:
    """A cleaned, de-duplicated, split tune collection and how it was made."""
    train: list[str]
    val: list[str]
    counts: dict = field(default_factory=dict)
    source: str = "folk"

    def describe(self) -> str:
        c = self.counts
        parts = [f"{k}: {v}" for k, v in c.get("raw_by_collection", {}).items()]
        return (f"ABC data '{self.source}': {c.get('raw', 0)} raw tunes ({', '.join(parts)}); "
                f"{c.get('clean', 0)} clean, {c.get('unique', 0)} unique; "
                f"train {len(self.train)} tunes / {sum(map(len, self.train)):,} chars, "
                f"val {len(self.val)} tunes / {sum(map(len, self.val)):,} chars")


def _build(raw_by_source: dict[str, list[str]], source: str, val_fraction: float) -> AbcDataset:
    raw = [t for ts in raw_by_source.values() for t in ts]
    cleaned = clean_tunes(raw, dedupe=False)
    unique = clean_tunes(raw, dedupe=True)
    train, val = split_train_val(unique, val_fraction)
    val, removed = drop_near_duplicates(train, val)
    counts = {"raw": len(raw), "raw_by_collection": {k: len(v) for k, v in raw_by_source.items()},
              "clean": len(cleaned), "unique": len(unique), "train_tunes": len(train), "val_tunes": len(val),
              "train_chars": sum(map(len, train)) + len(train), "val_chars": sum(map(len, val)) + len(val),
              "val_fraction": val_fraction, "val_near_duplicates_removed": len(removed),
              "near_duplicate_rule": "16-character n-grams of the body more than 50 % in one training tune",
              "near_duplicates": removed}
    return AbcDataset(train=train, val=val, counts=counts, source=source)


def load_dataset(source: str = "folk", include_essen: bool = False, val_fraction: float = 0.1,
                 rebuild: bool = False) -> AbcDataset:
    """The tune data set: ``"folk"`` (music21's corpus, cached) or a path to ABC file(s).

    ``include_essen`` adds the Essen folk songs (non-commercial licence: opt-in only).
    """
    if source != "folk":
        raw = {str(source): raw_tunes_from_path(source)}
        ds = _build(raw, str(source), val_fraction)
        if not ds.train:
            raise AbcError(f"no usable tunes (X:, M:, K: and notes) in {source}")
        return ds
    from composer.music.corpus import cache_dir
    name = CACHE_VERSION + ("_essen" if include_essen else "") + (f"_v{val_fraction:g}" if val_fraction != 0.1 else "")
    folder = cache_dir() / name
    if not rebuild and (folder / "meta.json").exists():
        meta = json.loads((folder / "meta.json").read_text())
        return AbcDataset(train=tunes_from_text((folder / "train.abc").read_text()),
                          val=tunes_from_text((folder / "val.abc").read_text()),
                          counts=meta["counts"], source="folk")
    ds = _build(collection_raw_tunes(include_essen=include_essen), "folk", val_fraction)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.abc").write_text(join_tunes(ds.train))
    (folder / "val.abc").write_text(join_tunes(ds.val))
    (folder / "meta.json").write_text(json.dumps({"counts": ds.counts}, indent=1))
    return ds


# --------------------------------------------------------------------------------------
# Checking a tune
# --------------------------------------------------------------------------------------

@dataclass
class AbcCheck:
    """Result of :func:`check_abc`.

    ``valid``: headers X, M and K present and music21 parses a stream holding notes.
    ``strict``: valid, the L: header present too, no token music21 cannot read, and
    every bar has the meter's length (read from the text by
    :func:`composer.music.abc_bars.bar_problem`) except the pickup, the last bar, two
    neighbouring short bars that add up to one bar (a bar split by a repeat or an
    ending), and a short bar at a section end whose length plus the pickup (the tune's or
    the section's) makes one bar; an overfull bar always fails. Real held-out tunes pass
    at ~0.90 (``eval charrnn`` reports their rate beside every sample figure).
    ``error`` describes the first problem; ``line``/``column`` (1-based) point at it.
    """
    valid: bool
    strict: bool
    error: str | None = None
    line: int | None = None
    column: int | None = None
    n_bars: int = 0
    n_notes: int = 0
    score: object = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {"valid": self.valid, "strict": self.strict, "error": self.error, "line": self.line,
                "column": self.column, "n_bars": self.n_bars, "n_notes": self.n_notes}


def first_tune(text: str) -> str:
    """The first tune of a text (from its first ``X:`` line to the blank line ending it)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    tunes = split_tunes(text)
    return tunes[0].strip("\n") + "\n" if tunes else text


def _header_problem(lines: list[str]) -> tuple[str, int] | None:
    seen, k_line = {}, None
    for i, line in enumerate(lines):
        m = _FIELD_RE.match(line.strip())
        if not m:
            if k_line is None and line.strip():
                return f"line {i + 1} is neither a header field nor music before K:", i + 1
            continue
        seen.setdefault(m.group(1), i + 1)
        if m.group(1) == "K":
            k_line = i + 1
            break
    if "X" not in seen:
        return "missing X: (reference number) header", 1
    if lines and not lines[0].startswith("X:"):
        return "the tune must start with its X: header", 1
    if "M" not in seen:
        return "missing M: (meter) header before K:", (k_line or len(lines))
    if k_line is None:
        return "missing K: (key) header", len(lines)
    return None


_ADDITIVE_METER_RE = re.compile(r"(^M:|\[M:)\s*(\d+(?:\s*\+\s*\d+)+)\s*/\s*(\d+)")


def _sum_meter(m: re.Match) -> str:
    return f"{m.group(1)}{sum(int(x) for x in m.group(2).split('+'))}/{m.group(3)}"


def _music21_friendly(tune: str) -> str:
    """Work around music21 10.5 ABC bugs without changing the music: the double repeat
    ``::`` (music21 drops the rest of the tune) becomes ``:||:``, the fermata
    shorthand ``H`` (music21 drops the note it decorates) becomes ``!fermata!``, and an
    additive meter ``M:2+2+3/8`` (music21 spends minutes and gigabytes on it) becomes the
    meter of the same bar length, ``M:7/8``."""
    lines = tune.split("\n")
    in_body = False
    for i, line in enumerate(lines):
        lines[i] = _ADDITIVE_METER_RE.sub(_sum_meter, line)
        if not in_body:
            in_body = line.startswith("K:")
            continue
        line = lines[i]
        if _FIELD_RE.match(line.strip()):
            continue
        parts = line.split('"')
        for j in range(0, len(parts), 2):  # outside quoted strings
            p = re.sub(r"(?<![:|])::(?![:|])", ":||:", parts[j])
            parts[j] = re.sub(r"H(?=[~.\^_=]*[A-Ga-gz])", "!fermata!", p)
        lines[i] = '"'.join(parts)
    return "\n".join(lines)


_UNKNOWN_NOTE = "Could not get pitch information"


def _parse_music21(tune: str, messages: list | None = None):
    """Parse one tune with music21; its warnings (unknown tokens read as C ...) are
    collected into ``messages`` instead of being printed."""
    import contextlib
    from music21 import converter, stream
    tune = _music21_friendly(tune)
    err = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stderr(err):
        warnings.simplefilter("ignore")
        s = converter.parse(tune, format="abc", forceSource=True)
    if messages is not None:
        messages.extend(line for line in err.getvalue().split("\n") if line.strip())
    if isinstance(s, stream.Opus):
        scores = list(s.scores)
        s = scores[0] if scores else s
    return s


def _bar_segments(lines: list[str], body_start: int) -> list[tuple[int, int]]:
    """(line, column) of the start of every bar in the body that holds a note or rest."""
    segments = []
    for li in range(body_start, len(lines)):
        line = lines[li]
        if _FIELD_RE.match(line.strip()):
            continue
        clean = re.sub(r'"[^"]*"', lambda m: " " * len(m.group(0)), line.split("%", 1)[0])
        clean = re.sub(r"![^!]*!|\{[^}]*\}|\[[A-Za-z]:[^\]]*\]",
                       lambda m: " " * len(m.group(0)), clean)
        start = 0
        for m in re.finditer(r"\[\||\|\]|::|:*\|+:*|\|\d|\[\d", clean):
            seg = clean[start:m.start()]
            if re.search(r"[A-Ga-gzx]", seg):
                segments.append((li + 1, start + 1 + (len(seg) - len(seg.lstrip()))))
            start = m.end()
        seg = clean[start:]
        if re.search(r"[A-Ga-gzx]", seg):
            segments.append((li + 1, start + 1 + (len(seg) - len(seg.lstrip()))))
    return segments


def declared_bar_lengths(tune: str) -> set[float] | None:
    """Bar lengths (in quarter notes) of the meters the text declares (M: lines and inline
    [M:...]); None when one of them is free meter (``M:none``) or unreadable."""
    out = set()
    for value in re.findall(r"^M:(.*)$", tune, flags=re.M) + re.findall(r"\[M:([^\]]*)\]", tune):
        v = value.strip().replace(" ", "")
        if v in ("C", "C|"):
            out.add(4.0)
            continue
        m = re.match(r"^(\d+(?:\+\d+)*)/(\d+)$", v)
        if not m:
            return None
        out.add(4.0 * sum(int(x) for x in m.group(1).split("+")) / int(m.group(2)))
    return out


def _header_parse_error(lines: list[str], body_start: int) -> tuple[int, int] | None:
    """(line, column) of a header field music21 cannot read: each field of the header is
    tried alone in a minimal tune."""
    for i, line in enumerate(lines[:body_start]):
        m = _FIELD_RE.match(line.strip())
        if not m or m.group(1) in ("X", "T"):
            continue
        letter = m.group(1)
        base = {"M": "4/4", "L": "1/8", "K": "C"}
        extra = ""
        if letter in base:
            base[letter] = m.group(2)
        else:
            extra = line.strip() + "\n"
        probe = f"X:1\nM:{base['M']}\nL:{base['L']}\n{extra}K:{base['K']}\nC|\n"
        try:
            _parse_music21(probe)
        except Exception:
            return i + 1, line.find(":") + 2
    return None


def _locate_parse_error(lines: list[str], body_start: int) -> int | None:
    """The first body line after which music21 fails to parse (bisection over prefixes)."""
    lo, hi = body_start, len(lines)  # prefix lines[:lo] parses, lines[:hi] fails
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            _parse_music21("\n".join(lines[:mid]) + "\n")
            lo = mid
        except Exception:
            hi = mid
    return hi


#: Cheap limits checked before music21 sees a tune (it can spend minutes and gigabytes on
#: texts far past them). Real tunes: under 2,500 characters, lines under 300, notes under 32 units.
MAX_CHECK_CHARS = 20_000
MAX_LINE_CHARS = 2_000
MAX_NOTE_UNITS = 64
_NOTE_LENGTH_RE = re.compile(r"(?<![A-Za-z])[A-Ga-gzxZ][,']*(\d+)")
_DECORATION_RE = re.compile(r"![^!\n]*!|\+[^+\n]*\+")


def _cheap_problem(lines: list[str]) -> tuple[str, int, int] | None:
    """A problem found without music21 (sizes, zero meters, units and tempi, huge note
    lengths), as (message, line, column), or None."""
    if sum(len(l) + 1 for l in lines) > MAX_CHECK_CHARS:
        return f"the tune is over {MAX_CHECK_CHARS:,} characters", 1, 1
    in_body = False
    for i, line in enumerate(lines):
        if len(line) > MAX_LINE_CHARS:
            return f"line {i + 1} is over {MAX_LINE_CHARS:,} characters", i + 1, MAX_LINE_CHARS
        if any("\ud800" <= c <= "\udfff" for c in line):
            return "the text holds an invalid character (a lone surrogate)", i + 1, 1
        fields = [(m.group(1), m.group(2), m.start(2)) for m in _INLINE_FIELD_RE.finditer(line)]
        m = _FIELD_RE.match(line)
        if m:
            fields.append((m.group(1), m.group(2), m.start(2)))
        for letter, value, col in fields:
            value = value.strip()
            if letter == "M" and value not in ("C", "C|", "none", "") and meter_length(value) is None:
                return f"M:{value} is not a meter (write e.g. 6/8)", i + 1, col + 1
            if letter == "L" and _unit_length(value) in (None, 0):
                return f"L:{value} is not a unit note length (write e.g. 1/8)", i + 1, col + 1
            bpm = re.search(r"(\d+(?:\.\d*)?)\s*(?:\"[^\"]*\"\s*)?$", value.split("=")[-1])
            if letter == "Q" and bpm and float(bpm.group(1)) == 0:
                return f"Q:{value} is not a tempo above 0", i + 1, col + 1
            if letter == "K":
                in_body = True
        if in_body and not m:
            bare = _DECORATION_RE.sub(lambda x: " " * len(x.group(0)), _QUOTED_RE.sub(
                lambda x: " " * len(x.group(0)), _INLINE_FIELD_RE.sub(lambda x: " " * len(x.group(0)), line)))
            for n in _NOTE_LENGTH_RE.finditer(bare):
                if int(n.group(1)) > MAX_NOTE_UNITS:
                    return (f"a note {n.group(1)} units long (at most {MAX_NOTE_UNITS})", i + 1, n.start(1) + 1)
    return None


def check_abc(text: str, keep_score: bool = False) -> AbcCheck:
    """Check the first tune of ``text`` (see :class:`AbcCheck` for what valid/strict mean).

    Never raises for bad ABC; the problem is reported in the result. Texts past the cheap
    limits (:data:`MAX_CHECK_CHARS`, :data:`MAX_LINE_CHARS`, :data:`MAX_NOTE_UNITS`, zero
    meters, units or tempi) are refused before music21 reads them.
    """
    if len(text) > 4 * MAX_CHECK_CHARS:
        return AbcCheck(False, False, f"the text is over {4 * MAX_CHECK_CHARS:,} characters", line=1, column=1)
    tune = first_tune(text)
    lines = tune.rstrip("\n").split("\n")
    problem = _header_problem(lines)
    if problem:
        return AbcCheck(False, False, problem[0], line=problem[1], column=1)
    cheap = _cheap_problem(lines)
    if cheap:
        return AbcCheck(False, False, cheap[0], line=cheap[1], column=cheap[2])
    body_start = next(i for i, l in enumerate(lines) if l.startswith("K:")) + 1
    if body_start >= len(lines) or not "".join(lines[body_start:]).strip():
        return AbcCheck(False, False, "the tune has no music after K:", line=len(lines), column=1)
    messages: list[str] = []
    try:
        score = _parse_music21(tune, messages)
    except Exception as e:  # music21 raises many kinds of errors on broken ABC
        msg = str(e).split("\n")[0][:160] or type(e).__name__
        where = _header_parse_error(lines, body_start)
        line, column = where if where else (_locate_parse_error(lines, body_start), 1)
        return AbcCheck(False, False, f"music21 cannot read the tune: {msg}", line=line, column=column)
    n_notes = len(score.flatten().notes)
    if n_notes == 0:
        return AbcCheck(False, False, "the tune has no notes", line=body_start + 1, column=1,
                        score=score if keep_score else None)
    unknown = [m for m in messages if _UNKNOWN_NOTE in m]
    msg, line, column = None, None, None
    if unknown:
        token = unknown[0].split("note:", 1)[-1].strip() if "note:" in unknown[0] else "?"
        msg = f"{len(unknown)} unreadable note token(s), first: {token!r} (read as C)"
    if msg is None and not _has_header(lines, "L"):
        msg, line, column = "missing L: (unit note length) header", body_start, 1
    if msg is None:
        from composer.music.abc_bars import bar_problem
        problem = bar_problem(tune)
        if problem:
            msg, line, column = problem
    n_bars = len(list(score.recurse().getElementsByClass("Measure")))
    return AbcCheck(True, msg is None, msg, line=line, column=column, n_bars=n_bars, n_notes=n_notes,
                    score=score if keep_score else None)


def _has_header(lines: list[str], letter: str) -> bool:
    for line in lines:
        m = _FIELD_RE.match(line.strip())
        if m and m.group(1) == letter:
            return True
        if line.startswith("K:"):
            return False
    return False


def is_valid(text: str) -> bool:
    """Headers X, M, K present and music21 parses a non-empty stream."""
    return check_abc(text).valid


def is_strict(text: str) -> bool:
    """Valid, and every bar's length agrees with the meter (pickups, repeats, endings allowed)."""
    return check_abc(text).strict


# --------------------------------------------------------------------------------------
# Conversions
# --------------------------------------------------------------------------------------

def abc_to_score(text: str):
    """music21 score of the first tune; raises :class:`AbcError` when it is not valid."""
    res = check_abc(text, keep_score=True)
    if not res.valid:
        where = f" (line {res.line})" if res.line else ""
        raise AbcError(f"invalid ABC{where}: {res.error}")
    return res.score


def abc_to_pretty_midi(text: str, program: int = 40, tempo: float | None = None):
    """PrettyMIDI of the first tune (via music21), one instrument with GM ``program``
    (40 violin, 73 flute, 0 piano ...); ``tempo`` in quarter notes per minute overrides
    the tune's (default 120)."""
    score = abc_to_score(text)
    return _score_to_pretty_midi(_played_score(text, score), program, tempo)


def _played_score(text: str, score):
    """The score to play: the tune with its repeats written out as
    :func:`composer.music.abc_bars.expand_repeats` reads them (|: A :| twice, 1st/2nd
    endings in turn, AABBCC), parsed again; music21's own expansion replays parts
    written once and refuses some real tunes. When the text cannot be expanded, the
    score as written, played once."""
    from composer.music.abc_bars import AbcSyntaxError, expand_repeats
    try:
        played = _parse_music21(expand_repeats(first_tune(text)))
        if len(played.flatten().notes):
            return played
    except (AbcSyntaxError, Exception):  # music21 raises many kinds of errors
        pass
    return _without_repeats(score)


def _without_repeats(score):
    """A copy of ``score`` with repeat bar lines and endings removed (played once)."""
    import copy

    from music21 import bar, spanner
    s = copy.deepcopy(score)
    for sp in list(s.recurse().getElementsByClass(spanner.RepeatBracket)):
        for site in list(sp.sites.get()):
            try:
                site.remove(sp)
            except Exception:
                pass
    for m in s.recurse().getElementsByClass("Measure"):
        for side in ("leftBarline", "rightBarline"):
            if isinstance(getattr(m, side), bar.Repeat):
                setattr(m, side, bar.Barline("regular"))
    return s


def render_parts(text: str, program: int = 40, tempo: float | None = None) -> dict:
    """What a render of (untrusted) ABC needs from music21, in one parse.

    Meant to run in a :mod:`composer.sandbox` worker: the result is plain data.

    Returns
    -------
    dict
        ``check`` (:meth:`AbcCheck.to_dict`), ``midi`` (bytes of a Standard MIDI File, None
        when the tune is invalid), ``musicxml`` (text, None when the tune is invalid or
        music21 cannot export it) and ``musicxml_error``.
    """
    res = check_abc(text, keep_score=True)
    out = {"check": res.to_dict(), "midi": None, "musicxml": None, "musicxml_error": None}
    if not res.valid:
        return out
    try:
        out["musicxml"] = _score_to_musicxml(res.score)
    except Exception as exc:  # music21's exporter fails on some valid-looking tunes
        out["musicxml_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    pm = _score_to_pretty_midi(_played_score(text, res.score), program, tempo)
    buf = io.BytesIO()
    pm.write(buf)
    out["midi"] = buf.getvalue()
    return out


def _score_to_pretty_midi(score, program: int, tempo: float | None):
    import pretty_midi
    from music21 import midi as m21midi
    from music21 import tempo as m21tempo
    if tempo:
        for mm in list(score.recurse().getElementsByClass(m21tempo.MetronomeMark)):
            mm.activeSite.remove(mm)
        first = score.parts[0] if hasattr(score, "parts") and len(score.parts) else score
        first.insert(0, m21tempo.MetronomeMark(number=float(tempo)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mf = m21midi.translate.music21ObjectToMidiFile(score)
    data = mf.writestr()
    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    for inst in pm.instruments:
        if not inst.is_drum:
            inst.program = int(program)
    return pm


def abc_to_musicxml(text: str) -> str:
    """MusicXML text of the first tune (via music21)."""
    return _score_to_musicxml(abc_to_score(text))


def _score_to_musicxml(score) -> str:
    from music21.musicxml.m21ToXml import GeneralObjectExporter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = GeneralObjectExporter(score).parse()
    return data.decode("utf-8") if isinstance(data, bytes) else str(data)


# --------------------------------------------------------------------------------------
# Bar lengths from the text (no music21): used to guard sampling line by line
# --------------------------------------------------------------------------------------

_DECORATION_LETTERS = set("HIKLMNOPQRSTUVhklmnorstuvw~.")
_BAR_CHARS = set("|:")


class BarTracker:
    """Reads a tune body line by line and says whether a line keeps every bar the right
    length, following the rules of :func:`check_abc` (short bars only as pickups, next to
    repeats, double bars and endings, or at a line's end where the bar continues on the
    next line). It also rejects what music21 cannot read: unbalanced chords, graces and
    quotes, stray letters.

    Use :meth:`check` on a candidate line, then :meth:`commit` the accepted one.
    """

    def __init__(self, meter: str, unit: str):
        self.bar = meter_length(meter)
        self.unit = _unit_length(unit) or Fraction(1, 8)
        self.compound = self.bar is not None and self.bar.denominator == 8 and self.bar.numerator % 3 == 0
        self.carry = Fraction(0)      # duration of the bar left open by the previous line
        self.carry_special = True     # the open bar started after a special bar line (or is the first)
        self.first = True             # no complete bar yet: the first may be a pickup

    # -- parsing ------------------------------------------------------------------------
    @staticmethod
    def _length(s: str, i: int) -> tuple[Fraction, int]:
        from composer.music.abc_bars import _length
        return _length(s, i)

    def _segments(self, line: str, bar: Fraction | None, unit: Fraction):
        """Split a music line into (duration, opening bar line, closing bar line) segments.

        Returns (segments, new_bar, new_unit); raises ValueError for unreadable text."""
        s = line
        i, n = 0, len(s)
        segs = []
        cur = Fraction(0)
        has_music = False
        opening = None
        tuplet_left, tuplet_scale = 0, Fraction(1)
        last_note = None  # (index in durations list) for broken rhythm
        durations: list[Fraction] = []
        pending_broken = None
        compound = self.compound

        def add(d):
            nonlocal cur, tuplet_left, last_note, pending_broken, has_music
            if tuplet_left > 0:
                d = d * tuplet_scale
                tuplet_left -= 1
            if pending_broken is not None:
                d = d * pending_broken
                pending_broken = None
            durations.append(d)
            last_note = len(durations) - 1
            has_music = True

        while i < n:
            c = s[i]
            if c in " \t-)`$y\\":
                i += 1
            elif c == "(":
                if i + 1 < n and s[i + 1].isdigit():
                    m = re.match(r"\((\d)(?::(\d)?)?(?::(\d)?)?", s[i:])
                    p = int(m.group(1))
                    if p < 2:
                        raise ValueError("bad tuplet")
                    q = int(m.group(2)) if m.group(2) else {2: 3, 3: 2, 4: 3, 6: 2, 8: 3}.get(p, 3 if compound else 2)
                    r = int(m.group(3)) if m.group(3) else p
                    tuplet_left, tuplet_scale = r, Fraction(q, p)
                    i += len(m.group(0))
                else:
                    i += 1
            elif c == "!" or c == "+":
                j = s.find(c, i + 1)
                if j < 0:
                    raise ValueError(f"unclosed {c}")
                i = j + 1
            elif c == '"':
                j = s.find('"', i + 1)
                if j < 0:
                    raise ValueError("unclosed quote")
                i = j + 1
            elif c == "{":
                j = s.find("}", i + 1)
                if j < 0 or not re.fullmatch(r"[\^_=A-Ga-g,'/0-9 ~.HIKLMNOPQRSTUVhklmnorstuvw]*", s[i + 1:j]):
                    raise ValueError("bad grace notes")
                i = j + 1
            elif c in "<>":
                j = i
                while j < n and s[j] == c:
                    j += 1
                k = j - i
                if last_note is None or k > 3:
                    raise ValueError("broken rhythm without a note")
                big, small = 2 - Fraction(1, 2 ** k), Fraction(1, 2 ** k)
                first, second = (big, small) if c == ">" else (small, big)
                durations[last_note] *= first
                pending_broken = second
                i = j
            elif c == "[":
                m = re.match(r"\[([A-Za-z]):([^\]]*)\]", s[i:])
                if m:
                    if m.group(1) == "M":
                        bar = meter_length(m.group(2))
                    elif m.group(1) == "L":
                        unit = _unit_length(m.group(2)) or unit
                    i += len(m.group(0))
                    continue
                if i + 1 < n and (s[i + 1].isdigit() or s[i + 1] == "|"):
                    # an ending [1 or the bar line [|
                    m = re.match(r"\[\d+(?:[,-]\d+)*|\[\|[\]:|]*", s[i:])
                    tok = m.group(0)
                    if tok.startswith("[|"):
                        segs.append((cur + sum(durations, Fraction(0)), opening, tok, has_music))
                        cur, durations, has_music, last_note, opening = Fraction(0), [], False, None, tok
                    else:
                        opening = (opening or "") + tok
                    i += len(tok)
                    continue
                j = s.find("]", i + 1)
                if j < 0:
                    raise ValueError("unclosed chord")
                inner = s[i + 1:j]
                mm = re.match(r"[~.\s]*[\^_=]*[A-Ga-g][,']*(\d*(?:/\d*)*)", inner)
                if not mm or not re.fullmatch(r"([~.\s]*[\^_=]*[A-Ga-g][,']*\d*(/\d*)*-?\s*)+", inner):
                    raise ValueError("bad chord")
                d0, _ = self._length(mm.group(1) + " ", 0)
                d1, k = self._length(s, j + 1)
                add(unit * d0 * d1)
                i = k
            elif c in "^_=" or c in "ABCDEFGabcdefg":
                m = re.match(r"[\^_=]*([A-Ga-g])[,']*", s[i:])
                if not m:
                    raise ValueError("accidental without a note")
                d, k = self._length(s, i + len(m.group(0)))
                add(unit * d)
                i = k
            elif c in "zx":
                d, k = self._length(s, i + 1)
                add(unit * d)
                i = k
            elif c == "Z":
                d, k = self._length(s, i + 1)
                if bar is not None:
                    add(bar * d)
                i = k
            elif c in "|:]" or (c.isdigit() and (i == 0 or s[i - 1] in "|:")):
                m = re.match(r"[|:\]\[]+(?:\d+(?:[,-]\d+)*)?", s[i:]) if not c.isdigit() else re.match(r"\d+", s[i:])
                tok = m.group(0)
                if c.isdigit():
                    opening = (opening or "") + tok
                    i += len(tok)
                    continue
                segs.append((cur + sum(durations, Fraction(0)), opening, tok, has_music))
                cur, durations, has_music, last_note, opening = Fraction(0), [], False, None, tok
                i += len(tok)
            elif c in _DECORATION_LETTERS:
                i += 1
            elif c == "%":
                break
            else:
                raise ValueError(f"unexpected {c!r}")
        if pending_broken is not None:
            raise ValueError("broken rhythm at the end of a line")
        tail = (cur + sum(durations, Fraction(0)), opening, None, has_music)
        return segs, tail, bar, unit

    @staticmethod
    def _special(tok: str | None) -> bool:
        return tok is not None and (":" in tok or "||" in tok or "]" in tok or "[" in tok or
                                    any(ch.isdigit() for ch in tok))

    def _evaluate(self, line: str):
        """(ok, reason, new state) for a body line."""
        stripped = line.strip()
        fm = _FIELD_RE.match(stripped)
        bar, unit = self.bar, self.unit
        if fm and not stripped.startswith("|"):
            key, value = fm.group(1), fm.group(2)
            if key == "M":
                bar = meter_length(value)
            elif key == "L":
                unit = _unit_length(value) or unit
            elif key != "K":
                return False, f"unexpected field {key}:", None
            return True, None, (bar, unit, self.carry, self.carry_special, self.first)
        try:
            segs, tail, bar, unit = self._segments(stripped, bar, unit)
        except (ValueError, AttributeError) as e:
            return False, str(e), None
        carry, carry_special, first = self.carry, self.carry_special, self.first
        closed = []
        for k, (d, opening, closing, music) in enumerate(segs):
            if k == 0:
                d += carry
                music = music or carry > 0
                opening_special = carry_special
            else:
                opening_special = self._special(opening)
            if not music:
                continue
            closed.append((d, opening_special or first, self._special(closing)))
            first = False
            carry = Fraction(0)
        if bar is not None:
            for k, (d, open_sp, close_sp) in enumerate(closed):
                if d > bar:
                    return False, f"bar too long ({d} of {bar})", None
                if d < bar and not (open_sp or close_sp):
                    pair = ((k > 0 and closed[k - 1][0] + d == bar) or
                            (k + 1 < len(closed) and closed[k + 1][0] + d == bar))
                    if not pair:
                        return False, f"bar too short ({d} of {bar})", None
        d_tail, opening, _, music = tail
        if segs:
            new_carry = d_tail if music else Fraction(0)
            new_special = self._special(segs[-1][2]) if segs else carry_special
        else:
            new_carry = carry + (d_tail if music else 0)
            new_special = carry_special
        if bar is not None and new_carry > bar:
            return False, "bar too long at the end of the line", None
        return True, None, (bar, unit, new_carry, new_special, first)

    def check(self, line: str) -> tuple[bool, str | None]:
        """Would ``line`` keep the tune's bars right? (ok, reason)."""
        ok, reason, _ = self._evaluate(line)
        return ok, reason

    def commit(self, line: str) -> None:
        """Accept ``line`` (even one :meth:`check` refused: its durations are then skipped)."""
        ok, _, state = self._evaluate(line)
        if ok:
            self.bar, self.unit, self.carry, self.carry_special, self.first = state
        else:
            self.carry, self.carry_special = Fraction(0), True


#: Meters a sampled tune may get (those of at least 3 corpus tunes, and 2/2).
COMMON_METERS = ("C|", "C", "2/2", "2/4", "3/4", "4/4", "6/8", "9/8", "12/8", "3/8", "6/4", "3/2")


def header_value_ok(field_letter: str, value: str) -> bool:
    """Is ``value`` a usable M:, L: or K: value for a sampled tune (M: one of
    :data:`COMMON_METERS`; other fields: any non-empty text)?"""
    v = value.strip()
    if field_letter == "M":
        return v in COMMON_METERS
    if field_letter == "L":
        return bool(re.fullmatch(r"1/(1|2|4|8|16|32|64)", v))
    if field_letter == "K":
        return bool(re.fullmatch(r"[A-G][#b]?(m|mix|dor|lyd|phr|loc)?|none|Hp|HP", v))
    return bool(v)


#: How many held-out fiddle tunes the Genre transfer tab offers as folk examples.
N_FOLK_EXAMPLES = 4


def folk_example_midi_paths(n: int = N_FOLK_EXAMPLES) -> dict[str, Path]:
    """Fiddle tunes for the Genre transfer tab as MIDI files in the cache, built on first call.

    The first ``n`` tunes in 4/4 (or C, C|, 2/2) of the folk corpus's held-out split - the
    folk domain's test songs (:func:`composer.music.genres.build_folk`), so neither the
    CycleGAN nor its classifier has heard them. Returns ``{"Folk - Title": path}``.
    """
    from composer.music.corpus import cache_dir, score_to_roll
    folder = cache_dir() / "examples"
    folder.mkdir(exist_ok=True)
    index = folder / f"folk_examples_{n}.json"
    if index.exists():
        labels = json.loads(index.read_text())
        out = {label: folder / f for label, f in labels.items()}
        if all(p.exists() for p in out.values()):
            return out
    out, labels = {}, {}
    for k, tune in enumerate(load_dataset("folk").val):
        meter = re.search(r"^M:(.*)$", tune, flags=re.M)
        if not meter or meter.group(1).strip() not in ("4/4", "C", "C|", "2/2") or re.search(r"\[M:", tune):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                score = abc_to_score(tune)
            sigs = {ts.ratioString for ts in score.flatten().getElementsByClass("TimeSignature")}
            if len(sigs) != 1:
                continue
            roll = score_to_roll(score, voices=tuple(f"part{i}" for i in range(len(score.parts))) or ("part0",),
                                 programs=tuple([40] * max(1, len(score.parts))),
                                 require_time_signature=next(iter(sigs)), tempo=100.0)
        except Exception:   # a tune music21 cannot read is simply not offered
            continue
        if roll is None or roll.codes.shape[1] < 8:
            continue
        title = re.search(r"^T:(.*)$", tune, flags=re.M)
        label = f"Folk - {(title.group(1).strip() if title else f'tune {k}')[:40]}"
        fname = f"folk_{k:04d}.mid"
        tmp = folder / (fname + ".tmp")
        roll.to_pretty_midi().write(str(tmp))
        tmp.replace(folder / fname)
        out[label], labels[label] = folder / fname, fname
        if len(out) >= n:
            break
    index.write_text(json.dumps(labels))
    return out
