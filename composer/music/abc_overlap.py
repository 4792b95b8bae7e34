"""How much of a tune is already in the training tunes, and folk-rnn-style tokens.

- :func:`near_duplicates`: validation tunes whose 16-character n-grams are more than half
  in one training tune (removed from the validation set, see
  :func:`composer.music.abc.load_dataset`);
- :class:`TrainingIndex`: the training tunes' bodies, to measure a sample's longest
  verbatim copy of training text and the share of its 16-character n-grams found in
  training (the memorisation figures of ``eval charrnn``);
- :func:`folk_tokens`: a tune body cut into folk-rnn-style tokens (accidental+pitch+octave,
  duration, bar line, tuplet, broken rhythm, chord brackets ...), to report a loss per
  token comparable with folk-rnn's.

Bodies are the lines after ``K:`` with white space removed (headers and titles are not
music and are left out; spacing and line breaks are layout).
"""
from __future__ import annotations

import re

import numpy as np

#: n-gram length for overlaps (characters of the body).
NGRAM = 16
#: A validation tune sharing more than this share of its n-grams with one training tune is a near-duplicate.
NEAR_DUPLICATE = 0.5


def body_of(tune: str) -> str:
    """The music of a tune: the lines after its ``K:`` header line, white space removed
    (spacing and line breaks are layout: a copy re-beamed or re-broken is still a copy)."""
    lines = tune.rstrip("\n").split("\n")
    for i, line in enumerate(lines):
        if line.startswith("K:"):
            return re.sub(r"\s+", "", "".join(lines[i + 1:]))
    return ""


def ngrams(text: str, n: int = NGRAM) -> set[str]:
    return {text[i:i + n] for i in range(len(text) - n + 1)}


def near_duplicates(train: list[str], val: list[str], n: int = NGRAM, threshold: float = NEAR_DUPLICATE
                    ) -> list[tuple[int, int, float]]:
    """(validation index, training index, overlap) for every validation tune whose
    n-grams are more than ``threshold`` in one training tune (overlap = shared n-grams
    / the validation tune's n-grams)."""
    val_grams = [ngrams(body_of(t), n) for t in val]
    wanted = set().union(*val_grams) if val_grams else set()
    where: dict[str, set[int]] = {}
    for ti, t in enumerate(train):
        for g in ngrams(body_of(t), n) & wanted:
            where.setdefault(g, set()).add(ti)
    out = []
    for vi, grams in enumerate(val_grams):
        if not grams:
            continue
        counts: dict[int, int] = {}
        for g in grams:
            for ti in where.get(g, ()):
                counts[ti] = counts.get(ti, 0) + 1
        if counts:
            ti, c = max(counts.items(), key=lambda kv: kv[1])
            if c / len(grams) > threshold:
                out.append((vi, ti, round(c / len(grams), 4)))
    return out




class TrainingIndex:
    """The training bodies, to find copies of them: 64-bit rolling hashes of every
    16-character n-gram (numpy), and the bodies joined by a separator for exact search."""

    def __init__(self, train: list[str], n: int = NGRAM):
        self.n = n
        bodies = [body_of(t) for t in train]
        self._text = "\x00".join(bodies).encode("latin-1", "replace")
        hashes = [_hashes(b.encode("latin-1", "replace"), n) for b in bodies]
        self._table = np.unique(np.concatenate(hashes)) if hashes else np.zeros(0, dtype=np.uint64)

    def _found(self, body: str) -> np.ndarray:
        h = _hashes(body.encode("latin-1", "replace"), self.n)
        t = self._table
        if not len(h) or not len(t):
            return np.zeros(len(h), dtype=bool)
        pos = np.searchsorted(t, h)
        return t[np.minimum(pos, len(t) - 1)] == h

    def shared_share(self, body: str) -> float | None:
        """Share of the body's n-gram positions whose n-gram occurs in a training body
        (None for a body shorter than n)."""
        f = self._found(body)
        return float(f.mean()) if len(f) else None

    def longest_copy(self, body: str) -> int:
        """Length of the longest substring of ``body`` found verbatim in one training body
        (exact: a growing window searched in the joined training text)."""
        data = body.encode("latin-1", "replace")
        found = self._found(body)
        best, text = 0, self._text
        for i in range(len(data)):
            if best >= self.n and (i >= len(found) or not found[i]):
                continue  # a copy longer than n starting here would hold this n-gram
            while i + best < len(data) and text.find(data[i:i + best + 1]) >= 0:
                best += 1
        return best


def _hashes(data: bytes, L: int) -> np.ndarray:
    codes = np.frombuffer(data, dtype=np.uint8).astype(np.uint64)
    if len(codes) < L:
        return np.zeros(0, dtype=np.uint64)
    q, pw = _prefix_hashes(codes)
    return _substring_hashes(q, pw, len(codes), L)


_BASE = np.uint64(1_000_003)


def _prefix_hashes(codes: np.ndarray):
    """Q[k] = sum_{j<k} c_j * B^-j (mod 2^64) and B^j, so that (Q[i+L]-Q[i]) * B^i is the
    hash of codes[i:i+L], the same wherever it starts."""
    inv = pow(int(_BASE), -1, 2 ** 64)
    n = len(codes)
    with np.errstate(over="ignore"):
        inv_pow = np.ones(n + 1, dtype=np.uint64)
        pw = np.ones(n + 1, dtype=np.uint64)
        if n:
            inv_pow[1:] = np.uint64(inv)
            inv_pow = np.cumprod(inv_pow, dtype=np.uint64)
            pw[1:] = _BASE
            pw = np.cumprod(pw, dtype=np.uint64)
        q = np.zeros(n + 1, dtype=np.uint64)
        q[1:] = np.cumsum(codes * inv_pow[:n], dtype=np.uint64)
    return q, pw


def _substring_hashes(q: np.ndarray, pw: np.ndarray, n: int, L: int) -> np.ndarray:
    if n < L:
        return np.zeros(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return (q[L:n + 1] - q[0:n - L + 1]) * pw[0:n - L + 1]


# --------------------------------------------------------------------------------------
# folk-rnn-style tokens
# --------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""(?P<field>\[[A-Za-z]:[^\]\n]*\]|^[A-Za-z]:.*$)
      |(?P<quote>"[^"\n]*")
      |(?P<deco>![^!\n]*!|\+[^+\n]*\+)
      |(?P<bar>:*\[?\|+\]?:*\d*(?:[,-]\d+)*|::|\[\d+(?:[,-]\d+)*)
      |(?P<tuplet>\(\d(?::\d?)?(?::\d?)?)
      |(?P<note>[\^_=]*[A-Ga-g][,']*|[zxZ])
      |(?P<dur>\d*/+\d*|\d+)
      |(?P<broken>[<>]+)
      |(?P<space>\s+)
      |(?P<other>.)""", re.X | re.M)


def folk_tokens(body: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of each folk-rnn-style token of a body: an accidental with its
    pitch and octave marks (``^c'``), a duration (``3/2``), a bar line or ending (``:|2``),
    a tuplet (``(3``), broken rhythm, chord brackets, slurs, ties, decorations, chord
    symbols and inline fields one token each; white space is no token (folk-rnn drops it)."""
    out = []
    for m in _TOKEN_RE.finditer(body):
        kind = m.lastgroup
        if kind == "space":
            continue
        out.append((m.start(), m.end(), kind))
    return out
