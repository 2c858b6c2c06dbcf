"""``python -m sfsync.cli`` runs the ``sfsync`` command."""

from sfsync.cli.main import main

main()
