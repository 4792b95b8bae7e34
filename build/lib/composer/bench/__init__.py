"""Performance figures, ``python -m composer bench --json``: one module per model plus
:mod:`composer.bench.run`. See ``docs/ARCHITECTURE.md``."""
