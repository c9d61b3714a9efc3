"""``python -m comparison ...``: see :mod:`comparison.cli`."""
import sys

from .cli import main

sys.exit(main())
