"""``python -m agent`` does what the ``kilo-agent`` command does."""

import sys

from agent.cli import main

sys.exit(main())
