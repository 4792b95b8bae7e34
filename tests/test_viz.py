"""Piano roll PNG and sheet music."""
import io

import pretty_midi
from matplotlib.image import imread

from composer.render import viz


def test_pianoroll_png(example_midi):
    pm = pretty_midi.PrettyMIDI(str(example_midi))
    png = viz.pianoroll_png(pm, title="test")
    img = imread(io.BytesIO(png))
    assert img.shape[0] == 400 and img.shape[1] == 1000
    # four tracks in four colours: each track colour is present in the picture
    rgb = (img[..., :3] * 255).round().astype(int)
    for hexcol in viz.TRACK_COLOURS[:4]:
        c = [int(hexcol[i:i + 2], 16) for i in (1, 3, 5)]
        assert ((abs(rgb - c).sum(axis=-1)) < 6).sum() > 50


def test_pianoroll_of_empty_music_draws():
    assert viz.pianoroll_png(pretty_midi.PrettyMIDI()).startswith(b"\x89PNG")


def _two_voices():
    """At 120 BPM in 4/4 (beats every 0.5 s, bars every 2 s), 4 s long: a soprano on C5
    then E5, a bass holding C3 through the second bar."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    sop, bass = pretty_midi.Instrument(40, name="Soprano"), pretty_midi.Instrument(43, name="Bass")
    sop.notes = [pretty_midi.Note(90, 72, 0.0, 2.0), pretty_midi.Note(90, 76, 2.0, 4.0)]
    bass.notes = [pretty_midi.Note(90, 48, 2.0, 4.0)]
    pm.instruments += [sop, bass]
    return pm


def _pixels(pm, **kwargs):
    import numpy as np
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(viz.pianoroll_png(pm, **kwargs))).convert("RGB")).astype(int)


def _colour_mask(rgb, hexcol, tol=6):
    c = [int(hexcol[i:i + 2], 16) for i in (1, 3, 5)]
    return abs(rgb - c).sum(axis=-1) < tol


def _axes(rgb):
    h, w = rgb.shape[:2]
    return (round(viz.AX_LEFT * w), round((viz.AX_LEFT + viz.AX_WIDTH) * w),
            round(viz.AX_TOP * h), round((viz.AX_TOP + viz.AX_HEIGHT) * h))


def test_voices_in_their_colours_at_their_pitches_and_times():
    import numpy as np
    rgb = _pixels(_two_voices(), title="two voices")
    x0, x1, y0, y1 = _axes(rgb)
    inside = np.zeros(rgb.shape[:2], bool)
    inside[y0:y1, x0:x1] = True
    sop = _colour_mask(rgb, viz.TRACK_COLOURS[0]) & inside
    bass = _colour_mask(rgb, viz.TRACK_COLOURS[1]) & inside
    ys, xs = np.nonzero(sop)
    first, second = xs < (x0 + x1) / 2, xs >= (x0 + x1) / 2
    # the soprano's C5 fills the first half of the time axis, its E5 the second, higher up
    # (the playhead follows the audio over these axes: times must sit where it expects)
    assert abs(xs[first].min() - x0) <= 2 and abs(xs[first].max() - (x0 + x1) / 2) <= 2
    assert abs(xs[second].max() - x1) <= 2
    y_c5, y_e5 = ys[first].mean(), ys[second].mean()
    by, bx = np.nonzero(bass)
    y_c3 = by.mean()
    assert bx.min() >= (x0 + x1) / 2 - 2  # the bass enters with the second bar
    assert y_e5 < y_c5 < y_c3
    # one pitch scale: E5 is 4 semitones above C5, C3 24 below
    assert abs((y_c5 - y_e5) / (y_c3 - y_c5) - 4 / 24) < 0.03
    # the legend shows both colours beside the roll
    assert _colour_mask(rgb[:, x1 + 2:], viz.TRACK_COLOURS[0]).sum() > 50
    assert _colour_mask(rgb[:, x1 + 2:], viz.TRACK_COLOURS[1]).sum() > 50


def test_bar_lines_dark_beat_lines_light():
    rgb = _pixels(_two_voices())
    x0, x1, y0, y1 = _axes(rgb)
    at = lambda t: round(x0 + (x1 - x0) * t / 4.0)  # noqa: E731
    column = lambda t: rgb[y0:y1, at(t)]  # noqa: E731
    grey = lambda col, v: (abs(col - v).sum(axis=-1) < 10).mean()  # noqa: E731
    assert grey(column(2.0), 136) > 0.7  # the bar line at 2 s, dark
    for t in (0.5, 1.0, 1.5, 2.5, 3.5):  # beats, light
        assert grey(column(t), 221) > 0.5 and grey(column(t), 136) == 0
    assert grey(column(0.75), 136) == 0 and grey(column(0.75), 221) == 0  # between beats: no line


def test_pitch_names_beside_their_rows_and_times_below():
    import numpy as np
    rgb = _pixels(_two_voices())
    x0, x1, y0, y1 = _axes(rgb)
    sop = _colour_mask(rgb, viz.TRACK_COLOURS[0])
    ys, xs = np.nonzero(sop[:, x0:x1])
    y_c5 = ys[xs < (x1 - x0) / 2].mean()
    y_c3 = np.nonzero(_colour_mask(rgb, viz.TRACK_COLOURS[1])[:, x0:x1])[0].mean()
    row_of = lambda p: y_c3 + (y_c5 - y_c3) * (p - 48) / 24  # noqa: E731
    ink = rgb[:, : x0 - 6].sum(axis=-1) < 300  # dark text in the left margin
    text_rows = np.nonzero(ink.any(axis=1))[0]
    for c in (48, 60, 72):  # labels C3, C4, C5 at their rows
        assert np.abs(text_rows - row_of(c)).min() <= 2
    assert np.abs(text_rows - row_of(54)).min() > 6  # and nothing half-way between
    assert (rgb[y1 + 4:, x0:x1].sum(axis=-1) < 300).sum() > 100  # time labels under the axes


def test_musicxml_and_svg_keep_the_notes(example_midi):
    from music21 import converter
    pm = pretty_midi.PrettyMIDI(str(example_midi))
    xml = viz.musicxml(pm, title="Chorale")
    score = converter.parseData(xml, format="musicxml")
    n_xml = len(score.stripTies().flatten().notes)
    n_midi = sum(len(i.notes) for i in pm.instruments)
    assert n_xml == n_midi
    pages = viz.score_svg(xml)
    assert pages and pages[0].lstrip().startswith("<svg") or "<svg" in pages[0][:200]
    html = viz.score_html(pm, title="Chorale", xml=xml)
    assert html.count("<svg") >= len(pages)


def _roll_in(tonic: int, bars=2):
    """A four-voice roll in the major key of pitch class ``tonic``: the soprano walks the
    scale in quarter notes, the other voices sound the tonic triad."""
    import numpy as np

    from composer.music.pianoroll import HOLD, ONSET, PITCH_OFFSET, MultiTrackRoll
    key_pcs = {(tonic + i) % 12 for i in (0, 2, 4, 5, 7, 9, 11)}
    codes = np.zeros((4, bars, 16, 84), dtype=np.uint8)
    for t, c in enumerate((72, 65, 57, 45)):
        scale = [p for p in range(c - 7, c + 8) if p % 12 in key_pcs]
        triad = [p for p in scale if (p - tonic) % 12 in (0, 4, 7)]
        for b in range(bars):
            for q in range(4):
                p = (scale[(b * 4 + q) % len(scale)] if t == 0 else triad[(b + q) % len(triad)]) - PITCH_OFFSET
                codes[t, b, q * 4, p] = ONSET
                codes[t, b, q * 4 + 1:q * 4 + 4, p] = HOLD
    return MultiTrackRoll(codes=codes, programs=[40, 41, 42, 43], names=["Soprano", "Alto", "Tenor", "Bass"],
                          tempo=90)


def test_score_of_a_flat_key_piece_has_its_key_signature_and_chorale_clefs():
    import re
    xml, pages = viz.roll_score_parts(_roll_in(3), title="Eb")
    assert re.search(r"<fifths>-3</fifths>", xml)  # E-flat major: three flats, not accidentals
    clefs = re.findall(r"<clef>(.*?)</clef>", xml, re.S)
    assert len(clefs) == 4
    assert "<sign>G</sign>" in clefs[0] and "octave-change" not in clefs[0]
    assert "<sign>G</sign>" in clefs[2] and "<clef-octave-change>-1</clef-octave-change>" in clefs[2]  # tenor 8vb
    assert "<sign>F</sign>" in clefs[3]
    assert "<alter>1</alter>" not in xml  # black keys spelled as flats in a flat key
    assert pages and "<svg" in pages[0]


def test_score_rhythms_are_the_roll_s_and_lines_hold_four_bars():
    import re
    xml, _ = viz.roll_score_parts(_roll_in(0, bars=8))
    assert xml.count('new-system="yes"') == 1  # bars 1-4, then 5-8
    # every note a quarter: no rest fragments, no sixteenths
    assert set(re.findall(r"<type>(\w+)</type>", xml)) == {"quarter"}
    assert "<rest" not in xml
