"""The command line, ``python -m composer``: argparse sub-commands, one module per model
plus :mod:`composer.cli.main`. Only the CLI prints. See ``docs/ARCHITECTURE.md``."""
from composer.cli.main import main

__all__ = ["main"]
