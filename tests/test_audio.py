"""FluidSynth rendering: real pitches, real tails, int16 stereo, clear errors."""
import numpy as np
import pretty_midi
import pytest

from composer.render import audio
from composer.errors import SoundfontNotFoundError

SR = 44100


def _spectrum(x, sr=SR):
    mono = x.astype(np.float64).mean(axis=1)
    mag = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
    freqs = np.fft.rfftfreq(len(mono), 1 / sr)
    return freqs, mag


def test_triad_has_its_three_fundamentals(triad_midi):
    x = audio.render(triad_midi, SR)
    assert x.dtype == np.int16 and x.ndim == 2 and x.shape[1] == 2
    freqs, mag = _spectrum(x[: SR])  # the sounding second
    band = (freqs > 150) & (freqs < 500)
    floor = np.median(mag[band])
    for f in (261.63, 329.63, 392.00):
        near = (freqs > f - 4) & (freqs < f + 4)
        assert mag[near].max() > 30 * floor, f"no peak at {f} Hz"
    # and not at the semitone between C and E
    d = (freqs > 277.18 - 3) & (freqs < 277.18 + 3)
    assert mag[d].max() < mag[(freqs > 257) & (freqs < 266)].max() / 10


def test_not_silent_with_release_tail(triad_midi):
    x = audio.render(triad_midi, SR, tail=1.5)
    assert len(x) == int(np.ceil(2.5 * SR))
    rms = lambda seg: np.sqrt(np.mean(seg.astype(np.float64) ** 2))
    body, after, end = rms(x[: SR]), rms(x[SR + 2205: SR + 6615]), rms(x[-2205:])
    assert body > 300  # clearly audible at the fixed gain
    assert after > 0.02 * body  # the release rings after the note-off, not cut
    assert end < after  # and decays


def test_fixed_gain_not_normalised(triad_midi):
    loud = audio.render(triad_midi, SR)
    for n in triad_midi.instruments[0].notes:
        n.velocity = 30
    quiet = audio.render(triad_midi, SR)
    assert np.abs(quiet).max() < 0.7 * np.abs(loud).max()


def test_drums_and_instruments_render():
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    drums = pretty_midi.Instrument(0, is_drum=True)
    drums.notes += [pretty_midi.Note(110, 38, t * 0.25, t * 0.25 + 0.1) for t in range(4)]  # snare
    pm.instruments.append(drums)
    events, programs = audio.midi_events(pm)
    assert programs == {9: (128, 0)}
    x = audio.render(pm, SR, tail=0.5)
    assert np.abs(x[: SR]).max() > 1000


def test_channels_skip_drum_channel():
    pm = pretty_midi.PrettyMIDI()
    for k in range(12):
        inst = pretty_midi.Instrument(k)
        inst.notes.append(pretty_midi.Note(90, 60, 0, 0.1))
        pm.instruments.append(inst)
    _, programs = audio.midi_events(pm)
    assert 9 not in programs and len(programs) == 12
    assert programs[10] == (0, 9)


def test_one_renderer_per_process():
    assert audio.get_renderer(SR) is audio.get_renderer(SR)


def test_wav_round_trip(tmp_path, triad_midi):
    x = audio.render(triad_midi, 22050)
    path = audio.write_wav(tmp_path / "t.wav", x, 22050)
    y, sr = audio.read_wav(path)
    assert sr == 22050
    np.testing.assert_array_equal(x, y)


def test_missing_soundfont_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPOSER_SOUNDFONT", str(tmp_path / "nope.sf2"))
    with pytest.raises(SoundfontNotFoundError, match="COMPOSER_SOUNDFONT"):
        audio.find_soundfont()


def test_no_soundfont_anywhere(monkeypatch, tmp_path):
    monkeypatch.delenv("COMPOSER_SOUNDFONT", raising=False)
    monkeypatch.setattr(audio, "soundfont_candidates", lambda: [tmp_path / "none.sf2"])
    with pytest.raises(SoundfontNotFoundError, match="no soundfont found"):
        audio.find_soundfont()


def test_soundfont_order_prefers_env(monkeypatch):
    tim = audio.soundfont_candidates()[-1]
    assert tim.name == "TimGM6mb.sf2" and tim.is_file()
    monkeypatch.setenv("COMPOSER_SOUNDFONT", str(tim))
    assert audio.find_soundfont() == tim
    assert audio.soundfont_candidates()[0] == tim


def test_cli_missing_soundfont_one_line(tmp_path, example_midi):
    from tests.conftest import run_cli
    res = run_cli("render", example_midi, "--out", tmp_path / "o.wav",
                  env={"COMPOSER_SOUNDFONT": str(tmp_path / "gone.sf2")})
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "gone.sf2" in res.stderr


def test_a_long_render_does_not_hold_up_a_short_one():
    import threading

    import pretty_midi

    from composer.render import audio
    long_pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(80, 48 + i % 24, i * 0.5, i * 0.5 + 0.4) for i in range(1200)]  # 10 minutes
    long_pm.instruments.append(inst)
    short_pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(80, 60, 0, 1.0)]
    short_pm.instruments.append(inst)
    long_lane = audio.get_renderer(lane="long")
    audio.get_renderer(lane="short")  # both synths loaded before the race
    done = threading.Event()
    t = threading.Thread(target=lambda: (audio.render(long_pm), done.set()))
    t.start()
    while not long_lane._lock.locked() and not done.is_set():
        pass
    short = audio.render(short_pm)
    assert not done.is_set()  # the short piece came back while the long one still renders
    assert short.shape[0] > 0
    t.join()


def test_a_phrase_split_among_idle_synths_sounds_as_one(monkeypatch, example_midi):
    """The short lane shares a phrase's tracks among idle synths and adds their outputs:
    the mix is the same music (only the reverb's slow modulation may differ in phase)."""
    pm = pretty_midi.PrettyMIDI(str(example_midi))
    whole = audio.get_renderer().render(pm).astype(np.float64)
    monkeypatch.setattr(audio, "LANE_SYNTHS", {"short": 2, "long": 1})
    monkeypatch.setattr(audio, "_lanes", {})
    monkeypatch.setattr(audio, "_spare_core", lambda: True)
    monkeypatch.setattr(audio, "SPLIT_MIN_S", 0.0)
    lane = audio._lane(audio.SAMPLE_RATE, None, "short")
    taken = []
    real_take = lane.take
    monkeypatch.setattr(lane, "take", lambda most: taken.append(real_take(most)) or taken[-1])
    split = audio.render(pm).astype(np.float64)
    assert len(taken[0]) == 2  # both synths played a part
    assert split.shape == whole.shape
    corr = (whole * split).sum() / np.sqrt((whole ** 2).sum() * (split ** 2).sum())
    assert corr > 0.95
    assert abs(np.sqrt((split ** 2).mean()) / np.sqrt((whole ** 2).mean()) - 1) < 0.05


@pytest.mark.parametrize("runnable, load, spare", [(1, 0.5, True), (3, 2.5, True), (4, 2.5, False),
                                                   (40, 0.5, False), (2, 3.5, False)])
def test_a_phrase_is_split_only_while_the_machine_has_room(monkeypatch, runnable, load, spare):
    """On 2 cores: this render plus two other runnable tasks leave room, a third does not; nor
    does a minute of load over 3 (many visitors: every synth is better left to one of them)."""
    import builtins
    import io
    real_open = builtins.open
    fake = f"{load:.2f} 1.90 1.20 {runnable}/345 12345\n"
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: io.StringIO(fake) if str(path) == "/proc/loadavg"
                        else real_open(path, *a, **k))
    monkeypatch.setattr(audio.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(audio.os, "getloadavg", lambda: (load, 1.9, 1.2))
    assert audio._spare_core() is spare


def test_a_short_phrase_keeps_to_one_synth_even_on_an_idle_machine(monkeypatch):
    """A 4-bar phrase is not worth a second synth (another visitor may want it)."""
    pm = pretty_midi.PrettyMIDI()
    for program, pitch in ((40, 72), (42, 48)):
        inst = pretty_midi.Instrument(program)
        inst.notes = [pretty_midi.Note(80, pitch + i % 5, i * 0.5, i * 0.5 + 0.45) for i in range(20)]
        pm.instruments.append(inst)
    monkeypatch.setattr(audio, "LANE_SYNTHS", {"short": 2, "long": 1})
    monkeypatch.setattr(audio, "_lanes", {})
    monkeypatch.setattr(audio, "_spare_core", lambda: True)
    lane = audio._lane(audio.PREVIEW_RATE, None, "short")
    asked = []
    real_take = lane.take
    monkeypatch.setattr(lane, "take", lambda most: asked.append(most) or real_take(most))
    audio.render(pm, audio.PREVIEW_RATE)
    assert asked == [1]
