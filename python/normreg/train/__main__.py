"""``python -m normreg.train``: the training command."""

import sys

from .cli import main

sys.exit(main())
