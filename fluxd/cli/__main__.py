"""``python -m fluxd.cli``: the same command as the ``fluxd`` script."""

from __future__ import annotations

import sys

from fluxd.cli import main

sys.exit(main())
