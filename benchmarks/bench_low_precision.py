"""Low-precision matrix products on this CPU, and what bf16 scores would do to Eq. 2 (issue 3, item 2 (c)).

    python benchmarks/bench_low_precision.py [--image balloons.png]

1. Rates of the attention's matrix product at the Table-1 setting's third scale (1584 x 675 by 675 x 1584):
   fp32, bf16 (AVX512-BF16) and int8 with int32 sums (``torch._int_mm``, AVX512-VNNI), each best of 20.
2. The error bf16 scores would bring: queries x_t = a x + s eps (x: patches of the mirrored level, eps
   Gaussian) against the level's patches, at the noise levels of T = 10. Per step, the largest error of the
   logits (centred per query) and of xhat0 = softmax @ Y against float64, for bf16 products of the centred
   patches ("plain") and for products split into an fp32 part in the top-32 principal subspace plus a bf16
   remainder ("split"). PyTorch's CPU bf16 GEMM rounds its output to bf16 (there is no fp32-output variant
   on CPU), which is most of the error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_subspace import best_seconds

from sinfree.io.images import load_image
from sinfree.pyramid import build_pyramid
from sinfree.schedule import flow_schedule

BENCHMARK_DIR = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "sinddm15"


def gemm_rates(n: int, d: int) -> None:
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, d, generator=generator), torch.randn(d, n, generator=generator)
    flops = 2.0 * n * n * d
    cases = {
        "fp32": (a, b, torch.mm),
        "bf16 (bf16 output)": (a.bfloat16(), b.bfloat16(), torch.mm),
        "int8 (int32 output)": (
            torch.randint(-127, 128, (n, d), dtype=torch.int8, generator=generator),
            torch.randint(-127, 128, (d, n), dtype=torch.int8, generator=generator),
            torch._int_mm,
        ),
    }
    print(f"{n} x {d} by {d} x {n}, {torch.get_num_threads()} threads")
    for name, (left, right, product) in cases.items():
        seconds = best_seconds(lambda left=left, right=right, product=product: product(left, right), repeats=20)
        print(f"  {name:20s} {seconds * 1e3:7.2f} ms  {flops / seconds / 1e9:7.0f} G(FL)OP/s")


def score_errors(image: Path) -> None:
    reference, _ = load_image(image)
    level = build_pyramid(reference.float(), 4)[2]
    patches = F.unfold(level[None], 15)[0].T.double()
    mean = patches.mean(dim=0)
    keys = patches - mean
    queries_clean = F.unfold(level.flip(-1)[None], 15)[0].T.double() - mean
    basis = torch.linalg.eigh(keys.T @ keys)[1][:, -32:]
    norms = keys.square().sum(dim=1)

    def dots(x: torch.Tensor, split: bool) -> torch.Tensor:
        x32, y32 = x.float(), keys.float()
        if not split:
            return (x32.bfloat16() @ y32.bfloat16().T).double()
        u = basis.float()
        xp, yp = x32 @ u, y32 @ u
        rest = (x32 - xp @ u.T).bfloat16() @ (y32 - yp @ u.T).bfloat16().T
        return (xp @ yp.T + rest.float()).double()

    print(f"\n{image.name}, third scale {tuple(level.shape[-2:])}: {len(keys)} patches; errors against float64")
    print(f"  {'s_t':>6s} {'a/s^2':>7s}   {'plain: logit':>12s} {'xhat0':>8s}   {'split: logit':>12s} {'xhat0':>8s}")
    schedule = flow_schedule(10)
    for alpha, sigma in zip(schedule.alphas[1:-1].tolist()[::-1], schedule.sigmas[1:-1].tolist()[::-1]):
        if alpha == 0:
            continue
        generator = torch.Generator().manual_seed(1)
        x = alpha * queries_clean + sigma * torch.randn(queries_clean.shape, generator=generator, dtype=torch.float64)
        exact_logits = (alpha * x @ keys.T - 0.5 * alpha**2 * norms) / sigma**2
        exact = torch.softmax(exact_logits, dim=1) @ keys
        cells = []
        for split in (False, True):
            logits = (alpha * dots(x, split) - 0.5 * alpha**2 * norms) / sigma**2
            error = logits - exact_logits
            error = error - error.mean(dim=1, keepdim=True)  # a per-query constant does not change the softmax
            xhat0 = torch.softmax(logits, dim=1) @ keys
            cells.append(f"{float(error.abs().max()):12.3g} {float((xhat0 - exact).abs().max()):8.3g}")
        print(f"  {sigma:6.3f} {alpha / sigma**2:7.2f}   " + "   ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=BENCHMARK_DIR / "balloons.png")
    args = parser.parse_args()
    gemm_rates(1584, 675)
    score_errors(args.image)


if __name__ == "__main__":
    main()
