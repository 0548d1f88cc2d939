"""Time one sample per backend on one image, as ratios to the exact backend measured in the same run.

    python benchmarks/bench_backends.py [--image PATH] [--backends exact ivf] [--num-samples 1] [--seed 0]

Prints seconds per sample, the speed-up over the exact backend, and two training-free quality
figures of the samples against the input: the median distance of each 7 x 7 sample patch to its
nearest input patch (RMS per pixel, [-1, 1] units) and the per-pixel std across samples over the
input's std (diversity; needs two or more samples).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from sinfree import GenerationSettings, generate_samples
from sinfree.image_io import load_image
from sinfree.patches import all_patches

DEFAULT_IMAGE = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "sinddm15" / "balloons.png"


def median_nearest_patch_distance(sample: torch.Tensor, reference: torch.Tensor, patch_size: int = 7) -> float:
    queries, patches = all_patches(sample, patch_size), all_patches(reference, patch_size)
    best = torch.cat([torch.cdist(chunk, patches).min(dim=1).values for chunk in queries.split(4096)])
    return (best / patches.shape[1] ** 0.5).median().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--backends", nargs="+", default=["exact", "ivf"])
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    reference, _ = load_image(args.image)
    print(f"{args.image.name} {tuple(reference.shape[-2:])}, Table-1 setting, {args.num_samples} sample(s) from seed {args.seed}, {torch.get_num_threads()} threads")
    rows = {}
    for backend in args.backends:
        start = time.perf_counter()
        result = generate_samples(args.image, GenerationSettings(backend=backend), num_samples=args.num_samples, seed=args.seed)
        seconds = (time.perf_counter() - start) / args.num_samples
        samples = [load_image(s)[0] for s in result.samples]
        distance = sum(median_nearest_patch_distance(s, reference) for s in samples) / len(samples)
        diversity = (torch.stack(samples).std(dim=0).mean() / reference.std()).item() if len(samples) > 1 else float("nan")
        rows[backend] = (seconds, distance, diversity)
    exact_seconds = rows.get("exact", (float("nan"),))[0]
    print(f"{'backend':10s} {'s/sample':>9s} {'speed-up':>9s} {'NN dist':>8s} {'diversity':>9s}")
    for backend, (seconds, distance, diversity) in rows.items():
        print(f"{backend:10s} {seconds:9.2f} {exact_seconds / seconds:8.1f}x {distance:8.4f} {diversity:9.3f}")


if __name__ == "__main__":
    main()
