"""Seconds per sample at the paper's timing setting and larger sizes: docs/performance.md, both timing tables.

    python benchmarks/bench_timing.py --sides 512 1024 --backends ivf patchmatch auto --budget 60 --presets
    python benchmarks/publish.py          # writes the tables into docs/performance.md

Rows: the Table-1 setting on a 248 x 186 benchmark image (balloons, from ``benchmarks/sinddm15``), then
square inputs of each ``--sides`` (scikit-image's astronaut, resized with PIL bicubic) generating an output
of the same size (T = 10, P = 15, S = 4: the ``paper`` preset). Columns: each of ``--backends`` (``chunked``:
the plain chunked softmax of Eq. 2; ``exact``: fused attention; ``faiss-ivf``: the paper's ANN; ``ivf``: our
GEMM inverted file; ``patchmatch``; ``auto``: exact on the cheap coarse scales, PatchMatch elsewhere), each
with its speed-up over the first column measured in the same run.

A run is made only when its predicted time is within ``--budget`` seconds: the prediction scales the last
measured time of the same backend by the work of Eq. 2 (N M for the exact backends, N sqrt(M) for the inverted
files, N for PatchMatch). Predicted entries are marked ``~``; nothing is measured twice.

With ``--presets``: the ``default`` preset's seconds per sample beside the ``paper`` preset's (auto backend),
interleaved, best of ``--repeats``, and their ratio: the second table of docs/performance.md.

Writes ``--json`` (default ``benchmarks/results/timing.json``) with the stamp (date, CPU, threads, command,
load average) that ``publish.py`` prints under the tables.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import skimage.data
import stamp
from PIL import Image

from sinfree import generate_samples, preset_settings
from sinfree.backends import AUTO, AUTO_FAST, AUTO_FAST_OPTIONS
from sinfree.io.images import load_image

HERE = Path(__file__).resolve().parent
BENCHMARK_DIR = Path(os.environ.get("SINFREE_BENCHMARK_DIR") or HERE / "sinddm15")
EXACT_BACKENDS = ("chunked", "exact", "reference")


def work(backend: str, num_queries: int, num_patches: int) -> float:
    """Relative cost of one Eq. 2 call: N M for exact backends, N sqrt(M) for inverted files, N for
    the fused PatchMatch (a fixed number of candidates per query; ``auto`` runs it at the costly scales)."""
    if backend in EXACT_BACKENDS:
        return num_queries * num_patches
    if backend in ("patchmatch", "auto"):
        return num_queries
    return num_queries * math.sqrt(num_patches)


def square_input(side: int) -> np.ndarray:
    return np.asarray(Image.fromarray(skimage.data.astronaut()).resize((side, side), Image.BICUBIC))


def warm_up(backend: str) -> None:
    """One tiny run first, so that no timed run includes one-time costs (the numba kernels of
    ``patchmatch`` are compiled on their first use after an install and cached on disk)."""
    name = AUTO_FAST if backend == AUTO else backend  # a tiny input would run auto's exact path only
    options = AUTO_FAST_OPTIONS if backend == AUTO else {}  # every kernel auto's options reach (strides, full passes)
    settings = preset_settings("paper", backend=name, backend_options=options, patch_size=7, num_scales=1, steps=10)
    generate_samples(square_input(64), settings, seed=0)


def time_one_sample(image, backend: str, preset: str = "paper") -> float:
    start = time.perf_counter()
    generate_samples(image, preset_settings(preset, backend=backend), num_samples=1, seed=0)
    return time.perf_counter() - start


def compare_presets(rows: list, repeats: int) -> list[dict]:
    """The default preset against the paper's, auto backend: best of ``repeats`` interleaved runs per row."""
    print(f"\nseconds per sample, auto backend, best of {repeats} interleaved runs: default preset / paper preset")
    found = []
    for label, image, _ in rows:
        best = {"paper": math.inf, "default": math.inf}
        for _ in range(repeats):
            for preset in best:
                best[preset] = min(best[preset], time_one_sample(image, AUTO, preset))
        found.append({"row": label, **best, "repeats": repeats})
        print(
            f"  {label:28s} paper {best['paper']:7.2f} s  default {best['default']:7.2f} s  "
            f"ratio {best['default'] / best['paper']:.2f}",
            flush=True,
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--backends", nargs="+", default=["chunked", "exact", "faiss-ivf", "ivf", "auto"])
    parser.add_argument("--budget", type=float, default=600.0, help="longest run made, in seconds (predicted)")
    parser.add_argument("--presets", action="store_true", help="also time the default preset against the paper's (auto)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per preset with --presets (best kept)")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "timing.json")
    args = parser.parse_args()
    measured = stamp.measure()
    print(f"{measured['threads']} threads; Table-1 setting (T = 10, P = 15, S = 4); budget {args.budget:.0f} s per run\n")

    balloons = BENCHMARK_DIR / "balloons.png"
    shape = tuple(load_image(balloons)[0].shape[-2:])
    rows = [(f"Table 1 (balloons, {shape[1]} x {shape[0]})", balloons, shape)]
    rows += [(f"{side}^2 -> {side}^2", square_input(side), (side, side)) for side in args.sides]
    rows.sort(key=lambda row: row[2][0] * row[2][1])  # small first: the larger rows are predicted from them

    for backend in args.backends:
        warm_up(backend)
    last: dict[str, tuple[float, float]] = {}  # backend -> (seconds, work) of its last measured run
    table = []
    for label, image, (height, width) in rows:
        m = (height - 14) * (width - 14)
        entry = {"row": label}
        for backend in args.backends:
            predicted = last[backend][0] * work(backend, m, m) / last[backend][1] if backend in last else None
            if predicted is not None and predicted > args.budget:
                entry[backend] = {"seconds": predicted, "measured": False}
                continue
            seconds = time_one_sample(image, backend)
            last[backend] = (seconds, work(backend, m, m))
            entry[backend] = {"seconds": seconds, "measured": True}
            print(f"  {label:28s} {backend:10s} {seconds:9.2f} s", flush=True)
        table.append(entry)

    base = args.backends[0]
    print(f"\n{'seconds per sample (~ predicted)':32s}" + "".join(f"{b:>18s}" for b in args.backends))
    for entry in table:
        cells = []
        for backend in args.backends:
            cell = entry[backend]
            mark = "" if cell["measured"] else "~"
            speed_up = entry[base]["seconds"] / cell["seconds"]
            cells.append(f"{mark}{cell['seconds']:.1f} ({speed_up:.1f}x)".rjust(18))
        print(f"{entry['row']:32s}" + "".join(cells))
    presets = compare_presets(rows, args.repeats) if args.presets else None
    measured["load_after"] = os.getloadavg()[0]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    result = {"stamp": measured, "backends": args.backends, "rows": table, "presets": presets}
    args.json.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
