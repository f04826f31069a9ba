"""``python -m semibench.cli``."""

import sys

from semibench.cli import main

sys.exit(main())
