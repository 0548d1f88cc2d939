"""Time one sample at the Table-1 setting with the exact backend, and its share of the GEMM rate.

    python benchmarks/bench_exact.py [--image ../shared/benchmarks/sinddm15/balloons.png]

The denoiser's achieved rate counts 4 N M D floating-point operations per call (scores and
weighted average of Eq. 2; N queries, M reference patches, D = C P^2), over the calls that run the
attention (the a_t = 0 call of each scale returns the mean patch without it). The machine's fp32
GEMM rate is measured in the same run, before and after the sample; the share uses their mean.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from sinfree import GenerationSettings, generate_samples

DEFAULT_IMAGE = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "sinddm15" / "balloons.png"


def gemm_rate(size: int = 4096, repeats: int = 3) -> float:
    """Best-of-``repeats`` fp32 GFLOP/s of a square ``size`` matrix product."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; image {args.image.name}")
    gemm_before = gemm_rate()
    result = generate_samples(args.image, GenerationSettings(), seed=args.seed)
    gemm_after = gemm_rate()
    gemm = (gemm_before + gemm_after) / 2
    stats = result.denoiser_stats
    seconds, flops, achieved = stats.seconds, stats.flops, stats.gflops_per_second
    figures = {
        "image": args.image.name,
        "settings": result.settings,
        "seconds_per_sample": result.seconds_per_sample,
        "denoiser_seconds": seconds,
        "denoiser_calls": stats.calls,
        "denoiser_gflops": achieved,
        "gemm_gflops_before": gemm_before,
        "gemm_gflops_after": gemm_after,
        "share_of_gemm": achieved / gemm,
    }
    print(f"one sample (P=15, S=4, T=10, eta=0, rho=0.2, stride 1, exact): {result.seconds_per_sample:.1f} s")
    print(f"  denoiser: {stats.calls} attention calls, {seconds:.1f} s, {flops / 1e12:.2f} TFLOP, {achieved:.0f} GFLOP/s")
    print(f"  fp32 GEMM 4096^3: {gemm_before:.0f} GFLOP/s before, {gemm_after:.0f} after")
    print(f"  denoiser / GEMM rate: {100 * achieved / gemm:.0f} %")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
