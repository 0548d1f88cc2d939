"""Time and quality per backend, as ratios to the exact backend measured in the same run.

    python benchmarks/bench_backends.py [--images PATH ...] [--backends exact ivf] [--num-samples 3] [--seed 0]

For each image and backend: seconds per sample (Table-1 setting), and the quality figures of
``sinfree.metrics``: multi-scale sliced Wasserstein distance between 7 x 7 patch sets of sample and
input (fixed projections), the median distance of sample patches to their nearest input patch, and
pixel diversity (needs two or more samples). Means over images, then each backend's figures over
the first backend's (default: exact).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from sinfree import GenerationSettings, generate_samples
from sinfree.image_io import load_image
from sinfree.metrics import nearest_patch_distance, pixel_diversity, sliced_wasserstein

DEFAULT_IMAGE = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "sinddm15" / "balloons.png"
FIGURES = ("seconds", "swd", "nn_dist", "diversity")


def evaluate(image: Path, backend: str, num_samples: int, seed: int) -> dict[str, float]:
    reference, _ = load_image(image)
    start = time.perf_counter()
    result = generate_samples(image, GenerationSettings(backend=backend), num_samples=num_samples, seed=seed)
    seconds = (time.perf_counter() - start) / num_samples
    samples = [load_image(s)[0] for s in result.samples]
    return {
        "seconds": seconds,
        "swd": sum(sliced_wasserstein(s, reference) for s in samples) / num_samples,
        "nn_dist": sum(nearest_patch_distance(s, reference) for s in samples) / num_samples,
        "diversity": pixel_diversity(samples, reference) if num_samples > 1 else math.nan,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, nargs="+", default=[DEFAULT_IMAGE])
    parser.add_argument("--backends", nargs="+", default=["exact", "ivf"])
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(
        f"{len(args.images)} image(s), Table-1 setting, {args.num_samples} sample(s) from seed {args.seed}, {torch.get_num_threads()} threads"
    )
    means = {}
    for backend in args.backends:
        rows = []
        for image in args.images:
            rows.append(evaluate(image, backend, args.num_samples, args.seed))
            print(f"  {backend:10s} {image.name:22s} " + " ".join(f"{k} {rows[-1][k]:.4g}" for k in FIGURES), flush=True)
        means[backend] = {k: sum(r[k] for r in rows) / len(rows) for k in FIGURES}
    base = means[args.backends[0]]
    print(
        f"\n{'backend':10s} {'s/sample':>9s} {'speed-up':>9s} {'SWD':>8s} {'NN dist':>8s} {'diversity':>9s}   ratios to {args.backends[0]}: SWD, NN, diversity"
    )
    for backend, m in means.items():
        ratios = " ".join(f"{m[k] / base[k]:.3f}" for k in ("swd", "nn_dist", "diversity"))
        print(
            f"{backend:10s} {m['seconds']:9.2f} {base['seconds'] / m['seconds']:8.1f}x {m['swd']:8.4f} {m['nn_dist']:8.4f} {m['diversity']:9.3f}   {ratios}"
        )


if __name__ == "__main__":
    main()
