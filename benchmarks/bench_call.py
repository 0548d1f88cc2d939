"""One full-size denoiser call, per backend configuration: index build, call, and its geometry.

    python benchmarks/bench_call.py [--side 512] [--backends ivf:nprobe=4 ivf:nprobe=4,project=32,rescore=10]

The input is scikit-image's astronaut resized to ``--side`` (or ``--image PATH``); the call is
ImgDenoise at a_t = 0.9 on the input plus noise. Also printed: the time to unfold and to fold the
call's patches, and the rate of writing into freshly allocated against reused memory (the
allocator returns large blocks to the system, and the page faults of fresh ones cost here).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import skimage.data
import torch
from bench_quality import parse_backend
from PIL import Image

from sinfree.image_denoiser import ImageDenoiser
from sinfree.io.images import load_image
from sinfree.patches import extract_patches, fold_patches


def seconds(function, repeat: int = 3) -> float:
    function()
    start = time.perf_counter()
    for _ in range(repeat):
        function()
    return (time.perf_counter() - start) / repeat


def write_rates(megabytes: int = 256) -> tuple[float, float]:
    """GB/s copying ``megabytes`` into a fresh tensor and into an existing one."""
    source = torch.rand(megabytes * 2**20 // 4)
    target = torch.empty_like(source).fill_(0)
    fresh = seconds(source.clone)
    reused = seconds(lambda: target.copy_(source))
    return megabytes / 1024 / fresh, megabytes / 1024 / reused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--image", type=Path)
    parser.add_argument("--backends", nargs="+", default=["ivf:nprobe=4", "ivf:nprobe=4,project=32,rescore=10"])
    args = parser.parse_args()
    if args.image:
        image, _ = load_image(args.image)
    else:
        side = args.side
        image, _ = load_image(np.asarray(Image.fromarray(skimage.data.astronaut()).resize((side, side), Image.BICUBIC)))
    alpha, sigma = 0.9, 0.1
    x_t = alpha * image + sigma * torch.randn(image.shape, generator=torch.Generator().manual_seed(0))
    print(f"input {image.shape[2]}x{image.shape[1]}, P = 15, a_t = {alpha}, {torch.get_num_threads()} threads")
    for spec in args.backends:
        name, options = parse_backend(spec)
        start = time.perf_counter()
        denoiser = ImageDenoiser(image, 15, backend=name, **options)
        build = time.perf_counter() - start
        start = time.perf_counter()
        denoiser(x_t, alpha, sigma)
        print(f"  {spec:40s} build {build:7.2f} s   call {time.perf_counter() - start:7.2f} s", flush=True)
    rows, cols = denoiser.query_grid(tuple(image.shape[-2:]))
    patches = extract_patches(x_t, rows, cols, 15)
    out = torch.zeros(image.shape)
    print(
        f"  unfold {len(patches)} patches: {seconds(lambda: extract_patches(x_t, rows, cols, 15)):.3f} s;"
        f" fold them: {seconds(lambda: fold_patches(patches, rows, cols, 15, out)):.3f} s"
    )
    fresh, reused = write_rates()
    print(f"  writing 256 MiB: {fresh:.1f} GB/s into a fresh tensor, {reused:.1f} GB/s into a reused one")


if __name__ == "__main__":
    main()
