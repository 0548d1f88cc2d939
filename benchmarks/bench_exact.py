"""Time one sample at the Table-1 setting with the exact backend, and its share of the GEMM rate.

    python benchmarks/bench_exact.py [--image ../shared/benchmarks/sinddm15/balloons.png]

The denoiser's achieved rate counts 4 N M D floating-point operations per call (scores and
weighted average of Eq. 2; N queries, M reference patches, D = C P^2), over the calls that run the
attention (the a_t = 0 call of each scale returns the mean patch without it). The machine's fp32
GEMM rate is measured in the same run, before and after the sample, on a square 4096^3 product
and on one shaped like the denoiser's scores; the share is taken against the best of these.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time
from pathlib import Path

import torch

from sinfree import generate_samples, preset_settings
from sinfree.io.images import load_image
from sinfree.memory import format_bytes
from sinfree.planning import estimate_peak_bytes

DEFAULT_IMAGE = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "sinddm15" / "balloons.png"


def gemm_rate(m: int, k: int, n: int, repeats: int = 5) -> float:
    """Best-of-``repeats`` fp32 GFLOP/s of an (m, k) x (k, n) matrix product."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * m * k * n / best / 1e9


def _gemm_rates() -> dict[str, float]:
    return {"4096^3": gemm_rate(4096, 4096, 4096), "4096x676x40000": gemm_rate(4096, 676, 40000)}


def machine_gemm_rate() -> dict[str, float]:
    """The fp32 GEMM rate: a square 4096^3 product and one shaped like the denoiser's scores.

    Measured in a child process, so that its buffers do not count in this process's peak memory.
    """
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_gemm_rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; image {args.image.name}")
    reference, _ = load_image(args.image)
    shape = tuple(reference.shape[-2:])
    estimate = estimate_peak_bytes(reference.shape[0], shape, shape, preset_settings("paper"), 1)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gemm_before = machine_gemm_rate()
    result = generate_samples(args.image, preset_settings("paper"), seed=args.seed)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gemm_after = machine_gemm_rate()
    gemm = max(*gemm_before.values(), *gemm_after.values())
    stats = result.denoiser_stats
    seconds, flops, achieved = stats.seconds, stats.flops, stats.gflops_per_second
    figures = {
        "image": args.image.name,
        "settings": result.settings,
        "seconds_per_sample": result.seconds_per_sample,
        "denoiser_seconds": seconds,
        "denoiser_batches": stats.calls,
        "denoiser_gflops": achieved,
        "gemm_gflops_before": gemm_before,
        "gemm_gflops_after": gemm_after,
        "gemm_gflops_best": gemm,
        "share_of_gemm": achieved / gemm,
        "estimated_peak_bytes": estimate,
        "peak_rss_bytes": peak_rss,
        "rss_before_run_bytes": rss_before,
    }
    print(f"one sample (P=15, S=4, T=10, eta=0, rho=0.2, stride 1, exact): {result.seconds_per_sample:.1f} s")
    print(f"  denoiser: {stats.calls} attention batches, {seconds:.1f} s, {flops / 1e12:.2f} TFLOP, {achieved:.0f} GFLOP/s")
    for name in gemm_before:
        print(f"  fp32 GEMM {name}: {gemm_before[name]:.0f} GFLOP/s before, {gemm_after[name]:.0f} after")
    print(f"  denoiser / best GEMM rate: {100 * achieved / gemm:.0f} %")
    print(
        f"  memory: estimated peak {format_bytes(estimate)}; process peak RSS {format_bytes(peak_rss)} "
        f"({format_bytes(rss_before)} of it before the run: interpreter, torch, GEMM probe)"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
