"""Seconds per sample (backend auto by default) with the sinfree on PYTHONPATH, to compare commits and options.

    PYTHONPATH=SNAPSHOT/src python benchmarks/ab_timing.py [N] [--backend auto:early_stride=2,k=4] [--profile]
                                                           [--per-scale] [--side 512]

The Table-1 setting on balloons, or with ``--side S`` scikit-image's astronaut resized to S x S (as
bench_timing.py makes it) with an output of the same size. One warm-up sample (numba compiles on first use),
then N samples (seeds 0 .. N-1), each time printed. ``--backend``: a backend with options, as bench_quality.py
spells them. ``--profile``: cProfile of the N timed samples (the 15 functions with the most own time, divided
by N). ``--per-scale``: each sample's seconds per scale (coarsest first), from the progress callback.
Run two snapshots (``git archive REV | tar -x -C DIR``) alternately, in one session, so that both
see the same machine load; the ratio is the figure, not the seconds.
"""

from __future__ import annotations

import cProfile
import pstats
import time
from pathlib import Path

from sinfree import generate_samples, preset_settings

IMAGE = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "sinddm15" / "balloons.png"


class ScaleClock:
    """A progress callback that adds the time since its previous call to the call's scale."""

    def __init__(self):
        self.seconds: dict[int, float] = {}
        self.last = time.perf_counter()

    def __call__(self, progress) -> None:
        now = time.perf_counter()
        self.seconds[progress.scale] = self.seconds.get(progress.scale, 0.0) + now - self.last
        self.last = now


def main() -> None:
    import argparse

    from bench_quality import parse_backend
    from bench_timing import square_input

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, nargs="?", default=3)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--per-scale", action="store_true")
    parser.add_argument("--side", type=int, help="astronaut at this side instead of balloons")
    args = parser.parse_args()
    name, options = parse_backend(args.backend)
    settings = preset_settings("paper", backend=name, backend_options=options)
    image = IMAGE if args.side is None else square_input(args.side)
    generate_samples(IMAGE if args.side is None else square_input(160), settings, num_samples=1, seed=99)
    profile = cProfile.Profile() if args.profile else None
    for seed in range(args.count):
        clock = ScaleClock() if args.per_scale else None
        start = time.perf_counter()
        if profile is not None:
            profile.enable()
        generate_samples(image, settings, num_samples=1, seed=seed, progress=clock)
        if profile is not None:
            profile.disable()
        line = f"{time.perf_counter() - start:.3f}"
        if clock is not None:
            line += "  per scale: " + ", ".join(f"{scale}: {s:.3f}" for scale, s in sorted(clock.seconds.items(), reverse=True))
        print(line, flush=True)
    if profile is not None:
        stats = sorted(pstats.Stats(profile).stats.items(), key=lambda item: -item[1][2])[:15]
        for (file, line, function), (_, _, own, _, _) in stats:
            print(f"{own / args.count:8.3f} s  {Path(file).name}:{line}({function})")


if __name__ == "__main__":
    main()
