"""What the UI, the CLI and scripts call: one module per model, no gradio, no argparse.

* :mod:`composer.api.musegan`  - load the MuseGAN generator, draw and decode latents
* :mod:`composer.api.compose`  - the Compose engine (a piece's latents, locks, undo, latents JSON)
* :mod:`composer.api.cyclegan` - genre transfer and the genre classifier
* :mod:`composer.api.charrnn`  - folk tunes in ABC from the character LSTM
* :mod:`composer.api.notes`    - melody continuation with the note LSTM and WaveNet

See ``docs/ARCHITECTURE.md``.
"""
