"""``python -m normreg.experiments``: the lecture's experiments."""

import sys

from . import main

sys.exit(main())
