"""``python -m sagestack``: the same as the ``sagestack`` command."""

from sagestack.cli import main

main()
