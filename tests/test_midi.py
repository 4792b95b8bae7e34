"""Bad MIDI input gets a named error with a clear message, in the API and the CLI."""
import pretty_midi
import pytest

from composer.errors import (CorruptMidiError, EmptyMidiError, MidiTooLargeError, MidiTooLongError, NotMidiError)
from composer.music.midi import load_midi, load_midi_bytes, midi_bytes, with_programs
from tests.conftest import run_cli


@pytest.fixture
def good_bytes(triad_midi):
    return midi_bytes(triad_midi)


def test_good_file_loads(good_bytes):
    pm = load_midi_bytes(good_bytes)
    assert [n.pitch for n in pm.instruments[0].notes] == [60, 64, 67]


@pytest.mark.parametrize("data,err,words", [
    (b"", NotMidiError, "empty"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", NotMidiError, "not a MIDI file"),
    (b"<html>hello</html>", NotMidiError, "not a MIDI file"),
])
def test_not_midi(data, err, words):
    with pytest.raises(err, match=words):
        load_midi_bytes(data, name="x.mid")


def test_truncated_and_corrupt(good_bytes):
    with pytest.raises(CorruptMidiError, match="damaged or truncated"):
        load_midi_bytes(good_bytes[: len(good_bytes) // 2], name="half.mid")
    broken = bytearray(good_bytes)
    broken[14:18] = b"XXXX"  # the track chunk id
    with pytest.raises(CorruptMidiError):
        load_midi_bytes(bytes(broken))


def test_no_notes():
    pm = pretty_midi.PrettyMIDI()
    pm.instruments.append(pretty_midi.Instrument(0))
    with pytest.raises(EmptyMidiError, match="no notes"):
        load_midi_bytes(midi_bytes(pm), name="silence.mid")


def test_too_large_and_too_long(good_bytes, triad_midi):
    with pytest.raises(MidiTooLargeError, match="limit"):
        load_midi_bytes(good_bytes + b"\0" * 100, max_bytes=len(good_bytes))
    triad_midi.instruments[0].notes.append(pretty_midi.Note(90, 60, 1000.0, 1001.0))
    with pytest.raises(MidiTooLongError, match="minutes"):
        load_midi_bytes(midi_bytes(triad_midi), max_seconds=600)


def test_load_midi_checks_size_before_reading(tmp_path):
    big = tmp_path / "big.mid"
    big.write_bytes(b"MThd" + b"\0" * (3 * 1024 * 1024))
    with pytest.raises(MidiTooLargeError):
        load_midi(big)
    with pytest.raises(NotMidiError, match="no such file"):
        load_midi(tmp_path / "missing.mid")


def test_with_programs_copies(triad_midi):
    out = with_programs(triad_midi, [40])
    assert out.instruments[0].program == 40 and triad_midi.instruments[0].program == 0


def test_cli_bad_input_is_one_line(tmp_path):
    bad = tmp_path / "notes.txt.mid"
    bad.write_text("this is not music")
    res = run_cli("render", bad, "--out", tmp_path / "o.wav")
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "not a MIDI file" in lines[0]
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "o.wav").exists()
