"""Request folders do not pile up in /tmp."""
import os
import time

from composer.render import outputs


def test_old_and_surplus_request_folders_are_swept(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs, "OUTPUT_ROOT", tmp_path)
    old = outputs.new_output_dir("composer-test-")
    (old / "piece.wav").write_bytes(b"x" * 1000)
    past = time.time() - 2 * outputs.OUTPUT_MAX_AGE_S
    os.utime(old, (past, past))
    fresh = [outputs.new_output_dir("composer-test-") for _ in range(5)]
    for k, p in enumerate(fresh):
        os.utime(p, (time.time() - 100 + k, time.time() - 100 + k))
    assert outputs.sweep_outputs(max_folders=3) == 3  # the old one, and the two oldest beyond 3
    assert not old.exists() and [p.exists() for p in fresh] == [False, False, True, True, True]


def test_live_folders_are_swept_with_the_request_folders(tmp_path, monkeypatch):
    """Compose's live files (served where they lie, not copied by Gradio) go away like the rest."""
    monkeypatch.setattr(outputs, "OUTPUT_ROOT", tmp_path / "out")
    monkeypatch.setattr(outputs, "LIVE_ROOT", tmp_path / "live")
    old = outputs.new_output_dir("composer-live-", root=outputs.LIVE_ROOT)
    assert old.parent == tmp_path / "live"
    past = time.time() - 2 * outputs.OUTPUT_MAX_AGE_S
    os.utime(old, (past, past))
    monkeypatch.setattr(outputs, "_last_sweep", 0.0)  # a minute has passed since the last sweep
    outputs.new_output_dir("composer-test-")
    assert not old.exists()


def test_sound_roll_and_midi_of_a_piece(tmp_path, triad_midi):
    from composer.render import audio
    wav, png, mid = tmp_path / "a.wav", tmp_path / "a.png", tmp_path / "a.mid"
    outputs.sound_and_roll(triad_midi, wav, png, mid, title="triad", sample_rate=22050)
    x, sr = audio.read_wav(wav)
    assert sr == 22050 and x.shape[1] == 2 and abs(len(x) / sr - (1.0 + audio.RELEASE_TAIL_S)) < 0.01
    assert png.read_bytes().startswith(b"\x89PNG")
    import pretty_midi
    back = pretty_midi.PrettyMIDI(str(mid))
    assert sorted(n.pitch for n in back.instruments[0].notes) == [60, 64, 67]


def test_compose_audio_is_at_the_rate_and_the_roll_where_the_playhead_expects(tmp_path):
    """The playhead takes the music's end as the audio's duration less the release tail, and
    puts its line over the roll's axes: both come from the render modules."""
    import re

    import torch

    from composer.api.compose import load_composer, render_state
    from composer.models.musegan import Generator, get_config
    from composer.render import audio, viz
    from composer.training.loop import save_checkpoint
    from composer.ui.compose import player_js
    torch.manual_seed(0)
    cfg = get_config("default", temporal_hidden=32, bar_channels=32)
    path = tmp_path / "small.safetensors"
    save_checkpoint(path, Generator(cfg).state_dict(), {"config": cfg.to_dict(), "tempo": 90})
    comp = load_composer(path)
    st = comp.new_state(seed=3, n_bars=4)
    png, wav, midi, _ = render_state(comp, st, folder=outputs.new_output_dir("composer-test-"))
    x, sr = audio.read_wav(wav)
    js = player_js()
    tail = float(re.search(r"TAIL = ([\d.]+)", js).group(1))
    duration = x.shape[0] / sr  # the player's audio.duration
    assert sr == audio.PREVIEW_RATE and abs(duration - tail - comp.midi(st).get_end_time()) < 0.01
    for name in ("AX_LEFT", "AX_WIDTH", "AX_TOP", "AX_HEIGHT"):
        assert float(re.search(name + r" = ([\d.]+)", js).group(1)) == getattr(viz, name)
