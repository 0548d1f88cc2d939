"""Memory: what the machine has free, and a refusal before a run that would not fit."""

from __future__ import annotations

import os
from collections.abc import Callable

from .errors import MemoryBudgetError


def available_bytes() -> int:
    """Memory the system can give without swapping (MemAvailable), or free pages elsewhere."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def format_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError


def check_fits(
    estimate: int, limit: int | None, what: str, alternatives: Callable[[], list[tuple[str, int]]] | None = None
) -> None:
    """Refuse a run whose estimated peak exceeds ``limit`` bytes (default: the free memory).

    ``alternatives`` gives changed settings with their own estimates, (label, bytes); the message
    lists those under the limit, cheapest first, or says that none of them fits.
    """
    limit = available_bytes() if limit is None else limit
    if estimate <= limit:
        return
    message = f"{what} needs about {format_bytes(estimate)} but only {format_bytes(limit)} is available"
    if alternatives is None:
        hint = "use a smaller input or output, a larger query stride, or fewer samples at once"
    else:
        fitting = sorted((bytes_, label) for label, bytes_ in alternatives() if bytes_ <= limit)
        listed = ", ".join(f"{label} ({format_bytes(bytes_)})" for bytes_, label in fitting)
        hint = f"options that fit: {listed}" if fitting else "none of --stride, --latent, --backend patchmatch, -n 1 fits: use a smaller input or output"
    raise MemoryBudgetError(f"{message}; {hint}")
