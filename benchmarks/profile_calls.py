"""Seconds per denoiser call and per kernel of one sample (the ``patchmatch`` scales of ``auto``), by scale and s_t.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/profile_calls.py [--side 1024] [--backend auto:sharp_passes=1]

scikit-image's astronaut at ``--side`` (as bench_timing.py makes it), an output of the same size, the Table-1
setting, seed 0, after a warm-up sample. Each row is one call (canvas width, s_t): its total, then the time in
each numba kernel and in the (transposed) convolutions of the query grid; a column ``..._full`` is the
full-distance PatchMatch passes. What the row's total holds beyond its columns is Python and torch glue.
"""

from __future__ import annotations

import argparse
import collections
import time

from bench_quality import parse_backend
from bench_timing import square_input

from sinfree import generate_samples, preset_settings
from sinfree.backends import patchmatch, patchmatch_kernels

KERNELS = ("propagate_and_search", "exact_distances", "rescore_projected", "softmax_weights", "fold_weighted",
           "tail_lower_bounds", "tail_distances", "regrid_field")  # fmt: skip
GRID = ("grid_correlation", "grid_fold")
FULL_FLAG = 15  # propagate_and_search's ``full`` argument


def timed(function, name: str, table: dict, current: dict):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        label = name + ("_full" if name == "propagate_and_search" and args[FULL_FLAG] else "")
        table[current["call"], label] += time.perf_counter() - start
        return result

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=1024)
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    table: dict = collections.defaultdict(float)
    current = {"call": None}
    for name in KERNELS:
        setattr(patchmatch_kernels, name, timed(getattr(patchmatch_kernels, name), name, table, current))
    for name in GRID:
        setattr(patchmatch, name, timed(getattr(patchmatch, name), name, table, current))
    call = patchmatch.PatchMatchDenoiser.__call__

    def timed_call(self, x_t, alpha, sigma):
        current["call"] = (x_t.shape[-1], round(float(sigma), 3))
        start = time.perf_counter()
        result = call(self, x_t, alpha, sigma)
        table[current["call"], "total"] += time.perf_counter() - start
        return result

    patchmatch.PatchMatchDenoiser.__call__ = timed_call
    name, options = parse_backend(args.backend)
    settings = preset_settings("paper", backend=name, backend_options=options)
    generate_samples(square_input(160), settings, num_samples=1, seed=99)  # warm-up: numba compiles
    table.clear()
    start = time.perf_counter()
    generate_samples(square_input(args.side), settings, num_samples=1, seed=0)
    print(f"{args.side}^2, {args.backend}: {time.perf_counter() - start:.2f} s")
    columns = ["total", "propagate_and_search", "propagate_and_search_full", *KERNELS[1:], *GRID]
    calls = sorted({key for key, _ in table}, key=lambda key: (-key[0], -key[1]))
    print("width    s_t " + " ".join(f"{column[-12:]:>12}" for column in columns))
    for key in calls:
        print(f"{key[0]:5d} {key[1]:6.3f} " + " ".join(f"{table[key, column]:12.3f}" for column in columns))
    print("all          " + " ".join(f"{sum(table[key, column] for key in calls):12.3f}" for column in columns))


if __name__ == "__main__":
    main()
