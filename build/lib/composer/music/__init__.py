"""Codecs and corpora: everything between notes and arrays. No torch in here."""
from composer.music.midi import MAX_MIDI_BYTES, MAX_MIDI_SECONDS, load_midi, load_midi_bytes, midi_bytes
from composer.music.pianoroll import (HOLD, N_PITCHES, ONSET, PITCH_OFFSET, REST, STEPS_PER_BAR, MultiTrackRoll,
                                      codes_to_float, float_to_codes, merged_roll, merged_to_pretty_midi,
                                      merged_windows)

__all__ = ["MAX_MIDI_BYTES", "MAX_MIDI_SECONDS", "load_midi", "load_midi_bytes", "midi_bytes", "HOLD", "ONSET",
           "REST", "N_PITCHES", "PITCH_OFFSET", "STEPS_PER_BAR", "MultiTrackRoll", "codes_to_float",
           "float_to_codes", "merged_roll", "merged_to_pretty_midi", "merged_windows"]
