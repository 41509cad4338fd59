"""``python -m netaio``: the ``netaio`` command."""

from __future__ import annotations

import sys

from netaio.cli import main

sys.exit(main())
