"""Composer: a music studio for small generative models.

Subpackages follow the pipeline of DESIGN.md section 2:

* :mod:`composer.music`   - codecs and corpora (no torch)
* :mod:`composer.models`  - pure torch modules
* :mod:`composer.training`, :mod:`composer.evaluation` - trainers and metrics runners
* :mod:`composer.audio`, :mod:`composer.viz` - FluidSynth audio, piano rolls and scores
* :mod:`composer.ui`      - the Gradio tabs
"""
__version__ = "0.1.0"
