"""Why our SIFID values are on another scale than published ones: the same samples, scaled once (ours,
as issue 4 asks) and with the [0, 1] images divided by 255 a second time (inputs squeezed into
[-1, -0.992]), for the first 3 samples of three images of an evaluation run.

    python benchmarks/sifid_scale_check.py [--run benchmarks/eval/t10_eta0]

It reads the run's samples/ folder, which `sinfree eval` writes but git does not keep: run
`sinfree eval -n 10 -T 10 --eta 0 -o benchmarks/eval/t10_eta0` first on a fresh checkout.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sinfree import load_image
from sinfree.evaluation.evaluate import default_benchmark_dir, read_sample_folder
from sinfree.metrics.sifid import sifid


def divided_twice(image):
    """[-1, 1] -> [0, 1] -> / 255 -> 2x - 1."""
    return 2 * ((image + 1) / 2 / 255) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path(__file__).resolve().parent / "eval" / "t10_eta0")
    parser.add_argument("--images", nargs="+", default=["balloons", "aqueduct", "night_sky"])
    args = parser.parse_args()
    for name in args.images:
        reference = load_image(default_benchmark_dir() / f"{name}.png")[0][:3]
        samples = read_sample_folder(args.run / "samples" / name)[:3]
        once = np.mean([sifid(s, reference) for s in samples])
        twice = np.mean([sifid(divided_twice(s), divided_twice(reference)) for s in samples])
        print(f"{name:12s} SIFID scaled once {once:8.3f}   divided by 255 twice {twice:8.4f}")


if __name__ == "__main__":
    main()
