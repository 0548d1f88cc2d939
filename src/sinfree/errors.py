"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class SinfreeError(Exception):
    """A problem with the user's input or settings, explained in one line."""


class InputImageError(SinfreeError):
    """The input image cannot be read or is unsuitable (too small, truncated, not an image)."""


class OutputError(SinfreeError):
    """The output location cannot be written."""


class MemoryBudgetError(SinfreeError):
    """The run would need more memory than allowed. ``message``: the estimate against the limit;
    ``advice``: the changes of settings that would fit (``sinfree.memory.MemoryAdvice``), cheapest first."""

    def __init__(self, text: str, *, message: str | None = None, advice: list | None = None):
        super().__init__(text)
        self.message = text if message is None else message
        self.advice = list(advice or [])


class MissingModelError(SinfreeError):
    """A model's weights are not on this machine; the message says what to download and where."""


class MissingExtraError(SinfreeError):
    """A feature's optional dependency is not installed; the message names the extra to install
    (``sinfree.extras.require``)."""
