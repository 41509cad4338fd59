"""``python -m netaio``: the ``netaio`` command."""

import sys

from netaio.cli import main

sys.exit(main())
