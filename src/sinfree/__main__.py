"""``python -m sinfree``: the same as the ``sinfree`` command."""

from .cli import main

main()
