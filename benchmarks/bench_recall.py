"""How often the PatchMatch field holds each query's true nearest patch, step by step.

    python benchmarks/bench_recall.py [--image balloons] [--options '{"k": 16}']

Along a Table-1 schedule (finest scale, P = 15), x_t = a_t x0 + s_t eps with x0 the cached exact
sample of seed 0 (``benchmarks/cache/exact/<image>/seed0.npy``) and one noise draw; after each
call, every query's best candidate (exact distance) is compared with its brute-force nearest
reference patch (float64): the share found, and the median excess distance.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from sinfree.backends.patchmatch import PatchMatchDenoiser
from sinfree.io.images import load_image
from sinfree.patches import all_patches
from sinfree.schedule import flow_schedule

HERE = Path(__file__).resolve().parent
BENCHMARK_DIR = HERE.parents[1] / "shared" / "benchmarks" / "sinddm15"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="balloons")
    parser.add_argument("--options", default="{}", help="PatchMatchDenoiser options as JSON")
    args = parser.parse_args()
    reference, _ = load_image(BENCHMARK_DIR / f"{args.image}.png")
    x0, _ = load_image(np.load(HERE / "cache" / "exact" / args.image / "seed0.npy"))
    denoiser = PatchMatchDenoiser(reference, 15, **json.loads(args.options))
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    patches = all_patches(reference, 15).double()
    schedule = flow_schedule(10)
    print(f"{args.image}, options {args.options}: share of queries whose nearest patch is a candidate")
    for t in range(schedule.num_steps, 0, -1):
        alpha, sigma = schedule[t]
        x = alpha * x0 + sigma * eps
        denoiser(x, alpha, sigma)
        if alpha == 0:
            continue
        queries = all_patches(x, 15).double()
        cand = torch.from_numpy(denoiser.field[0])
        found, excess = [], []
        for start in range(0, len(queries), 2048):
            distances = torch.cdist(queries[start : start + 2048], alpha * patches) ** 2
            nearest = distances.min(dim=1).values
            best = distances.gather(1, cand[start : start + 2048]).min(dim=1).values
            found.append(best <= nearest * (1 + 1e-6) + 1e-9)
            excess.append((best - nearest) / nearest.clamp_min(1e-9))
        found, excess = torch.cat(found), torch.cat(excess)
        print(
            f"  t = {t:2d}, a_t = {alpha:.3f}: found {float(found.double().mean()):.3f}, median excess {float(excess.median()):.4f}"
        )


if __name__ == "__main__":
    main()
