"""``python -m cli ARGS`` is ``guardreasoner-vl ARGS`` (for scripts that choose their Python)."""

import sys

from cli.main import main

sys.exit(main())
