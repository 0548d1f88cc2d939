"""``python -m sinfree.cli``: the ``sinfree`` command."""

from . import main

main()
