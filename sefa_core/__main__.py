"""``python -m sefa_core`` runs the ``sefa`` command."""

from sefa_core.cli import console

console()
