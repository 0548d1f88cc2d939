"""The `sinfree enhance` subcommand (scaffold: filled in by issue 6's work)."""


def register(app) -> None:
    """Add the subcommand to the typer app."""
