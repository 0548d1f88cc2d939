"""The `sinfree inpaint` subcommand (scaffold: filled in by issue 5's work)."""


def register(app) -> None:
    """Add the subcommand to the typer app."""
