"""Seconds per Table-1 sample (balloons, backend auto) with the sinfree on PYTHONPATH, to compare commits.

    PYTHONPATH=SNAPSHOT/src python benchmarks/ab_timing.py [N]

One warm-up sample (numba compiles on first use), then N samples (seeds 0 .. N-1), each time printed.
Run two snapshots (``git archive REV | tar -x -C DIR``) alternately, in one session, so that both
see the same machine load; the ratio is the figure, not the seconds.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sinfree import GenerationSettings, generate_samples

IMAGE = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "sinddm15" / "balloons.png"


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    generate_samples(IMAGE, GenerationSettings(), num_samples=1, seed=99)
    for seed in range(count):
        start = time.perf_counter()
        generate_samples(IMAGE, GenerationSettings(), num_samples=1, seed=seed)
        print(f"{time.perf_counter() - start:.3f}", flush=True)


if __name__ == "__main__":
    main()
