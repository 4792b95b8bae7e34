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
