"""Composer: a music studio for small generative models.

Subpackages follow the pipeline of DESIGN.md section 2:

* :mod:`composer.music`   - codecs and corpora (no torch)
* :mod:`composer.models`  - pure torch modules
* :mod:`composer.training`, :mod:`composer.evaluation` - trainers and metrics runners
* :mod:`composer.render.audio`, :mod:`composer.render.viz` - FluidSynth audio, piano rolls and scores
* :mod:`composer.ui`      - the Gradio tabs
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
