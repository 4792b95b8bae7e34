"""``python -m composer``: see :mod:`composer.cli.main`."""
import sys

from composer.cli import main

if __name__ == "__main__":
    sys.exit(main())
