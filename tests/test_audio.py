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


def _two_synths(monkeypatch, sample_rate, dry=False):
    """A fresh short lane of two synths (without reverb and chorus when ``dry``), the machine
    said to have room."""
    monkeypatch.setattr(audio, "LANE_SYNTHS", {"short": 2, "long": 1})
    monkeypatch.setattr(audio, "_lanes", {})
    monkeypatch.setattr(audio, "_spare_core", lambda: True)
    lane = audio._lane(sample_rate, None, "short")
    for r in lane.renderers if dry else ():
        r._synth.setting("synth.reverb.active", 0)
        r._synth.setting("synth.chorus.active", 0)
        r.render(_one_note())  # a synth's first render after the change still differs (measured)
    return lane


def _one_note() -> pretty_midi.PrettyMIDI:
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(90, 60, 0.0, 0.5)]
    pm.instruments.append(inst)
    return pm


def _taking(monkeypatch, lane):
    """Record how many synths each render of ``lane`` takes."""
    taken = []
    real_take = lane.take

    def take(most):
        got = real_take(most)
        taken.append(len(got))
        return got
    monkeypatch.setattr(lane, "take", take)
    return taken


def test_a_phrase_cut_among_idle_synths_sounds_as_one(monkeypatch, example_midi):
    """The short lane cuts a phrase into spans of time for idle synths and adds their outputs:
    the mix is the same music (only the reverb's slow modulation may differ in phase)."""
    pm = pretty_midi.PrettyMIDI(str(example_midi))
    whole = audio.get_renderer().render(pm).astype(np.float64)
    lane = _two_synths(monkeypatch, audio.SAMPLE_RATE)
    taken = _taking(monkeypatch, lane)
    monkeypatch.setattr(audio, "SPLIT_MIN_S", pm.get_end_time() / 4)
    split = audio.render(pm).astype(np.float64)
    assert taken == [2]  # both synths played a span
    assert split.shape == whole.shape
    corr = (whole * split).sum() / np.sqrt((whole ** 2).sum() * (split ** 2).sum())
    assert corr > 0.95
    assert abs(np.sqrt((split ** 2).mean()) / np.sqrt((whole ** 2).mean()) - 1) < 0.05


def test_notes_held_over_a_cut_sound_to_their_end_on_time(monkeypatch):
    """Without reverb and chorus (which differ in the phase of their modulation) the spans add
    up to the whole sample for sample: a chord held over the cut is not cut short, notes after
    it start on the same sample, and a controller set before the cut still holds after it."""
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(48)  # strings: a long release
    inst.control_changes = [pretty_midi.ControlChange(7, 70, 0.0)]
    inst.notes = [pretty_midi.Note(90, p, 0.1, 7.9) for p in (48, 55, 64)]  # held over the cut
    inst.notes += [pretty_midi.Note(80, 67 + i % 5, 0.25 + 0.37 * i, 0.6 + 0.37 * i) for i in range(20)]
    pm.instruments.append(inst)
    sr = audio.PREVIEW_RATE
    events, _ = audio.midi_events(pm)
    spans = audio._time_split(events, 2, sr)
    assert [cut for cut, _ in spans] == [0, int(7.9 * sr) // 2 // 64 * 64]  # the middle, on a block
    assert [sum(e.kind == "on" for e in span) for _, span in spans] == [13, 10]
    assert all(any(e.kind == "cc" for e in span) for _, span in spans)
    lane = _two_synths(monkeypatch, sr, dry=True)
    taken = _taking(monkeypatch, lane)
    whole = audio.render(pm, sr).astype(np.int32)  # 9.5 s: one synth
    monkeypatch.setattr(audio, "SPLIT_MIN_S", 4.0)
    split = audio.render(pm, sr).astype(np.int32)
    assert taken == [1, 2]
    assert whole.shape == split.shape
    assert np.abs(whole - split).max() <= 2  # float sums in another order round differently


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


def test_a_pedal_held_over_a_cut_holds_both_spans_notes_until_let_go(monkeypatch):
    """Each span carries the piece's controls: a sustain pedal pressed in the first span and let
    go in the second holds the first span's notes until it is let go (not longer), and the
    second span's notes from their start, as in the whole; controls after the music (a file
    ending on controllers) cost nothing once the synth is silent."""
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)  # piano: decays while the pedal holds it
    inst.control_changes = [pretty_midi.ControlChange(64, 127, 0.5), pretty_midi.ControlChange(64, 0, 6.0),
                            pretty_midi.ControlChange(7, 100, 30.0)]
    inst.notes = [pretty_midi.Note(90, 48 + 4 * i, 1.0 + 0.3 * i, 1.2 + 0.3 * i) for i in range(8)]
    inst.notes += [pretty_midi.Note(90, p, 5.0, 5.2) for p in (79, 83, 86)]  # keys not struck before
    inst.notes += [pretty_midi.Note(70, 60, 7.0, 8.0)]
    pm.instruments.append(inst)
    sr = audio.PREVIEW_RATE
    events, _ = audio.midi_events(pm)
    (_, first), (cut, second) = audio._time_split(events, 2, sr)
    assert [sum(e.kind == "on" for e in span) for span in (first, second)] == [8, 4]
    assert cut / sr < 5.0
    lane = _two_synths(monkeypatch, sr, dry=True)
    taken = _taking(monkeypatch, lane)
    monkeypatch.setattr(audio, "SPLIT_MIN_S", 100.0)
    whole = audio.render(pm, sr).astype(np.float64)
    monkeypatch.setattr(audio, "SPLIT_MIN_S", 1.0)
    split = audio.render(pm, sr).astype(np.float64)
    assert taken == [1, 2]
    assert whole.shape == split.shape == (int(np.ceil((30.0 + audio.RELEASE_TAIL_S) * sr)), 2)

    def rms(x, t0, t1):
        return np.sqrt((x[int(t0 * sr):int(t1 * sr)] ** 2).mean())
    held_first, held_chord, let_go = (4.1, 4.9), (5.3, 5.9), (6.4, 6.9)
    assert rms(whole, *held_first) > 100 and rms(whole, *held_chord) > 100  # the pedal holds them
    assert rms(whole, *let_go) < 0.1 * rms(whole, *held_chord)  # and lets them go
    for t0, t1 in (held_first, held_chord, let_go):
        assert abs(rms(split, t0, t1) / rms(whole, t0, t1) - 1) < 0.02
    assert not whole[int(12 * sr):].any() and not split[int(12 * sr):].any()


def test_a_short_phrase_keeps_to_one_synth_even_on_an_idle_machine(monkeypatch):
    """A 2-bar phrase (~7 s with its tail) is not worth a second synth: a span would be mostly
    its release and reverb, and another visitor may want the synth; 4 bars (~12 s) take two."""
    def phrase(seconds):
        pm = pretty_midi.PrettyMIDI()
        for program, pitch in ((40, 72), (42, 48)):
            inst = pretty_midi.Instrument(program)
            inst.notes = [pretty_midi.Note(80, pitch + i % 5, i * 0.5, i * 0.5 + 0.45) for i in range(int(seconds * 2))]
            pm.instruments.append(inst)
        return pm
    lane = _two_synths(monkeypatch, audio.PREVIEW_RATE)
    taken = _taking(monkeypatch, lane)
    audio.render(phrase(5.3), audio.PREVIEW_RATE)
    audio.render(phrase(10.7), audio.PREVIEW_RATE)
    assert taken == [1, 2]


def test_a_render_stops_when_asked_and_leaves_the_synth_as_new(example_midi):
    """Work nobody wants any more (Compose's WAV download of a piece a newer move replaced)
    is given up within a quarter second of music, and the synth's next render starts clean."""
    pm = pretty_midi.PrettyMIDI(str(example_midi))
    synth = audio.Renderer(sample_rate=audio.PREVIEW_RATE)
    events, programs = audio.midi_events(pm)
    frames = synth.frames(events, audio.RELEASE_TAIL_S)
    before = synth.play(events, programs, frames)
    asked = []

    def stop():
        asked.append(len(asked))
        return len(asked) > 2
    with pytest.raises(audio.Stopped):
        synth.play(events, programs, frames, stop=stop)
    assert len(asked) == 3  # asked at the start and every STOP_EVERY_S of music: stopped at ~0.5 s
    after = synth.play(events, programs, frames)
    assert np.abs(after[:4096]).max() < 0.5 / 32768  # no echo of the stopped render
    a, b = after.astype(np.float64), before.astype(np.float64)  # the same music (the reverb's modulation
    assert (a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()) > 0.99  # runs on from render to render)
    with pytest.raises(audio.Stopped):
        audio.render(pm, audio.PREVIEW_RATE, split=False, stop=lambda: True)
