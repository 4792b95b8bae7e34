"""Transpose an ABC tune to another tonic, on the text (no music21).

folk-rnn trains on tunes transposed to a common tonic (C): the model then learns one
set of melodic shapes per mode instead of the same shapes in D, G, A ... separately.
:func:`transpose_tune` moves a tune to a tonic keeping its mode (``K:Ador`` to C gives
``K:Cdor``), by the nearest interval (at most a tritone up or down): notes move by
the same number of letter steps, written accidentals are rewritten for the new pitch
(accidentals implied by the key signature stay implied), chord symbols and inline or
mid-tune key changes move with the tune. Tunes in ``K:none``, ``K:HP`` or with a key
the text does not name cannot be transposed (None).
"""
from __future__ import annotations

import re

_LETTERS = "CDEFGAB"
_NATURAL = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACC = {"^^": 2, "^": 1, "=": 0, "_": -1, "__": -2, "": None}
_ACC_TEXT = {2: "^^", 1: "^", 0: "=", -1: "_", -2: "__"}
_KEY_RE = re.compile(r"^\s*([A-G])([#b]?)(\S*)(.*)$")
_BODY_RE = re.compile(
    r'(?P<quote>"[^"\n]*")|(?P<deco>![^!\n]*!|\+[^+\n]*\+)|(?P<field>\[[A-Za-z]:[^\]\n]*\])'
    r"|(?P<note>(?P<acc>\^\^|\^|__|_|=)?(?P<letter>[A-Ga-g])(?P<oct>[,']*))")
_CHORD_RE = re.compile(r'^"([A-G])([#b]?)([^/"]*)(?:/([A-G])([#b]?))?"$')


def parse_key(value: str) -> tuple[str, int, str] | None:
    """(tonic letter, tonic accidental in semitones, the rest: mode and more) of a K: value."""
    m = _KEY_RE.match(value)
    if not m or value.strip().lower() in ("none",) or value.strip().startswith(("HP", "Hp")):
        return None
    return m.group(1), {"#": 1, "b": -1, "": 0}[m.group(2)], m.group(3) + m.group(4)


def interval_to(key: str, tonic: str) -> tuple[int, int] | None:
    """(letter steps, semitones) from the tonic of K:``key`` to ``tonic`` (e.g. 'C',
    'Bb', 'F#'), the nearest way (-6..+5 semitones)."""
    k = parse_key(key)
    t = parse_key(tonic)
    if k is None or t is None:
        return None
    src = _NATURAL[k[0]] + k[1]
    dst = _NATURAL[t[0]] + t[1]
    semis = (dst - src) % 12
    if semis > 5:
        semis -= 12
    steps = (_LETTERS.index(t[0]) - _LETTERS.index(k[0])) % 7
    if semis < 0 and steps > 0:
        steps -= 7
    if semis > 0 and steps < 0:
        steps += 7
    if semis == 0 and steps > 3:
        steps -= 7
    return steps, semis


def _move_pitch(letter: str, acc: int, steps: int, semis: int) -> tuple[str, int]:
    """A pitch class written letter+accidental, moved: (new letter, new accidental)."""
    i = _LETTERS.index(letter.upper())
    j = (i + steps) % 7
    new = _LETTERS[j]
    want = (_NATURAL[letter.upper()] + acc + semis) % 12
    diff = (want - _NATURAL[new]) % 12
    if diff > 6:
        diff -= 12
    return new, diff


def _key_text(value: str, steps: int, semis: int) -> str:
    k = parse_key(value)
    if k is None:
        return value
    letter, acc = _move_pitch(k[0], k[1], steps, semis)
    if abs(acc) > 1:
        return value
    return f"{letter}{ {1: '#', -1: 'b', 0: ''}[acc] }".replace(" ", "") + k[2]


def _note_text(m: re.Match, steps: int, semis: int) -> str:
    letter, octs = m.group("letter"), m.group("oct")
    idx = _LETTERS.index(letter.upper()) + (7 if letter.islower() else 0)
    idx += 7 * octs.count("'") - 7 * octs.count(",")
    new_idx = idx + steps
    new_letter = _LETTERS[new_idx % 7]
    octave = new_idx // 7  # 0: C..B, 1: c..b
    text = new_letter.lower() + "'" * (octave - 1) if octave >= 1 else new_letter + "," * (-octave)
    acc = _ACC[m.group("acc") or ""]
    if acc is None:
        return text
    natural_old = _NATURAL[letter.upper()] + 12 * (idx // 7)
    natural_new = _NATURAL[new_letter] + 12 * octave
    diff = natural_old + acc + semis - natural_new
    if diff not in _ACC_TEXT:
        raise ValueError("accidental out of range")
    return _ACC_TEXT[diff] + text


def _chord_text(q: str, steps: int, semis: int) -> str:
    m = _CHORD_RE.match(q)
    if not m:
        return q
    root, acc = _move_pitch(m.group(1), {"#": 1, "b": -1, "": 0}[m.group(2)], steps, semis)
    if abs(acc) > 1:
        return q
    out = '"' + root + {1: "#", -1: "b", 0: ""}[acc] + m.group(3)
    if m.group(4):
        bass, bacc = _move_pitch(m.group(4), {"#": 1, "b": -1, "": 0}[m.group(5)], steps, semis)
        out += "/" + bass + {1: "#", -1: "b", 0: ""}.get(bacc, "")
    return out + '"'


def transpose_tune(tune: str, tonic: str = "C") -> str | None:
    """``tune`` moved so that its (first) key has tonic ``tonic``, mode kept; None when it
    cannot be transposed. A tune already on that tonic comes back unchanged."""
    lines = tune.split("\n")
    k_line = next((i for i, l in enumerate(lines) if l.startswith("K:")), None)
    if k_line is None:
        return None
    iv = interval_to(lines[k_line][2:], tonic)
    if iv is None:
        return None
    steps, semis = iv
    if steps == 0 and semis == 0:
        return tune
    try:
        out = lines[:k_line] + ["K:" + _key_text(lines[k_line][2:], steps, semis)]
        for line in lines[k_line + 1:]:
            if re.match(r"^[A-Za-z]:", line) and not line.startswith("|"):
                out.append("K:" + _key_text(line[2:], steps, semis) if line.startswith("K:") else line)
                continue
            out.append(_BODY_RE.sub(lambda m: _sub(m, steps, semis), line))
    except ValueError:
        return None
    return "\n".join(out)


def _sub(m: re.Match, steps: int, semis: int) -> str:
    if m.group("note"):
        return _note_text(m, steps, semis)
    if m.group("quote"):
        return _chord_text(m.group("quote"), steps, semis)
    f = m.group("field")
    if f and f.startswith("[K:"):
        return "[K:" + _key_text(f[3:-1], steps, semis) + "]"
    return m.group(0)
