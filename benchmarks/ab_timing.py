"""Seconds per Table-1 sample (balloons, backend auto) with the sinfree on PYTHONPATH, to compare commits.

    PYTHONPATH=SNAPSHOT/src python benchmarks/ab_timing.py [N] [--backend auto:early_stride=2,k=4] [--profile]

One warm-up sample (numba compiles on first use), then N samples (seeds 0 .. N-1), each time printed.
``--backend``: a backend with options, as bench_quality.py spells them. ``--profile``: cProfile of the
N timed samples (the 15 functions with the most own time, divided by N).
Run two snapshots (``git archive REV | tar -x -C DIR``) alternately, in one session, so that both
see the same machine load; the ratio is the figure, not the seconds.
"""

from __future__ import annotations

import cProfile
import pstats
import time
from pathlib import Path

from sinfree import GenerationSettings, generate_samples

IMAGE = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "sinddm15" / "balloons.png"


def main() -> None:
    import argparse

    from bench_quality import parse_backend

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, nargs="?", default=3)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    name, options = parse_backend(args.backend)
    settings = GenerationSettings(backend=name, backend_options=options)
    generate_samples(IMAGE, settings, num_samples=1, seed=99)
    profile = cProfile.Profile() if args.profile else None
    for seed in range(args.count):
        start = time.perf_counter()
        if profile is not None:
            profile.enable()
        generate_samples(IMAGE, settings, num_samples=1, seed=seed)
        if profile is not None:
            profile.disable()
        print(f"{time.perf_counter() - start:.3f}", flush=True)
    if profile is not None:
        stats = sorted(pstats.Stats(profile).stats.items(), key=lambda item: -item[1][2])[:15]
        for (file, line, function), (_, _, own, _, _) in stats:
            print(f"{own / args.count:8.3f} s  {Path(file).name}:{line}({function})")


if __name__ == "__main__":
    main()
