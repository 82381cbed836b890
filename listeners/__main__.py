"""``python -m listeners`` is ``vigil-listener``."""

import sys

from listeners.cli import main

sys.exit(main())
