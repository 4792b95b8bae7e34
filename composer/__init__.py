"""Composer: a music studio for small generative models.

The house plan is docs/ARCHITECTURE.md:

* :mod:`composer.api`     - what the UI, CLI and scripts call, one module per model
* :mod:`composer.music`   - codecs, corpora and music metrics (no torch)
* :mod:`composer.models`  - pure torch modules
* :mod:`composer.training`, :mod:`composer.evaluation` - trainers and evaluation runners
* :mod:`composer.render`  - FluidSynth audio, piano rolls and scores, the files of a piece
* :mod:`composer.cli`, :mod:`composer.ui` - the command line and the Gradio tabs
"""
__version__ = "0.1.0"

# pyfluidsynth prints where it found libfluidsynth when $CI is set, and pretty_midi imports
# it at import time; import it once here, quietly, so `--json` output stays valid JSON.
# (On a bare training box without FluidSynth this is a no-op.)
import contextlib as _contextlib  # noqa: E402
import io as _io  # noqa: E402

with _contextlib.redirect_stdout(_io.StringIO()):
    try:
        import fluidsynth as _fluidsynth  # noqa: F401
    except (ImportError, OSError):
        pass
