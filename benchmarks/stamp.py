"""The stamp every published table carries: date, CPU model, core and thread counts, and the command.

Imported by the benchmark scripts (``import stamp``: ``python benchmarks/NAME.py`` puts this folder on
``sys.path``); not a benchmark itself. ``measure()`` is stored in each results JSON under ``"stamp"``;
``publish.py`` turns it into the line under each table.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
# As the CLI does: OpenMP threads waiting for work sleep instead of spinning, so that timings on shared cores
# match what `sinfree` users get. Takes effect when this module is imported before torch; the user's value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cpu_model() -> str:
    """The ``model name`` of /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def command() -> str:
    """The command line that is running, with the script's path relative to the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(REPOSITORY)
    except ValueError:
        pass
    return "python " + " ".join(shlex.quote(part) for part in [str(script), *sys.argv[1:]])


def measure() -> dict:
    """Date, CPU, cores, torch threads, versions and command of the run in progress."""
    import torch

    import sinfree

    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "sinfree": getattr(sinfree, "__version__", "?"),
        "command": command(),
        "load": round(os.getloadavg()[0], 1),  # 1-minute load average at the start: other work on the cores
    }


def line(stamp: dict) -> str:
    """The sentence under a published table."""
    if not isinstance(stamp, dict) or "date" not in stamp:
        return "Date, CPU and threads not recorded."
    return (
        f"Measured {stamp['date'][:10]} on {stamp['cpu']} ({stamp['cores']} cores), {stamp['threads']} torch threads, "
        f"sinfree {stamp['sinfree']}, torch {stamp['torch']}, load average {stamp['load']:.1f} at the start: "
        f"`{stamp['command']}`"
    )


def write_markdown(path: Path, table: list[str], stamp: dict) -> None:
    """``table`` (markdown lines) and the stamp line under it, to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([*table, "", line(stamp)]) + "\n")
