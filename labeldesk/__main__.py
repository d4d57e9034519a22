"""``python -m labeldesk``: the same as the ``labeldesk`` command (used for background jobs)."""

import sys

from labeldesk.cli.main import main

sys.exit(main())
