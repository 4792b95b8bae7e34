"""Pictures of music: a matplotlib piano roll and sheet music (MusicXML, SVG).

The piano roll draws each track as one ``PolyCollection`` on a bare ``Figure`` (no
pyplot state), so it is thread-safe and an 8-bar, 4-track roll takes tens of
milliseconds. Sheet music goes PrettyMIDI -> music21 (quantised) -> MusicXML -> verovio SVG.
"""
from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pretty_midi  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from composer.errors import ScoreError  # noqa: E402

#: One colour per track, from matplotlib's tab10 (colour-blind friendlier than rainbow).
TRACK_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
#: At most this many bars are engraved on screen (the MusicXML download has them all).
MAX_SCORE_BARS = 48


def pianoroll_figure(pm: pretty_midi.PrettyMIDI, title: str | None = None, width: float = 10.0,
                     height: float = 4.0, dpi: int = 100, marks: list[float] | None = None,
                     pitch_range: tuple[int, int] | None = None, until: float | None = None) -> Figure:
    """A piano-roll figure of ``pm``: a colour per track, bar and beat lines, pitch names.

    Parameters
    ----------
    pm : PrettyMIDI
    title : str, optional
    marks : list of float, optional
        Times in seconds to mark with a dashed vertical line (e.g. the seam between a
        prompt and its continuation).
    pitch_range : (int, int), optional
        Lowest and highest MIDI pitch to show (default: the piece's own), so that two rolls
        (a piece before and after a transfer) share one pitch axis.
    until : float, optional
        Show only the first ``until`` seconds (long pieces: notes stay readable).
    """
    fig = Figure(figsize=(width, height), dpi=dpi)
    ax = fig.add_axes((0.07, 0.12, 0.78, 0.8) if len(pm.instruments) > 1 else (0.07, 0.12, 0.9, 0.8))
    end = max(pm.get_end_time(), 1e-3)
    lo, hi = 127, 0
    handles = []
    for k, inst in enumerate(pm.instruments):
        if not inst.notes:
            continue
        colour = TRACK_COLOURS[k % len(TRACK_COLOURS)]
        starts = np.array([n.start for n in inst.notes])
        ends = np.array([n.end for n in inst.notes])
        pitches = np.array([n.pitch for n in inst.notes])
        lo, hi = min(lo, pitches.min()), max(hi, pitches.max())
        y0, y1 = pitches - 0.4, pitches + 0.4
        verts = np.stack([np.stack([starts, y0], 1), np.stack([ends, y0], 1),
                          np.stack([ends, y1], 1), np.stack([starts, y1], 1)], axis=1)
        coll = PolyCollection(verts, facecolors=colour, edgecolors="black", linewidths=0.3,
                              label=inst.name or pretty_midi.program_to_instrument_name(inst.program))
        ax.add_collection(coll)
        handles.append(coll)
    if pitch_range is not None:
        lo, hi = pitch_range
    if hi < lo:
        lo, hi = 60, 72
    lo, hi = int(lo) - 2, int(hi) + 2
    if until is not None:
        end = min(end, max(float(until), 1e-3))
    ax.set_xlim(0, end)
    ax.set_ylim(lo - 0.5, hi + 0.5)
    # bar lines strong, beat lines faint; get_downbeats follows the time signatures
    beats = pm.get_beats()
    downbeats = pm.get_downbeats()
    beats, downbeats = beats[beats <= end + 1e-6], downbeats[downbeats <= end + 1e-6]
    if len(beats) < 2000:
        ax.vlines(beats, lo - 0.5, hi + 0.5, colors="#dddddd", linewidths=0.5, zorder=0)
    ax.vlines(downbeats, lo - 0.5, hi + 0.5, colors="#888888", linewidths=0.9, zorder=0)
    for t in marks or ():
        ax.axvline(t, color="black", linestyle="--", linewidth=1.5)
    cs = [p for p in range(lo, hi + 1) if p % 12 == 0]
    if len(cs) < 2:
        cs = list(range(lo, hi + 1, max(1, (hi - lo) // 6)))
    ax.set_yticks(cs)
    ax.set_yticklabels([pretty_midi.note_number_to_name(p) for p in cs])
    ax.set_xlabel("time (s)  |  bar lines dark, beats light")
    if len(downbeats) <= 32:
        ax2 = ax.secondary_xaxis("top")
        ax2.set_xticks(downbeats)
        ax2.set_xticklabels([str(i + 1) for i in range(len(downbeats))], fontsize=7)
    if title:
        ax.set_title(title, fontsize=10, pad=14 if len(downbeats) <= 32 else 4)
    if len(handles) > 1:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return fig


def pianoroll_png(pm: pretty_midi.PrettyMIDI, **kwargs) -> bytes:
    """The piano roll of ``pm`` as PNG bytes (see :func:`pianoroll_figure`)."""
    fig = pianoroll_figure(pm, **kwargs)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
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
        measured = part.makeMeasures()
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
