"""The Compose engine and tab, on a small randomly initialised MuseGAN (fast, no shipped weights needed)."""
import json
import os

import numpy as np
import pretty_midi
import pytest
import torch

from composer.api.compose import ComposeState, LatentsError, cell_features
from composer.models.musegan import Generator, get_config
from composer.music.pianoroll import HOLD, ONSET


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory):
    """A 'default'-shaped but narrow generator saved as a real checkpoint (safetensors + card)."""
    from composer.training.loop import save_checkpoint
    torch.manual_seed(0)
    cfg = get_config("default", temporal_hidden=32, bar_channels=32)
    g = Generator(cfg)
    for m in g.modules():  # give BatchNorm running stats that are not identity, like a trained model
        if hasattr(m, "running_var") and m.running_var is not None:
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("ckpt") / "small.safetensors"
    save_checkpoint(path, {k: v.half() for k, v in g.state_dict().items()}, {"config": cfg.to_dict(), "tempo": 90})
    return path


@pytest.fixture(scope="module")
def comp(small_ckpt):
    from composer.api.compose import load_composer
    return load_composer(small_ckpt)


def test_cell_features_by_hand():
    codes = np.zeros((16, 84), np.uint8)
    codes[0, 36] = ONSET
    codes[1:4, 36] = HOLD  # C4 (60) for 4 steps
    codes[8, 40] = ONSET  # E4 (64) for 1 step
    d, reg, length = cell_features(codes)
    assert d == 2 and reg == pytest.approx((60 * 4 + 64) / 5) and length == pytest.approx(2.5)


def test_directions_are_orthonormal_and_named_by_measurement(comp):
    d = comp.directions
    for level, v in d.vectors.items():
        np.testing.assert_allclose(v @ v.T, np.eye(3), atol=1e-4)
        for i, name in enumerate(d.names[level]):
            assert (name in ("density", "register", "length")) == (d.effects[level][i, i] >= 0.25)


def test_rerolling_one_cell_changes_only_that_cell(comp):
    st = comp.new_state(seed=4, n_bars=8)
    before = comp.codes(st)
    after = comp.codes(comp.reroll(st, track=2, bar=5))
    changed = np.argwhere((before != after).any(axis=(2, 3))).tolist()
    assert changed in ([[2, 5]], [])  # a re-roll may by chance decode to the same notes, never elsewhere
    assert not np.array_equal(comp.grid(st).numpy()[2, 5], comp.grid(comp.reroll(st, track=2, bar=5)).numpy()[2, 5])


def test_melody_slider_touches_one_cell_and_chords_one_bar(comp):
    st = comp.new_state(seed=1, n_bars=4)
    g0 = comp.grid(st).numpy()
    g1 = comp.grid(comp.set_direction(st, "melody", 0, 2.5, track=1, bar=2)).numpy()
    assert np.argwhere(~np.isclose(g0, g1).all(axis=-1)).tolist() == [[1, 2]]
    g2 = comp.grid(comp.set_direction(st, "chords", 1, -2.0, bar=3)).numpy()
    assert sorted({tuple(x) for x in np.argwhere(~np.isclose(g0, g2).all(axis=-1))}) == [(t, 3) for t in range(4)]
    g3 = comp.grid(comp.set_direction(st, "groove", 2, 1.0, track=0)).numpy()
    assert sorted({tuple(x) for x in np.argwhere(~np.isclose(g0, g3).all(axis=-1))}) == [(0, b) for b in range(4)]


def test_slider_value_reads_back(comp):
    st = comp.set_direction(comp.new_state(seed=2), "style", 1, 1.7)
    assert comp.direction_value(st, "style", 1) == pytest.approx(1.7, abs=1e-4)
    assert comp.direction_value(st, "style", 0) == pytest.approx(0.0, abs=1e-4)  # orthogonal: untouched


def test_locked_cells_survive_everything(comp):
    st = comp.new_state(seed=7, n_bars=8)
    st = comp.lock(st, track=None, bar=1)  # the whole of bar 2
    st = comp.lock(st, track=3, bar=6)
    ref = comp.codes(st)
    for edit in (lambda s: comp.reroll(s), lambda s: comp.reroll(s, track=3),
                 lambda s: comp.set_direction(s, "style", 0, 3.0), lambda s: comp.reroll(s, bar=1)):
        out = comp.codes(edit(st))
        np.testing.assert_array_equal(out[:, 1], ref[:, 1])
        np.testing.assert_array_equal(out[3, 6], ref[3, 6])


def test_long_pieces_chain_phrases(comp):
    st = comp.new_state(seed=3, n_bars=16)
    assert comp.codes(st).shape[:2] == (4, 16)
    lat = comp.phrase_latents(st)
    assert len(lat) == 4 and len(st.anchors) == 2
    # the middle phrases lie between the anchors: closer to their neighbour than the anchors are to each other
    far = np.linalg.norm(lat[0]["style"] - lat[3]["style"])
    assert np.linalg.norm(lat[1]["style"] - lat[0]["style"]) < far
    assert np.linalg.norm(lat[2]["style"] - lat[3]["style"]) < far


def test_latents_json_restores_exactly(comp):
    st = comp.new_state(seed=9, n_bars=6, truncation=1.5, tempo=70, programs=[73, 71, 70, 58])
    st = comp.lock(comp.reroll(comp.set_direction(st, "melody", 2, -1.3, track=2, bar=4), track=0, bar=1), bar=3)
    back = ComposeState.from_json(st.to_json())
    np.testing.assert_array_equal(comp.codes(back), comp.codes(st))
    assert back.programs == [73, 71, 70, 58] and back.tempo == 70


@pytest.mark.parametrize("text,words", [
    ("not json", "not valid JSON"), ('{"format": "other"}', "not a Composer latents file"),
    ('{"format": "composer-musegan-latents", "z_dim": 32}', "incomplete or malformed"),
])
def test_bad_latents_are_named_errors(text, words):
    with pytest.raises(LatentsError, match=words):
        ComposeState.from_json(text)


def test_latents_with_wrong_shapes_or_values(comp):
    d = json.loads(comp.new_state(seed=1).to_json())
    d["style_offset"] = [0.0] * 5
    with pytest.raises(LatentsError, match="shape"):
        ComposeState.from_json(json.dumps(d))
    d = json.loads(comp.new_state(seed=1).to_json())
    d["n_bars"] = 1000
    with pytest.raises(LatentsError, match="n_bars"):
        ComposeState.from_json(json.dumps(d))


def test_midi_has_four_voices_in_range(comp):
    pm = comp.midi(comp.new_state(seed=0, n_bars=4, programs=[40, 41, 42, 43]))
    assert [i.program for i in pm.instruments] == [40, 41, 42, 43]
    assert all(24 <= n.pitch <= 107 for i in pm.instruments for n in i.notes)


# --------------------------------------------------------------------------------------------
# The tab, through gradio_client
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(small_ckpt):
    from gradio_client import Client

    from composer.ui.app import build_app
    # the server's "shipped" model for this app: the small test checkpoint
    before = os.environ.get("COMPOSER_MUSEGAN")
    os.environ["COMPOSER_MUSEGAN"] = str(small_ckpt)
    demo = build_app()
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()
        if before is None:
            os.environ.pop("COMPOSER_MUSEGAN", None)
        else:
            os.environ["COMPOSER_MUSEGAN"] = before


def _notes_by_cell(path, tempo=90.0):
    pm = pretty_midi.PrettyMIDI(path)
    step = 60 / tempo / 4
    out = {}
    for t, inst in enumerate(pm.instruments):
        for n in inst.notes:
            bar = int(round(n.start / step)) // 16
            out.setdefault((t, bar), set()).add((n.pitch, round(n.start / step), round(n.end / step)))
    return out


INSTRUMENTS = ["040 Violin", "041 Viola", "042 Cello", "043 Contrabass"]


def test_tab_changes_one_cell_only(client):
    out = client.predict(11, 4, 90, 0, *INSTRUMENTS, api_name="/compose_new")
    roll, wav, grid, status, files = out
    assert roll.endswith(".png") and wav.endswith(".wav") and "Seed 11" in status
    before = _notes_by_cell(next(f for f in files if f.endswith(".mid")))
    files2 = client.predict("Alto", "3", api_name="/compose_reroll_cell")[-1]
    after = _notes_by_cell(next(f for f in files2 if f.endswith(".mid")))
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed <= {(1, 2)}
    # the grid marks the cell
    grid2 = client.predict("Alto", "3", api_name="/compose_lock_cell")[2]
    assert grid2["data"][1][3] == "L"  # plain text: no emoji font needed


def test_tab_restores_from_latents_json_with_midi_and_wav(client, comp):
    from composer.render.audio import read_wav
    st = comp.set_direction(comp.new_state(seed=21, n_bars=4), "style", 0, 2.0)
    out = client.predict(st.to_json(), api_name="/compose_from_latents")
    files, midi = out[-3], out[-1]
    kinds = sorted(f.rsplit(".", 1)[-1] for f in files)
    assert kinds == ["json", "mid", "musicxml", "wav"]
    got = pretty_midi.PrettyMIDI(midi)
    want = comp.midi(st)
    assert [[(n.pitch, round(n.start, 3)) for n in i.notes] for i in got.instruments] == \
        [[(n.pitch, round(n.start, 3)) for n in i.notes] for i in want.instruments]
    x, sr = read_wav(next(f for f in files if f.endswith(".wav")))
    assert sr == 44100 and x.shape[1] == 2
    from music21 import converter
    xml = next(f for f in files if f.endswith(".musicxml"))
    assert len(converter.parse(xml).parts) == 4
    restored = json.loads(open(next(f for f in files if f.endswith(".json"))).read())
    assert restored["seed"] == 21


def test_tab_bad_latents_message(client):
    with pytest.raises(Exception, match="not a Composer latents file"):
        client.predict('{"hello": 1}', api_name="/compose_from_latents")


def test_two_users_keep_their_own_music(client):
    """Each browser session has its own state: one user's edits never reach the other."""
    from gradio_client import Client
    other = Client(client.src, verbose=False)
    a = client.predict(101, 4, 90, 0, *INSTRUMENTS, api_name="/compose_new")
    b = other.predict(202, 4, 90, 0, *INSTRUMENTS, api_name="/compose_new")
    assert "Seed 101" in a[3] and "Seed 202" in b[3]
    # user B re-rolls the whole piece; user A then edits a cell: A's piece is still seed 101's
    other.predict(api_name="/compose_reroll_all")
    a2 = client.predict("Tenor", "2", api_name="/compose_reroll_cell")
    assert "Seed 101" in a2[3]
    before = _notes_by_cell(next(f for f in a[-1] if f.endswith(".mid")))
    after = _notes_by_cell(next(f for f in a2[-1] if f.endswith(".mid")))
    assert {k for k in set(before) | set(after) if before.get(k) != after.get(k)} <= {(2, 1)}


def test_new_pieces_start_at_the_models_recommended_truncation(small_ckpt):
    from composer.api.compose import Composer
    from composer.api.compose import load_composer
    base = load_composer(small_ckpt)
    comp = Composer(base.g, base.directions, name="t", truncation=1.0)
    st = comp.new_state(seed=4)
    assert st.truncation == 1.0 and max(np.abs(v).max() for v in st.anchors[0].values()) <= 1.0
    off = comp.new_state(seed=4, truncation=0)          # 0: off, and it stays off through a reset
    assert off.truncation is None and max(np.abs(v).max() for v in off.anchors[0].values()) > 1.0
    assert comp.reset(off).truncation is None and comp.resize(off, 8).truncation is None


def test_controls_show_the_piece_after_restore_undo_reset_and_reroll(comp):
    """Every control's value follows the state (issue: a restored 16-bar Flute piece showed 4 bars, Violin)."""
    from composer.ui.common import program_choice
    from composer.ui.compose import N_DIRS, control_values
    st = comp.new_state(seed=11, n_bars=16, tempo=123, programs=[73, 41, 42, 43])
    st = comp.set_direction(st, "style", 0, 1.5)
    st = comp.set_direction(st, "melody", 1, -2.0, track=2, bar=9)
    restored = ComposeState.from_json(st.to_json())
    v = control_values(comp, restored, comp.track_names[2], "10")
    T = len(comp.track_names)
    assert v[:4] == [11, 16, 123, restored.truncation or 0]
    assert v[4] == program_choice(73) and v[4:4 + T] == [program_choice(p) for p in restored.programs]
    sel = v[4 + T]
    assert sel["value"] == "10" and sel["choices"][-1] == "16" and len(sel["choices"]) == 16
    style = v[5 + T:5 + T + N_DIRS]
    melody = v[5 + T + 3 * N_DIRS:5 + T + 4 * N_DIRS]
    assert style[0] == 1.5 and melody[1] == -2.0
    grid = v[-1]
    assert grid.iloc[2, 10] == "[·]" and grid.shape == (T, 17)
    # a selected bar past the end of a shorter piece is clamped to its last bar
    short = comp.new_state(seed=1, n_bars=4)
    assert control_values(comp, short, comp.track_names[0], "12")[4 + T]["value"] == "4"
    # a lock is shown in the grid as plain text
    locked = comp.lock(short, track=1, bar=2, locked=True)
    assert control_values(comp, locked, comp.track_names[0], "1")[-1].iloc[1, 3] == "L"


def test_variations_differ_from_the_piece_only_in_the_selected_cell(comp):
    st = comp.new_state(seed=5, n_bars=4)
    before = _cells(comp, st)
    vs = comp.variations(st, 4, track=1, bar=2)
    assert len(vs) == 4
    for v in vs:
        changed = {k for k, notes in _cells(comp, v).items() if notes != before.get(k)}
        assert changed <= {(1, 2)}
    takes = [v.melody_override[(1, 2)] for v in vs]  # four different takes, not one
    assert all(not np.array_equal(a, b) for i, a in enumerate(takes) for b in takes[i + 1:])


def _cells(comp, st):
    """Notes per (voice, bar) of a piece."""
    pm = comp.midi(st)
    bar_s = 4 * 60.0 / st.tempo
    out = {}
    for t, inst in enumerate(pm.instruments):
        for n in inst.notes:
            out.setdefault((t, int(n.start // bar_s + 1e-9)), []).append((n.pitch, round(n.start, 3)))
    return out


def test_the_score_and_downloads_are_made_for_the_newest_piece_only(monkeypatch):
    """While a musician plays the sliders, a superseded piece is not engraved (its finish is
    skipped); the newest one is, and another visitor's pieces never skip this one's."""
    import gradio as gr
    from gradio.context import LocalContext

    from composer.ui import compose as tab
    monkeypatch.setattr(tab, "FINISH_QUIET_S", 0.05)

    class Visitor:
        def __init__(self, session_hash):
            self.session_hash = session_hash

    token = LocalContext.request.set(Visitor("a"))
    try:
        first = tab.new_piece(1, 4, 90, 0, [], None, *INSTRUMENTS)
        moved = tab._slider_handler("style", 0)(1.0, "Alto", "1", first[1], first[0])
        st, folder = moved[0], moved[4]
        assert tab.finish(first[0], first[6]) == (gr.update(), gr.update())  # superseded: nothing made
        LocalContext.request.set(Visitor("b"))
        tab.new_piece(2, 4, 90, 0, [], None, *INSTRUMENTS)  # another visitor's piece
        LocalContext.request.set(Visitor("a"))
        files, score = tab.finish(st, folder)
    finally:
        LocalContext.request.reset(token)
    kinds = sorted(f.rsplit(".", 1)[-1] for f in files)
    assert kinds == ["json", "mid", "musicxml", "wav"] and "<svg" in score
    assert all(f.startswith(folder) for f in files)


def test_a_download_no_longer_wanted_is_given_up_during_its_wav(comp, tmp_path):
    """The WAV download of a piece a newer move replaced stops mid-render (it would hold a core
    the next phrase needs), leaving no half-written file; asked nothing, it is made."""
    from composer.api.compose import finish_outputs, render_state
    st = comp.new_state(seed=3, n_bars=4)
    _, _, midi, folder = render_state(comp, st, tmp_path)
    asked = []
    out = finish_outputs(comp, st, folder, stop=lambda: asked.append(1) or len(asked) > 1)
    assert out is None and len(asked) == 2
    assert not (folder / f"{midi.stem}.wav").exists()
    files, score = finish_outputs(comp, st, folder)
    assert (folder / f"{midi.stem}.wav").exists() and "<svg" in score
