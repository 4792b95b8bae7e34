"""Bars of an ABC tune read from its text: durations, bar lines, endings, and the repeats as played.

No music21 here: a small tokenizer reads a tune body the way the ABC 2.1 standard writes
it (notes, rests, chords, tuplets, broken rhythm, grace notes, decorations, chord symbols,
inline fields, bar lines and 1st/2nd endings) and gives, for every token, its line and
column in the text. Two things are built on it:

- :func:`bar_problem` -- the strict bar rule of :func:`composer.music.abc.check_abc`:
  every bar has the meter's length, except the pickup (the first bar), the last bar, two
  neighbouring short bars that add up to one bar (a bar split by a repeat or an ending),
  and a short bar at a section end whose length plus the pickup makes one bar. An
  overfull bar always fails.
- :func:`expand_repeats` -- the tune's body as it is played: ``|: A :|`` twice, first and
  second endings taken in turn, a three-part tune with each part repeated AABBCC. The
  MIDI is made from this text (music21's own repeat expansion replays parts that are
  written once, and refuses some real tunes).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

_FIELD_LINE_RE = re.compile(r"^([A-Za-z]):\s*(.*?)\s*$")
_DECORATION_LETTERS = set("HIJKLMNOPQRSTUVWhijklmnopqrstuvw~.")
_SKIP = set(" \t-)`$y\\")
_ENDING_RE = re.compile(r"\d+(?:[,-]\d+)*")
#: Bar lines that close a section (besides the repeat signs).
_SECTION_ENDS = ("||", "|]", "[|")


class AbcSyntaxError(ValueError):
    """Text the tokenizer cannot read; ``line``/``column`` (1-based) point at it."""

    def __init__(self, message: str, line: int, column: int):
        super().__init__(message)
        self.line, self.column = line, column


def meter_length(meter: str) -> Fraction | None:
    """Bar length in whole notes ('6/8' -> 3/4, 'C' -> 1, 'C|' -> 1); None for free meter."""
    m = meter.strip().replace(" ", "")
    if m in ("C", "C|"):
        return Fraction(1)
    mm = re.match(r"^(\d+(?:\+\d+)*)/(\d+)$", m)
    if not mm or int(mm.group(2)) == 0:
        return None
    return Fraction(sum(int(x) for x in mm.group(1).split("+")), int(mm.group(2)))


def unit_length(unit: str) -> Fraction | None:
    mm = re.match(r"^\s*(\d+)/(\d+)\s*$", unit)
    return Fraction(int(mm.group(1)), int(mm.group(2))) if mm and int(mm.group(2)) and int(mm.group(1)) else None


@dataclass
class Bar:
    """One bar as written: ``text`` (its music, source text), ``duration`` in whole notes,
    the bar lines on its ``left`` and ``right`` (None at the start / end of the tune), the
    ``endings`` it opens (e.g. {1} for ``[1``), the ``meter`` (bar length) in effect, the
    position of its first note, whether it is the last bar on its text line, and the
    fields (K/M/L values) in effect at its start."""
    text: str = ""
    duration: Fraction = Fraction(0)
    left: str | None = None
    right: str | None = None
    endings: frozenset | None = None
    meter: Fraction | None = None
    line: int = 0
    column: int = 0
    line_end: bool = False
    music: bool = False
    multi_rest: bool = False
    fields_at_start: dict = field(default_factory=dict)

    @property
    def start_repeat(self) -> bool:
        return self.left is not None and self.left.rstrip("0123456789,-").endswith(":")

    @property
    def end_repeat(self) -> bool:
        return self.right is not None and self.right.startswith(":")

    @property
    def section_end(self) -> bool:
        r = self.right
        return r is not None and (r.startswith(":") or r.endswith(":") or any(s in r for s in _SECTION_ENDS))


def _length(s: str, i: int) -> tuple[Fraction, int]:
    j = i
    while j < len(s) and s[j].isdigit():
        j += 1
    num = int(s[i:j]) if j > i else 1
    den = 1
    while j < len(s) and s[j] == "/":
        j += 1
        k = j
        while k < len(s) and s[k].isdigit():
            k += 1
        den *= int(s[j:k]) if k > j else 2
        j = k
    if num == 0 or den == 0:
        raise ValueError("a note of zero length")
    return Fraction(num, den), j


def _bar_token(s: str, i: int) -> int:
    """End index of the bar line starting at ``i`` (i when there is none)."""
    j = i
    n = len(s)
    while j < n and s[j] == ":":
        j += 1
    if j < n and s[j] == "[" and j + 1 < n and s[j + 1] == "|":
        j += 1
    k = j
    while j < n and s[j] == "|":
        j += 1
    if j == k:  # no '|': only '::' is a bar line
        return j if j - i >= 2 else i
    if j < n and s[j] == "]":
        j += 1
    while j < n and s[j] == ":":
        j += 1
    return j


def read_bars(headers: dict, body_lines: list[tuple[int, str]]) -> list[Bar]:
    """The bars of a tune body.

    Parameters
    ----------
    headers : dict
        Header field values (``M`` and ``L`` are used; ``L`` defaults from the meter as
        the standard says).
    body_lines : list of (line number, text)
        The lines after ``K:``, numbered as in the whole text (1-based).

    Raises
    ------
    AbcSyntaxError
        For text the tokenizer cannot read (with its line and column).
    """
    meter_text = headers.get("M", "none")
    bar = meter_length(meter_text)
    unit = unit_length(headers.get("L", "")) if headers.get("L") else None
    if unit is None:
        unit = Fraction(1, 16) if bar is not None and bar < Fraction(3, 4) else Fraction(1, 8)
    fields = {k: headers[k] for k in ("K", "M", "L") if headers.get(k)}
    bars: list[Bar] = []
    cur = Bar(meter=bar, fields_at_start=dict(fields))
    pieces: list[str] = []
    tuplet_left, tuplet_scale = 0, Fraction(1)
    last_note = None  # (bar object, index into durations) of the last note, for broken rhythm
    durations: list[Fraction] = []
    pending_broken = None
    compound = bar is not None and bar.denominator == 8 and bar.numerator % 3 == 0

    def close(right: str | None):
        nonlocal cur, pieces, durations, last_note
        cur.text = "".join(pieces).strip()
        cur.duration = sum(durations, Fraction(0))
        cur.right = right
        bars.append(cur)
        cur = Bar(left=right, meter=bar, fields_at_start=dict(fields))
        pieces, durations, last_note = [], [], None

    def add(d, lno, col):
        nonlocal tuplet_left, pending_broken, last_note
        if tuplet_left > 0:
            d = d * tuplet_scale
            tuplet_left -= 1
        if pending_broken is not None:
            d = d * pending_broken
            pending_broken = None
        if not cur.music:
            cur.music, cur.line, cur.column, cur.meter = True, lno, col, bar
        durations.append(d)
        last_note = len(durations) - 1

    for lno, raw in body_lines:
        stripped = raw.strip()
        fm = _FIELD_LINE_RE.match(stripped)
        if fm and not stripped.startswith("|"):
            letter, value = fm.group(1), fm.group(2)
            if letter == "M":
                bar = meter_length(value)
                compound = bar is not None and bar.denominator == 8 and bar.numerator % 3 == 0
            elif letter == "L":
                unit = unit_length(value) or unit
            if letter in ("K", "M", "L"):
                fields[letter] = value
                pieces.append(f" [{letter}:{value}] ")
                if not cur.music:
                    cur.fields_at_start = dict(fields)
                    cur.meter = bar
            continue
        s = raw.split("%", 1)[0]
        i, n = 0, len(s)
        if bars and not cur.music and s[:1] in (":", *"123456789"):
            # a bar line or ending split by a line break ('|' at a line end, ':' or '1' at the next start)
            m = re.match(r":+", s)
            if m:
                bars[-1].right = _join_bars(bars[-1].right, m.group(0))
                cur.left = _join_bars(cur.left, m.group(0))
                i = m.end()
            m = _ENDING_RE.match(s, i)
            if m:
                _open_ending(cur, m.group(0), lno, i + 1)
                i = m.end()
        while i < n:
            c = s[i]
            col = i + 1
            if c in _SKIP:
                pieces.append(c if c != "\\" else "")
                i += 1
            elif c == "(":
                if i + 1 < n and s[i + 1].isdigit():
                    m = re.match(r"\((\d)(?::(\d)?)?(?::(\d)?)?", s[i:])
                    p = int(m.group(1))
                    if p < 2:
                        raise AbcSyntaxError("a tuplet of fewer than 2 notes", lno, col)
                    q = int(m.group(2)) if m.group(2) else {2: 3, 3: 2, 4: 3, 6: 2, 8: 3}.get(p, 3 if compound else 2)
                    r = int(m.group(3)) if m.group(3) else p
                    tuplet_left, tuplet_scale = r, Fraction(q, p)
                    pieces.append(m.group(0))
                    i += len(m.group(0))
                else:
                    pieces.append(c)
                    i += 1
            elif c in "!+\"":
                j = s.find(c, i + 1)
                if j < 0:
                    what = {"!": "decoration !...!", "+": "decoration +...+", '"': "quoted text"}[c]
                    raise AbcSyntaxError(f"unclosed {what}", lno, col)
                pieces.append(s[i:j + 1])
                i = j + 1
            elif c == "{":
                j = s.find("}", i + 1)
                if j < 0 or not re.fullmatch(r"[\^_=A-Ga-g,'/0-9 ~.HIJKLMNOPQRSTUVWhijklmnopqrstuvw]*", s[i + 1:j]):
                    raise AbcSyntaxError("unreadable grace notes {...}", lno, col)
                pieces.append(s[i:j + 1])
                i = j + 1
            elif c in "<>":
                j = i
                while j < n and s[j] == c:
                    j += 1
                k = j - i
                if last_note is None or k > 3:
                    raise AbcSyntaxError(f"broken rhythm {s[i:j]} without a note before it", lno, col)
                big, small = 2 - Fraction(1, 2 ** k), Fraction(1, 2 ** k)
                first, second = (big, small) if c == ">" else (small, big)
                durations[last_note] *= first
                pending_broken = second
                pieces.append(s[i:j])
                i = j
            elif c == "[" and re.match(r"\[[A-Za-z]:", s[i:]):
                m = re.match(r"\[([A-Za-z]):([^\]]*)\]", s[i:])
                if not m:
                    raise AbcSyntaxError("unclosed inline field [X:...]", lno, col)
                letter, value = m.group(1), m.group(2).strip()
                if letter == "M":
                    bar = meter_length(value)
                    compound = bar is not None and bar.denominator == 8 and bar.numerator % 3 == 0
                elif letter == "L":
                    unit = unit_length(value) or unit
                if letter in ("K", "M", "L"):
                    fields[letter] = value
                    if not cur.music:
                        cur.fields_at_start = dict(fields)
                        cur.meter = bar
                pieces.append(m.group(0))
                i += len(m.group(0))
            elif c == "[" and i + 1 < n and s[i + 1].isdigit():  # an ending [1, [2, [1,3
                m = _ENDING_RE.match(s, i + 1)
                _open_ending(cur, m.group(0), lno, col)
                i = m.end()
            elif c == "[" and not (i + 1 < n and s[i + 1] == "|"):  # a chord
                j = s.find("]", i + 1)
                if j < 0:
                    raise AbcSyntaxError("unclosed chord [...]", lno, col)
                inner = s[i + 1:j]
                mm = re.match(r"[~.\s]*[\^_=]*[A-Ga-g][,']*(\d*(?:/\d*)*)", inner)
                if not mm or not re.fullmatch(r"([~.\s]*[\^_=]*[A-Ga-g][,']*\d*(/\d*)*-?\s*)+", inner):
                    raise AbcSyntaxError(f"unreadable chord [{inner}]", lno, col)
                try:
                    d0, _ = _length(mm.group(1) + " ", 0)
                    d1, k = _length(s, j + 1)
                except ValueError as e:
                    raise AbcSyntaxError(str(e), lno, col) from None
                add(unit * d0 * d1, lno, col)
                pieces.append(s[i:k])
                i = k
            elif c in "^_=" or c in "ABCDEFGabcdefg":
                m = re.match(r"[\^_=]*([A-Ga-g])[,']*", s[i:])
                if not m:
                    raise AbcSyntaxError("an accidental without a note", lno, col)
                try:
                    d, k = _length(s, i + len(m.group(0)))
                except ValueError as e:
                    raise AbcSyntaxError(str(e), lno, col) from None
                add(unit * d, lno, col)
                pieces.append(s[i:k])
                i = k
            elif c in "zxZX":
                try:
                    d, k = _length(s, i + 1)
                except ValueError as e:
                    raise AbcSyntaxError(str(e), lno, col) from None
                if c in "ZX":
                    if bar is None:
                        raise AbcSyntaxError("a multi-bar rest in free meter", lno, col)
                    add(bar * d, lno, col)
                    cur.multi_rest = True
                else:
                    add(unit * d, lno, col)
                pieces.append(s[i:k])
                i = k
            elif c in "|:" or (c == "[" and i + 1 < n and s[i + 1] == "|"):
                j = _bar_token(s, i)
                if j == i:
                    raise AbcSyntaxError(f"unexpected {c!r}", lno, col)
                tok = s[i:j]
                if pending_broken is not None:
                    raise AbcSyntaxError("broken rhythm across a bar line", lno, col)
                if cur.music:
                    close(tok)
                else:  # bar lines meet (':| |:', or a line that starts with one): one bar line
                    if bars:
                        bars[-1].right = _join_bars(bars[-1].right, tok)
                    cur.left = _join_bars(cur.left, tok)
                i = j
                m = _ENDING_RE.match(s, i)  # '|1', ':|2'
                if m:
                    _open_ending(cur, m.group(0), lno, i + 1)
                    i = m.end()
            elif c in _DECORATION_LETTERS:
                pieces.append(c)
                i += 1
            else:
                raise AbcSyntaxError(f"unexpected {c!r}", lno, col)
        if pending_broken is not None:
            raise AbcSyntaxError("broken rhythm at the end of a line", lno, len(s.rstrip()) + 1)
        pieces.append(" ")
        if not cur.music and bars:
            bars[-1].line_end = True
    if cur.music:
        close(None)
    if bars:
        bars[-1].line_end = True
    return bars


def _join_bars(left: str | None, tok: str) -> str:
    """Two bar lines with no music between them read as one ('|' adds nothing)."""
    if left is None or left == "|":
        return tok
    return left if tok == "|" else left + tok


def _open_ending(cur: Bar, spec: str, lno: int, col: int) -> None:
    nums = set()
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            if not a or not b or int(b) < int(a) or int(b) - int(a) > 8:
                raise AbcSyntaxError(f"unreadable ending [{spec}", lno, col)
            nums.update(range(int(a), int(b) + 1))
        elif part:
            nums.add(int(part))
    if not nums or max(nums) > 9 or min(nums) < 1:
        raise AbcSyntaxError(f"unreadable ending [{spec}", lno, col)
    cur.endings = frozenset(nums)


def split_tune(text: str) -> tuple[dict, list[tuple[int, str]]]:
    """(header fields, numbered body lines) of the first tune of ``text``."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    headers: dict[str, str] = {}
    for i, line in enumerate(lines):
        m = _FIELD_LINE_RE.match(line.strip())
        if m:
            headers.setdefault(m.group(1), m.group(2).split("%", 1)[0].strip())
            if m.group(1) == "K":
                body = [(j + 1, lines[j]) for j in range(i + 1, len(lines))]
                # the tune ends at its first blank line
                for k, (_, l) in enumerate(body):
                    if not l.strip():
                        body = body[:k]
                        break
                return headers, body
    return headers, []


# --------------------------------------------------------------------------------------
# The strict bar rule
# --------------------------------------------------------------------------------------

def bar_problem(text: str) -> tuple[str, int, int] | None:
    """The first bar that breaks the strict rule (see the module docstring), as
    (message, line, column), or None when every bar is right (or the meter is free).

    Unreadable text is a problem too (its message and position)."""
    headers, body = split_tune(text)
    try:
        bars = read_bars(headers, body)
    except AbcSyntaxError as e:
        return str(e), e.line, e.column
    bars = [b for b in bars if b.music]
    if not bars:
        return None
    n = len(bars)
    for k, b in enumerate(bars):
        if b.meter is None:
            continue
        if b.multi_rest:
            if b.duration % b.meter:
                return f"bar {k + 1} holds a multi-bar rest and other notes", b.line, b.column
        elif b.duration > b.meter:
            return (f"bar {k + 1} is too long: {_q(b.duration)} quarter notes in a {_q(b.meter)}-quarter bar",
                    b.line, b.column)
    short = [b.meter is not None and not b.multi_rest and b.duration < b.meter for b in bars]
    dur = [b.duration for b in bars]
    pickup = dur[0] if short[0] else None
    section_pickup, section_start = pickup, None
    ok = [not s for s in short]
    ok[0] = ok[-1] = True  # the pickup and the last bar
    for k, b in enumerate(bars):
        if k > 0 and (bars[k - 1].section_end or b.start_repeat) and b.endings is None:
            section_pickup = dur[k] if short[k] else None  # a new section and its pickup
            section_start = k if short[k] else None
        if not short[k] or k == 0:
            continue
        m = b.meter
        if (k > 0 and short[k - 1] and dur[k - 1] + dur[k] == m) or (k + 1 < n and short[k + 1] and
                                                                     dur[k] + dur[k + 1] == m):
            ok[k] = True  # a bar split in two by a repeat or an ending
        if b.section_end and any(p is not None and dur[k] + p == m for p in (pickup, section_pickup)):
            ok[k] = True  # a section's last bar, completed by the pickup
            if section_start is not None and dur[k] + dur[section_start] == m:
                ok[section_start] = True  # ... which is then the section's own pickup
    for k, b in enumerate(bars):
        if not ok[k]:
            return (f"bar {k + 1} is too short: {_q(b.duration)} quarter notes in a {_q(b.meter)}-quarter bar",
                    b.line, b.column)
    return None


def _q(x: Fraction) -> str:
    return f"{float(x * 4):g}"


# --------------------------------------------------------------------------------------
# Repeats as played
# --------------------------------------------------------------------------------------

#: A tune is expanded to at most this many bars (a guard against odd repeat structures).
MAX_PLAYED_BARS = 2000


def played_bars(bars: list[Bar]) -> list[int]:
    """Indices of ``bars`` in the order they are played.

    ``|: ... :|`` is played twice; a ``:|`` without ``|:`` goes back to the start of the
    section (the tune's start, or the bar after the last double bar or repeat); endings
    ``[1`` / ``[2`` (``[1,3`` ...) are taken on the passes they name; a repeat sign inside
    an ending goes back while a later ending remains. The last ending runs to the next
    bar line other than ``|`` or to the end of its text line, whichever comes first.
    """
    out: list[int] = []
    n = len(bars)
    i, start, passno, explicit = 0, 0, 1, False
    taken: set[int] = set()
    landing = False           # True right after a jump back (the |: there must not reset)
    in_ending: frozenset | None = None
    final_ending = False
    later_endings = _later_endings_table(bars)
    while i < n and len(out) < MAX_PLAYED_BARS:
        b = bars[i]
        if b.start_repeat and not landing and i != start or (b.start_repeat and not landing and not explicit):
            start, passno, explicit = i, 1, True
        landing = False
        if b.endings is not None:
            if passno not in b.endings:
                # skip this ending: to the next ending that includes this pass, or past its end
                j = i
                while j < n:
                    if bars[j].end_repeat or (bars[j].section_end and j > i) or (j > i and bars[j].endings is not None):
                        break
                    j += 1
                if j < n and bars[j].endings is not None and j > i:
                    i = j
                    continue
                i = j + 1
                continue
            in_ending = b.endings
            final_ending = passno >= max(b.endings | later_endings[i])
        if b.music:
            out.append(i)
        if b.end_repeat:
            if in_ending is not None:
                jump = passno < max(in_ending | later_endings[i])
            else:
                jump = i not in taken
            if jump:
                taken.add(i)
                passno += 1
                i, landing, in_ending = start, True, None
                continue
            start, passno, explicit, in_ending, final_ending = i + 1, 1, False, None, False
        elif b.section_end or (in_ending is not None and final_ending and (b.right not in (None, "|") or b.line_end)):
            if not explicit or in_ending is not None:
                start, passno, explicit = i + 1, 1, False
            in_ending, final_ending = None, False
        i += 1
    return out


def _later_endings_table(bars: list[Bar]) -> list[frozenset]:
    """For each bar i: the numbers of the endings that follow the ending holding bar i in
    the same section (one backward pass: linear even for a hostile chain of endings)."""
    n = len(bars)
    stop = [n] * (n + 1)       # first j >= i closing a section or a repeat
    stop_line = [n] * (n + 1)  # ... or ending a text line
    for j in range(n - 1, -1, -1):
        b = bars[j]
        closes = b.end_repeat or b.section_end
        stop[j] = j if closes else stop[j + 1]
        stop_line[j] = j if closes or b.line_end else stop_line[j + 1]
    chain = [frozenset()] * (n + 2)  # endings met from bar j on, one ending after another
    for j in range(n - 1, -1, -1):
        if bars[j].endings is not None:
            chain[j] = bars[j].endings | chain[min(n, stop_line[j] + 1)]
    return [chain[min(n, stop[i] + 1)] for i in range(n)]


def expand_repeats(text: str) -> str:
    """The first tune of ``text`` with its repeats written out (see :func:`played_bars`):
    the header as it is, then the bars in the order they are played, one bar line between
    them and no repeat signs or endings. The key, meter and unit in effect where a repeat
    goes back are restored with inline fields.

    Raises
    ------
    AbcSyntaxError
        When the body cannot be read.
    """
    headers, body = split_tune(text)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    head = lines[:body[0][0] - 1] if body else lines
    bars = read_bars(headers, body)
    order = played_bars(bars)
    out_bars, state = [], {k: headers[k] for k in ("K", "M", "L") if headers.get(k)}
    prev = None
    for idx in order:
        b = bars[idx]
        prefix = ""
        if prev is not None and idx != prev + 1:  # a jump: restore the fields of the bar's start
            prefix = "".join(f"[{k}:{v}]" for k, v in b.fields_at_start.items() if state.get(k) != v)
        state = dict(b.fields_at_start)
        for m in re.finditer(r"\[([KML]):([^\]]*)\]", b.text):
            state[m.group(1)] = m.group(2).strip()
        out_bars.append(prefix + b.text)
        prev = idx
    body_lines = [" | ".join(out_bars[k:k + 4]) + (" |" if k + 4 < len(out_bars) else " |]")
                  for k in range(0, len(out_bars), 4)]
    return "\n".join(head + body_lines) + "\n"
