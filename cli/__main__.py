"""``python -m cli`` is the ``hcc`` command."""

from cli.main import main

main()
