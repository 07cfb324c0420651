"""``python -m sefa_core`` runs the ``sefa`` command."""

import sys

from sefa_core.cli import main

sys.exit(main())
