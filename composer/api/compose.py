"""The Compose engine: MuseGAN latents a musician edits, cell by cell, and the music they make.

The generator maps four latents to a grid of vectors, one per track and bar
(:meth:`Generator.expand_latents`), and decodes every cell on its own
(:meth:`Generator.decode`). Everything the Compose tab does is an edit of that grid:

* **style** (the whole piece) and **groove** (one per track) enter the grid unchanged, so
  their offsets are added in latent space;
* **chords** (one per bar) and **melody** (one per track and bar) come out of temporal
  networks, so their offsets are added to the grid's chords / melody slices of a bar or cell;
* re-rolling a cell replaces its melody slice with that of a fresh random melody, re-rolling
  a bar replaces its chords slice and its cells' melody slices;
* a locked cell keeps its whole grid vector, so its notes stay exactly as they were.

Sliders move offsets along measured directions: for each level, a ridge regression of bar
features (note density, register, note length) on the level's vectors of generated samples
gives one direction per feature; a direction is named after its feature only when moving
along it changes that feature clearly (:func:`measure_directions`), else it is shown as a
plain "direction".

A :class:`ComposeState` is plain data (numpy arrays and numbers): it serialises to the
latents JSON the tab downloads, and that JSON restores exactly the same music.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pretty_midi
import torch

from composer import sandbox
from composer.errors import CheckpointError, ComposerError  # noqa: F401
from composer.music.pianoroll import ONSET, REST, MultiTrackRoll, float_to_codes
from composer.render import audio, viz
from composer.render.outputs import LIVE_ROOT, new_output_dir, sound_and_roll
from composer.api.musegan import DEFAULT_TEMPO, load_generator, slerp

LEVELS = ("style", "chords", "groove", "melody")
FEATURES = ("density", "register", "length")
FEATURE_WORDS = {"density": ("sparser", "busier"), "register": ("lower", "higher"),
                 "length": ("shorter notes", "longer notes")}
#: A direction gets its musical name when one unit moves its feature by this many
#: standard deviations (measured on generated samples).
NAMED_EFFECT = 0.25
MAX_BARS = 32
LATENTS_FORMAT = "composer-musegan-latents"
HISTORY = 30


class LatentsError(ComposerError):
    """A latents JSON that cannot be restored."""


# ----------------------------------------------------------------------------------------------
# Features of decoded music, per track and bar
# ----------------------------------------------------------------------------------------------

def cell_features(codes: np.ndarray, pitch_offset: int = 24) -> np.ndarray:
    """Per-cell features of codes ``(..., steps, pitches)`` -> ``(..., 3)``.

    density: onsets per bar; register: mean MIDI pitch of sounding steps (the cell's
    neighbours' mean where it is silent is not known, so 0 is replaced by the global mean
    by the caller); length: sounding steps per onset (mean note length in steps).
    """
    onsets = (codes == ONSET).sum(axis=(-1, -2)).astype(np.float64)
    sounding = codes != REST
    n_sound = sounding.sum(axis=(-1, -2)).astype(np.float64)
    pitches = np.arange(codes.shape[-1]) + pitch_offset
    pitch_sum = (sounding * pitches).sum(axis=(-1, -2))
    register = np.where(n_sound > 0, pitch_sum / np.maximum(n_sound, 1), np.nan)
    length = np.where(onsets > 0, n_sound / np.maximum(onsets, 1), np.nan)
    return np.stack([onsets, register, length], axis=-1)


# ----------------------------------------------------------------------------------------------
# Directions: which way in latent space is "busier", "higher", "longer notes"
# ----------------------------------------------------------------------------------------------

@dataclass
class Directions:
    """Unit directions per level, the spread of the level's vectors along them, and names.

    ``vectors[level]`` is ``(k, z)`` orthonormal; ``scales[level][i]`` is the standard
    deviation of the level's vectors along direction i (one slider unit); ``effects`` is the
    measured change of each feature, in its standard deviations, per slider unit.
    """

    vectors: dict[str, np.ndarray]
    scales: dict[str, np.ndarray]
    effects: dict[str, np.ndarray]
    names: dict[str, list[str]]

    def to_dict(self) -> dict:
        return {"vectors": {k: v.tolist() for k, v in self.vectors.items()},
                "scales": {k: v.tolist() for k, v in self.scales.items()},
                "effects": {k: v.tolist() for k, v in self.effects.items()}, "names": self.names}

    @classmethod
    def from_dict(cls, d: dict) -> "Directions":
        return cls({k: np.asarray(v, np.float32) for k, v in d["vectors"].items()},
                   {k: np.asarray(v, np.float32) for k, v in d["scales"].items()},
                   {k: np.asarray(v, np.float32) for k, v in d["effects"].items()}, d["names"])


def _ridge_directions(x: np.ndarray, y: np.ndarray, lam: float = 1.0) -> np.ndarray:
    """Rows: the unit ridge-regression direction of each standardised feature column of y."""
    ok = ~np.isnan(y).any(axis=1)
    x, y = x[ok], y[ok]
    x = x - x.mean(0)
    y = (y - y.mean(0)) / (y.std(0) + 1e-8)
    w = np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ y)  # (z, F)
    return w.T


def _orthonormal(rows: np.ndarray, seed: int = 0) -> np.ndarray:
    """Gram-Schmidt in row order: the first feature keeps its direction exactly.

    A row that regression left empty (a feature that never varies, e.g. every note the same
    length) becomes a random direction orthogonal to the others, so every slider still moves
    the music; it is then named "direction k" because its effect is measured, not assumed.
    """
    rng = np.random.default_rng(seed)
    out = []
    for r in np.nan_to_num(rows.astype(np.float64)):
        for _ in range(2):
            for o in out:
                r = r - (r @ o) * o
            if np.linalg.norm(r) > 1e-6:
                break
            r = rng.standard_normal(rows.shape[1])
        out.append(r / np.linalg.norm(r))
    return np.asarray(out, np.float32)


@torch.no_grad()
def measure_directions(generator, n: int = 256, seed: int = 0) -> Directions:
    """Find and name the slider directions of each level by regression on generated samples.

    Regression gives the directions; naming is causal: every sample is moved one slider unit
    each way along a direction, and the direction is named after its feature when the
    feature moves by at least :data:`NAMED_EFFECT` standard deviations on average.
    """
    cfg = generator.cfg
    z, T, N = cfg.z_dim, cfg.n_tracks, cfg.n_bars
    g = torch.Generator().manual_seed(seed)
    lat = {"chords": torch.randn(n, z, generator=g), "style": torch.randn(n, z, generator=g),
           "melody": torch.randn(n, T, z, generator=g), "groove": torch.randn(n, T, z, generator=g)}
    grid = generator.expand_latents(lat["chords"], lat["style"], lat["melody"], lat["groove"])  # (n,T,N,4z)
    codes = float_to_codes(generator.decode(grid).float().numpy(), monophonic=True)
    feats = cell_features(codes, 24)  # (n, T, N, 3)
    # each level's units (rows) and the features of what they control (silent cells are NaN)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        unit = {
            "style": (lat["style"].numpy(), np.nanmean(feats, axis=(1, 2))),
            "groove": (lat["groove"].numpy().reshape(n * T, z), np.nanmean(feats, axis=2).reshape(n * T, 3)),
            "chords": (grid[:, 0, :, :z].numpy().reshape(n * N, z), np.nanmean(feats, axis=1).reshape(n * N, 3)),
            "melody": (grid[..., 2 * z:3 * z].numpy().reshape(n * T * N, z), feats.reshape(n * T * N, 3)),
        }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        feat_std = np.nan_to_num(np.nanstd(feats.reshape(-1, 3), axis=0)) + 1e-8
    vectors, scales, effects, names = {}, {}, {}, {}
    for level, (x, y) in unit.items():
        d = _orthonormal(_ridge_directions(x.astype(np.float64), y))
        vectors[level] = d
        # one slider unit = the vector's whole spread (root of its summed variances), the size of
        # the change a re-roll makes; the spread along one direction alone (~1/sqrt(z) of it)
        # moved the shipped model's music too little to hear (measured)
        spread = float(np.sqrt(x.var(axis=0).sum()))
        scales[level] = np.full(len(FEATURES), max(spread, 1e-3), np.float32)
        eff = []
        for i in range(len(FEATURES)):
            step = torch.from_numpy(d[i] * scales[level][i])
            up, down = _shifted_features(generator, lat, grid, level, step, +1), \
                _shifted_features(generator, lat, grid, level, step, -1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                eff.append(np.nanmean((up - down) / 2, axis=tuple(range(up.ndim - 1))) / feat_std)
        effects[level] = np.asarray(eff, np.float32)  # (direction, feature)
        names[level] = [FEATURES[i] if effects[level][i, i] >= NAMED_EFFECT else f"direction {i + 1}"
                        for i in range(len(FEATURES))]
    return Directions(vectors, scales, effects, names)


def _shifted_features(generator, lat, grid, level, step, sign):
    z = generator.cfg.z_dim
    g = grid.clone()
    sl = {"chords": slice(0, z), "style": slice(z, 2 * z), "melody": slice(2 * z, 3 * z), "groove": slice(3 * z, 4 * z)}
    g[..., sl[level]] += sign * step
    return cell_features(float_to_codes(generator.decode(g).float().numpy(), monophonic=True), 24)


# ----------------------------------------------------------------------------------------------
# The state of one piece
# ----------------------------------------------------------------------------------------------

def _draw(rng: np.random.Generator, z: int, T: int) -> dict[str, np.ndarray]:
    return {"chords": rng.standard_normal(z).astype(np.float32), "style": rng.standard_normal(z).astype(np.float32),
            "melody": rng.standard_normal((T, z)).astype(np.float32),
            "groove": rng.standard_normal((T, z)).astype(np.float32)}


@dataclass
class ComposeState:
    """Everything that determines one composed piece (plain data; see module docstring).

    ``anchors`` are the latents of phrases 0, 3, 6, ... and of the last phrase; the phrases in
    between take slerp-interpolated latents, so a long piece moves smoothly instead of
    jumping at each phrase seam.
    """

    seed: int
    n_bars: int
    tempo: float
    programs: list[int]
    truncation: float | None
    z_dim: int
    n_tracks: int
    bars_per_phrase: int
    anchors: list[dict[str, np.ndarray]]
    style_offset: np.ndarray
    groove_offset: np.ndarray      # (T, z)
    chords_offset: np.ndarray      # (bars, z), grid space
    melody_offset: np.ndarray      # (T, bars, z), grid space
    chords_override: dict[int, np.ndarray] = field(default_factory=dict)           # bar -> (z,)
    melody_override: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # (t, b) -> (z,)
    locked: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)          # (t, b) -> (4z,)
    reroll_counter: int = 0
    checkpoint: str = ""
    # a fixed soprano (composer.api.harmonize): notes (MIDI pitch, start step, end step) that
    # replace the decoded soprano in every *locked* soprano cell; an unlocked soprano cell
    # sings what the generator writes
    soprano: list[tuple[int, int, int]] = field(default_factory=list)
    transpose: int = 0             # semitones the whole piece moves on the way out
    melody_only: bool = False      # only the fixed soprano sounds (the plain melody, before harmonizing)

    @property
    def n_phrases(self) -> int:
        return -(-self.n_bars // self.bars_per_phrase)

    def copy(self) -> "ComposeState":
        return copy.deepcopy(self)

    # --- serialisation: the latents JSON --------------------------------------------------
    def to_json(self) -> str:
        d = {"format": LATENTS_FORMAT, "version": 1, "checkpoint": self.checkpoint, "seed": self.seed,
             "n_bars": self.n_bars, "tempo": self.tempo, "programs": self.programs, "truncation": self.truncation,
             "z_dim": self.z_dim, "n_tracks": self.n_tracks, "bars_per_phrase": self.bars_per_phrase,
             "reroll_counter": self.reroll_counter,
             "anchors": [{k: v.tolist() for k, v in a.items()} for a in self.anchors],
             "style_offset": self.style_offset.tolist(), "groove_offset": self.groove_offset.tolist(),
             "chords_offset": self.chords_offset.tolist(), "melody_offset": self.melody_offset.tolist(),
             "chords_override": {str(b): v.tolist() for b, v in self.chords_override.items()},
             "melody_override": {f"{t},{b}": v.tolist() for (t, b), v in self.melody_override.items()},
             "locked": {f"{t},{b}": v.tolist() for (t, b), v in self.locked.items()}}
        if self.soprano or self.transpose or self.melody_only:
            d.update(soprano=[list(map(int, n)) for n in self.soprano], transpose=int(self.transpose),
                     melody_only=bool(self.melody_only))
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str | bytes) -> "ComposeState":
        """Restore a state from latents JSON, checking every type, range and shape.

        Reads the one latents format (``"format": "composer-musegan-latents"``, written by the
        Compose tab and by ``python -m composer generate``) and, for old files, the arrays-only
        file that ``generate`` wrote before (its first pieces become the phrases of the piece).

        Raises
        ------
        LatentsError
            With a one-line message naming what is wrong.
        """
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError:
                raise LatentsError("the latents file is not UTF-8 text") from None
        if len(text) > MAX_LATENTS_CHARS:
            raise LatentsError(f"the latents file is over {MAX_LATENTS_CHARS // 1_000_000} MB")
        if _json_depth(text) > MAX_JSON_DEPTH:
            raise LatentsError(f"the latents file is nested more than {MAX_JSON_DEPTH} levels deep")
        try:
            d = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise LatentsError(f"the latents file is not valid JSON ({str(exc)[:120]})") from None
        if isinstance(d, dict) and "format" not in d and all(k in d for k in LEVELS):
            d = _from_generate_v0(d)
        if not isinstance(d, dict) or d.get("format") != LATENTS_FORMAT:
            raise LatentsError(f"not a Composer latents file (expected \"format\": \"{LATENTS_FORMAT}\")")
        if not isinstance(d.get("version", 1), int) or d.get("version", 1) > LATENTS_VERSION:
            raise LatentsError(f"latents format version {d.get('version')!r} is newer than this Composer reads "
                               f"({LATENTS_VERSION})")
        try:
            z, T, N = _count(d, "z_dim", 1, 4096), _count(d, "n_tracks", 1, 16), _count(d, "bars_per_phrase", 1, 64)
            n_bars = _count(d, "n_bars", 1, MAX_BARS)
            arr = lambda v, shape: _array(v, shape)  # noqa: E731
            if not isinstance(d["anchors"], list):
                raise LatentsError("anchors must be a list")
            anchors = [{"chords": arr(a["chords"], (z,)), "style": arr(a["style"], (z,)),
                        "melody": arr(a["melody"], (T, z)), "groove": arr(a["groove"], (T, z))} for a in d["anchors"]]
            truncation = d.get("truncation")
            if truncation is not None:
                if isinstance(truncation, bool) or not isinstance(truncation, (int, float)) \
                        or not math.isfinite(truncation) or truncation < 0:
                    raise LatentsError("truncation must be a finite number >= 0, or null (off)")
                truncation = float(truncation) or None
            tempo = d["tempo"]
            if isinstance(tempo, bool) or not isinstance(tempo, (int, float)) or not math.isfinite(tempo):
                raise LatentsError("tempo must be a number")
            chords_override = {}
            for b, v in _mapping(d, "chords_override").items():
                if not (isinstance(b, str) and b.isdigit() and int(b) < n_bars):
                    raise LatentsError(f"chords_override bar {b!r} is outside the piece (0-{n_bars - 1})")
                chords_override[int(b)] = arr(v, (z,))
            st = cls(seed=_count(d, "seed", 0, 2**63 - 1), n_bars=n_bars, tempo=float(tempo),
                     programs=[_int(p, "programs") for p in d["programs"]], truncation=truncation, z_dim=z,
                     n_tracks=T, bars_per_phrase=N, anchors=anchors, style_offset=arr(d["style_offset"], (z,)),
                     groove_offset=arr(d["groove_offset"], (T, z)), chords_offset=arr(d["chords_offset"], (n_bars, z)),
                     melody_offset=arr(d["melody_offset"], (T, n_bars, z)), chords_override=chords_override,
                     melody_override={_cell(k): arr(v, (z,)) for k, v in _mapping(d, "melody_override").items()},
                     locked={_cell(k): arr(v, (4 * z,)) for k, v in _mapping(d, "locked").items()},
                     reroll_counter=_count(d, "reroll_counter", 0, 2**31, default=0),
                     checkpoint=str(d.get("checkpoint", ""))[:200], soprano=_soprano(d.get("soprano", []), n_bars),
                     transpose=_int(d.get("transpose", 0), "transpose"), melody_only=d.get("melody_only", False))
            if not -36 <= st.transpose <= 36:
                raise LatentsError("transpose must be -36 to 36 semitones")
            if not isinstance(st.melody_only, bool):
                raise LatentsError("melody_only must be true or false")
        except LatentsError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LatentsError(f"the latents file is incomplete or malformed ({type(exc).__name__}: {exc})") from None
        if len(st.anchors) != _n_anchors(st.n_phrases):
            raise LatentsError("the latents file's anchors do not match its number of bars")
        if len(st.programs) != T or not all(0 <= p <= 127 for p in st.programs):
            raise LatentsError("programs must be one General MIDI number (0-127) per track")
        if not 20 <= st.tempo <= 300:
            raise LatentsError("tempo must be 20-300 quarter notes per minute")
        for (t, b) in list(st.melody_override) + list(st.locked):
            if not (0 <= t < T and 0 <= b < n_bars):
                raise LatentsError(f"cell ({t}, {b}) is outside the piece")
        return st


#: Limits on a latents file (a 32-bar piece with every cell locked is ~0.5 MB, 4 levels deep).
MAX_LATENTS_CHARS = 4_000_000
MAX_JSON_DEPTH = 8
LATENTS_VERSION = 1


def _json_depth(text: str) -> int:
    """Deepest nesting of ``[``/``{`` in JSON text (strings skipped), without recursion."""
    depth = best = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            best = max(best, depth)
        elif ch in "]}":
            depth -= 1
    return best


def _int(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v).is_integer():
        raise LatentsError(f"{name} must be whole numbers, got {v!r}")
    return int(v)


def _count(d: dict, key: str, lo: int, hi: int, default=None) -> int:
    v = d.get(key, default) if default is not None else d[key]
    v = _int(v, key)
    if not lo <= v <= hi:
        raise LatentsError(f"{key} must be {lo}-{hi}, got {v}")
    return v


def _mapping(d: dict, key: str) -> dict:
    v = d.get(key, {})
    if not isinstance(v, dict):
        raise LatentsError(f"{key} must be an object")
    return v


def _from_generate_v0(d: dict) -> dict:
    """The arrays-only file of the old ``generate`` (one entry per piece, latents already
    truncated) as the one format: its pieces become the phrases' anchors where they fit the
    anchor pattern (1 or 2 pieces), else its first piece is the piece."""
    try:
        lat = {k: np.asarray(d[k], dtype=np.float32) for k in LEVELS}
        n, z = lat["chords"].shape
        T = lat["melody"].shape[1]
    except (ValueError, TypeError) as exc:
        raise LatentsError(f"the old-format latents file is malformed ({exc})") from None
    N = int(d.get("n_bars", 4)) if isinstance(d.get("n_bars", 4), int) else 4
    pieces = n if _n_anchors(n) == n else 1
    n_bars = pieces * N
    programs = list(Composer.DEFAULT_PROGRAMS[:T]) + [0] * max(0, T - len(Composer.DEFAULT_PROGRAMS))
    return {"format": LATENTS_FORMAT, "version": 1, "seed": d.get("seed", 0), "n_bars": n_bars,
            "tempo": d.get("tempo", DEFAULT_TEMPO), "programs": programs, "truncation": d.get("truncation"),
            "z_dim": z, "n_tracks": T, "bars_per_phrase": N, "checkpoint": d.get("checkpoint", ""),
            "anchors": [{k: lat[k][i].tolist() for k in LEVELS} for i in range(pieces)],
            "style_offset": [0.0] * z, "groove_offset": [[0.0] * z] * T, "chords_offset": [[0.0] * z] * n_bars,
            "melody_offset": [[[0.0] * z] * n_bars] * T}


def _array(v, shape) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    if a.shape != tuple(shape):
        raise LatentsError(f"an array has shape {a.shape}, expected {tuple(shape)}")
    if not np.isfinite(a).all():
        raise LatentsError("the latents hold NaN or infinite values")
    return a


def _soprano(v, n_bars: int) -> list[tuple[int, int, int]]:
    """A fixed soprano from JSON: ``[[pitch, start, end], ...]`` inside the piece, one note at a time."""
    if not isinstance(v, list):
        raise LatentsError("soprano must be a list of [pitch, start step, end step]")
    steps = n_bars * 16
    if len(v) > steps:
        raise LatentsError("soprano has more notes than the piece has steps")
    out, last = [], 0
    for n in v:
        if not isinstance(n, list) or len(n) != 3:
            raise LatentsError("each soprano note must be [pitch, start step, end step]")
        p, s, e = (_int(x, "soprano notes") for x in n)
        if not (0 <= p <= 127 and last <= s < e <= steps):
            raise LatentsError(f"soprano note {n} is outside the piece or overlaps the one before")
        out.append((p, s, e))
        last = e
    return out


def _cell(key: str) -> tuple[int, int]:
    t, b = key.split(",")
    return int(t), int(b)


def _anchor_phrases(n_phrases: int) -> list[int]:
    """Phrases that carry their own latents: every third, and the last."""
    idx = list(range(0, n_phrases, 3))
    if idx[-1] != n_phrases - 1:
        idx.append(n_phrases - 1)
    return idx


def _n_anchors(n_phrases: int) -> int:
    return len(_anchor_phrases(n_phrases))


# ----------------------------------------------------------------------------------------------
# The composer: a generator plus the edits
# ----------------------------------------------------------------------------------------------

class Composer:
    """Turns :class:`ComposeState` into music with one MuseGAN generator (in eval mode).

    Parameters
    ----------
    generator : composer.models.musegan.Generator
    directions : Directions, optional
        Measured on first use when not given.
    name : str
        The checkpoint's name, written into latents JSON.
    tempo, truncation : float
        Defaults for new pieces (the model card's; truncation None = off).
    """

    VOICES = ("Soprano", "Alto", "Tenor", "Bass")
    DEFAULT_PROGRAMS = [40, 41, 42, 43]

    def __init__(self, generator, directions: Directions | None = None, name: str = "", tempo: float = DEFAULT_TEMPO,
                 truncation: float | None = None):
        self.g = generator.eval()
        self.cfg = generator.cfg
        self.name = name
        self.default_tempo = tempo
        self.default_truncation = float(truncation) if truncation else None
        self._directions = directions
        self.path: str | None = None     # the checkpoint file (set by load_composer)
        self._on_device: dict[str, torch.nn.Module] = {}  # copies of the generator on other devices

    @property
    def directions(self) -> Directions:
        if self._directions is None:
            self._directions = measure_directions(self.g)
        return self._directions

    @property
    def track_names(self) -> list[str]:
        T = self.cfg.n_tracks
        return list(self.VOICES[:T]) if T <= 4 else [f"Track {t + 1}" for t in range(T)]

    # --- making states -------------------------------------------------------------------
    def new_state(self, seed: int = 0, n_bars: int | None = None, truncation: float | None = None,
                  tempo: float | None = None, programs: list[int] | None = None) -> ComposeState:
        cfg = self.cfg
        n_bars = int(n_bars or cfg.n_bars)
        if not 1 <= n_bars <= MAX_BARS:
            raise ComposerError(f"bars must be 1-{MAX_BARS}, got {n_bars}")
        # None: the model's recommended truncation; 0: off
        truncation = self.default_truncation if truncation is None else (float(truncation) or None)
        z, T = cfg.z_dim, cfg.n_tracks
        n_phrases = -(-n_bars // cfg.n_bars)
        rng = np.random.default_rng(int(seed))
        anchors = [self._truncate(_draw(rng, z, T), truncation) for _ in range(_n_anchors(n_phrases))]
        return ComposeState(seed=int(seed), n_bars=n_bars, tempo=float(tempo or self.default_tempo),
                            programs=list(programs or self.DEFAULT_PROGRAMS[:T] + [0] * max(0, T - 4)),
                            truncation=truncation, z_dim=z, n_tracks=T, bars_per_phrase=cfg.n_bars, anchors=anchors,
                            style_offset=np.zeros(z, np.float32), groove_offset=np.zeros((T, z), np.float32),
                            chords_offset=np.zeros((n_bars, z), np.float32),
                            melody_offset=np.zeros((T, n_bars, z), np.float32), checkpoint=self.name)

    @staticmethod
    def _truncate(lat: dict[str, np.ndarray], t: float | None) -> dict[str, np.ndarray]:
        return {k: np.clip(v, -t, t) for k, v in lat.items()} if t else lat

    def _check(self, st: ComposeState) -> None:
        cfg = self.cfg
        if (st.z_dim, st.n_tracks, st.bars_per_phrase) != (cfg.z_dim, cfg.n_tracks, cfg.n_bars):
            raise LatentsError(f"these latents are for a model with z={st.z_dim}, {st.n_tracks} tracks, "
                               f"{st.bars_per_phrase}-bar phrases; the loaded model has z={cfg.z_dim}, "
                               f"{cfg.n_tracks} tracks, {cfg.n_bars}-bar phrases")

    def phrase_latents(self, st: ComposeState) -> list[dict[str, np.ndarray]]:
        """Latents of every phrase: anchors, and slerp between them."""
        idx = _anchor_phrases(st.n_phrases)
        out = []
        for p in range(st.n_phrases):
            k = max(i for i, a in enumerate(idx) if a <= p)
            if idx[k] == p or k + 1 >= len(idx):
                out.append(st.anchors[k])
                continue
            t = (p - idx[k]) / (idx[k + 1] - idx[k])
            a, b = st.anchors[k], st.anchors[k + 1]
            out.append({name: slerp(a[name], b[name], t) for name in a})
        return out

    @torch.no_grad()
    def grid(self, st: ComposeState) -> torch.Tensor:
        """The edited grid ``(tracks, bars, 4z)`` of the whole piece."""
        self._check(st)
        z = st.z_dim
        lat = self.phrase_latents(st)
        stack = lambda k: torch.from_numpy(np.stack([p[k] for p in lat]))  # noqa: E731
        style = stack("style") + torch.from_numpy(st.style_offset)
        groove = stack("groove") + torch.from_numpy(st.groove_offset)
        g = self.g.expand_latents(stack("chords"), style, stack("melody"), groove)  # (P, T, N, 4z)
        P, T, N, D = g.shape
        g = g.permute(1, 0, 2, 3).reshape(T, P * N, D)[:, : st.n_bars].clone()
        g[:, :, :z] += torch.from_numpy(st.chords_offset)[None]
        for b, v in st.chords_override.items():
            g[:, b, :z] = torch.from_numpy(v) + torch.from_numpy(st.chords_offset[b])
        g[:, :, 2 * z:3 * z] += torch.from_numpy(st.melody_offset)
        for (t, b), v in st.melody_override.items():
            g[t, b, 2 * z:3 * z] = torch.from_numpy(v) + torch.from_numpy(st.melody_offset[t, b])
        for (t, b), v in st.locked.items():
            g[t, b] = torch.from_numpy(v)
        return g

    def generator_on(self, device: str | torch.device | None = None):
        """The generator on ``device`` (None or the CPU: the loaded one; others: a copy, made once)."""
        dev = torch.device(device) if device is not None else torch.device("cpu")
        if dev.type == "cpu":
            return self.g
        key = str(dev)
        if key not in self._on_device:
            self._on_device[key] = copy.deepcopy(self.g).to(dev).eval()
        return self._on_device[key]

    @torch.no_grad()
    def codes(self, st: ComposeState, device: str | torch.device | None = None, raw: bool = False) -> np.ndarray:
        """REST/HOLD/ONSET codes ``(tracks, bars, steps, pitches)`` of the piece.

        ``device``: where the bar generators run (None: the CPU); the latents are edited on the CPU.
        A fixed soprano (:meth:`fix_soprano`) replaces the decoded soprano in its locked cells and
        the piece moves by ``st.transpose``; ``raw=True`` gives the generator's own output instead.
        """
        g = self.generator_on(device)
        grid = self.grid(st)[None]
        x = g.decode(grid.to(next(g.parameters()).device))[0].float().cpu().numpy()
        codes = float_to_codes(x, monophonic=True)
        return codes if raw else self.with_soprano(st, codes)

    @staticmethod
    def with_soprano(st: ComposeState, codes: np.ndarray) -> np.ndarray:
        """Decoded codes as the piece sounds: the fixed soprano written into its locked cells,
        the other voices silent for a plain melody, everything moved by ``st.transpose``."""
        if not (st.soprano or st.melody_only or st.transpose):
            return codes
        from composer.music.pianoroll import codes_from_notes
        codes = codes.copy()
        T, B, S, P = codes.shape
        if st.soprano:
            rows = np.array([(p - 24, s, e) for p, s, e in st.soprano], dtype=np.int64).reshape(-1, 3)
            mel = codes_from_notes(rows, B * S, P).reshape(B, S, P)
            for b in range(B):
                if (0, b) in st.locked or st.melody_only:
                    codes[0, b] = mel[b]
        if st.melody_only:
            codes[1:] = REST
        k = int(st.transpose)
        if k:
            out = np.zeros_like(codes)
            if k > 0:
                out[..., k:] = codes[..., :-k]
            else:
                out[..., :k] = codes[..., -k:]
            codes = out
        return codes

    def fix_soprano(self, st: ComposeState, notes, transpose: int = 0) -> ComposeState:
        """The piece with a fixed soprano: ``notes`` ``(MIDI pitch, start step, end step)`` sung in
        every soprano cell, which are locked (so re-rolls and sliders move the other voices only;
        unlock a soprano cell to hear the generator's own soprano there). ``transpose``: semitones
        the piece moves on the way out (the melody's own key when it was moved into range)."""
        st = self.lock(st, track=0)
        st.soprano = [tuple(int(x) for x in n) for n in notes]
        st.transpose = int(transpose)
        st.melody_only = False
        return st

    def plain_melody(self, st: ComposeState) -> ComposeState:
        """The fixed soprano alone (the other voices rest): what there was before harmonizing."""
        if not st.soprano:
            raise ComposerError("this piece has no fixed melody")
        st = st.copy()
        st.melody_only = True
        return st

    def roll(self, st: ComposeState) -> MultiTrackRoll:
        return MultiTrackRoll(codes=self.codes(st), programs=list(st.programs), names=self.track_names,
                              tempo=st.tempo)

    def midi(self, st: ComposeState) -> pretty_midi.PrettyMIDI:
        return self.roll(st).to_pretty_midi()

    # --- edits (each returns a new state; the old one is untouched, for undo) ---------------
    def _fresh_melody(self, st: ComposeState, t: int, b: int) -> np.ndarray:
        """The melody slice bar ``b`` of track ``t`` gets from a newly drawn melody latent."""
        st.reroll_counter += 1
        rng = np.random.default_rng([st.seed, st.reroll_counter])
        m = torch.zeros(1, st.n_tracks, st.z_dim)
        m[0, t] = torch.from_numpy(self._truncate({"m": rng.standard_normal(st.z_dim).astype(np.float32)},
                                                  st.truncation)["m"])
        with torch.no_grad():
            return self.g.melody_nets(m)[0, t, b % st.bars_per_phrase].numpy().copy()

    def _fresh_chords(self, st: ComposeState, b: int) -> np.ndarray:
        st.reroll_counter += 1
        rng = np.random.default_rng([st.seed, st.reroll_counter])
        c = self._truncate({"c": rng.standard_normal(st.z_dim).astype(np.float32)}, st.truncation)["c"]
        with torch.no_grad():
            return self.g.chords_net(torch.from_numpy(c)[None, None])[0, 0, b % st.bars_per_phrase].numpy().copy()

    def reroll(self, st: ComposeState, track: int | None = None, bar: int | None = None) -> ComposeState:
        """Re-roll a cell (track and bar), a whole track, a whole bar, or (neither) the piece.

        Locked cells never change.
        """
        st = st.copy()
        st.melody_only = False
        T, B = st.n_tracks, st.n_bars
        if track is not None and not 0 <= track < T:
            raise ComposerError(f"track must be 1-{T}")
        if bar is not None and not 0 <= bar < B:
            raise ComposerError(f"bar must be 1-{B}")
        if track is not None and bar is not None:
            st.melody_override[(track, bar)] = self._fresh_melody(st, track, bar)
        elif track is not None:
            st.reroll_counter += 1
            rng = np.random.default_rng([st.seed, st.reroll_counter])
            for a in st.anchors:
                fresh = self._truncate(_draw(rng, st.z_dim, T), st.truncation)
                a["melody"][track], a["groove"][track] = fresh["melody"][track], fresh["groove"][track]
            st.melody_override = {k: v for k, v in st.melody_override.items() if k[0] != track}
        elif bar is not None:
            st.chords_override[bar] = self._fresh_chords(st, bar)
            for t in range(T):
                st.melody_override[(t, bar)] = self._fresh_melody(st, t, bar)
        else:
            st.reroll_counter += 1
            rng = np.random.default_rng([st.seed, st.reroll_counter])
            st.anchors = [self._truncate(_draw(rng, st.z_dim, T), st.truncation) for _ in st.anchors]
            st.chords_override, st.melody_override = {}, {}
        return st

    def variations(self, st: ComposeState, n: int = 4, track: int | None = None,
                   bar: int | None = None) -> list[ComposeState]:
        """``n`` alternatives to audition: successive re-rolls of the same cell, track, bar or
        (neither) piece, each differing from ``st`` only there (locked cells never change)."""
        out, cur = [], st
        for _ in range(int(n)):
            cur = self.reroll(cur, track=track, bar=bar)
            out.append(cur)
        return out

    def lock(self, st: ComposeState, track: int | None = None, bar: int | None = None,
             locked: bool = True) -> ComposeState:
        """Lock (or unlock) a cell, a track, a bar, or (neither) every cell."""
        st2 = st.copy()
        g = self.grid(st).numpy()
        for t in range(st.n_tracks) if track is None else [track]:
            for b in range(st.n_bars) if bar is None else [bar]:
                if locked:
                    st2.locked.setdefault((t, b), g[t, b].copy())
                else:
                    st2.locked.pop((t, b), None)
        return st2

    def set_direction(self, st: ComposeState, level: str, index: int, value: float,
                      track: int | None = None, bar: int | None = None) -> ComposeState:
        """Set the slider ``index`` of ``level`` (for a track / bar / cell) to ``value`` units."""
        st = st.copy()
        st.melody_only = False
        d = self.directions.vectors[level][index]
        unit = d * self.directions.scales[level][index]
        target = self._offset_view(st, level, track, bar)
        current = float(target @ d) / float(self.directions.scales[level][index])
        target += (value - current) * unit
        return st

    def direction_value(self, st: ComposeState, level: str, index: int, track: int | None = None,
                        bar: int | None = None) -> float:
        d = self.directions.vectors[level][index]
        return float(self._offset_view(st, level, track, bar) @ d) / float(self.directions.scales[level][index])

    def set_raw(self, st: ComposeState, level: str, values: list[float], track: int | None = None,
                bar: int | None = None) -> ComposeState:
        """Set every dimension of a level's offset (the advanced view)."""
        st = st.copy()
        st.melody_only = False
        view = self._offset_view(st, level, track, bar)
        view[:] = np.asarray(values, np.float32)
        return st

    def raw_values(self, st: ComposeState, level: str, track: int | None = None, bar: int | None = None) -> np.ndarray:
        return self._offset_view(st, level, track, bar).copy()

    @staticmethod
    def _offset_view(st: ComposeState, level: str, track: int | None, bar: int | None) -> np.ndarray:
        if level == "style":
            return st.style_offset
        if level == "groove":
            return st.groove_offset[track or 0]
        if level == "chords":
            return st.chords_offset[bar or 0]
        if level == "melody":
            return st.melody_offset[track or 0, bar or 0]
        raise ComposerError(f"unknown level {level!r}; one of {', '.join(LEVELS)}")

    def reset(self, st: ComposeState) -> ComposeState:
        """Back to the seed's piece: no offsets, no re-rolled cells, no locks."""
        return self.new_state(st.seed, st.n_bars, st.truncation or 0, st.tempo, st.programs)

    def resize(self, st: ComposeState, n_bars: int) -> ComposeState:
        """Change the number of bars, keeping the seed, instruments, tempo and style/groove edits."""
        new = self.new_state(st.seed, n_bars, st.truncation or 0, st.tempo, st.programs)
        new.style_offset, new.groove_offset = st.style_offset.copy(), st.groove_offset.copy()
        keep = min(st.n_bars, n_bars)
        new.chords_offset[:keep] = st.chords_offset[:keep]
        new.melody_offset[:, :keep] = st.melody_offset[:, :keep]
        if _anchor_phrases(new.n_phrases)[:1] == [0]:
            new.anchors[0] = copy.deepcopy(st.anchors[0])
        new.chords_override = {b: v for b, v in st.chords_override.items() if b < n_bars}
        new.melody_override = {k: v for k, v in st.melody_override.items() if k[1] < n_bars}
        new.locked = {k: v for k, v in st.locked.items() if k[1] < n_bars}
        new.reroll_counter = st.reroll_counter
        new.soprano = [n for n in st.soprano if n[1] < n_bars * 16]
        new.soprano = [(p, s, min(e, n_bars * 16)) for p, s, e in new.soprano]
        new.transpose, new.melody_only = st.transpose, st.melody_only
        return new


# ----------------------------------------------------------------------------------------------
# Loading the shipped generator
# ----------------------------------------------------------------------------------------------

def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def load_composer(path: str | Path | None = None) -> Composer:
    """A :class:`Composer` over a MuseGAN checkpoint.

    The default is ``$COMPOSER_MUSEGAN`` or checkpoints/musegan.safetensors. Directions are
    measured once per checkpoint (by file digest) and cached in the cache folder.
    """
    from composer.music.corpus import cache_dir
    path = path or os.environ.get("COMPOSER_MUSEGAN") or None
    model = load_generator(path)
    digest = file_digest(model.path)
    cache = cache_dir() / f"directions-v3-{digest}.json"
    directions = None
    if cache.exists():
        try:
            directions = Directions.from_dict(json.loads(cache.read_text()))
        except (ValueError, KeyError):
            directions = None
    comp = Composer(model.generator, directions, name=f"{model.path.stem}@{digest}",
                    tempo=float(model.card.get("tempo", DEFAULT_TEMPO)), truncation=model.card.get("truncation"))
    if directions is None:
        cache.write_text(json.dumps(comp.directions.to_dict()))
    comp.path = str(model.path)
    return comp


_COMPOSERS: dict[str, Composer] = {}
_COMPOSERS_LOCK = threading.Lock()
MAX_CACHED_COMPOSERS = 8


def cached_composer(path: str | Path | None = None) -> Composer:
    """:func:`load_composer`, once per checkpoint file (a read-only cache shared by every caller).

    Keyed by the resolved path and the file's size and time, so a rewritten file loads again;
    the oldest entries beyond :data:`MAX_CACHED_COMPOSERS` are dropped.
    """
    from composer.api.musegan import default_checkpoint
    p = Path(path or os.environ.get("COMPOSER_MUSEGAN") or default_checkpoint()).resolve()
    try:
        stat = p.stat()
    except OSError:
        return load_composer(p)  # raises the usual CheckpointError
    key = f"{p}|{stat.st_size}|{stat.st_mtime_ns}"
    with _COMPOSERS_LOCK:
        comp = _COMPOSERS.get(key)
        if comp is not None:
            return comp
    comp = load_composer(p)
    with _COMPOSERS_LOCK:
        comp = _COMPOSERS.setdefault(key, comp)
        while len(_COMPOSERS) > MAX_CACHED_COMPOSERS:
            _COMPOSERS.pop(next(iter(_COMPOSERS)))
    return comp


# --------------------------------------------------------------------------------------------
# Files of a piece: the fast path (audio + roll) and the slow part (score, MusicXML, latents)
# --------------------------------------------------------------------------------------------

def piece_stem(st: ComposeState) -> str:
    """File name of a piece's downloads, after the piece: ``composer-seed42-16bars``."""
    return f"composer-seed{st.seed}-{st.n_bars}bars"


def roll_title(st: ComposeState) -> str:
    """The title on a Compose piece's piano roll."""
    return f"seed {st.seed}, {st.n_bars} bars"


def render_state(comp: Composer, st: ComposeState, folder: Path | None = None):
    """The fast path: generate, render audio, draw the piano roll (side by side). Returns
    (png, wav, midi, folder).

    The WAV is the live audio, at :data:`composer.render.audio.PREVIEW_RATE`; the download
    at full rate is made by :func:`finish_outputs`. Without a ``folder``, the MIDI goes to a
    new request folder and the live files (roll, WAV) to a folder of
    :data:`composer.render.outputs.LIVE_ROOT`, which the app serves as they lie.
    """
    live = folder or new_output_dir("composer-live-", root=LIVE_ROOT)
    folder = folder or new_output_dir("composer-compose-")
    stem = piece_stem(st)
    pm = comp.midi(st)
    png, wav, midi = live / f"{stem}.png", live / f"{stem}-preview.wav", folder / f"{stem}.mid"
    sound_and_roll(pm, wav, png, midi, title=roll_title(st), sample_rate=audio.PREVIEW_RATE)
    return png, wav, midi, folder


#: Seconds the Compose score may take in its worker (32 bars on a busy 2-core machine: ~5 s).
SCORE_TIMEOUT_S = 20.0


def finish_outputs(comp: Composer, st: ComposeState, folder: Path, stop: Callable[[], bool] | None = None):
    """The slow part: WAV download, MusicXML, score, latents JSON; returns (download list,
    score html), or None when ``stop()`` says, during the WAV or after it, that they are no
    longer wanted (the Compose tab: a newer piece is on its way).

    The WAV download is the piece at :data:`composer.render.audio.SAMPLE_RATE` (the live
    audio of :func:`render_state` is at the preview rate). The score is engraved from the
    roll itself (exact rhythms, a clef per voice, the key signature of the piece's key, four
    bars a line), and the MusicXML download is that score.
    """
    stem = piece_stem(st)
    files = [folder / f"{stem}.mid", folder / f"{stem}.wav"]
    latents = folder / f"{stem}.json"
    latents.write_text(st.to_json())
    # on one synth, and given up when a newer piece comes: the next phrase may be rendering
    # (or about to) on the other core
    try:
        audio.render_to_wav(pretty_midi.PrettyMIDI(str(files[0])), files[1], split=False, stop=stop)
    except audio.Stopped:
        return None
    if stop is not None and stop():
        return None
    score = ""
    try:
        # in a worker process: music21 is pure Python for a second or more, and in this
        # process it would hold the GIL against the next edit's audio loop
        xml, pages = sandbox.run("composer.render.viz:roll_score_parts", comp.roll(st), f"Composer - seed {st.seed}",
                                 timeout=SCORE_TIMEOUT_S, what="cannot draw this score")
        (folder / f"{stem}.musicxml").write_text(xml, encoding="utf-8")
        files.append(folder / f"{stem}.musicxml")
        score = viz.svg_pages_html(pages)
    except ComposerError as exc:
        score = f"<p>Score not available: {exc}</p>"
    files.append(latents)
    return [str(f) for f in files if f.exists()], score
