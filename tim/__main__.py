"""``python -m tim ...`` runs the ``tim`` command line, exactly as ``tim ...`` does."""

import sys

from tim.cli import main

if __name__ == "__main__":
    sys.exit(main())
