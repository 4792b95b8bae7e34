"""From a PrettyMIDI to what a musician hears and sees: audio (FluidSynth), pictures
(piano roll, score) and the files of a piece. See ``docs/ARCHITECTURE.md``."""
