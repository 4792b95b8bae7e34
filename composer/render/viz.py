"""Pictures of music: a piano roll (PNG) and sheet music (MusicXML, SVG).

The piano roll is drawn straight into a pixel image with Pillow (rectangles, lines and
text in C, no figure machinery): a 16-bar, 4-track roll takes a few milliseconds, so the
Compose tab can redraw it on every slider move. Sheet music goes PrettyMIDI -> music21
(quantised) -> MusicXML -> verovio SVG.
"""
from __future__ import annotations

import functools
import io
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pretty_midi

from composer.errors import ScoreError

#: One colour per track, from matplotlib's tab10 (colour-blind friendlier than rainbow).
TRACK_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
#: At most this many bars are engraved on screen (the MusicXML download has them all).
MAX_SCORE_BARS = 48


#: Where the axes of the piano roll lie in its image, as fractions of the image's width and
#: height from the top-left corner. The Compose tab's playhead (composer.ui.compose) reads
#: them to put its line over the music; AX_WIDTH is for a roll with a legend (more than one
#: track), AX_WIDTH_SOLO for one without.
AX_LEFT, AX_WIDTH, AX_WIDTH_SOLO, AX_TOP, AX_HEIGHT = 0.07, 0.78, 0.90, 0.08, 0.80

# The roll is a palette image: a few flat colours (and a grey ramp for anti-aliased text)
# encode to PNG several times faster than RGB, which zlib has to filter row by row.
_WHITE, _BLACK, _BLACK_KEY_ROW, _BEAT_LINE, _BAR_LINE = range(5)
_FILL0, _EDGE0, _GREY0, _GREYS = 8, 8 + len(TRACK_COLOURS), 32, 16
_TEXT_RGB = (30, 30, 30)


def _rgb(hexcol: str) -> tuple[int, int, int]:
    return tuple(int(hexcol[i:i + 2], 16) for i in (1, 3, 5))


def _palette() -> list[int]:
    pal = [(255, 255, 255), (0, 0, 0),
           (243, 243, 243),  # rows of the black keys, faintly shaded as on a keyboard
           (221, 221, 221), (136, 136, 136)]  # beat lines light, bar lines dark
    pal += [(0, 0, 0)] * (_FILL0 - len(pal))
    fills = [_rgb(c) for c in TRACK_COLOURS]
    pal += fills
    pal += [tuple(int(c * 0.55) for c in f) for f in fills]  # outlines: touching notes stay apart
    pal += [(0, 0, 0)] * (_GREY0 - len(pal))
    for k in range(_GREYS):  # text over white, from white (k = 0) to the text colour
        pal.append(tuple(round(255 + (t - 255) * k / (_GREYS - 1)) for t in _TEXT_RGB))
    return [c for rgb in pal for c in rgb]


_PALETTE = _palette()


@functools.lru_cache(maxsize=16)
def _font(px: int, bold: bool = False):
    """DejaVu Sans (the font matplotlib ships, so no system font is needed) at ``px`` pixels."""
    from PIL import ImageFont
    import matplotlib
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    path = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", name)
    try:
        return ImageFont.truetype(path, px)
    except OSError:  # a matplotlib without its fonts: Pillow's own scalable font
        return ImageFont.load_default(px)


@functools.lru_cache(maxsize=1024)
def _text_mask(text: str, px: int, anchor: str, bold: bool = False):
    """``text`` rendered once as a greyscale mask, and its offset from the anchor point
    (labels repeat from one roll to the next: C4, bar numbers, track names)."""
    from PIL import Image, ImageDraw
    font = _font(px, bold)
    left, top, right, bottom = font.getbbox(text, anchor=anchor)
    mask = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, fill=255, font=font, anchor=anchor)
    return mask, left, top


def _nice_step(span: float, target: int = 8) -> float:
    """A tick step of 1, 2, 2.5 or 5 times a power of ten giving about ``target`` ticks."""
    raw = max(span, 1e-9) / target
    mag = 10.0 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def _tick_label(v: float, step: float) -> str:
    if step >= 1:
        return f"{v:.0f}"
    return f"{v:.{-math.floor(math.log10(step)) + 1}f}".rstrip("0").rstrip(".")


def _every(n_lines: int, span_px: float, min_px: float) -> int:
    """Draw every k-th of ``n_lines`` evenly spread lines (k a power of two) so that drawn
    lines are at least ``min_px`` apart."""
    k = 1
    while n_lines > 1 and span_px / n_lines * k < min_px:
        k *= 2
    return k


def pianoroll_image(pm: pretty_midi.PrettyMIDI, title: str | None = None, width: float = 10.0,
                    height: float = 4.0, dpi: int = 100, marks: list[float] | None = None,
                    pitch_range: tuple[int, int] | None = None, until: float | None = None):
    """A piano roll of ``pm`` as a Pillow palette image, ``width`` x ``height`` inches at ``dpi``.

    What a reader finds on it: one colour per track (:data:`TRACK_COLOURS`, a legend on the
    right when there is more than one track), notes as bars at their pitch and time, pitch
    names at every C (C3, C4 ...), bar lines dark and beat lines light (bars numbered on
    top), rows of the black keys faintly shaded, the time in seconds below. The axes span
    :data:`AX_LEFT`, :data:`AX_WIDTH` (:data:`AX_WIDTH_SOLO` without a legend),
    :data:`AX_TOP` and :data:`AX_HEIGHT` of the image.

    Parameters
    ----------
    pm : PrettyMIDI
    title : str, optional
        Written above the roll, on the left.
    marks : list of float, optional
        Times in seconds to mark with a dashed vertical line (e.g. the seam between a
        prompt and its continuation).
    pitch_range : (int, int), optional
        Lowest and highest MIDI pitch to show (default: the piece's own), so that two rolls
        (a piece before and after a transfer) share one pitch axis.
    until : float, optional
        Show only the first ``until`` seconds (long pieces: notes stay readable).
    """
    from PIL import Image, ImageDraw
    W, H = max(1, round(width * dpi)), max(1, round(height * dpi))
    px = lambda pt: max(6, round(pt * dpi / 72))  # noqa: E731 - font points to pixels, as matplotlib does
    tracks = [(k, inst) for k, inst in enumerate(pm.instruments) if inst.notes]
    legend = len(tracks) > 1
    x0, x1 = round(AX_LEFT * W), round((AX_LEFT + (AX_WIDTH if legend else AX_WIDTH_SOLO)) * W)
    y0, y1 = round(AX_TOP * H), round((AX_TOP + AX_HEIGHT) * H)
    aw, ah = x1 - x0, y1 - y0
    end = max(pm.get_end_time(), 1e-3) if tracks else 1.0  # empty music: an empty second
    if until is not None:
        end = min(end, max(float(until), 1e-3))
    pitches = [n.pitch for _, inst in tracks for n in inst.notes]
    if pitch_range is not None:
        pitches = [int(pitch_range[0]), int(pitch_range[1])]
    lo, hi = (min(pitches) - 2, max(pitches) + 2) if pitches else (58, 74)
    rh = ah / (hi - lo + 1)  # pixels per semitone
    xs = lambda t: x0 + np.asarray(t, dtype=float) / end * aw  # noqa: E731 - seconds to pixels
    row_top = lambda p: y0 + (hi - p) * rh  # noqa: E731 - top edge of pitch p's row

    img = Image.new("P", (W, H), _WHITE)
    img.putpalette(_PALETTE)
    d = ImageDraw.Draw(img)
    if rh >= 3:
        for p in range(lo, hi + 1):
            if p % 12 in (1, 3, 6, 8, 10):
                d.rectangle([x0, round(row_top(p)), x1 - 1, round(row_top(p - 1)) - 1], fill=_BLACK_KEY_ROW)

    # beat lines light, bar lines dark; get_downbeats follows the time signatures. On long
    # music only every 2nd, 4th ... bar line is drawn, so that the lines stay apart.
    beats, downbeats = pm.get_beats(), pm.get_downbeats()
    beats, downbeats = beats[beats <= end], downbeats[downbeats <= end]
    if len(beats) and aw / len(beats) >= 4:
        for x in np.round(xs(beats)).astype(int).tolist():
            d.line([(x, y0), (x, y1 - 1)], fill=_BEAT_LINE)
    bar_k = _every(len(downbeats), aw, 6)
    for x in np.round(xs(downbeats[::bar_k])).astype(int).tolist():
        d.line([(x, y0), (x, y1 - 1)], fill=_BAR_LINE)

    pad = max(1.0, 0.1 * rh) if rh >= 3 else 0.0  # a note fills 80 % of its row
    for k, inst in tracks:
        fill, edge = _FILL0 + k % len(TRACK_COLOURS), _EDGE0 + k % len(TRACK_COLOURS)
        arr = np.array([(n.start, n.end, n.pitch) for n in inst.notes], dtype=float)
        # only what the axes show (``until``, ``pitch_range``): nothing is drawn on the margins
        arr = arr[(arr[:, 0] < end) & (arr[:, 2] >= lo) & (arr[:, 2] <= hi)]
        arr[:, 1] = np.minimum(arr[:, 1], end)
        xa = np.round(xs(arr[:, 0])).astype(int)
        xb = np.maximum(xa, np.round(xs(arr[:, 1])).astype(int) - 1)
        ya = np.round(row_top(arr[:, 2]) + pad).astype(int)
        yb = np.maximum(ya, np.round(row_top(arr[:, 2] - 1) - pad).astype(int) - 1)
        for a, b, c, e in zip(xa.tolist(), ya.tolist(), xb.tolist(), yb.tolist()):
            if c - a >= 3 and e - b >= 3:
                d.rectangle([a, b, c, e], fill=fill, outline=edge)
            else:  # too small for an outline: the colour alone
                d.rectangle([a, b, c, e], fill=fill)
    for t in marks or ():
        x = int(round(float(xs(t))))
        for y in range(y0, y1, 10):
            d.line([(x, y), (x, min(y + 5, y1 - 1))], fill=_BLACK, width=2)
    d.rectangle([x0 - 1, y0 - 1, x1, y1], outline=_BLACK)

    # text goes on a mask of its own (anti-aliased), laid over the white margins at the end
    text = Image.new("L", (W, H), 0)

    def put(xy, s, size, anchor, bold=False):
        mask, left, top = _text_mask(s, size, anchor, bold)
        text.paste(mask, (int(xy[0]) + left, int(xy[1]) + top), mask)

    # pitch names at every C (or evenly spread when the range holds fewer than two Cs)
    cs = [p for p in range(lo, hi + 1) if p % 12 == 0]
    if len(cs) < 2:
        cs = list(range(lo, hi + 1, max(1, (hi - lo) // 6)))
    for p in cs:
        y = round(row_top(p) + rh / 2)
        d.line([(x0 - 5, y), (x0 - 2, y)], fill=_BLACK)
        put((x0 - 8, y), pretty_midi.note_number_to_name(p), px(10), "rm")
    step = _nice_step(end)  # seconds below
    for v in np.arange(0.0, end + step * 1e-6, step):
        x = int(round(float(xs(v))))
        d.line([(x, y1 + 1), (x, y1 + 4)], fill=_BLACK)
        put((x, y1 + 6), _tick_label(float(v), step), px(10), "ma")
    put(((x0 + x1) // 2, H - 4), "time (s)  |  bar lines dark, beats light", px(10), "md")
    # bar numbers on top: every bar while they fit, else every 2nd, 4th ...
    label_k = max(bar_k, _every(len(downbeats), aw, px(7) * 0.7 * len(str(len(downbeats))) + 6))
    for i in range(0, len(downbeats), label_k):
        put((int(round(float(xs(downbeats[i])))), y0 - 3), str(i + 1), px(7), "md")
    if title:
        put((x0, 2), title, px(9), "la", bold=True)
    if legend:
        lx, ly, sw = x1 + round(0.015 * W), y0 + px(6), px(15)
        for k, inst in tracks:
            d.rectangle([lx, ly - px(3), lx + sw, ly + px(3)], fill=_FILL0 + k % len(TRACK_COLOURS),
                        outline=_EDGE0 + k % len(TRACK_COLOURS))
            name = inst.name or pretty_midi.program_to_instrument_name(inst.program)
            put((lx + sw + px(5), ly), name if len(name) <= 18 else name[:17] + "\u2026", px(8), "lm")
            ly += px(13)

    idx, ink = np.array(img), np.asarray(text)
    on = ink > 0
    idx[on] = _GREY0 + (ink[on].astype(np.uint16) * (_GREYS - 1) + 127) // 255
    out = Image.frombytes("P", (W, H), idx.tobytes())
    out.putpalette(_PALETTE)
    return out


def pianoroll_png(pm: pretty_midi.PrettyMIDI, **kwargs) -> bytes:
    """The piano roll of ``pm`` as PNG bytes (see :func:`pianoroll_image`)."""
    buf = io.BytesIO()
    pianoroll_image(pm, **kwargs).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def save_pianoroll(pm: pretty_midi.PrettyMIDI, path: str | os.PathLike, **kwargs) -> Path:
    """Write the piano roll of ``pm`` as a PNG file."""
    path = Path(path)
    path.write_bytes(pianoroll_png(pm, **kwargs))
    return path


def to_music21(pm: pretty_midi.PrettyMIDI):
    """A quantised music21 Score of ``pm`` (via a temporary MIDI file)."""
    from music21 import converter
    fd, tmp = tempfile.mkstemp(suffix=".mid")
    os.close(fd)
    try:
        pm.write(tmp)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return converter.parse(tmp, format="midi", quantizePost=True)
    except Exception as exc:  # music21 raises many types on odd MIDI
        raise ScoreError(f"could not make a score of this music ({type(exc).__name__}: {exc})") from None
    finally:
        os.unlink(tmp)


def musicxml(pm_or_score, title: str | None = None) -> str:
    """MusicXML text of a PrettyMIDI or a music21 stream."""
    from music21 import metadata
    from music21.musicxml.m21ToXml import GeneralObjectExporter
    score = to_music21(pm_or_score) if isinstance(pm_or_score, pretty_midi.PrettyMIDI) else pm_or_score
    # without a title music21 writes "Music21 Fragment" at the top of the page
    score.metadata = score.metadata or metadata.Metadata()
    score.metadata.title = title or ""
    score.metadata.movementName = title or ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return GeneralObjectExporter(score).parse().decode("utf-8")
    except Exception as exc:
        raise ScoreError(f"could not write MusicXML ({type(exc).__name__}: {exc})") from None


def score_svg(data: str, input_format: str = "musicxml", max_pages: int = 6, page_width: int = 2100,
              scale: int = 35, breaks: str = "auto") -> list[str]:
    """Engrave MusicXML (or ABC with ``input_format="abc"``) to SVG pages with verovio."""
    import verovio
    tk = verovio.toolkit(False)
    tk.setResourcePath(verovio.__path__[0] + "/data") if hasattr(verovio, "__path__") else None
    tk.setOptions({"inputFrom": input_format, "pageWidth": page_width, "scale": scale, "adjustPageHeight": True,
                   "footer": "none", "header": "auto", "breaks": breaks})
    if not tk.loadData(data):
        raise ScoreError(f"verovio could not read this {input_format}")
    pages = min(tk.getPageCount(), max_pages)
    if pages == 0:
        raise ScoreError("verovio produced an empty score")
    return [tk.renderToSVG(i + 1) for i in range(pages)]


def _first_bars(pm: pretty_midi.PrettyMIDI, n_bars: int) -> pretty_midi.PrettyMIDI:
    downbeats = pm.get_downbeats()
    if len(downbeats) <= n_bars:
        return pm
    cut = downbeats[n_bars]
    out = pretty_midi.PrettyMIDI(resolution=pm.resolution, initial_tempo=float(pm.get_tempo_changes()[1][0])
                                 if len(pm.get_tempo_changes()[1]) else 120.0)
    out.time_signature_changes = [ts for ts in pm.time_signature_changes if ts.time < cut]
    for inst in pm.instruments:
        new = pretty_midi.Instrument(inst.program, inst.is_drum, inst.name)
        new.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start, min(n.end, cut)) for n in inst.notes if n.start < cut]
        out.instruments.append(new)
    return out


def score_html(pm: pretty_midi.PrettyMIDI, max_bars: int = MAX_SCORE_BARS, title: str | None = None,
               xml: str | None = None) -> str:
    """Sheet music of (the first ``max_bars`` bars of) ``pm`` as HTML holding verovio SVG.

    ``xml``, the MusicXML of the whole of ``pm`` when the caller has it already, is reused
    when no bars are cut.
    """
    shown = _first_bars(pm, max_bars)
    pages = score_svg(xml if (xml is not None and shown is pm) else musicxml(shown, title=title))
    note = ""
    if shown is not pm:
        note = f"<p><em>First {max_bars} bars shown; the MusicXML download holds the whole piece.</em></p>"
    return svg_pages_html(pages) + note


def score_parts(midi: bytes, title: str | None = None, max_bars: int = MAX_SCORE_BARS) -> tuple[str, str]:
    """MusicXML and score HTML of a Standard MIDI File given as bytes.

    The form of :func:`musicxml` + :func:`score_html` that a :mod:`composer.sandbox`
    worker runs on untrusted MIDI (music21 can hang and verovio can abort on it).
    """
    pm = pretty_midi.PrettyMIDI(io.BytesIO(midi))
    xml = musicxml(pm, title=title)
    return xml, score_html(pm, max_bars=max_bars, title=title, xml=xml)


def safe_score(pm: pretty_midi.PrettyMIDI, title: str | None = None, timeout: float = 5.0) -> tuple[str, str]:
    """(MusicXML, score HTML) of ``pm``, made in a sandbox worker under a time and memory
    limit; raises :class:`~composer.errors.ComposerError` ("cannot draw this score: ...")."""
    from composer import sandbox
    buf = io.BytesIO()
    pm.write(buf)
    return sandbox.run("composer.render.viz:score_parts", buf.getvalue(), title, timeout=timeout,
                       what="cannot draw this score")


def svg_pages_html(pages: list[str]) -> str:
    """Wrap verovio SVG pages in a white block that grows with the music (no inner scrollbar:
    the page scrolls, as a musician reading a score expects)."""
    body = "".join(f'<div style="margin-bottom:8px">{p}</div>' for p in pages)
    return f'<div style="background:white;padding:8px">{body}</div>'


# --------------------------------------------------------------------------------------------
# A readable score straight from a piano roll (Compose): exact rhythms, clefs, key signature
# --------------------------------------------------------------------------------------------

#: Bars per line of music on screen and in the MusicXML.
BARS_PER_SYSTEM = 4


_CLEFS_BY_VOICE = {"soprano": "treble", "alto": "treble", "tenor": "treble8vb", "bass": "bass"}


def _clef_for(pitches: list[int], name: str = ""):
    """The clef of a chorale voice by its name; otherwise treble above middle C, treble-8vb
    for a tenor range, bass below (by the median pitch)."""
    from music21 import clef
    by_name = _CLEFS_BY_VOICE.get(name.strip().lower())
    if by_name:
        return {"treble": clef.TrebleClef, "treble8vb": clef.Treble8vbClef, "bass": clef.BassClef}[by_name]()
    if not pitches:
        return clef.TrebleClef()
    mid = float(np.median(pitches))
    if mid >= 59:
        return clef.TrebleClef()
    if mid >= 53:
        return clef.Treble8vbClef()
    return clef.BassClef()


def roll_score(roll, title: str | None = None, key=None):
    """A music21 Score of a :class:`~composer.music.pianoroll.MultiTrackRoll` in 4/4.

    Built from the sixteenth grid itself, not from quantised MIDI, so every note has the
    length it has in the roll (no rest fragments): one part per track, each with the clef
    of its range (the tenor in treble-8vb), the key signature of the piece's key
    (music21's Krumhansl-Schmuckler estimate unless ``key`` is given), and a new line
    every :data:`BARS_PER_SYSTEM` bars.
    """
    from music21 import instrument, layout, meter, metadata, note, stream, tempo
    from composer.music.pianoroll import notes_from_codes
    step_q = 4.0 / roll.steps_per_bar  # quarter notes per step (4/4)
    total_q = roll.n_bars * 4.0
    score = stream.Score()
    score.metadata = metadata.Metadata()
    score.metadata.title = title or ""
    score.metadata.movementName = title or ""
    parts = []
    for t in range(roll.n_tracks):
        notes = sorted(notes_from_codes(roll.track_steps(t)), key=lambda n: (n[1], -n[0]))
        part = stream.Part()
        part.partName = roll.names[t]
        inst = instrument.instrumentFromMidiProgram(int(roll.programs[t]))
        inst.partName = roll.names[t]
        inst.partAbbreviation = roll.names[t][:1]
        part.insert(0, inst)
        pitches = [p + roll.pitch_offset for p, _, _ in notes]
        part.insert(0, _clef_for(pitches, roll.names[t]))
        part.insert(0, meter.TimeSignature("4/4"))
        if t == 0:
            part.insert(0, tempo.MetronomeMark(number=round(float(roll.tempo))))
        pos = 0.0
        for k, (p, start, end) in enumerate(notes):
            s, e = start * step_q, end * step_q
            if k + 1 < len(notes):  # one line per voice: a note ends where the next begins
                e = min(e, notes[k + 1][1] * step_q)
            if s < pos - 1e-9 or e <= s:
                continue
            if s > pos + 1e-9:
                part.insert(pos, note.Rest(quarterLength=s - pos))
            part.insert(s, note.Note(int(p + roll.pitch_offset), quarterLength=e - s))
            pos = e
        if pos < total_q - 1e-9:
            part.insert(pos, note.Rest(quarterLength=total_q - pos))
        parts.append(part)
    key = key or _estimate_key(parts)
    flats = key is not None and key.sharps < 0
    for part in parts:
        if key is not None:
            part.insert(0, key)
            for n in part.recurse().notes:  # black keys spelled the key's way (Eb in E-flat, D# in E)
                acc = n.pitch.accidental
                if acc is not None and (acc.alter > 0) == flats:
                    n.pitch = n.pitch.getEnharmonic()
        # in place: a copy of the part (the default) is most of the score's time, deep-copying music21 objects
        part.makeMeasures(inPlace=True)
        measured = part
        measured.makeTies(inPlace=True)
        for i, m in enumerate(measured.getElementsByClass("Measure")):
            if i and i % BARS_PER_SYSTEM == 0 and part is parts[0]:
                m.insert(0, layout.SystemLayout(isNew=True))
        measured.makeBeams(inPlace=True)
        measured.partName = part.partName
        measured.partAbbreviation = part.partName[:1]
        score.insert(0, measured)
    return score


def _estimate_key(parts):
    from music21 import stream
    flat = stream.Stream()
    for part in parts:
        for n in part.recurse().notes:
            flat.insert(n.offset, n.__deepcopy__())
    if not len(flat.notes):
        return None
    try:
        return flat.analyze("key")
    except Exception:  # noqa: BLE001 - no key is better than no score
        return None


def roll_score_parts(roll, title: str | None = None) -> tuple[str, list[str]]:
    """(MusicXML, verovio SVG pages) of :func:`roll_score`, lines broken as encoded."""
    xml = musicxml(roll_score(roll, title=title), title=title)
    return xml, score_svg(xml, breaks="encoded" if roll.n_bars > BARS_PER_SYSTEM else "auto")
