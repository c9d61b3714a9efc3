"""``python -m rbm`` → :func:`rbm.cli.main`."""
import sys

from .cli import main

sys.exit(main())
