"""Entry point for ``python -m tunkit`` (see :mod:`tunkit.cli`); does I/O."""

import sys

from tunkit.cli import main

sys.exit(main())
