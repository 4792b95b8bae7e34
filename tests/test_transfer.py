"""Genre transfer: windows joined again with tempo and length kept, the density guard,
keep-rhythm, strength, named errors, the CLI and the evaluation's JSON."""
import json

import numpy as np
import pretty_midi
import pytest
import torch

from composer.api import cyclegan as transfer
from composer.cli import cyclegan as transfer_cli
from composer.errors import CheckpointError, ComposerError, MidiTooLongError, NotMidiError
from composer.models.classifier import ClassifierConfig, GenreClassifier
from composer.models.cyclegan import CycleGAN, get_config
from composer.music.genres import GenreData, note_density, onsets, save_npz
from composer.training.loop import prefixed, save_checkpoint

torch.set_num_threads(1)  # the CI box has 2 busy cores


def piece(bars=6, tempo=90.0, numerator=4, tail_rest=0.0):
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    pm.time_signature_changes = [pretty_midi.TimeSignature(numerator, 4, 0.0)]
    inst = pretty_midi.Instrument(program=0)
    beat = 60.0 / tempo
    n = int(bars * numerator - tail_rest)
    for b in range(n):
        for p in (60 + b % 7, 48):
            inst.notes.append(pretty_midi.Note(90, p, b * beat, (b + 1) * beat))
    pm.instruments.append(inst)
    return pm


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A tiny untrained pair 'alpha'/'beta' with a classifier and .npz domains next to it."""
    tmp = tmp_path_factory.mktemp("pair")
    torch.manual_seed(0)
    m = CycleGAN(get_config("tiny"))
    rng = np.random.default_rng(0)
    specs = []
    for name, poly in (("alpha", 1), ("beta", 3)):
        w = np.zeros((8, 4, 16, 84), np.uint8)
        for k in range(8):
            for s in range(0, 64, 4):
                w[k, s // 16, s % 16, rng.choice(np.arange(30, 60), poly, replace=False)] = 2
        g = GenreData(name, w, np.repeat(np.arange(4), 2), np.array([0] * 6 + [1] * 2, np.int8), list("abcd"))
        specs.append(str(save_npz(g, tmp / f"{name}.npz")))
    t = {**prefixed(m.G_AB.state_dict(), "G_AB"), **prefixed(m.G_BA.state_dict(), "G_BA")}
    path = tmp / "cyclegan_alpha_beta.safetensors"
    save_checkpoint(path, {k: v.half() for k, v in t.items()},
                    {"model": "cyclegan", "config": m.cfg.to_dict(), "domains": ["alpha", "beta"], "step": 0,
                     "domain_specs": specs, "density_range": {"alpha": [2.0, 6.0], "beta": [8.0, 14.0]}})
    clf = GenreClassifier(ClassifierConfig(width=4))
    save_checkpoint(tmp / "classifier_alpha_beta.safetensors", prefixed(clf.state_dict(), "C"),
                    {"model": "classifier", "config": clf.cfg.to_dict(), "classes": ["alpha", "beta"]})
    return path


def test_keeps_length_tempo_and_bars(ckpt):
    pm = piece(bars=6, tempo=90.0, tail_rest=2)      # 6 bars: a full window and a half one; ends in a rest
    res = transfer.transfer_pm(pm, "beta", checkpoint=ckpt)
    assert res.codes_out.shape == res.codes_in.shape == (6, 16, 84)
    _, tempi = res.pm.get_tempo_changes()
    assert tempi[0] == pytest.approx(90.0)
    assert res.pm.get_end_time() == pytest.approx(pm.get_end_time(), abs=1e-3)
    ends = [n.end for i in res.pm.instruments for n in i.notes]
    assert max(ends) <= pm.get_end_time() + 1e-6
    assert res.source == "alpha" and len(res.density_out) == 2
    assert set(res.probs_before) == {"alpha", "beta"} and sum(res.probs_after.values()) == pytest.approx(1.0)
    assert res.pm.instruments[0].program == 0 or res.pm.instruments[0].program in transfer.GENRE_PROGRAMS.values()


def test_every_window_within_the_target_density_range(ckpt):
    res = transfer.transfer_pm(piece(bars=12), "beta", checkpoint=ckpt)
    lo, hi = res.density_range
    assert all(lo <= d <= hi for d in res.density_out), res.density_out
    res = transfer.transfer_pm(piece(bars=12), "alpha", checkpoint=ckpt)
    assert all(2.0 <= d <= 6.0 for d in res.density_out), res.density_out


def test_density_guard_moves_the_threshold():
    rng = np.random.default_rng(1)
    src = np.zeros((4, 16, 84), bool)
    src[:, ::4, 40] = True
    quiet = rng.random((4, 16, 84)) * 0.3                  # nothing above 0.5: silent without the guard
    out, t = transfer.guarded_window(quiet, src, (4.0, 8.0))
    assert out.any() and 4.0 <= note_density(out) <= 8.0 and t < 0.5
    dense = 0.6 + rng.random((4, 16, 84)) * 0.4            # everything on: one giant cluster
    out, t = transfer.guarded_window(dense, src, (4.0, 8.0))
    assert 4.0 <= note_density(out) <= 8.0 and t > 0.5
    silent_in = np.zeros_like(src)                         # a rest window stays a rest
    out, _ = transfer.guarded_window(dense, silent_in, (4.0, 8.0))
    assert not out.any()


def test_keep_rhythm_keeps_the_onsets(ckpt):
    pm = piece(bars=4)
    res = transfer.transfer_pm(pm, "beta", checkpoint=ckpt, keep_rhythm=True)
    in_steps = set(np.flatnonzero(onsets(res.codes_in > 0).reshape(-1, 84).any(1)))
    out_steps = set(np.flatnonzero(onsets(res.codes_out > 0).reshape(-1, 84).any(1)))
    assert out_steps and out_steps <= in_steps


def test_strength_zero_is_the_input(ckpt):
    pm = piece(bars=4)
    res = transfer.transfer_pm(pm, "beta", checkpoint=ckpt, strength=0.0, guard=False)
    assert np.array_equal(res.codes_out > 0, res.codes_in > 0)
    with pytest.raises(transfer.TransferError, match="strength"):
        transfer.transfer_pm(pm, "beta", checkpoint=ckpt, strength=1.5)


def test_named_errors(ckpt, tmp_path, monkeypatch):
    bad = tmp_path / "bad.mid"
    bad.write_text("hello")
    with pytest.raises(NotMidiError):
        transfer.transfer_file(bad, "beta", checkpoint=ckpt)
    with pytest.raises(transfer.TransferError, match="3/4"):
        transfer.transfer_pm(piece(numerator=3), "beta", checkpoint=ckpt)
    with pytest.raises(transfer.TransferError, match="not to 'jazz'"):
        transfer.transfer_pm(piece(), "jazz", checkpoint=ckpt)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        transfer.transfer_pm(piece(), "beta", checkpoint=tmp_path / "none.safetensors")
    clf_only = ckpt.with_name("classifier_alpha_beta.safetensors")
    with pytest.raises(CheckpointError, match="not a CycleGAN"):
        transfer.transfer_pm(piece(), "beta", checkpoint=clf_only)
    with pytest.raises(transfer.TransferError, match="no shipped genre-transfer model for 'jazz'"):
        transfer.find_checkpoint("jazz", folder=tmp_path)
    monkeypatch.setattr(transfer, "MAX_BARS", 8)
    with pytest.raises(MidiTooLongError, match="12 bars.*8 bars"):
        transfer.transfer_pm(piece(bars=12), "beta", checkpoint=ckpt)


def test_cli_writes_midi_and_refuses_bad_out(ckpt, tmp_path, capsys):
    src = tmp_path / "in.mid"
    piece(bars=5, tempo=110).write(str(src))
    out = tmp_path / "out.mid"
    assert transfer_cli.main([str(src), "--to", "alpha", "--out", str(out), "--checkpoint", str(ckpt)]) == 0
    back = pretty_midi.PrettyMIDI(str(out))
    assert back.get_tempo_changes()[1][0] == pytest.approx(110.0, abs=0.01)  # MIDI stores whole microseconds
    assert back.get_end_time() == pytest.approx(pretty_midi.PrettyMIDI(str(src)).get_end_time(), abs=0.01)
    assert "beta -> alpha" in capsys.readouterr().out
    assert transfer_cli.main([str(src), "--to", "beta", "--out", str(out), "--checkpoint", str(ckpt),
                              "--programs", "73,-", "--json"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["already"] is False and line["voices"]
    assert pretty_midi.PrettyMIDI(str(out)).instruments[0].program == 73
    with pytest.raises(ComposerError, match="--programs must be numbers"):
        transfer_cli.main([str(src), "--to", "beta", "--out", str(out), "--checkpoint", str(ckpt), "--programs", "x"])
    with pytest.raises(ComposerError, match="must end in .mid or .wav"):
        transfer_cli.main([str(src), "--to", "alpha", "--out", str(tmp_path / "x.txt"), "--checkpoint", str(ckpt)])


def test_eval_json_has_the_issue_fields(ckpt, capsys):
    from composer.evaluation import cyclegan as ev
    assert ev.main(["--checkpoint", str(ckpt), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["pairs"][0]
    assert row["pair"] == "alpha-beta"
    clf = row["classifier"]
    assert set(clf["transposed"]) == {"-12", "-5", "+5", "+12"}
    assert {"random_notes_alpha", "random_notes_beta", "repitched_alpha", "repitched_beta"} == set(clf["controls"])
    assert all(0.5 <= c["mean_max_prob"] <= 1.0 for c in clf["controls"].values())
    assert set(row["systems"]) == {"model", "identity", "random_target"}
    for name, sy in row["systems"].items():
        assert sy["s_tot"] == pytest.approx((sy["s_a2b"] + sy["s_b2a"]) / 2, abs=1e-3)
        assert set(sy["content"]) == {"alpha->beta", "beta->alpha"}
        for c in sy["content"].values():
            assert {"note_f1", "top_line_corr", "melody_kept", "notes_per_step", "beats_3plus", "beat_triads"} <= set(c)
    ident, rand = row["systems"]["identity"], row["systems"]["random_target"]
    assert ident["s_a2b"] == 0.0 and ident["s_b2a"] == 0.0           # changing nothing transfers nothing
    assert all(c["note_f1"] == 1.0 and c["melody_kept"] == 1.0 for c in ident["content"].values())
    assert all(c["note_f1"] < 0.5 for c in rand["content"].values())  # another piece keeps little
    assert row["bars"]["random_target_content_fails"] is True
    dens = row["model_extra"]["density_out"]
    assert dens["alpha->beta"]["in_target_range"] == 1.0 and dens["beta->alpha"]["in_target_range"] == 1.0


def test_content_measures_on_known_cases():
    from composer.music import metrics as mm
    from composer.music.genres import transpose_windows
    mel = np.zeros((2, 4, 16, 84), bool)
    for s in range(64):
        mel[0, s // 16, s % 16, 40 + (s // 4) % 5] = True
        mel[1, s // 16, s % 16, 45 - (s // 2) % 7] = True
    up = transpose_windows(mel, 7)
    assert mm.note_f1(mel, mel) == 1.0 and mm.note_f1(mel, up) == 0.0
    assert mm.top_line_correlation(mel, up) == pytest.approx(1.0)   # contour kept, pitches not
    assert mm.melody_kept(mel, up) == 0.0 and mm.melody_kept(mel, mel) == 1.0
    chords = mel.copy()
    chords[:, :, ::4, 28] = True                                     # C2 E2... under the tune
    chords[:, :, ::4, 31] = True
    assert mm.top_line_correlation(mel, chords) == pytest.approx(1.0) and mm.melody_kept(mel, chords) == 1.0
    tex = mm.beat_texture(chords, where=mel)
    assert tex["three_plus"] == 1.0 and 0.0 < tex["triads"] < 1.0    # E-G + C/D/E/F/G on top: some fit
    assert mm.beat_texture(mel)["three_plus"] == 0.0
    assert mm.notes_per_sounding_step(mel) == 1.0 and mm.notes_per_sounding_step(chords) > 1.0
    flat = np.zeros_like(mel)
    flat[:, :, :, 40] = True
    assert mm.top_line_correlation(mel, flat) == 0.0                 # no shape kept counts as 0
    rng = np.random.default_rng(0)
    noise = rng.random(mel.shape) > 0.97
    assert abs(mm.top_line_correlation(mel, noise)) < 0.5 and mm.note_f1(mel, noise) < 0.1


def test_output_is_split_into_voices_with_instruments(ckpt):
    from composer.music.genres import split_voices
    codes = np.zeros((16, 84), np.uint8)
    for s in range(0, 16, 4):
        for p in (20, 27, 32, 36 + s // 4):
            codes[s, p], codes[s + 1:s + 4, p] = 2, 1
    parts = split_voices(codes, 4)
    assert [int(np.flatnonzero(v.any(0)).max()) for v in parts[1:]] == [32, 27, 20]
    assert np.array_equal(np.stack(parts).max(0), codes)              # every note kept, once
    assert sum(int((v == 2).sum()) for v in parts) == int((codes == 2).sum())
    assert transfer.output_voices("bach", 2)[1][1] == "Bass"
    assert [p for p, _ in transfer.output_voices("folk", 2, programs=[None, 0])] == [40, 0]
    with pytest.raises(transfer.TransferError, match="0-127"):
        transfer.output_voices("folk", 1, programs=[300])
    res = transfer.transfer_pm(piece(bars=4), "beta", checkpoint=ckpt, programs=[73, 74, 75, 76])
    progs = [i.program for i in res.pm.instruments]
    assert len(progs) == len(res.voices) >= 1 and progs == [73, 74, 75, 76][:len(progs)]
    assert sorted((n.pitch, round(n.start, 3)) for i in res.pm.instruments for n in i.notes) == sorted(
        (n.pitch, round(n.start, 3)) for n in transfer.codes_to_midi_like(res.codes_out, piece(bars=4), 0).instruments[0].notes)


def test_a_piece_already_in_the_target_genre_is_left_alone(ckpt):
    pm = piece(bars=4)
    first = transfer.transfer_pm(pm, "beta", checkpoint=ckpt)
    here = max(first.probs_before, key=first.probs_before.get)
    other = "alpha" if here == "beta" else "beta"
    res = transfer.transfer_pm(pm, here, checkpoint=ckpt, skip_if_target=True)
    assert res.already and res.pm is pm and np.array_equal(res.codes_out, res.codes_in)
    assert f"already hears {here}" in res.summary()
    assert not transfer.transfer_pm(pm, other, checkpoint=ckpt, skip_if_target=True).already


def test_shipped_pair_if_present():
    """The shipped bach <-> folk model transfers a real chorale into folk's density range."""
    path = transfer.CHECKPOINTS / "cyclegan_bach_folk.safetensors"
    if not path.exists():
        pytest.skip("no shipped cyclegan_bach_folk checkpoint")
    model = transfer.load_model(str(path))
    assert model.domains == ["bach", "folk"] and model.classifier is not None
    x = np.zeros((2, 4, 16, 84), bool)
    x[:, :, ::4, [24, 31, 36, 40]] = True                  # four voices in quarter notes
    out, _, _ = transfer.transfer_windows(model, x, "folk")
    lo, hi = model.density_range["folk"]
    assert all(lo <= d <= hi for d in note_density(out))


def test_tab_builds_and_transfers_an_upload(tmp_path):
    """The Genre transfer tab: api names, one transfer through the thin handler, clear errors."""
    gr = pytest.importorskip("gradio")
    if not transfer.available_genres():
        pytest.skip("no shipped genre-transfer checkpoint")
    from composer.ui import transfer as tab
    with gr.Blocks() as demo:
        tab.build(gr.State(None))
    assert {"transfer", "transfer_compose"} <= {d.api_name for d in demo.fns.values()}
    src = tmp_path / "in.mid"
    piece(bars=4).write(str(src))
    out = tab.transfer_midi(str(src), None, "folk", 1.0, False)
    roll_b, roll_a, wav_b, wav_a, p_before, p_after, files, status = out
    assert set(p_before) == {"bach", "folk"} and "folk" in status
    assert any(f.endswith(".mid") for f in files) and any(f.endswith(".wav") for f in files)
    # a failed transfer says why and leaves every other output as it was
    bad = tmp_path / "bad.mid"
    bad.write_text("nope")
    for args, why in (((str(bad), None, "folk"), "not a MIDI file"), ((None, None, "folk"), "Upload a MIDI file"),
                      ((None, "Nope - not an example", "folk"), "Pick an example")):
        out = tab.transfer_midi(*args)
        assert len(out) == 8 and all(isinstance(o, type(gr.skip())) for o in out[:7])
        assert why in out[7] and "last result is still shown" in out[7]
    assert "Compose tab" in tab.transfer_path(None, "folk")[7]


def test_tab_offers_both_genres_and_says_when_a_piece_is_already_there():
    gr = pytest.importorskip("gradio")
    if not transfer.available_genres():
        pytest.skip("no shipped genre-transfer checkpoint")
    from composer.ui import transfer as tab
    ex = tab.examples()
    folk = [k for k in ex if k.startswith("Folk - ")]
    assert folk and any(k.startswith("Bach - ") for k in ex)
    out = tab.transfer_midi(None, folk[0], "bach", 1.0, False, "019 Church Organ")
    assert "→ bach" in out[7] and out[1] is not None
    first_voice = pretty_midi.PrettyMIDI(next(f for f in out[6] if f.endswith(".mid"))).instruments[0]
    assert first_voice.program == 19
    same = tab.transfer_midi(None, folk[0], "folk", 1.0, False)
    assert "already folk" in same[7] and same[1] is None and same[5] is None
