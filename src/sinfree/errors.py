"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class SinfreeError(Exception):
    """A problem with the user's input or settings, explained in one line."""


class InputImageError(SinfreeError):
    """The input image cannot be read or is unsuitable (too small, truncated, not an image)."""


class OutputError(SinfreeError):
    """The output location cannot be written."""


class MemoryBudgetError(SinfreeError):
    """The run would need more memory than allowed; the message gives the estimate."""


class MissingModelError(SinfreeError):
    """A model's weights are not on this machine; the message says what to download and where."""
