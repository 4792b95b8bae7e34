"""Errors a user can cause, each with a message fit to show as it is.

Every error that bad input or a missing system dependency can raise derives from
:class:`ComposerError`. The CLI prints ``str(err)`` on one line and exits non-zero;
the UI shows the same text in a warning. Anything else is a bug in Composer.
"""


class ComposerError(Exception):
    """Base class of the errors that are the user's to fix."""


class MidiError(ComposerError):
    """A MIDI file that Composer cannot use."""


class NotMidiError(MidiError):
    """The bytes are not a Standard MIDI File (no ``MThd`` header)."""


class CorruptMidiError(MidiError):
    """The file starts like MIDI but is truncated or malformed."""


class EmptyMidiError(MidiError):
    """The file parses but holds no notes."""


class MidiTooLargeError(MidiError):
    """The file is over the upload size limit."""


class MidiTooLongError(MidiError):
    """The music lasts longer than the length limit."""


class AudioError(ComposerError):
    """Audio cannot be rendered."""


class FluidSynthMissingError(AudioError):
    """libfluidsynth (or its Python binding) is not installed."""


class SoundfontNotFoundError(AudioError):
    """No usable soundfont was found on any of the searched paths."""


class ScoreError(ComposerError):
    """Sheet music cannot be made from this input."""


class CheckpointError(ComposerError):
    """A checkpoint is missing, unreadable or does not fit the model."""


class DataError(ComposerError):
    """Training data cannot be built from the given source."""
