"""Memory: what the machine has free, and a refusal before a run that would not fit."""

from __future__ import annotations

import os

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


def check_fits(estimate: int, limit: int | None, what: str) -> None:
    """Refuse a run whose estimated peak exceeds ``limit`` bytes (default: the free memory)."""
    limit = available_bytes() if limit is None else limit
    if estimate > limit:
        raise MemoryBudgetError(
            f"{what} needs about {format_bytes(estimate)} but only {format_bytes(limit)} is available; "
            "use a smaller input or output, a larger query stride, or fewer samples at once"
        )
