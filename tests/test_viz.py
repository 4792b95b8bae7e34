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
