"""The search subspace (``sinfree.backends.ivf.principal_directions``): subspace iteration against a full eigh.

    python benchmarks/bench_subspace.py [--image PATH] [--points 2048] [--count 32]

On random 15 x 15 patches of a benchmark image (centred, as patchmatch samples them), prints the time of a
full D x D eigh (float64, and float32 as the code was before) and of the subspace iteration (one thread, best
of 5), and for 1 .. 4 iterations the variance the iteration's directions capture as a share of what the exact
top-``count`` eigenvectors capture.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from sinfree.backends.ivf import principal_directions
from sinfree.io.images import load_image

IMAGE = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "sinddm15" / "balloons.png"


def exact_directions(centred: torch.Tensor, count: int) -> torch.Tensor:
    """The reference: a full eigh of the float64 covariance."""
    covariance = centred.T.double() @ centred.double() / len(centred)
    return torch.linalg.eigh(covariance)[1][:, -count:].float()


def previous_directions(centred: torch.Tensor, count: int) -> torch.Tensor:
    """What principal_directions did before the subspace iteration: float64 covariance, float32 full eigh."""
    covariance = centred.T.double() @ centred.double() / len(centred)
    return torch.linalg.eigh(covariance.float())[1][:, -count:]


def best_seconds(function, repeats: int = 5) -> float:
    """The shortest of ``repeats`` timed calls, after one untimed call (warm-up)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=IMAGE)
    parser.add_argument("--points", type=int, default=2048)
    parser.add_argument("--count", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    image, _ = load_image(args.image)
    patches = F.unfold(image[None].float(), 15)[0].T
    chosen = torch.randperm(len(patches), generator=torch.Generator().manual_seed(0))[: args.points]
    centred = patches[chosen] - patches[chosen].mean(dim=0)
    covariance = centred.T.double() @ centred.double() / len(centred)

    def captured(directions: torch.Tensor) -> float:
        directions = directions.double()
        return float(torch.trace(directions.T @ covariance @ directions))

    exact = captured(exact_directions(centred, args.count))
    print(f"{args.image.name}: {len(centred)} patches of dimension {centred.shape[1]}, top {args.count} directions")
    print(f"  full eigh (float64 covariance): {best_seconds(lambda: exact_directions(centred, args.count)) * 1e3:.1f} ms")
    print(
        f"  the previous code (float64 covariance, float32 eigh): {best_seconds(lambda: previous_directions(centred, args.count)) * 1e3:.1f} ms"
    )
    print(f"  subspace iteration (3, fp32):   {best_seconds(lambda: principal_directions(centred, args.count)) * 1e3:.1f} ms")
    for iterations in range(1, 5):
        share = captured(principal_directions(centred, args.count, iterations=iterations)) / exact
        print(f"  {iterations} iteration(s): {share:.4f} of the exact directions' variance")


if __name__ == "__main__":
    main()
