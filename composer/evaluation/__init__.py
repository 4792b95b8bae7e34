"""Evaluation runners, one module per model (``python -m composer eval MODEL --json``): the
model's figures beside the real data and beside baselines that should fail. The music
metrics themselves live in :mod:`composer.music.metrics`. See ``docs/ARCHITECTURE.md``."""

#: ``eval MODEL`` -> the module with ``main(argv) -> int``.
EVALUATORS = {"musegan": "composer.evaluation.musegan", "charrnn": "composer.evaluation.charrnn",
              "cyclegan": "composer.evaluation.cyclegan", "notes": "composer.evaluation.notes",
              "harmonize": "composer.evaluation.harmonize"}


def rounded(value, digits: int = 4):
    """``value`` with every float inside it (dicts and lists walked) rounded to ``digits``,
    for the JSON an eval prints."""
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return round(value, digits) if isinstance(value, float) else value
