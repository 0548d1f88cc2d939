"""Memory: what the machine has free, and a refusal before a run that would not fit."""

from __future__ import annotations

import ctypes
import gc
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

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


def release_freed_memory() -> None:
    """Collect garbage, then hand the allocator's free pages back to the system (glibc's ``malloc_trim``; a no-op
    elsewhere). glibc keeps the heap's freed middle mapped: after the out-of-core run's coarse scales and each
    tiled scale's denoiser, some 0.4 GiB of a 4096^2 run that a later, larger scale would count again."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim``, or None (another C library, or none found)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own C library
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    return trim


def format_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError


@dataclass(frozen=True)
class MemoryAdvice:
    """A change of settings that would make a refused run smaller: ``changes`` maps ``GenerationSettings``
    fields (and ``num_samples``) to their new values, ``peak_bytes`` is the run's estimate with them."""

    changes: dict
    peak_bytes: int

    def describe(self) -> str:
        """The changes as Python keywords, e.g. ``stride=2, latent='pca'``."""
        return ", ".join(f"{name}={value!r}" for name, value in self.changes.items())


def check_fits(estimate: int, limit: int | None, what: str, alternatives: Callable[[], list[MemoryAdvice]] | None = None) -> None:
    """Refuse (``MemoryBudgetError``) a run whose estimated peak exceeds ``limit`` bytes (default: the free memory).

    ``alternatives`` gives changed settings with their own estimates; the error keeps those under the
    limit, cheapest first, as ``advice`` (the message lists them as keywords), or says that none fits.
    """
    limit = available_bytes() if limit is None else limit
    if estimate <= limit:
        return
    message = f"{what} needs about {format_bytes(estimate)} but only {format_bytes(limit)} is available"
    fitting = (
        [] if alternatives is None else sorted((a for a in alternatives() if a.peak_bytes <= limit), key=lambda a: a.peak_bytes)
    )
    if alternatives is None:
        hint = "use a smaller input or output, a larger query stride, or fewer samples at once"
    elif fitting:
        hint = "settings that fit: " + "; ".join(f"{a.describe()} ({format_bytes(a.peak_bytes)})" for a in fitting)
    else:
        hint = "no larger stride, latent space, backend or smaller batch fits: use a smaller input or output"
    raise MemoryBudgetError(f"{message}; {hint}", message=message, advice=fitting)
